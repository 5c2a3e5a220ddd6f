"""Operating Sweep: /metrics (HTTP mode and Socket Mode's --metrics-port), /healthz's database, JSON logs.

The real `sweep-bot serve` process, the simulator and the local Slack; the metrics are read the way
Prometheus reads them (`prometheus_client.parser`), the log the way a log shipper would (one JSON
object per line).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from bot.devslack.modal import fill
from bot.devslack.server import running_fake_slack
from bot.ids import ActionId, BlockId, CallbackId
from bot.simulator.app import SimulatorConfig, running_simulator
from tests.e2e.conftest import (
    ACCOUNT_ID,
    BOT_TOKEN,
    CF_TOKEN,
    CHANNEL,
    OPERATOR,
    SIGNING_SECRET,
    START_TIMEOUT,
    BotProcess,
    Stack,
    bot_env,
    open_stack,
    wait_until,
)
from tests.e2e.test_slack_flows import inline_create

pytestmark = pytest.mark.asyncio(loop_scope="module")

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
BULK = "/accounts/{account_id}/email-security/investigate/bulk"
APP_TOKEN = "xapp-1-A0SWEEP-1234567890-e2emetricsapptoken"  # noqa: S105 - a test value


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """The HTTP-mode stack, the bot logging JSON."""
    async with open_stack(
        tmp_path_factory.mktemp("e2e-metrics"), extra_env={"SWEEP_LOG_FORMAT": "json"}
    ) as s:
        yield s


async def scrape(port: int) -> Samples:
    """Return every sample of the bot's /metrics, parsed as Prometheus parses it."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """Return one sample's value (0 when the series is absent)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Return every series of one sample name."""
    return {labels: v for (n, labels), v in samples.items() if n == name}


def card_status(message: Any) -> str:
    """Return the status word a card's fallback text shows (`Move to X: Completed, …` → `completed`)."""
    if message is None or ":" not in message.text:
        return ""
    return str(message.text.split(":", 1)[1].split(",")[0]).strip().lower()


async def test_metrics_move_with_requests_jobs_and_polls(stack: Stack) -> None:
    port = stack.bot.port
    before = await scrape(port)
    assert value(before, "sweep_poller_lease_held") == 1
    assert value(before, "sweep_database_up") == 1
    state = stack.slack.state
    # A slash command, a preview's Confirm button, and a modal submission with a mistake in it.
    assert (await stack.driver.slash("help")).status == 200
    responses = len(state.responses(OPERATOR))
    await stack.driver.slash("move subject:invoice to:junk")
    preview = (await wait_until(lambda: state.responses(OPERATOR)[responses:], what="the preview"))[-1]
    cards = len(state.top_level(CHANNEL))
    await stack.driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=preview.blocks)
    card = (await wait_until(lambda: state.top_level(CHANNEL)[cards:], what="the job card"))[-1]
    job_id = card.metadata["event_payload"]["job_id"]
    # While the job runs, it is counted among the active jobs.
    during = await wait_until(
        lambda: _active_jobs(port, at_least=1), timeout=10, what="the job among active jobs"
    )
    assert sum(series(during, "sweep_jobs").values()) == 1
    await stack.driver.slash("new")
    view = (await wait_until(lambda: state.views(OPERATOR), what="the create modal"))[-1]
    assert view.callback_id == CallbackId.CREATE_FORM
    answer = await stack.driver.view_submission(view.view, fill(view.view, {BlockId.DESTINATION: "Inbox"}))
    assert answer.json().get("response_action") == "errors"
    await wait_until(
        lambda: card_status(state.message(CHANNEL, card.ts)) == "completed",
        timeout=30,
        what="the card to show the job completed",
    )
    after = await wait_until(lambda: _settled(port), timeout=15, what="the outbox to drain")

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("sweep_ack_seconds_count", surface="slash_command") >= 3  # help, move, new
    assert moved("sweep_ack_seconds_count", surface="block_action") >= 1
    assert moved("sweep_ack_seconds_count", surface="view_submission") >= 1
    # The ack is fast: every one of these fell in a bucket at or under Slack's 3 s.
    for surface in ("slash_command", "block_action", "view_submission"):
        assert value(after, "sweep_ack_seconds_bucket", surface=surface, le="3.0") == value(
            after, "sweep_ack_seconds_count", surface=surface
        )
    # Cloudflare calls by route template: exactly one create, lists by the tracker, never a raw id.
    assert moved("sweep_cloudflare_requests_total", endpoint=f"POST {BULK}", status="201") == 1
    assert moved("sweep_cloudflare_requests_total", endpoint=f"GET {BULK}", status="200") >= 1
    assert moved("sweep_cloudflare_requests_total", endpoint=f"GET {BULK}/{{job_id}}", status="200") == 1
    endpoints = {dict(labels)["endpoint"] for labels in series(after, "sweep_cloudflare_requests_total")}
    assert endpoints and not any(ACCOUNT_ID in e or job_id in e for e in endpoints), endpoints
    assert moved("sweep_poll_cycle_seconds_count", outcome="ok") >= 2
    # The create took one write from everyone's budget; the preview at least one read.
    assert moved("sweep_cloudflare_budget_remaining", kind="write") == -1
    assert moved("sweep_cloudflare_budget_remaining", kind="read") <= -1
    assert value(after, "sweep_cloudflare_rate_limit_pause_seconds") == 0
    # Delivered: nothing pending, nothing failed, nothing overdue; the job is no longer active.
    assert value(after, "sweep_outbox_rows", state="pending") == 0
    assert value(after, "sweep_outbox_rows", state="failed") == 0
    assert value(after, "sweep_outbox_oldest_pending_seconds") == 0
    assert sum(series(after, "sweep_jobs").values()) == 0
    assert value(after, "sweep_follow_ups", state="waiting") == 0
    assert ("sweep_follow_ups", frozenset({("state", "running")})) in after


