"""Databases made by earlier schemas upgrade in place to the newest with every row kept.

- Files made by the releases before Alembic (SQLite, a `schema_version` table at 1 or 2): adopted,
  stamped at the matching revision and upgraded, every job, intent, preview, audit entry and
  outbox row kept.
- On both backends, a database left at any earlier revision upgrades to the newest with its rows.
"""

# ruff: noqa: S608 - the statements are the test's own fixed rows
from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.store import IntentState, OutboxKind, PreviewState, SqlStore, StoreError, head_version, open_store
from bot.store.db import create_engine
from bot.store.migrate import upgrade

NOW = "2026-11-30T10:00:00+00:00"
JOB = "bc6097e6-254a-40b2-a8ac-27e823d34fd7"

# The schema steps exactly as the releases before Alembic shipped them (bot/store.py, versions 1 and 2):
# each entry is one version, applied in order.
LEGACY_MIGRATIONS: tuple[str, ...] = (
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
)


V1_ROWS = (
    "INSERT INTO tracked_jobs (job_id, account_id, action_type, destination, search_params, status, "
    "channel_id, requester, card_ts, created_at, tracked_at, updated_at) "
    f"VALUES ('{JOB}', 'acc', 'MOVE', 'JunkEmail', '{{\"subject\":\"invoice\",\"detections_only\":false}}', "
    f"'PROCESSING', 'C1', 'U1', '1.000100', '{NOW}', '{NOW}', '{NOW}')",
    "INSERT INTO create_intents (tag, account_id, requester, channel_id, request, state, created_at, "
    "updated_at) VALUES ('t1', 'acc', 'U1', 'C1', "
    '\'{"action":"RELEASE","search_params":{"sender":"a@example.com","detections_only":true}}\', '
    f"'open', '{NOW}', '{NOW}')",
    "INSERT INTO audit_log (at, actor, action, job_id, channel_id, outcome) "
    f"VALUES ('{NOW}', 'U1', 'create', '{JOB}', 'C1', 'ok')",
    "INSERT INTO outbox (id, job_id, kind, key, payload, due_at, created_at, updated_at) "
    f"VALUES (7, '{JOB}', 'transition', 'PENDING->PROCESSING', '{{\"previous\":\"PENDING\"}}', 0, "
    f"'{NOW}', '{NOW}')",
)
V2_ROWS = (
    "INSERT INTO create_intents (tag, account_id, requester, channel_id, request, state, preview_id, checks, "
    "misses, next_check_at, created_at, updated_at) VALUES ('t2', 'acc', 'U2', 'C2', "
    '\'{"action":"MOVE","destination":"JunkEmail",'
    '"search_params":{"subject":"x","detections_only":false}}\', '
    f"'ambiguous', 'p1', 2, 1, 1764496800.5, '{NOW}', '{NOW}')",
    "INSERT INTO previews (id, requester, channel_id, draft, request_hash, matched, capped, state, tag, "
    f"expires_at, created_at, updated_at) VALUES ('p1', 'U2', 'C2', '{{}}', 'h', 12, 1, 'used', 't2', "
    f"1764496800.0, '{NOW}', '{NOW}')",
    "INSERT INTO seen_requests (key, at) VALUES ('block_actions:1.2.abc', 1764496800.0)",
    "INSERT INTO outbox (id, job_id, channel_id, kind, key, payload, due_at, created_at, updated_at) "
    f"VALUES (9, NULL, 'C2', 'notice', 'create:t0', '{{\"text\":\"no job\"}}', 0, '{NOW}', '{NOW}')",
)


