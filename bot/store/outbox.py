"""The outbox aggregate: Slack deliveries queued in the same transaction as what they announce.

A row is a delivery intent with a unique idempotency key: a job's row is unique by
(job_id, kind, key), a row with no job by (kind, key), and it needs a job or a target (a channel,
optionally a thread, or a user). Kinds a job has today:

- `card_post` (key `card`): post the job's card; queued when tracking starts.
- `transition` (key `"{old}->{new}"`): one thread reply per status change, immutable once queued;
  a job's replies are delivered one at a time, in the order they were queued (`_in_turn`).
- `card_update` (key `card`): one re-armable row per job. Each change bumps its `seq` and sets it
  pending; the notifier renders the job's *current* state and settles the row only if `seq` did not
  move meanwhile, so coalescing edits never loses the final state.
- any kind registered in `bot.outbox` (`queue_delivery`): e.g. `create_not_made` (no job, to the
  requester's channel, key `create:{tag}`). The store knows targets, not kinds: adding a kind needs
  no migration.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.db import Database, epoch, from_epoch, insert, now_iso
from bot.store.models import (
    CARD_FREE_KINDS,
    CARD_KEY,
    OutboxItem,
    OutboxKind,
    OutboxState,
    StoreError,
    notice_kind,
)
from bot.store.schema import outbox, tracked_jobs

_LIVE = ("pending", "attempting")
#: How long a notifier's claim on the rows it is delivering keeps other replicas off them.
CLAIM_SECONDS = 120.0


class OutboxStore(Protocol):
    """The notifier's side of the outbox, and queuing of rows that belong to no job."""

    async def outbox_due(
        self, *, now: datetime, limit: int = 100, card_free: Collection[str] = CARD_FREE_KINDS
    ) -> list[OutboxItem]:
        """Return the rows ready to send, oldest first (a job's rows wait for its card, but `card_free`)."""

    async def outbox_claim(
        self,
        *,
        now: datetime,
        limit: int = 100,
        card_free: Collection[str] = CARD_FREE_KINDS,
        claim_seconds: float = CLAIM_SECONDS,
    ) -> list[OutboxItem]:
        """Claim the due rows for `claim_seconds`, oldest first; rows claimed elsewhere are skipped."""

    async def outbox_release(self, item_ids: Collection[int]) -> None:
        """Give up the claim on rows this notifier did not get to (another may take them at once)."""

    async def outbox_next_due(self, *, card_free: Collection[str] = CARD_FREE_KINDS) -> datetime | None:
        """Return when the next row becomes due, or None if nothing is waiting."""

    async def outbox_get(self, item_id: int) -> OutboxItem | None:
        """Return one outbox row."""

    async def outbox_attempting(self, item_id: int, *, now: datetime) -> None:
        """Mark a row as being sent (before the Slack call)."""

    async def outbox_sent(
        self,
        item_id: int,
        *,
        now: datetime,
        ts: str | None = None,
        seq: int | None = None,
        hold_until: datetime | None = None,
    ) -> None:
        """Mark a row sent once Slack accepted it (a card update re-armed after `seq` stays pending)."""

    async def outbox_retry(
        self, item_id: int, *, now: datetime, due_at: datetime, error: str, ambiguous: bool
    ) -> None:
        """Schedule a row again after a transient failure (`ambiguous`: Slack may have accepted it)."""

    async def outbox_failed(self, item_id: int, *, now: datetime, error: str) -> None:
        """Give up on a row after a permanent failure."""

    async def queue_delivery(
        self,
        key: str,
        *,
        kind: str,
        channel_id: str | None = None,
        thread_ts: str | None = None,
        user_id: str | None = None,
        payload: dict[str, Any],
        job_id: str | None = None,
        now: datetime,
    ) -> bool:
        """Queue one delivery once per idempotency key; True if newly queued."""

    async def queue_notice(
        self, key: str, *, channel_id: str, payload: dict[str, Any], now: datetime
    ) -> bool:
        """Queue a message to a channel that belongs to no job, once per key."""

    async def list_outbox(self, job_id: str) -> list[OutboxItem]:
        """Return every outbox row of a job, oldest first."""

    async def outbox_find(self, *, kind: str, key: str) -> OutboxItem | None:
        """Return the row of this kind and key (e.g. the message an edit kind edits), or None."""

    async def list_notices(self) -> list[OutboxItem]:
        """Return every row that belongs to no job, oldest first."""


