"""The tracked-jobs aggregate: jobs Sweep watches, their diff against Cloudflare, and their card.

A job's changes and the outbox rows that announce them commit in one transaction: a status change
queues one thread reply (keyed by the transition) and re-arms the card update; a counter change
re-arms the card.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.cloudflare.models import BulkJob, SearchParams, is_known_count, is_terminal
from bot.models import SWEEP_ACTOR, AuditAction, AuditEntry, Overshoot, TrackedJob
from bot.store import outbox as rows
from bot.store.audit import append as append_audit
from bot.store.db import Database, insert, iso, now_iso, one_of
from bot.store.models import AUTO_CANCEL_KEY, CARD_KEY, GONE, OutboxKind, Transition, transition_key
from bot.store.schema import outbox, tracked_jobs

# The Cloudflare-owned fields compared by the diff, in this order.
STATE_COLUMNS = (
    "status",
    "total_messages_discovered",
    "messages_pending",
    "messages_successful",
    "messages_failed",
    "messages_cancelled",
    "messages_skipped",
    "status_message",
    "started_at",
    "completed_at",
)
#: Statuses in which a job past its agreed maximum is cancelled (it may still discover or act).
OVERSHOOT_STATUSES = frozenset({"PENDING", "DISCOVERING", "PROCESSING"})


class JobStore(Protocol):
    """Track jobs and apply what Cloudflare says about them."""

    async def track_existing(
        self, job: BulkJob, *, account_id: str, requester: str, channel_id: str, now: datetime
    ) -> tuple[TrackedJob, bool]:
        """Start tracking a job created elsewhere and queue its card; True if newly tracked."""

    async def get_job(self, job_id: str) -> TrackedJob | None:
        """Return a tracked job, or None."""

    async def list_active(self) -> list[TrackedJob]:
        """Return every tracked job that may still change."""

    async def active_statuses(self) -> dict[str, str]:
        """Return job id → last known status of every tracked job that may still change."""

    async def list_recent(self, limit: int = 20) -> list[TrackedJob]:
        """Return the most recently tracked jobs, newest first."""

    async def apply_snapshots(self, jobs: Sequence[BulkJob], *, now: datetime) -> list[Transition]:
        """Write Cloudflare's state of tracked jobs and queue their notifications, in one transaction."""

    async def overshoots(self, jobs: Sequence[BulkJob]) -> list[Overshoot]:
        """Return the snapshots of tracked jobs still running that discovered more than was agreed."""

    async def record_auto_cancel(
        self, job: BulkJob, overshoot: Overshoot, *, cancelled: bool, now: datetime
    ) -> bool:
        """Record Sweep's cancel of a job past its agreed maximum (card, one reply, audit)."""

    async def mark_gone(self, job_id: str, *, now: datetime, reason: str) -> bool:
        """Record that a job disappeared from Cloudflare; True if it was not already gone."""

    async def set_cancelled_by(self, job_id: str, user_id: str) -> None:
        """Remember who cancelled a job from Slack."""


class CardStore(Protocol):
    """The notifier's side of a job's card (its ts and whether it still exists)."""

    async def card_state(self, job_id: str) -> tuple[TrackedJob, int] | None:
        """Return a job and the `seq` of its card-update row (0 if none), read together."""

    async def card_posted(
        self, item_id: int, *, job_id: str, ts: str, seq: int, now: datetime, hold_until: datetime
    ) -> None:
        """Record the card's ts, settle the post row and any card update rendered with it."""

    async def mark_card_dead(self, job_id: str, *, error: str, now: datetime) -> None:
        """Stop notifying about a job whose card or channel is gone; fail its waiting rows."""


# ------------------------------------------------------------------ mapping


def to_row(job: TrackedJob, *, now: datetime) -> dict[str, Any]:
    """Return the stored columns of a tracked job (`now` is when tracking starts)."""
    return {
        "job_id": job.job_id,
        "account_id": job.account_id,
        "action_type": job.action_type,
        "destination": job.destination,
        "search_params": job.search_params.model_dump_json(exclude_none=True),
        "comment": job.comment,
        "requester": job.requester,
        "channel_id": job.channel_id,
        "card_ts": job.card_ts,
        "status": job.status,
        "total_messages_discovered": job.total_messages_discovered,
        "messages_pending": job.messages_pending,
        "messages_successful": job.messages_successful,
        "messages_failed": job.messages_failed,
        "messages_cancelled": job.messages_cancelled,
        "messages_skipped": job.messages_skipped,
        "status_message": job.status_message,
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "completed_at": iso(job.completed_at),
        "cancelled_by": job.cancelled_by,
        "gone": int(job.gone),
        "card_dead": int(job.card_dead),
        "last_error": job.last_error,
        "terminal": int(job.is_terminal),
        "tracked_at": now_iso(now),
        "updated_at": iso(job.updated_at),
        "agreed_max": job.agreed_max,
        "overshoot": job.overshoot,
    }


