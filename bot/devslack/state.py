"""The fake Slack's memory and rules: messages, views, response URLs, user groups, faults, recorded calls.

`FakeSlack.handle()` answers one Web API call the way Slack does (a JSON body, an HTTP status and
headers); `bot/devslack/server.py` puts it behind HTTP. Everything here is synchronous and in memory,
so tests can also inspect and steer it directly.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "ApiAnswer",
    "Ephemeral",
    "Event",
    "FakeSlack",
    "Fault",
    "Message",
    "RecordedCall",
    "Response",
    "SlackCallError",
    "View",
]

JsonDict = dict[str, Any]
Clock = Callable[[], float]

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_TEXT = 40_000
RESPONSE_URL_USES = 5
RESPONSE_URL_LIFETIME = 30 * 60.0


class SlackCallError(Exception):
    """A Web API call fails with Slack's `error` code (HTTP 200 unless `status` says otherwise)."""

    def __init__(self, code: str, *, status: int = 200, messages: Iterable[str] = ()) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.messages = list(messages)


@dataclass(frozen=True)
class ApiAnswer:
    """What the fake answers to one call: HTTP status, JSON body, extra headers, delay before answering."""

    status: int
    body: JsonDict
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class RecordedCall:
    """One Web API call as the fake received it, and how it answered."""

    method: str
    params: JsonDict
    body_kind: Literal["json", "form", "query", "empty"]
    at: float
    status: int = 200
    error: str | None = None
    response: JsonDict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Return True when the call succeeded."""
        return self.error is None


@dataclass
class Fault:
    """A failure for the next `times` calls to `method` (`*` = any method; `times=None` = forever)."""

    method: str
    kind: Literal["ratelimited", "error", "http", "latency"]
    times: int | None = 1
    error: str = "internal_error"
    status: int = 500
    retry_after: int = 1
    latency: float = 0.0

    def matches(self, method: str) -> bool:
        """Return True when this fault applies to a call of `method`."""
        return self.method in ("*", method) and (self.times is None or self.times > 0)


@dataclass
class Message:
    """A channel message (or thread reply) as the fake holds it; `versions` are earlier contents."""

    channel: str
    ts: str
    text: str
    blocks: list[JsonDict]
    user: str
    bot_id: str | None = None
    app_id: str | None = None
    thread_ts: str | None = None
    metadata: JsonDict | None = None
    versions: list[JsonDict] = field(default_factory=list)
    edited_ts: str | None = None
    deleted: bool = False

    @property
    def edits(self) -> int:
        """Return how many times the message was edited."""
        return len(self.versions)

    @property
    def is_reply(self) -> bool:
        """Return True for a thread reply (not the thread's parent)."""
        return self.thread_ts is not None and self.thread_ts != self.ts

    def to_api(self, *, team_id: str, include_metadata: bool = True) -> JsonDict:
        """Return the message as conversations.history / chat.postMessage show it."""
        out: JsonDict = {
            "type": "message",
            "user": self.user,
            "text": self.text,
            "ts": self.ts,
            "team": team_id,
        }
        if self.bot_id is not None:
            out["bot_id"] = self.bot_id
            out["app_id"] = self.app_id
        if self.blocks:
            out["blocks"] = self.blocks
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
        if self.edited_ts is not None:
            out["edited"] = {"user": self.user, "ts": self.edited_ts}
        if include_metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out


@dataclass
class Ephemeral:
    """A message posted with chat.postEphemeral (only `user` sees it)."""

    channel: str
    user: str
    text: str
    blocks: list[JsonDict]
    message_ts: str
    thread_ts: str | None = None


@dataclass
class Response:
    """A message sent to a response_url (`via="response_url"`) or in a slash command's ack (`via="ack"`)."""

    token: str
    via: Literal["response_url", "ack"]
    channel_id: str | None
    user_id: str | None
    body: JsonDict
    at: float

    @property
    def response_type(self) -> str:
        """Return `ephemeral` (Slack's default) or `in_channel`."""
        return str(self.body.get("response_type") or "ephemeral")

    @property
    def text(self) -> str:
        """Return the message text."""
        return str(self.body.get("text") or "")

    @property
    def blocks(self) -> list[JsonDict]:
        """Return the message blocks."""
        blocks = self.body.get("blocks")
        return list(blocks) if isinstance(blocks, list) else []

    @property
    def replace_original(self) -> bool:
        """Return True when the response replaces the message the action came from."""
        return _truthy(self.body.get("replace_original"))

    @property
    def delete_original(self) -> bool:
        """Return True when the response deletes the message the action came from."""
        return _truthy(self.body.get("delete_original"))


@dataclass
class View:
    """A modal as the fake holds it: `view` is the current dict as Slack returns it, `versions` older ones."""

    id: str
    user_id: str
    view: JsonDict
    versions: list[JsonDict] = field(default_factory=list)
    closed: bool = False
    #: Field errors shown after a submission answered `response_action: errors` (block_id → message).
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """Return the current hash (views.update with another hash gets `hash_conflict`)."""
        return str(self.view["hash"])

    @property
    def callback_id(self) -> str:
        """Return the view's callback_id."""
        return str(self.view.get("callback_id") or "")


@dataclass
class Event:
    """One thing a person in Slack would notice, in order: a post, an edit, an ephemeral, a modal…"""

    kind: Literal[
        "message",
        "update",
        "delete",
        "ephemeral",
        "response",
        "view_open",
        "view_update",
        "view_push",
        "view_close",
    ]
    at: float
    channel: str | None
    user: str | None
    data: JsonDict


@dataclass
class _ResponseUrl:
    token: str
    source: str
    channel_id: str | None
    user_id: str | None
    message_ts: str | None
    created: float
    uses: int = 0


@dataclass
class _Trigger:
    user_id: str | None
    issued: float
    used: bool = False


def _ts_key(ts: str) -> tuple[int, int]:
    """Order message timestamps exactly (a float loses the last microsecond digits)."""
    seconds, _, micros = ts.partition(".")
    try:
        return int(seconds), int(micros.ljust(6, "0")[:6])
    except ValueError:
        return 0, 0


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def _json_field(params: Mapping[str, Any], key: str) -> Any:
    """Return a parameter that may come as JSON (JSON bodies) or as a JSON string (form bodies)."""
    value = params.get(key)
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            return json.loads(value)
        except json.JSONDecodeError as error:
            raise SlackCallError(
                f"invalid_{key}" if key in ("blocks", "view") else "invalid_arguments"
            ) from error
    return value


def _required(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if value is None or str(value) == "":
        raise SlackCallError("invalid_arguments", messages=[f"[ERROR] missing required field: {key}"])
    return str(value)


def _optional(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    return None if value is None or str(value) == "" else str(value)


def _int(params: Mapping[str, Any], key: str, default: int) -> int:
    try:
        return int(params.get(key) or default)
    except (TypeError, ValueError):
        return default


def _page(items: list[JsonDict], params: Mapping[str, Any], default_limit: int) -> tuple[list[JsonDict], str]:
    """Slice a list like Slack's cursor pagination; return the page and the next cursor ('' at the end)."""
    limit = max(1, min(_int(params, "limit", default_limit), 1000))
    cursor = _optional(params, "cursor")
    start = 0
    if cursor:
        try:
            start = int(base64.b64decode(cursor).decode().removeprefix("offset:"))
        except ValueError as error:
            raise SlackCallError("invalid_cursor") from error
    page = items[start : start + limit]
    more = start + limit < len(items)
    next_cursor = base64.b64encode(f"offset:{start + limit}".encode()).decode() if more else ""
    return page, next_cursor


def _validate_blocks(blocks: Any, limit: int) -> list[JsonDict]:
    if blocks is None:
        return []
    if not isinstance(blocks, list) or not all(isinstance(b, dict) and "type" in b for b in blocks):
        raise SlackCallError("invalid_blocks_format")
    if len(blocks) > limit:
        raise SlackCallError(
            "invalid_blocks", messages=[f"[ERROR] must be less than {limit + 1} items [json-pointer:]"]
        )
    from slack_sdk.models.blocks import Block

    errors = []
    for index, block in enumerate(blocks):
        try:
            parsed = Block.parse(block)
            if parsed is not None:
                parsed.to_dict()  # slack_sdk checks Slack's documented limits only here
        except Exception as error:  # noqa: BLE001 - any formation error means Slack would refuse it
            errors.append(f"[ERROR] {error} [json-pointer:/blocks/{index}]")
    if errors:
        raise SlackCallError("invalid_blocks", messages=errors)
    return [dict(b) for b in blocks]


class FakeSlack:
    """An in-memory Slack workspace with one bot, answering Web API calls like Slack.

    Channels exist unless listed in `missing_channels`. Users exist when their id looks like one
    (`U…`/`W…`). `usergroups` maps user group ids (`S…`) to member ids.
    """

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test",  # noqa: S107 - the fake's own token, not a secret
        team_id: str = "T_SWEEP",
        team_name: str = "Sweep Dev",
        team_domain: str = "sweep-dev",
        bot_user_id: str = "U_SWEEPBOT",
        bot_id: str = "B_SWEEP",
        app_id: str = "A_SWEEP",
        usergroups: Mapping[str, Iterable[str]] | None = None,
        users: Mapping[str, Mapping[str, Any]] | None = None,
        missing_channels: Iterable[str] = (),
        trigger_ttl: float = 3.0,
        strict_triggers: bool = True,
        validate_blocks: bool = True,
        clock: Clock = time.time,
    ) -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.usergroups: dict[str, list[str]] = {k: list(v) for k, v in (usergroups or {}).items()}
        self.users: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (users or {}).items()}
        self.missing_channels: set[str] = set(missing_channels)
        self.trigger_ttl = trigger_ttl
        self.strict_triggers = strict_triggers
        self.validate_blocks = validate_blocks
        self.clock = clock
        #: Set by `running_fake_slack` to the server's root URL (e.g. `http://127.0.0.1:PORT/`).
        self.base_url: str | None = None
        self.recorded: list[RecordedCall] = []
        self.events: list[Event] = []
        self.faults: list[Fault] = []
        self._messages: dict[tuple[str, str], Message] = {}
        self._ephemerals: list[Ephemeral] = []
        self._responses: list[Response] = []
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._views: dict[str, View] = {}
        self._triggers: dict[str, _Trigger] = {}
        self._last_ts_us = 0
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ ids

    def next_ts(self) -> str:
        """Return a fresh message ts: the time in microseconds, strictly increasing ("1732345678.000100")."""
        us = max(int(self.clock() * 1_000_000), self._last_ts_us + 100)
        self._last_ts_us = us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def _id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}{secrets.token_hex(2).upper()}"

    def issue_trigger_id(self, user_id: str | None = None) -> str:
        """Return a trigger_id as Slack puts in a command or interaction (valid `trigger_ttl` s, once)."""
        n = next(self._ids)
        trigger = f"{n}.{self.team_id}.{secrets.token_hex(16)}"
        self._triggers[trigger] = _Trigger(user_id, self.clock())
        return trigger

    def new_response_url(
        self,
        *,
        source: str = "commands",
        channel_id: str | None = None,
        user_id: str | None = None,
        message_ts: str | None = None,
    ) -> str:
        """Return a response_url served by the fake (`source`: `commands` or `actions`, as in Slack's)."""
        if self.base_url is None:
            raise RuntimeError("response URLs need a running fake: use running_fake_slack()")
        token = secrets.token_urlsafe(18)
        self._response_urls[token] = _ResponseUrl(
            token, source, channel_id, user_id, message_ts, self.clock()
        )
        return f"{self.base_url}response/{source}/{self.team_id}/{token}"

    def slash_command_payload(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str,
        channel_name: str,
        command: str = "/sweep",
        team_id: str | None = None,
    ) -> dict[str, str]:
        """Return the fields Slack sends for `<command> <text>`, with a fresh trigger id and response_url."""
        return {
            "token": "verification-token-unused",
            "team_id": team_id or self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": self.app_id,
            "is_enterprise_install": "false",
            "response_url": self.new_response_url(source="commands", channel_id=channel_id, user_id=user_id),
            "trigger_id": self.issue_trigger_id(user_id),
        }

    # ------------------------------------------------------------------ faults

    def inject(self, fault: Fault) -> None:
        """Queue a fault (faults are used in the order they were added)."""
        self.faults.append(fault)

    def rate_limit(self, method: str = "*", *, retry_after: int = 1, times: int | None = 1) -> None:
        """Answer the next `times` calls to `method` with HTTP 429, `Retry-After` and `ratelimited`."""
        self.inject(
            Fault(method, "ratelimited", times, error="ratelimited", status=429, retry_after=retry_after)
        )

    def fail(self, method: str = "*", error: str = "internal_error", *, times: int | None = 1) -> None:
        """Answer the next `times` calls to `method` with `{"ok": false, "error": error}` (HTTP 200)."""
        self.inject(Fault(method, "error", times, error=error))

    def http_error(self, method: str = "*", status: int = 503, *, times: int | None = 1) -> None:
        """Answer the next `times` calls to `method` with an HTTP error status (5xx) and no Slack body."""
        self.inject(Fault(method, "http", times, status=status, error=f"http_{status}"))

    def slow_down(self, method: str = "*", seconds: float = 0.5, *, times: int | None = None) -> None:
        """Delay the answers to `method` by `seconds` (for `times` calls; forever by default)."""
        self.inject(Fault(method, "latency", times, latency=seconds))

    def clear_faults(self) -> None:
        """Forget every injected fault."""
        self.faults.clear()

    def _take_faults(self, method: str) -> tuple[Fault | None, float]:
        failure: Fault | None = None
        delay = 0.0
        for fault in list(self.faults):
            if not fault.matches(method):
                continue
            if fault.kind == "latency":
                delay += fault.latency
            elif failure is None:
                failure = fault
            else:
                continue
            if fault.times is not None:
                fault.times -= 1
        self.faults = [f for f in self.faults if f.times is None or f.times > 0]
        return failure, delay

    # ------------------------------------------------------------------ inspection

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        """Return the recorded Web API calls (all, or those to `method`), oldest first."""
        return [c for c in self.recorded if method is None or c.method == method]

    def messages(self, channel: str | None = None, *, include_deleted: bool = False) -> list[Message]:
        """Return the latest version of every message (top level and thread replies), oldest first."""
        found = [
            m
            for m in self._messages.values()
            if (channel is None or m.channel == channel) and (include_deleted or not m.deleted)
        ]
        return sorted(found, key=lambda m: (m.channel, _ts_key(m.ts)))

    def message(self, channel: str, ts: str) -> Message | None:
        """Return one message (even deleted), or None."""
        return self._messages.get((channel, ts))

    def top_level(self, channel: str | None = None) -> list[Message]:
        """Return the messages that are not thread replies, oldest first."""
        return [m for m in self.messages(channel) if not m.is_reply]

    def thread(self, channel: str, ts: str) -> list[Message]:
        """Return a thread: the parent then its replies, oldest first (deleted ones left out)."""
        parent = self._messages.get((channel, ts))
        replies = [m for m in self.messages(channel) if m.is_reply and m.thread_ts == ts]
        return ([parent] if parent is not None and not parent.deleted else []) + replies

    def ephemerals(self, user: str | None = None) -> list[Ephemeral]:
        """Return the chat.postEphemeral messages (all, or those shown to `user`)."""
        return [e for e in self._ephemerals if user is None or e.user == user]

    def responses(self, user: str | None = None) -> list[Response]:
        """Return what was sent to response URLs and in slash command ack bodies (all, or for `user`)."""
        return [r for r in self._responses if user is None or r.user_id == user]

    def views(self, user: str | None = None, *, include_closed: bool = False) -> list[View]:
        """Return the modals opened (all, or `user`'s), current version of each."""
        return [
            v
            for v in self._views.values()
            if (user is None or v.user_id == user) and (include_closed or not v.closed)
        ]

    def view(self, view_id: str) -> View | None:
        """Return one modal, or None."""
        return self._views.get(view_id)

    def reset(self) -> None:
        """Forget messages, views, responses, calls and faults (configuration stays)."""
        self.recorded.clear()
        self.events.clear()
        self.faults.clear()
        self._messages.clear()
        self._ephemerals.clear()
        self._responses.clear()
        self._response_urls.clear()
        self._views.clear()
        self._triggers.clear()

    def _event(self, kind: Any, channel: str | None, user: str | None, data: JsonDict) -> None:
        self.events.append(Event(kind, self.clock(), channel, user, data))

    # ------------------------------------------------------------------ dispatch

    def handle(
        self,
        method: str,
        params: JsonDict,
        *,
        token: str | None,
        body_kind: Literal["json", "form", "query", "empty"] = "form",
    ) -> ApiAnswer:
        """Answer one Web API call like Slack: faults first, then auth, then the method; record it."""
        call = RecordedCall(method, dict(params), body_kind, self.clock())
        self.recorded.append(call)
        fault, delay = self._take_faults(method)
        answer: ApiAnswer
        if fault is not None and fault.kind == "ratelimited":
            answer = ApiAnswer(
                429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(fault.retry_after)}, delay
            )
        elif fault is not None and fault.kind == "http":
            answer = ApiAnswer(fault.status, {"ok": False, "error": fault.error}, {}, delay)
        elif fault is not None:
            answer = ApiAnswer(200, {"ok": False, "error": fault.error}, {}, delay)
        else:
            try:
                self._authenticate(token)
                handler = self._methods().get(method)
                if handler is None:
                    raise SlackCallError("unknown_method")
                body = {"ok": True, **handler(params)}
                answer = ApiAnswer(200, body, {}, delay)
            except SlackCallError as error:
                body = {"ok": False, "error": error.code}
                if error.messages:
                    body["response_metadata"] = {"messages": error.messages}
                answer = ApiAnswer(error.status, body, {}, delay)
        call.status = answer.status
        call.response = answer.body
        call.error = None if answer.body.get("ok") else str(answer.body.get("error"))
        return answer

    def _authenticate(self, token: str | None) -> None:
        if not token:
            raise SlackCallError("not_authed")
        if token != self.bot_token:
            raise SlackCallError("invalid_auth")

    def _methods(self) -> dict[str, Callable[[JsonDict], JsonDict]]:
        return {
            "api.test": lambda params: {"args": params},
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "conversations.open": self._conversations_open,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "usergroups.users.list": self._usergroups_users_list,
            "users.info": self._users_info,
        }

    def _channel(self, params: Mapping[str, Any]) -> str:
        channel = _required(params, "channel")
        if channel in self.missing_channels:
            raise SlackCallError("channel_not_found")
        return channel

    def _blocks(self, params: Mapping[str, Any], limit: int = MAX_MESSAGE_BLOCKS) -> list[JsonDict] | None:
        if params.get("blocks") is None:
            return None
        blocks = _json_field(params, "blocks")
        if not self.validate_blocks:
            return list(blocks or [])
        return _validate_blocks(blocks, limit)

    @staticmethod
    def _metadata(params: Mapping[str, Any]) -> JsonDict | None:
        if params.get("metadata") is None:
            return None
        try:
            metadata = _json_field(params, "metadata")
        except SlackCallError as error:
            raise SlackCallError("invalid_metadata_format") from error
        if metadata is None:
            return None
        if (
            not isinstance(metadata, dict)
            or not isinstance(metadata.get("event_type"), str)
            or not isinstance(metadata.get("event_payload", {}), dict)
        ):
            raise SlackCallError("invalid_metadata_schema")
        return {
            "event_type": metadata["event_type"],
            "event_payload": dict(metadata.get("event_payload") or {}),
        }

    # ------------------------------------------------------------------ methods

    def _auth_test(self, params: JsonDict) -> JsonDict:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": "sweep",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params)
        text = str(params.get("text") or "")
        blocks = self._blocks(params)
        if not text and not blocks:
            raise SlackCallError("no_text")
        if len(text) > MAX_TEXT:
            raise SlackCallError("msg_too_long")
        metadata = self._metadata(params)
        thread_ts = _optional(params, "thread_ts")
        if thread_ts is not None:
            parent = self._messages.get((channel, thread_ts))
            if parent is None or parent.deleted:
                raise SlackCallError("thread_not_found")
            if parent.is_reply:  # replying to a reply lands in the same thread
                thread_ts = parent.thread_ts
            else:
                parent.thread_ts = parent.ts
        message = Message(
            channel,
            self.next_ts(),
            text,
            blocks or [],
            self.bot_user_id,
            self.bot_id,
            self.app_id,
            thread_ts,
            metadata,
        )
        self._messages[(channel, message.ts)] = message
        api = message.to_api(team_id=self.team_id)
        self._event("message", channel, None, api)
        return {"channel": channel, "ts": message.ts, "message": api}

    def _existing(self, channel: str, ts: str) -> Message:
        message = self._messages.get((channel, ts))
        if message is None or message.deleted:
            raise SlackCallError("message_not_found")
        return message

    def _chat_update(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params)
        message = self._existing(channel, _required(params, "ts"))
        if message.user != self.bot_user_id:
            raise SlackCallError("cant_update_message")
        blocks = self._blocks(params)
        metadata = self._metadata(params)
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_TEXT:
            raise SlackCallError("msg_too_long")
        message.versions.append(
            {"text": message.text, "blocks": message.blocks, "metadata": message.metadata}
        )
        if text is not None:
            message.text = str(text)
        if blocks is not None:  # Slack keeps the previous blocks when none are sent
            message.blocks = blocks
        if metadata is not None:
            message.metadata = metadata
        message.edited_ts = self.next_ts()
        api = message.to_api(team_id=self.team_id)
        self._event("update", channel, None, api)
        return {"channel": channel, "ts": message.ts, "text": message.text, "message": api}

    def _chat_delete(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params)
        message = self._existing(channel, _required(params, "ts"))
        message.deleted = True
        self._event("delete", channel, None, {"ts": message.ts})
        return {"channel": channel, "ts": message.ts}

    def _chat_post_ephemeral(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params)
        user = _required(params, "user")
        text = str(params.get("text") or "")
        blocks = self._blocks(params)
        if not text and not blocks:
            raise SlackCallError("no_text")
        ephemeral = Ephemeral(
            channel, user, text, blocks or [], self.next_ts(), _optional(params, "thread_ts")
        )
        self._ephemerals.append(ephemeral)
        self._event("ephemeral", channel, user, {"text": text, "blocks": ephemeral.blocks})
        return {"message_ts": ephemeral.message_ts}

    def _with_thread_info(self, message: Message, include_metadata: bool) -> JsonDict:
        api = message.to_api(team_id=self.team_id, include_metadata=include_metadata)
        if message.thread_ts == message.ts:
            replies = [m for m in self.messages(message.channel) if m.is_reply and m.thread_ts == message.ts]
            api["reply_count"] = len(replies)
            api["reply_users"] = sorted({m.user for m in replies})
            if replies:
                api["latest_reply"] = replies[-1].ts
        return api

    def _conversations_history(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params)
        include_metadata = _truthy(params.get("include_all_metadata"))
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or "inf")
        found = [m for m in self.top_level(channel) if oldest <= float(m.ts) <= latest]
        found.reverse()  # newest first, like Slack
        items = [self._with_thread_info(m, include_metadata) for m in found]
        page, cursor = _page(items, params, 100)
        return {
            "messages": page,
            "has_more": bool(cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def _conversations_replies(self, params: JsonDict) -> JsonDict:
        channel = self._channel(params)
        ts = _required(params, "ts")
        message = self._messages.get((channel, ts))
        if message is None or message.deleted:
            raise SlackCallError("thread_not_found")
        parent_ts = message.thread_ts if message.is_reply and message.thread_ts else ts
        include_metadata = _truthy(params.get("include_all_metadata"))
        items = [self._with_thread_info(m, include_metadata) for m in self.thread(channel, parent_ts)]
        page, cursor = _page(items, params, 1000)
        return {"messages": page, "has_more": bool(cursor), "response_metadata": {"next_cursor": cursor}}

    def _conversations_open(self, params: JsonDict) -> JsonDict:
        # One user: the bot's DM with them, the same channel every time (`D` + the user id).
        users = [u for u in _required(params, "users").split(",") if u]
        if len(users) != 1:
            raise SlackCallError("not_supported")  # group DMs are not simulated
        [user] = users
        if user not in self.users and user[:1] not in ("U", "W"):
            raise SlackCallError("user_not_found")
        channel = f"D{user}"
        return {"channel": {"id": channel, "is_im": True, "user": user}}

    def _usergroups_users_list(self, params: JsonDict) -> JsonDict:
        group = _required(params, "usergroup")
        if group not in self.usergroups:
            raise SlackCallError("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _users_info(self, params: JsonDict) -> JsonDict:
        user = _required(params, "user")
        if user in self.users:
            return {"user": {"id": user, "team_id": self.team_id, **self.users[user]}}
        if user[:1] not in ("U", "W"):
            raise SlackCallError("user_not_found")
        name = user.lower()
        return {
            "user": {
                "id": user,
                "team_id": self.team_id,
                "name": name,
                "real_name": name,
                "deleted": False,
                "is_bot": user == self.bot_user_id,
                "tz": "Etc/UTC",
                "profile": {"display_name": name, "real_name": name},
            }
        }

    # ------------------------------------------------------------------ views

    def _use_trigger(self, params: Mapping[str, Any]) -> str | None:
        trigger_id = _required(params, "trigger_id")
        trigger = self._triggers.get(trigger_id)
        if trigger is None:
            if self.strict_triggers:
                raise SlackCallError("invalid_trigger_id")
            return None
        if trigger.used or self.clock() - trigger.issued > self.trigger_ttl:
            raise SlackCallError("expired_trigger_id")
        trigger.used = True
        return trigger.user_id

    def _view_payload(self, params: Mapping[str, Any]) -> JsonDict:
        view = _json_field(params, "view")
        if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
            raise SlackCallError(
                "invalid_arguments", messages=["[ERROR] view.type must be modal [json-pointer:/view]"]
            )
        if self.validate_blocks:
            _validate_blocks(view.get("blocks", []), MAX_VIEW_BLOCKS)
            title = view.get("title")
            title_text = title.get("text") if isinstance(title, dict) else None
            if view["type"] == "modal" and (not isinstance(title_text, str) or not 0 < len(title_text) <= 24):
                raise SlackCallError(
                    "invalid_arguments",
                    messages=["[ERROR] must be less than 25 characters [json-pointer:/view/title]"],
                )
            if len(str(view.get("private_metadata") or "")) > 3000:
                raise SlackCallError(
                    "invalid_arguments",
                    messages=["[ERROR] must be less than 3001 characters [json-pointer:/view]"],
                )
        return dict(view)

    def _full_view(self, view_id: str, payload: JsonDict, *, root: str, previous: str | None) -> JsonDict:
        return {
            "id": view_id,
            "team_id": self.team_id,
            "type": payload.get("type", "modal"),
            "title": payload.get("title"),
            "submit": payload.get("submit"),
            "close": payload.get("close"),
            "blocks": payload.get("blocks", []),
            "private_metadata": payload.get("private_metadata", ""),
            "callback_id": payload.get("callback_id", ""),
            "state": {"values": {}},
            "hash": f"{int(self.clock())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(payload.get("clear_on_close", False)),
            "notify_on_close": bool(payload.get("notify_on_close", False)),
            "previous_view_id": previous,
            "root_view_id": root,
            "app_id": self.app_id,
            "external_id": payload.get("external_id", ""),
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }

    def _views_open(self, params: JsonDict) -> JsonDict:
        user = self._use_trigger(params)
        payload = self._view_payload(params)
        view_id = self._id("V")
        full = self._full_view(view_id, payload, root=view_id, previous=None)
        self._views[view_id] = View(view_id, user or "", full)
        self._event("view_open", None, user, full)
        return {"view": full}

    def _views_push(self, params: JsonDict) -> JsonDict:
        user = self._use_trigger(params)
        payload = self._view_payload(params)
        stack = [v for v in self._views.values() if not v.closed and (user is None or v.user_id == user)]
        previous = stack[-1] if stack else None
        view_id = self._id("V")
        root = str(previous.view["root_view_id"]) if previous else view_id
        full = self._full_view(view_id, payload, root=root, previous=previous.id if previous else None)
        self._views[view_id] = View(view_id, user or "", full)
        self._event("view_push", None, user, full)
        return {"view": full}

    def _find_view(self, params: Mapping[str, Any]) -> View:
        view_id = _optional(params, "view_id")
        external_id = _optional(params, "external_id")
        if view_id is None and external_id is None:
            raise SlackCallError("invalid_arguments", messages=["[ERROR] view_id or external_id is required"])
        for view in self._views.values():
            if (view_id is not None and view.id == view_id) or (
                external_id is not None and view.view.get("external_id") == external_id
            ):
                if view.closed:
                    raise SlackCallError("not_found")
                return view
        raise SlackCallError("not_found")

    def _views_update(self, params: JsonDict) -> JsonDict:
        view = self._find_view(params)
        expected = _optional(params, "hash")
        if expected is not None and expected != view.hash:
            raise SlackCallError("hash_conflict")
        payload = self._view_payload(params)
        self.replace_view(view.id, payload)
        self._event("view_update", None, view.user_id, view.view)
        return {"view": view.view}

    # ------------------------------------------------------------------ what Slack does on its side

    def replace_view(self, view_id: str, payload: Mapping[str, Any]) -> View:
        """Replace a modal's content (views.update or `response_action: update`); it gets a new hash."""
        view = self._views[view_id]
        view.versions.append(view.view)
        view.errors = {}
        root = str(view.view["root_view_id"])
        previous = view.view.get("previous_view_id")
        view.view = self._full_view(view_id, dict(payload), root=root, previous=previous)
        return view

    def push_view(self, payload: Mapping[str, Any], *, user_id: str) -> View:
        """Push a modal on top of `user_id`'s stack (`response_action: push`)."""
        stack = [v for v in self._views.values() if not v.closed and v.user_id == user_id]
        previous = stack[-1] if stack else None
        view_id = self._id("V")
        root = str(previous.view["root_view_id"]) if previous else view_id
        full = self._full_view(view_id, dict(payload), root=root, previous=previous.id if previous else None)
        self._views[view_id] = View(view_id, user_id, full)
        self._event("view_push", None, user_id, full)
        return self._views[view_id]

    def close_view(self, view_id: str, *, all_views: bool = False) -> None:
        """Close a modal (plain submission ack, or the Close button); `all_views` closes the whole stack."""
        view = self._views[view_id]
        targets = [v for v in self._views.values() if v.view["root_view_id"] == view.view["root_view_id"]]
        for target in targets if all_views else [view]:
            target.closed = True
        self._event("view_close", None, view.user_id, {"id": view_id, "all": all_views})

    def set_view_state(self, view_id: str, values: Mapping[str, Any]) -> View:
        """Record what the user typed into a modal (`view.state.values`), as Slack does before sending it."""
        view = self._views[view_id]
        view.view = {**view.view, "state": {"values": dict(values)}}
        return view

    def record_ack(self, body: JsonDict, *, channel_id: str | None, user_id: str | None) -> Response:
        """Record a slash command's ack body, which Slack shows like a response_url message."""
        response = Response("", "ack", channel_id, user_id, dict(body), self.clock())
        self._responses.append(response)
        self._apply_response(response, None)
        return response

    def post_response(self, token: str, body: JsonDict) -> tuple[int, str]:
        """Accept a message sent to a response_url; return Slack's HTTP status and text answer."""
        hook = self._response_urls.get(token)
        if hook is None:
            return 404, "no_active_hooks"
        if self.clock() - hook.created > RESPONSE_URL_LIFETIME:
            return 404, "expired_url"
        if hook.uses >= RESPONSE_URL_USES:
            return 404, "used_url"
        if not body.get("text") and not body.get("blocks") and not _truthy(body.get("delete_original")):
            return 400, "no_text"
        hook.uses += 1
        response = Response(token, "response_url", hook.channel_id, hook.user_id, dict(body), self.clock())
        self._responses.append(response)
        self._apply_response(response, hook.message_ts)
        return 200, "ok"

    def _apply_response(self, response: Response, message_ts: str | None) -> None:
        original = (
            self._messages.get((response.channel_id, message_ts))
            if response.channel_id and message_ts
            else None
        )
        if original is not None and not original.deleted and response.delete_original:
            original.deleted = True
            self._event("delete", original.channel, None, {"ts": original.ts})
        elif original is not None and not original.deleted and response.replace_original:
            original.versions.append(
                {"text": original.text, "blocks": original.blocks, "metadata": original.metadata}
            )
            original.text, original.blocks = response.text, response.blocks
            original.edited_ts = self.next_ts()
            self._event("update", original.channel, None, original.to_api(team_id=self.team_id))
        elif response.response_type == "in_channel" and response.channel_id:
            message = Message(
                response.channel_id,
                self.next_ts(),
                response.text,
                response.blocks,
                self.bot_user_id,
                self.bot_id,
                self.app_id,
            )
            self._messages[(message.channel, message.ts)] = message
            self._event("message", message.channel, None, message.to_api(team_id=self.team_id))
        else:
            self._event(
                "response",
                response.channel_id,
                response.user_id,
                {
                    "text": response.text,
                    "blocks": response.blocks,
                    "via": response.via,
                    "token": response.token,
                    "replace_original": response.replace_original,
                },
            )
