"""The poller lease: the one replica that polls Cloudflare and resolves unknown creates.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) held on a connection of its own.
The lock lives exactly as long as that connection: a replica that dies (SIGKILL, a crash, a lost
network the server notices) drops its connection and the server releases the lock at once, so no
clock and no expiry are involved. Each check (once per poll interval) pings the held connection; a
ping that fails means the lease is lost (the server has released the lock, or will when it notices),
and the replica stops polling until it wins the lock again. A replica without the lease tries on
each check, so another takes over at its first check after the holder's connection closed: within
one poll interval.

Chosen over a lease row with an expiry: nothing to renew, no clock to trust, and the release on a
crash is immediate; the cost is one idle connection per holding replica.

SQLite: one replica by design (one file, one writer): the lease is always held.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.db import Database

__all__ = ["POLLER_LOCK_KEY", "PollerLease"]

log = logging.getLogger("sweep.lease")

#: The advisory lock's key ("SWPOLL" in ASCII): one poller per database. Not the migrations' key
#: ("SWEEP", `bot.store.migrate`): a replica starting while another polls must still migrate.
POLLER_LOCK_KEY = 0x53_57_50_4F_4C_4C
#: How long a ping of the held connection may take before the lease counts as lost.
PING_SECONDS = 5.0


class PollerLease:
    """Whether this replica is the poller; `check` renews or tries to win it, `release` gives it up."""

    def __init__(self, db: Database, *, key: int = POLLER_LOCK_KEY) -> None:
        self._db = db
        self._key = key
        self._conn: AsyncConnection | None = None
        self._always = db.dialect != "postgresql"
        self._held = self._always
        self._lock = asyncio.Lock()

    @property
    def held(self) -> bool:
        """Return whether the last check found the lease held (SQLite: always)."""
        return self._held

    async def check(self) -> bool:
        """Return whether this replica holds the lease now, taking it if it is free; never raises."""
        if self._always:
            return True
        async with self._lock:
            if self._conn is not None:
                if await self._alive(self._conn):
                    return True
                log.warning("lost the poller lease: its database connection failed")
                await self._drop()
            self._held = await self._try_take()
            return self._held

    async def release(self) -> None:
        """Give the lease up (at shutdown) so another replica takes over at its next check."""
        async with self._lock:
            conn, self._conn = self._conn, None
            self._held = self._always
            if conn is None:
                return
            try:
                await asyncio.wait_for(self._unlock(conn), PING_SECONDS)
            except Exception:  # noqa: BLE001 - closing the connection below releases it anyway
                log.debug("could not unlock the poller lease; closing its connection", exc_info=True)
            await _close_for_good(conn)

    async def _unlock(self, conn: AsyncConnection) -> None:
        await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self._key})
        await conn.commit()

    async def _alive(self, conn: AsyncConnection) -> bool:
        try:
            await asyncio.wait_for(self._ping(conn), PING_SECONDS)
        except Exception:  # noqa: BLE001 - any failure of the held connection is a lost lease
            return False
        return True

    @staticmethod
    async def _ping(conn: AsyncConnection) -> None:
        await conn.execute(text("SELECT 1"))
        await conn.commit()

    async def _try_take(self) -> bool:
        try:
            conn = await asyncio.wait_for(self._db.engine.connect(), PING_SECONDS)
        except Exception:  # noqa: BLE001 - database unreachable: not the poller, try next check
            log.debug("cannot reach the database for the poller lease", exc_info=True)
            return False
        try:
            result = await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self._key})
            taken = bool(result.scalar_one())
            await conn.commit()
        except Exception:  # noqa: BLE001 - as above
            log.debug("could not ask for the poller lease", exc_info=True)
            await _close_for_good(conn)
            return False
        if not taken:
            await conn.close()  # back to the pool: it holds no lock
            return False
        log.info("holding the poller lease: this replica polls Cloudflare")
        self._conn = conn
        return True

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self._held = False
        if conn is not None:
            await _close_for_good(conn)


async def _close_for_good(conn: AsyncConnection) -> None:
    """Close the connection itself (never back to the pool, where a session lock would live on)."""
    try:
        await conn.invalidate()
        await conn.close()
    except Exception:  # noqa: BLE001 - already broken: nothing more to release
        log.debug("closing the poller lease's connection failed", exc_info=True)
