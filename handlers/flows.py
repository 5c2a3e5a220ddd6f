"""Flows shared by more than one surface (slash command, buttons, modal): authorise, call a use case, reply.

Each flow takes a `reply` callable so the same logic answers through a response_url, an ack body
or a modal update.
"""

from __future__ import annotations

from typing import Any

from blocks.notice import build_notice
from bot.cloudflare.errors import CloudflareError, NotFoundError
from bot.grammar import JobDraft
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


async def create_job(
    services: Services, *, draft: JobDraft, user_id: str, channel_id: str
) -> tuple[bool, dict[str, Any]]:
    """Create the job for an operator; return (created, message to show the analyst)."""
    decision = await services.may_operate(user_id, channel_id)
    if not decision.allowed:
        await services.jobs.record_refusal(user_id, "create", channel_id, decision.reason)
        return False, build_notice(decision.reason)
    try:
        tracked = await services.jobs.create(draft, requester=user_id, channel_id=channel_id)
    except CloudflareError as error:
        return False, error_message(error)
    return True, build_notice(
        f"Created job `{tracked.job_id}`. Its card is posted in <#{channel_id}> "
        "and updates itself as the job runs."
    )
