"""How a listener is put together, written once: who and where, payload decoding, authorisation.

Every listener acks from itself with no network call, then hands its work to `services.after_ack`
(which runs it once per trigger id). The builders here do that for each kind of Slack request, so
a feature module writes only top-level `handle_…` functions that receive a decoded payload, and
`requires` puts the operator check (audited, worded by `bot.policy.Operation`) in front of one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from slack_bolt.async_app import AsyncAck, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from blocks.errors import build_refusal
from blocks.notice import build_notice
from bot.payloads import ModalMetadata, Payload, PayloadError, decode
from bot.policy import Operation
from handlers._common import Reply, Services, reply_ephemeral, report_by_reply

T = TypeVar("T")
P = TypeVar("P", bound=Payload)

Listener = Callable[..., Awaitable[None]]
ReplaceMode = Literal["always", "never", "after_first"]

GARBLED = build_notice("That button's data could not be read; please run the command again.")


@dataclass(frozen=True)
class Request:
    """A verified request: who sent it, the channel Slack says it came from, and how to answer."""

    user_id: str
    channel_id: str | None
    respond: Reply
    client: AsyncWebClient
    trigger_id: str | None = None


Handler = Callable[[Services, Request, T], Awaitable[None]]


def channel_of(body: dict[str, Any]) -> str | None:
    """Return the channel Slack says an interaction happened in (never one a payload names)."""
    channel = body.get("channel") or {}
    return channel.get("id") if isinstance(channel, dict) else None


def requires(operation: Operation, what: Callable[[T], str]) -> Callable[[Handler[T]], Handler[T]]:
    """Run the handler only for someone allowed to do `operation` here; refuse (audited) otherwise."""

    def wrap(handle: Handler[T]) -> Handler[T]:
        async def guarded(services: Services, request: Request, argument: T) -> None:
            decision = await services.authorise(
                request.user_id, request.channel_id, operation, what=what(argument)
            )
            if not decision.allowed:
                await reply_ephemeral(request.respond, build_refusal(decision.reason))
                return
            await handle(services, request, argument)

        guarded.__doc__ = handle.__doc__
        return guarded

    return wrap


def on_button(
    services: Services,
    payload: type[P],
    handle: Handler[P],
    *,
    label: str,
    replace: ReplaceMode,
    urgent: bool = False,
    garbled_replaces: bool = False,
) -> Listener:
    """Return a block-action listener: ack, then decode the button's value and run `handle` after the ack.

    `replace` says whether a rate-limit notice may replace the clicked message (see
    `Services.wait_by_reply`); `garbled_replaces` whether the "could not be read" notice does.
    """

    async def listener(
        ack: AsyncAck,
        body: dict[str, Any],
        action: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
    ) -> None:
        await ack()
        request = Request(
            user_id=body["user"]["id"],
            channel_id=channel_of(body),
            respond=respond,
            client=client,
            trigger_id=body.get("trigger_id"),
        )
        raw_value = action.get("value", "")

        async def act() -> None:
            try:
                value = decode(payload, raw_value)
            except PayloadError:
                await reply_ephemeral(respond, GARBLED, replace_original=garbled_replaces)
                return
            await handle(services, request, value)

        services.after_ack(
            act,
            label=label,
            on_error=report_by_reply(respond),
            urgent=urgent,
            on_wait=services.wait_by_reply(respond, replace=replace),
        )

    return listener


@dataclass(frozen=True)
class OpenModal:
    """An action inside one of Sweep's open modals, with its metadata decoded."""

    view: dict[str, Any]
    raw_metadata: str
    metadata: ModalMetadata
    action: dict[str, Any]
    client: AsyncWebClient


def on_modal_action(services: Services, handle: Callable[[Services, OpenModal], None]) -> Listener:
    """Return a block-action listener for a control inside a Sweep modal: ack, decode, then `handle`.

    A click anywhere else, or on a modal whose metadata does not decode, is acknowledged and ignored:
    it is nothing Sweep drew. `handle` only schedules work (`services.after_ack`).
    """

    async def listener(
        ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], client: AsyncWebClient
    ) -> None:
        await ack()
        view = body.get("view")
        if not isinstance(view, dict):
            return
        raw = view.get("private_metadata", "")
        try:
            metadata = decode(ModalMetadata, raw)
        except PayloadError:
            return
        handle(
            services, OpenModal(view=view, raw_metadata=raw, metadata=metadata, action=action, client=client)
        )

    return listener


SubmissionHandler = Callable[
    [Services, AsyncAck, dict[str, Any], dict[str, Any], AsyncWebClient, P], Awaitable[None]
]


def on_view_submission(
    services: Services,
    metadata: type[P],
    handle: SubmissionHandler[P],
    *,
    garbled: Callable[[], dict[str, Any]],
) -> Listener:
    """Return a view-submission listener that decodes the modal's `metadata` before `handle` acks.

    A submission whose metadata does not decode is answered in the ack with `garbled()`. The
    handler acks itself: a submission's ack carries the field errors or the next view.
    """

    async def listener(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        try:
            decoded = decode(metadata, view.get("private_metadata", ""))
        except PayloadError:
            await ack(response_action="update", view=garbled())
            return
        await handle(services, ack, body, view, client, decoded)

    return listener


def on_submission(
    services: Services, handle: SubmissionHandler[ModalMetadata], *, garbled: Callable[[], dict[str, Any]]
) -> Listener:
    """Return a create-modal submission listener (`on_view_submission` with `ModalMetadata`)."""
    return on_view_submission(services, ModalMetadata, handle, garbled=garbled)
