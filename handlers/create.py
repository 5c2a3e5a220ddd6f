"""Create a job: `/sweep move|release …` (an inline preview), its Confirm and Dismiss buttons.

`confirm_preview` is the one create flow, shared with the modal's preview step
(`handlers.create_form`): it creates the stored preview, once, and says what happened.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from blocks._kit import format_time, message_link, safe
from blocks.notice import build_notice
from blocks.preview import build_inline_preview
from bot.draft import JobDraft
from bot.errors import CloudflareFailed
from bot.grammar import CreateCommand
from bot.ids import ActionId
from bot.jobs import CreateOutcome, CreateStatus
from bot.payloads import ConfirmCreateValue, encode
from bot.policy import Operation
from handlers._common import Services, error_message, reply_ephemeral, report_by_reply
from handlers._listen import Request, on_button, requires


@requires(Operation.CREATE, lambda _: "create")
async def handle_create_command(services: Services, request: Request, command: CreateCommand) -> None:
    """`/sweep move|release …`: count what it matches and show the preview with Confirm."""
    if request.channel_id is None:  # a slash command always has one
        return
    preview = await services.jobs.preview(
        command.draft, requester=request.user_id, channel_id=request.channel_id
    )
    message = build_inline_preview(
        draft=command.draft,
        preview=preview.result,
        limit=services.jobs.preview_limit,
        confirm_value=encode(ConfirmCreateValue(preview_id=preview.id)),
        now=services.clock(),
        reasons=preview.reasons,
    )
    await reply_ephemeral(request.respond, message)


async def handle_confirm_create_button(
    services: Services, request: Request, value: ConfirmCreateValue
) -> None:
    """The inline preview's Confirm: create the stored preview (in the channel Slack says was clicked).

    A job that needs a second person is not created: an approval request is posted instead.
    """

    async def creating() -> None:
        await reply_ephemeral(request.respond, build_notice("Creating the job…"), replace_original=True)

    confirmed = await confirm_preview(
        services,
        preview_id=value.preview_id,
        user_id=request.user_id,
        click_channel_id=request.channel_id,
        on_recorded=creating,
    )
    # A confirm that needs a justification leaves the preview where it is: nothing is lost.
    await reply_ephemeral(request.respond, confirmed.message, replace_original=not confirmed.keep_preview)


async def handle_dismiss_preview_button(ack: AsyncAck, respond: AsyncRespond, services: Services) -> None:
    """The inline preview's Dismiss: say nothing was created, in place of the preview."""
    await ack()

    async def act() -> None:
        await reply_ephemeral(respond, build_notice("Nothing was created."), replace_original=True)

    services.after_ack(act, label="dismiss preview", on_error=report_by_reply(respond))


@dataclass(frozen=True)
class Confirmed:
    """What to show the analyst after a confirm, and whether the preview should stay in view."""

    message: dict[str, Any]
    keep_preview: bool = False


async def confirm_preview(
    services: Services,
    *,
    preview_id: str,
    user_id: str,
    click_channel_id: str | None,
    confirm_check: Callable[[JobDraft], str | None] | None = None,
    on_recorded: Callable[[], Awaitable[None]] | None = None,
    shown: JobDraft | None = None,
    justification: str | None = None,
) -> Confirmed:
    """Create the stored preview for an operator, once — or ask a second person; say what happened.

    `click_channel_id` is where Slack says a Confirm button was clicked (None for the modal, whose
    channel was recorded when it was opened). `confirm_check` re-checks a typed confirmation word
    against the stored draft (the modal's PURGE/RELEASE field); `shown` is the draft the modal
    carried (refused if it is not the stored one); `justification` the modal's typed justification.
    """
    record = await services.jobs.get_preview(preview_id)
    channel_id = click_channel_id or (record.channel_id if record is not None else None)
    decision = await services.authorise(user_id, channel_id, Operation.CREATE, what="create")
    if not decision.allowed:
        return Confirmed(build_notice(decision.reason))
    try:
        outcome = await services.approvals.confirm(
            preview_id,
            actor=user_id,
            click_channel_id=click_channel_id,
            confirm_check=confirm_check,
            on_recorded=on_recorded,
            shown=shown,
            justification=justification,
        )
    except CloudflareFailed as error:
        return Confirmed(error_message(error))
    keep = outcome.status is CreateStatus.NEEDS_JUSTIFICATION
    return Confirmed(build_notice(create_outcome_text(outcome)), keep_preview=keep)


def _approval_text(outcome: CreateOutcome, channel: str) -> str | None:
    """Say what a confirm that needs a second person did, or None for any other outcome."""
    approval = outcome.approval
    reasons = "; ".join(safe(text, 300) for text in outcome.reasons)
    if outcome.status is CreateStatus.AWAITING_APPROVAL and approval is not None:
        return (
            f":hourglass_flowing_sand: *Waiting for approval.* Nothing was created yet: this job needs a "
            f"second person ({reasons}). Sweep posted an approval request in {channel}; another approver "
            f"must approve it before {format_time(approval.expires_at)}, and then the job is created "
            "exactly as previewed."
        )
    if outcome.status is CreateStatus.ALREADY_REQUESTED and approval is not None:
        return (
            f"This preview's approval request is already posted in {channel} "
            f"({approval.state.value}). Nothing new was requested or created."
        )
    if outcome.status is CreateStatus.NEEDS_JUSTIFICATION:
        return (
            f":warning: *This job needs a second person's approval* ({reasons}), and an approval request "
            "needs a justification. Nothing was created or requested; run the command again with "
            '`comment:"why this is needed"` (e.g. the incident ticket) and confirm that preview.'
        )
    return None


def create_outcome_text(outcome: CreateOutcome) -> str:
    """Return what confirming (or approving) did, in words for the person who clicked (mrkdwn)."""
    channel = f"<#{outcome.channel_id}>" if outcome.channel_id else "the channel"
    reason = safe(outcome.reason, 600, empty="no reason given")
    tracked = outcome.tracked
    if (text := _approval_text(outcome, channel)) is not None:
        return text
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
                f"<{message_link(tracked.channel_id or '', tracked.card_ts)}|its card>"
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


def register(app: AsyncApp, services: Services) -> None:
    """Attach the inline preview's Confirm and Dismiss buttons."""
    # A create starts at once, never deferred: a crash must not strand an acknowledged create.
    app.action(ActionId.CONFIRM_CREATE.value)(
        on_button(
            services,
            ConfirmCreateValue,
            handle_confirm_create_button,
            label="create (button)",
            replace="always",
            urgent=True,
            garbled_replaces=True,
        )
    )

    async def dismiss(ack: AsyncAck, respond: AsyncRespond) -> None:
        await handle_dismiss_preview_button(ack, respond, services)

    app.action(ActionId.DISMISS_PREVIEW.value)(dismiss)