def make_legacy(path: Path, version: int) -> None:
    """Write a database exactly as the release at `version` did, with rows in every table."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    for step in range(1, version + 1):
        db.executescript(LEGACY_MIGRATIONS[step - 1])
        db.execute("INSERT INTO schema_version VALUES (?, ?)", (step, NOW))
        for statement in (V1_ROWS, V2_ROWS)[step - 1]:
            db.execute(statement)
    db.commit()
    db.close()


async def assert_rows_kept(store: SqlStore, version: int) -> None:
    """Every row written at `version` is there, read back through the store."""
    assert await store.schema_version() == head_version()
    job = await store.get_job(JOB)
    assert job is not None and job.status == "PROCESSING" and job.card_ts == "1.000100"
    assert job.search_params.subject == "invoice"
    # Revision 4: jobs and intents made before it have no agreed maximum (never auto-cancelled).
    assert job.agreed_max is None and job.overshoot is None
    assert all(intent.agreed_max is None for intent in await store.open_create_intents())
    intents = await store.open_create_intents()
    assert [i.tag for i in intents] == (["t1"] if version == 1 else ["t1", "t2"])
    assert intents[0].state is IntentState.OPEN and intents[0].misses == 0
    [entry] = await store.list_audit()
    assert entry.job_id == JOB and entry.outcome == "ok"
    [row] = await store.list_outbox(JOB)
    assert (row.id, row.kind, row.channel_id, row.card_ts) == (7, OutboxKind.TRANSITION, "C1", "1.000100")
    assert row.payload == {"previous": "PENDING"} and row.thread_ts is None and row.user_id is None
    [due] = [r for r in await store.outbox_due(now=datetime.now(UTC)) if r.job_id == JOB]
    assert due.id == 7
    if version >= 2:
        ambiguous = await store.get_create_intent("t2")
        assert ambiguous is not None and ambiguous.state is IntentState.AMBIGUOUS
        assert (ambiguous.preview_id, ambiguous.checks, ambiguous.misses) == ("p1", 2, 1)
        preview = await store.get_preview("p1")
        assert preview is not None and preview.state is PreviewState.USED and preview.capped
        assert not await store.claim_request("block_actions:1.2.abc", now=datetime.now(UTC))
        [notice] = await store.list_notices()
        assert (notice.id, notice.channel_id, notice.payload) == (9, "C2", {"text": "no job"})
    counts = await store.counts()
    assert counts["tracked_jobs"] == 1 and counts["audit_log"] == 1
    assert counts["outbox"] == (1 if version == 1 else 2)
    # New rows do not collide with the kept ids.
    assert await store.queue_delivery("after", kind="notice", user_id="U3", payload={}, now=datetime.now(UTC))
    [after] = [r for r in await store.list_notices() if r.key == "after"]
    assert after.id > (7 if version == 1 else 9)


@pytest.mark.parametrize("version", [1, 2])
async def test_a_file_made_before_alembic_upgrades_in_place_keeping_every_row(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "sweep.db"
    make_legacy(path, version)
    async with SqlStore.open(path) as store:
        await assert_rows_kept(store, version)
        # The audit log is still append-only after the rebuild of other tables.
        with pytest.raises(Exception, match="append-only"):
            async with store.db.begin() as conn:
                await conn.execute(text("DELETE FROM audit_log"))
    async with SqlStore.open(path) as again:  # adopted once: the second open changes nothing
        assert await again.schema_version() == head_version()
        assert len(await again.list_audit()) == 1


async def test_a_file_newer_than_any_release_before_alembic_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sweep.db"
    make_legacy(path, 2)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_version VALUES (?, ?)", (head_version() + 1, NOW))
    with pytest.raises(StoreError, match="newer.*upgrade Sweep"):
        await SqlStore.open(path)


@pytest.mark.parametrize("version", [1, 2, 3])
async def test_an_earlier_revision_upgrades_to_the_newest_keeping_every_row(
    store_url: str, version: int
) -> None:
    engine = create_engine(store_url)
    try:
        async with engine.begin() as conn:
            assert await conn.run_sync(upgrade, f"{version:04d}") == version
            for statement in V1_ROWS + (V2_ROWS if version >= 2 else ()):
                await conn.exec_driver_sql(statement)
            if conn.dialect.name == "postgresql":  # rows given their ids by hand: move the sequence past them
                await conn.exec_driver_sql("SELECT setval(pg_get_serial_sequence('outbox', 'id'), 9)")
    finally:
        await engine.dispose()
    async with open_store(store_url) as store:
        await assert_rows_kept(store, version)
