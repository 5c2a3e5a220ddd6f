"""Modal submissions: the create form (→ preview) and the preview (→ create)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from blocks.create_modal import build_loading_view, build_preview_view, build_result_view
from bot.cloudflare.errors import CloudflareError
from bot.forms import FormErrors, confirmation_errors, parse_create_form
from bot.ids import CallbackId
from bot.payloads import ModalMetadata, PayloadError, decode, encode
from handlers import flows
from handlers._common import Services, error_message

TITLE = "Sweep"


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
        # After the ack: deciding may look up user-group members in Slack.
        user_id = body["user"]["id"]
        decision = await services.may_operate(user_id, metadata.channel_id)
        if not decision.allowed:
            await client.views_update(view_id=view["id"], view=build_result_view(TITLE, decision.reason))
            await services.jobs.record_refusal(user_id, "create", metadata.channel_id, decision.reason)
            return
        try:
            preview = await services.jobs.preview(parsed)
        except CloudflareError as error:
            await client.views_update(
                view_id=view["id"], view=build_result_view(TITLE, error_message(error)["text"])
            )
            return
        next_metadata = encode(ModalMetadata(channel_id=metadata.channel_id, draft=parsed, stage="preview"))
        await client.views_update(
            view_id=view["id"],
            view=build_preview_view(
                metadata=next_metadata,
                draft=parsed,
                preview=preview,
                limit=services.jobs.preview_limit,
                now=services.clock(),
            ),
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
        draft = metadata.draft
        problems = confirmation_errors(view.get("state", {}).get("values", {}), draft)
        if problems is not None:
            await ack(**problems.response())
            return
        await ack(response_action="update", view=build_loading_view(TITLE, "Creating the job…"))
        _, message = await flows.create_job(
            services, draft=draft, user_id=body["user"]["id"], channel_id=metadata.channel_id
        )
        await client.views_update(view_id=view["id"], view=build_result_view(TITLE, message["text"]))

    app.view(CallbackId.CREATE_FORM.value)(handle_create_submission)
    app.view(CallbackId.CREATE_PREVIEW.value)(handle_preview_submission)
