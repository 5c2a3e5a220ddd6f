"""The small slice of Slack's Web API the notifier needs, behind a Protocol.

`WebClientSlackPort` implements it over slack_sdk's `AsyncWebClient` and turns Slack's answers
into two error kinds: `SlackPermanentError` (retrying cannot help: the message, channel or
permission is gone) and `SlackTransientError` (try again later; `SlackRateLimitedError` says
when). `RecordingSlackPort` is an in-memory Slack for tests and the demo.

Scopes: `chat:write` to post and edit; `channels:history` and `groups:history` for
`find_message_with_metadata` (the notifier's exactly-once check after a crash); `im:write` (and
`im:history`) only for a delivery kind that sends direct messages (`open_dm`).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

__all__ = [
    "CARD_KILLING_CODES",
    "RecordedMessage",
    "RecordingSlackPort",
    "SlackError",
    "SlackPermanentError",
    "SlackPort",
    "SlackRateLimitedError",
    "SlackTransientError",
    "WebClientSlackPort",
    "metadata_key",
]

# Errors meaning the card (or its channel) is gone for good: stop editing it.
CARD_KILLING_CODES = frozenset(
    {
        "message_not_found",
        "channel_not_found",
        "thread_not_found",
        "is_archived",
        "not_in_channel",
        "cant_update_message",
        "edit_window_closed",
    }
)
# Errors worth retrying: Slack's own trouble, or a credential an operator can fix without losing messages.
TRANSIENT_CODES = frozenset(
    {
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "ratelimited",
        "team_added_to_org",
        "invalid_auth",
        "not_authed",
        "token_expired",
        "account_inactive",
    }
)
HISTORY_PAGE = 200
MAX_HISTORY_PAGES = 10


class SlackError(Exception):
    """A Slack call failed; `code` is Slack's `error` (or a short local description)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class SlackPermanentError(SlackError):
    """Retrying cannot help (e.g. `message_not_found`, `channel_not_found`, `invalid_blocks`)."""

    @property
    def kills_card(self) -> bool:
        """Return True when the card or its channel no longer exists for the bot."""
        return self.code in CARD_KILLING_CODES


class SlackTransientError(SlackError):
    """Slack or the network failed; the same call may work later (and may have taken effect)."""


class SlackRateLimitedError(SlackTransientError):
    """HTTP 429: nothing was done; wait `retry_after` seconds before calling again."""

    def __init__(self, code: str = "ratelimited", *, retry_after: float = 1.0) -> None:
        super().__init__(code)
        self.retry_after = retry_after


def metadata_key(event_payload: Mapping[str, Any]) -> str:
    """Return the identity of a Sweep message from its metadata payload (job or approval, and transition)."""
    job_id = str(event_payload.get("job_id") or event_payload.get("approval_id") or "")
    transition = event_payload.get("transition")
    return job_id if transition is None else f"{job_id}|{transition}"


def _matches(message: Mapping[str, Any], event_type: str, key: str) -> bool:
    metadata = message.get("metadata")
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != event_type:
        return False
    payload = metadata.get("event_payload")
    return isinstance(payload, Mapping) and metadata_key(payload) == key