# ------------------------------------------------------------------ mapping

_SELECT = select(
    outbox.c.id,
    outbox.c.job_id,
    outbox.c.kind,
    outbox.c.key,
    outbox.c.payload,
    outbox.c.state,
    outbox.c.seq,
    outbox.c.attempts,
    outbox.c.slack_ts,
    outbox.c.last_error,
    func.coalesce(outbox.c.channel_id, tracked_jobs.c.channel_id).label("channel_id"),
    tracked_jobs.c.card_ts,
    outbox.c.thread_ts,
    outbox.c.user_id,
).select_from(outbox.outerjoin(tracked_jobs, tracked_jobs.c.job_id == outbox.c.job_id))


_EARLIER = outbox.alias("earlier")


def _waiting(card_free: Collection[str]) -> ColumnElement[bool]:
    """Rows that may go now: a job's wait for its card (but the `card_free` kinds) and for its older
    rows (`_in_turn`); others only for time."""
    return and_(
        outbox.c.state.in_(_LIVE),
        or_(
            outbox.c.job_id.is_(None),
            and_(
                tracked_jobs.c.card_dead == 0,
                or_(outbox.c.kind.in_(sorted(card_free)), tracked_jobs.c.card_ts.is_not(None)),
                _in_turn(card_free),
            ),
        ),
    )


def _in_turn(card_free: Collection[str]) -> ColumnElement[bool]:
    """A job's row that waits for its card also waits while an older such row of the job is still to
    be delivered (the card edit apart).

    So a job's thread replies arrive in the order its changes happened, whichever replica's notifier
    delivers them: without it, a reply queued while another replica is still posting the one before
    could be claimed and posted first. A row that is retried keeps the ones after it waiting, too.
    The card edit is one row re-armed in place, showing the current state: never in anyone's way;
    nor is an approval request's edit (re-armed in place too, and moved to the job it approved, so
    older than the job's replies), nor the `card_free` kinds (the card's own post, messages
    elsewhere than the card).
    """
    aside = sorted({*card_free, OutboxKind.CARD_UPDATE.value, OutboxKind.APPROVAL_UPDATE.value})
    older = (
        select(_EARLIER.c.id)
        .where(
            _EARLIER.c.job_id == outbox.c.job_id,
            _EARLIER.c.id < outbox.c.id,
            _EARLIER.c.kind.not_in(aside),
            _EARLIER.c.state.in_(_LIVE),
        )
        .exists()
    )
    return or_(outbox.c.kind.in_(aside), ~older)


def _unclaimed(at: float) -> ColumnElement[bool]:
    """Rows no notifier holds a live claim on at epoch `at`."""
    return or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until <= at)


def from_row(row: Any) -> OutboxItem:
    """Return the outbox item of a row selected by `_SELECT`."""
    return OutboxItem(
        id=row.id,
        job_id=row.job_id,
        kind=row.kind,
        key=row.key,
        state=OutboxState(row.state),
        seq=row.seq,
        attempts=row.attempts,
        payload=json.loads(row.payload),
        channel_id=row.channel_id,
        card_ts=row.card_ts,
        slack_ts=row.slack_ts,
        last_error=row.last_error,
        thread_ts=row.thread_ts,
        user_id=row.user_id,
    )


def new_row(
    *,
    job_id: str | None,
    kind: str,
    key: str,
    payload: str,
    now: datetime,
    channel_id: str | None = None,
    thread_ts: str | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """Return the columns of a new pending row (`payload` already JSON)."""
    stamp = now_iso(now)
    return {
        "job_id": job_id,
        "channel_id": channel_id,
        "thread_ts": thread_ts,
        "user_id": user_id,
        "kind": kind,
        "key": key,
        "payload": payload,
        "due_at": epoch(now),
        "created_at": stamp,
        "updated_at": stamp,
    }


# ------------------------------------------------------------------ writes inside a caller's transaction


async def queue(conn: AsyncConnection, rows: list[dict[str, Any]]) -> int:
    """Insert rows made by `new_row`, skipping any whose key is already queued; return how many."""
    if not rows:
        return 0
    statement = insert(conn, outbox).on_conflict_do_nothing()
    result = await conn.execute(statement, rows)
    return int(result.rowcount)


def _arm_statement(conn: AsyncConnection) -> Any:
    statement = insert(conn, outbox)
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[outbox.c.job_id, outbox.c.kind, outbox.c.key],
        set_={
            "seq": outbox.c.seq + 1,
            # keep any coalescing hold already in place
            "due_at": case((outbox.c.due_at > excluded.due_at, outbox.c.due_at), else_=excluded.due_at),
            "state": case((outbox.c.state == "failed", "failed"), else_="pending"),
            "updated_at": excluded.updated_at,
        },
    )


