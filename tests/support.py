"""Helpers shared by several test modules: the API documents, a recording transport, block walkers, the
production Slack port pointed at the local Slack, and a small load balancer (`ForwardingProxy`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from openapi_core import OpenAPI
from slack_sdk.web.async_client import AsyncWebClient

from bot.devslack.state import FakeSlack, Message
from bot.slack_port import WebClientSlackPort

ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = ROOT / "spec" / "email-security-investigate.openapi.json"
SDK_OVERLAY_PATH = ROOT / "spec" / "email-security-investigate.sdk-5.9.0-overlay.openapi.json"


def strip_discriminators(node: Any) -> Any:
    """Drop `discriminator`: the document puts it on inline oneOf members without a mapping, which
    openapi-core resolves to a missing schema. Each member's `type` enum keeps the oneOf unambiguous,
    so validation is otherwise unchanged."""
    if isinstance(node, dict):
        return {k: strip_discriminators(v) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [strip_discriminators(v) for v in node]
    return node


def load_openapi(path: Path = SPEC_PATH) -> OpenAPI:
    """Return an OpenAPI document ready for openapi-core validation."""
    return OpenAPI.from_dict(strip_discriminators(json.loads(path.read_text())))


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests to a real transport and keeps every (request, response) exchange."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.exchanges.append((request, response))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def mrkdwn_texts(node: Any) -> list[str]:
    """Return every mrkdwn text in a block tree (plain_text is never parsed by Slack)."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            found.append(node["text"])
        for child in node.values():
            found.extend(mrkdwn_texts(child))
    elif isinstance(node, list):
        for child in node:
            found.extend(mrkdwn_texts(child))
    return found


# The port's methods and the Web API methods they call.
API_METHODS = {
    "post_message": ("chat.postMessage",),
    "update_message": ("chat.update",),
    "find_message_with_metadata": ("conversations.history", "conversations.replies"),
    "open_dm": ("conversations.open",),
}


class LocalSlack(WebClientSlackPort):
    """The production Slack port over HTTP to the local Slack, with what the tests read back from it."""

    def __init__(self, state: FakeSlack, client: AsyncWebClient) -> None:
        super().__init__(client)
        self.state = state
        self.client = client

    @property
    def calls(self) -> list[Any]:
        """Every Web API call the local Slack answered."""
        return list(self.state.recorded)

    def count(self, method: str) -> int:
        """Return how many Web API calls a port method made (failed ones included)."""
        return sum(len(self.state.calls(api)) for api in API_METHODS[method])

    def top_level(self, channel: str | None = None) -> list[Message]:
        """Return the channel messages (the cards), oldest first."""
        return self.state.top_level(channel)

    def replies(self, thread_ts: str) -> list[Message]:
        """Return a thread's replies, oldest first."""
        return [m for m in self.state.messages() if m.is_reply and m.thread_ts == thread_ts]

    async def delete_message(self, channel: str, ts: str) -> None:
        """Delete a message (later edits get `message_not_found` from Slack)."""
        await self.client.chat_delete(channel=channel, ts=ts)


def watching(store: Any, client: Any, notifier: Any) -> Any:
    """Return the use cases over a component test's store, client and notifier, with no request budget.

    `watch` is a use case (the tracker only tracks), so tracker tests start tracking through it.
    """
    from bot.jobs import JobService
    from bot.throttle import RequestBudgets

    return JobService(
        client=client,
        store=store,
        account_id=client.account_id,
        wake_notifier=notifier.wake,
        budgets=RequestBudgets({}),
    )


def card_status(message: Any) -> str:
    """Return the status word a card's fallback text shows (`Move to X: Completed, …` → `completed`)."""
    if message is None or ":" not in message.text:
        return ""
    return str(message.text.split(":", 1)[1].split(",")[0]).strip().lower()


def buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return the interactive elements of some blocks by action_id."""
    found: dict[str, dict[str, Any]] = {}
    for block in blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            found.setdefault(element["action_id"], element)
        accessory = block.get("accessory")
        if accessory and "action_id" in accessory:
            found.setdefault(accessory["action_id"], accessory)
    return found


# ---------------------------------------------------------------------------- a load balancer


@dataclass
class Exchange:
    """One request through a `ForwardingProxy`: what it asked, which backend answered, and when."""

    started: float  # time.monotonic() when the whole request had arrived
    method: str
    target: str  # the request target as sent: path and query
    backend: int | None = None  # index in the proxy's backends (None: none could be reached)
    status: int | None = None  # the backend's HTTP status (None: it died before answering)
    finished: float | None = None  # when the answer was passed on (or could not be)
    refused: list[int] = field(default_factory=list)  # backends tried first that were down

    @property
    def path(self) -> str:
        """Return the request path without its query."""
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """Return the query parameters (the last value of each)."""
        return dict(parse_qsl(urlsplit(self.target).query))


@dataclass
class Hold:
    """An answer a `ForwardingProxy` keeps back: the first request `matches` accepts is forwarded and
    answered by its backend, then `caught` is set and the answer waits for `release()`."""

    matches: Callable[[Exchange, list[Exchange]], bool]
    caught: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    exchange: Exchange | None = None

    def release(self) -> None:
        """Pass the answer on (to a client that may be gone by now)."""
        self.released.set()


class ForwardingProxy:
    """A small HTTP/1.1 load balancer on 127.0.0.1, written on raw asyncio streams.

    Each request's bytes (request line, headers, body) go unchanged to the next backend in turn
    (round robin by request, not by connection, so one keep-alive client still reaches every
    backend), and so does the answer back: Slack's signature headers stay valid. A backend that
    refuses the connection (a replica that is down) is skipped, as a load balancer's health check
    would; one that dies after taking the request gets a 502, since it may have acted on it. Every
    exchange is logged with its times, for tests to read what reached whom and when.
    """

    def __init__(self, backends: Sequence[int]) -> None:
        self.backends = list(backends)  # ports on 127.0.0.1
        self.exchanges: list[Exchange] = []
        self._turn = 0
        self._holds: list[Hold] = []
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        """Return the port the proxy listens on."""
        assert self._server is not None, "the proxy is not started"
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str = "") -> str:
        """Return the proxy's address followed by `path`."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def __aenter__(self) -> ForwardingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for hold in self._holds:
            hold.release()
        if self._server is not None:
            self._server.close()
            for writer in list(self._clients):
                writer.close()
            await self._server.wait_closed()

    def hold(self, matches: Callable[[Exchange, list[Exchange]], bool]) -> Hold:
        """Keep back the answer to the next request `matches(exchange, earlier_exchanges)` accepts."""
        hold = Hold(matches)
        self._holds.append(hold)
        return hold

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while True:
                message = await _read_http_message(reader, response=False)
                if message is None:
                    return
                head, body = message
                method, target = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
                exchange = Exchange(time.monotonic(), method, target)
                earlier = list(self.exchanges)
                self.exchanges.append(exchange)
                hold = next(
                    (h for h in self._holds if h.exchange is None and h.matches(exchange, earlier)), None
                )
                if hold is not None:
                    hold.exchange = exchange
                answer = await self._forward(exchange, head + body)
                if hold is not None:
                    hold.caught.set()
                    await hold.released.wait()
                try:
                    writer.write(answer)
                    await writer.drain()
                finally:
                    exchange.finished = time.monotonic()
                if _header(head, b"connection") == b"close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _forward(self, exchange: Exchange, request: bytes) -> bytes:
        """Send the request to the next backend that takes a connection; return its answer's bytes."""
        count = len(self.backends)
        first = self._turn
        self._turn = (self._turn + 1) % count
        for step in range(count):
            index = (first + step) % count
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.backends[index])
            except OSError:
                exchange.refused.append(index)
                continue  # down: the next one
            exchange.backend = index
            if step:  # the rotation goes on after the backend that took it
                self._turn = (index + 1) % count
            try:
                writer.write(request)
                await writer.drain()
                answer = await _read_http_message(reader, response=True)
            except (ConnectionError, asyncio.IncompleteReadError):
                answer = None
            finally:
                writer.close()
            if answer is None:
                return _BAD_GATEWAY
            exchange.status = int(answer[0].split(b" ", 2)[1])
            return answer[0] + answer[1]
        return _BAD_GATEWAY


_BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n"


def _header(head: bytes, name: bytes) -> bytes | None:
    """Return one header's value (lower-cased) from a message head, or None."""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().lower()
    return None


async def _read_http_message(reader: asyncio.StreamReader, *, response: bool) -> tuple[bytes, bytes] | None:
    """Read one HTTP/1.1 message as (head, body) bytes exactly as sent; None at a clean end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            return None
        raise
    if b"chunked" in (_header(head, b"transfer-encoding") or b""):
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            parts.append(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    parts.append(trailer)
                parts.append(b"\r\n")
                return head, b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
    length = _header(head, b"content-length")
    if length is not None:
        return head, await reader.readexactly(int(length))
    status = int(head.split(b" ", 2)[1]) if response else 0
    if not response or status in (204, 304) or 100 <= status < 200:
        return head, b""
    return head, await reader.read()  # an answer without a length ends with the connection
