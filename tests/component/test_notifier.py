"""Notifier against a real SQLite store and the local Slack over HTTP: exactly once, coalescing, failures.

The notifier talks to `bot.devslack` through the production port (`WebClientSlackPort` over slack_sdk's
AsyncWebClient); Slack's failures are served by the local Slack (`fail`, `rate_limit`, missing channels).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.cloudflare.models import BulkJob
from bot.devslack.server import running_fake_slack
from bot.outbox import Notifier
from bot.slack_port import SlackPort
from bot.store import OutboxKind, OutboxState, SqliteStore
from tests.support import LocalSlack

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
JOB_A = "00000000-0000-4000-8000-00000000000a"
JOB_B = "00000000-0000-4000-8000-00000000000b"
BOT_TOKEN = "xoxb-notifier-test"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Crash(BaseException):
    """Stands for the process dying: nothing in the notifier may catch it."""


class CrashAfterSlack:
    """A SlackPort that forwards a call to Slack, then 'dies' before the caller hears back."""

    def __init__(self, inner: SlackPort, *, crash_on: str) -> None:
        self.inner = inner
        self.crash_on = crash_on

    async def post_message(self, **kwargs: Any) -> str:
        await self.inner.post_message(**kwargs)
        if self.crash_on == "post_message":
            raise Crash
        raise AssertionError("unexpected post")

    async def update_message(self, **kwargs: Any) -> None:
        await self.inner.update_message(**kwargs)
        if self.crash_on == "update_message":
            raise Crash

    async def find_message_with_metadata(self, **kwargs: Any) -> str | None:
        return await self.inner.find_message_with_metadata(**kwargs)


class CrashBeforeSlack(CrashAfterSlack):
    """A SlackPort that 'dies' just before the call reaches Slack."""

    async def post_message(self, **kwargs: Any) -> str:
        raise Crash


def make_job(job_id: str = JOB_A, status: str = "PENDING", **extra: Any) -> BulkJob:
    data: dict[str, Any] = {
        "job_id": job_id,
        "action_type": "RELEASE",
        "action_params": {"type": "RELEASE"},
        "search_params": {"sender": "evil@example.com", "detections_only": True},
        "status": status,
        "created_at": "2026-11-20T08:59:00Z",
    }
    data.update(extra)
    return BulkJob.model_validate(data)


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
        # No retry handler: the notifier itself must handle Slack's 429 (it pauses every row).
        client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)
        yield LocalSlack(fake.state, client)


async def track(store: SqliteStore, job: BulkJob, clock: FakeClock, channel: str = "C1") -> None:
    await store.track_existing(job, account_id="acc", requester="U1", channel_id=channel, now=clock())


async def drain_all(notifier: Notifier) -> int:
    total = 0
    while sent := await notifier.drain_once():
        total += sent
    return total


async def test_card_and_one_reply_per_transition(
    store: SqliteStore, slack: LocalSlack, clock: FakeClock
) -> None:
    notifier = Notifier(store, slack, clock=clock)
    await track(store, make_job(), clock)
    assert await drain_all(notifier) == 1
    [card] = slack.top_level("C1")
    assert card.metadata == {"event_type": "sweep_card", "event_payload": {"job_id": JOB_A}}
    assert (await store.get_job(JOB_A)).card_ts == card.ts  # type: ignore[union-attr]

    for status in ("DISCOVERING", "PROCESSING", "COMPLETED"):
        clock.advance(10)
        await store.apply_snapshots([make_job(status=status)], now=clock())
        await drain_all(notifier)
    # The same snapshot again changes nothing and calls nobody.
    calls = len(slack.calls)
    await store.apply_snapshots([make_job(status="COMPLETED")], now=clock())
    clock.advance(10)
    assert await drain_all(notifier) == 0 and len(slack.calls) == calls

    replies = slack.replies(card.ts)
    assert [m.metadata["event_payload"]["transition"] for m in replies if m.metadata] == [
        "PENDING->DISCOVERING",
        "DISCOVERING->PROCESSING",
        "PROCESSING->COMPLETED",
    ]
    assert all(m.metadata and m.metadata["event_payload"]["job_id"] == JOB_A for m in replies)
    assert "Completed" in card.text or "COMPLETED" in card.text.upper()
    assert slack.count("find_message_with_metadata") == 0


async def test_card_edits_are_coalesced_but_the_final_state_is_sent(
    store: SqliteStore, slack: LocalSlack, clock: FakeClock
) -> None:
    notifier = Notifier(store, slack, clock=clock, min_edit_interval=2.5)
    await track(
        store, make_job(status="PROCESSING", total_messages_discovered=100, messages_pending=100), clock
    )
    await drain_all(notifier)
    [card] = slack.top_level()
    for pending in (90, 80, 70, 60):
        clock.advance(0.5)
        await store.apply_snapshots(
            [make_job(status="PROCESSING", total_messages_discovered=100, messages_pending=pending)],
            now=clock(),
        )
        await drain_all(notifier)
    assert slack.count("update_message") == 0  # all within 2.5 s of the post
    clock.advance(0.6)  # 2.6 s after the post
    await drain_all(notifier)
    assert slack.count("update_message") == 1 and "60" in str(card.blocks)

    clock.advance(0.1)
    await store.apply_snapshots(
        [make_job(status="COMPLETED", total_messages_discovered=100, messages_successful=100)], now=clock()
    )
    await drain_all(notifier)
    assert slack.count("update_message") == 1  # held, but the reply went out at once
    assert len(slack.replies(card.ts)) == 1
    assert await store.outbox_next_due() == clock() + timedelta(seconds=2.4)
    clock.advance(2.4)
    await drain_all(notifier)
    assert slack.count("update_message") == 2
    assert card.edits == 2 and "100" in str(card.blocks)
    clock.advance(60)
    assert await drain_all(notifier) == 0


async def test_message_not_found_stops_edits(store: SqliteStore, slack: LocalSlack, clock: FakeClock) -> None:
    notifier = Notifier(store, slack, clock=clock, min_edit_interval=0)
    await track(store, make_job(status="PROCESSING"), clock)
    await track(store, make_job(JOB_B, status="PROCESSING"), clock)
    await drain_all(notifier)
    card_a = (await store.get_job(JOB_A)).card_ts  # type: ignore[union-attr]
    assert card_a is not None
    await slack.delete_message("C1", card_a)

    await store.apply_snapshots([make_job(status="PROCESSING", messages_pending=1)], now=clock())
    await store.apply_snapshots([make_job(JOB_B, status="PROCESSING", messages_pending=1)], now=clock())
    await drain_all(notifier)
    job = await store.get_job(JOB_A)
    assert job is not None and job.card_dead and job.last_error == "slack: message_not_found"
    assert slack.count("update_message") == 2  # A failed once, B was edited

    await store.apply_snapshots([make_job(status="COMPLETED")], now=clock())
    clock.advance(60)
    assert await drain_all(notifier) == 0
    assert slack.count("update_message") == 2 and slack.count("post_message") == 2


async def test_channel_not_found_kills_the_card(
    store: SqliteStore, slack: LocalSlack, clock: FakeClock
) -> None:
    slack.state.missing_channels.add("CGONE")
    notifier = Notifier(store, slack, clock=clock)
    await track(store, make_job(), clock, channel="CGONE")
    assert await drain_all(notifier) == 1
    job = await store.get_job(JOB_A)
    assert job is not None and job.card_dead and job.card_ts is None
    await store.apply_snapshots([make_job(status="PROCESSING")], now=clock())
    clock.advance(3600)
    assert await drain_all(notifier) == 0 and slack.count("post_message") == 1


async def test_transient_errors_back_off_and_other_rows_flow(
    store: SqliteStore, slack: LocalSlack, clock: FakeClock
) -> None:
    notifier = Notifier(store, slack, clock=clock, base_backoff=1.0)
    await track(store, make_job(), clock)
    await track(store, make_job(JOB_B), clock, channel="C2")
    slack.state.fail("chat.postMessage", "internal_error")
    assert await notifier.drain_once() == 1  # A failed (transient), B posted
    assert [m.channel for m in slack.top_level()] == ["C2"]
    [row] = await store.list_outbox(JOB_A)
    assert row.state is OutboxState.ATTEMPTING and row.last_error == "internal_error"
    assert await notifier.drain_once() == 0  # backing off
    clock.advance(2)
    assert await notifier.drain_once() == 1
    # The failed try was ambiguous, so Slack was asked first; only one card exists.
    assert slack.count("find_message_with_metadata") == 1
    assert len(slack.top_level("C1")) == 1


async def test_a_reply_being_retried_keeps_the_jobs_later_replies_behind_it(
    store: SqliteStore, slack: LocalSlack, clock: FakeClock
) -> None:
    notifier = Notifier(store, slack, clock=clock, base_backoff=1.0, min_edit_interval=0)
    await track(store, make_job(), clock)
    await track(store, make_job(JOB_B), clock, channel="C2")
    assert await drain_all(notifier) == 2
    [card] = slack.top_level("C1")
    clock.advance(10)
    await store.apply_snapshots(
        [make_job(status="PROCESSING"), make_job(JOB_B, status="PROCESSING")], now=clock()
    )
    slack.state.fail("chat.postMessage", "internal_error")  # job A's reply fails (transient)
    await drain_all(notifier)
    await store.apply_snapshots(
        [make_job(status="COMPLETED"), make_job(JOB_B, status="COMPLETED")], now=clock()
    )
    await drain_all(notifier)
    assert slack.replies(card.ts) == []  # A's second reply waits for its first…
    [other] = slack.top_level("C2")
    assert len(slack.replies(other.ts)) == 2  # …and job B's replies flow meanwhile
    clock.advance(2)
    await drain_all(notifier)
    replies = [m.metadata["event_payload"]["transition"] for m in slack.replies(card.ts) if m.metadata]
    assert replies == ["PENDING->PROCESSING", "PROCESSING->COMPLETED"]


async def test_rate_limit_pauses_everything(store: SqliteStore, slack: LocalSlack, clock: FakeClock) -> None:
    notifier = Notifier(store, slack, clock=clock)
    await track(store, make_job(), clock)
    await track(store, make_job(JOB_B), clock)
    slack.state.rate_limit("chat.postMessage", retry_after=30)
    assert await notifier.drain_once() == 0
    assert slack.count("post_message") == 1  # the second row was not even tried
    assert notifier.paused_until == clock() + timedelta(seconds=30)
    clock.advance(29)
    assert await notifier.drain_once() == 0
    clock.advance(1)
    assert await drain_all(notifier) == 2 and len(slack.top_level()) == 2


async def test_permanent_error_fails_only_that_row(
    store: SqliteStore, slack: LocalSlack, clock: FakeClock
) -> None:
    notifier = Notifier(store, slack, clock=clock)
    await track(store, make_job(), clock)
    await drain_all(notifier)
    await store.apply_snapshots([make_job(status="PROCESSING")], now=clock())
    slack.state.fail("chat.postMessage", "invalid_blocks")
    await drain_all(notifier)
    rows = {r.kind: r for r in await store.list_outbox(JOB_A)}
    assert rows[OutboxKind.TRANSITION].state is OutboxState.FAILED
    assert rows[OutboxKind.TRANSITION].last_error == "slack: invalid_blocks"
    job = await store.get_job(JOB_A)
    assert job is not None and not job.card_dead


@pytest.mark.parametrize("crash_after_slack", [True, False], ids=["after-slack", "before-slack"])
async def test_restart_neither_loses_nor_duplicates_a_reply(
    db_path: Path, slack: LocalSlack, clock: FakeClock, crash_after_slack: bool
) -> None:
    async with SqliteStore.open(db_path) as store:
        await track(store, make_job(status="PROCESSING"), clock)
        await drain_all(Notifier(store, slack, clock=clock))
        await store.apply_snapshots([make_job(status="COMPLETED")], now=clock())
        wrapper_type = CrashAfterSlack if crash_after_slack else CrashBeforeSlack
        with pytest.raises(Crash):
            await Notifier(store, wrapper_type(slack, crash_on="post_message"), clock=clock).drain_once()  # type: ignore[arg-type]
    card_ts = next(iter(slack.top_level())).ts
    assert len(slack.replies(card_ts)) == (1 if crash_after_slack else 0)

    clock.advance(1)
    async with SqliteStore.open(db_path) as store:  # the restarted process
        [row] = [r for r in await store.list_outbox(JOB_A) if r.kind is OutboxKind.TRANSITION]
        assert row.state is OutboxState.ATTEMPTING
        assert await drain_all(Notifier(store, slack, clock=clock)) >= 1
        [reply] = slack.replies(card_ts)
        [row] = [r for r in await store.list_outbox(JOB_A) if r.kind is OutboxKind.TRANSITION]
        assert row.state is OutboxState.SENT and row.slack_ts == reply.ts
        assert slack.count("find_message_with_metadata") == 1


async def test_restart_after_the_card_was_posted_but_not_recorded(
    db_path: Path, slack: LocalSlack, clock: FakeClock
) -> None:
    async with SqliteStore.open(db_path) as store:
        await track(store, make_job(), clock)
        with pytest.raises(Crash):
            await Notifier(store, CrashAfterSlack(slack, crash_on="post_message"), clock=clock).drain_once()  # type: ignore[arg-type]
        # Meanwhile the job moved on; the card on Slack shows the old state.
        await store.apply_snapshots([make_job(status="PROCESSING")], now=clock())
    async with SqliteStore.open(db_path) as store:
        await drain_all(Notifier(store, slack, clock=clock))
        [card] = slack.top_level()
        job = await store.get_job(JOB_A)
        assert job is not None and job.card_ts == card.ts
        assert slack.count("post_message") == 2  # the card once, then the reply in its thread
        assert [m.metadata["event_payload"]["transition"] for m in slack.replies(card.ts) if m.metadata] == [
            "PENDING->PROCESSING"
        ]
        assert card.edits == 1  # brought up to date after recovery


async def test_crash_between_state_write_and_slack_call(
    db_path: Path, slack: LocalSlack, clock: FakeClock
) -> None:
    async with SqliteStore.open(db_path) as store:
        await track(store, make_job(), clock)
        await drain_all(Notifier(store, slack, clock=clock))
        await store.apply_snapshots([make_job(status="PROCESSING")], now=clock())
        # The process dies here: the state and its outbox rows are committed, Slack heard nothing.
    async with SqliteStore.open(db_path) as store:
        await drain_all(Notifier(store, slack, clock=clock))
    card = next(iter(slack.top_level()))
    assert len(slack.replies(card.ts)) == 1
    assert slack.count("find_message_with_metadata") == 0


async def test_unreadable_history_falls_back_to_at_least_once(
    store: SqliteStore, slack: LocalSlack, clock: FakeClock
) -> None:
    # Without channels:history the bot cannot look for its earlier post: it posts again rather than never.
    slack.state.fail("conversations.history", "missing_scope", times=None)
    await track(store, make_job(), clock)
    slack.state.fail("chat.postMessage", "request_timeout")
    notifier = Notifier(store, slack, clock=clock)
    await notifier.drain_once()
    clock.advance(5)
    assert await notifier.drain_once() == 1
    assert len(slack.top_level()) == 1
    assert [c.error for c in slack.state.calls("conversations.history")] == ["missing_scope"]


async def test_run_posts_a_new_card_when_woken(store: SqliteStore, slack: LocalSlack) -> None:
    notifier = Notifier(store, slack, idle_seconds=30)
    stop = asyncio.Event()
    task = asyncio.create_task(notifier.run(stop))
    try:
        await asyncio.sleep(0)
        await track(store, make_job(), FakeClock(datetime.now(UTC)))
        notifier.wake()
        deadline = asyncio.get_running_loop().time() + 5
        while not slack.top_level():
            assert asyncio.get_running_loop().time() < deadline, "card not posted"
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)