class SlackPort(Protocol):
    """What the notifier needs from Slack."""

    async def post_message(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Post a message (a thread reply when `thread_ts` is set); return its ts."""

    async def update_message(
        self,
        *,
        channel: str,
        ts: str,
        text: str,
        blocks: list[dict[str, Any]],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Replace a message's text and blocks."""

    async def find_message_with_metadata(
        self, *, channel: str, thread_ts: str | None, event_type: str, key: str
    ) -> str | None:
        """Return the ts of a message (in the thread, or the channel) carrying this metadata, or None."""

    async def open_dm(self, *, user: str) -> str:
        """Return the id of the bot's direct-message channel with a user (opened if need be)."""


def _retry_after(headers: Mapping[str, Any] | None) -> float:
    for name, value in (headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return max(float(value if not isinstance(value, list) else value[0]), 0.0)
            except (TypeError, ValueError):
                break
    return 1.0


def _classify(error: SlackApiError) -> SlackError:
    response = error.response
    status = int(getattr(response, "status_code", 200) or 200)
    # A 5xx from Slack or a proxy often has a plain-text body: then `data` is a str, not a dict.
    data = getattr(response, "data", None)
    if response is None:
        code = "unknown_error"
    elif isinstance(data, Mapping) and data.get("error"):
        code = str(data["error"])
    else:
        code = f"http_{status}"
    if status == 429 or code == "ratelimited":
        return SlackRateLimitedError(code, retry_after=_retry_after(getattr(response, "headers", None)))
    if status >= 500 or code in TRANSIENT_CODES:
        return SlackTransientError(code)
    return SlackPermanentError(code)


class WebClientSlackPort:
    """`SlackPort` over slack_sdk's AsyncWebClient (429s are first retried by its retry handler)."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def _call(self, method: Callable[..., Awaitable[Any]], **kwargs: Any) -> Any:
        try:
            return await method(**kwargs)
        except SlackApiError as error:
            raise _classify(error) from error
        except (TimeoutError, aiohttp.ClientError, OSError, SlackClientError) as error:
            raise SlackTransientError(f"network: {type(error).__name__}") from error

    async def post_message(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Post with chat.postMessage; return the new message's ts."""
        response = await self._call(
            self._client.chat_postMessage,
            channel=channel,
            text=text,
            blocks=blocks,
            thread_ts=thread_ts,
            metadata=metadata,
        )
        return str(response["ts"])

    async def update_message(
        self,
        *,
        channel: str,
        ts: str,
        text: str,
        blocks: list[dict[str, Any]],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Edit with chat.update (metadata re-sent so the card stays recognisable)."""
        await self._call(
            self._client.chat_update, channel=channel, ts=ts, text=text, blocks=blocks, metadata=metadata
        )

    async def find_message_with_metadata(
        self, *, channel: str, thread_ts: str | None, event_type: str, key: str
    ) -> str | None:
        """Search the thread (conversations.replies) or the channel's recent history for the message."""
        cursor: str | None = None
        for _ in range(MAX_HISTORY_PAGES):
            if thread_ts is None:
                response = await self._call(
                    self._client.conversations_history,
                    channel=channel,
                    include_all_metadata=True,
                    limit=HISTORY_PAGE,
                    cursor=cursor,
                )
            else:
                response = await self._call(
                    self._client.conversations_replies,
                    channel=channel,
                    ts=thread_ts,
                    include_all_metadata=True,
                    limit=HISTORY_PAGE,
                    cursor=cursor,
                )
            for message in response.get("messages") or []:
                if isinstance(message, Mapping) and _matches(message, event_type, key):
                    return str(message["ts"])
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return None
        return None

    async def open_dm(self, *, user: str) -> str:
        """Open (or find) the DM with conversations.open; the same user always gives the same channel."""
        response = await self._call(self._client.conversations_open, users=user)
        return str(response["channel"]["id"])


@dataclass
class RecordedMessage:
    """A message the in-memory Slack holds."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    edits: int = 0


@dataclass
class RecordingSlackPort:
    """An in-memory Slack: records every call, keeps messages, and can be told to fail."""

    messages: dict[tuple[str, str], RecordedMessage] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    dead_channels: set[str] = field(default_factory=set)
    failures: list[SlackError] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, *errors: SlackError) -> None:
        """Make the next post/update calls raise these errors, in order."""
        self.failures.extend(errors)

    def delete_message(self, channel: str, ts: str) -> None:
        """Delete a message as a user would (later edits get `message_not_found`)."""
        self.messages.pop((channel, ts), None)

    def _check(self, channel: str) -> None:
        if self.failures:
            raise self.failures.pop(0)
        if channel in self.dead_channels:
            raise SlackPermanentError("channel_not_found")

    async def post_message(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Store the message and return a fresh ts."""
        self.calls.append(("post_message", {"channel": channel, "text": text, "thread_ts": thread_ts}))
        self._check(channel)
        if thread_ts is not None and (channel, thread_ts) not in self.messages:
            raise SlackPermanentError("thread_not_found")
        n = next(self._counter)
        ts = f"{1_700_000_000 + n}.{n:06d}"
        self.messages[(channel, ts)] = RecordedMessage(channel, ts, text, blocks, thread_ts, metadata)
        return ts

    async def update_message(
        self,
        *,
        channel: str,
        ts: str,
        text: str,
        blocks: list[dict[str, Any]],
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Replace a stored message's content."""
        self.calls.append(("update_message", {"channel": channel, "ts": ts, "text": text}))
        self._check(channel)
        message = self.messages.get((channel, ts))
        if message is None:
            raise SlackPermanentError("message_not_found")
        message.text, message.blocks, message.edits = text, blocks, message.edits + 1
        if metadata is not None:
            message.metadata = metadata

    async def find_message_with_metadata(
        self, *, channel: str, thread_ts: str | None, event_type: str, key: str
    ) -> str | None:
        """Search stored messages the way the Web API port searches history."""
        self.calls.append(("find_message_with_metadata", {"channel": channel, "thread_ts": thread_ts}))
        for message in self.messages.values():
            in_scope = message.thread_ts == thread_ts if thread_ts is not None else message.thread_ts is None
            if message.channel == channel and in_scope and _matches(vars(message), event_type, key):
                return message.ts
        return None

    async def open_dm(self, *, user: str) -> str:
        """Return the user's DM channel (`D` + the user id)."""
        self.calls.append(("open_dm", {"user": user}))
        return f"D{user}"

    def count(self, method: str) -> int:
        """Return how many times a method was called."""
        return sum(1 for name, _ in self.calls if name == method)

    def top_level(self, channel: str | None = None) -> list[RecordedMessage]:
        """Return the messages that are not thread replies (the cards)."""
        return [m for m in self.messages.values() if m.thread_ts is None and channel in (None, m.channel)]

    def replies(self, thread_ts: str) -> list[RecordedMessage]:
        """Return a thread's replies, oldest first."""
        return [m for m in self.messages.values() if m.thread_ts == thread_ts]