async def _active_jobs(port: int, *, at_least: int) -> Samples | None:
    samples = await scrape(port)
    return samples if sum(series(samples, "sweep_jobs").values()) >= at_least else None


async def _settled(port: int) -> Samples | None:
    samples = await scrape(port)
    unsent = value(samples, "sweep_outbox_rows", state="pending") + value(
        samples, "sweep_outbox_rows", state="attempting"
    )
    return samples if unsent == 0 and sum(series(samples, "sweep_jobs").values()) == 0 else None


async def test_every_log_line_is_a_json_object_with_its_context(stack: Stack) -> None:
    # A job created through Slack (by the test above, or here when this test runs without it): its lines
    # say which job, request and user.
    if "posted card" not in stack.bot.logs():
        card = (await inline_create(stack, "move subject:invoice to:junk"))["card"]
        await wait_until(
            lambda: card_status(stack.slack.state.message(CHANNEL, card.ts)) == "completed",
            timeout=30,
            what="the card to show the job completed",
        )
        await wait_until(lambda: _settled(stack.bot.port), timeout=15, what="the outbox to drain")
    await wait_until(lambda: "posted card" in stack.bot.logs(), what="the card's log line")
    lines = [line for line in stack.bot.logs().splitlines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        record = json.loads(line)  # every line, not most of them
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        assert record["time"].endswith("+00:00"), record["time"]
        assert BOT_TOKEN not in line and CF_TOKEN not in line and SIGNING_SECRET not in line
        records.append(record)
    created = [r for r in records if r["message"].startswith("created job")]
    assert created, "no 'created job' line"
    assert created[0]["job_id"] in created[0]["message"]
    assert created[0]["user"] == OPERATOR
    assert created[0]["request"].startswith("block_actions:")
    posted = [r for r in records if r["message"].startswith("posted card")]
    assert posted and posted[0]["job_id"] == created[0]["job_id"]


async def test_healthz_reports_the_database(stack: Stack) -> None:
    # The unreachable case (503) is in tests/component/test_health.py: a running SQLite cannot be
    # made unreadable from outside the process (WAL readers are never blocked).
    async with httpx.AsyncClient() as http:
        healthy = await http.get(f"http://127.0.0.1:{stack.bot.port}/healthz")
    assert healthy.status_code == 200
    assert healthy.json()["ok"] is True and healthy.json()["database"] == "ok"


async def test_socket_mode_serves_metrics_on_metrics_port(tmp_path: Path) -> None:
    config = SimulatorConfig(token=CF_TOKEN, job_seconds=3.0, seed=11)
    async with (
        running_simulator(config, host="127.0.0.1", port=0) as sim,
        running_fake_slack(bot_token=BOT_TOKEN, app_token=APP_TOKEN) as slack,
    ):
        env = bot_env(
            sim_url=sim.base_url,
            slack_url=slack.api_url,
            database=tmp_path / "sweep.db",
            extra={"SLACK_APP_TOKEN": APP_TOKEN},
        )
        del env["SLACK_SIGNING_SECRET"]
        bot = BotProcess(env=env, log_path=tmp_path / "bot.log")
        with bot.log_path.open("ab") as log:
            bot.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "serve", "--socket"]
                + ["--host", "127.0.0.1", "--metrics-port", "0"],  # the OS picks the port; the log says it
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:

            def connected() -> bool:
                assert bot.process is not None and bot.process.poll() is None, bot.logs()
                return bool(slack.socket.open_connections())

            await wait_until(connected, timeout=START_TIMEOUT, what="the bot's Socket Mode connection")
            serving = re.search(r"serves metrics on http://127\.0\.0\.1:(\d+)/metrics", bot.logs())
            assert serving, bot.logs()
            metrics_port = int(serving.group(1))
            before = await scrape(metrics_port)
            ack = await slack.socket.send_slash("help", user_id=OPERATOR, channel_id=CHANNEL)
            assert ack is not None
            after = await scrape(metrics_port)
            assert (
                value(after, "sweep_ack_seconds_count", surface="slash_command")
                - value(before, "sweep_ack_seconds_count", surface="slash_command")
                == 1
            )
            assert value(after, "sweep_poller_lease_held") == 1
            assert ("sweep_poll_cycle_seconds_count", frozenset({("outcome", "ok")})) in after
            async with httpx.AsyncClient() as http:
                health = await http.get(f"http://127.0.0.1:{metrics_port}/healthz")
                assert health.status_code == 200 and health.json()["database"] == "ok"
                # Only metrics and health there: Slack's events are not served on that port.
                refused = await http.post(f"http://127.0.0.1:{metrics_port}/slack/events", content=b"{}")
                assert refused.status_code in (404, 405)
        finally:
            bot.stop()
        assert APP_TOKEN not in bot.logs() and BOT_TOKEN not in bot.logs()
