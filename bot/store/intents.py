"""The create-intents aggregate: a create is recorded before the Cloudflare call, then resolved.

`finish_create` spans aggregates in one transaction: the intent is done, the job tracked, its card
queued and the create audited together (or none of it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.cloudflare.models import BulkJob, CreateJobRequest
from bot.models import AuditAction, AuditEntry, TrackedJob
from bot.store import jobs
from bot.store import outbox as rows
from bot.store.approval_rows import create_resolved
from bot.store.audit import append as append_audit
from bot.store.db import Database, epoch, now_iso
from bot.store.models import UNRESOLVED_INTENTS, CreateIntent, IntentState, StoreError, notice_kind
from bot.store.schema import create_intents, tracked_jobs

_UNRESOLVED = [state.value for state in UNRESOLVED_INTENTS]


class IntentStore(Protocol):
    """Record creates and how each one ended."""

    async def begin_create(
        self,
        tag: str,
        *,
        account_id: str,
        requester: str,
        channel_id: str,
        request: CreateJobRequest,
        now: datetime,
    ) -> None:
        """Record that a create is about to be sent with this request tag."""

    async def finish_create(self, tag: str, job: BulkJob, *, now: datetime) -> TrackedJob:
        """Track the created job, queue its card and audit it, in one transaction (idempotent)."""

    async def fail_create(
        self,
        tag: str,
        *,
        error: str,
        now: datetime,
        audit: AuditEntry | None = None,
        notice: dict[str, Any] | None = None,
    ) -> bool:
        """Record that a create did not happen (with its audit entry and notice); True if this decided it."""

    async def mark_create_ambiguous(
        self, tag: str, *, error: str, now: datetime, next_check_at: datetime, audit: AuditEntry | None = None
    ) -> None:
        """Record that Cloudflare may have made this job: it stays unresolved and is looked up by tag."""

    async def schedule_create_check(
        self, tag: str, *, now: datetime, next_check_at: datetime, missed: bool
    ) -> None:
        """Count one more inconclusive look-up of an unresolved create and say when to look again."""

    async def open_create_intents(self) -> list[CreateIntent]:
        """Return the creates that were started but never resolved, open or ambiguous (oldest first)."""

    async def get_create_intent(self, tag: str) -> CreateIntent | None:
        """Return one create intent, or None."""

    async def active_created(self, account_id: str) -> tuple[list[str], int]:
        """Return the ids of the account's running jobs Sweep created, and how many creates are in flight."""


def from_row(row: Any) -> CreateIntent:
    """Return the create intent of a stored row."""
    return CreateIntent(
        tag=row.tag,
        account_id=row.account_id,
        requester=row.requester,
        channel_id=row.channel_id,
        request=CreateJobRequest.model_validate_json(row.request),
        state=IntentState(row.state),
        job_id=row.job_id,
        error=row.error,
        preview_id=row.preview_id,
        checks=row.checks,
        misses=row.misses,
        next_check_at=None if row.next_check_at is None else datetime.fromtimestamp(row.next_check_at, UTC),
        created_at=datetime.fromisoformat(row.created_at),
        updated_at=datetime.fromisoformat(row.updated_at),
        agreed_max=row.agreed_max,
    )


async def fetch(conn: AsyncConnection, tag: str, *, lock: bool = False) -> CreateIntent | None:
    """Return one intent (`lock`: hold its row until the transaction ends, on backends that can)."""
    query = select(create_intents).where(create_intents.c.tag == tag)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    return None if row is None else from_row(row)


async def insert_intent(
    conn: AsyncConnection,
    tag: str,
    *,
    account_id: str,
    requester: str,
    channel_id: str,
    request: CreateJobRequest,
    now: datetime,
    preview_id: str | None = None,
    agreed_max: int | None = None,
) -> None:
    """Record an open intent inside the caller's transaction; a tag in use is a `StoreError`."""
    if await fetch(conn, tag) is not None:
        raise StoreError(f"request tag {tag!r} is already in use")
    stamp = now_iso(now)
    await conn.execute(
        create_intents.insert().values(
            tag=tag,
            account_id=account_id,
            requester=requester,
            channel_id=channel_id,
            request=request.model_dump_json(),
            state=IntentState.OPEN.value,
            preview_id=preview_id,
            agreed_max=agreed_max,
            created_at=stamp,
            updated_at=stamp,
        )
    )


def _unresolved(tag: str) -> Any:
    return update(create_intents).where(create_intents.c.tag == tag, create_intents.c.state.in_(_UNRESOLVED))


