"""The Cloudflare request budget aggregate: one counter per account, shared by every replica.

Requests are counted in 30-second slices of the database's clock, the current slice and the ten
before it (`BUDGET_SLICES`). A reservation is granted only when the requests counted in those
slices plus this one stay within the caller's limit, so no 5 minutes ever hold more reservations
than the limit (any 5 minutes lie within 11 consecutive slices). A reserved slot is spent at once.

Each reservation is one `UPDATE … RETURNING` of the account's row: every expression reads only that
row, so concurrent reservations are serialised by the row's lock (PostgreSQL re-evaluates the
statement on the row as the previous holder committed it; SQLite has one writer at a time) and two
replicas can never both take the last slot. The slice comes from the database's clock (`now()` on
PostgreSQL, the file's host clock on SQLite), so replicas with skewed clocks still agree. On
PostgreSQL the statement runs in autocommit on a connection of the aggregate's own: one round trip
per reservation, with no pool checkout, BEGIN or COMMIT around it.

A 429 sets `paused_until` (database clock) to the latest end any replica was told; while it lasts
nothing is granted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import (
    BigInteger,
    Float,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    cast,
    extract,
    func,
    literal_column,
    or_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from bot.store.db import Database, StoreClosedError, insert
from bot.store.schema import BUDGET_SLICES, cloudflare_budget

__all__ = ["SLICE_SECONDS", "WINDOW_SECONDS", "BudgetReading", "RequestBudgetStore", "SqlRequestBudget"]

log = logging.getLogger("sweep.budget")

#: Cloudflare's window: so many requests per 5 minutes per token.
WINDOW_SECONDS = 300.0
SLICE_SECONDS = 30.0
assert SLICE_SECONDS * (BUDGET_SLICES - 1) >= WINDOW_SECONDS  # noqa: S101 - the guarantee's premise

_BUDGET = cloudflare_budget.c
_COUNTS = [_BUDGET[f"n{i}"] for i in range(BUDGET_SLICES)]


@dataclass(frozen=True)
class BudgetReading:
    """The account's budget as one reservation (or pause) left it, on the database's clock."""

    at: float  # the database's clock, epoch seconds
    granted: bool
    used: int  # requests reserved in the counted slices, by every replica
    #: (when a slice's requests stop counting, how many), soonest first; empty slices left out.
    slices: tuple[tuple[float, int], ...] = ()
    paused_until: float | None = None

    @property
    def pause_left(self) -> float:
        """Return the seconds until a 429's pause ends (0: none in force)."""
        if self.paused_until is None:
            return 0.0
        return max(self.paused_until - self.at, 0.0)

    def seconds_until(self, *, limit: int, count: int = 1) -> float | None:
        """Return the seconds until `count` more fit within `limit` (None: never, `count` > `limit`)."""
        pause = self.pause_left
        excess = self.used + count - limit
        if excess <= 0:
            return pause
        freed = 0
        for leaves_at, requests in self.slices:
            freed += requests
            if freed >= excess:
                return max(leaves_at - self.at, pause, 0.0)
        return None


class RequestBudgetStore(Protocol):
    """Reserve Cloudflare requests for an account, and pause them all after a 429."""

    async def reserve_requests(
        self, account_id: str, *, limit: int, count: int = 1, now: float | None = None
    ) -> BudgetReading:
        """Reserve `count` requests if the counted ones stay within `limit` and no pause is in force.

        `count=0` reserves nothing and reads the budget. `now` (epoch seconds) replaces the
        database's clock (tests).
        """

    async def pause_requests(self, account_id: str, *, seconds: float, now: float | None = None) -> float:
        """Grant nothing for the next `seconds` (never shortening a longer pause); return the pause left."""

    async def close(self) -> None:
        """Release the aggregate's own connection."""


def _int(value: int) -> ColumnElement[Any]:
    """Return an integer constant written into the SQL (not a parameter: the statement is cached)."""
    return literal_column(str(int(value)), Integer)


