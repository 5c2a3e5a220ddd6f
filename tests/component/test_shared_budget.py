"""Two replicas' Cloudflare clients and trackers on one database and the simulator over HTTP.

A replica here is a `SqlStore`, a `CloudflareClient` whose budget is a `SharedBudget` over that
store, and a `Tracker`. Both read one clock the test moves (the replicas' "database clock"), and
the clients' waits move it too, so nothing waits for real time. Every test runs on SQLite and on
PostgreSQL (`store_url`). The simulator answers the 429s (its fault injection, with Retry-After).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr

from bot.budget import BudgetLimits, SharedBudget
from bot.cloudflare.budget import urgent
from bot.cloudflare.client import CloudflareClient, Credentials, RetryPolicy, rate_limit_hook
from bot.cloudflare.errors import BudgetExhaustedError, RateLimitedError
from bot.cloudflare.models import CreateJobRequest
from bot.errors import CloudflareBudgetSpent
from bot.jobs import JobService
from bot.simulator.app import RunningSimulator
from bot.store import IntentState, SqlStore
from bot.tracker import Tracker
from tests.component.conftest import SIMULATOR_TOKEN
from tests.component.test_creates import DRAFT

T0 = 1_800_000_000.0
LIST = "GET /accounts/{account_id}/email-security/investigate/bulk"
CREATE = "POST /accounts/{account_id}/email-security/investigate/bulk"
CANCEL = "POST /accounts/{account_id}/email-security/investigate/bulk/{job_id}/cancel"


class Clock:
    """The clock both replicas agree on (epoch seconds); a client's wait moves it instead of sleeping."""

    def __init__(self) -> None:
        self.now = T0
        #: Called before a wait moves the clock (a test's checkpoint while the wait is in force).
        self.before_wait: Callable[[float], Awaitable[None]] | None = None

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if self.before_wait is not None:
            await self.before_wait(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class Replica:
    store: SqlStore
    client: CloudflareClient
    tracker: Tracker


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def replicas(
    store_url: str, simulator: RunningSimulator, account_id: str, clock: Clock
) -> AsyncIterator[tuple[Replica, Replica]]:
    """Two replicas on one database, with Cloudflare's 1,200 a tiny 20 (urgent 16, routine 12)."""
    async with (
        httpx.AsyncClient(timeout=10) as http,
        SqlStore.open(store_url) as a,
        SqlStore.open(store_url) as b,
    ):

        def replica(store: SqlStore) -> Replica:
            budget = SharedBudget(
                store.request_budget, account_id, limits=BudgetLimits(cloudflare=20), clock=clock
            )
            client = CloudflareClient(
                http,
                account_id=account_id,
                credentials=Credentials(api_token=SecretStr(SIMULATOR_TOKEN)),
                base_url=str(simulator.base_url),
                retry=RetryPolicy(base_delay=0, jitter=0),
                sleep=clock.sleep,
                budget=budget,
            )
            return Replica(store, client, Tracker(store, client, poll_seconds=10))

        yield replica(a), replica(b)


async def track_one(simulator: RunningSimulator, replica: Replica) -> str:
    """Seed one held PENDING job and track it (through the replica: one GET)."""
    [job_id] = await simulator.seed_jobs(1, "PENDING", hold=True)
    job = await replica.client.get_job(job_id)
    await replica.store.track_existing(
        job, account_id=replica.client.account_id, requester="U1", channel_id="C1", now=job.created_at
    )
    return job_id


def sent(simulator: RunningSimulator, route: str | None = None) -> int:
    """Return how many API requests the simulator has answered (on one route, or in all)."""
    stats = simulator.state.stats
    return stats.total if route is None else stats.requests[route]


async def test_a_429_seen_by_one_replica_pauses_the_other_until_retry_after(
    simulator: RunningSimulator, replicas: tuple[Replica, Replica], clock: Clock
) -> None:
    a, b = replicas
    job_id = await track_one(simulator, a)
    await simulator.set_faults({"rules": [{"status": 429, "retry_after": 60, "count": 1, "path": "/bulk"}]})
    # Replica A's list meets the 429: too long to wait out (over 30 s), so its caller hears Cloudflare's.
    with pytest.raises(RateLimitedError) as seen:
        await a.client.list_jobs()
    assert not isinstance(seen.value, BudgetExhaustedError) and 10429 in seen.value.codes
    assert seen.value.retry_after == 60
    before = sent(simulator)

    clock.now += 1
    # Replica B's poll sends nothing and waits for the pause, as a deferred cycle (not a failure)...
    report = await b.tracker.tick()
    assert (report.api_calls, report.errors, report.ok) == (0, [], False)
    assert report.deferred == pytest.approx(59)
    assert b.tracker.next_delay(report) == 10, "no failure backoff: the next cycle asks again as usual"
    # ...and its people's requests, urgent ones too, are refused at once (59 s is past their 30 s bound).
    for call in (b.client.list_jobs(), b.client.cancel_job(job_id)):
        with pytest.raises(BudgetExhaustedError) as refused:
            await call
        assert refused.value.retry_after == pytest.approx(59) and refused.value.status is None
        assert "HTTP 429" in refused.value.user_message() and "try again in 59 s" in str(refused.value)
    assert sent(simulator) == before, "nothing reached Cloudflare during the pause"

    # When Retry-After has passed, both replicas send again.
    clock.now += 59
    report = await b.tracker.tick()
    assert report.ok and report.api_calls >= 1 and report.deferred is None and report.jobs_seen == 1
    assert (await a.client.list_jobs()).items
    assert sent(simulator) > before


async def test_a_short_429_is_waited_out_on_every_replica_and_they_resume(
    simulator: RunningSimulator, replicas: tuple[Replica, Replica], clock: Clock
) -> None:
    a, b = replicas
    await simulator.set_faults(
        {"rules": [{"status": 429, "retry_after": 2, "count": 1, "method": "GET", "path": "/bulk"}]}
    )
    a_waiting, released = asyncio.Event(), asyncio.Event()
    sent_while_b_waited: list[int] = []
    told: list[float] = []
    first: asyncio.Task[int] | None = None

    async def gate(seconds: float) -> None:
        if asyncio.current_task() is first:  # replica A, in its 2 s wait: hold it there
            a_waiting.set()
            await released.wait()
        else:
            sent_while_b_waited.append(sent(simulator))

    async def list_on_a() -> int:
        return len((await a.client.list_jobs()).items)

    async def tell(seconds: float) -> None:
        told.append(seconds)

    clock.before_wait = gate
    first = asyncio.create_task(list_on_a())
    await asyncio.wait_for(a_waiting.wait(), 10)  # A met the 429 and recorded the pause
    # B asks while A waits: it waits for the same pause, is told how long, and only then sends.
    token = rate_limit_hook.set(tell)
    try:
        await b.client.list_jobs()
    finally:
        rate_limit_hook.reset(token)
    assert told == [pytest.approx(2)]
    assert sent_while_b_waited == [1], "B sent nothing while the pause lasted (only A's 429 was served)"
    released.set()
    await first
    assert simulator.state.stats.statuses["429"] == 1 and sent(simulator, LIST) == 3


async def test_creates_and_cancels_are_served_when_polls_have_spent_their_share(
    simulator: RunningSimulator, replicas: tuple[Replica, Replica], clock: Clock
) -> None:
    a, b = replicas
    job_id = await track_one(simulator, a)  # 1 routine request
    # Replica A's poller spends the rest of the routine share (12 of the 16 Sweep keeps to)...
    # (a PENDING job may be in any active status: 3 lists a cycle)
    cycles = 0
    while (report := await a.tracker.tick()).deferred is None:
        assert report.ok and report.api_calls == 3
        cycles += 1
    assert cycles == 3 and report.api_calls == 2 and report.deferred == pytest.approx(330)
    # ...and B's people can no longer list, but can still create and cancel: 4 requests are theirs.
    with pytest.raises(BudgetExhaustedError, match="used up"):
        await b.client.list_jobs()
    request = CreateJobRequest.model_validate(
        {
            "action": "MOVE",
            "destination": "JunkEmail",
            "search_params": {"subject": "x", "detections_only": True},
        }
    )
    created = await b.client.create_job(request)
    await b.client.cancel_job(created.job_id)
    await a.client.cancel_job(job_id)
    assert (sent(simulator, CREATE), sent(simulator, CANCEL)) == (1, 2)
    # The 16th is the last: then creates wait too (the clock does not move here, so they fail).
    await b.client.create_job(request)
    with pytest.raises(BudgetExhaustedError) as refused:
        await b.client.create_job(request)
    assert refused.value.retry_after == pytest.approx(330) and sent(simulator, CREATE) == 2


async def test_a_create_the_budget_cannot_serve_made_no_job_and_says_so(
    simulator: RunningSimulator, replicas: tuple[Replica, Replica], account_id: str
) -> None:
    a, b = replicas
    jobs = JobService(
        client=b.client,
        store=b.store,
        account_id=account_id,
        wake_notifier=lambda: None,
        max_active_jobs=None,
    )
    preview = await jobs.preview(DRAFT, requester="U1", channel_id="C1")
    # Replica A spends all 16, the share kept for creates and cancels included.
    with urgent(), pytest.raises(BudgetExhaustedError):
        while True:
            await a.client.list_jobs()
    with pytest.raises(CloudflareBudgetSpent) as refused:
        await jobs.create_from_preview(preview.id, actor="U1", click_channel_id="C1")
    message = refused.value.user_message()
    assert message.startswith("No job was created. Sweep did not send this request to Cloudflare: "), message
    assert "used up" in message and "try again in 330 s" in message
    assert refused.value.retry_after == pytest.approx(330)
    assert sent(simulator, CREATE) == 0
    # The intent failed (definitely: nothing was sent) and the audit log says why.
    record = await b.store.get_preview(preview.id)
    assert record is not None and record.tag is not None
    intent = await b.store.get_create_intent(record.tag)
    assert intent is not None and intent.state is IntentState.FAILED
    [entry] = [e for e in await b.store.list_audit() if e.action == "create"]
    assert entry.outcome.startswith("error: Sweep did not send this request to Cloudflare")
