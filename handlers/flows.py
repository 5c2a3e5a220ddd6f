"""Flows shared by more than one surface (slash command, buttons, modal): authorise, call a use case, reply.

Each flow takes a `reply` callable so the same logic answers through a response_url, an ack body
or a modal update.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from blocks._kit import safe
from blocks.notice import build_notice
from bot.cloudflare.errors import CloudflareError, NotFoundError
from bot.draft import JobDraft
from bot.jobs import CreateOutcome, CreateStatus
from bot.policy import Operation
from handlers._common import Reply, Services, error_message, refuse, reply_ephemeral


async def cancel_job(
    services: Services, respond: Reply, *, job_id: str, user_id: str, channel_id: str | None
) -> None:
    """Cancel a job for a user, politely when it already finished, refusing non-operators."""
    decision = await services.may_operate(user_id, channel_id, Operation.CANCEL)
    if not decision.allowed:
        await refuse(respond, services, user_id, f"cancel {job_id}", channel_id, decision.reason)
        return
    try:
        outcome = await services.jobs.cancel(job_id, actor=user_id, channel_id=channel_id)
    except NotFoundError:
        await reply_ephemeral(respond, build_notice(f"No job `{job_id}` exists in this Cloudflare account."))
        return
    except CloudflareError as error:
        await reply_ephemeral(respond, error_message(error))
        return
    if outcome.already_finished:
        status = (
            outcome.tracked.status if outcome.tracked else (outcome.job.status if outcome.job else "finished")
        )
        text = f"Job `{job_id}` had already finished ({status}); there was nothing left to cancel."
    else:
        action = (
            outcome.tracked.action_type
            if outcome.tracked
            else (outcome.job.action_type if outcome.job else "")
        )
        done = "released" if action == "RELEASE" else "moved"
        text = (
            f"Cancelled job `{job_id}`. Pending messages will not be processed; "
            f"messages already {done} stay {done}."
        )
    await reply_ephemeral(respond, build_notice(text))


async def confirm_preview(
    services: Services,
    *,
    preview_id: str,
    user_id: str,
    click_channel_id: str | None,
    confirm_check: Callable[[JobDraft], str | None] | None = None,
    on_recorded: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """Create the stored preview for an operator, once; return the message to show the analyst.

    `click_channel_id` is where Slack says a Confirm button was clicked (None for the modal, whose
    channel was recorded when it was opened). `confirm_check` re-checks a typed confirmation word
    against the stored draft (the modal's PURGE/RELEASE field).
    """
    record = await services.jobs.get_preview(preview_id)
    channel_id = click_channel_id or (record.channel_id if record is not None else None)
    decision = await services.may_operate(user_id, channel_id)
    if not decision.allowed:
        await services.jobs.record_refusal(user_id, "create", channel_id, decision.reason)
        return build_notice(decision.reason)
    try:
        outcome = await services.jobs.create_from_preview(
            preview_id,
            actor=user_id,
            click_channel_id=click_channel_id,
            confirm_check=confirm_check,
            on_recorded=on_recorded,
        )
    except CloudflareError as error:
        return error_message(error)
    return build_notice(_create_outcome_text(outcome))


def _create_outcome_text(outcome: CreateOutcome) -> str:
    channel = f"<#{outcome.channel_id}>" if outcome.channel_id else "the channel"
    reason = safe(outcome.reason, 600, empty="no reason given")
    tracked = outcome.tracked
    if outcome.status is CreateStatus.CREATED and tracked is not None:
        return (
            f"Created job `{tracked.job_id}`. Its card is posted in {channel} "
            "and updates itself as the job runs."
        )
    if outcome.status is CreateStatus.UNKNOWN:
        return (
            f":warning: *The outcome of this create is unknown*: {reason}. Cloudflare may have made the job. "
            f"Sweep is checking by the request's tag: if the job exists its card will appear in {channel}, "
            "otherwise you will be told there that it was not created. *Do not retry meanwhile*: a second "
            "confirm could make a second job."
        )
    if outcome.status is CreateStatus.ALREADY_CONFIRMED:
        if tracked is not None:
            where = (
                f"<{card_link(tracked.channel_id or '', tracked.card_ts)}|its card>"
                if tracked.card_ts and tracked.channel_id
                else f"its card is being posted in {channel}"
            )
            return f"Already created: job `{tracked.job_id}` ({where}). Nothing new was created."
        if outcome.earlier_failed:
            return (
                f"This preview was already confirmed, and that create failed ({reason}). "
                "Nothing new was created; run the command again for a fresh preview."
            )
        return (
            "This preview was already confirmed and its job is being created (or its outcome checked); "
            f"the card will appear in {channel}. Nothing new was created."
        )
    return f"Nothing was created: {reason}."


def card_link(channel_id: str, ts: str) -> str:
    """Return a link to a message (Slack redirects it to the workspace)."""
    return f"https://slack.com/archives/{channel_id}/p{ts.replace('.', '')}"
