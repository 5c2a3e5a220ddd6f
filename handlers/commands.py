"""The `/sweep` slash command: parse, acknowledge, then act."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from blocks.create_modal import build_create_modal
from blocks.errors import build_refusal, build_usage_error
from blocks.help import build_help
from blocks.job_card import build_status_card
from blocks.job_list import build_job_list
from blocks.notice import build_notice
from blocks.preview import build_inline_preview
from bot.cloudflare.errors import NotFoundError
from bot.grammar import (
    CancelCommand,
    CreateCommand,
    HelpCommand,
    ListCommand,
    NewCommand,
    StatusCommand,
    UsageError,
    WatchCommand,
    parse_command,
)
from bot.payloads import ConfirmCreateValue, ModalMetadata, encode
from bot.policy import Operation
from handlers import flows
from handlers._common import Services, refuse, reply_ephemeral, report_by_reply

LIST_PAGE_SIZE = 10


def register(app: AsyncApp, services: Services) -> None:
    """Attach the `/sweep` listener."""

    async def handle_sweep_command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        user_id, channel_id = command["user_id"], command["channel_id"]
        try:
            parsed = parse_command(command.get("text", ""), now=services.clock())
        except UsageError as error:
            await ack(**build_usage_error(error))
            return
        in_channel = services.may_view(channel_id)
        if not in_channel.allowed:
            await ack(**build_refusal(in_channel.reason))
            return
        if isinstance(parsed, HelpCommand):
            await ack(**build_help())
            return
        await ack()

        async def act() -> None:
            await _dispatch(
                parsed,
                user_id=user_id,
                channel_id=channel_id,
                command=command,
                respond=respond,
                client=client,
            )

        # views.open must beat the trigger id's 3 s expiry, so the create form never waits.
        services.after_ack(
            act,
            label=f"/sweep {type(parsed).__name__}",
            on_error=report_by_reply(respond),
            urgent=isinstance(parsed, NewCommand),
            on_wait=services.wait_by_reply(respond, replace="after_first"),
        )

    async def _dispatch(
        parsed: object,
        *,
        user_id: str,
        channel_id: str,
        command: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        if isinstance(parsed, NewCommand):
            decision = await services.may_operate(user_id, channel_id, Operation.OPEN_FORM)
            if not decision.allowed:
                await refuse(respond, services, user_id, "open create form", channel_id, decision.reason)
                return
            form_id = await services.jobs.open_form(requester=user_id, channel_id=channel_id)
            metadata = encode(ModalMetadata(preview_id=form_id, draft=None, stage="form"))
            await client.views_open(
                trigger_id=command["trigger_id"],
                view=build_create_modal(metadata=metadata, now=services.clock()),
            )
        elif isinstance(parsed, CreateCommand):
            decision = await services.may_operate(user_id, channel_id)
            if not decision.allowed:
                await refuse(respond, services, user_id, "create", channel_id, decision.reason)
                return
            preview = await services.jobs.preview(parsed.draft, requester=user_id, channel_id=channel_id)
            confirm_value = encode(ConfirmCreateValue(preview_id=preview.id))
            message = build_inline_preview(
                draft=parsed.draft,
                preview=preview.result,
                limit=services.jobs.preview_limit,
                confirm_value=confirm_value,
                now=services.clock(),
            )
            await reply_ephemeral(respond, message)
        elif isinstance(parsed, ListCommand):
            page = await services.jobs.list_jobs(
                actor=user_id,
                channel_id=channel_id,
                status=parsed.status,
                action_type=parsed.action_type,
                page=1,
                per_page=LIST_PAGE_SIZE,
            )
            message = build_job_list(
                page.items,
                page=1,
                has_more=len(page.items) == LIST_PAGE_SIZE,
                status=parsed.status,
                action_type=parsed.action_type,
                now=services.clock(),
            )
            await reply_ephemeral(respond, message)
        elif isinstance(parsed, StatusCommand):
            try:
                job, tracked = await services.jobs.status(parsed.job_id, actor=user_id, channel_id=channel_id)
            except NotFoundError:
                await reply_ephemeral(
                    respond, build_notice(f"No job `{parsed.job_id}` exists in this account.")
                )
                return
            await reply_ephemeral(respond, build_status_card(tracked or job, now=services.clock()))
        elif isinstance(parsed, CancelCommand):
            await flows.cancel_job(
                services, respond, job_id=parsed.job_id, user_id=user_id, channel_id=channel_id
            )
        elif isinstance(parsed, WatchCommand):
            decision = await services.may_operate(user_id, channel_id, Operation.WATCH)
            if not decision.allowed:
                await refuse(
                    respond, services, user_id, f"watch {parsed.job_id}", channel_id, decision.reason
                )
                return
            try:
                tracked, is_new = await services.jobs.watch(
                    parsed.job_id, requester=user_id, channel_id=channel_id
                )
            except NotFoundError:
                await reply_ephemeral(
                    respond, build_notice(f"No job `{parsed.job_id}` exists in this account.")
                )
                return
            if is_new:
                text = f"Watching job `{tracked.job_id}`: its card is being posted in this channel."
            else:
                text = f"Job `{tracked.job_id}` is already tracked; its card is in <#{tracked.channel_id}>."
            await reply_ephemeral(respond, build_notice(text))

    app.command("/sweep")(handle_sweep_command)
