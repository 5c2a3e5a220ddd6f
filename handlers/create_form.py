"""Create a job through the form: `/sweep new`, the modal's controls, form (→ preview), preview (→ create)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from blocks.create_modal import build_create_modal, build_loading_view, build_preview_view, build_result_view
from bot.draft import JobDraft
from bot.followups import ErrorReporter
from bot.forms import (
    FormErrors,
    confirmation_errors,
    justification_errors,
    parse_confirmation,
    parse_create_form,
    parse_justification,
)
from bot.grammar import NewCommand
from bot.ids import ActionId, CallbackId
from bot.payloads import ModalMetadata, encode
from bot.policy import Operation
from handlers._common import Services, error_message, log_error
from handlers._listen import OpenModal, Request, on_modal_action, on_submission, requires
from handlers.create import confirm_preview

TITLE = "Sweep"


def report_in_view(client: AsyncWebClient, view_id: str) -> ErrorReporter:
    """Return an error reporter that shows the failure in the modal the user is looking at."""

    async def report(error: Exception) -> None:
        await client.views_update(
            view_id=view_id, view=build_result_view(TITLE, error_message(error)["text"])
        )

    return report


def garbled_form() -> dict[str, Any]:
    """Return the view shown in place of a form whose metadata could not be read."""
    return build_result_view(TITLE, "This form's data was garbled.")


@requires(Operation.OPEN_FORM, lambda _: "open create form")
async def handle_new_command(services: Services, request: Request, command: NewCommand) -> None:
    """`/sweep new`: open the create form (urgent: the trigger id lives 3 s)."""
    if request.channel_id is None or request.trigger_id is None:  # a slash command always has both
        return
    form_id = await services.jobs.open_form(requester=request.user_id, channel_id=request.channel_id)
    metadata = encode(ModalMetadata(preview_id=form_id, draft=None, stage="form"))
    await request.client.views_open(
        trigger_id=request.trigger_id,
        view=build_create_modal(metadata=metadata, now=services.clock()),
    )


def redraw_form(
    services: Services,
    modal: OpenModal,
    *,
    label: str,
    metadata: str,
    draft: JobDraft | None = None,
    action: str | None = None,
) -> None:
    """After the ack, replace the open modal with the create form (only if nobody changed it meanwhile)."""
    client, view_id, view_hash = modal.client, modal.view["id"], modal.view.get("hash")

    async def act() -> None:
        form = build_create_modal(metadata=metadata, draft=draft, action=action, now=services.clock())
        await client.views_update(view_id=view_id, hash=view_hash, view=form)

    services.after_ack(act, label=label, on_error=log_error)


def handle_action_select(services: Services, modal: OpenModal) -> None:
    """The form's action select: redraw the form for that action (MOVE shows the folder)."""
    selected = (modal.action.get("selected_option") or {}).get("value", "MOVE")
    redraw_form(services, modal, label="action select", metadata=modal.raw_metadata, action=selected)


def handle_edit_draft_button(services: Services, modal: OpenModal) -> None:
    """The preview's Edit: back to the form, filled with the draft."""
    metadata = modal.metadata
    back = encode(ModalMetadata(preview_id=metadata.preview_id, draft=metadata.draft, stage="form"))
    redraw_form(services, modal, label="edit draft", metadata=back, draft=metadata.draft)


async def handle_create_submission(
    services: Services,
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    metadata: ModalMetadata,
) -> None:
    """The form's Preview: check the fields (inline errors), then count the matches after the ack."""
    parsed = parse_create_form(view.get("state", {}).get("values", {}), now=services.clock())
    if isinstance(parsed, FormErrors):
        await ack(**parsed.response())
        return
    await ack(response_action="update", view=build_loading_view(TITLE, "Counting the messages this matches…"))
    # A waiting follow-up holds only what it needs, not the whole submitted view.
    draft, form_id, user_id, view_id = parsed, metadata.preview_id, body["user"]["id"], view["id"]

    async def act() -> None:
        # The channel is the one recorded when the form was opened, never one the metadata names.
        form = await services.jobs.get_preview(form_id)
        channel_id = form.channel_id if form is not None else None
        # After the ack: deciding may look up user-group members in Slack.
        decision = await services.authorise(user_id, channel_id, Operation.CREATE, what="create")
        if not decision.allowed:
            await client.views_update(view_id=view_id, view=build_result_view(TITLE, decision.reason))
            return
        preview = await services.jobs.preview(draft, requester=user_id, preview_id=form_id)
        next_metadata = encode(ModalMetadata(preview_id=preview.id, draft=draft, stage="preview"))
        await client.views_update(
            view_id=view_id,
            view=build_preview_view(
                metadata=next_metadata,
                draft=draft,
                preview=preview.result,
                limit=services.jobs.preview_limit,
                now=services.clock(),
                reasons=preview.reasons,
            ),
        )

    services.after_ack(
        act,
        label="create form",
        on_error=report_in_view(client, view_id),
        on_wait=services.wait_in_view(client, view_id, title=TITLE),
    )


async def handle_preview_submission(
    services: Services,
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    metadata: ModalMetadata,
) -> None:
    """The preview's Create: check the typed confirmation word, then create after the ack."""
    if metadata.draft is None:
        await ack(response_action="update", view=garbled_form())
        return
    values = view.get("state", {}).get("values", {})
    # The typed word is checked here against the draft shown (an inline error), and again after
    # the ack against the stored preview, which is what is created.
    problems = confirmation_errors(values, metadata.draft)
    if problems is None:
        problems = justification_errors(view)
    if problems is not None:
        await ack(**problems.response())
        return
    justification = parse_justification(view)
    working = "Creating the job…" if justification is None else "Asking for a second person's approval…"
    await ack(response_action="update", view=build_loading_view(TITLE, working))
    preview_id, user_id, view_id, shown = metadata.preview_id, body["user"]["id"], view["id"], metadata.draft

    async def act() -> None:
        confirmed = await confirm_preview(
            services,
            preview_id=preview_id,
            user_id=user_id,
            click_channel_id=None,
            confirm_check=lambda stored: parse_confirmation(values, stored),
            shown=shown,
            justification=justification,
        )
        await client.views_update(view_id=view_id, view=build_result_view(TITLE, confirmed.message["text"]))

    # The ack already shows "Creating the job…": start at once, so a crash cannot leave that
    # promise with no create intent recorded behind it.
    services.after_ack(
        act,
        label="create (modal)",
        on_error=report_in_view(client, view_id),
        urgent=True,
        on_wait=services.wait_in_view(client, view_id, title=TITLE),
    )


def register(app: AsyncApp, services: Services) -> None:
    """Attach the modal's controls and its two submissions."""
    app.action(ActionId.ACTION_SELECT.value)(on_modal_action(services, handle_action_select))
    app.action(ActionId.EDIT_DRAFT.value)(on_modal_action(services, handle_edit_draft_button))
    app.view(CallbackId.CREATE_FORM.value)(
        on_submission(services, handle_create_submission, garbled=garbled_form)
    )
    app.view(CallbackId.CREATE_PREVIEW.value)(
        on_submission(services, handle_preview_submission, garbled=garbled_form)
    )
