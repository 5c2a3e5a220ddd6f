"""A one-line ephemeral notice ("Creating the job…", "Nothing was created.")."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from blocks._kit import message, section


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
