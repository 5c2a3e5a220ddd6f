"""The engine under the store: one URL (SQLite via aiosqlite, PostgreSQL via asyncpg), transactions.

SQLite: WAL, `busy_timeout`, `synchronous = FULL` (a lost "sent"/"attempting" mark after a power
cut would re-post), foreign keys on; one connection serialised by an asyncio lock, so one
coroutine's transaction never interleaves with another's statements; writes take the lock at BEGIN
(`BEGIN IMMEDIATE`). PostgreSQL: a small pool, and read-modify-write steps lock their rows
(`FOR UPDATE`, which SQLite's compiler leaves out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Table, Text, any_, bindparam, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from bot.store.models import StoreUnavailable

BUSY_TIMEOUT_MS = 5000
_WRITE = "sweep_write"


def database_url(target: str | Path) -> str:
    """Return the SQLAlchemy URL for a plain SQLite path or a URL (`sqlite…://`, `postgresql…://`)."""
    text = str(target)
    if "://" not in text:
        return f"sqlite+aiosqlite:///{Path(text).expanduser().resolve()}"
    try:
        url = make_url(text)
    except Exception as error:  # noqa: BLE001 - SQLAlchemy raises ArgumentError or ValueError
        raise StoreUnavailable(f"not a database URL ({type(error).__name__})") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        url = url.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+asyncpg")
    else:
        raise StoreUnavailable(f"unsupported database {backend!r}: use sqlite:// or postgresql://")
    return url.render_as_string(hide_password=False)


def display_url(target: str | Path) -> str:
    """Return a path as given, or a URL with its password hidden (for messages and logs)."""
    text = str(target)
    if "://" not in text:
        return text
    try:
        return make_url(text).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL at all: say so without echoing it
        return "(not a database URL)"


def create_engine(target: str | Path) -> AsyncEngine:
    """Return an engine for `target` with Sweep's connection settings (no connection made yet)."""
    url = database_url(target)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, pool_size=1, max_overflow=0)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    return create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Sweep emits BEGIN itself (see _sqlite_begin): the driver's own transaction handling is off.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    immediate = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class StoreClosedError(RuntimeError):
    """The store was closed; nothing more can be read or written through it."""


class Database:
    """An engine and the transactions the aggregates run in."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._writer = engine.execution_options(**{_WRITE: True})
        self._lock: asyncio.Lock | None = asyncio.Lock() if self.dialect == "sqlite" else None
        self._closed = False

    @contextlib.asynccontextmanager
    async def _serialised(self) -> AsyncIterator[None]:
        # A disposed engine would quietly reconnect: a closed store refuses instead.
        if self._closed:
            raise StoreClosedError("the store is closed")
        if self._lock is None:
            yield
            return
        async with self._lock:
            yield

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """Run the block in one write transaction (committed at the end, rolled back on error)."""
        async with self._serialised(), self._writer.begin() as conn:
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """Run the block's reads in one transaction (rolled back at the end)."""
        async with self._serialised(), self.engine.connect() as conn:
            yield conn

    async def close(self) -> None:
        """Close every connection."""
        if self._closed:
            return
        async with self._serialised():
            self._closed = True
            await self.engine.dispose()


def insert(conn: AsyncConnection, table: Table) -> Any:
    """Return the dialect's INSERT for `table` (both offer `on_conflict_do_nothing/_update`)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def one_of(conn: AsyncConnection, column: ColumnElement[Any], values: Sequence[str]) -> ColumnElement[bool]:
    """Return "`column` is one of `values`", bound as one parameter however many values there are.

    PostgreSQL: `= ANY($1::TEXT[])`; SQLite: `IN (SELECT value FROM json_each(?))`. One statement
    and one round trip for 10,000 ids, with no placeholder per value to render on every execution
    (an expanding `IN` costs more to compile than to run) and no parameter limit to chunk under.
    """
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam("one_of", list(values), type_=postgresql.ARRAY(Text)))
    members = func.json_each(bindparam("one_of", json.dumps(list(values)), type_=Text)).table_valued("value")
    return column.in_(select(members.c.value))


def utc(value: datetime) -> datetime:
    """Return `value` in UTC (a naive value is taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime | None) -> str | None:
    """Return the stored text of a timestamp."""
    return None if value is None else utc(value).isoformat()


def now_iso(value: datetime) -> str:
    """Return the stored text of a timestamp that is never None."""
    return utc(value).isoformat()


def epoch(value: datetime) -> float:
    """Return the stored epoch seconds of a due time or expiry."""
    return utc(value).timestamp()


def parse(value: str | None) -> datetime | None:
    """Return the timestamp stored as text."""
    return None if value is None else datetime.fromisoformat(value)


def from_epoch(value: float | None) -> datetime | None:
    """Return the timestamp stored as epoch seconds."""
    return None if value is None else datetime.fromtimestamp(value, UTC)