async def arm_card_updates(conn: AsyncConnection, job_ids: list[str], *, now: datetime) -> None:
    """Re-arm each job's one card-update row: bump `seq`, set it pending (a failed row stays failed)."""
    if not job_ids:
        return
    rows = [
        new_row(job_id=job_id, kind=OutboxKind.CARD_UPDATE.value, key=CARD_KEY, payload="{}", now=now)
        for job_id in job_ids
    ]
    await conn.execute(_arm_statement(conn), rows)


async def settle_card_update(
    conn: AsyncConnection, job_id: str, *, seq: int, hold_until: datetime, now: datetime
) -> None:
    """Settle the card update rendered up to `seq` with the card post; later changes wait for the hold."""
    statement = insert(conn, outbox)
    row = new_row(job_id=job_id, kind=OutboxKind.CARD_UPDATE.value, key=CARD_KEY, payload="{}", now=now)
    row.update(state="sent", seq=seq, due_at=epoch(hold_until))
    statement = statement.values(row).on_conflict_do_update(
        index_elements=[outbox.c.job_id, outbox.c.kind, outbox.c.key],
        set_={
            "state": case(
                (and_(outbox.c.state.in_(_LIVE), outbox.c.seq <= seq), "sent"), else_=outbox.c.state
            ),
            "due_at": statement.excluded.due_at,
            "updated_at": statement.excluded.updated_at,
        },
    )
    await conn.execute(statement)


async def fail_live_rows(conn: AsyncConnection, job_id: str, *, error: str, now: datetime) -> None:
    """Fail every row of a job still waiting to be sent."""
    await conn.execute(
        update(outbox)
        .where(outbox.c.job_id == job_id, outbox.c.state.in_(_LIVE))
        .values(state="failed", last_error=error, updated_at=now_iso(now))
    )


async def mark_sent(conn: AsyncConnection, item_id: int, *, ts: str, now: datetime) -> None:
    """Settle one row as sent with the ts Slack gave it."""
    await conn.execute(
        update(outbox)
        .where(outbox.c.id == item_id)
        .values(state="sent", slack_ts=ts, last_error=None, claimed_until=None, updated_at=now_iso(now))
    )


async def rearm_delivery(
    conn: AsyncConnection,
    key: str,
    *,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    channel_id: str | None = None,
    job_id: str | None = None,
) -> None:
    """Queue the one row of (kind, key), or re-arm it with a newer payload (and job), coalescing edits.

    For a re-armable edit that belongs to no job when first queued: each call replaces the payload,
    bumps `seq` and sets the row pending (a failed row stays failed), so the notifier always sends the
    newest payload and settles the row only if nothing re-armed it meanwhile. Inside the caller's
    transaction; the row is locked while it is changed.
    """
    found = (
        await conn.execute(
            select(outbox.c.id).where(outbox.c.kind == kind, outbox.c.key == key).with_for_update()
        )
    ).first()
    if found is None:
        row = delivery_row(key, kind=kind, payload=payload, now=now, job_id=job_id, channel_id=channel_id)
        await queue(conn, [row])
        return
    at = epoch(now)
    await conn.execute(
        update(outbox)
        .where(outbox.c.id == found.id)
        .values(
            payload=json.dumps(payload),
            job_id=job_id,
            seq=outbox.c.seq + 1,
            state=case((outbox.c.state == "failed", "failed"), else_="pending"),
            due_at=case((outbox.c.due_at > at, outbox.c.due_at), else_=at),
            updated_at=now_iso(now),
        )
    )


async def find_row(conn: AsyncConnection, *, kind: str, key: str) -> OutboxItem | None:
    """Return the row of (kind, key), whichever job it belongs to, or None."""
    row = (await conn.execute(_SELECT.where(outbox.c.kind == kind, outbox.c.key == key))).first()
    return None if row is None else from_row(row)


