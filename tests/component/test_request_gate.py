"""With Bolt's own signature check off, a request `http_application` did not verify reaches nothing.

Sweep verifies every HTTP request itself (`bot.inbound`) and switches Bolt's second HMAC of the same
body off; `SweepApp.async_dispatch` then refuses (401) any request not marked verified. Here the real
app (`create_app`, every listener, a store, the simulator and a local Slack over HTTP) is handed
requests directly, as a route that skipped `http_application` would hand them: forged or correctly
signed, none may reach a listener, start after-ack work or call Slack. The same requests marked as
`http_application` marks them do reach their listener (so the refusals are the gate's doing).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import UNVERIFIED_RESPONSE, bolt_request_from, create_app, fetch_identity
from bot.approval import ApprovalPolicy
from bot.approvals import ApprovalService
from bot.clock import utc_now
from bot.cloudflare.client import CloudflareClient, Credentials
from bot.devslack.driver import FORM, sign
from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.followups import FollowUps
from bot.inbound import VERIFIED_KEY, read_body
from bot.policy import Policy
from bot.simulator.app import RunningSimulator
from bot.store import SqlStore
from handlers._common import Services
from tests.component.conftest import SIMULATOR_TOKEN
from tests.support import watching

SECRET = "gate-signing-secret"
OPERATOR = "U0OPERATOR"
CHANNEL = "C0INCIDENT"
JOB_ID = "00000000-0000-4000-8000-000000000001"


@dataclass
class Gate:
    """The real app and what would show that a request acted."""

    app: AsyncApp
    services: Services
    slack: RunningFakeSlack
    probed: list[str]


@pytest.fixture
async def gate(tmp_path: Path, simulator: RunningSimulator, account_id: str) -> AsyncIterator[Gate]:
    """Build Sweep's app as `open_runtime` does, plus a probe listener on the command `/probe`."""
    async with (
        running_fake_slack() as slack,
        httpx.AsyncClient() as http,
    ):
        store = await SqlStore.open(tmp_path / "sweep.db")
        try:
            web_client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url)
            identity = await fetch_identity(web_client)
            cloudflare = CloudflareClient(
                http,
                account_id=account_id,
                credentials=Credentials(api_token=SecretStr(SIMULATOR_TOKEN)),
                base_url=simulator.base_url,
            )
            jobs = watching(store, cloudflare, SimpleNamespace(wake=lambda: None))
            approvals = ApprovalService(
                jobs=jobs,
                store=store,
                policy=ApprovalPolicy(),
                account_id=account_id,
                wake_notifier=lambda: None,
            )
            services = Services(
                jobs=jobs,
                approvals=approvals,
                policy=Policy(operators=frozenset({OPERATOR}), channels=frozenset({CHANNEL})),
                resolve_group_members=lambda _: _no_members(),
                clock=utc_now,
                follow_ups=FollowUps(),
            )
            app = create_app(client=web_client, signing_secret=SECRET, services=services, identity=identity)
            probed: list[str] = []

            async def probe(ack: AsyncAck, body: dict[str, Any]) -> None:
                probed.append(body["text"])
                await ack()

            app.command("/probe")(probe)
            yield Gate(app=app, services=services, slack=slack, probed=probed)
        finally:
            await store.close()


async def _no_members() -> frozenset[str]:
    return frozenset()


def _command(text: str, command: str = "/sweep") -> bytes:
    form = {
        "command": command,
        "text": text,
        "user_id": OPERATOR,
        "channel_id": CHANNEL,
        "team_id": "T0TEAM",
        "trigger_id": f"1.2.{text}",
        "response_url": "http://127.0.0.1:9/hooks/forged",
    }
    return urlencode(form).encode()


def _interaction(payload: dict[str, Any]) -> bytes:
    base = {"user": {"id": OPERATOR}, "team": {"id": "T0TEAM"}, "trigger_id": "1.2.3"}
    return urlencode({"payload": json.dumps({**base, **payload})}).encode()


BODIES = {
    "/sweep help": _command("help"),
    "/sweep list": _command("list"),
    "/probe": _command("probe", command="/probe"),
    "cancel click": _interaction(
        {
            "type": "block_actions",
            "channel": {"id": CHANNEL},
            "response_url": "http://127.0.0.1:9/hooks/forged",
            "actions": [{"action_id": "sweep_cancel_job", "value": json.dumps({"job_id": JOB_ID})}],
        }
    ),
    "form submission": _interaction(
        {
            "type": "view_submission",
            "view": {"id": "V1", "type": "modal", "callback_id": "sweep_create", "state": {"values": {}}},
        }
    ),
}
SIGNATURES = {
    "signed by Slack's rules": SECRET,
    "forged (another secret)": "not-the-secret",
    "unsigned": None,
}


def _headers(body: bytes, secret: str | None) -> dict[str, str]:
    signed = sign(secret, body, int(time.time())) if secret is not None else {}
    return {"Content-Type": FORM, **signed}


@pytest.mark.parametrize("signature", sorted(SIGNATURES))
@pytest.mark.parametrize("kind", sorted(BODIES))
async def test_a_request_http_application_did_not_verify_is_401_and_reaches_nothing(
    gate: Gate, kind: str, signature: str
) -> None:
    body = BODIES[kind]
    # As Bolt's own aiohttp adapter would build it, skipping `http_application`.
    request = AsyncBoltRequest(body=body.decode(), headers=_headers(body, SIGNATURES[signature]))
    calls_before = len(gate.slack.calls())
    response = await gate.app.async_dispatch(request)
    assert response.status == 401, response.body
    assert json.loads(response.body) == UNVERIFIED_RESPONSE
    assert gate.probed == []
    stats = gate.services.follow_ups.stats
    assert (stats.waiting, stats.running, stats.done, stats.failed) == (0, 0, 0, 0)
    assert gate.slack.calls()[calls_before:] == []


def _verified(body: bytes) -> AsyncBoltRequest:
    """Return the request as `http_application` hands it to Bolt once the signature was checked."""
    read = read_body(body, FORM)
    assert isinstance(read, dict)
    return bolt_request_from(body.decode(), read, query="", headers=_headers(body, SECRET))


async def test_the_same_requests_verified_reach_their_listeners(gate: Gate) -> None:
    probe = _verified(BODIES["/probe"])
    assert probe.context[VERIFIED_KEY] is True
    assert (await gate.app.async_dispatch(probe)).status == 200
    assert gate.probed == ["probe"]
    answer = await gate.app.async_dispatch(_verified(BODIES["/sweep help"]))
    assert answer.status == 200
    assert "/sweep" in json.loads(answer.body)["text"]
    assert (await gate.app.async_dispatch(_verified(BODIES["/sweep list"]))).status == 200
    stats = gate.services.follow_ups.stats
    assert stats.waiting + stats.running + stats.done + stats.failed == 1, "the list's work was handed over"
    await gate.services.follow_ups.drain(timeout=0)  # what it would do is not this test's business


async def test_bolt_does_not_check_the_signature_a_second_time(gate: Gate) -> None:
    # A request marked verified (only `http_application` marks one, after its own check, stricter than
    # Bolt's) reaches its listener even with headers Bolt's check would refuse: Bolt's is really off.
    read = read_body(BODIES["/probe"], FORM)
    assert isinstance(read, dict)
    request = bolt_request_from(BODIES["/probe"].decode(), read, query="", headers={"Content-Type": FORM})
    assert (await gate.app.async_dispatch(request)).status == 200
    assert gate.probed == ["probe"]
