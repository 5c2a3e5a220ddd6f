"""Sweep's durable state: tracked jobs, create intents, the audit log and the notification outbox.

`Store` is the interface every caller uses; `SqliteStore` implements it with aiosqlite (WAL mode,
versioned migrations, parameterised SQL only, models out — never rows). A PostgreSQL store can
implement the same Protocol without touching callers.

The outbox is what makes notifications exactly-once: a status change and the outbox rows that
announce it commit in one transaction, and `UNIQUE (job_id, kind, key)` means the same transition
can never be queued twice. Row kinds:

- `card_post` (key `card`): post the job's card; queued when tracking starts.
- `transition` (key `"{old}->{new}"`): one thread reply per status change, immutable once queued.
- `card_update` (key `card`): one re-armable row per job. Each change bumps its `seq` and sets it
  pending; the notifier renders the job's *current* state and settles the row only if `seq` did not
  move meanwhile, so coalescing edits never loses the final state.
- any kind registered in `bot.outbox` (`queue_delivery`): e.g. `create_not_made` (no job, to the
  requester's channel, key `create:{tag}`). The store knows targets, not kinds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Collection, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

import aiosqlite
from pydantic import BaseModel, ConfigDict, field_validator

from bot.cloudflare.models import BulkJob, CreateJobRequest, SearchParams, is_terminal
from bot.models import AuditAction, AuditEntry, TrackedJob

__all__ = [
    "MIGRATIONS",
    "CreateIntent",
    "IntentState",
    "OutboxItem",
    "OutboxKind",
    "OutboxState",
    "PreviewRecord",
    "PreviewState",
    "SqliteStore",
    "Store",
    "StoreError",
    "Transition",
    "migrate",
]

log = logging.getLogger("sweep.store")

CARD_KEY = "card"
#: Kinds whose rows do not wait for their job's card (the notifier passes the registry's own set).
CARD_FREE_KINDS: frozenset[str] = frozenset({"card_post"})
BUSY_TIMEOUT_MS = 5000

# Each entry is one schema version (index + 1), applied in order inside one transaction.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE tracked_jobs (
        job_id TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        action_type TEXT NOT NULL,
        destination TEXT,
        search_params TEXT NOT NULL,
        comment TEXT,
        requester TEXT,
        channel_id TEXT,
        card_ts TEXT,
        status TEXT NOT NULL,
        total_messages_discovered INTEGER NOT NULL DEFAULT 0,
        messages_pending INTEGER NOT NULL DEFAULT 0,
        messages_successful INTEGER NOT NULL DEFAULT 0,
        messages_failed INTEGER NOT NULL DEFAULT 0,
        messages_cancelled INTEGER,
        messages_skipped INTEGER,
        status_message TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        completed_at TEXT,
        cancelled_by TEXT,
        gone INTEGER NOT NULL DEFAULT 0,
        card_dead INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        terminal INTEGER NOT NULL DEFAULT 0,
        tracked_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX tracked_jobs_active ON tracked_jobs (job_id, status) WHERE terminal = 0;
    CREATE INDEX tracked_jobs_recent ON tracked_jobs (tracked_at);

    CREATE TABLE create_intents (
        tag TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        requester TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        request TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'done', 'failed')),
        job_id TEXT,
        error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX create_intents_open ON create_intents (created_at) WHERE state = 'open';

    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        job_id TEXT,
        channel_id TEXT,
        outcome TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX audit_log_job ON audit_log (job_id, id);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL REFERENCES tracked_jobs (job_id),
        kind TEXT NOT NULL CHECK (kind IN ('card_post', 'card_update', 'transition')),
        key TEXT NOT NULL,
        payload TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'attempting', 'sent', 'failed')),
        seq INTEGER NOT NULL DEFAULT 1,
        attempts INTEGER NOT NULL DEFAULT 0,
        due_at REAL NOT NULL,
        slack_ts TEXT,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (job_id, kind, key)
    );
    CREATE INDEX outbox_due ON outbox (due_at) WHERE state IN ('pending', 'attempting');
    """,
    # 2: creates whose outcome is unknown stay open as 'ambiguous' and are re-checked on a schedule;
    # previews are stored server-side and used once; duplicate Slack requests are remembered; an
    # outbox row may exist before any job (a notice to a channel).
    """
    CREATE TABLE create_intents_v2 (
        tag TEXT PRIMARY KEY,
        account_id TEXT NOT NULL,
        requester TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        request TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'ambiguous', 'done', 'failed')),
        job_id TEXT,
        error TEXT,
        preview_id TEXT,
        checks INTEGER NOT NULL DEFAULT 0,
        misses INTEGER NOT NULL DEFAULT 0,
        next_check_at REAL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    INSERT INTO create_intents_v2 (tag, account_id, requester, channel_id, request, state, job_id, error,
                                   created_at, updated_at)
        SELECT tag, account_id, requester, channel_id, request, state, job_id, error, created_at, updated_at
        FROM create_intents;
    DROP TABLE create_intents;
    ALTER TABLE create_intents_v2 RENAME TO create_intents;
    CREATE INDEX create_intents_unresolved ON create_intents (created_at)
        WHERE state IN ('open', 'ambiguous');

    CREATE TABLE outbox_v2 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT REFERENCES tracked_jobs (job_id),
        channel_id TEXT,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        payload TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'attempting', 'sent', 'failed')),
        seq INTEGER NOT NULL DEFAULT 1,
        attempts INTEGER NOT NULL DEFAULT 0,
        due_at REAL NOT NULL,
        slack_ts TEXT,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (job_id, kind, key),
        CHECK (job_id IS NOT NULL OR channel_id IS NOT NULL)
    );
    INSERT INTO outbox_v2 (id, job_id, kind, key, payload, state, seq, attempts, due_at, slack_ts, last_error,
                           created_at, updated_at)
        SELECT id, job_id, kind, key, payload, state, seq, attempts, due_at, slack_ts, last_error,
               created_at, updated_at
        FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v2 RENAME TO outbox;
    CREATE INDEX outbox_due ON outbox (due_at) WHERE state IN ('pending', 'attempting');
    -- NULLs are distinct in a UNIQUE constraint: rows without a job are unique by kind and key.
    CREATE UNIQUE INDEX outbox_unique_notice ON outbox (kind, key) WHERE job_id IS NULL;

    CREATE TABLE previews (
        id TEXT PRIMARY KEY,
        requester TEXT NOT NULL,
        channel_id TEXT NOT NULL,
        draft TEXT,
        request_hash TEXT,
        matched INTEGER,
        capped INTEGER NOT NULL DEFAULT 0,
        state TEXT NOT NULL CHECK (state IN ('form', 'previewed', 'used')),
        tag TEXT,
        expires_at REAL NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX previews_expiry ON previews (expires_at);

    CREATE TABLE seen_requests (
        key TEXT PRIMARY KEY,
        at REAL NOT NULL
    );
    CREATE INDEX seen_requests_at ON seen_requests (at);
    """,
    # 3: a delivery may target a thread or a user (a DM) as well as a channel; a notice's kind is the
    # notice itself (kinds are registered in `bot.outbox`, so the table names none).
    """
    CREATE TABLE outbox_v3 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT REFERENCES tracked_jobs (job_id),
        channel_id TEXT,
        thread_ts TEXT,
        user_id TEXT,
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        payload TEXT NOT NULL DEFAULT '{}',
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'attempting', 'sent', 'failed')),
        seq INTEGER NOT NULL DEFAULT 1,
        attempts INTEGER NOT NULL DEFAULT 0,
        due_at REAL NOT NULL,
        slack_ts TEXT,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (job_id, kind, key),
        CHECK (job_id IS NOT NULL OR channel_id IS NOT NULL OR user_id IS NOT NULL)
    );
    INSERT INTO outbox_v3 (id, job_id, channel_id, kind, key, payload, state, seq, attempts, due_at, slack_ts,
                           last_error, created_at, updated_at)
        SELECT id, job_id, channel_id,
               CASE WHEN kind = 'notice' THEN COALESCE(json_extract(payload, '$.notice'), kind) ELSE kind END,
               key, payload, state, seq, attempts, due_at, slack_ts, last_error, created_at, updated_at
        FROM outbox;
    DROP TABLE outbox;
    ALTER TABLE outbox_v3 RENAME TO outbox;
    CREATE INDEX outbox_due ON outbox (due_at) WHERE state IN ('pending', 'attempting');
    CREATE UNIQUE INDEX outbox_unique_notice ON outbox (kind, key) WHERE job_id IS NULL;
    """,
)

