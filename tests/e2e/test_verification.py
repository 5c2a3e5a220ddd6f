"""Nothing unverified acts, and nothing malformed crashes: signed and unsigned HTTP against the bot process.

Every unverified request names a `response_url` on a local trap server (and, for interactions, a user
and a channel outside `SWEEP_CHANNELS`): the bot must answer 401 and the trap must receive nothing, nor
may the local Slack record any Web API call. A signed request Sweep cannot handle is a 400. Each refusal
is one INFO line in the bot's log, never an ERROR or a traceback. A barrier request at the end proves
the trap does receive what the bot really sends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
import pytest_asyncio
from aiohttp import web
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import request_verified, unexpected_error_handler
from bot.inbound import VERIFIED_KEY
from bot.policy import Policy
from tests.e2e.conftest import CHANNEL, OPERATOR, OTHER_CHANNEL, SIGNING_SECRET, Stack, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

FORM = "application/x-www-form-urlencoded"


@dataclass
class Trap:
    """A local HTTP server that records every request it gets (where a forged response_url points)."""

    url: str
    received: list[tuple[str, str]] = field(default_factory=list)

    def paths(self) -> list[str]:
        """Return the paths requested so far."""
        return [path for path, _ in self.received]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def trap() -> AsyncIterator[Trap]:
    """Run the trap server for the module."""
    found = Trap(url="")

    async def record(request: web.Request) -> web.Response:
        found.received.append((request.path, await request.text()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    found.url = f"http://127.0.0.1:{port}"
    try:
        yield found
    finally:
        await runner.cleanup()


def signed(body: bytes, timestamp: str, *, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Return headers signing `body` with exactly this timestamp string (however malformed)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"Content-Type": FORM, "X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": f"v0={digest}"}


def command_body(trap: Trap, name: str, **fields: str | None) -> bytes:
    """Return a slash command form whose response_url is the trap."""
    form = {
        "command": "/sweep",
        "text": "list",
        "user_id": OPERATOR,
        "channel_id": CHANNEL,
        "team_id": "T0TEAM",
        "trigger_id": "1.2.3",
        "response_url": f"{trap.url}/{name}",
        **fields,
    }
    return urlencode({k: v for k, v in form.items() if v is not None}).encode()


def action_body(**overrides: Any) -> bytes:
    """Return a block_actions form with a user and a channel Sweep does not answer in, no response_url.

    Signed, it is a 400 (a message's block_actions always has a response_url); unsigned, a 401.
    """
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": OPERATOR},
        "channel": {"id": OTHER_CHANNEL},
        "team": {"id": "T0TEAM"},
        "trigger_id": "1.2.3",
        "actions": [{"action_id": "sweep_cancel_job", "value": "{}", "type": "button", "block_id": "b"}],
    }
    payload.update(overrides)
    return urlencode({"payload": json.dumps({k: v for k, v in payload.items() if v is not None})}).encode()


def new_log(stack: Stack, before: int) -> list[str]:
    """Return the bot's log lines written since it was `before` characters long."""
    return stack.bot.logs()[before:].splitlines()


async def assert_refused(
    stack: Stack, trap: Trap, body: bytes, headers: dict[str, str], *, status: int
) -> None:
    """Send one request; check its status, that nothing went out, and the one INFO line it logged."""
    calls_before = len(stack.slack.state.calls())
    trapped_before = len(trap.received)
    log_before = len(stack.bot.logs())
    response = await stack.driver.raw(body, headers)
    assert response.status == status, f"HTTP {response.status}: {response.body[:300]}"
    # The refusal is logged before the answer is sent; poll only against the log file's flush.
    lines = await wait_until(
        lambda: [line for line in new_log(stack, log_before) if "refused a request" in line],
        timeout=5,
        what="the refusal's log line",
    )
    logged = new_log(stack, log_before)
    assert len(lines) == 1 and " INFO " in lines[0], logged
    assert f"HTTP {status}" in lines[0], lines
    assert not [line for line in logged if " ERROR " in line or "Traceback" in line], logged
    assert trap.received[trapped_before:] == [], "the bot called the forged response_url"
    assert stack.slack.state.calls()[calls_before:] == [], "the bot called Slack's Web API"


# ---------------------------------------------------------------------------- item 1: never act unverified


def _now() -> int:
    return int(time.time())


MALFORMED_TIMESTAMPS = {
    "letters": lambda: "abc",
    "empty": lambda: "",
    "exponent": lambda: "1.5e9",
    "decimal": lambda: f"{_now()}.0",
    "500 digits": lambda: "9" * 500,
    "leading zeros beyond 12 digits": lambda: f"000{_now()}",
    "sign": lambda: f"+{_now()}",
    "negative": lambda: "-1",
    "underscore": lambda: f"{_now() // 1000}_{_now() % 1000:03d}",
    "hex": lambda: hex(_now()),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_TIMESTAMPS))