_MODEL_COLUMNS = [c for c in tracked_jobs.c if c.name not in ("terminal", "tracked_at")]


def from_row(row: Any) -> TrackedJob:
    """Return the tracked job of a row holding `_MODEL_COLUMNS`."""
    return TrackedJob(
        job_id=row.job_id,
        account_id=row.account_id,
        action_type=row.action_type,
        destination=row.destination,
        search_params=SearchParams.model_validate_json(row.search_params),
        comment=row.comment,
        requester=row.requester,
        channel_id=row.channel_id,
        card_ts=row.card_ts,
        status=row.status,
        total_messages_discovered=row.total_messages_discovered,
        messages_pending=row.messages_pending,
        messages_successful=row.messages_successful,
        messages_failed=row.messages_failed,
        messages_cancelled=row.messages_cancelled,
        messages_skipped=row.messages_skipped,
        status_message=row.status_message,
        created_at=datetime.fromisoformat(row.created_at),
        started_at=None if row.started_at is None else datetime.fromisoformat(row.started_at),
        completed_at=None if row.completed_at is None else datetime.fromisoformat(row.completed_at),
        cancelled_by=row.cancelled_by,
        gone=bool(row.gone),
        card_dead=bool(row.card_dead),
        last_error=row.last_error,
        updated_at=datetime.fromisoformat(row.updated_at),
        agreed_max=row.agreed_max,
        overshoot=row.overshoot,
    )


def state_of(job: BulkJob) -> tuple[Any, ...]:
    """Return the diffed fields of a Cloudflare job as stored, in `STATE_COLUMNS` order."""
    return (
        str(job.status),
        job.total_messages_discovered,
        job.messages_pending,
        job.messages_successful,
        job.messages_failed,
        job.messages_cancelled,
        job.messages_skipped,
        job.status_message,
        iso(job.started_at),
        iso(job.completed_at),
    )


def payload_state(job: BulkJob) -> dict[str, Any]:
    """Return the job's state at a transition, so its reply shows the figures of that moment."""
    return dict(zip(STATE_COLUMNS, state_of(job), strict=True))


_SELECT_JOB = select(*_MODEL_COLUMNS)
# Read for the ids of a batch of snapshots (`one_of`: one statement whatever their number).
_SELECT_STATES = select(
    tracked_jobs.c.job_id, *(tracked_jobs.c[name] for name in STATE_COLUMNS), tracked_jobs.c.gone
)
_SELECT_AGREED = select(tracked_jobs.c.job_id, tracked_jobs.c.agreed_max).where(
    tracked_jobs.c.agreed_max.is_not(None), tracked_jobs.c.terminal == 0
)
_UPDATE_STATE = (
    update(tracked_jobs)
    .where(tracked_jobs.c.job_id == bindparam("b_job_id"))
    .values(
        {name: bindparam(f"b_{name}") for name in STATE_COLUMNS}
        | {"gone": 0, "terminal": bindparam("b_terminal"), "updated_at": bindparam("b_updated_at")}
    )
)


# ------------------------------------------------------------------ writes inside a caller's transaction


async def fetch(conn: AsyncConnection, job_id: str, *, lock: bool = False) -> TrackedJob | None:
    """Return a tracked job (`lock`: hold its row until the transaction ends, on backends that can)."""
    query = _SELECT_JOB.where(tracked_jobs.c.job_id == job_id)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    return None if row is None else from_row(row)


async def apply(conn: AsyncConnection, jobs: Sequence[BulkJob], *, now: datetime) -> list[Transition]:
    """Diff snapshots against the tracked rows and write the changes, inside the caller's transaction."""
    latest = {job.job_id: job for job in jobs}  # the last snapshot of a job wins
    if not latest:
        return []
    stamp = now_iso(now)
    transitions: list[Transition] = []
    updates: list[dict[str, Any]] = []
    replies: list[dict[str, Any]] = []
    changed: list[str] = []
    query = _SELECT_STATES.where(one_of(conn, tracked_jobs.c.job_id, list(latest)))
    stored = {row[0]: tuple(row) for row in await conn.execute(query)}
    for job_id, job in latest.items():
        row = stored.get(job_id)
        if row is None:
            continue
        state = state_of(job)
        if row[1:11] == state and not row[11]:
            continue
        if is_terminal(row[1]) and state[0] != row[1]:
            # A finished job stays finished: this is a snapshot read before it finished (another
            # replica's poll racing a cancel), not news.
            continue
        params = {f"b_{name}": value for name, value in zip(STATE_COLUMNS, state, strict=True)}
        params.update(b_job_id=job_id, b_terminal=int(is_terminal(state[0])), b_updated_at=stamp)
        updates.append(params)
        changed.append(job_id)
        previous = row[1]
        if previous != state[0]:
            transitions.append(Transition(job_id=job_id, previous_status=previous, status=state[0]))
            payload = {"previous": previous, "status": state[0], "state": payload_state(job)}
            replies.append(
                rows.new_row(
                    job_id=job_id,
                    kind=OutboxKind.TRANSITION.value,
                    key=transition_key(previous, state[0]),
                    payload=json.dumps(payload),
                    now=now,
                )
            )
    if updates:
        await conn.execute(_UPDATE_STATE, updates)
        await rows.queue(conn, replies)
        await rows.arm_card_updates(conn, changed, now=now)
    return transitions


