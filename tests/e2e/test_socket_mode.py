"""`sweep-bot serve --socket` end to end: the real process connects to the fake Slack's Socket Mode.

The bot asks `apps.connections.open` for a WebSocket URL with its app token, connects, and gets
slash commands as envelopes; its acks come back over the same socket and its replies through the
response_url, exactly as with Slack.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from bot.devslack.driver import DriverResponse, SlackDriver
from bot.devslack.modal import fill
from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.ids import ActionId, BlockId, CallbackId
from bot.simulator.app import RunningSimulator, SimulatorConfig, running_simulator
from tests.e2e.conftest import (
    ACCOUNT_ID,
    BOT_TOKEN,
    CF_TOKEN,
    CHANNEL,
    GROUP_MEMBER,
    OPERATOR,
    START_TIMEOUT,
    STRANGER,
    BotProcess,
    ClosedPort,
    bot_env,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

APP_TOKEN = "xapp-1-A0SWEEP-1234567890-e2esocketmodeapptoken"  # noqa: S105 - a test value


def everything(body: Any) -> str:
    """Return a reply's text and blocks as one searchable string."""
    return str(getattr(body, "text", "") or "") + "\n" + json.dumps(getattr(body, "blocks", []) or [])


@dataclass
class SocketStack:
    """The simulator, the fake Slack (with Socket Mode) and the bot running `serve --socket`."""

    slack: RunningFakeSlack
    bot: BotProcess
    sim: RunningSimulator


async def start_socket_bot(bot: BotProcess, slack: RunningFakeSlack) -> None:
    """Start `sweep-bot serve --socket` and wait until its WebSocket is connected."""
    bot.starts += 1
    log = bot.log_path.open("ab")
    bot.process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve", "--socket"],
        env=bot.env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def connected() -> bool:
        if bot.process is not None and bot.process.poll() is not None:
            raise AssertionError(f"bot exited with {bot.process.returncode}:\n{bot.logs()}")
        return bool(slack.socket.open_connections())

    await wait_until(connected, timeout=START_TIMEOUT, what="the bot's Socket Mode connection")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def socket_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SocketStack]:
    """Start everything once per module; on exit, check the bot stops cleanly and leaks no token."""
    workdir = tmp_path_factory.mktemp("e2e-socket")
    config = SimulatorConfig(token=CF_TOKEN, job_seconds=3.0, seed=11)
    async with (
        running_simulator(config, host="127.0.0.1", port=0) as sim,
        running_fake_slack(
            bot_token=BOT_TOKEN, app_token=APP_TOKEN, usergroups={"S0SOC": [GROUP_MEMBER]}
        ) as slack,
    ):
        env = bot_env(
            sim_url=sim.base_url,
            slack_url=slack.api_url,
            database=Path(workdir) / "sweep.db",
            extra={"SLACK_APP_TOKEN": APP_TOKEN},
        )
        del env["SLACK_SIGNING_SECRET"]  # Socket Mode needs no signing secret
        bot = BotProcess(env=env, port=0, log_path=Path(workdir) / "bot.log")
        try:
            await start_socket_bot(bot, slack)
            yield SocketStack(slack=slack, bot=bot, sim=sim)
        finally:
            bot.stop()
        leaked = [
            line
            for line in bot.logs().splitlines()
            if any(secret in line for secret in (APP_TOKEN, BOT_TOKEN, CF_TOKEN))
        ]
        assert not leaked, f"a token reached the bot's log: {leaked[:3]}"


async def test_the_bot_connects_with_its_app_token(socket_stack: SocketStack) -> None:
    opened = socket_stack.slack.calls("apps.connections.open")
    assert opened and all(call.ok for call in opened)
    assert socket_stack.slack.socket.open_connections()


async def test_help_is_in_the_ack(socket_stack: SocketStack) -> None:
    ack = await socket_stack.slack.socket.send_slash("help", user_id=OPERATOR, channel_id=CHANNEL)
    assert "/sweep move" in ack.get("text", "") + json.dumps(ack.get("blocks", []))


async def create_at_the_api(sim: RunningSimulator) -> str:
    """Create a job straight at the simulator's API (as the dashboard would); return its id."""
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{sim.base_url}/accounts/{ACCOUNT_ID}/email-security/investigate/bulk",
            json={"action": "RELEASE", "search_params": {"subject": "invoice", "detections_only": False}},
            headers={"Authorization": f"Bearer {CF_TOKEN}"},
        )
    response.raise_for_status()
    return str(response.json()["result"]["job_id"])


