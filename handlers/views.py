"""Modal submissions: the create form (→ preview) and the preview (→ create)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from blocks.create_modal import build_loading_view, build_preview_view, build_result_view
from bot.followups import ErrorReporter
from bot.forms import FormErrors, confirmation_errors, parse_confirmation, parse_create_form
from bot.ids import CallbackId
from bot.payloads import ModalMetadata, PayloadError, decode, encode
from handlers import flows
from handlers._common import Services, error_message

TITLE = "Sweep"


def report_in_view(client: AsyncWebClient, view_id: str) -> ErrorReporter:
    """Return an error reporter that shows the failure in the modal the user is looking at."""

    async def report(error: Exception) -> None:
        await client.views_update(
            view_id=view_id, view=build_result_view(TITLE, error_message(error)["text"])
        )

    return report


def register(app: AsyncApp, services: Services) -> None:
    """Attach the view-submission listeners."""

    async def handle_create_submission(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        try:
            metadata = decode(ModalMetadata, view.get("private_metadata", ""))
        except PayloadError:
            await ack(
                response_action="update", view=build_result_view(TITLE, "This form's data was garbled.")
            )
            return
        parsed = parse_create_form(view.get("state", {}).get("values", {}), now=services.clock())
        if isinstance(parsed, FormErrors):
            await ack(**parsed.response())
            return
        await ack(
            response_action="update", view=build_loading_view(TITLE, "Counting the messages this matches…")
        )
        # A waiting follow-up holds only what it needs, not the whole submitted view.
        draft, form_id, user_id, view_id = parsed, metadata.preview_id, body["user"]["id"], view["id"]

        async def act() -> None:
            # The channel is the one recorded when the form was opened, never one the metadata names.
            form = await services.jobs.get_preview(form_id)
            channel_id = form.channel_id if form is not None else None
            # After the ack: deciding may look up user-group members in Slack.
            decision = await services.may_operate(user_id, channel_id)
            if not decision.allowed:
                await client.views_update(view_id=view_id, view=build_result_view(TITLE, decision.reason))
                await services.jobs.record_refusal(user_id, "create", channel_id, decision.reason)
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
                ),
            )

        services.after_ack(
            act,
            label="create form",
            on_error=report_in_view(client, view_id),
            on_wait=services.wait_in_view(client, view_id, title=TITLE),
        )

    async def handle_preview_submission(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        try:
            metadata = decode(ModalMetadata, view.get("private_metadata", ""))
        except PayloadError:
            metadata = None
        if metadata is None or metadata.draft is None:
            await ack(
                response_action="update", view=build_result_view(TITLE, "This form's data was garbled.")
            )
            return
        values = view.get("state", {}).get("values", {})
        # The typed word is checked here against the draft shown (an inline error), and again after
        # the ack against the stored preview, which is what is created.
        problems = confirmation_errors(values, metadata.draft)
        if problems is not None:
            await ack(**problems.response())
            return
        await ack(response_action="update", view=build_loading_view(TITLE, "Creating the job…"))
        preview_id, user_id, view_id = metadata.preview_id, body["user"]["id"], view["id"]

        async def act() -> None:
            message = await flows.confirm_preview(
                services,
                preview_id=preview_id,
                user_id=user_id,
                click_channel_id=None,
                confirm_check=lambda stored: parse_confirmation(values, stored),
            )
            await client.views_update(view_id=view_id, view=build_result_view(TITLE, message["text"]))

        # The ack already shows "Creating the job…": start at once, so a crash cannot leave that
        # promise with no create intent recorded behind it.
        services.after_ack(
            act,
            label="create (modal)",
            on_error=report_in_view(client, view_id),
            urgent=True,
            on_wait=services.wait_in_view(client, view_id, title=TITLE),
        )

    app.view(CallbackId.CREATE_FORM.value)(handle_create_submission)
    app.view(CallbackId.CREATE_PREVIEW.value)(handle_preview_submission)
