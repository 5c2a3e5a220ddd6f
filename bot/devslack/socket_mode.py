"""Slack's Socket Mode, locally: `apps.connections.open` and the WebSocket that delivers envelopes.

Behaves like Slack for slack_sdk's aiohttp client (`slack_sdk.socket_mode.aiohttp.SocketModeClient`):
- `apps.connections.open` needs an app-level token (`xapp-…`) in `Authorization: Bearer …` (the
  client sends it there) and answers `{"ok": true, "url": "ws://HOST:PORT/socket/<ticket>"}`. The
  client connects to that URL verbatim (it adds no query parameters; Slack's optional
  `debug_reconnects=true` is accepted and recorded, nothing more). A ticket is good for one
  connection, as Slack's are; the client asks for a new URL whenever it reconnects.
- On connect the server sends `{"type": "hello", …}`. The client pings (`sdk-ping-pong:<time>`)
  right away and every `ping_interval` s and treats a missing pong as a stale session; aiohttp's
  server answers pings by itself (`autoping`).
- `send_envelope()` pushes `{"envelope_id", "type", "payload", "accepts_response_payload"}` to the
  newest open connection and waits (with a deadline) for the ack `{"envelope_id", "payload"?}`.
  Bolt acks only when a listener ran (status 200): an unhandled request gets no ack, so the wait
  times out, as Slack would show the user a timeout.
- `disconnect()` sends `{"type": "disconnect", "reason": …}`: the client opens a new connection.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import WSMsgType, web

from bot.devslack.state import ApiAnswer, FakeSlack, JsonDict, RecordedCall

__all__ = ["Ack", "FakeSocketMode", "SocketConnection"]

#: How long Slack waits for an envelope's ack before telling the user the app did not respond.
ACK_DEADLINE = 3.0


@dataclass
class Ack:
    """The client's answer to one envelope: `payload` is the ack body (`{}` for an empty ack)."""

    envelope_id: str
    connection_id: str
    payload: JsonDict
    at: float


@dataclass
class SocketConnection:
    """One WebSocket session (from a ticket handed out by `apps.connections.open`)."""

    id: str
    url: str
    issued_at: float
    query: dict[str, str] = field(default_factory=dict)
    connected_at: float | None = None
    closed_at: float | None = None
    ws: web.WebSocketResponse | None = field(default=None, repr=False)
    #: Every text frame the client sent that was not an ack (parsed when JSON).
    received: list[Any] = field(default_factory=list)

    @property
    def open(self) -> bool:
        """Return True while the client is connected."""
        return self.connected_at is not None and self.closed_at is None and self.ws is not None


