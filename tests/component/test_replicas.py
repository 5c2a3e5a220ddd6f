"""Several replicas on one PostgreSQL database (two `SqlStore`s = two engines = two replicas).

The poller lease: exactly one holds it; when the holder's connection or store goes, the other takes
it at its next check. On SQLite the one replica always holds it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from bot.store import SqlStore
from tests.component.conftest import PG_SERVER, postgres_database

INTERVAL = 0.2  # the checks' period in these tests (a poll interval)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database of the test's own (dropped afterwards)."""
    async with postgres_database() as url:
        yield url


async def within(seconds: float, condition: Callable[[], Awaitable[bool]]) -> float:
    """Check `condition` every INTERVAL until it holds; return the time it took, fail after `seconds`."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not within {seconds} s")
        await asyncio.sleep(INTERVAL)
    return time.monotonic() - started


async def test_only_one_replica_gets_the_lease(pg_url: str) -> None:
    async with SqlStore.open(pg_url) as a, SqlStore.open(pg_url) as b:
        assert await a.poller_lease.check() is True
        assert await b.poller_lease.check() is False
        # Checks again and again do not move it, nor let both hold it.
        for _ in range(3):
            assert await a.poller_lease.check() is True
            assert await b.poller_lease.check() is False
        assert (a.poller_lease.held, b.poller_lease.held) == (True, False)


async def test_closing_the_holder_lets_the_other_take_over_within_two_intervals(pg_url: str) -> None:
    a = await SqlStore.open(pg_url)
    async with SqlStore.open(pg_url) as b:
        try:
            assert await a.poller_lease.check() is True
            assert await b.poller_lease.check() is False
        finally:
            await a.close()
        took = await within(2 * INTERVAL, b.poller_lease.check)
        assert b.poller_lease.held
        assert took <= 2 * INTERVAL


async def test_a_lost_connection_is_a_lost_lease(pg_url: str) -> None:
    """The server ends the holder's session (as when its process dies): the other replica takes over,
    and the old holder, finding its connection gone, stops counting itself the poller."""
    database = pg_url.rsplit("/", 1)[1]
    async with SqlStore.open(pg_url) as a, SqlStore.open(pg_url) as b:
        assert await a.poller_lease.check() is True
        assert await b.poller_lease.check() is False
        admin = await asyncpg.connect(**PG_SERVER)
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks JOIN pg_stat_activity USING (pid)"
                " WHERE locktype = 'advisory' AND datname = $1",
                database,
            )
        finally:
            await admin.close()
        assert ended == 1
        await within(2 * INTERVAL, b.poller_lease.check)
        assert await a.poller_lease.check() is False
        assert (a.poller_lease.held, b.poller_lease.held) == (False, True)


async def test_released_lease_is_taken_and_the_old_holder_can_win_it_back(pg_url: str) -> None:
    async with SqlStore.open(pg_url) as a, SqlStore.open(pg_url) as b:
        assert await a.poller_lease.check()
        await a.poller_lease.release()
        assert not a.poller_lease.held
        assert await b.poller_lease.check()
        assert not await a.poller_lease.check()
        await b.poller_lease.release()
        assert await a.poller_lease.check()


async def test_on_sqlite_the_one_replica_always_holds_the_lease(tmp_path: Path) -> None:
    async with SqlStore.open(tmp_path / "sweep.db") as store:
        assert store.poller_lease.held
        assert await store.poller_lease.check()
        await store.poller_lease.release()
        assert store.poller_lease.held
