"""SqliteStore against a real SQLite file: migrations, creates, snapshots/diff, outbox, audit."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from bot.cloudflare.models import BulkJob, CreateJobRequest
from bot.models import AuditEntry
from bot.store import (
    IntentState,
    OutboxKind,
    OutboxState,
    SqliteStore,
    StoreError,
    migrate,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
JOB_A = "00000000-0000-4000-8000-00000000000a"
JOB_B = "00000000-0000-4000-8000-00000000000b"


def make_job(job_id: str = JOB_A, status: str = "PENDING", **extra: Any) -> BulkJob:
    """Return a Cloudflare job as the API would report it."""
    data: dict[str, Any] = {
        "job_id": job_id,
        "action_type": "MOVE",
        "action_params": {"type": "MOVE", "destination": "JunkEmail"},
        "search_params": {"subject": "Invoice <urgent>", "detections_only": False},
        "status": status,
        "comment": "[sweep:tag1] phishing wave",
        "created_at": "2026-11-20T08:59:00Z",
    }
    data.update(extra)
    return BulkJob.model_validate(data)


def make_request() -> CreateJobRequest:
    return CreateJobRequest.model_validate(
        {
            "action": "MOVE",
            "destination": "JunkEmail",
            "search_params": {"subject": "Invoice", "detections_only": False},
            "comment": "phishing wave",
        }
    )


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    async with SqliteStore.open(tmp_path / "sweep.db") as opened:
        yield opened


async def track(store: SqliteStore, job: BulkJob, channel: str = "C1") -> None:
    await store.track_existing(job, account_id="acc", requester="U1", channel_id=channel, now=T0)


# The schema this release ships: one migration step. Adding a step must bump this on purpose.
# Version 2 (issue 9): ambiguous creates, stored use-once previews, remembered Slack requests.
# Version 3 (issue 11): an outbox row may target a thread or a user; a notice's kind is its notice.
SHIPPED_SCHEMA_VERSION = 3
# Tables the README and DESIGN.md name (the audit log is `audit_log`, README "Security model").
SHIPPED_TABLES = {"audit_log", "create_intents", "outbox", "tracked_jobs", "previews", "seen_requests"}


async def test_open_migrates_once_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "sweep.db"
    assert await migrate(path) == SHIPPED_SCHEMA_VERSION
    store = await SqliteStore.open(path)
    try:
        assert await store.schema_version() == SHIPPED_SCHEMA_VERSION
    finally:
        await store.close()
    assert await migrate(path) == SHIPPED_SCHEMA_VERSION  # a second run applies nothing
    async with aiosqlite.connect(path) as db:
        async with db.execute("PRAGMA journal_mode") as cursor:
            assert (await cursor.fetchone()) == ("wal",)
        async with db.execute("SELECT COUNT(*) FROM schema_version") as cursor:
            assert (await cursor.fetchone()) == (SHIPPED_SCHEMA_VERSION,)
        async with db.execute("SELECT name FROM sqlite_master WHERE type = 'table'") as cursor:
            tables = {row[0] for row in await cursor.fetchall()}
        assert tables >= SHIPPED_TABLES | {"schema_version"}


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sweep.db"
    await migrate(path)
    async with aiosqlite.connect(path) as db:
        await db.execute("INSERT INTO schema_version VALUES (?, ?)", (SHIPPED_SCHEMA_VERSION + 1, "later"))
        await db.commit()
    with pytest.raises(StoreError, match="newer"):
        await SqliteStore.open(path)


async def test_finish_create_tracks_queues_card_and_audits_once(store: SqliteStore) -> None:
    await store.begin_create(
        "tag1", account_id="acc", requester="U1", channel_id="C1", request=make_request(), now=T0
    )
    [intent] = await store.open_create_intents()
    assert intent.request == make_request() and intent.state is IntentState.OPEN
    with pytest.raises(StoreError):
        await store.begin_create(
            "tag1", account_id="acc", requester="U1", channel_id="C1", request=make_request(), now=T0
        )

    tracked = await store.finish_create("tag1", make_job(), now=T0)
    again = await store.finish_create("tag1", make_job(status="PROCESSING"), now=T0 + timedelta(seconds=1))

    assert tracked.requester == "U1" and tracked.channel_id == "C1" and tracked.account_id == "acc"
    assert again == tracked
    assert await store.get_job(JOB_A) == tracked
    assert await store.open_create_intents() == []
    rows = await store.list_outbox(JOB_A)
    assert [(r.kind, r.key) for r in rows] == [(OutboxKind.CARD_POST, "card")]
    audit = await store.list_audit(job_id=JOB_A)
    assert [(a.actor, a.action, a.outcome) for a in audit] == [("U1", "create", "ok")]


async def test_fail_create_closes_the_intent(store: SqliteStore) -> None:
    await store.begin_create(
        "tag2", account_id="acc", requester="U1", channel_id="C1", request=make_request(), now=T0
    )
    await store.fail_create("tag2", error="HTTP 400", now=T0)
    assert await store.open_create_intents() == []
    with pytest.raises(StoreError):
        await store.finish_create("nope", make_job(), now=T0)


async def test_track_existing_is_idempotent(store: SqliteStore) -> None:
    first, new = await store.track_existing(
        make_job(), account_id="a", requester="U1", channel_id="C1", now=T0
    )
    second, again = await store.track_existing(
        make_job(status="PROCESSING"), account_id="a", requester="U2", channel_id="C2", now=T0
    )
    assert new and not again and second == first
    assert first.search_params.subject == "Invoice <urgent>"
    assert len(await store.list_outbox(JOB_A)) == 1
    assert [j.job_id for j in await store.list_recent(5)] == [JOB_A]


async def test_apply_snapshots_diffs_and_queues_one_reply_per_transition(store: SqliteStore) -> None:
    await track(store, make_job())
    await track(store, make_job(JOB_B, status="PROCESSING"))

    assert await store.apply_snapshots([make_job(), make_job(JOB_B, status="PROCESSING")], now=T0) == []
    assert [r.kind for r in await store.list_outbox(JOB_A)] == [OutboxKind.CARD_POST]

    t1 = T0 + timedelta(seconds=10)
    moved = make_job(status="DISCOVERING", total_messages_discovered=5, messages_pending=5)
    [transition] = await store.apply_snapshots([moved, make_job("untracked-job", status="DONE")], now=t1)
    assert (transition.job_id, transition.previous_status, transition.status) == (
        JOB_A,
        "PENDING",
        "DISCOVERING",
    )
    assert await store.apply_snapshots([moved], now=t1) == []  # same state again: nothing

    rows = {(r.kind, r.key): r for r in await store.list_outbox(JOB_A)}
    assert set(rows) == {
        (OutboxKind.CARD_POST, "card"),
        (OutboxKind.TRANSITION, "PENDING->DISCOVERING"),
        (OutboxKind.CARD_UPDATE, "card"),
    }
    assert rows[(OutboxKind.TRANSITION, "PENDING->DISCOVERING")].payload["state"]["messages_pending"] == 5
    job = await store.get_job(JOB_A)
    assert job is not None and job.status == "DISCOVERING" and job.total_messages_discovered == 5

    # Counters only: the card update is re-armed, no reply.
    progressed = make_job(status="DISCOVERING", total_messages_discovered=9, messages_pending=9)
    assert await store.apply_snapshots([progressed], now=t1) == []
    rows_after = {(r.kind, r.key): r for r in await store.list_outbox(JOB_A)}
    assert len(rows_after) == 3
    assert rows_after[(OutboxKind.CARD_UPDATE, "card")].seq == 2

    done = make_job(status="COMPLETED", total_messages_discovered=9, messages_successful=9)
    [finished] = await store.apply_snapshots([done], now=t1)
    assert finished.finished
    assert await store.active_statuses() == {JOB_B: "PROCESSING"}
    assert [j.job_id for j in await store.list_active()] == [JOB_B]


async def test_apply_snapshots_many_jobs_in_one_call(store: SqliteStore) -> None:
    jobs = [make_job(f"job-{i:05d}") for i in range(500)]
    for job in jobs[:400]:
        await track(store, job)
    moved = [make_job(job.job_id, status="PROCESSING") for job in jobs]
    transitions = await store.apply_snapshots(moved, now=T0)
    assert len(transitions) == 400
    assert set((await store.active_statuses()).values()) == {"PROCESSING"}


async def test_mark_gone_queues_card_update_and_reply(store: SqliteStore) -> None:
    await track(store, make_job(status="PROCESSING"))
    assert await store.mark_gone(JOB_A, now=T0, reason="deleted at Cloudflare (404)")
    assert not await store.mark_gone(JOB_A, now=T0, reason="again")
    job = await store.get_job(JOB_A)
    assert (
        job is not None and job.gone and job.is_terminal and job.last_error == "deleted at Cloudflare (404)"
    )
    assert await store.active_statuses() == {}
    keys = [(r.kind, r.key) for r in await store.list_outbox(JOB_A)]
    assert (OutboxKind.TRANSITION, "PROCESSING->GONE") in keys and (OutboxKind.CARD_UPDATE, "card") in keys


async def test_audit_log_is_append_only(store: SqliteStore, tmp_path: Path) -> None:
    entry = AuditEntry(at=T0, actor="U1", action="cancel", job_id=JOB_A, outcome="ok", detail="x'); DROP")
    await store.add_audit(entry)
    await store.add_audit(entry.model_copy(update={"job_id": JOB_B}))
    [latest, first] = await store.list_audit()
    assert latest.job_id == JOB_B and first.detail == "x'); DROP" and first.id is not None
    assert [a.job_id for a in await store.list_audit(job_id=JOB_A)] == [JOB_A]
    async with aiosqlite.connect(tmp_path / "sweep.db") as db:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await db.execute("UPDATE audit_log SET outcome = 'forged'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            await db.execute("DELETE FROM audit_log")


async def test_outbox_card_lifecycle(store: SqliteStore) -> None:
    await track(store, make_job())
    [post] = await store.outbox_due(now=T0)
    assert post.kind is OutboxKind.CARD_POST and post.channel_id == "C1"

    # A reply waits for its card.
    await store.apply_snapshots([make_job(status="PROCESSING")], now=T0)
    assert [r.kind for r in await store.outbox_due(now=T0)] == [OutboxKind.CARD_POST]

    state = await store.card_state(JOB_A)
    assert state is not None and state[1] == 1
    await store.outbox_attempting(post.id, now=T0)
    await store.card_posted(
        post.id, job_id=JOB_A, ts="1.0001", seq=state[1], now=T0, hold_until=T0 + timedelta(seconds=2.5)
    )
    job = await store.get_job(JOB_A)
    assert job is not None and job.card_ts == "1.0001"
    # The card update was rendered with the post: only the reply is due.
    [reply] = await store.outbox_due(now=T0 + timedelta(seconds=5))
    assert reply.kind is OutboxKind.TRANSITION and reply.card_ts == "1.0001"
    await store.outbox_attempting(reply.id, now=T0)
    assert (await store.outbox_get(reply.id)).state is OutboxState.ATTEMPTING  # type: ignore[union-attr]
    await store.outbox_sent(reply.id, now=T0, ts="1.0002")

    # A change during an edit keeps the row pending, with the coalescing hold.
    await store.apply_snapshots([make_job(status="PROCESSING", messages_pending=3)], now=T0)
    assert await store.outbox_next_due() == T0 + timedelta(seconds=2.5)
    [update] = await store.outbox_due(now=T0 + timedelta(seconds=3))
    rendered = await store.card_state(JOB_A)
    assert rendered is not None
    await store.apply_snapshots([make_job(status="PROCESSING", messages_pending=2)], now=T0)
    await store.outbox_sent(update.id, now=T0, seq=rendered[1], hold_until=T0 + timedelta(seconds=6))
    assert (await store.outbox_get(update.id)).state is OutboxState.PENDING  # type: ignore[union-attr]
    assert await store.outbox_due(now=T0 + timedelta(seconds=5)) == []
    assert [r.kind for r in await store.outbox_due(now=T0 + timedelta(seconds=6))] == [OutboxKind.CARD_UPDATE]

    await store.mark_card_dead(JOB_A, error="slack: message_not_found", now=T0)
    assert await store.outbox_due(now=T0 + timedelta(days=1)) == []
    assert await store.outbox_next_due() is None
    job = await store.get_job(JOB_A)
    assert job is not None and job.card_dead