async def test_list_replies_ephemerally_through_the_response_url(socket_stack: SocketStack) -> None:
    state = socket_stack.slack.state
    job_id = await create_at_the_api(socket_stack.sim)
    before = len(state.responses(OPERATOR))
    await socket_stack.slack.socket.send_slash("list", user_id=OPERATOR, channel_id=CHANNEL)
    replies = await wait_until(
        lambda: [r for r in state.responses(OPERATOR)[before:] if r.via == "response_url"],
        timeout=10,
        what="the list reply",
    )
    assert replies[-1].response_type == "ephemeral"
    listed = everything(replies[-1])
    assert "Recent bulk jobs" in listed and job_id in listed


async def test_a_stranger_may_not_move(socket_stack: SocketStack) -> None:
    state = socket_stack.slack.state
    before = len(state.responses(STRANGER))
    await socket_stack.slack.socket.send_slash(
        "move subject:invoice to:junk", user_id=STRANGER, channel_id=CHANNEL
    )
    replies = await wait_until(lambda: state.responses(STRANGER)[before:], timeout=10, what="the refusal")
    assert "operator" in everything(replies[-1]).lower()


class SocketDriver(SlackDriver):
    """The HTTP driver's payloads (buttons, view submissions), delivered as Socket Mode envelopes instead.

    The ack comes back over the WebSocket; it is returned as the driver's response (status 200, the ack
    payload as its body) so the driver applies a view submission's `response_action` as Slack would.
    """

    def __init__(self, slack: RunningFakeSlack, *, user_id: str, channel_id: str) -> None:
        super().__init__("ws://unused", "unused", slack, user_id=user_id, channel_id=channel_id)
        self.socket = slack.socket

    async def send_payload(self, payload: dict[str, Any]) -> DriverResponse:
        started = time.perf_counter()
        ack = await self.socket.send_interactive(payload, timeout=10)
        return DriverResponse(200, json.dumps(ack) if ack else "", time.perf_counter() - started)


async def sim_job_ids(sim: RunningSimulator) -> set[str]:
    """Return the ids of every job the simulator's account holds."""
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{sim.base_url}/accounts/{ACCOUNT_ID}/email-security/investigate/bulk",
            params={"per_page": 1000},
            headers={"Authorization": f"Bearer {CF_TOKEN}"},
        )
    response.raise_for_status()
    return {job["job_id"] for job in response.json()["result"]}


async def test_buttons_work_over_socket_mode(socket_stack: SocketStack) -> None:
    slack, state = socket_stack.slack, socket_stack.slack.state
    driver = SocketDriver(slack, user_id=OPERATOR, channel_id=CHANNEL)
    before_jobs = await sim_job_ids(socket_stack.sim)
    before = len(state.responses(OPERATOR))
    await slack.socket.send_slash("move subject:invoice to:junk", user_id=OPERATOR, channel_id=CHANNEL)
    previews = await wait_until(
        lambda: [r for r in state.responses(OPERATOR)[before:] if r.via == "response_url"],
        timeout=10,
        what="the inline preview",
    )
    preview = previews[-1]
    assert ActionId.CONFIRM_CREATE in everything(preview)
    cards_before = len(state.top_level(CHANNEL))
    await driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=preview.blocks)
    created = await wait_until(
        lambda: _new(socket_stack.sim, before_jobs), timeout=15, what="the job at the simulator"
    )
    assert len(created) == 1
    (job_id,) = created
    cards = await wait_until(lambda: state.top_level(CHANNEL)[cards_before:], timeout=15, what="the card")
    card = cards[-1]
    assert card.metadata and card.metadata["event_payload"]["job_id"] == job_id
    # The card's Cancel button, pressed over the socket too.
    await socket_stack.sim.hold([job_id])
    before = len(state.responses(OPERATOR))
    await driver.block_action(ActionId.CANCEL_JOB, message_ts=card.ts)
    answers = await wait_until(
        lambda: state.responses(OPERATOR)[before:], timeout=10, what="the cancel answer"
    )
    assert f"Cancelled job `{job_id}`" in everything(answers[-1])
    interactive = [e["payload"] for e in slack.socket.envelopes if e["type"] == "interactive"]
    assert [p["actions"][0]["action_id"] for p in interactive[-2:]] == [
        ActionId.CONFIRM_CREATE,
        ActionId.CANCEL_JOB,
    ], "both presses went over the socket"