class SqlRequestBudget:
    """`RequestBudgetStore` over SQLAlchemy Core (SQLite and PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pg = db.dialect == "postgresql"
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self._closed = False
        self._compiled: dict[tuple[str, bool], tuple[str, tuple[str, ...]]] = {}

    # ------------------------------------------------------------------ statements

    def _clock(self, given: bool) -> ColumnElement[Any]:
        if given:
            return bindparam("now", type_=Float)
        if self._pg:
            # now() is the statement's start in autocommit: one value for every expression below.
            return cast(extract("epoch", func.now()), Float)
        # SQLite's 'now' is stable within one statement.
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)

    def _slice(self, clock: ColumnElement[Any]) -> ColumnElement[Any]:
        seconds = literal_column(repr(float(SLICE_SECONDS)), Float)
        if self._pg:
            return cast(func.floor(clock / seconds), BigInteger)
        return cast(clock / seconds, Integer)  # truncation is floor for a positive time

    def _greatest(self, *values: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.greatest(*values) if self._pg else func.max(*values)

    def _reserve(self, given_clock: bool) -> Any:
        clock = self._clock(given_clock)
        slices = _int(BUDGET_SLICES)
        head = _BUDGET.head
        # Slices passed since `head` was written (a statement that waited on the row lock may have
        # read the clock a moment before the previous holder did: never go back).
        passed = self._greatest(self._slice(clock) - head, _int(0))
        live = [
            # slot i holds slice head - age; it still counts while its age plus `passed` is in range
            case((((head - _int(i)) % slices + slices) % slices < slices - passed, counted), else_=_int(0))
            for i, counted in enumerate(_COUNTS)
        ]
        used: ColumnElement[Any] = live[0]
        for term in live[1:]:
            used = used + term
        wanted = bindparam("count", type_=Integer)
        allowed = and_(
            or_(_BUDGET.paused_until.is_(None), _BUDGET.paused_until <= clock),
            used + wanted <= bindparam("limit", type_=Integer),
        )
        taken = case((allowed, wanted), else_=_int(0))
        current = (head + passed) % slices
        values: dict[str, Any] = {
            f"n{i}": case((current == _int(i), live[i] + taken), else_=live[i]) for i in range(BUDGET_SLICES)
        }
        values.update(head=head + passed, checked_at=clock, granted=case((allowed, _int(1)), else_=_int(0)))
        return (
            update(cloudflare_budget)
            .where(_BUDGET.account_id == bindparam("account", type_=Text))
            .values(**values)
            .returning(_BUDGET.head, _BUDGET.checked_at, _BUDGET.granted, _BUDGET.paused_until, *_COUNTS)
        )

    def _pause(self, given_clock: bool) -> Any:
        clock = self._clock(given_clock)
        until = clock + bindparam("seconds", type_=Float)
        longer = and_(_BUDGET.paused_until.is_not(None), _BUDGET.paused_until > until)
        return (
            update(cloudflare_budget)
            .where(_BUDGET.account_id == bindparam("account", type_=Text))
            .values(paused_until=case((longer, _BUDGET.paused_until), else_=until), checked_at=clock)
            .returning(_BUDGET.checked_at, _BUDGET.paused_until)
        )

    # ------------------------------------------------------------------ running them

    def _sql(self, kind: str, given_clock: bool) -> tuple[str, tuple[str, ...]]:
        """Return the statement compiled for this database once, and its parameters' order.

        The reservation is a large expression: building it and computing its cache key on every
        request would cost milliseconds of CPU, so it is compiled once and sent as the driver's SQL.
        """
        key = (kind, given_clock)
        if key not in self._compiled:
            statement = self._reserve(given_clock) if kind == "reserve" else self._pause(given_clock)
            compiled = statement.compile(dialect=self._db.engine.dialect)
            self._compiled[key] = (compiled.string, tuple(compiled.positiontup or ()))
        return self._compiled[key]

    async def _run(self, account_id: str, kind: str, params: dict[str, Any]) -> Any:
        """Run an UPDATE … RETURNING of the account's row (made first if missing); return the row."""
        sql, order = self._sql(kind, params.get("now") is not None)
        values = tuple({**params, "account": account_id}[name] for name in order)
        if not self._pg:
            async with self._db.begin() as conn:
                return await self._update(conn, account_id, sql, values)
        async with self._lock:
            conn = await self._connection()
            try:
                return await self._update(conn, account_id, sql, values)
            except BaseException:
                self._conn = None
                await _discard(conn)
                raise

    @staticmethod
    async def _update(conn: AsyncConnection, account_id: str, sql: str, values: tuple[Any, ...]) -> Any:
        row = (await conn.exec_driver_sql(sql, values)).first()
        if row is None:
            made = insert(conn, cloudflare_budget).values(account_id=account_id).on_conflict_do_nothing()
            await conn.execute(made)
            row = (await conn.exec_driver_sql(sql, values)).first()
        if row is None:  # pragma: no cover - the row was just made
            raise RuntimeError("the budget row vanished")
        return row

    async def _connection(self) -> AsyncConnection:
        if self._closed:  # the engine would quietly reconnect: a closed store refuses instead
            raise StoreClosedError("the store is closed")
        if self._conn is None:
            conn = await self._db.engine.connect()
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            # A count lost in a server crash is harmless (the limit keeps a fifth of Cloudflare's in
            # reserve); waiting for the WAL flush would make every request pay a disk sync.
            await conn.exec_driver_sql("SET synchronous_commit TO off")
            self._conn = conn
        return self._conn

    async def close(self) -> None:
        """Release the aggregate's own connection (PostgreSQL)."""
        async with self._lock:
            conn, self._conn = self._conn, None
            self._closed = True
        if conn is not None:
            await _discard(conn)

    # ------------------------------------------------------------------ the protocol

    async def reserve_requests(
        self, account_id: str, *, limit: int, count: int = 1, now: float | None = None
    ) -> BudgetReading:
        """Reserve `count` requests if the counted ones stay within `limit` and no pause is in force."""
        row = await self._run(account_id, "reserve", {"limit": limit, "count": count, "now": now})
        return _reading(row)

    async def pause_requests(self, account_id: str, *, seconds: float, now: float | None = None) -> float:
        """Grant nothing for the next `seconds` (never shortening a longer pause); return the pause left."""
        row = await self._run(account_id, "pause", {"seconds": seconds, "now": now})
        return max(float(row.paused_until) - float(row.checked_at), 0.0)


def _reading(row: Any) -> BudgetReading:
    """Return what a reservation's RETURNING row says (every slot is current: the row was just aged)."""
    head = int(row.head)
    slices = []
    for i in range(BUDGET_SLICES):
        requests = int(getattr(row, f"n{i}"))
        if requests:
            index = head - (head - i) % BUDGET_SLICES
            slices.append(((index + BUDGET_SLICES) * SLICE_SECONDS, requests))
    slices.sort()
    return BudgetReading(
        at=float(row.checked_at),
        granted=bool(row.granted),
        used=sum(requests for _, requests in slices),
        slices=tuple(slices),
        paused_until=None if row.paused_until is None else float(row.paused_until),
    )


async def _discard(conn: AsyncConnection) -> None:
    """Close a connection for good (it may be broken; it never goes back to the pool half-used)."""
    try:
        await conn.invalidate()
        await conn.close()
    except Exception:  # noqa: BLE001 - already broken: nothing more to release
        log.debug("closing the budget's connection failed", exc_info=True)
