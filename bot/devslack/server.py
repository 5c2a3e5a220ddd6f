"""A local stand-in for Slack's Web API over HTTP (aiohttp): records every call and answers like Slack.

Routes:
- `GET|POST /api/<method>` — the Web API (form, JSON or query parameters; `Authorization: Bearer …`
  or a `token` parameter); always HTTP 200 with `{"ok": …}` unless a fault says otherwise.
- `POST /response/<source>/<team>/<token>` — response URLs handed out by `new_response_url()`.
- `POST /api/apps.connections.open` and `GET /socket/<ticket>` — Socket Mode (see `socket_mode.py`).
- `GET /__fake/calls`, `GET /__fake/messages`, `POST|DELETE /__fake/faults` — inspection and fault
  injection for other processes (the demo, benchmarks).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import asdict
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web

from bot.devslack.socket_mode import FakeSocketMode
from bot.devslack.state import (
    ApiAnswer,
    Ephemeral,
    FakeSlack,
    Fault,
    Message,
    RecordedCall,
    Response,
    View,
)

__all__ = ["FAKE_SLACK_KEY", "RunningFakeSlack", "create_fake_slack_app", "running_fake_slack", "wait_for"]

FAKE_SLACK_KEY = web.AppKey("fake_slack", FakeSlack)
FAKE_SOCKET_KEY = web.AppKey("fake_socket_mode", FakeSocketMode)


async def _read_params(
    request: web.Request,
) -> tuple[dict[str, Any], Literal["json", "form", "query", "empty"]]:
    """Merge query, form and JSON parameters as Slack does (the body wins over the query)."""
    params: dict[str, Any] = dict(request.query)
    raw = await request.read()
    kind: Literal["json", "form", "query", "empty"] = "query" if params else "empty"
    if raw:
        if request.content_type == "application/json":
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = None
            if not isinstance(body, dict):
                raise ValueError("invalid_json")
            params.update(body)
            kind = "json"
        else:
            params.update(parse_qsl(raw.decode(), keep_blank_values=True))
            kind = "form"
    return params, kind


def _token(request: web.Request, params: dict[str, Any]) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header.removeprefix("Bearer ").strip() or None
    token = params.pop("token", None)
    return str(token) if token else None


def _answer(answer: ApiAnswer) -> web.Response:
    if answer.status >= 500:
        return web.Response(status=answer.status, text="upstream error", headers=answer.headers)
    return web.json_response(answer.body, status=answer.status, headers=answer.headers)


def create_fake_slack_app(state: FakeSlack, *, socket: FakeSocketMode | None = None) -> web.Application:
    """Return the aiohttp application serving `state` as Slack's Web API (and Socket Mode)."""
    socket = socket or FakeSocketMode(state)
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app[FAKE_SLACK_KEY] = state
    app[FAKE_SOCKET_KEY] = socket

    async def api(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        try:
            params, kind = await _read_params(request)
        except ValueError:
            return web.json_response({"ok": False, "error": "invalid_json"})
        token = _token(request, params)
        if method == "apps.connections.open":
            return _answer(socket.open_connection(token, params, kind))
        answer = state.handle(method, params, token=token, body_kind=kind)
        if answer.delay > 0:
            await asyncio.sleep(answer.delay)
        return _answer(answer)

    async def response_url(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            body = dict(parse_qsl(raw.decode(), keep_blank_values=True))
            if "payload" in body:
                body = json.loads(body["payload"])
        if not isinstance(body, dict):
            return web.Response(status=400, text="invalid_payload")
        status, text = state.post_response(request.match_info["token"], body)
        return web.Response(status=status, text=text, content_type="text/html")

    async def get_calls(request: web.Request) -> web.Response:
        method = request.query.get("method")
        return web.json_response([_call_json(c) for c in state.calls(method)])

    async def get_messages(request: web.Request) -> web.Response:
        channel = request.query.get("channel")
        return web.json_response(
            [
                {**m.to_api(team_id=state.team_id), "channel": m.channel, "edits": m.edits}
                for m in state.messages(channel)
            ]
        )

    async def post_faults(request: web.Request) -> web.Response:
        try:
            spec = await request.json()
            fault = Fault(**spec)
        except (json.JSONDecodeError, TypeError) as error:
            return web.json_response({"ok": False, "error": f"invalid_fault: {error}"}, status=400)
        state.inject(fault)
        return web.json_response({"ok": True, "faults": [asdict(f) for f in state.faults]})

    async def delete_faults(request: web.Request) -> web.Response:
        state.clear_faults()
        return web.json_response({"ok": True})

    app.router.add_route("*", "/api/{method}", api)
    app.router.add_post("/response/{source}/{team}/{token}", response_url)
    app.router.add_get("/socket/{ticket}", socket.websocket)
    app.router.add_get("/__fake/calls", get_calls)
    app.router.add_get("/__fake/messages", get_messages)
    app.router.add_post("/__fake/faults", post_faults)
    app.router.add_delete("/__fake/faults", delete_faults)

    async def close_sockets(app: web.Application) -> None:
        await app[FAKE_SOCKET_KEY].close_all()

    app.on_shutdown.append(close_sockets)
    return app


def _call_json(call: RecordedCall) -> dict[str, Any]:
    return {
        "method": call.method,
        "params": call.params,
        "body_kind": call.body_kind,
        "at": call.at,
        "status": call.status,
        "error": call.error,
    }


class RunningFakeSlack:
    """A fake Slack listening on a port: `api_url` for the bot, `state` and helpers for the test."""

    def __init__(self, state: FakeSlack, base_url: str, socket: FakeSocketMode | None = None) -> None:
        self.state = state
        self.base_url = base_url
        self.api_url = f"{base_url}api/"
        #: Socket Mode: `await socket.wait_connected()`, `await socket.send_slash(…)`, …
        self.socket = socket or FakeSocketMode(state)

    # Inspection (see FakeSlack for details).
    def calls(self, method: str | None = None) -> list[RecordedCall]:
        """Return the recorded Web API calls (all, or to `method`)."""
        return self.state.calls(method)

    def messages(self, channel: str | None = None) -> list[Message]:
        """Return the latest version of every message in `channel` (or all), replies included."""
        return self.state.messages(channel)

    def top_level(self, channel: str | None = None) -> list[Message]:
        """Return the messages that are not thread replies."""
        return self.state.top_level(channel)

    def thread(self, channel: str, ts: str) -> list[Message]:
        """Return a thread: parent then replies."""
        return self.state.thread(channel, ts)

    def ephemerals(self, user: str | None = None) -> list[Ephemeral]:
        """Return chat.postEphemeral messages."""
        return self.state.ephemerals(user)

    def responses(self, user: str | None = None) -> list[Response]:
        """Return response_url messages and slash command ack bodies."""
        return self.state.responses(user)

    def views(self, user: str | None = None) -> list[View]:
        """Return the open modals."""
        return self.state.views(user)

    def new_response_url(
        self,
        *,
        source: str = "commands",
        channel_id: str | None = None,
        user_id: str | None = None,
        message_ts: str | None = None,
    ) -> str:
        """Return a fresh response_url served by this fake."""
        return self.state.new_response_url(
            source=source, channel_id=channel_id, user_id=user_id, message_ts=message_ts
        )

    # Fault injection.
    def rate_limit(self, method: str = "*", *, retry_after: int = 1, times: int | None = 1) -> None:
        """Answer the next `times` calls to `method` with HTTP 429 and `Retry-After`."""
        self.state.rate_limit(method, retry_after=retry_after, times=times)

    def fail(self, method: str = "*", error: str = "internal_error", *, times: int | None = 1) -> None:
        """Answer the next `times` calls to `method` with Slack error `error`."""
        self.state.fail(method, error, times=times)

    def http_error(self, method: str = "*", status: int = 503, *, times: int | None = 1) -> None:
        """Answer the next `times` calls to `method` with an HTTP 5xx."""
        self.state.http_error(method, status, times=times)

    def slow_down(self, method: str = "*", seconds: float = 0.5, *, times: int | None = None) -> None:
        """Delay answers to `method`."""
        self.state.slow_down(method, seconds, times=times)

    def clear_faults(self) -> None:
        """Forget every injected fault."""
        self.state.clear_faults()

    async def wait_for(
        self, predicate: Callable[[], Any], *, timeout: float = 5.0, interval: float = 0.02, message: str = ""
    ) -> Any:
        """Poll `predicate` until truthy (returned), or raise TimeoutError after `timeout` s."""
        return await wait_for(predicate, timeout=timeout, interval=interval, message=message)


async def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 5.0, interval: float = 0.02, message: str = ""
) -> Any:
    """Poll `predicate` until truthy (returned), or raise TimeoutError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(message or f"condition not met within {timeout:g} s")
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running_fake_slack(
    *,
    bot_token: str = "xoxb-test",  # noqa: S107 - the fake's own token, not a secret
    host: str = "127.0.0.1",
    port: int = 0,
    usergroups: Mapping[str, Iterable[str]] | None = None,
    missing_channels: Iterable[str] = (),
    state: FakeSlack | None = None,
    app_token: str | None = None,
    **options: Any,
) -> AsyncIterator[RunningFakeSlack]:
    """Serve a fake Slack on `host:port` (0 = a free port) for the duration of the block.

    Socket Mode accepts only `app_token` when given, else any `xapp-…` token.
    """
    fake = state or FakeSlack(
        bot_token=bot_token, usergroups=usergroups, missing_channels=missing_channels, **options
    )
    socket = FakeSocketMode(fake, app_token=app_token)
    runner = web.AppRunner(create_fake_slack_app(fake, socket=socket), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        bound_port = int(runner.addresses[0][1])
        fake.base_url = f"http://{host}:{bound_port}/"
        yield RunningFakeSlack(fake, fake.base_url, socket)
    finally:
        await runner.cleanup()


# ------------------------------------------------------------------------------ `sweep-bot devslack`

DEV_BOT_TOKEN = "xoxb-sweep-dev"  # noqa: S105 - the local Slack's well-known development token
DEV_SIGNING_SECRET = "sweep-dev-signing-secret"  # noqa: S105 - signs requests to a local bot only


def _parser() -> Any:
    import argparse

    parser = argparse.ArgumentParser(
        prog="sweep-bot devslack",
        description="Run the local Slack stand-in: Slack's Web API (and Socket Mode) for `sweep-bot serve`. "
        "Lines typed here (`/sweep help`) are sent to the bot as signed slash commands.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port (default 9000; 0 picks a free one)")
    parser.add_argument(
        "--bot-token", default=DEV_BOT_TOKEN, help=f"the bot token to accept (default {DEV_BOT_TOKEN})"
    )
    parser.add_argument(
        "--signing-secret",
        default=DEV_SIGNING_SECRET,
        help="secret to sign slash commands with (the bot's SLACK_SIGNING_SECRET)",
    )
    parser.add_argument(
        "--bot-url", default="http://127.0.0.1:3000/slack/events", help="where typed slash commands go"
    )
    parser.add_argument("--user", default="U0DEVOPERATOR", help="who types the slash commands")
    parser.add_argument("--channel", default="C0DEVINCIDENT", help="the channel they are typed in")
    return parser


def _banner(slack: RunningFakeSlack, args: Any) -> str:
    api = slack.api_url
    return (
        "Local Slack stand-in (Web API, response URLs, Socket Mode)\n"
        f"  Web API:    {api}\n"
        f"  bot token:  {args.bot_token} (the only one it accepts); Socket Mode takes any xapp-… token\n"
        f"  inspect:    {slack.base_url}__fake/calls, {slack.base_url}__fake/messages; "
        f"faults: POST {slack.base_url}__fake/faults\n"
        "Run the bot against it (the simulator in a third terminal: sweep-bot simulator):\n"
        f"  SLACK_API_URL={api} SLACK_BOT_TOKEN={args.bot_token} \\\n"
        f"  SLACK_SIGNING_SECRET={args.signing_secret} \\\n"
        "  CLOUDFLARE_BASE_URL=http://127.0.0.1:8787/client/v4 CLOUDFLARE_API_TOKEN=sweep-dev-token \\\n"
        f"  CLOUDFLARE_ACCOUNT_ID=devaccount SWEEP_OPERATORS={args.user} sweep-bot serve --http --port 3000\n"
        f"Type a slash command here (e.g. /sweep help): it is signed and sent to {args.bot_url} "
        f"as {args.user} in {args.channel}; what the bot posts is printed below."
    )


def _print_events(state: FakeSlack, seen: int) -> int:
    from bot.devslack.render import render_message, render_view

    for event in state.events[seen:]:
        data = event.data
        if event.kind in {"message", "update"}:
            where = "thread reply" if data.get("thread_ts") else f"#{event.channel}"
            edited = " (edited)" if event.kind == "update" else ""
            print(f"\n{where} · Sweep{edited}:\n{render_message(data, prefix='  ┃ ')}", flush=True)
        elif event.kind in {"ephemeral", "response"}:
            print(f"\n(only you can see this) Sweep:\n{render_message(data, prefix='  │ ')}", flush=True)
        elif event.kind in {"view_open", "view_update", "view_push"}:
            print(f"\n[modal]\n{render_view(data, prefix='  ')}", flush=True)
    return len(state.events)


async def _serve_devslack(args: Any) -> None:

    from bot.devslack.driver import SlackDriver

    async with running_fake_slack(
        bot_token=args.bot_token, host=args.host, port=args.port, trigger_ttl=30.0
    ) as slack:
        print(_banner(slack, args), flush=True)
        lines = _stdin_lines()
        async with SlackDriver(
            args.bot_url, args.signing_secret, slack, user_id=args.user, channel_id=args.channel
        ) as driver:
            seen = 0
            while True:
                try:
                    line = await asyncio.wait_for(lines.get(), timeout=0.2)
                except TimeoutError:
                    seen = _print_events(slack.state, seen)
                    continue
                if line is None:  # stdin closed: keep serving the Web API
                    await asyncio.Event().wait()
                    return
                command, _, text = line.strip().partition(" ")
                if command.startswith("/"):
                    driver.command = command
                    try:
                        answer = await driver.slash(text)
                        print(
                            f"(the bot answered HTTP {answer.status} in {answer.elapsed * 1000:.0f} ms)",
                            flush=True,
                        )
                    except Exception as error:  # noqa: BLE001 - the bot may not be running yet
                        print(
                            f"could not reach the bot at {args.bot_url} ({type(error).__name__})", flush=True
                        )
                elif command:
                    print("type a slash command, e.g. /sweep help", flush=True)
                seen = _print_events(slack.state, seen)


def _stdin_lines() -> asyncio.Queue[str | None]:
    """Return a queue of the lines typed on stdin (None at its end), read by a daemon thread.

    A daemon thread, not the loop's executor: a blocked read must not keep Ctrl-C from exiting.
    """
    import sys
    import threading

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="devslack-stdin", daemon=True).start()
    return queue


def main(argv: list[str] | None = None) -> int:
    """Run `sweep-bot devslack` until Ctrl-C; return the exit code."""
    import sys

    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if not 0 <= args.port <= 65535:
        print("sweep-bot devslack: --port must be a whole number from 0 to 65535", file=sys.stderr)
        return 2
    try:
        asyncio.run(_serve_devslack(args))
    except KeyboardInterrupt:
        pass
    except OSError as error:
        print(
            f"sweep-bot devslack: cannot listen on {args.host}:{args.port} ({error.strerror or error})",
            file=sys.stderr,
        )
        return 2
    return 0