class FakeSocketMode:
    """Slack's Socket Mode server side, sharing `state` (trigger ids, response URLs, recorded calls)."""

    def __init__(self, state: FakeSlack, *, app_token: str | None = None) -> None:
        #: The only app token accepted; None accepts any `xapp-…` token.
        self.app_token = app_token
        self.state = state
        self.connections: dict[str, SocketConnection] = {}
        self.envelopes: list[JsonDict] = []
        self.acks: dict[str, Ack] = {}
        self._waiters: dict[str, asyncio.Future[Ack]] = {}
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ apps.connections.open

    def open_connection(
        self,
        token: str | None,
        params: JsonDict,
        body_kind: Literal["json", "form", "query", "empty"] = "empty",
    ) -> ApiAnswer:
        """Answer `apps.connections.open` (recorded like any Web API call, without the token).

        Injected faults (`FakeSlack.fail`, `rate_limit`, …) do not apply to this method.
        """
        call = RecordedCall("apps.connections.open", dict(params), body_kind, self.state.clock())
        self.state.recorded.append(call)
        if not token:
            body: JsonDict = {"ok": False, "error": "not_authed"}
        elif not token.startswith("xapp-"):
            body = {"ok": False, "error": "not_allowed_token_type"}
        elif self.app_token is not None and token != self.app_token:
            body = {"ok": False, "error": "invalid_auth"}
        elif self.state.base_url is None:
            raise RuntimeError("Socket Mode needs a running fake: use running_fake_slack()")
        else:
            ticket = secrets.token_hex(12)
            url = f"ws{self.state.base_url.removeprefix('http')}socket/{ticket}"
            self.connections[ticket] = SocketConnection(ticket, url, self.state.clock())
            body = {"ok": True, "url": url}
        call.response = body
        call.error = None if body["ok"] else str(body["error"])
        return ApiAnswer(200, body)

    # ------------------------------------------------------------------ the WebSocket

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """Serve `/socket/{ticket}`: hello, then record acks until the client leaves."""
        connection = self.connections.get(request.match_info["ticket"])
        if connection is None or connection.connected_at is not None:
            return web.Response(status=401, text="invalid or used ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection.ws = ws
        connection.query = dict(request.query)
        connection.connected_at = self.state.clock()
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.open_connections()),
                "debug_info": {
                    "host": "applink-fake",
                    "build_number": 1,
                    "approximate_connection_time": 3600,
                },
                "connection_info": {"app_id": self.state.app_id},
            }
        )
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._received(connection, message.data)
        finally:
            connection.closed_at = self.state.clock()
        return ws

    def _received(self, connection: SocketConnection, data: str) -> None:
        try:
            parsed = json.loads(data)
        except json.JSONDecodeError:
            connection.received.append(data)
            return
        envelope_id = parsed.get("envelope_id") if isinstance(parsed, dict) else None
        if not isinstance(envelope_id, str):
            connection.received.append(parsed)
            return
        payload = parsed.get("payload")
        ack = Ack(envelope_id, connection.id, dict(payload) if isinstance(payload, dict) else {}, time.time())
        self.acks.setdefault(envelope_id, ack)  # Slack uses the first ack only
        waiter = self._waiters.get(envelope_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(ack)

    async def close_all(self) -> None:
        """Close every open connection (the server is shutting down)."""
        for connection in self.open_connections():
            if connection.ws is not None:
                await connection.ws.close(code=1001, message=b"server shutdown")

    # ------------------------------------------------------------------ inspection

    def open_connections(self) -> list[SocketConnection]:
        """Return the connections a client holds now, oldest first."""
        return [c for c in self.connections.values() if c.open]

    async def wait_connected(self, *, timeout: float = 10.0, count: int = 1) -> SocketConnection:
        """Wait until `count` connections have been made (hello sent); return the newest open one."""
        deadline = time.monotonic() + timeout
        while True:
            made = [c for c in self.connections.values() if c.connected_at is not None]
            current = self.open_connections()
            if len(made) >= count and current:
                return current[-1]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no Socket Mode connection within {timeout:g} s")
            await asyncio.sleep(0.02)

    # ------------------------------------------------------------------ envelopes

    async def send_envelope(
        self,
        kind: str,
        payload: JsonDict,
        *,
        accepts_response_payload: bool = True,
        timeout: float = ACK_DEADLINE,
    ) -> JsonDict:
        """Push an envelope to the newest connection; return the ack's payload (`{}` when empty).

        Raises TimeoutError when no ack arrives within `timeout` s (Slack's own deadline is 3 s).
        """
        current = self.open_connections()
        if not current or current[-1].ws is None:
            raise RuntimeError("no Socket Mode client is connected")
        envelope_id = f"{next(self._ids)}-{secrets.token_hex(8)}"
        envelope: JsonDict = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
        }
        waiter: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._waiters[envelope_id] = waiter
        self.envelopes.append(envelope)
        try:
            await current[-1].ws.send_json(envelope)
            ack = await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TimeoutError(f"no ack for {kind} envelope {envelope_id} within {timeout:g} s") from None
        finally:
            del self._waiters[envelope_id]
        return ack.payload

    async def send_slash(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str,
        command: str = "/sweep",
        channel_name: str | None = None,
        timeout: float = ACK_DEADLINE,
    ) -> JsonDict:
        """Run `<command> <text>` as Slack does over Socket Mode; return the ack payload.

        Like Slack, an ack carrying a message (`text` or `blocks`) is shown to the user: it is
        recorded as a response with `via="ack"`.
        """
        payload = self.state.slash_command_payload(
            text,
            user_id=user_id,
            channel_id=channel_id,
            channel_name=channel_name or channel_id.lower(),
            command=command,
        )
        ack = await self.send_envelope("slash_commands", payload, timeout=timeout)
        if ack.get("text") or ack.get("blocks"):
            self.state.record_ack(ack, channel_id=channel_id, user_id=user_id)
        return ack

    async def send_interactive(
        self,
        payload: JsonDict,
        *,
        accepts_response_payload: bool | None = None,
        timeout: float = ACK_DEADLINE,
    ) -> JsonDict:
        """Push an interaction (`block_actions`, `view_submission`, …) payload; return the ack payload.

        Slack accepts a response payload for view submissions and suggestions, not for block actions.
        """
        if accepts_response_payload is None:
            accepts_response_payload = payload.get("type") in ("view_submission", "block_suggestion")
        return await self.send_envelope(
            "interactive", payload, accepts_response_payload=accepts_response_payload, timeout=timeout
        )

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Ask the newest connection's client to reconnect, as Slack does every few hours."""
        current = self.open_connections()
        if current and current[-1].ws is not None:
            await current[-1].ws.send_json(
                {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake"}}
            )
