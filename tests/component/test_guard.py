"""Issue 12 over HTTP against the simulator and a real store (SQLite and PostgreSQL).

- a create from a preview carries its agreed maximum (intent and tracked job);
- the first poll cycle that sees a running job past it cancels the job (one reply row, one audit
  entry as `sweep`); a cancel Cloudflare refuses is logged and tried again the next cycle;
- the preview counts exactly up to its limit, and says "more than" only past it;
- one more create than `max_active_jobs` is refused, naming the active job, and creates nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.approval import ReasonCode, agreed_maximum
from bot.clock import utc_now
from bot.cloudflare.client import CloudflareClient, Credentials, RetryPolicy
from bot.draft import JobDraft
from bot.guard import OvershootGuard
from bot.jobs import CreateStatus, JobService
from bot.models import ActionType, Destination, SearchParams
from bot.store import SqlStore, open_store
from bot.throttle import RequestBudgets
from bot.tracker import Tracker

pytestmark = pytest.mark.asyncio


@dataclass
class Env:
    store: SqlStore
    client: CloudflareClient
    sim: Any
    jobs: JobService
    tracker: Tracker
    guard: OvershootGuard


@pytest.fixture
async def env(simulator: Any, account_id: str, store_url: str) -> AsyncIterator[Env]:
    async with httpx.AsyncClient(timeout=10) as http, open_store(store_url) as store:
        client = CloudflareClient(
            http,
            account_id=account_id,
            credentials=Credentials(api_token=SecretStr("test-token")),
            base_url=str(simulator.base_url),
            retry=RetryPolicy(max_attempts=1, base_delay=0, jitter=0),
        )
        jobs = JobService(
            client=client,
            store=store,
            account_id=account_id,
            wake_notifier=lambda: None,
            budgets=RequestBudgets({}),
            margin_percent=10.0,
            max_active_jobs=1,
        )
        guard = OvershootGuard(client=client, store=store, wake_notifier=lambda: None)
        tracker = Tracker(store, client, poll_seconds=0.05, on_overshoot=guard)
        yield Env(store, client, simulator, jobs, tracker, guard)


def draft(subject: str = "newsletter") -> JobDraft:
    now = utc_now()
    return JobDraft(
        action=ActionType.MOVE,
        destination=Destination.JUNK_EMAIL,
        search_params=SearchParams(
            subject=subject, start=now - timedelta(days=30), end=now, detections_only=False
        ),
    )


async def create(env: Env, subject: str = "newsletter") -> tuple[str, int]:
    """Preview and confirm a job, hold it where it is; return its id and its previewed count."""
    preview = await env.jobs.preview(draft(subject), requester="U1", channel_id="C1")
    outcome = await env.jobs.create_from_preview(preview.id, actor="U1")
    assert outcome.status is CreateStatus.CREATED and outcome.tracked is not None
    await env.sim.hold([outcome.tracked.job_id])
    return outcome.tracked.job_id, len(preview.result.messages)


async def auto_cancel_audit(env: Env, job_id: str) -> list[Any]:
    return [e for e in await env.store.list_audit() if e.action == "auto_cancel" and e.job_id == job_id]


async def test_a_create_carries_its_agreed_maximum(env: Env) -> None:
    job_id, matched = await create(env)
    tracked = await env.store.get_job(job_id)
    assert tracked is not None and matched > 0
    assert tracked.agreed_max == agreed_maximum(matched, 10.0) == matched + max(-(-matched // 10), 5)
    intents = [i async for i in _intents(env, job_id)]
    assert [i.agreed_max for i in intents] == [tracked.agreed_max]
    assert tracked.overshoot is None


async def _intents(env: Env, job_id: str) -> AsyncIterator[Any]:
    tracked = await env.store.get_job(job_id)
    assert tracked is not None
    for entry in await env.store.list_audit():
        if entry.action == "create" and entry.job_id == job_id and entry.detail:
            intent = await env.store.get_create_intent(entry.detail.removeprefix("request tag "))
            if intent is not None:
                yield intent


async def test_the_first_cycle_that_sees_the_overshoot_cancels_the_job(env: Env) -> None:
    job_id, _ = await create(env)
    tracked = await env.store.get_job(job_id)
    assert tracked is not None and tracked.agreed_max is not None
    maximum = tracked.agreed_max
    await env.sim.set_counts(job_id, {"total_messages_discovered": maximum})  # at the maximum: fine
    report = await env.tracker.tick()
    assert report.ok and report.overshoots == 0
    assert str((await env.client.get_job(job_id)).status) != "CANCELLED"
    await env.sim.set_counts(job_id, {"total_messages_discovered": maximum + 1})
    report = await env.tracker.tick()
    assert report.overshoots == 1
    assert str((await env.client.get_job(job_id)).status) == "CANCELLED"  # in that same cycle
    after = await env.store.get_job(job_id)
    assert after is not None and after.status == "CANCELLED" and after.overshoot == maximum + 1
    audit = await auto_cancel_audit(env, job_id)
    assert [(e.actor, e.outcome) for e in audit] == [("sweep", "ok")]
    assert audit[0].detail == f"discovered {maximum + 1}, agreed at most {maximum}"
    replies = [
        i
        for i in await env.store.outbox_due(now=utc_now() + timedelta(days=1), card_free={"auto_cancel"})
        if i.kind == "auto_cancel"
    ]
    assert [(i.job_id, i.payload) for i in replies] == [
        (job_id, {"discovered": maximum + 1, "agreed_max": maximum})
    ]
    report = await env.tracker.tick()  # finished now: nothing more to do, nothing said twice
    assert report.overshoots == 0 and len(await auto_cancel_audit(env, job_id)) == 1


async def test_a_cancel_cloudflare_refuses_is_retried_the_next_cycle(env: Env) -> None:
    job_id, _ = await create(env)
    tracked = await env.store.get_job(job_id)
    assert tracked is not None and tracked.agreed_max is not None
    await env.sim.set_counts(job_id, {"total_messages_discovered": tracked.agreed_max + 50})
    await env.sim.set_faults({"status": 503, "count": 1, "method": "POST", "path": "/cancel"})
    report = await env.tracker.tick()  # the cancel fails: logged, the cycle goes on
    assert report.overshoots == 1 and env.guard.failures == 1
    assert str((await env.client.get_job(job_id)).status) != "CANCELLED"
    assert not await auto_cancel_audit(env, job_id)
    report = await env.tracker.tick()
    assert report.overshoots == 1 and env.guard.cancelled == 1
    assert str((await env.client.get_job(job_id)).status) == "CANCELLED"
    assert len(await auto_cancel_audit(env, job_id)) == 1


async def test_a_watched_job_without_an_agreed_maximum_is_never_auto_cancelled(env: Env) -> None:
    created = await env.client.create_job(draft().to_request(requester_label="@U1", channel_label="#C1"))
    await env.sim.hold([created.job_id])
    tracked, _ = await env.jobs.watch(created.job_id, requester="U1", channel_id="C1")
    assert tracked.agreed_max is None
    await env.sim.set_counts(created.job_id, {"total_messages_discovered": 1_000_000})
    report = await env.tracker.tick()
    assert report.overshoots == 0
    assert str((await env.client.get_job(created.job_id)).status) != "CANCELLED"


async def test_the_preview_counts_exactly_up_to_its_limit(env: Env) -> None:
    assert JobService.__init__.__kwdefaults__["preview_limit"] == 10_000
    full = await env.jobs.preview(draft(), requester="U1", channel_id="C1")
    count = len(full.result.messages)
    assert count > 2 and not full.result.capped
    env.jobs.preview_limit = count  # exactly the limit: a count, not "more than"
    exact = await env.jobs.preview(draft(), requester="U1", channel_id="C1")
    assert (len(exact.result.messages), exact.result.capped) == (count, False)
    env.jobs.preview_limit = count - 1
    over = await env.jobs.preview(draft(), requester="U1", channel_id="C1")
    assert (len(over.result.messages), over.result.capped) == (count - 1, True)
    stored = await env.store.get_preview(over.id)
    assert stored is not None and (stored.matched, stored.capped) == (count - 1, True)
    # The uncounted preview is broad: its reason says what the preview shows ("more than N").
    assert ReasonCode.UNCOUNTED not in {r.code for r in exact.reasons}
    uncounted = [r for r in over.reasons if r.code is ReasonCode.UNCOUNTED]
    assert len(uncounted) == 1 and f"more than {count - 1:,} messages" in uncounted[0].text


async def test_one_more_job_than_the_maximum_active_is_refused(env: Env) -> None:
    job_id, _ = await create(env)
    before = [j.job_id async for j in env.client.iter_jobs()]
    preview = await env.jobs.preview(draft("Meeting"), requester="U1", channel_id="C1")
    outcome = await env.jobs.create_from_preview(preview.id, actor="U1")
    assert outcome.status is CreateStatus.REFUSED and outcome.reason is not None
    assert job_id in outcome.reason and "SWEEP_MAX_ACTIVE_JOBS" in outcome.reason
    assert [j.job_id async for j in env.client.iter_jobs()] == before
    record = await env.store.get_preview(preview.id)
    assert record is not None and record.state.value == "previewed"  # not used: confirm again later
    denied = [e for e in await env.store.list_audit() if e.action == "denied"]
    assert len(denied) == 1 and "SWEEP_MAX_ACTIVE_JOBS" in denied[0].outcome