async def insert_tracked(conn: AsyncConnection, job: TrackedJob, *, now: datetime) -> None:
    """Track a job and queue its card post."""
    await conn.execute(insert(conn, tracked_jobs).on_conflict_do_nothing(), [to_row(job, now=now)])
    await rows.queue(
        conn,
        [
            rows.new_row(
                job_id=job.job_id, kind=OutboxKind.CARD_POST.value, key=CARD_KEY, payload="{}", now=now
            )
        ],
    )


class SqlJobs:
    """`JobStore` and `CardStore` over SQLAlchemy Core."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def track_existing(
        self, job: BulkJob, *, account_id: str, requester: str, channel_id: str, now: datetime
    ) -> tuple[TrackedJob, bool]:
        """Start tracking a job created elsewhere and queue its card; True if newly tracked."""
        async with self._db.begin() as conn:
            existing = await fetch(conn, job.job_id, lock=True)
            if existing is not None:
                return existing, False
            tracked = TrackedJob.from_job(
                job, account_id=account_id, now=now, requester=requester, channel_id=channel_id
            )
            await insert_tracked(conn, tracked, now=now)
            return tracked, True

    async def get_job(self, job_id: str) -> TrackedJob | None:
        """Return a tracked job, or None."""
        async with self._db.read() as conn:
            return await fetch(conn, job_id)

    async def list_active(self) -> list[TrackedJob]:
        """Return every tracked job that may still change."""
        query = _SELECT_JOB.where(tracked_jobs.c.terminal == 0).order_by(
            tracked_jobs.c.tracked_at, tracked_jobs.c.job_id
        )
        async with self._db.read() as conn:
            return [from_row(row) for row in (await conn.execute(query)).all()]

    async def active_statuses(self) -> dict[str, str]:
        """Return job id → last known status of every tracked job that may still change."""
        query = select(tracked_jobs.c.job_id, tracked_jobs.c.status).where(tracked_jobs.c.terminal == 0)
        async with self._db.read() as conn:
            return {job_id: status for job_id, status in await conn.execute(query)}

    async def list_recent(self, limit: int = 20) -> list[TrackedJob]:
        """Return the most recently tracked jobs, newest first (ties: by job id, descending)."""
        query = _SELECT_JOB.order_by(tracked_jobs.c.tracked_at.desc(), tracked_jobs.c.job_id.desc()).limit(
            limit
        )
        async with self._db.read() as conn:
            return [from_row(row) for row in (await conn.execute(query)).all()]

    async def apply_snapshots(self, jobs: Sequence[BulkJob], *, now: datetime) -> list[Transition]:
        """Write Cloudflare's state of tracked jobs and queue their notifications, in one transaction.

        Untracked and unchanged jobs are ignored. A status change queues one thread reply
        (keyed by the transition) and re-arms the card update; a counter change re-arms the card.
        Bulk statements only: one read for all the ids, then one executemany per kind of write.
        """
        if not jobs:
            return []
        async with self._db.begin() as conn:
            return await apply(conn, jobs, now=now)

    async def overshoots(self, jobs: Sequence[BulkJob]) -> list[Overshoot]:
        """Return the snapshots of tracked jobs still running that discovered more than was agreed."""
        running = {job.job_id: job for job in jobs if str(job.status) in OVERSHOOT_STATUSES}
        if not running:
            return []
        found: list[Overshoot] = []
        async with self._db.read() as conn:
            query = _SELECT_AGREED.where(one_of(conn, tracked_jobs.c.job_id, list(running)))
            for job_id, agreed_max in await conn.execute(query):
                discovered = running[job_id].total_messages_discovered
                if is_known_count(discovered) and discovered > agreed_max:
                    found.append(Overshoot(job_id=job_id, discovered=discovered, agreed_max=agreed_max))
        return found

    async def record_auto_cancel(
        self, job: BulkJob, overshoot: Overshoot, *, cancelled: bool, now: datetime
    ) -> bool:
        """Record Sweep's cancel of a job that went past its agreed maximum, in one transaction.

        The job's state is written as any snapshot; when `cancelled` (Sweep's cancel stopped it),
        the overshoot is kept on the job, its card re-armed, one thread reply queued (keyed, so it
        is queued once even across restarts) and the cancel audited with actor `sweep`. When the
        job had already finished, only the snapshot and a `noop` audit entry are written. Returns
        True when this call recorded the overshoot (False: already recorded, or not cancelled).
        """
        detail = f"discovered {overshoot.discovered}, agreed at most {overshoot.agreed_max}"
        async with self._db.begin() as conn:
            await apply(conn, [job], now=now)
            first = False
            if cancelled:
                result = await conn.execute(
                    update(tracked_jobs)
                    .where(tracked_jobs.c.job_id == job.job_id, tracked_jobs.c.overshoot.is_(None))
                    .values(overshoot=overshoot.discovered, updated_at=now_iso(now))
                )
                first = result.rowcount == 1
            if first:
                payload = {"discovered": overshoot.discovered, "agreed_max": overshoot.agreed_max}
                reply = rows.new_row(
                    job_id=job.job_id,
                    kind=OutboxKind.AUTO_CANCEL.value,
                    key=AUTO_CANCEL_KEY,
                    payload=json.dumps(payload),
                    now=now,
                )
                await rows.queue(conn, [reply])
                await rows.arm_card_updates(conn, [job.job_id], now=now)
            if first or not cancelled:
                await append_audit(
                    conn,
                    AuditEntry(
                        at=now,
                        actor=SWEEP_ACTOR,
                        action=AuditAction.AUTO_CANCEL.value,
                        job_id=job.job_id,
                        outcome="ok" if cancelled else "noop: already finished",
                        detail=detail,
                    ),
                )
            return first

    async def mark_gone(self, job_id: str, *, now: datetime, reason: str) -> bool:
        """Record that a job disappeared from Cloudflare, queue its card update and a reply."""
        async with self._db.begin() as conn:
            job = await fetch(conn, job_id, lock=True)
            if job is None or job.gone:
                return False
            await conn.execute(
                update(tracked_jobs)
                .where(tracked_jobs.c.job_id == job_id)
                .values(gone=1, terminal=1, last_error=reason, updated_at=now_iso(now))
            )
            payload = {"previous": job.status, "status": job.status, "gone": True}
            reply = rows.new_row(
                job_id=job_id,
                kind=OutboxKind.TRANSITION.value,
                key=transition_key(job.status, GONE),
                payload=json.dumps(payload),
                now=now,
            )
            await rows.queue(conn, [reply])
            await rows.arm_card_updates(conn, [job_id], now=now)
            return True

    async def set_cancelled_by(self, job_id: str, user_id: str) -> None:
        """Remember who cancelled a job from Slack."""
        async with self._db.begin() as conn:
            await conn.execute(
                update(tracked_jobs).where(tracked_jobs.c.job_id == job_id).values(cancelled_by=user_id)
            )

    async def card_state(self, job_id: str) -> tuple[TrackedJob, int] | None:
        """Return a job and the `seq` of its card-update row (0 if none), read in one statement."""
        seq = (
            select(outbox.c.seq)
            .where(outbox.c.job_id == tracked_jobs.c.job_id, outbox.c.kind == OutboxKind.CARD_UPDATE.value)
            .scalar_subquery()
            .label("card_seq")
        )
        query = _SELECT_JOB.add_columns(seq).where(tracked_jobs.c.job_id == job_id)
        async with self._db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        return from_row(row), int(row.card_seq or 0)

    async def card_posted(
        self, item_id: int, *, job_id: str, ts: str, seq: int, now: datetime, hold_until: datetime
    ) -> None:
        """Record the card's ts, settle the post row and any card update rendered with it."""
        async with self._db.begin() as conn:
            await conn.execute(update(tracked_jobs).where(tracked_jobs.c.job_id == job_id).values(card_ts=ts))
            await rows.mark_sent(conn, item_id, ts=ts, now=now)
            await rows.settle_card_update(conn, job_id, seq=seq, hold_until=hold_until, now=now)

    async def mark_card_dead(self, job_id: str, *, error: str, now: datetime) -> None:
        """Stop notifying about a job whose card or channel is gone; fail its waiting rows."""
        async with self._db.begin() as conn:
            await conn.execute(
                update(tracked_jobs)
                .where(tracked_jobs.c.job_id == job_id)
                .values(card_dead=1, last_error=error)
            )
            await rows.fail_live_rows(conn, job_id, error=error, now=now)
