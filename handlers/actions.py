"""Button and select listeners: card cancel, inline preview confirm/dismiss, list paging, modal actions."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from blocks.create_modal import build_create_modal
from blocks.job_list import build_job_list
from blocks.notice import build_notice
from bot.draft import JobDraft
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
from handlers._common import Services, log_error, reply_ephemeral, report_by_reply
from handlers.commands import LIST_PAGE_SIZE

GARBLED = build_notice("That button's data could not be read; please run the command again.")


def _channel_of(body: dict[str, Any]) -> str | None:
    channel = body.get("channel") or {}
    return channel.get("id") if isinstance(channel, dict) else None


def redraw_form(
    services: Services,
    client: AsyncWebClient,
    view: dict[str, Any],
    *,
    label: str,
    metadata: str,
    draft: JobDraft | None = None,
    action: str | None = None,
) -> None:
    """After the ack, replace the open modal with the create form (only if nobody changed it meanwhile)."""
    view_id, view_hash = view["id"], view.get("hash")

    async def act() -> None:
        form = build_create_modal(metadata=metadata, draft=draft, action=action, now=services.clock())
        await client.views_update(view_id=view_id, hash=view_hash, view=form)

    services.after_ack(act, label=label, on_error=log_error)


def register(app: AsyncApp, services: Services) -> None:
    """Attach the block-action listeners."""

    async def handle_cancel_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        raw_value, user_id, channel_id = action.get("value", ""), body["user"]["id"], _channel_of(body)

        async def act() -> None:
            try:
                value = decode(CancelButtonValue, raw_value)
            except PayloadError:
                await reply_ephemeral(respond, GARBLED)
                return
            await flows.cancel_job(
                services, respond, job_id=value.job_id, user_id=user_id, channel_id=channel_id
            )

        services.after_ack(
            act,
            label="cancel button",
            on_error=report_by_reply(respond),
            on_wait=services.wait_by_reply(respond, replace="never"),  # the card must stay
        )

    async def handle_confirm_create_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        # The channel is the one Slack says the click came from, never one a payload names.
        raw_value, user_id, channel_id = action.get("value", ""), body["user"]["id"], _channel_of(body)

        async def act() -> None:
            try:
                value = decode(ConfirmCreateValue, raw_value)
            except PayloadError:
                await reply_ephemeral(respond, GARBLED, replace_original=True)
                return

            async def creating() -> None:
                await reply_ephemeral(respond, build_notice("Creating the job…"), replace_original=True)

            message = await flows.confirm_preview(
                services,
                preview_id=value.preview_id,
                user_id=user_id,
                click_channel_id=channel_id,
                on_recorded=creating,
            )
            await reply_ephemeral(respond, message, replace_original=True)

        # A create starts at once, never deferred: a crash must not strand an acknowledged create.
        services.after_ack(
            act,
            label="create (button)",
            on_error=report_by_reply(respond),
            urgent=True,
            on_wait=services.wait_by_reply(respond, replace="always"),
        )

    async def handle_dismiss_preview_button(ack: AsyncAck, respond: AsyncRespond) -> None:
        await ack()

        async def act() -> None:
            await reply_ephemeral(respond, build_notice("Nothing was created."), replace_original=True)

        services.after_ack(act, label="dismiss preview", on_error=report_by_reply(respond))

    async def handle_list_page_button(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], respond: AsyncRespond
    ) -> None:
        await ack()
        raw_value, channel_id, user_id = action.get("value", ""), _channel_of(body), body["user"]["id"]

        async def act() -> None:
            try:
                value = decode(ListPageValue, raw_value)
            except PayloadError:
                await reply_ephemeral(respond, GARBLED)
                return
            if not services.may_view(channel_id).allowed:
                return
            page = await services.jobs.list_jobs(
                actor=user_id,
                channel_id=channel_id,
                status=value.status,
                action_type=value.action_type,
                page=value.page,
                per_page=LIST_PAGE_SIZE,
            )
            message = build_job_list(
                page.items,
                page=value.page,
                has_more=len(page.items) == LIST_PAGE_SIZE,
                status=value.status,
                action_type=value.action_type,
                now=services.clock(),
            )
            await reply_ephemeral(respond, message, replace_original=True)

        services.after_ack(
            act,
            label="list page",
            on_error=report_by_reply(respond),
            on_wait=services.wait_by_reply(respond, replace="always"),
        )

    async def handle_action_select(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        view = body.get("view")
        if not isinstance(view, dict):
            return  # a modal's select, clicked anywhere else: nothing Sweep drew
        selected = (action.get("selected_option") or {}).get("value", "MOVE")
        metadata = view.get("private_metadata", "")
        try:
            decode(ModalMetadata, metadata)
        except PayloadError:
            return
        redraw_form(services, client, view, label="action select", metadata=metadata, action=selected)

    async def handle_edit_draft_button(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        view = body.get("view")
        if not isinstance(view, dict):
            return  # a modal's button, clicked anywhere else: nothing Sweep drew
        try:
            metadata = decode(ModalMetadata, view.get("private_metadata", ""))
        except PayloadError:
            return
        back = encode(ModalMetadata(preview_id=metadata.preview_id, draft=metadata.draft, stage="form"))
        redraw_form(services, client, view, label="edit draft", metadata=back, draft=metadata.draft)

    app.action(ActionId.CANCEL_JOB.value)(handle_cancel_button)
    app.action(ActionId.CONFIRM_CREATE.value)(handle_confirm_create_button)
    app.action(ActionId.DISMISS_PREVIEW.value)(handle_dismiss_preview_button)
    app.action(ActionId.LIST_PAGE.value)(handle_list_page_button)
    app.action(ActionId.ACTION_SELECT.value)(handle_action_select)
    app.action(ActionId.EDIT_DRAFT.value)(handle_edit_draft_button)