class SqlIntents:
    """`IntentStore` over SQLAlchemy Core."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def begin_create(
        self,
        tag: str,
        *,
        account_id: str,
        requester: str,
        channel_id: str,
        request: CreateJobRequest,
        now: datetime,
    ) -> None:
        """Record that a create is about to be sent with this request tag."""
        async with self._db.begin() as conn:
            await insert_intent(
                conn,
                tag,
                account_id=account_id,
                requester=requester,
                channel_id=channel_id,
                request=request,
                now=now,
            )

    async def finish_create(self, tag: str, job: BulkJob, *, now: datetime) -> TrackedJob:
        """Track the created job, queue its card and audit it, in one transaction (idempotent)."""
        async with self._db.begin() as conn:
            intent = await fetch(conn, tag, lock=True)
            if intent is None:
                raise StoreError(f"no create intent with request tag {tag!r}")
            existing = await jobs.fetch(conn, job.job_id)
            if intent.state is IntentState.DONE and existing is not None:
                return existing
            await conn.execute(
                update(create_intents)
                .where(create_intents.c.tag == tag)
                .values(state=IntentState.DONE.value, job_id=job.job_id, error=None, updated_at=now_iso(now))
            )
            if existing is not None:  # already tracked (e.g. watched): nothing more to queue
                await create_resolved(conn, tag, now=now, job_id=job.job_id)
                return existing
            tracked = TrackedJob.from_job(
                job,
                account_id=intent.account_id,
                now=now,
                requester=intent.requester,
                channel_id=intent.channel_id,
                agreed_max=intent.agreed_max,
            )
            await jobs.insert_tracked(conn, tracked, now=now)
            await append_audit(
                conn,
                AuditEntry(
                    at=now,
                    actor=intent.requester,
                    action=AuditAction.CREATE.value,
                    job_id=job.job_id,
                    channel_id=intent.channel_id,
                    outcome="ok",
                    detail=f"request tag {tag}",
                ),
            )
            # An approved job: its approval's message links to the card once the card is posted.
            await create_resolved(conn, tag, now=now, job_id=job.job_id)
            return tracked

    async def fail_create(
        self,
        tag: str,
        *,
        error: str,
        now: datetime,
        audit: AuditEntry | None = None,
        notice: dict[str, Any] | None = None,
    ) -> bool:
        """Record that a create did not happen (a done intent stays done); True if this call decided it.

        `audit` and `notice` (a message to the requester's channel, keyed by the tag so it is queued
        once) commit in the same transaction, only when the intent was still unresolved.
        """
        async with self._db.begin() as conn:
            result = await conn.execute(
                _unresolved(tag).values(
                    state=IntentState.FAILED.value, error=error, next_check_at=None, updated_at=now_iso(now)
                )
            )
            if result.rowcount != 1:
                return False
            await create_resolved(conn, tag, now=now, error=error)
            if audit is not None:
                await append_audit(conn, audit)
            if notice is not None:
                intent = await fetch(conn, tag)
                assert intent is not None  # noqa: S101 - just updated
                row = rows.delivery_row(
                    f"create:{tag}",
                    kind=notice_kind(notice),
                    channel_id=intent.channel_id,
                    payload=notice,
                    now=now,
                )
                await rows.queue(conn, [row])
            return True

    async def mark_create_ambiguous(
        self, tag: str, *, error: str, now: datetime, next_check_at: datetime, audit: AuditEntry | None = None
    ) -> None:
        """Record that Cloudflare may have made this job: it stays unresolved and is looked up by tag."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                _unresolved(tag).values(
                    state=IntentState.AMBIGUOUS.value,
                    error=error,
                    next_check_at=epoch(next_check_at),
                    updated_at=now_iso(now),
                )
            )
            if result.rowcount == 1 and audit is not None:
                await append_audit(conn, audit)

    async def schedule_create_check(
        self, tag: str, *, now: datetime, next_check_at: datetime, missed: bool
    ) -> None:
        """Count one more inconclusive look-up of an unresolved create and say when to look again.

        `missed`: Cloudflare answered and the job was not there (as opposed to the look-up failing).
        """
        async with self._db.begin() as conn:
            await conn.execute(
                _unresolved(tag).values(
                    checks=create_intents.c.checks + 1,
                    misses=create_intents.c.misses + int(missed),
                    next_check_at=epoch(next_check_at),
                    updated_at=now_iso(now),
                )
            )

    async def open_create_intents(self) -> list[CreateIntent]:
        """Return the creates that were started but never resolved, open or ambiguous (oldest first)."""
        query = (
            select(create_intents)
            .where(create_intents.c.state.in_(_UNRESOLVED))
            .order_by(create_intents.c.created_at, create_intents.c.tag)
        )
        async with self._db.read() as conn:
            return [from_row(row) for row in (await conn.execute(query)).all()]

    async def get_create_intent(self, tag: str) -> CreateIntent | None:
        """Return one create intent, or None."""
        async with self._db.read() as conn:
            return await fetch(conn, tag)

    async def active_created(self, account_id: str) -> tuple[list[str], int]:
        """Return the ids of the account's running jobs Sweep created (oldest first), and how many
        creates are in flight (recorded, their job not known yet: they may be running too)."""
        running = (
            select(tracked_jobs.c.job_id)
            .join(create_intents, create_intents.c.job_id == tracked_jobs.c.job_id)
            .where(tracked_jobs.c.terminal == 0, tracked_jobs.c.account_id == account_id)
            .order_by(tracked_jobs.c.tracked_at, tracked_jobs.c.job_id)
        )
        in_flight = (
            select(func.count())
            .select_from(create_intents)
            .where(create_intents.c.account_id == account_id, create_intents.c.state.in_(_UNRESOLVED))
        )
        async with self._db.read() as conn:
            ids = [job_id for (job_id,) in await conn.execute(running)]
            pending = (await conn.execute(in_flight)).scalar_one()
        return list(dict.fromkeys(ids)), int(pending)