@pytest.mark.parametrize("shape", ["command", "interaction"])
async def test_a_malformed_timestamp_is_401_and_nothing_goes_out(
    stack: Stack, trap: Trap, case: str, shape: str
) -> None:
    body = command_body(trap, f"ts-{case}") if shape == "command" else action_body()
    # Correctly signed over the malformed timestamp: only the timestamp itself can refuse it.
    await assert_refused(stack, trap, body, signed(body, MALFORMED_TIMESTAMPS[case]()), status=401)


async def test_a_non_ascii_digit_timestamp_is_401(stack: Stack, trap: Trap) -> None:
    body = command_body(trap, "ts-arabic-indic")
    timestamp = "".join(chr(0x0660 + int(d)) for d in str(_now()))  # str.isdigit() says yes
    headers = signed(body, timestamp)
    raw_headers = {k: v.encode() if k == "X-Slack-Request-Timestamp" else v for k, v in headers.items()}
    calls_before, trapped_before = len(stack.slack.state.calls()), len(trap.received)
    response = await stack.driver._client.post(stack.bot.events_url, content=body, headers=raw_headers)
    assert response.status_code == 401
    assert trap.received[trapped_before:] == [] and stack.slack.state.calls()[calls_before:] == []


UNVERIFIED = [
    "no headers",
    "no signature",
    "no timestamp",
    "wrong secret",
    "v0=00",
    "uppercase hex",
    "v1 scheme",
    "stale",
    "future",
    "body changed after signing",
    "timestamp changed after signing",
]


