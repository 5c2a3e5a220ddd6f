"""The `/sweep` slash command: parse, acknowledge, then hand the subcommand to its feature.

`route` is the command table: per subcommand (the grammar's parser in `bot.grammar.parse_command`
turns the text into one `Command`), its handler and whether it is urgent. It is a `match` over the
`Command` union ending in `assert_never`, so mypy fails on a subcommand nobody handles.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, assert_never

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from blocks.errors import build_refusal, build_usage_error
from blocks.help import build_help
from bot.grammar import (
    CancelCommand,
    Command,
    CreateCommand,
    HelpCommand,
    ListCommand,
    NewCommand,
    StatusCommand,
    UsageError,
    WatchCommand,
    parse_command,
)
from handlers import cancel, create, create_form, jobs_list, watch
from handlers._common import Services, report_by_reply
from handlers._listen import Request


@dataclass(frozen=True)
class Route:
    """What a subcommand does after the ack, and whether it must start at once (not wait its turn)."""

    act: Callable[[Services, Request], Awaitable[None]]
    urgent: bool = False


@dataclass(frozen=True)
class Answer:
    """A subcommand answered in the ack itself (no work after it)."""

    message: dict[str, Any]


def route(command: Command) -> Route | Answer:
    """Return what `command` does: its feature's handler (and urgency), or the ack's own answer."""
    match command:
        case HelpCommand():
            return Answer(build_help())
        case NewCommand() as new:
            # views.open must beat the trigger id's 3 s expiry, so the create form never waits.
            return Route(
                lambda services, request: create_form.handle_new_command(services, request, new), urgent=True
            )
        case CreateCommand() as make:
            return Route(lambda services, request: create.handle_create_command(services, request, make))
        case ListCommand() as listing:
            return Route(lambda services, request: jobs_list.handle_list_command(services, request, listing))
        case StatusCommand() as status:
            return Route(lambda services, request: jobs_list.handle_status_command(services, request, status))
        case CancelCommand() as stop:
            return Route(lambda services, request: cancel.handle_cancel_command(services, request, stop))
        case WatchCommand() as follow:
            return Route(lambda services, request: watch.handle_watch_command(services, request, follow))
        case _:
            assert_never(command)


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
        target = route(parsed)
        if isinstance(target, Answer):
            await ack(**target.message)
            return
        await ack()
        request = Request(
            user_id=user_id,
            channel_id=channel_id,
            respond=respond,
            client=client,
            trigger_id=command.get("trigger_id"),
        )

        async def act() -> None:
            await target.act(services, request)

        services.after_ack(
            act,
            label=f"/sweep {type(parsed).__name__}",
            on_error=report_by_reply(respond),
            urgent=target.urgent,
            on_wait=services.wait_by_reply(respond, replace="after_first"),
        )

    app.command("/sweep")(handle_sweep_command)