def delivery_row(
    key: str,
    *,
    kind: str,
    payload: dict[str, Any],
    now: datetime,
    job_id: str | None = None,
    channel_id: str | None = None,
    thread_ts: str | None = None,
    user_id: str | None = None,
) -> dict[str, Any]:
    """Return the row of a delivery after checking its target (kinds are the registry's: `bot.outbox`)."""
    if not kind or len(kind) > 64:
        raise StoreError(f"an outbox kind is a short name, not {kind!r}")
    if job_id is None and channel_id is None and user_id is None:
        raise StoreError("this outbox row has no target: it needs a job or a target (a channel or a user)")
    return new_row(
        job_id=job_id,
        kind=kind,
        key=key,
        payload=json.dumps(payload),
        now=now,
        channel_id=channel_id,
        thread_ts=thread_ts,
        user_id=user_id,
    )


class SqlOutbox:
    """`OutboxStore` over SQLAlchemy Core."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def _items(self, query: Any) -> list[OutboxItem]:
        async with self._db.read() as conn:
            rows = (await conn.execute(query)).all()
        return [from_row(row) for row in rows]

    async def outbox_due(
        self, *, now: datetime, limit: int = 100, card_free: Collection[str] = CARD_FREE_KINDS
    ) -> list[OutboxItem]:
        """Return the rows ready to send, oldest first (a job's rows wait for its card, but `card_free`)."""
        query = (
            _SELECT.where(_waiting(card_free), outbox.c.due_at <= epoch(now))
            .order_by(outbox.c.id)
            .limit(limit)
        )
        return await self._items(query)

    async def outbox_claim(
        self,
        *,
        now: datetime,
        limit: int = 100,
        card_free: Collection[str] = CARD_FREE_KINDS,
        claim_seconds: float = CLAIM_SECONDS,
    ) -> list[OutboxItem]:
        """Claim the due rows for `claim_seconds`, oldest first; rows claimed elsewhere are skipped.

        One transaction: `SELECT … FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite's single writer makes
        it moot) picks due rows no live claim holds, and stamps them `claimed_until`. Two replicas'
        notifiers so never deliver the same row; a replica that dies mid-delivery leaves its rows to
        be taken (and recovered by metadata, being `attempting`) once the claim has run out.
        """
        at = epoch(now)
        pick = (
            select(outbox.c.id)
            .select_from(outbox.outerjoin(tracked_jobs, tracked_jobs.c.job_id == outbox.c.job_id))
            .where(_waiting(card_free), outbox.c.due_at <= at, _unclaimed(at))
            .order_by(outbox.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True, of=outbox)
        )
        async with self._db.begin() as conn:
            ids = [int(i) for i in (await conn.execute(pick)).scalars()]
            if not ids:
                return []
            await conn.execute(
                update(outbox).where(outbox.c.id.in_(ids)).values(claimed_until=at + claim_seconds)
            )
            rows = (await conn.execute(_SELECT.where(outbox.c.id.in_(ids)).order_by(outbox.c.id))).all()
        return [from_row(row) for row in rows]

    async def outbox_release(self, item_ids: Collection[int]) -> None:
        """Give up the claim on rows this notifier did not get to (another may take them at once)."""
        if not item_ids:
            return
        async with self._db.begin() as conn:
            await conn.execute(
                update(outbox).where(outbox.c.id.in_(sorted(item_ids))).values(claimed_until=None)
            )

    async def outbox_next_due(self, *, card_free: Collection[str] = CARD_FREE_KINDS) -> datetime | None:
        """Return when the next row becomes due (or its claim elsewhere runs out), None if nothing waits."""
        claimed_later = and_(outbox.c.claimed_until.is_not(None), outbox.c.claimed_until > outbox.c.due_at)
        query = (
            select(func.min(case((claimed_later, outbox.c.claimed_until), else_=outbox.c.due_at)))
            .select_from(outbox.outerjoin(tracked_jobs, tracked_jobs.c.job_id == outbox.c.job_id))
            .where(_waiting(card_free))
        )
        async with self._db.read() as conn:
            value = (await conn.execute(query)).scalar()
        return from_epoch(value)

    async def outbox_get(self, item_id: int) -> OutboxItem | None:
        """Return one outbox row."""
        items = await self._items(_SELECT.where(outbox.c.id == item_id))
        return items[0] if items else None

    async def list_outbox(self, job_id: str) -> list[OutboxItem]:
        """Return every outbox row of a job, oldest first (for inspection and tests)."""
        return await self._items(_SELECT.where(outbox.c.job_id == job_id).order_by(outbox.c.id))

    async def outbox_find(self, *, kind: str, key: str) -> OutboxItem | None:
        """Return the row of this kind and key (e.g. the message an edit kind edits), or None."""
        async with self._db.read() as conn:
            return await find_row(conn, kind=kind, key=key)

    async def list_notices(self) -> list[OutboxItem]:
        """Return every row that belongs to no job, oldest first (for inspection and tests)."""
        return await self._items(_SELECT.where(outbox.c.job_id.is_(None)).order_by(outbox.c.id))

    async def outbox_attempting(self, item_id: int, *, now: datetime) -> None:
        """Mark a row as being sent (before the Slack call)."""
        async with self._db.begin() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id == item_id, outbox.c.state.in_(_LIVE))
                .values(state="attempting", attempts=outbox.c.attempts + 1, updated_at=now_iso(now))
            )

    async def outbox_sent(
        self,
        item_id: int,
        *,
        now: datetime,
        ts: str | None = None,
        seq: int | None = None,
        hold_until: datetime | None = None,
    ) -> None:
        """Mark a row sent once Slack accepted it.

        For a card update, `seq` is the one rendered: a row re-armed since stays pending, and
        `hold_until` delays its next edit (coalescing).
        """
        values: dict[str, Any] = {
            "state": "sent" if seq is None else case((outbox.c.seq <= seq, "sent"), else_="pending"),
            "attempts": 0,
            "last_error": None,
            "claimed_until": None,
            "updated_at": now_iso(now),
        }
        if ts is not None:
            values["slack_ts"] = ts
        if hold_until is not None:
            values["due_at"] = epoch(hold_until)
        async with self._db.begin() as conn:
            await conn.execute(
                update(outbox).where(outbox.c.id == item_id, outbox.c.state.in_(_LIVE)).values(values)
            )

    async def outbox_retry(
        self, item_id: int, *, now: datetime, due_at: datetime, error: str, ambiguous: bool
    ) -> None:
        """Schedule a row again after a transient failure (`ambiguous`: Slack may have accepted it)."""
        async with self._db.begin() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id == item_id, outbox.c.state.in_(_LIVE))
                .values(
                    state="attempting" if ambiguous else "pending",
                    due_at=epoch(due_at),
                    last_error=error,
                    claimed_until=None,
                    updated_at=now_iso(now),
                )
            )

    async def outbox_failed(self, item_id: int, *, now: datetime, error: str) -> None:
        """Give up on a row after a permanent failure."""
        async with self._db.begin() as conn:
            await conn.execute(
                update(outbox)
                .where(outbox.c.id == item_id)
                .values(state="failed", last_error=error, claimed_until=None, updated_at=now_iso(now))
            )

    async def queue_delivery(
        self,
        key: str,
        *,
        kind: str,
        channel_id: str | None = None,
        thread_ts: str | None = None,
        user_id: str | None = None,
        payload: dict[str, Any],
        job_id: str | None = None,
        now: datetime,
    ) -> bool:
        """Queue one delivery once per idempotency key; True if newly queued.

        A row with a job is unique by (job, kind, key); one without a job by (kind, key), and it
        needs a target: a channel (optionally a thread in it) or a user.
        """
        row = delivery_row(
            key,
            kind=kind,
            payload=payload,
            now=now,
            job_id=job_id,
            channel_id=channel_id,
            thread_ts=thread_ts,
            user_id=user_id,
        )
        async with self._db.begin() as conn:
            return await queue(conn, [row]) == 1

    async def queue_notice(
        self, key: str, *, channel_id: str, payload: dict[str, Any], now: datetime
    ) -> bool:
        """Queue a message to a channel that belongs to no job, once per key; True if newly queued.

        The kind is the notice's own (`payload["notice"]`, e.g. `create_not_made`).
        """
        return await self.queue_delivery(
            key, kind=notice_kind(payload), channel_id=channel_id, payload=payload, now=now
        )
