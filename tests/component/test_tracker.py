"""Tracker against the simulator over HTTP, a real SQLite store and the local Slack over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient

from bot.cloudflare.client import CloudflareClient, Credentials, RetryPolicy
from bot.devslack.server import running_fake_slack
from bot.jobs import JobService
from bot.outbox import Notifier
from bot.store import SqliteStore
from bot.tracker import Tracker, statuses_to_list
from tests.support import LocalSlack, watching


def design_budget(active: int, finished: int, *, per_page: int = 1000) -> int:
    """Return the most calls one cycle may make, as DESIGN.md "Polling" states it.

    One list per active status (PENDING, DISCOVERING, PROCESSING), walked in pages of `per_page`
    (1000 by default), plus one GET per tracked job that left the active lists.
    """
    pages = max(-(-active // per_page), 1)
    return 3 * pages + finished


@dataclass
class Env:
    """Everything a tracker test touches."""

    store: SqliteStore
    client: CloudflareClient
    control: httpx.AsyncClient
    slack: LocalSlack
    notifier: Notifier
    tracker: Tracker
    jobs: JobService  # watch is a use case: the tracker only tracks


def _root(base_url: str) -> str:
    url = httpx.URL(str(base_url))
    return str(url.copy_with(path="/", query=None))


@pytest.fixture
async def env(simulator: Any, account_id: str, tmp_path: Path) -> AsyncIterator[Env]:
    async with (
        httpx.AsyncClient(timeout=10) as http,
        httpx.AsyncClient(base_url=_root(simulator.base_url), timeout=10) as control,
        SqliteStore.open(tmp_path / "sweep.db") as store,
        running_fake_slack(bot_token="xoxb-tracker-test") as fake,
    ):
        client = CloudflareClient(
            http,
            account_id=account_id,
            credentials=Credentials(api_token=SecretStr("test-token")),
            base_url=str(simulator.base_url),
            retry=RetryPolicy(max_attempts=1, base_delay=0, jitter=0),
        )
        slack = LocalSlack(fake.state, AsyncWebClient(token="xoxb-tracker-test", base_url=fake.api_url))
        notifier = Notifier(store, slack, min_edit_interval=0)
        tracker = Tracker(store, client, poll_seconds=0.05, notifier=notifier)
        yield Env(store, client, control, slack, notifier, tracker, watching(store, client, notifier))


async def seed(env: Env, count: int, status: str = "PENDING") -> list[str]:
    response = await env.control.post(
        "/__sim/seed-jobs", json={"count": count, "status": status, "hold": True}
    )
    response.raise_for_status()
    body: Any = response.json()
    jobs = body.get("jobs") or body.get("job_ids") or body.get("result") or []
    return [job if isinstance(job, str) else job["job_id"] for job in jobs]


async def set_status(env: Env, job_id: str, status: str) -> None:
    response = await env.control.post(f"/__sim/jobs/{job_id}/status", json={"status": status})
    response.raise_for_status()


async def fault(env: Env, **spec: Any) -> None:
    response = await env.control.post("/__sim/faults", json=spec)
    response.raise_for_status()


async def track(env: Env, job_ids: list[str]) -> None:
    for job_id in job_ids:
        await env.jobs.watch(job_id, requester="U1", channel_id="C1")
    while await env.notifier.drain_once():
        pass


async def drain(env: Env) -> None:
    while await env.notifier.drain_once():
        pass


def test_statuses_to_list_skips_statuses_no_tracked_job_can_be_in() -> None:
    assert statuses_to_list([]) == []
    assert statuses_to_list(["PROCESSING"]) == ["PROCESSING"]
    assert statuses_to_list(["DISCOVERING", "PROCESSING"]) == ["DISCOVERING", "PROCESSING"]
    assert statuses_to_list(["SOMETHING_NEW"]) == ["PENDING", "DISCOVERING", "PROCESSING"]


async def test_each_transition_gives_exactly_one_reply_and_terminal_jobs_stop_polling(env: Env) -> None:
    ids = await seed(env, 3, "PENDING")
    await track(env, ids)
    assert len(env.slack.top_level()) == 3
    slack_calls = len(env.slack.calls)

    report = await env.tracker.tick()  # nothing changed
    assert report.ok and report.jobs_seen == 3 and report.transitions == []
    assert report.api_calls <= design_budget(3, 0)
    await drain(env)
    assert len(env.slack.calls) == slack_calls

    await set_status(env, ids[0], "PROCESSING")
    await set_status(env, ids[1], "COMPLETED")
    report = await env.tracker.tick()
    assert {(t.job_id, t.previous_status, t.status) for t in report.transitions} == {
        (ids[0], "PENDING", "PROCESSING"),
        (ids[1], "PENDING", "COMPLETED"),
    }
    assert report.fetched == 1 and report.finished == 1
    assert report.api_calls <= design_budget(3, 1)
    await drain(env)
    await drain(env)
    for job_id, expected in (
        (ids[0], ["PENDING->PROCESSING"]),
        (ids[1], ["PENDING->COMPLETED"]),
        (ids[2], []),
    ):
        job = await env.store.get_job(job_id)
        assert job is not None and job.card_ts is not None
        keys = [
            m.metadata["event_payload"]["transition"] for m in env.slack.replies(job.card_ts) if m.metadata
        ]
        assert keys == expected

    # The finished job is never asked about again; the other two need only list calls.
    calls = env.client.api_calls
    report = await env.tracker.tick()
    assert report.transitions == [] and report.fetched == 0 and report.active == 2
    assert env.client.api_calls - calls == report.api_calls <= 3
    for job_id in ids:
        await set_status(env, job_id, "COMPLETED")
    report = await env.tracker.tick()
    assert len(report.transitions) == 2 and report.fetched == 2
    calls = env.client.api_calls
    report = await env.tracker.tick()
    assert report.active == 0 and env.client.api_calls == calls  # nothing left to poll: no calls


async def test_calls_per_cycle_stay_within_budget_across_pages(env: Env) -> None:
    ids = await seed(env, 25, "PROCESSING")
    await track(env, ids)
    tracker = Tracker(env.store, env.client, poll_seconds=1, per_page=10)
    report = await tracker.tick()
    assert report.jobs_seen == 25 and report.fetched == 0
    assert report.api_calls == 3  # only PROCESSING is listed: pages of 10, 10 and a short 5
    for job_id in ids[:4]:
        await set_status(env, job_id, "FAILED")
    report = await tracker.tick()
    assert len(report.transitions) == 4 and report.fetched == 4
    assert report.api_calls <= design_budget(25, 4, per_page=10)
    assert (await tracker.tick()).api_calls == 3  # 21 left: 10, 10, 1


async def test_cloudflare_errors_do_not_crash_and_are_recovered(env: Env) -> None:
    ids = await seed(env, 2, "PENDING")
    await track(env, ids)
    await set_status(env, ids[0], "COMPLETED")
    await fault(env, status=429, count=1, retry_after=1)
    report = await env.tracker.tick()
    assert not report.ok and report.retry_after == 1
    assert report.fetched == 0  # a failed list never turns into one GET per job
    assert env.tracker.next_delay(report) >= 1

    await fault(env, status=503, count=1)
    report = await env.tracker.tick()
    assert not report.ok and report.fetched == 0

    report = await env.tracker.tick()  # the fault is gone: back to normal
    assert report.ok and [(t.job_id, t.status) for t in report.transitions] == [(ids[0], "COMPLETED")]


async def test_run_loop_survives_faults_and_stops(env: Env) -> None:
    ids = await seed(env, 1, "PENDING")
    await track(env, ids)
    await fault(env, status=500, count=2)
    stop = asyncio.Event()
    task = asyncio.create_task(env.tracker.run(stop))
    await set_status(env, ids[0], "COMPLETED")
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        job = await env.store.get_job(ids[0])
        if job is not None and job.status == "COMPLETED":
            break
        assert asyncio.get_running_loop().time() < deadline, "tracker never recovered"
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, timeout=5)


async def test_a_job_that_disappears_is_marked_gone(env: Env) -> None:
    ids = await seed(env, 1, "PROCESSING")
    await track(env, ids)
    await set_status(env, ids[0], "COMPLETED")
    await env.client.delete_job(ids[0])
    report = await env.tracker.tick()
    assert report.gone == 1
    job = await env.store.get_job(ids[0])
    assert job is not None and job.gone and job.is_terminal
    await drain(env)
    assert job.card_ts is not None
    [reply] = env.slack.replies(job.card_ts)
    assert reply.metadata is not None and reply.metadata["event_payload"]["transition"] == "PROCESSING->GONE"
    card = env.slack.state.message("C1", job.card_ts)
    assert card is not None
    assert card.edits == 1
    assert (await env.tracker.tick()).api_calls == 0


async def test_a_replica_without_the_poller_lease_does_not_poll(env: Env) -> None:
    ids = await seed(env, 3, "PROCESSING")
    await track(env, ids)
    stop = asyncio.Event()
    asked = 0
    holding = False

    async def lease() -> bool:
        nonlocal asked
        asked += 1
        if asked >= 3:
            stop.set()
        return holding

    tracker = Tracker(env.store, env.client, poll_seconds=0.01, lease=lease)
    calls = env.client.api_calls
    await asyncio.wait_for(tracker.run(stop), 10)
    assert asked == 3 and env.client.api_calls == calls  # asked for the lease each interval, never polled

    holding, asked = True, 0
    stop.clear()
    await asyncio.wait_for(tracker.run(stop), 10)
    assert env.client.api_calls > calls  # the holder polls
