"""The audit log aggregate: append-only (enforced by the database), newest first when read."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.models import AuditEntry
from bot.store.db import Database, now_iso
from bot.store.schema import audit_log


class AuditStore(Protocol):
    """Append and read the audit log."""

    async def add_audit(self, entry: AuditEntry) -> None:
        """Append one audit entry."""

    async def list_audit(self, *, job_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Return audit entries, newest first (only one job's when `job_id` is given)."""


def to_row(entry: AuditEntry) -> dict[str, Any]:
    """Return the stored columns of an audit entry (its id is the database's)."""
    return {
        "at": now_iso(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "job_id": entry.job_id,
        "channel_id": entry.channel_id,
        "outcome": entry.outcome,
        "detail": entry.detail,
    }


def from_row(row: Any) -> AuditEntry:
    """Return the audit entry of a stored row."""
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        action=row.action,
        job_id=row.job_id,
        channel_id=row.channel_id,
        outcome=row.outcome,
        detail=row.detail,
    )


async def append(conn: AsyncConnection, entry: AuditEntry) -> None:
    """Append one entry inside the caller's transaction."""
    await conn.execute(audit_log.insert().values(to_row(entry)))


class SqlAudit:
    """`AuditStore` over SQLAlchemy Core."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add_audit(self, entry: AuditEntry) -> None:
        """Append one audit entry."""
        async with self._db.begin() as conn:
            await append(conn, entry)

    async def list_audit(self, *, job_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Return audit entries, newest first (only one job's when `job_id` is given)."""
        query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
        if job_id is not None:
            query = query.where(audit_log.c.job_id == job_id)
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [from_row(row) for row in rows]
