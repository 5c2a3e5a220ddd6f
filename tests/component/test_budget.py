"""The Cloudflare request budget all replicas share, on real databases (SQLite and PostgreSQL).

Two `SqlStore`s on one database are two replicas (two engines, two connections). Every test runs once
per backend (`store_url`, tests/component/conftest.py). Times are given to the store explicitly
(`now=`, epoch seconds) where the test is about the window; otherwise the database's own clock runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.budget import DEFAULT_PAUSE_SECONDS, BudgetLimits, SharedBudget
from bot.cloudflare.budget import Priority
from bot.store import SqlStore
from bot.store.budget import SLICE_SECONDS, WINDOW_SECONDS

ACCOUNT = "0123456789abcdef0123456789abcdef"
#: A moment on a slice boundary, so the slices a test fills are easy to follow.
T0 = 1_800_000_000.0 - 1_800_000_000.0 % SLICE_SECONDS


@pytest.fixture
async def replicas(store_url: str) -> AsyncIterator[tuple[SqlStore, SqlStore]]:
    """Two stores on one database: two replicas."""
    async with SqlStore.open(store_url) as a, SqlStore.open(store_url) as b:
        yield a, b


async def test_two_replicas_reserving_at_once_never_exceed_the_limit_together(
    replicas: tuple[SqlStore, SqlStore],
) -> None:
    a, b = replicas
    limit = 60

    async def reserve(store: SqlStore) -> bool:
        return (await store.request_budget.reserve_requests(ACCOUNT, limit=limit)).granted

    # Twice the limit, asked at once by both replicas (each its own connection).
    asked = [reserve(a) for _ in range(limit)] + [reserve(b) for _ in range(limit)]
    granted = await asyncio.gather(*asked)
    assert sum(granted) == limit, "exactly the limit is granted, no slot lost, none given twice"
    reading = await b.request_budget.reserve_requests(ACCOUNT, limit=limit, count=0)
    assert reading.used == limit
    assert not (await a.request_budget.reserve_requests(ACCOUNT, limit=limit)).granted


async def test_no_five_minutes_ever_hold_more_than_the_limit(replicas: tuple[SqlStore, SqlStore]) -> None:
    a, b = replicas
    limit = 12
    granted_at: list[float] = []
    # Twenty minutes of two replicas asking every 7 s until refused, on a clock the test holds.
    now = T0
    while now < T0 + 1200:
        for store in (a, b):
            while (await store.request_budget.reserve_requests(ACCOUNT, limit=limit, now=now)).granted:
                granted_at.append(now)
        now += 7
    assert len(granted_at) >= 3 * limit, "the window slides: slots come back as time passes"
    for start in granted_at:
        within = [t for t in granted_at if start <= t < start + WINDOW_SECONDS]
        assert len(within) <= limit, f"{len(within)} reservations in the 5 minutes from {start - T0} s"


async def test_a_refusal_says_when_the_next_slot_is_free(replicas: tuple[SqlStore, SqlStore]) -> None:
    a, b = replicas
    budget = a.request_budget
    for offset in (0, 0, 45, 100):  # slices 0, 0, 1 and 3
        assert (await budget.reserve_requests(ACCOUNT, limit=4, now=T0 + offset)).granted
    refused = await b.request_budget.reserve_requests(ACCOUNT, limit=4, now=T0 + 120)
    assert not refused.granted and refused.used == 4
    wait = refused.seconds_until(limit=4)
    # Slice 0 (two requests) stops counting 11 slices after it began.
    assert wait == pytest.approx(T0 + 11 * SLICE_SECONDS - (T0 + 120))
    assert refused.seconds_until(limit=4, count=3) == pytest.approx(T0 + 12 * SLICE_SECONDS - (T0 + 120))
    assert refused.seconds_until(limit=4, count=5) is None
    just_before = T0 + 120 + wait - 0.5
    assert not (await b.request_budget.reserve_requests(ACCOUNT, limit=4, now=just_before)).granted
    assert (await b.request_budget.reserve_requests(ACCOUNT, limit=4, now=T0 + 120 + wait)).granted


async def test_reading_the_budget_reserves_nothing(replicas: tuple[SqlStore, SqlStore]) -> None:
    a, _ = replicas
    budget = a.request_budget
    assert (await budget.reserve_requests(ACCOUNT, limit=2, now=T0)).granted
    for _ in range(3):
        reading = await budget.reserve_requests(ACCOUNT, limit=2, count=0, now=T0 + 1)
        assert reading.used == 1
    assert (await budget.reserve_requests(ACCOUNT, limit=2, now=T0 + 2)).granted
    # Accounts are counted apart.
    assert (await budget.reserve_requests("another", limit=1, now=T0 + 3)).granted


async def test_a_clock_read_a_moment_early_never_loses_a_count(replicas: tuple[SqlStore, SqlStore]) -> None:
    # A replica whose statement read the clock just before another's (it waited on the row's lock)
    # counts into the newest slice rather than an older one.
    a, b = replicas
    assert (await a.request_budget.reserve_requests(ACCOUNT, limit=2, now=T0 + 31)).granted
    assert (await b.request_budget.reserve_requests(ACCOUNT, limit=2, now=T0 + 29)).granted
    assert not (await a.request_budget.reserve_requests(ACCOUNT, limit=2, now=T0 + 29)).granted
    reading = await a.request_budget.reserve_requests(ACCOUNT, limit=2, count=0, now=T0 + 31)
    assert reading.used == 2 and len(reading.slices) == 1


async def test_a_429_through_one_replica_pauses_the_other_until_retry_after(
    replicas: tuple[SqlStore, SqlStore],
) -> None:
    a, b = replicas
    assert await a.request_budget.pause_requests(ACCOUNT, seconds=30, now=T0) == 30
    refused = await b.request_budget.reserve_requests(ACCOUNT, limit=100, now=T0 + 10)
    assert not refused.granted and refused.pause_left == pytest.approx(20)
    assert refused.seconds_until(limit=100) == pytest.approx(20)
    # A shorter Retry-After seen meanwhile does not cut the pause short; a longer one extends it.
    assert await b.request_budget.pause_requests(ACCOUNT, seconds=5, now=T0 + 10) == pytest.approx(20)
    assert not (await a.request_budget.reserve_requests(ACCOUNT, limit=100, now=T0 + 29.9)).granted
    assert (await a.request_budget.reserve_requests(ACCOUNT, limit=100, now=T0 + 30)).granted
    assert (await b.request_budget.reserve_requests(ACCOUNT, limit=100, now=T0 + 30)).granted
    assert await a.request_budget.pause_requests(ACCOUNT, seconds=60, now=T0 + 40) == 60
    assert not (await b.request_budget.reserve_requests(ACCOUNT, limit=100, now=T0 + 99)).granted


class Clock:
    """The time both replicas read (epoch seconds), moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def test_urgent_requests_are_served_before_routine_ones_when_it_is_tight(
    replicas: tuple[SqlStore, SqlStore],
) -> None:
    a, b = replicas
    clock = Clock()
    limits = BudgetLimits(cloudflare=100)  # 80 in all, routine requests up to 60
    assert (limits.urgent, limits.routine) == (80, 60)
    poller = SharedBudget(a.request_budget, ACCOUNT, limits=limits, clock=clock)
    people = SharedBudget(b.request_budget, ACCOUNT, limits=limits, clock=clock)
    # The poller and the people reading spend the routine share between them...
    spent = [await (poller if n % 2 else people).reserve(Priority.ROUTINE) for n in range(61)]
    assert [r.granted for r in spent] == [True] * 60 + [False]
    refused = spent[-1]
    assert refused.wait == pytest.approx(11 * SLICE_SECONDS) and "used up" in refused.reason
    assert "80 of Cloudflare's 100" in refused.reason and "to 60" in refused.reason
    # ...and creates and cancels still get the 20 kept for them, on either replica; then they wait too.
    urgent = [await (poller if n % 2 else people).reserve(Priority.URGENT) for n in range(21)]
    assert [r.granted for r in urgent] == [True] * 20 + [False]
    clock.now += 11 * SLICE_SECONDS
    assert (await people.reserve(Priority.ROUTINE)).granted
    snapshot = await poller.snapshot()
    assert snapshot.used == 1 and snapshot.left == {Priority.URGENT: 79, Priority.ROUTINE: 59}


