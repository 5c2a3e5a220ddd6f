"""Cancel a job: `/sweep cancel <id>` and the card's Cancel button."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from blocks.notice import build_notice
from bot.errors import CloudflareFailed, JobNotFound
from bot.grammar import CancelCommand
from bot.ids import ActionId
from bot.payloads import CancelButtonValue
from bot.policy import Operation
from handlers._common import Services, error_message, reply_ephemeral
from handlers._listen import Request, on_button, requires


@requires(Operation.CANCEL, lambda job_id: f"cancel {job_id}")
async def cancel_job(services: Services, request: Request, job_id: str) -> None:
    """Cancel a job for an operator, politely when it already finished."""
    try:
        outcome = await services.jobs.cancel(job_id, actor=request.user_id, channel_id=request.channel_id)
    except JobNotFound:
        await reply_ephemeral(
            request.respond, build_notice(f"No job `{job_id}` exists in this Cloudflare account.")
        )
        return
    except CloudflareFailed as error:
        await reply_ephemeral(request.respond, error_message(error))
        return
    job = outcome.job
    if outcome.already_finished:
        text = f"Job `{job_id}` had already finished ({job.status}); there was nothing left to cancel."
    else:
        done = "released" if job.action_type == "RELEASE" else "moved"
        text = (
            f"Cancelled job `{job_id}`. Pending messages will not be processed; "
            f"messages already {done} stay {done}."
        )
    await reply_ephemeral(request.respond, build_notice(text))


async def handle_cancel_command(services: Services, request: Request, command: CancelCommand) -> None:
    """`/sweep cancel <id>`."""
    await cancel_job(services, request, command.job_id)


async def handle_cancel_button(services: Services, request: Request, value: CancelButtonValue) -> None:
    """The card's Cancel button (after Slack's confirm dialog)."""
    await cancel_job(services, request, value.job_id)


def register(app: AsyncApp, services: Services) -> None:
    """Attach the card's Cancel button."""
    app.action(ActionId.CANCEL_JOB.value)(
        on_button(
            services,
            CancelButtonValue,
            handle_cancel_button,
            label="cancel button",
            replace="never",  # the card must stay
        )
    )
