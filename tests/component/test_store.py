"""The store on real databases, SQLite and PostgreSQL: migrations, creates, snapshots/diff, outbox, audit.

Every test here runs once per backend (`store_url`, tests/component/conftest.py).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from bot.cloudflare.models import BulkJob, CreateJobRequest
from bot.models import AuditEntry, TrackedJob
from bot.store import (
    IntentState,
    OutboxKind,
    OutboxState,
    SqlStore,
    StoreError,
    database_url,
    display_url,
    migrate,
    open_store,
)
from bot.store.jobs import insert_tracked
from bot.store.schema import metadata

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
async def store(store_url: str) -> Any:
    async with open_store(store_url) as opened:
        yield opened


async def raw_execute(url: str, sql: str) -> None:
    """Run one statement on the database itself, through the bare driver (not the store)."""
    if url.startswith("sqlite"):
        async with aiosqlite.connect(url.split(":///", 1)[1]) as db:
            await db.execute(sql)
            await db.commit()
        return
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def track(store: SqlStore, job: BulkJob, channel: str = "C1") -> None:
    await store.track_existing(job, account_id="acc", requester="U1", channel_id=channel, now=T0)


def tracked_job(job_id: str, *, agreed_max: int | None = None) -> TrackedJob:
    """Return a PENDING job as Sweep tracks it (`agreed_max`: as if created from a preview)."""
    return TrackedJob.from_job(
        make_job(job_id), account_id="acc", now=T0, requester="U1", channel_id="C1", agreed_max=agreed_max
    )


# The schema this release ships: one migration step each. Adding a step must bump this on purpose.
# Version 2 (issue 9): ambiguous creates, stored use-once previews, remembered Slack requests.
# Version 3 (issue 11): a job-less outbox row may target a thread or a user.
# Version 6 (issue 13): the Cloudflare request budget every replica shares.
# Version 7 (issue 12): approval requests (the exact request, who asked, how it was decided).
SHIPPED_SCHEMA_VERSION = 7
# Tables the README and DESIGN.md name (the audit log is `audit_log`, README "Security model").
SHIPPED_TABLES = {
    "audit_log",
    "create_intents",
    "outbox",
    "tracked_jobs",
    "previews",
    "seen_requests",
    "cloudflare_budget",
    "approvals",
}


async def test_open_migrates_once(store_url: str) -> None:
    assert await migrate(store_url) == SHIPPED_SCHEMA_VERSION
    store = await SqlStore.open(store_url)
    try:
        assert await store.schema_version() == SHIPPED_SCHEMA_VERSION
        async with store.db.read() as conn:
            tables = set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars().all()
    finally:
        await store.close()
    assert await migrate(store_url) == SHIPPED_SCHEMA_VERSION  # a second run applies nothing
    assert tables >= SHIPPED_TABLES | {"alembic_version"}
    assert versions == [f"{SHIPPED_SCHEMA_VERSION:04d}"]


async def test_sqlite_uses_wal_and_tells_an_older_sweep_the_version(tmp_path: Path) -> None:
    path = tmp_path / "sweep.db"
    assert await migrate(path) == SHIPPED_SCHEMA_VERSION  # a plain path is a SQLite file
    async with aiosqlite.connect(path) as db:
        async with db.execute("PRAGMA journal_mode") as cursor:
            assert (await cursor.fetchone()) == ("wal",)
        # The pre-Alembic releases read this table: they refuse the file ("newer … upgrade Sweep").
        async with db.execute("SELECT MAX(version) FROM schema_version") as cursor:
            assert (await cursor.fetchone()) == (SHIPPED_SCHEMA_VERSION,)


async def test_the_migrations_build_exactly_the_schema_module(store_url: str) -> None:
    def differences(sync: Connection) -> list[Any]:
        found = compare_metadata(MigrationContext.configure(sync), metadata)
        # SQLite keeps the pre-Alembic version table for older releases to read (bot/store/migrate.py).
        return [d for d in found if not (d[0] == "remove_table" and d[1].name == "schema_version")]

    async with open_store(store_url) as store, store.db.read() as conn:
        assert await conn.run_sync(differences) == []


async def test_newer_schema_is_refused(store_url: str) -> None:
    await migrate(store_url)
    await raw_execute(
        store_url,
        f"UPDATE alembic_version SET version_num = '{SHIPPED_SCHEMA_VERSION + 1:04d}'",  # noqa: S608
    )
    with pytest.raises(StoreError, match="newer.*upgrade Sweep"):
        await SqlStore.open(store_url)


async def test_finish_create_tracks_queues_card_and_audits_once(store: SqlStore) -> None:
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


async def test_fail_create_closes_the_intent(store: SqlStore) -> None:
    await store.begin_create(
        "tag2", account_id="acc", requester="U1", channel_id="C1", request=make_request(), now=T0
    )
    await store.fail_create("tag2", error="HTTP 400", now=T0)
    assert await store.open_create_intents() == []
    with pytest.raises(StoreError):
        await store.finish_create("nope", make_job(), now=T0)


async def test_track_existing_is_idempotent(store: SqlStore) -> None:
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


async def test_apply_snapshots_diffs_and_queues_one_reply_per_transition(store: SqlStore) -> None:
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


async def test_a_stale_snapshot_never_revives_a_finished_job(store: SqlStore) -> None:
    """A poll that read a job before its cancel landed (another replica's) changes nothing after it."""
    await track(store, make_job())
    [cancelled] = await store.apply_snapshots([make_job(status="CANCELLED")], now=T0)
    assert cancelled.status == "CANCELLED"
    before = {(r.kind, r.key) for r in await store.list_outbox(JOB_A)}
    assert await store.apply_snapshots([make_job(status="PENDING")], now=T0) == []
    job = await store.get_job(JOB_A)
    assert job is not None and job.status == "CANCELLED"
    after = {(r.kind, r.key) for r in await store.list_outbox(JOB_A)}
    assert after == before and (OutboxKind.TRANSITION, "CANCELLED->PENDING") not in after


async def test_apply_snapshots_many_jobs_in_one_call(store: SqlStore) -> None:
    jobs = [make_job(f"job-{i:05d}") for i in range(500)]
    for job in jobs[:400]:
        await track(store, job)
    moved = [make_job(job.job_id, status="PROCESSING") for job in jobs]
    transitions = await store.apply_snapshots(moved, now=T0)
    assert len(transitions) == 400
    assert set((await store.active_statuses()).values()) == {"PROCESSING"}


# Ids a job id column must take as they are (the bulk reads bind every id in one parameter).
ODD_IDS = ["job-'single'", 'job-"double"', "job-ü-\\-[1]", "job-,{}"]


async def test_apply_snapshots_of_thousands_of_jobs_changes_exactly_the_changed_ones(store: SqlStore) -> None:
    ids = [f"job-{i:05d}" for i in range(1_500)] + ODD_IDS
    tracked = ids[:1_200] + ODD_IDS  # the rest are snapshots of jobs Sweep does not track
    async with store.db.begin() as conn:
        for job_id in tracked:
            await insert_tracked(conn, tracked_job(job_id), now=T0)
    moved = set(ids[0:1_200:7]) | {ODD_IDS[0]}  # PENDING -> DISCOVERING: a reply and a card update
    counted = set(ids[3:1_200:11]) - moved | {ODD_IDS[1]}  # counters only: a card update
    snapshots = [
        make_job(job_id, status="DISCOVERING", total_messages_discovered=3)
        if job_id in moved
        else make_job(job_id, total_messages_discovered=2)
        if job_id in counted
        else make_job(job_id)
        for job_id in ids
    ]
    before = (await store.counts())["outbox"]

    transitions = await store.apply_snapshots(snapshots, now=T0 + timedelta(seconds=10))

    assert sorted(t.job_id for t in transitions) == sorted(moved)
    assert {(t.previous_status, t.status) for t in transitions} == {("PENDING", "DISCOVERING")}
    assert (await store.counts())["outbox"] - before == 2 * len(moved) + len(counted)
    statuses = await store.active_statuses()
    assert set(statuses) == set(tracked)
    assert {job_id for job_id, status in statuses.items() if status == "DISCOVERING"} == moved
    for job_id in (ODD_IDS[0], ODD_IDS[1], ODD_IDS[2], ids[1]):
        kinds = {r.kind for r in await store.list_outbox(job_id)}
        expected = {OutboxKind.CARD_POST}
        if job_id in moved | counted:
            expected.add(OutboxKind.CARD_UPDATE)
        if job_id in moved:
            expected.add(OutboxKind.TRANSITION)
        assert kinds == expected, job_id
    # The same snapshots again: nothing changed, nothing queued.
    assert await store.apply_snapshots(snapshots, now=T0 + timedelta(seconds=20)) == []
    assert (await store.counts())["outbox"] - before == 2 * len(moved) + len(counted)


async def test_overshoots_among_thousands_of_snapshots_are_the_running_jobs_past_their_maximum(
    store: SqlStore,
) -> None:
    ids = [f"job-{i:05d}" for i in range(1_500)] + ODD_IDS
    agreed = {job_id: 10 for job_id in ids[:1_200:3] + ODD_IDS}  # created from a preview: a maximum
    async with store.db.begin() as conn:
        for job_id in ids[:1_200] + ODD_IDS:
            await insert_tracked(conn, tracked_job(job_id, agreed_max=agreed.get(job_id)), now=T0)
    finished = ids[0:1_200:9]  # stored as finished: never an overshoot, whatever a snapshot says
    await store.apply_snapshots([make_job(job_id, status="COMPLETED") for job_id in finished], now=T0)
    over = set(ids[0:1_500:2]) | {ODD_IDS[0], ODD_IDS[3]}  # discovered 11 (> 10) in these snapshots
    done_now = set(ids[0:1_500:5])  # finished in these snapshots: past its maximum, but not running
    snapshots = [
        make_job(
            job_id,
            status="COMPLETED" if job_id in done_now else "PROCESSING",
            total_messages_discovered=11 if job_id in over else 10,
        )
        for job_id in ids
    ]

    found = await store.overshoots(snapshots)

    expected = {job_id for job_id in over if job_id in agreed} - set(finished) - done_now
    assert expected and {o.job_id for o in found} == expected
    assert {(o.discovered, o.agreed_max) for o in found} == {(11, 10)}
    assert await store.overshoots([]) == []


async def test_mark_gone_queues_card_update_and_reply(store: SqlStore) -> None:
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


async def test_audit_log_is_append_only(store: SqlStore, store_url: str) -> None:
    entry = AuditEntry(at=T0, actor="U1", action="cancel", job_id=JOB_A, outcome="ok", detail="x'); DROP")
    await store.add_audit(entry)
    await store.add_audit(entry.model_copy(update={"job_id": JOB_B}))
    [latest, first] = await store.list_audit()
    assert latest.job_id == JOB_B and first.detail == "x'); DROP" and first.id is not None
    assert [a.job_id for a in await store.list_audit(job_id=JOB_A)] == [JOB_A]
    refused = (sqlite3.IntegrityError, asyncpg.RaiseError)
    statements = ["UPDATE audit_log SET outcome = 'forged'", "DELETE FROM audit_log"]
    if not store_url.startswith("sqlite"):
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with pytest.raises(refused, match="append-only"):
            await raw_execute(store_url, statement)
    assert len(await store.list_audit()) == 2


async def test_outbox_card_lifecycle(store: SqlStore) -> None:
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


async def test_queue_delivery_needs_a_kind_name_and_a_target_and_is_once_per_key(store: SqlStore) -> None:
    payload = {"text": "your export is ready"}
    assert await store.queue_delivery("export:1", kind="notice", user_id="U9", payload=payload, now=T0)
    assert not await store.queue_delivery("export:1", kind="notice", user_id="U9", payload=payload, now=T0)
    assert await store.queue_delivery(
        "reply:1", kind="notice", channel_id="C7", thread_ts="1.0005", payload=payload, now=T0
    )
    with pytest.raises(StoreError, match="needs a job or a target"):
        await store.queue_delivery("lost", kind="notice", thread_ts="1.0005", payload=payload, now=T0)
    # Kinds are the outbox registry's (bot/outbox): the store takes any short name, so adding a kind
    # needs no migration; the registry refuses an unknown kind when it delivers (test_outbox.py).
    assert await store.queue_delivery("x", kind="carrier_pigeon", channel_id="C7", payload=payload, now=T0)
    with pytest.raises(StoreError, match="short name"):
        await store.queue_delivery("y", kind="", channel_id="C7", payload=payload, now=T0)
    dm, reply, _pigeon = await store.list_notices()
    assert (dm.user_id, dm.channel_id, dm.thread_ts, dm.job_id) == ("U9", None, None, None)
    assert (reply.channel_id, reply.thread_ts, reply.user_id) == ("C7", "1.0005", None)
    assert [r.key for r in await store.outbox_due(now=T0)] == ["export:1", "reply:1", "x"]
    # A job's row by the general path is unique by (job, kind, key), like the tracker's own rows.
    await track(store, make_job())
    assert not await store.queue_delivery("card", kind="card_post", job_id=JOB_A, payload={}, now=T0)
    assert [r.kind for r in await store.list_outbox(JOB_A)] == [OutboxKind.CARD_POST]


async def test_finish_create_is_one_transaction(store: SqlStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The intent, the job, its card row and the audit entry commit together, or none of them does."""
    await store.begin_create(
        "tag9", account_id="acc", requester="U1", channel_id="C1", request=make_request(), now=T0
    )
    before = await store.counts()

    async def audit_fails(*_: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("bot.store.intents.append_audit", audit_fails)
    with pytest.raises(RuntimeError, match="disk full"):
        await store.finish_create("tag9", make_job(), now=T0)
    assert await store.counts() == before
    [intent] = await store.open_create_intents()
    assert intent.state is IntentState.OPEN and await store.get_job(JOB_A) is None
    monkeypatch.undo()
    await store.finish_create("tag9", make_job(), now=T0)
    after = await store.counts()
    assert (after["tracked_jobs"], after["outbox"], after["audit_log"]) == (1, 1, 1)


def test_sweep_bot_migrate_works_on_both_backends_in_one_line(store_url: str) -> None:
    command = [sys.executable, "-m", "bot", "migrate", "--url", store_url]
    env = {"PATH": os.environ.get("PATH", ""), "SWEEP_LOG_LEVEL": "WARNING"}
    for _ in range(2):  # the second run finds nothing to do
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines() == [f"{store_url}: schema at version {SHIPPED_SCHEMA_VERSION}"]


def test_a_database_that_cannot_be_reached_is_one_line() -> None:
    url = "postgresql+asyncpg://postgres@127.0.0.1:1/nothing"  # no server listens on port 1
    command = [sys.executable, "-m", "bot", "migrate", "--url", url]
    env = {"PATH": os.environ.get("PATH", "")}
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "--url cannot be opened" in line and "127.0.0.1:1" in line and "Traceback" not in line


def test_a_store_url_is_a_plain_path_or_a_sqlite_or_postgresql_url(tmp_path: Path) -> None:
    path = tmp_path / "sweep.db"
    assert database_url(path) == f"sqlite+aiosqlite:///{path}"
    assert database_url(f"sqlite:///{path}") == f"sqlite+aiosqlite:///{path}"
    assert (
        database_url("postgresql://sweep:pw@db.internal/sweep")
        == "postgresql+asyncpg://sweep:pw@db.internal/sweep"
    )
    assert (
        display_url("postgresql://sweep:pw@db.internal/sweep") == "postgresql://sweep:***@db.internal/sweep"
    )
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        database_url("mysql://root@localhost/sweep")
