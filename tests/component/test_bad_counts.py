"""One absurd record cannot stall the others: impossible counts from Cloudflare (the simulator over HTTP).

The tracker and notifier run against the simulator, a real SQLite file and the local Slack (over HTTP,
through slack_sdk's client, as in production).

The simulator's `POST /__sim/jobs/{id}/counts` makes a job report any counter values. 2**63 does not fit
SQLite's INTEGER, a negative count or 1.5 cannot be true: Sweep keeps such a count as unknown, says so on
the job's card, and every other job's card and thread reply still arrive in the same cycle.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient

from blocks.validate import validate_message
from bot.cloudflare.client import CloudflareClient, Credentials, RetryPolicy
from bot.cloudflare.models import UNKNOWN_COUNT
from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.devslack.state import Message
from bot.jobs import JobService
from bot.outbox import Notifier
from bot.slack_port import WebClientSlackPort
from bot.store import SqliteStore
from bot.tracker import Tracker
from tests.support import watching

IMPOSSIBLE = "Cloudflare reported an impossible count"
LABELS = {
    "total_messages_discovered": "Discovered",
    "messages_successful": "Successful",
    "messages_failed": "Failed",
    "messages_pending": "Pending",
    "messages_skipped": "Skipped",
    "messages_cancelled": "Cancelled",
}


@dataclass
class Env:
    """The tracker and notifier against the simulator, a real SQLite file and the local Slack."""

    store: SqliteStore
    control: httpx.AsyncClient
    slack: RunningFakeSlack
    notifier: Notifier
    tracker: Tracker
    jobs: JobService  # watch is a use case: the tracker only tracks


@pytest.fixture
async def env(simulator: Any, account_id: str, tmp_path: Path) -> AsyncIterator[Env]:
    async with (
        httpx.AsyncClient(timeout=10) as http,
        httpx.AsyncClient(base_url=simulator.root_url, timeout=10) as control,
        SqliteStore.open(tmp_path / "sweep.db") as store,
        running_fake_slack(bot_token="xoxb-component") as slack,
    ):
        client = CloudflareClient(
            http,
            account_id=account_id,
            credentials=Credentials(api_token=SecretStr("test-token")),
            base_url=str(simulator.base_url),
            retry=RetryPolicy(max_attempts=1, base_delay=0, jitter=0),
        )
        web = AsyncWebClient(token="xoxb-component", base_url=slack.api_url)
        notifier = Notifier(store, WebClientSlackPort(web), min_edit_interval=0)
        tracker = Tracker(store, client, poll_seconds=0.05, notifier=notifier)
        yield Env(store, control, slack, notifier, tracker, watching(store, client, notifier))


async def seed(env: Env, count: int) -> list[str]:
    response = await env.control.post(
        "/__sim/seed-jobs", json={"count": count, "status": "PROCESSING", "hold": True}
    )
    response.raise_for_status()
    return list(response.json()["job_ids"])


async def set_counts(env: Env, job_id: str, **counts: Any) -> None:
    response = await env.control.post(f"/__sim/jobs/{job_id}/counts", json=counts)
    response.raise_for_status()


async def set_status(env: Env, job_id: str, status: str) -> None:
    response = await env.control.post(f"/__sim/jobs/{job_id}/status", json={"status": status})
    response.raise_for_status()


async def drain(env: Env) -> None:
    while await env.notifier.drain_once():
        pass


def card_of(env: Env, job_id: str) -> Message:
    [card] = [
        m
        for m in env.slack.state.top_level("C1")
        if (m.metadata or {}).get("event_payload", {}).get("job_id") == job_id
    ]
    return card


def replies(env: Env, card: Message) -> list[Message]:
    return [m for m in env.slack.state.thread("C1", card.ts) if m.is_reply]


def everything(message: Message) -> str:
    return message.text + "\n" + json.dumps(message.blocks, ensure_ascii=False)


async def test_a_job_reporting_2_63_does_not_stop_another_job_from_completing(env: Env) -> None:
    absurd, normal = await seed(env, 2)
    for job_id in (absurd, normal):
        await env.jobs.watch(job_id, requester="U1", channel_id="C1")
    await drain(env)
    await set_counts(env, absurd, total_messages_discovered=2**63, messages_successful=2**63)
    await set_status(env, normal, "COMPLETED")

    report = await env.tracker.tick()  # before the fix: OverflowError out of the store, every cycle
    await drain(env)

    assert report.ok, report.errors
    assert [(t.job_id, t.status) for t in report.transitions] == [(normal, "COMPLETED")]
    finished = card_of(env, normal)
    assert "Completed" in finished.text and IMPOSSIBLE not in everything(finished)
    [reply] = replies(env, finished)
    assert "Completed" in reply.text
    stored = await env.store.get_job(absurd)
    assert stored is not None and stored.total_messages_discovered == UNKNOWN_COUNT
    card = card_of(env, absurd)
    assert card.edits >= 1, "the absurd job's card was updated to say what happened"
    shown = everything(card)
    assert IMPOSSIBLE in shown and "Discovered, Successful" in shown and "unknown" in shown
    assert "9223372036854775808" not in shown and "9,223,372,036,854,775,808" not in shown
    validate_message({"text": card.text, "blocks": card.blocks})

    # The next cycles keep working, and the absurd job still finishes when Cloudflare says so.
    await set_status(env, absurd, "COMPLETED")
    report = await env.tracker.tick()
    await drain(env)
    assert report.ok and [(t.job_id, t.status) for t in report.transitions] == [(absurd, "COMPLETED")]
    [final] = replies(env, card_of(env, absurd))
    assert "unknown" in final.text and IMPOSSIBLE in everything(final)


@pytest.mark.parametrize(
    "counts",
    [
        {"total_messages_discovered": 2**63, "messages_pending": 2**63},
        {"messages_pending": -5},
        {"messages_failed": 1.5, "messages_skipped": "many"},
        {"messages_successful": 10**400},
        {"messages_cancelled": True},
    ],
    ids=["2**63", "negative", "not whole numbers", "10**400", "a boolean"],
)
async def test_watching_a_job_with_impossible_counts_works_and_says_so(
    env: Env, counts: dict[str, Any]
) -> None:
    [job_id] = await seed(env, 1)
    await set_counts(env, job_id, **counts)

    tracked, is_new = await env.jobs.watch(job_id, requester="U1", channel_id="C1")
    await drain(env)

    assert is_new
    for name in counts:
        assert getattr(tracked, name) == UNKNOWN_COUNT, name
    shown = everything(card_of(env, job_id))
    assert IMPOSSIBLE in shown and "unknown" in shown
    for name in counts:
        assert f"*{LABELS[name]}*\\nunknown" in shown, (name, shown)
    report = await env.tracker.tick()
    assert report.ok, report.errors


async def test_impossible_counts_are_logged_once_per_job(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    [job_id] = await seed(env, 1)
    await env.jobs.watch(job_id, requester="U1", channel_id="C1")
    await set_counts(env, job_id, messages_pending=-5)
    with caplog.at_level("WARNING", logger="sweep.tracker"):
        for _ in range(3):
            assert (await env.tracker.tick()).ok
    lines = [r.getMessage() for r in caplog.records if "impossible counts" in r.getMessage()]
    assert lines == [
        f"job {job_id}: Cloudflare reported impossible counts messages_pending=-5; shown as unknown"
    ]


async def test_the_counts_control_refuses_what_is_not_a_counter(env: Env) -> None:
    [job_id] = await seed(env, 1)
    response = await env.control.post(f"/__sim/jobs/{job_id}/counts", json={"status": "COMPLETED"})
    assert response.status_code == 400
    response = await env.control.post("/__sim/jobs/00000000-0000-4000-8000-000000000000/counts", json={})
    assert response.status_code == 404
    await set_counts(env, job_id, messages_pending=7)
    assert (await env.control.get(f"/__sim/jobs/{job_id}")).json()["messages_pending"] == 7
    await set_counts(env, job_id)
    assert (await env.control.get(f"/__sim/jobs/{job_id}")).json()["messages_pending"] != 7