async def test_a_429_pauses_every_replica_through_the_shared_budget(
    replicas: tuple[SqlStore, SqlStore],
) -> None:
    a, b = replicas
    clock = Clock()
    seen_it = SharedBudget(a.request_budget, ACCOUNT, clock=clock)
    other = SharedBudget(b.request_budget, ACCOUNT, clock=clock)
    assert await seen_it.rate_limited(45) == 45
    clock.now += 15
    for priority in Priority:  # creates and cancels wait too: Cloudflare would refuse them
        refused = await other.reserve(priority)
        assert not refused.granted and refused.wait == pytest.approx(30)
        assert "HTTP 429" in refused.reason and "every Sweep replica waits until" in refused.reason
    assert (await other.snapshot()).pause_seconds == pytest.approx(30)
    clock.now += 30
    assert (await other.reserve(Priority.ROUTINE)).granted
    # Without Retry-After the pause is Cloudflare's block: 5 minutes.
    assert await other.rate_limited(None) == DEFAULT_PAUSE_SECONDS
    clock.now += DEFAULT_PAUSE_SECONDS - 1
    assert not (await seen_it.reserve(Priority.URGENT)).granted


async def test_a_database_that_cannot_count_refuses_in_words(store_url: str) -> None:
    store = await SqlStore.open(store_url)
    budget = SharedBudget(store.request_budget, ACCOUNT)
    await store.close()
    refused = await budget.reserve(Priority.URGENT)
    assert not refused.granted and refused.wait > 0
    assert "could not reach its database" in refused.reason
