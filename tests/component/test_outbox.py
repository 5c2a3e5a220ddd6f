"""The general outbox against a real SQLite store and the local Slack over HTTP (`WebClientSlackPort`).

Every kind goes through the registry: today's four, plus kinds registered here only (a DM to a user, a
note in an explicit thread, kinds with a job that do or do not wait for its card) to show that a new kind
is one registration — no migration, no notifier change. A row left `attempting` by a crash is found again
by its kind's metadata (in a channel, a thread or a DM) and never posted twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from blocks._kit import escape
from blocks.notice import build_notice
from bot.devslack.server import running_fake_slack
from bot.models import TrackedJob
from bot.outbox import KINDS, Kind, Notifier, Recovery, Registry, Target
from bot.store import OutboxState, SqliteStore, StoreError, head_version
from tests.component.test_notifier import BOT_TOKEN, JOB_A, Crash, FakeClock, drain_all, make_job, track
from tests.component.test_store_upgrade import LEGACY_MIGRATIONS
from tests.support import LocalSlack

ANALYST = "U0ANALYST"
NOTICE_PAYLOAD: dict[str, Any] = {
    "notice": "create_not_made",
    "requester": ANALYST,
    "action": "RELEASE",
    "destination": None,
    "search_params": {"sender": "evil@example.com", "detections_only": True},
    "comment": None,
    "reason": "Cloudflare has no job with this request's tag: it was not created",
    "tag": "t1",
}


def render_note(payload: Mapping[str, Any], job: TrackedJob | None, now: datetime) -> dict[str, Any]:
    about = f" about job `{escape(job.job_id)}`" if job is not None else ""
    return build_notice(f"{escape(str(payload.get('text', '')))}{about}")


def _key_payload(item: Any) -> dict[str, Any]:
    return {"job_id": item.key}


#: Kinds a later feature might add, each one registration (the DM one goes to `user_id`).
EXPORT_READY = Kind("export_ready", Target.USER, render_note, Recovery("sweep_export", _key_payload))
THREAD_NOTE = Kind("thread_note", Target.CHANNEL, render_note, Recovery("sweep_note", _key_payload))
FOLLOW_UP = Kind(
    "follow_up", Target.CHANNEL, render_note, Recovery("sweep_follow_up", _key_payload), waits_for_card=True
)


def extended() -> Registry:
    kinds = KINDS.copy()
    for kind in (EXPORT_READY, THREAD_NOTE, FOLLOW_UP):
        kinds.register(kind)
    return kinds


class CrashingSlack(LocalSlack):
    """The production port that 'dies' after (or just before) a post reaches Slack."""

    def __init__(self, inner: LocalSlack, *, after: bool) -> None:
        super().__init__(inner.state, inner.client)
        self.after = after

    async def post_message(self, **kwargs: Any) -> str:
        if self.after:
            await super().post_message(**kwargs)
        raise Crash


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "sweep.db"


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqliteStore]:
    async with SqliteStore.open(db_path) as opened:
        yield opened


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def slack() -> AsyncIterator[LocalSlack]:
    async with running_fake_slack(bot_token=BOT_TOKEN) as fake:
        yield LocalSlack(fake.state, AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url))


def in_channel(slack: LocalSlack, channel: str, event_type: str) -> list[Any]:
    return [m for m in slack.state.messages(channel) if (m.metadata or {}).get("event_type") == event_type]


async def test_every_registered_kind_is_delivered_through_the_registry(
    store: SqliteStore, slack: LocalSlack, clock: FakeClock
) -> None:
    notifier = Notifier(store, slack, kinds=extended(), clock=clock, min_edit_interval=0)
    await track(store, make_job(), clock)
    await store.queue_notice("create:t1", channel_id="C2", payload=NOTICE_PAYLOAD, now=clock())
    await store.queue_delivery(
        "export:1", kind="export_ready", user_id=ANALYST, payload={"text": "3 rows"}, now=clock()
    )
    assert await drain_all(notifier) == 3
    [card] = slack.top_level("C1")
    assert card.metadata == {"event_type": "sweep_card", "event_payload": {"job_id": JOB_A}}

    clock.advance(1)
    await store.apply_snapshots([make_job(status="PROCESSING", messages_pending=4)], now=clock())
    await store.queue_delivery(
        "note:1",
        kind="thread_note",
        channel_id="C1",
        thread_ts=card.ts,
        payload={"text": "see above"},
        now=clock(),
    )
    assert await drain_all(notifier) == 3  # the transition reply, the card edit, the thread note
    thread = slack.replies(card.ts)
    assert [(m.metadata or {}).get("event_type") for m in thread] == ["sweep_transition", "sweep_note"]
    assert thread[0].metadata == {
        "event_type": "sweep_transition",
        "event_payload": {"job_id": JOB_A, "transition": "PENDING->PROCESSING"},
    }
    assert card.edits == 1 and "Processing" in card.text

    [notice] = slack.top_level("C2")
    assert notice.metadata == {"event_type": "sweep_notice", "event_payload": {"job_id": "create:t1"}}
    assert f"<@{ANALYST}>" in notice.text and "not created" in notice.text
    [dm] = slack.state.messages(f"D{ANALYST}")
    assert dm.text == "3 rows" and dm.metadata == {
        "event_type": "sweep_export",
        "event_payload": {"job_id": "export:1"},
    }
    assert [c.params.get("users") for c in slack.state.calls("conversations.open")] == [ANALYST]

    rows = [*await store.list_outbox(JOB_A), *await store.list_notices()]
    assert {(r.kind, r.state) for r in rows} == {
        (kind, OutboxState.SENT)
        for kind in (
            "card_post",
            "transition",
            "card_update",
            "create_not_made",
            "export_ready",
            "thread_note",
        )
    }
    [dm_row] = [r for r in rows if r.kind == "export_ready"]
    assert (dm_row.user_id, dm_row.slack_ts, dm_row.job_id) == (ANALYST, dm.ts, None)
    assert slack.count("find_message_with_metadata") == 0  # nothing was ambiguous


@pytest.mark.parametrize("after_slack", [True, False], ids=["after-slack", "before-slack"])
@pytest.mark.parametrize("kind", ["create_not_made", "export_ready", "thread_note"])
async def test_a_row_left_attempting_is_found_by_its_metadata_and_not_posted_twice(
    db_path: Path, slack: LocalSlack, clock: FakeClock, kind: str, after_slack: bool
) -> None:
    kinds = extended()
    async with SqliteStore.open(db_path) as store:
        await track(store, make_job(), clock)
        await drain_all(Notifier(store, slack, kinds=kinds, clock=clock))
        [card] = slack.top_level("C1")
        target: dict[str, Any] = {
            "create_not_made": {"channel_id": "C2"},
            "export_ready": {"user_id": ANALYST},
            "thread_note": {"channel_id": "C1", "thread_ts": card.ts},
        }[kind]
        payload = NOTICE_PAYLOAD if kind == "create_not_made" else {"text": "hello"}
        assert await store.queue_delivery("k:1", kind=kind, payload=payload, now=clock(), **target)
        assert not await store.queue_delivery("k:1", kind=kind, payload=payload, now=clock(), **target)
        with pytest.raises(Crash):
            await Notifier(
                store, CrashingSlack(slack, after=after_slack), kinds=kinds, clock=clock
            ).drain_once()
    where, thread_ts = target.get("channel_id") or f"D{ANALYST}", target.get("thread_ts")

    def posted() -> list[Any]:
        return [
            m
            for m in slack.state.messages(where)
            if m.thread_ts == thread_ts
            and m.ts != thread_ts
            and (m.metadata or {}).get("event_payload") == {"job_id": "k:1"}
        ]

    assert len(posted()) == (1 if after_slack else 0)
    clock.advance(1)
    async with SqliteStore.open(db_path) as store:  # the restarted process
        [row] = [r for r in await store.list_notices() if r.key == "k:1"]
        assert row.state is OutboxState.ATTEMPTING
        assert await drain_all(Notifier(store, slack, kinds=kinds, clock=clock)) == 1
        [message] = posted()
        [row] = [r for r in await store.list_notices() if r.key == "k:1"]
        assert row.state is OutboxState.SENT and row.slack_ts == message.ts
    # Looked up once, where the kind posts: the thread's replies or the channel's (or DM's) history.
    history = "conversations.replies" if thread_ts else "conversations.history"
    assert [c.params.get("channel") for c in slack.state.calls(history)] == [where]


async def test_a_kind_with_a_job_waits_for_its_card_only_when_registered_to(
    store: SqliteStore, slack: LocalSlack, clock: FakeClock
) -> None:
    kinds = extended()
    notifier = Notifier(store, slack, kinds=kinds, clock=clock)
    await track(store, make_job(), clock)
    await store.queue_delivery(
        "dm:1", kind="export_ready", user_id=ANALYST, job_id=JOB_A, payload={"text": "dm"}, now=clock()
    )
    await store.queue_delivery(
        "f:1", kind="follow_up", channel_id="C2", job_id=JOB_A, payload={"text": "later"}, now=clock()
    )
    slack.state.fail("chat.postMessage", "internal_error")  # the card's post fails (transient)
    assert await notifier.drain_once() == 1
    assert slack.top_level("C1") == [] and slack.state.messages("C2") == []
    [dm] = slack.state.messages(f"D{ANALYST}")
    assert dm.text == f"dm about job `{JOB_A}`"  # rendered with the job's current state
    assert await store.outbox_next_due(card_free=kinds.card_free()) == clock() + timedelta(seconds=1)

    clock.advance(1)
    assert await drain_all(notifier) == 2  # the card, then the follow-up that waited for it
    assert len(slack.top_level("C1")) == 1
    [follow_up] = slack.state.messages("C2")
    assert follow_up.metadata == {"event_type": "sweep_follow_up", "event_payload": {"job_id": "f:1"}}
    assert len(slack.state.messages(f"D{ANALYST}")) == 1


async def test_a_row_of_an_unregistered_kind_fails_clearly_and_the_others_flow(
    store: SqliteStore, slack: LocalSlack, clock: FakeClock
) -> None:
    await store.queue_delivery(
        "e:1", kind="export_ready", user_id=ANALYST, payload={"text": "x"}, now=clock()
    )
    await store.queue_notice("create:t1", channel_id="C2", payload=NOTICE_PAYLOAD, now=clock())
    assert await drain_all(Notifier(store, slack, clock=clock)) == 2  # the default kinds only
    rows = {r.kind: r for r in await store.list_notices()}
    assert rows["export_ready"].state is OutboxState.FAILED
    assert rows["export_ready"].last_error is not None
    assert "no delivery kind 'export_ready' is registered" in rows["export_ready"].last_error
    assert rows["create_not_made"].state is OutboxState.SENT and len(slack.top_level("C2")) == 1
    assert slack.state.messages(f"D{ANALYST}") == []


async def test_a_dm_slack_refuses_fails_that_row_only(
    store: SqliteStore, slack: LocalSlack, clock: FakeClock
) -> None:
    notifier = Notifier(store, slack, kinds=extended(), clock=clock)
    await track(store, make_job(), clock)
    await store.queue_delivery(
        "e:1", kind="export_ready", user_id="B0NOTAUSER", job_id=JOB_A, payload={"text": "x"}, now=clock()
    )
    await drain_all(notifier)
    [row] = [r for r in await store.list_outbox(JOB_A) if r.kind == "export_ready"]
    assert row.state is OutboxState.FAILED and row.last_error == "slack: user_not_found"
    job = await store.get_job(JOB_A)
    assert job is not None and not job.card_dead and job.card_ts is not None  # the job's card lives on


async def test_a_delivery_needs_a_target(store: SqliteStore, clock: FakeClock) -> None:
    with pytest.raises(StoreError, match="has no target"):
        await store.queue_delivery("x:1", kind="export_ready", payload={}, now=clock())
    with pytest.raises(StoreError, match="names its kind"):
        await store.queue_notice("x:2", channel_id="C1", payload={"text": "no kind"}, now=clock())


async def test_a_pending_notice_of_schema_2_keeps_going_after_the_upgrade(
    db_path: Path, slack: LocalSlack, clock: FakeClock
) -> None:
    db = sqlite3.connect(db_path)
    db.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    for version, step in enumerate(LEGACY_MIGRATIONS[:2], start=1):
        db.executescript(step)
        db.execute("INSERT INTO schema_version VALUES (?, '2026-11-30T10:00:00+00:00')", (version,))
    db.execute(
        "INSERT INTO outbox (job_id, channel_id, kind, key, payload, state, due_at, created_at, updated_at) "
        "VALUES (NULL, 'C2', 'notice', 'create:t1', ?, 'attempting', 0, 'x', 'x')",
        (json.dumps(NOTICE_PAYLOAD),),
    )
    db.commit()
    db.close()
    async with SqliteStore.open(db_path) as store:
        assert await store.schema_version() == head_version() == 7
        [row] = await store.list_notices()
        assert (row.kind, row.state, row.channel_id, row.thread_ts, row.user_id) == (
            "create_not_made",
            OutboxState.ATTEMPTING,
            "C2",
            None,
            None,
        )
        assert await drain_all(Notifier(store, slack, clock=clock)) == 1
    [notice] = slack.top_level("C2")
    assert "not created" in notice.text and notice.metadata == {
        "event_type": "sweep_notice",
        "event_payload": {"job_id": "create:t1"},
    }
