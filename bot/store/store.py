"""`Store`: every aggregate behind one object, over one engine (SQLite or PostgreSQL).

Callers use the methods of the aggregates' Protocols directly on the store (`store.apply_snapshots`,
`store.outbox_due`…) or through an aggregate (`store.jobs`, `store.intents`, `store.previews`,
`store.audit`, `store.outbox`). An operation spanning aggregates (`finish_create`: the intent, the
job, its card row and an audit entry) runs in one transaction inside the aggregate that owns it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy import func, select, update
from sqlalchemy.exc import SQLAlchemyError

from bot.store import migrate as schema_steps
from bot.store.approvals import ApprovalStore, SqlApprovals
from bot.store.audit import AuditStore, SqlAudit
from bot.store.budget import SqlRequestBudget
from bot.store.db import Database, create_engine
from bot.store.intents import IntentStore, SqlIntents
from bot.store.jobs import CardStore, JobStore, SqlJobs
from bot.store.lease import PollerLease
from bot.store.models import StoreError, StoreUnavailable
from bot.store.outbox import OutboxStore, SqlOutbox
from bot.store.previews import PreviewStore, SqlPreviews
from bot.store.schema import approvals, metadata, outbox, tracked_jobs

_UNAVAILABLE = (SQLAlchemyError, sqlite3.Error, OSError)


class Store(JobStore, CardStore, IntentStore, PreviewStore, ApprovalStore, AuditStore, OutboxStore, Protocol):
    """Everything Sweep persists (implemented by `SqlStore` on SQLite and PostgreSQL)."""

    async def close(self) -> None:
        """Release the database."""

    async def schema_version(self) -> int:
        """Return the applied schema version."""


class SqlStore(SqlJobs, SqlIntents, SqlPreviews, SqlApprovals, SqlAudit, SqlOutbox):
    """The store over SQLAlchemy Core: every aggregate's methods on one object, one engine under all.

    The aggregates only share the `Database`; each is also reachable alone (`store.jobs`…).
    """

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.db = db
        self.jobs = SqlJobs(db)
        self.intents = SqlIntents(db)
        self.previews = SqlPreviews(db)
        self.approvals = SqlApprovals(db)
        self.audit = SqlAudit(db)
        self.outbox = SqlOutbox(db)
        #: Which replica polls (PostgreSQL: an advisory lock on its own connection; SQLite: always this one).
        self.poller_lease = PollerLease(db)
        #: The Cloudflare request budget every replica on this database shares (`bot.budget` uses it).
        self.request_budget = SqlRequestBudget(db)

    @classmethod
    def open(cls, target: str | Path) -> _Opener:
        """Open (creating and migrating if needed) the database at a SQLite path or a URL.

        `await SqlStore.open(…)` or `async with SqlStore.open(…) as store`.
        """
        return _Opener(target)

    @classmethod
    async def _connect(cls, target: str | Path) -> Self:
        engine = create_engine(target)
        try:
            async with engine.execution_options(sweep_write=True).begin() as conn:
                await conn.run_sync(schema_steps.upgrade)
                if engine.dialect.name == "sqlite":
                    # One process per SQLite file: claims left in it are a dead process's, void now.
                    await conn.execute(
                        update(outbox).where(outbox.c.claimed_until.is_not(None)).values(claimed_until=None)
                    )
        except StoreError:
            await engine.dispose()
            raise
        except _UNAVAILABLE as error:
            await engine.dispose()
            raise StoreUnavailable(_reason(error)) from error
        return cls(Database(engine))

    async def close(self) -> None:
        """Give up the poller lease and close the database."""
        await self.poller_lease.release()
        await self.request_budget.close()
        await self.db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def schema_version(self) -> int:
        """Return the applied schema version."""
        async with self.db.read() as conn:
            return await conn.run_sync(schema_steps.current_version)

    async def gauge_counts(self) -> list[tuple[str, str, int, float | None]]:
        """Return (table, state, rows, oldest due_at): unsent outbox rows, active jobs, pending approvals."""
        live = ("pending", "attempting", "failed")
        rows_by_state = (
            select(outbox.c.state, func.count(), func.min(outbox.c.due_at))
            .where(outbox.c.state.in_(live))
            .group_by(outbox.c.state)
        )
        jobs_by_status = (
            select(tracked_jobs.c.status, func.count())
            .where(tracked_jobs.c.terminal == 0)
            .group_by(tracked_jobs.c.status)
        )
        pending = select(func.count()).select_from(approvals).where(approvals.c.state == "pending")
        async with self.db.read() as conn:
            boxed = (await conn.execute(rows_by_state)).all()
            active = (await conn.execute(jobs_by_status)).all()
            waiting = int((await conn.execute(pending)).scalar_one())
        return (
            [("outbox", str(state), int(n), oldest) for state, n, oldest in boxed]
            + [("jobs", str(status), int(n), None) for status, n in active]
            + [("approvals", "pending", waiting, None)]
        )

    async def counts(self) -> dict[str, int]:
        """Return the number of rows of every table (for inspection and tests)."""
        result: dict[str, int] = {}
        async with self.db.read() as conn:
            for table in metadata.sorted_tables:
                result[table.name] = int(
                    (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                )
        return result


def _reason(error: BaseException) -> str:
    """Return one line saying why the database could not be opened (the driver's own words)."""
    original = getattr(error, "orig", None) or error
    return str(original).splitlines()[0] if str(original) else type(original).__name__


class _Opener:
    """`await SqlStore.open(target)` or `async with SqlStore.open(target) as store`."""

    def __init__(self, target: str | Path) -> None:
        self._target = target
        self._store: SqlStore | None = None

    def __await__(self) -> Generator[Any, None, SqlStore]:
        return SqlStore._connect(self._target).__await__()

    async def __aenter__(self) -> SqlStore:
        self._store = await SqlStore._connect(self._target)
        return self._store

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._store is not None:
            await self._store.close()


def open_store(target: str | Path) -> _Opener:
    """Open the store at a SQLite path, `sqlite+aiosqlite:///path` or `postgresql+asyncpg://…`."""
    return SqlStore.open(target)


async def migrate(target: str | Path) -> int:
    """Apply pending migrations to the database at `target`; return the schema version."""
    async with SqlStore.open(target) as store:
        return await store.schema_version()