def unverified_headers(case: str, body: bytes) -> tuple[bytes, dict[str, str]]:
    """Return the body and headers of one kind of unverified request."""
    now = str(_now())
    good = signed(body, now)
    if case == "no headers":
        return body, {"Content-Type": FORM}
    if case == "no signature":
        return body, {k: v for k, v in good.items() if k != "X-Slack-Signature"}
    if case == "no timestamp":
        return body, {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"}
    if case == "wrong secret":
        return body, signed(body, now, secret="not-the-secret")
    if case == "v0=00":
        return body, {**good, "X-Slack-Signature": "v0=00"}
    if case == "uppercase hex":
        return body, {**good, "X-Slack-Signature": "v0=" + good["X-Slack-Signature"][3:].upper()}
    if case == "v1 scheme":
        return body, {**good, "X-Slack-Signature": "v1=" + good["X-Slack-Signature"][3:]}
    if case == "stale":
        return body, signed(body, str(_now() - 301))
    if case == "future":
        return body, signed(body, str(_now() + 301))
    if case == "body changed after signing":
        return body + b"&x=1", good
    if case == "timestamp changed after signing":
        return body, {**good, "X-Slack-Request-Timestamp": str(_now() - 1)}
    raise AssertionError(case)


@pytest.mark.parametrize("case", UNVERIFIED)
@pytest.mark.parametrize("shape", ["command", "interaction"])
async def test_any_unverified_request_is_401_and_nothing_goes_out(
    stack: Stack, trap: Trap, case: str, shape: str
) -> None:
    body = command_body(trap, f"unverified-{case}") if shape == "command" else action_body()
    sent_body, headers = unverified_headers(case, body)
    await assert_refused(stack, trap, sent_body, headers, status=401)


async def test_a_repeated_signature_header_is_401(stack: Stack, trap: Trap) -> None:
    body = command_body(trap, "repeated-header")
    now = str(_now())
    good = signed(body, now)
    headers = [
        ("Content-Type", FORM),
        ("X-Slack-Request-Timestamp", now),
        ("X-Slack-Request-Timestamp", str(_now() - 1000)),
        ("X-Slack-Signature", good["X-Slack-Signature"]),
    ]
    calls_before, trapped_before = len(stack.slack.state.calls()), len(trap.received)
    response = await stack.driver._client.post(stack.bot.events_url, content=body, headers=headers)
    assert response.status_code == 401
    assert trap.received[trapped_before:] == [] and stack.slack.state.calls()[calls_before:] == []


@pytest.mark.parametrize("signed_too", [False, True])
async def test_an_oversized_body_is_refused_without_a_500(stack: Stack, trap: Trap, signed_too: bool) -> None:
    body = command_body(trap, "oversized", text="x" * 2_000_000)
    headers = signed(body, str(_now())) if signed_too else {"Content-Type": FORM}
    calls_before, trapped_before, log_before = (
        len(stack.slack.state.calls()),
        len(trap.received),
        len(stack.bot.logs()),
    )
    response = await stack.driver.raw(body, headers)
    assert response.status == 413, response.status  # aiohttp's 1 MiB limit, before anything reads the body
    assert trap.received[trapped_before:] == [] and stack.slack.state.calls()[calls_before:] == []
    assert not [line for line in new_log(stack, log_before) if " ERROR " in line or "Traceback" in line]


# ---------------------------------------------------------------------------- item 7: malformed bodies

UNSIGNED_MALFORMED: dict[str, tuple[bytes, str]] = {
    "payload not JSON": (b"payload=%7Bnot-json", FORM),
    "payload a list": (b"payload=%5B1%2C2%5D", FORM),
    "payload a string": (b"payload=%22x%22", FORM),
    "invalid UTF-8": (b"payload=%7B%7D&text=\xff\xfe\xfd", FORM),
    "JSON body": (
        json.dumps({"type": "block_actions", "user": {"id": OPERATOR}}).encode(),
        "application/json",
    ),
}


@pytest.mark.parametrize("case", sorted(UNSIGNED_MALFORMED))
async def test_unsigned_malformed_requests_are_401_with_one_info_line(
    stack: Stack, trap: Trap, case: str
) -> None:
    body, content_type = UNSIGNED_MALFORMED[case]
    headers = {"Content-Type": content_type, "X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00"}
    await assert_refused(stack, trap, body, headers, status=401)


def _payload(payload: Any) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def _signed_malformed(trap: Trap) -> dict[str, tuple[bytes, str]]:
    view_submission = {"type": "view_submission", "user": {"id": OPERATOR}, "team": {"id": "T0TEAM"}}
    return {
        "payload null": (b"payload=null", FORM),
        "payload a list": (b"payload=%5B1%2C2%5D", FORM),
        "payload not JSON": (b"payload=%7Bnot-json", FORM),
        "payload without type": (_payload({"user": {"id": OPERATOR}}), FORM),
        "block_actions without user": (action_body(user=None), FORM),
        "block_actions with a user that is a string": (action_body(user=OPERATOR), FORM),
        "block_actions without actions": (action_body(actions=None), FORM),
        "block_actions with actions not a list": (action_body(actions={"action_id": "x"}), FORM),
        "command without user_id": (command_body(trap, "no-user", user_id=None), FORM),
        "command without channel_id": (command_body(trap, "no-channel", channel_id=None), FORM),
        "command with blank user_id": (command_body(trap, "blank-user", user_id=""), FORM),
        "form sent as application/json": (command_body(trap, "as-json"), "application/json"),
        "no content type": (command_body(trap, "no-content-type"), ""),
        "view_submission without view": (_payload(view_submission), FORM),
        "view_submission with a view without callback_id": (
            _payload({**view_submission, "view": {"id": "V1", "type": "modal"}}),
            FORM,
        ),
        "invalid UTF-8": (b"command=%2Fsweep&user_id=U0OPERATOR&channel_id=C0INCIDENT&text=\xff", FORM),
        "JSON body": (json.dumps({"type": "event_callback"}).encode(), "application/json"),
        "JSON body labelled a form": (json.dumps({"command": "/sweep"}).encode(), FORM),
        "empty body": (b"", FORM),
        "both command and payload": (command_body(trap, "both", payload="{}"), FORM),
    }


SIGNED_MALFORMED_CASES = sorted(_signed_malformed(Trap(url="http://127.0.0.1:9")))


@pytest.mark.parametrize("case", SIGNED_MALFORMED_CASES)
async def test_signed_malformed_requests_are_400_with_one_info_line(
    stack: Stack, trap: Trap, case: str
) -> None:
    body, content_type = _signed_malformed(trap)[case]
    headers = signed(body, str(_now()))
    if content_type:
        headers["Content-Type"] = content_type
    else:
        del headers["Content-Type"]
    await assert_refused(stack, trap, body, headers, status=400)


# ---------------------------------------------------------------------------- the barrier, then the handler


async def test_the_trap_receives_what_the_bot_really_sends(stack: Stack, trap: Trap) -> None:
    """A signed `/sweep list` with the trap as response_url: its answer lands there, and only it."""
    before = list(trap.received)
    body = command_body(trap, "barrier")
    response = await stack.driver.raw(body, signed(body, str(_now())))
    assert response.status == 200, response.body
    await wait_until(lambda: len(trap.received) > len(before), what="the list answer at the trap")
    assert [path for path, _ in trap.received] == [*(p for p, _ in before), "/barrier"]
    assert before == [], f"earlier refused requests reached the trap: {before}"
    assert stack.bot.process is not None and stack.bot.process.poll() is None


@pytest.mark.parametrize("verified", [False, True])
async def test_the_error_handler_answers_only_a_verified_request(trap: Trap, verified: bool) -> None:
    """In process: the same failing body is reported to its response_url only when it was verified."""
    body = command_body(trap, f"handler-{'verified' if verified else 'unverified'}").decode()
    request = AsyncBoltRequest(body=body, headers={"Content-Type": FORM})
    if verified:
        request.context[VERIFIED_KEY] = True
    assert request_verified(request) is verified
    client = AsyncWebClient(token="xoxb-unused", base_url=f"{trap.url}/api/")
    handler = unexpected_error_handler(
        client=client,
        session=None,
        policy=Policy(operators=frozenset({OPERATOR}), channels=frozenset({CHANNEL})),
    )
    before = len(trap.received)
    await handler(RuntimeError("boom"), request.body, request)
    sent = [path for path, _ in trap.received[before:]]
    assert sent == (["/handler-verified"] if verified else [])


async def test_socket_mode_requests_count_as_verified() -> None:
    assert request_verified(AsyncBoltRequest(body={"type": "block_actions"}, mode="socket_mode"))
    assert not request_verified(AsyncBoltRequest(body="command=%2Fsweep", headers={}))
