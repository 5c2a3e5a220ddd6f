"""Button and select listeners: card cancel, inline preview confirm/dismiss, list paging, modal actions."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from blocks.create_modal import build_create_modal
from blocks.job_list import build_job_list
from blocks.notice import build_notice
from bot.cloudflare.errors import CloudflareError
from bot.ids import ActionId
from bot.payloads import (
    CancelButtonValue,
    ConfirmCreateValue,
    ListPageValue,
    ModalMetadata,
    PayloadError,
    decode,
    encode,
)
from handlers import flows
from handlers._common import Services, error_message, reply_ephemeral
from handlers.commands import LIST_PAGE_SIZE

GARBLED = build_notice("That button's data could not be read; please run the command again.")


def _channel_of(body: dict[str, Any]) -> str | None:
    channel = body.get("channel") or {}
    return channel.get("id") if isinstance(channel, dict) else None


def register(app: AsyncApp, services: Services) -> None:
    """Attach the block-action listeners."""

    async def handle_cancel_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        try:
            value = decode(CancelButtonValue, action.get("value", ""))
        except PayloadError:
            await reply_ephemeral(respond, GARBLED)
            return
        await flows.cancel_job(
            services, respond, job_id=value.job_id, user_id=body["user"]["id"], channel_id=_channel_of(body)
        )

    async def handle_confirm_create_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        try:
            value = decode(ConfirmCreateValue, action.get("value", ""))
        except PayloadError:
            await reply_ephemeral(respond, GARBLED, replace_original=True)
            return
        await reply_ephemeral(respond, build_notice("Creating the job…"), replace_original=True)
        _, message = await flows.create_job(
            services, draft=value.draft, user_id=body["user"]["id"], channel_id=value.channel_id
        )
        await reply_ephemeral(respond, message, replace_original=True)

    async def handle_dismiss_preview_button(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()
        await reply_ephemeral(respond, build_notice("Nothing was created."), replace_original=True)

    async def handle_list_page_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        try:
            value = decode(ListPageValue, action.get("value", ""))
        except PayloadError:
            await reply_ephemeral(respond, GARBLED)
            return
        if not services.may_view(_channel_of(body)).allowed:
            return
        try:
            page = await services.jobs.list_jobs(
                status=value.status, action_type=value.action_type, page=value.page, per_page=LIST_PAGE_SIZE
            )
        except CloudflareError as error:
            await reply_ephemeral(respond, error_message(error))
            return
        message = build_job_list(
            page.items,
            page=value.page,
            has_more=len(page.items) == LIST_PAGE_SIZE,
            status=value.status,
            action_type=value.action_type,
            now=services.clock(),
        )
        await reply_ephemeral(respond, message, replace_original=True)

    async def handle_action_select(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        view = body["view"]
        selected = (action.get("selected_option") or {}).get("value", "MOVE")
        metadata = view.get("private_metadata", "")
        try:
            decode(ModalMetadata, metadata)
        except PayloadError:
            return
        await client.views_update(
            view_id=view["id"],
            hash=view.get("hash"),
            view=build_create_modal(metadata=metadata, action=selected, now=services.clock()),
        )

    async def handle_edit_draft_button(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        view = body["view"]
        try:
            metadata = decode(ModalMetadata, view.get("private_metadata", ""))
        except PayloadError:
            return
        back = encode(ModalMetadata(channel_id=metadata.channel_id, draft=metadata.draft, stage="form"))
        await client.views_update(
            view_id=view["id"],
            hash=view.get("hash"),
            view=build_create_modal(metadata=back, draft=metadata.draft, now=services.clock()),
        )

    app.action(ActionId.CANCEL_JOB.value)(handle_cancel_button)
    app.action(ActionId.CONFIRM_CREATE.value)(handle_confirm_create_button)
    app.action(ActionId.DISMISS_PREVIEW.value)(handle_dismiss_preview_button)
    app.action(ActionId.LIST_PAGE.value)(handle_list_page_button)
    app.action(ActionId.ACTION_SELECT.value)(handle_action_select)
    app.action(ActionId.EDIT_DRAFT.value)(handle_edit_draft_button)
