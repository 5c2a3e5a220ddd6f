"""A database made by the previous schema (version 1) upgrades in place with every row kept."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.store import MIGRATIONS, IntentState, OutboxKind, SqliteStore

NOW = "2026-11-30T10:00:00+00:00"
JOB = "bc6097e6-254a-40b2-a8ac-27e823d34fd7"


def make_version_1(path: Path) -> None:
    """Write a database exactly as the version-1 code did, with one row in every table."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    db.executescript(MIGRATIONS[0])
    db.execute("INSERT INTO schema_version VALUES (1, ?)", (NOW,))
    db.execute(
        "INSERT INTO tracked_jobs (job_id, account_id, action_type, destination, search_params, status, "
        "channel_id, requester, card_ts, created_at, tracked_at, updated_at) "
        "VALUES (?, 'acc', 'MOVE', 'JunkEmail', '{\"subject\":\"invoice\",\"detections_only\":false}', "
        "'PROCESSING', 'C1', 'U1', '1.000100', ?, ?, ?)",
        (JOB, NOW, NOW, NOW),
    )
    db.execute(
        "INSERT INTO create_intents (tag, account_id, requester, channel_id, request, state, created_at, "
        "updated_at) VALUES ('t1', 'acc', 'U1', 'C1', "
        '\'{"action":"RELEASE","search_params":{"sender":"a@example.com","detections_only":true}}\', '
        "'open', ?, ?)",
        (NOW, NOW),
    )
    db.execute(
        "INSERT INTO audit_log (at, actor, action, job_id, channel_id, outcome) "
        "VALUES (?, 'U1', 'create', ?, 'C1', 'ok')",
        (NOW, JOB),
    )
    db.execute(
        "INSERT INTO outbox (job_id, kind, key, payload, due_at, created_at, updated_at) "
        "VALUES (?, 'transition', 'PENDING->PROCESSING', '{\"previous\":\"PENDING\"}', 0, ?, ?)",
        (JOB, NOW, NOW),
    )
    db.commit()
    db.close()


async def test_a_version_1_database_upgrades_in_place_keeping_every_row(tmp_path: Path) -> None:
    path = tmp_path / "sweep.db"
    make_version_1(path)
    async with SqliteStore.open(path) as store:
        assert await store.schema_version() == 3  # issue 9 made step 2, issue 11 step 3 (outbox targets)
        job = await store.get_job(JOB)
        assert job is not None and job.status == "PROCESSING" and job.card_ts == "1.000100"
        [intent] = await store.open_create_intents()
        assert intent.tag == "t1" and intent.state is IntentState.OPEN and intent.misses == 0
        [entry] = await store.list_audit()
        assert entry.job_id == JOB and entry.outcome == "ok"
        [row] = await store.outbox_due(now=datetime.now(UTC))
        assert row.kind is OutboxKind.TRANSITION and row.channel_id == "C1" and row.card_ts == "1.000100"
        # The audit log is still append-only after the rebuild of other tables.
        with pytest.raises(Exception, match="append-only"):
            await store._fetchall("DELETE FROM audit_log")  # noqa: SLF001 - the trigger is the point
    async with SqliteStore.open(path) as again:
        assert await again.schema_version() == 3