async def _new(sim: RunningSimulator, before: set[str]) -> set[str]:
    return await sim_job_ids(sim) - before


async def test_the_create_modal_works_over_socket_mode(socket_stack: SocketStack) -> None:
    slack, state = socket_stack.slack, socket_stack.slack.state
    driver = SocketDriver(slack, user_id=OPERATOR, channel_id=CHANNEL)
    before_jobs = await sim_job_ids(socket_stack.sim)
    views_before = {v.id for v in state.views(OPERATOR)}
    await slack.socket.send_slash("new", user_id=OPERATOR, channel_id=CHANNEL)
    opened = await wait_until(
        lambda: [v for v in state.views(OPERATOR) if v.id not in views_before], timeout=10, what="the modal"
    )
    view = opened[-1]
    assert view.callback_id == CallbackId.CREATE_FORM
    # A bad submission gets its inline error in the socket ack.
    response = await driver.view_submission(view.view, fill(view.view, {BlockId.DESTINATION: "Inbox"}))
    assert response.json().get("response_action") == "errors"
    assert BlockId.SENDER in response.json()["errors"]
    values = fill(view.view, {BlockId.DESTINATION: "JunkEmail", BlockId.SUBJECT: "invoice"})
    response = await driver.view_submission(view.view, values)
    assert response.json().get("response_action") == "update"
    preview = await wait_until(
        lambda: (v := state.view(view.id)) is not None and v.callback_id == CallbackId.CREATE_PREVIEW and v,
        timeout=10,
        what="the preview view",
    )
    response = await driver.view_submission(preview.view, fill(preview.view, {}))
    assert response.json().get("response_action") == "update"
    created = await wait_until(
        lambda: _new(socket_stack.sim, before_jobs), timeout=15, what="the job at the simulator"
    )
    assert len(created) == 1
    (job_id,) = created
    await wait_until(
        lambda: job_id in json.dumps((state.view(view.id) or view).view),
        timeout=15,
        what="the modal to name the new job",
    )


async def test_a_refused_app_token_stops_the_bot_with_one_line(
    socket_stack: SocketStack, tmp_path: Path
) -> None:
    # Left alone, the Socket Mode client would retry a refused token forever; Sweep checks it first.
    wrong = "xapp-1-A0SWEEP-0000000000-notthistoken"  # noqa: S105 - a test value
    env = {**socket_stack.bot.env, "SLACK_APP_TOKEN": wrong}
    with (tmp_path / "wrong.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--socket"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        await wait_until(lambda: process.poll() is not None, timeout=20, what="the bot to stop by itself")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    output = (tmp_path / "wrong.log").read_text(errors="replace")
    assert process.returncode == 2, output
    assert "configuration error: SLACK_APP_TOKEN was refused by Slack (invalid_auth)" in output
    assert "Traceback" not in output and wrong not in output


async def test_with_slack_unreachable_the_bot_keeps_retrying_and_sigterm_still_stops_it(
    socket_stack: SocketStack, tmp_path: Path
) -> None:
    refusing = ClosedPort()  # nothing listens there
    env = {**socket_stack.bot.env, "SLACK_API_URL": f"http://127.0.0.1:{refusing.port}/api/"}
    log_path = tmp_path / "unreachable.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--socket"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        await wait_until(
            lambda: "could not reach Slack to check the app token" in log_path.read_text(errors="replace"),
            timeout=20,
            what="the warning that Slack is unreachable",
        )
        assert process.poll() is None, "the bot gave up instead of retrying"
        process.send_signal(signal.SIGTERM)
        await wait_until(lambda: process.poll() is not None, timeout=15, what="the bot to exit after SIGTERM")
    finally:
        refusing.release()
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
    output = log_path.read_text(errors="replace")
    assert process.returncode == 0, output
    assert "Sweep stopped" in output and "Traceback" not in output
    assert APP_TOKEN not in output and BOT_TOKEN not in output


async def test_sigterm_stops_the_bot_cleanly(socket_stack: SocketStack) -> None:
    bot = socket_stack.bot
    assert bot.process is not None
    bot.process.send_signal(signal.SIGTERM)

    def exited() -> bool:
        return bot.process is not None and bot.process.poll() is not None

    await wait_until(exited, timeout=10, what="the bot to exit after SIGTERM")
    assert bot.process.returncode == 0, bot.logs()
    await wait_until(
        lambda: not socket_stack.slack.socket.open_connections(), timeout=5, what="the socket to close"
    )
    assert "Sweep stopped" in bot.logs()
