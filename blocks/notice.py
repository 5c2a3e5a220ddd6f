"""Short notices: one-line ephemeral answers, and channel notices the outbox posts for no job."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from blocks._describe import action_title, filter_lines
from blocks._kit import message, safe, section
from bot.draft import JOB_COMMENT_MAX
from bot.models import SearchParams
from bot.slack_limits import is_user_id


def build_notice(text: str) -> dict[str, Any]:
    """Build a short message from Sweep's own mrkdwn (mentions and `<#C…>` allowed).

    The caller writes `text`: any user-supplied part must go through `blocks._kit.escape` first.
    """
    return message(text, [section(text)])


def rate_limit_text(wait_seconds: float, *, now: datetime) -> str:
    """Return what to tell a user whose request waits `wait_seconds` on Cloudflare's rate limit."""
    seconds = max(1, math.ceil(wait_seconds))
    retry_at = (now + timedelta(seconds=seconds)).astimezone(UTC).strftime("%H:%M:%S UTC")
    return (
        f":hourglass_flowing_sand: Cloudflare is rate limiting Sweep's requests. "
        f"Sweep will retry in {seconds} s (at {retry_at}) and then answer here."
    )


def build_rate_limit_notice(wait_seconds: float, *, now: datetime) -> dict[str, Any]:
    """Build the notice shown while a request waits out Cloudflare's rate limit."""
    return build_notice(rate_limit_text(wait_seconds, now=now))


def build_create_not_made(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Build the channel notice that a confirmed create made no job (the outbox's `create_not_made`).

    `payload` is what `bot.creates.not_created_notice` queued: requester, action, destination,
    search_params (API form), reason. Every value from it is escaped.
    """
    requester = str(payload.get("requester") or "")
    mention = f"<@{requester}>" if is_user_id(requester) else "Someone"
    title = action_title(str(payload.get("action") or ""), payload.get("destination"))
    try:
        params = SearchParams.model_validate(payload.get("search_params") or {})
        filters = filter_lines(params)
    except ValidationError:
        filters = "(the filters could not be read)"
    reason = safe(str(payload.get("reason") or "Cloudflare never received it"), 500)
    text = (
        f":warning: {mention}, your *{title}* was *not created*: {reason}. No job exists at Cloudflare "
        "and no mail was touched. Run the command again to try once more."
    )
    blocks = [section(text), section(f"*Filters*\n{filters}")]
    if payload.get("comment"):
        blocks.append(section(f"*Comment*\n>{safe(str(payload['comment']), JOB_COMMENT_MAX)}"))
    return message(text, blocks)