_JOB_COLUMNS = (
    "job_id, account_id, action_type, destination, search_params, comment, requester, channel_id, card_ts, "
    "status, total_messages_discovered, messages_pending, messages_successful, messages_failed, "
    "messages_cancelled, messages_skipped, status_message, created_at, started_at, completed_at, "
    "cancelled_by, gone, card_dead, last_error, updated_at"
)

# The Cloudflare-owned fields compared by the diff, in this order.
_STATE_COLUMNS = (
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


class StoreError(Exception):
    """The store cannot do what was asked (unknown intent, database newer than this code…)."""


class IntentState(StrEnum):
    OPEN = "open"  # recorded, the POST not answered yet (or a crash came in between)
    AMBIGUOUS = "ambiguous"  # Cloudflare may have made the job: re-checked by tag until resolved
    DONE = "done"
    FAILED = "failed"


UNRESOLVED_INTENTS = (IntentState.OPEN, IntentState.AMBIGUOUS)


class OutboxKind(StrEnum):
    """The kinds the store itself queues; any other kind registered in `bot.outbox` may be queued too."""

    CARD_POST = "card_post"
    CARD_UPDATE = "card_update"
    TRANSITION = "transition"


class PreviewState(StrEnum):
    FORM = "form"  # the create form is open; nothing previewed yet
    PREVIEWED = "previewed"  # counted and shown; may be confirmed once
    USED = "used"  # confirmed: a create intent carries it


class PreviewRecord(BaseModel):
    """A preview as stored server-side: the only thing a Confirm button or modal may create from."""

    model_config = ConfigDict(frozen=True)

    id: str
    requester: str
    channel_id: str
    draft_json: str | None
    request_hash: str | None
    matched: int | None
    capped: bool
    state: PreviewState
    tag: str | None
    expires_at: datetime
    created_at: datetime


class OutboxState(StrEnum):
    PENDING = "pending"
    ATTEMPTING = "attempting"
    SENT = "sent"
    FAILED = "failed"


class CreateIntent(BaseModel):
    """A create that was asked for: recorded before the Cloudflare call so a crash can be resolved."""

    model_config = ConfigDict(frozen=True)

    tag: str
    account_id: str
    requester: str
    channel_id: str
    request: CreateJobRequest
    state: IntentState
    job_id: str | None = None
    error: str | None = None
    preview_id: str | None = None
    checks: int = 0  # look-ups by tag made since the outcome became unknown
    misses: int = 0  # of those, the ones Cloudflare answered without the job
    next_check_at: datetime | None = None
    created_at: datetime
    updated_at: datetime


class OutboxItem(BaseModel):
    """One queued Slack notification, with what the notifier needs to send it."""

    model_config = ConfigDict(frozen=True)

    id: int
    job_id: str | None  # None for a delivery that belongs to no tracked job (a notice, a DM)
    kind: str  # an `OutboxKind` for the store's own kinds
    key: str
    state: OutboxState
    seq: int
    attempts: int
    payload: dict[str, Any]
    channel_id: str | None
    card_ts: str | None
    slack_ts: str | None = None
    last_error: str | None = None
    thread_ts: str | None = None  # an explicit thread to reply in
    user_id: str | None = None  # the user a direct message goes to

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        return OutboxKind(value) if value in OutboxKind._value2member_map_ else value


@dataclass(frozen=True, slots=True)
class Transition:
    """A status change the store recorded (and queued a thread reply for)."""

    job_id: str
    previous_status: str
    status: str

    @property
    def key(self) -> str:
        """Return the outbox key of this transition."""
        return transition_key(self.previous_status, self.status)

    @property
    def finished(self) -> bool:
        """Return True when the job reached a terminal status."""
        return is_terminal(self.status) or self.status == GONE


GONE = "GONE"


def transition_key(previous: str, status: str) -> str:
    """Return the outbox key of a status change."""
    return f"{previous}->{status}"


class Store(Protocol):
    """Everything Sweep persists; implemented by `SqliteStore` (and one day by a PostgreSQL store)."""

    async def close(self) -> None:
        """Release the database."""

    # create intents
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

    # previews and duplicate requests
    async def save_preview(
        self,
        preview_id: str,
        *,
        requester: str,
        channel_id: str,
        state: PreviewState,
        expires_at: datetime,
        now: datetime,
        draft_json: str | None = None,
        request_hash: str | None = None,
        matched: int | None = None,
        capped: bool = False,
    ) -> bool:
        """Insert a preview, or update one that is not used yet (same requester); False if it is used."""

    async def get_preview(self, preview_id: str) -> PreviewRecord | None:
        """Return a stored preview, or None."""

    async def consume_preview(
        self, preview_id: str, *, tag: str, account_id: str, request: CreateJobRequest, now: datetime
    ) -> PreviewRecord | None:
        """Mark a previewed preview used and record its create intent, in one transaction."""

    async def claim_request(self, key: str, *, now: datetime, keep: timedelta = ...) -> bool:
        """Remember a Slack request by key; False if it was seen before."""

    async def queue_notice(
        self, key: str, *, channel_id: str, payload: dict[str, Any], now: datetime
    ) -> bool:
        """Queue a message to a channel that belongs to no job, once per key."""

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
        """Queue one Slack delivery of a registered kind, once per (job, kind, key); True if newly queued."""

    # tracked jobs
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

    async def mark_gone(self, job_id: str, *, now: datetime, reason: str) -> bool:
        """Record that a job disappeared from Cloudflare; True if it was not already gone."""

    async def set_cancelled_by(self, job_id: str, user_id: str) -> None:
        """Remember who cancelled a job from Slack."""

    # audit
    async def add_audit(self, entry: AuditEntry) -> None:
        """Append one audit entry."""

    async def list_audit(self, *, job_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Return audit entries, newest first."""

    # outbox (the notifier's side)
    async def outbox_due(
        self, *, now: datetime, limit: int = 100, card_free: Collection[str] = CARD_FREE_KINDS
    ) -> list[OutboxItem]:
        """Return the rows ready to send, oldest first (a job's rows wait for its card, but `card_free`)."""

    async def outbox_next_due(self, *, card_free: Collection[str] = CARD_FREE_KINDS) -> datetime | None:
        """Return when the next row becomes due, or None if nothing is waiting."""

    async def outbox_get(self, item_id: int) -> OutboxItem | None:
        """Return one outbox row."""

    async def card_state(self, job_id: str) -> tuple[TrackedJob, int] | None:
        """Return a job and the `seq` of its card-update row (0 if none), read together."""

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

    async def card_posted(
        self, item_id: int, *, job_id: str, ts: str, seq: int, now: datetime, hold_until: datetime
    ) -> None:
        """Record the card's ts, settle the post row and any card update rendered with it."""

    async def mark_card_dead(self, job_id: str, *, error: str, now: datetime) -> None:
        """Stop notifying about a job whose card or channel is gone; fail its waiting rows."""


# ------------------------------------------------------------------------------- helpers


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _utc(value).isoformat()


def _epoch(value: datetime) -> float:
    return _utc(value).timestamp()


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _search_json(params: SearchParams) -> str:
    return params.model_dump_json(exclude_none=True)


def _state_of(job: BulkJob) -> tuple[Any, ...]:
    """Return the diffed fields of a Cloudflare job, as stored."""
    return (
        str(job.status),
        job.total_messages_discovered,
        job.messages_pending,
        job.messages_successful,
        job.messages_failed,
        job.messages_cancelled,
        job.messages_skipped,
        job.status_message,
        _iso(job.started_at),
        _iso(job.completed_at),
    )


def _job_from_row(row: aiosqlite.Row) -> TrackedJob:
    return TrackedJob(
        job_id=row["job_id"],
        account_id=row["account_id"],
        action_type=row["action_type"],
        destination=row["destination"],
        search_params=SearchParams.model_validate_json(row["search_params"]),
        comment=row["comment"],
        requester=row["requester"],
        channel_id=row["channel_id"],
        card_ts=row["card_ts"],
        status=row["status"],
        total_messages_discovered=row["total_messages_discovered"],
        messages_pending=row["messages_pending"],
        messages_successful=row["messages_successful"],
        messages_failed=row["messages_failed"],
        messages_cancelled=row["messages_cancelled"],
        messages_skipped=row["messages_skipped"],
        status_message=row["status_message"],
        created_at=datetime.fromisoformat(row["created_at"]),
        started_at=_parse(row["started_at"]),
        completed_at=_parse(row["completed_at"]),
        cancelled_by=row["cancelled_by"],
        gone=bool(row["gone"]),
        card_dead=bool(row["card_dead"]),
        last_error=row["last_error"],
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


def _intent_from_row(row: aiosqlite.Row) -> CreateIntent:
    return CreateIntent(
        tag=row["tag"],
        account_id=row["account_id"],
        requester=row["requester"],
        channel_id=row["channel_id"],
        request=CreateJobRequest.model_validate_json(row["request"]),
        state=IntentState(row["state"]),
        job_id=row["job_id"],
        error=row["error"],
        preview_id=row["preview_id"],
        checks=row["checks"],
        misses=row["misses"],
        next_check_at=None
        if row["next_check_at"] is None
        else datetime.fromtimestamp(row["next_check_at"], UTC),
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
    )


def _preview_from_row(row: aiosqlite.Row) -> PreviewRecord:
    return PreviewRecord(
        id=row["id"],
        requester=row["requester"],
        channel_id=row["channel_id"],
        draft_json=row["draft"],
        request_hash=row["request_hash"],
        matched=row["matched"],
        capped=bool(row["capped"]),
        state=PreviewState(row["state"]),
        tag=row["tag"],
        expires_at=datetime.fromtimestamp(row["expires_at"], UTC),
        created_at=datetime.fromisoformat(row["created_at"]),
    )


def _audit_from_row(row: aiosqlite.Row) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=datetime.fromisoformat(row["at"]),
        actor=row["actor"],
        action=row["action"],
        job_id=row["job_id"],
        channel_id=row["channel_id"],
        outcome=row["outcome"],
        detail=row["detail"],
    )


def _outbox_from_row(row: aiosqlite.Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        job_id=row["job_id"],
        kind=row["kind"],
        key=row["key"],
        state=OutboxState(row["state"]),
        seq=row["seq"],
        attempts=row["attempts"],
        payload=json.loads(row["payload"]),
        channel_id=row["channel_id"],
        card_ts=row["card_ts"],
        slack_ts=row["slack_ts"],
        last_error=row["last_error"],
        thread_ts=row["thread_ts"],
        user_id=row["user_id"],
    )


# ------------------------------------------------------------------------------- SQL

_INSERT_JOB = f"""
    INSERT OR IGNORE INTO tracked_jobs ({_JOB_COLUMNS}, terminal, tracked_at)
    VALUES ({", ".join("?" * 27)})
"""  # noqa: S608 - only placeholders are interpolated

_UPDATE_STATE = """
    UPDATE tracked_jobs SET status = ?, total_messages_discovered = ?, messages_pending = ?,
        messages_successful = ?, messages_failed = ?, messages_cancelled = ?, messages_skipped = ?,
        status_message = ?, started_at = ?, completed_at = ?, gone = 0, terminal = ?, updated_at = ?
    WHERE job_id = ?
"""

_SELECT_STATES = (
    f"SELECT t.job_id, {', '.join('t.' + c for c in _STATE_COLUMNS)}, t.gone "  # noqa: S608 - fixed columns
    "FROM json_each(?) AS wanted JOIN tracked_jobs t ON t.job_id = wanted.value"
)
_SELECT_JOB = f"SELECT {_JOB_COLUMNS} FROM tracked_jobs WHERE job_id = ?"  # noqa: S608 - fixed columns

_QUEUE_ROW = """
    INSERT OR IGNORE INTO outbox (job_id, kind, key, payload, due_at, created_at, updated_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)
"""

# Re-arm the job's one card-update row: bump seq, keep any coalescing hold already in place.
_ARM_CARD_UPDATE = """
    INSERT INTO outbox (job_id, kind, key, payload, due_at, created_at, updated_at)
    VALUES (?, 'card_update', 'card', '{}', ?, ?, ?)
    ON CONFLICT (job_id, kind, key) DO UPDATE SET
        seq = outbox.seq + 1,
        due_at = MAX(outbox.due_at, excluded.due_at),
        state = CASE WHEN outbox.state = 'failed' THEN 'failed' ELSE 'pending' END,
        updated_at = excluded.updated_at
"""

_SETTLE_CARD_UPDATE = """
    INSERT INTO outbox (job_id, kind, key, payload, state, seq, due_at, created_at, updated_at)
    VALUES (?, 'card_update', 'card', '{}', 'sent', ?, ?, ?, ?)
    ON CONFLICT (job_id, kind, key) DO UPDATE SET
        state = CASE WHEN outbox.state IN ('pending', 'attempting') AND outbox.seq <= ? THEN 'sent'
                     ELSE outbox.state END,
        due_at = excluded.due_at,
        updated_at = excluded.updated_at
"""

_OUTBOX_SELECT = """
    SELECT o.id, o.job_id, o.kind, o.key, o.payload, o.state, o.seq, o.attempts, o.slack_ts,
           o.last_error, COALESCE(o.channel_id, j.channel_id) AS channel_id, j.card_ts, o.thread_ts, o.user_id
    FROM outbox o LEFT JOIN tracked_jobs j ON j.job_id = o.job_id
"""

# A job's rows wait for its card, but the kinds in the JSON list bound to `:card_free` (the card post);
# a row with no job only for its due time.
_OUTBOX_WAITING = """
    o.state IN ('pending', 'attempting')
    AND (o.job_id IS NULL OR (j.card_dead = 0 AND (
        o.kind IN (SELECT value FROM json_each(:card_free)) OR j.card_ts IS NOT NULL)))
"""


_NEXT_DUE = f"SELECT MIN(o.due_at) FROM outbox o LEFT JOIN tracked_jobs j ON j.job_id = o.job_id WHERE {_OUTBOX_WAITING}"  # noqa: S608, E501


def _job_params(job: TrackedJob, *, now: datetime) -> tuple[Any, ...]:
    return (
        job.job_id,
        job.account_id,
        job.action_type,
        job.destination,
        _search_json(job.search_params),
        job.comment,
        job.requester,
        job.channel_id,
        job.card_ts,
        job.status,
        job.total_messages_discovered,
        job.messages_pending,
        job.messages_successful,
        job.messages_failed,
        job.messages_cancelled,
        job.messages_skipped,
        job.status_message,
        _iso(job.created_at),
        _iso(job.started_at),
        _iso(job.completed_at),
        job.cancelled_by,
        int(job.gone),
        int(job.card_dead),
        job.last_error,
        _iso(job.updated_at),
        int(job.is_terminal),
        _iso(now),
    )


class _Opener:
    """`await SqliteStore.open(path)` or `async with SqliteStore.open(path) as store`."""

    def __init__(self, path: str | Path) -> None:
        self._path = path
        self._store: SqliteStore | None = None

    def __await__(self) -> Generator[Any, None, SqliteStore]:
        return SqliteStore._connect(self._path).__await__()

    async def __aenter__(self) -> SqliteStore:
        self._store = await SqliteStore._connect(self._path)
        return self._store

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._store is not None:
            await self._store.close()


async def _apply_migrations(db: aiosqlite.Connection) -> int:
    """Bring the schema up to date; return the resulting version."""
    await db.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    async with db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as cursor:
        row = await cursor.fetchone()
    current = int(row[0]) if row is not None else 0
    if current > len(MIGRATIONS):
        raise StoreError(
            f"database schema is at version {current}, newer than this Sweep "
            f"({len(MIGRATIONS)}): upgrade Sweep"
        )
    for version in range(current + 1, len(MIGRATIONS) + 1):
        # executescript runs the whole step; the version row and COMMIT join the same transaction.
        await db.executescript("BEGIN IMMEDIATE;\n" + MIGRATIONS[version - 1])
        try:
            await db.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                (version, _iso(datetime.now(UTC))),
            )
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        log.info("database migrated to schema version %d", version)
    return len(MIGRATIONS)


async def migrate(path: str | Path) -> int:
    """Apply pending migrations to the database at `path`; return the schema version."""
    async with SqliteStore.open(path) as store:
        return await store.schema_version()


class SqliteStore:
    """The aiosqlite implementation of `Store`.

    One connection, serialised by an asyncio lock so that one coroutine's transaction never
    interleaves with another's statements.
    """

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    def open(cls, path: str | Path) -> _Opener:
        """Open (creating and migrating if needed) the database at `path`."""
        return _Opener(path)

    @classmethod
    async def _connect(cls, path: str | Path) -> Self:
        db = await aiosqlite.connect(str(path), isolation_level=None)
        try:
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            # FULL, not NORMAL: a lost "sent"/"attempting" mark after a power cut would re-post.
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("PRAGMA foreign_keys = ON")
            await _apply_migrations(db)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        """Close the connection."""
        async with self._lock:
            await self._db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def schema_version(self) -> int:
        """Return the applied schema version."""
        async with self._lock, self._db.execute("SELECT MAX(version) FROM schema_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """Run the block in one write transaction, holding the lock."""
        async with self._lock:
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._db.execute("COMMIT")

    async def _fetchall(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[aiosqlite.Row]:
        async with self._lock, self._db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    @staticmethod
    async def _one(db: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> aiosqlite.Row | None:
        async with db.execute(sql, params) as cursor:
            return await cursor.fetchone()

    # ------------------------------------------------------------------ create intents

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
        async with self._tx() as db:
            await self._insert_intent(
                db,
                tag,
                account_id=account_id,
                requester=requester,
                channel_id=channel_id,
                request=request,
                now=now,
            )

    async def _insert_intent(
        self,
        db: aiosqlite.Connection,
        tag: str,
        *,
        account_id: str,
        requester: str,
        channel_id: str,
        request: CreateJobRequest,
        now: datetime,
        preview_id: str | None = None,
    ) -> None:
        if await self._one(db, "SELECT 1 FROM create_intents WHERE tag = ?", (tag,)) is not None:
            raise StoreError(f"request tag {tag!r} is already in use")
        await db.execute(
            "INSERT INTO create_intents (tag, account_id, requester, channel_id, request, state, preview_id, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'open', ?, ?, ?)",
            (
                tag,
                account_id,
                requester,
                channel_id,
                request.model_dump_json(),
                preview_id,
                _iso(now),
                _iso(now),
            ),
        )

    async def finish_create(self, tag: str, job: BulkJob, *, now: datetime) -> TrackedJob:
        """Track the created job, queue its card and audit it, in one transaction (idempotent)."""
        async with self._tx() as db:
            intent = await self._one(db, "SELECT * FROM create_intents WHERE tag = ?", (tag,))
            if intent is None:
                raise StoreError(f"no create intent with request tag {tag!r}")
            existing = await self._one(db, _SELECT_JOB, (job.job_id,))
            if intent["state"] == IntentState.DONE and existing is not None:
                return _job_from_row(existing)
            await db.execute(
                "UPDATE create_intents SET state = 'done', job_id = ?, error = NULL, updated_at = ? "
                "WHERE tag = ?",
                (job.job_id, _iso(now), tag),
            )
            if existing is not None:  # already tracked (e.g. watched): nothing more to queue
                return _job_from_row(existing)
            tracked = TrackedJob.from_job(
                job,
                account_id=intent["account_id"],
                now=now,
                requester=intent["requester"],
                channel_id=intent["channel_id"],
            )
            await self._insert_tracked(db, tracked, now=now)
            await self._insert_audit(
                db,
                AuditEntry(
                    at=now,
                    actor=intent["requester"],
                    action=AuditAction.CREATE.value,
                    job_id=job.job_id,
                    channel_id=intent["channel_id"],
                    outcome="ok",
                    detail=f"request tag {tag}",
                ),
            )
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
        async with self._tx() as db:
            cursor = await db.execute(
                "UPDATE create_intents SET state = 'failed', error = ?, next_check_at = NULL, updated_at = ? "
                "WHERE tag = ? AND state IN ('open', 'ambiguous')",
                (error, _iso(now), tag),
            )
            if cursor.rowcount != 1:
                return False
            if audit is not None:
                await self._insert_audit(db, audit)
            if notice is not None:
                row = await self._one(db, "SELECT channel_id FROM create_intents WHERE tag = ?", (tag,))
                assert row is not None  # noqa: S101 - just updated
                await self._queue_delivery(
                    db,
                    key=f"create:{tag}",
                    kind=_notice_kind(notice),
                    channel_id=row["channel_id"],
                    thread_ts=None,
                    user_id=None,
                    payload=notice,
                    job_id=None,
                    now=now,
                )
            return True

    async def mark_create_ambiguous(
        self, tag: str, *, error: str, now: datetime, next_check_at: datetime, audit: AuditEntry | None = None
    ) -> None:
        """Record that Cloudflare may have made this job: it stays unresolved and is looked up by tag."""
        async with self._tx() as db:
            cursor = await db.execute(
                "UPDATE create_intents SET state = 'ambiguous', error = ?, next_check_at = ?, updated_at = ? "
                "WHERE tag = ? AND state IN ('open', 'ambiguous')",
                (error, _epoch(next_check_at), _iso(now), tag),
            )
            if cursor.rowcount == 1 and audit is not None:
                await self._insert_audit(db, audit)

    async def schedule_create_check(
        self, tag: str, *, now: datetime, next_check_at: datetime, missed: bool
    ) -> None:
        """Count one more inconclusive look-up of an unresolved create and say when to look again.

        `missed`: Cloudflare answered and the job was not there (as opposed to the look-up failing).
        """
        async with self._tx() as db:
            await db.execute(
                "UPDATE create_intents SET checks = checks + 1, misses = misses + ?, next_check_at = ?, "
                "updated_at = ? WHERE tag = ? AND state IN ('open', 'ambiguous')",
                (int(missed), _epoch(next_check_at), _iso(now), tag),
            )

    async def open_create_intents(self) -> list[CreateIntent]:
        """Return the creates that were started but never resolved, open or ambiguous (oldest first)."""
        rows = await self._fetchall(
            "SELECT * FROM create_intents WHERE state IN ('open', 'ambiguous') ORDER BY created_at, tag"
        )
        return [_intent_from_row(row) for row in rows]

    async def get_create_intent(self, tag: str) -> CreateIntent | None:
        """Return one create intent, or None."""
        rows = await self._fetchall("SELECT * FROM create_intents WHERE tag = ?", (tag,))
        return _intent_from_row(rows[0]) if rows else None

    # ------------------------------------------------------------------ previews and duplicate requests

    async def save_preview(
        self,
        preview_id: str,
        *,
        requester: str,
        channel_id: str,
        state: PreviewState,
        expires_at: datetime,
        now: datetime,
        draft_json: str | None = None,
        request_hash: str | None = None,
        matched: int | None = None,
        capped: bool = False,
    ) -> bool:
        """Insert a preview, or update one that is not used yet (same requester); False if it is used."""
        async with self._tx() as db:
            cursor = await db.execute(
                "INSERT INTO previews (id, requester, channel_id, draft, request_hash, matched, capped, "
                "state, expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET draft = excluded.draft, "
                "request_hash = excluded.request_hash, matched = excluded.matched, "
                "capped = excluded.capped, state = excluded.state, "
                "expires_at = excluded.expires_at, updated_at = excluded.updated_at "
                "WHERE previews.state != 'used' AND previews.requester = excluded.requester",
                (
                    preview_id,
                    requester,
                    channel_id,
                    draft_json,
                    request_hash,
                    matched,
                    int(capped),
                    state.value,
                    _epoch(expires_at),
                    _iso(now),
                    _iso(now),
                ),
            )
            return cursor.rowcount == 1

    async def get_preview(self, preview_id: str) -> PreviewRecord | None:
        """Return a stored preview, or None."""
        rows = await self._fetchall("SELECT * FROM previews WHERE id = ?", (preview_id,))
        return _preview_from_row(rows[0]) if rows else None

    async def consume_preview(
        self,
        preview_id: str,
        *,
        tag: str,
        account_id: str,
        request: CreateJobRequest,
        now: datetime,
    ) -> PreviewRecord | None:
        """Mark a previewed, unexpired preview used and record its create intent, in one transaction.

        Returns the preview as it was before (None: it does not exist). When it was not in the
        `previewed` state or had expired, nothing changes: the caller reads why from what it gets.
        """
        async with self._tx() as db:
            row = await self._one(db, "SELECT * FROM previews WHERE id = ?", (preview_id,))
            if row is None:
                return None
            before = _preview_from_row(row)
            if before.state is not PreviewState.PREVIEWED or before.expires_at <= now:
                return before
            await db.execute(
                "UPDATE previews SET state = 'used', tag = ?, updated_at = ? "
                "WHERE id = ? AND state = 'previewed'",
                (tag, _iso(now), preview_id),
            )
            await self._insert_intent(
                db,
                tag,
                account_id=account_id,
                requester=before.requester,
                channel_id=before.channel_id,
                request=request,
                now=now,
                preview_id=preview_id,
            )
            return before

    async def claim_request(self, key: str, *, now: datetime, keep: timedelta = timedelta(hours=1)) -> bool:
        """Remember a Slack request (by its trigger id); False if it was seen before (a replay or retry).

        Entries older than `keep` are forgotten: Slack refuses a request whose timestamp is more than
        five minutes old, so a replay after that fails the signature check instead.
        """
        async with self._tx() as db:
            cursor = await db.execute(
                "INSERT OR IGNORE INTO seen_requests (key, at) VALUES (?, ?)", (key, _epoch(now))
            )
            first = cursor.rowcount == 1
            if first and secrets.randbelow(64) == 0:  # prune now and then, not on every request
                await db.execute("DELETE FROM seen_requests WHERE at < ?", (_epoch(now - keep),))
            return first

    # ------------------------------------------------------------------ notices

    async def queue_notice(
        self, key: str, *, channel_id: str, payload: dict[str, Any], now: datetime
    ) -> bool:
        """Queue a message to a channel that belongs to no job, once per key; True if newly queued.

        The kind is the notice's own (`payload["notice"]`, e.g. `create_not_made`).
        """
        return await self.queue_delivery(
            key, kind=_notice_kind(payload), channel_id=channel_id, payload=payload, now=now
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
        """Queue one Slack delivery of a registered kind, once per (job, kind, key); True if newly queued."""
        async with self._tx() as db:
            return await self._queue_delivery(
                db,
                key=key,
                kind=kind,
                channel_id=channel_id,
                thread_ts=thread_ts,
                user_id=user_id,
                payload=payload,
                job_id=job_id,
                now=now,
            )

    @staticmethod
    async def _queue_delivery(
        db: aiosqlite.Connection,
        *,
        key: str,
        kind: str,
        channel_id: str | None,
        thread_ts: str | None,
        user_id: str | None,
        payload: dict[str, Any],
        job_id: str | None,
        now: datetime,
    ) -> bool:
        if job_id is None and channel_id is None and user_id is None:
            raise StoreError(f"delivery {kind} {key} has no target: give a job, a channel or a user")
        cursor = await db.execute(
            "INSERT OR IGNORE INTO outbox (job_id, channel_id, thread_ts, user_id, kind, key, payload, "
            "due_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                channel_id,
                thread_ts,
                user_id,
                kind,
                key,
                json.dumps(payload),
                _epoch(now),
                _iso(now),
                _iso(now),
            ),
        )
        return cursor.rowcount == 1

    async def list_notices(self) -> list[OutboxItem]:
        """Return every notice row, oldest first (for inspection and tests)."""
        rows = await self._fetchall(f"{_OUTBOX_SELECT} WHERE o.job_id IS NULL ORDER BY o.id")
        return [_outbox_from_row(row) for row in rows]

    # ------------------------------------------------------------------ tracked jobs

    async def _insert_tracked(self, db: aiosqlite.Connection, job: TrackedJob, *, now: datetime) -> None:
        await db.execute(_INSERT_JOB, _job_params(job, now=now))
        await db.execute(
            _QUEUE_ROW,
            (job.job_id, OutboxKind.CARD_POST.value, CARD_KEY, "{}", _epoch(now), _iso(now), _iso(now)),
        )

    async def track_existing(
        self, job: BulkJob, *, account_id: str, requester: str, channel_id: str, now: datetime
    ) -> tuple[TrackedJob, bool]:
        """Start tracking a job created elsewhere and queue its card; True if newly tracked."""
        async with self._tx() as db:
            existing = await self._one(db, _SELECT_JOB, (job.job_id,))
            if existing is not None:
                return _job_from_row(existing), False
            tracked = TrackedJob.from_job(
                job, account_id=account_id, now=now, requester=requester, channel_id=channel_id
            )
            await self._insert_tracked(db, tracked, now=now)
            return tracked, True

    async def get_job(self, job_id: str) -> TrackedJob | None:
        """Return a tracked job, or None."""
        rows = await self._fetchall(_SELECT_JOB, (job_id,))
        return _job_from_row(rows[0]) if rows else None

    async def list_active(self) -> list[TrackedJob]:
        """Return every tracked job that may still change."""
        rows = await self._fetchall(
            f"SELECT {_JOB_COLUMNS} FROM tracked_jobs WHERE terminal = 0 ORDER BY tracked_at, job_id"  # noqa: S608
        )
        return [_job_from_row(row) for row in rows]

    async def active_statuses(self) -> dict[str, str]:
        """Return job id → last known status of every tracked job that may still change."""
        rows = await self._fetchall("SELECT job_id, status FROM tracked_jobs WHERE terminal = 0")
        return {row[0]: row[1] for row in rows}

    async def gauge_counts(self) -> list[tuple[str, str, int, float | None]]:
        """Return (table, state, rows, oldest due_at epoch) of unsent outbox rows and active jobs."""
        rows = await self._fetchall(
            "SELECT 'outbox', state, COUNT(*), MIN(due_at) FROM outbox "
            "WHERE state IN ('pending', 'attempting', 'failed') GROUP BY state "
            "UNION ALL SELECT 'jobs', status, COUNT(*), NULL FROM tracked_jobs "
            "WHERE terminal = 0 GROUP BY status"
        )
        return [(row[0], row[1], int(row[2]), row[3]) for row in rows]

    async def list_recent(self, limit: int = 20) -> list[TrackedJob]:
        """Return the most recently tracked jobs, newest first."""
        rows = await self._fetchall(
            f"SELECT {_JOB_COLUMNS} FROM tracked_jobs ORDER BY tracked_at DESC, rowid DESC LIMIT ?",  # noqa: S608
            (limit,),
        )
        return [_job_from_row(row) for row in rows]

    async def apply_snapshots(self, jobs: Sequence[BulkJob], *, now: datetime) -> list[Transition]:
        """Write Cloudflare's state of tracked jobs and queue their notifications, in one transaction.

        Untracked and unchanged jobs are ignored. A status change queues one thread reply
        (keyed by the transition) and re-arms the card update; a counter change re-arms the card.
        """
        latest = {job.job_id: job for job in jobs}  # the last snapshot of a job wins
        if not latest:
            return []
        now_iso, now_epoch = _iso(now), _epoch(now)
        transitions: list[Transition] = []
        updates: list[tuple[Any, ...]] = []
        replies: list[tuple[Any, ...]] = []
        cards: list[tuple[Any, ...]] = []
        async with self._tx() as db:
            async with db.execute(_SELECT_STATES, (json.dumps(list(latest)),)) as cursor:
                cursor.row_factory = None  # plain tuples: 10k rows a cycle
                stored = {row[0]: row for row in await cursor.fetchall()}
            for job_id, job in latest.items():
                row = stored.get(job_id)
                if row is None:
                    continue
                state = _state_of(job)
                if row[1:11] == state and not row[11]:
                    continue
                updates.append((*state, int(is_terminal(state[0])), now_iso, job_id))
                cards.append((job_id, now_epoch, now_iso, now_iso))
                previous = row[1]
                if previous != state[0]:
                    transitions.append(Transition(job_id=job_id, previous_status=previous, status=state[0]))
                    payload = json.dumps(
                        {"previous": previous, "status": state[0], "state": _payload_state(job)}
                    )
                    replies.append(
                        (
                            job_id,
                            OutboxKind.TRANSITION.value,
                            transition_key(previous, state[0]),
                            payload,
                            now_epoch,
                            now_iso,
                            now_iso,
                        )
                    )
            if updates:
                await db.executemany(_UPDATE_STATE, updates)
                await db.executemany(_QUEUE_ROW, replies)
                await db.executemany(_ARM_CARD_UPDATE, cards)
        return transitions

    async def mark_gone(self, job_id: str, *, now: datetime, reason: str) -> bool:
        """Record that a job disappeared from Cloudflare, queue its card update and a reply."""
        async with self._tx() as db:
            row = await self._one(db, "SELECT status, gone FROM tracked_jobs WHERE job_id = ?", (job_id,))
            if row is None or row["gone"]:
                return False
            now_iso = _iso(now)
            await db.execute(
                "UPDATE tracked_jobs SET gone = 1, terminal = 1, last_error = ?, updated_at = ? "
                "WHERE job_id = ?",
                (reason, now_iso, job_id),
            )
            payload = json.dumps({"previous": row["status"], "status": row["status"], "gone": True})
            await db.execute(
                _QUEUE_ROW,
                (
                    job_id,
                    OutboxKind.TRANSITION.value,
                    transition_key(row["status"], GONE),
                    payload,
                    _epoch(now),
                    now_iso,
                    now_iso,
                ),
            )
            await db.execute(_ARM_CARD_UPDATE, (job_id, _epoch(now), now_iso, now_iso))
            return True

    async def set_cancelled_by(self, job_id: str, user_id: str) -> None:
        """Remember who cancelled a job from Slack."""
        async with self._tx() as db:
            await db.execute("UPDATE tracked_jobs SET cancelled_by = ? WHERE job_id = ?", (user_id, job_id))

    # ------------------------------------------------------------------ audit

    @staticmethod
    async def _insert_audit(db: aiosqlite.Connection, entry: AuditEntry) -> None:
        await db.execute(
            "INSERT INTO audit_log (at, actor, action, job_id, channel_id, outcome, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                _iso(entry.at),
                entry.actor,
                entry.action,
                entry.job_id,
                entry.channel_id,
                entry.outcome,
                entry.detail,
            ),
        )

    async def add_audit(self, entry: AuditEntry) -> None:
        """Append one audit entry."""
        async with self._tx() as db:
            await self._insert_audit(db, entry)

    async def list_audit(self, *, job_id: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """Return audit entries, newest first (only one job's when `job_id` is given)."""
        if job_id is None:
            rows = await self._fetchall("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = await self._fetchall(
                "SELECT * FROM audit_log WHERE job_id = ? ORDER BY id DESC LIMIT ?", (job_id, limit)
            )
        return [_audit_from_row(row) for row in rows]

    # ------------------------------------------------------------------ outbox

    async def outbox_due(
        self, *, now: datetime, limit: int = 100, card_free: Collection[str] = CARD_FREE_KINDS
    ) -> list[OutboxItem]:
        """Return the rows ready to send, oldest first (a job's rows wait for its card, but `card_free`)."""
        rows = await self._fetchall(
            f"{_OUTBOX_SELECT} WHERE {_OUTBOX_WAITING} AND o.due_at <= :now ORDER BY o.id LIMIT :limit",
            {"card_free": json.dumps(sorted(card_free)), "now": _epoch(now), "limit": limit},
        )
        return [_outbox_from_row(row) for row in rows]

    async def outbox_next_due(self, *, card_free: Collection[str] = CARD_FREE_KINDS) -> datetime | None:
        """Return when the next row becomes due, or None if nothing is waiting."""
        rows = await self._fetchall(_NEXT_DUE, {"card_free": json.dumps(sorted(card_free))})
        value = rows[0][0] if rows else None
        return None if value is None else datetime.fromtimestamp(value, UTC)

    async def outbox_get(self, item_id: int) -> OutboxItem | None:
        """Return one outbox row."""
        rows = await self._fetchall(f"{_OUTBOX_SELECT} WHERE o.id = ?", (item_id,))
        return _outbox_from_row(rows[0]) if rows else None

    async def list_outbox(self, job_id: str) -> list[OutboxItem]:
        """Return every outbox row of a job, oldest first (for inspection and tests)."""
        rows = await self._fetchall(f"{_OUTBOX_SELECT} WHERE o.job_id = ? ORDER BY o.id", (job_id,))
        return [_outbox_from_row(row) for row in rows]

    async def card_state(self, job_id: str) -> tuple[TrackedJob, int] | None:
        """Return a job and the `seq` of its card-update row (0 if none), read together."""
        async with self._lock:
            row = await self._one(self._db, _SELECT_JOB, (job_id,))
            if row is None:
                return None
            seq = await self._one(
                self._db, "SELECT seq FROM outbox WHERE job_id = ? AND kind = 'card_update'", (job_id,)
            )
        return _job_from_row(row), int(seq[0]) if seq is not None else 0

    async def outbox_attempting(self, item_id: int, *, now: datetime) -> None:
        """Mark a row as being sent (before the Slack call)."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE outbox SET state = 'attempting', attempts = attempts + 1, updated_at = ? "
                "WHERE id = ? AND state IN ('pending', 'attempting')",
                (_iso(now), item_id),
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
        hold = None if hold_until is None else _epoch(hold_until)
        async with self._tx() as db:
            await db.execute(
                "UPDATE outbox SET state = CASE WHEN ? IS NULL OR seq <= ? THEN 'sent' ELSE 'pending' END, "
                "slack_ts = COALESCE(?, slack_ts), due_at = COALESCE(?, due_at), attempts = 0, "
                "last_error = NULL, updated_at = ? WHERE id = ? AND state IN ('pending', 'attempting')",
                (seq, seq, ts, hold, _iso(now), item_id),
            )

    async def outbox_retry(
        self, item_id: int, *, now: datetime, due_at: datetime, error: str, ambiguous: bool
    ) -> None:
        """Schedule a row again after a transient failure (`ambiguous`: Slack may have accepted it)."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE outbox SET state = CASE WHEN ? THEN 'attempting' ELSE 'pending' END, "
                "due_at = ?, last_error = ?, updated_at = ? "
                "WHERE id = ? AND state IN ('pending', 'attempting')",
                (int(ambiguous), _epoch(due_at), error, _iso(now), item_id),
            )

    async def outbox_failed(self, item_id: int, *, now: datetime, error: str) -> None:
        """Give up on a row after a permanent failure."""
        async with self._tx() as db:
            await db.execute(
                "UPDATE outbox SET state = 'failed', last_error = ?, updated_at = ? WHERE id = ?",
                (error, _iso(now), item_id),
            )

    async def card_posted(
        self, item_id: int, *, job_id: str, ts: str, seq: int, now: datetime, hold_until: datetime
    ) -> None:
        """Record the card's ts, settle the post row and any card update rendered with it."""
        now_iso = _iso(now)
        async with self._tx() as db:
            await db.execute(
                "UPDATE tracked_jobs SET card_ts = ?, updated_at = updated_at WHERE job_id = ?", (ts, job_id)
            )
            await db.execute(
                "UPDATE outbox SET state = 'sent', slack_ts = ?, last_error = NULL, updated_at = ? "
                "WHERE id = ?",
                (ts, now_iso, item_id),
            )
            # The post rendered the card up to `seq`; later changes wait for the coalescing hold.
            await db.execute(_SETTLE_CARD_UPDATE, (job_id, seq, _epoch(hold_until), now_iso, now_iso, seq))

    async def mark_card_dead(self, job_id: str, *, error: str, now: datetime) -> None:
        """Stop notifying about a job whose card or channel is gone; fail its waiting rows."""
        now_iso = _iso(now)
        async with self._tx() as db:
            await db.execute(
                "UPDATE tracked_jobs SET card_dead = 1, last_error = ? WHERE job_id = ?", (error, job_id)
            )
            await db.execute(
                "UPDATE outbox SET state = 'failed', last_error = ?, updated_at = ? "
                "WHERE job_id = ? AND state IN ('pending', 'attempting')",
                (error, now_iso, job_id),
            )


def _notice_kind(payload: dict[str, Any]) -> str:
    """Return the outbox kind of a notice: the notice it is (`create_not_made`…)."""
    kind = payload.get("notice")
    if not isinstance(kind, str) or not kind:
        raise StoreError("a notice payload names its kind in 'notice'")
    return kind


def _payload_state(job: BulkJob) -> dict[str, Any]:
    """Return the job's state at a transition, so its reply shows the figures of that moment."""
    return {
        "status": str(job.status),
        "total_messages_discovered": job.total_messages_discovered,
        "messages_pending": job.messages_pending,
        "messages_successful": job.messages_successful,
        "messages_failed": job.messages_failed,
        "messages_cancelled": job.messages_cancelled,
        "messages_skipped": job.messages_skipped,
        "status_message": job.status_message,
        "started_at": _iso(job.started_at),
        "completed_at": _iso(job.completed_at),
    }
