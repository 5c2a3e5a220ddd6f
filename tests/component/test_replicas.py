"""Several replicas on one PostgreSQL database (two `SqlStore`s = two engines = two replicas).

The poller lease: exactly one holds it; when the holder's connection or store goes, the other takes
it at its next check. On SQLite the one replica always holds it. The outbox: two notifiers draining
at once (through the real `WebClientSlackPort` to the local Slack over HTTP) post every card, thread
reply and notice exactly once; a claim left by a replica that died runs out and the row is recovered.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.devslack.server import running_fake_slack
from bot.outbox import Notifier
from bot.store import OutboxState, SqlStore
from bot.store.migrate import head_version
from bot.store.outbox import CLAIM_SECONDS
from tests.component.conftest import PG_SERVER, postgres_database
from tests.component.test_notifier import BOT_TOKEN, Crash, FakeClock, drain_all, make_job
from tests.e2e.conftest import bot_env
from tests.support import LocalSlack

NOTICE = {
    "requester": "U0ANALYST",
    "action": "RELEASE",
    "destination": None,
    "search_params": {"sender": "evil@example.com", "detections_only": True},
    "comment": None,
    "reason": "Cloudflare has no job with this request's tag: it was not created",
    "tag": "t1",
}

INTERVAL = 0.2  # the checks' period in these tests (a poll interval)


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database of the test's own (dropped afterwards)."""
    async with postgres_database() as url:
        yield url


async def within(seconds: float, condition: Callable[[], Awaitable[bool]]) -> float:
    """Check `condition` every INTERVAL until it holds; return the time it took, fail after `seconds`."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > seconds:
            pytest.fail(f"not within {seconds} s")
        await asyncio.sleep(INTERVAL)
    return time.monotonic() - started


async def test_only_one_replica_gets_the_lease(pg_url: str) -> None:
    async with SqlStore.open(pg_url) as a:
        assert await a.poller_lease.check() is True
        # A replica starting while another polls still opens (and migrates): the lease is not the
        # migrations' lock.
        async with await asyncio.wait_for(SqlStore.open(pg_url), 10) as b:
            assert await b.poller_lease.check() is False
            # Checks again and again do not move it, nor let both hold it.
            for _ in range(3):
                assert await a.poller_lease.check() is True
                assert await b.poller_lease.check() is False
            assert (a.poller_lease.held, b.poller_lease.held) == (True, False)


async def test_closing_the_holder_lets_the_other_take_over_within_two_intervals(pg_url: str) -> None:
    a = await SqlStore.open(pg_url)
    async with SqlStore.open(pg_url) as b:
        try:
            assert await a.poller_lease.check() is True
            assert await b.poller_lease.check() is False
        finally:
            await a.close()
        took = await within(2 * INTERVAL, b.poller_lease.check)
        assert b.poller_lease.held
        assert took <= 2 * INTERVAL


async def test_a_lost_connection_is_a_lost_lease(pg_url: str) -> None:
    """The server ends the holder's session (as when its process dies): the other replica takes over,
    and the old holder, finding its connection gone, stops counting itself the poller."""
    database = pg_url.rsplit("/", 1)[1]
    async with SqlStore.open(pg_url) as a, SqlStore.open(pg_url) as b:
        assert await a.poller_lease.check() is True
        assert await b.poller_lease.check() is False
        admin = await asyncpg.connect(**PG_SERVER)
        try:
            ended = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks JOIN pg_stat_activity USING (pid)"
                " WHERE locktype = 'advisory' AND datname = $1",
                database,
            )
        finally:
            await admin.close()
        assert ended == 1
        await within(2 * INTERVAL, b.poller_lease.check)
        assert await a.poller_lease.check() is False
        assert (a.poller_lease.held, b.poller_lease.held) == (False, True)


async def test_released_lease_is_taken_and_the_old_holder_can_win_it_back(pg_url: str) -> None:
    async with SqlStore.open(pg_url) as a, SqlStore.open(pg_url) as b:
        assert await a.poller_lease.check()
        await a.poller_lease.release()
        assert not a.poller_lease.held
        assert await b.poller_lease.check()
        assert not await a.poller_lease.check()
        await b.poller_lease.release()
        assert await a.poller_lease.check()


async def test_on_sqlite_the_one_replica_always_holds_the_lease(tmp_path: Path) -> None:
    async with SqlStore.open(tmp_path / "sweep.db") as store:
        assert store.poller_lease.held
        assert await store.poller_lease.check()
        await store.poller_lease.release()
        assert store.poller_lease.held


@pytest.fixture
async def slack() -> AsyncIterator[LocalSlack]:
    async with running_fake_slack(bot_token=BOT_TOKEN) as fake:
        yield LocalSlack(fake.state, AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url))


def job_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


async def drain_together(*notifiers: Notifier) -> list[int]:
    """Drain with every notifier at once until none finds anything; return what each settled."""
    totals = [0] * len(notifiers)
    while True:
        settled = await asyncio.gather(*(n.drain_once() for n in notifiers))
        totals = [t + s for t, s in zip(totals, settled, strict=True)]
        if not any(settled):
            return totals


async def test_two_notifiers_post_every_card_reply_and_notice_exactly_once(
    pg_url: str, slack: LocalSlack
) -> None:
    clock = FakeClock()
    jobs = 12
    async with SqlStore.open(pg_url) as a, SqlStore.open(pg_url) as b:
        for n in range(jobs):
            await a.track_existing(
                make_job(job_id(n)), account_id="acc", requester="U1", channel_id="C1", now=clock()
            )
            await b.queue_notice(
                f"notice:{n}", channel_id="C2", payload={"notice": "create_not_made", **NOTICE}, now=clock()
            )
        # Claims of one row at a time make the two notifiers interleave as much as they can.
        first = Notifier(a, slack, clock=clock, min_edit_interval=0, claim=1)
        second = Notifier(b, slack, clock=clock, min_edit_interval=0, claim=1)
        cards_and_notices = await drain_together(first, second)
        assert sum(cards_and_notices) == 2 * jobs
        assert all(cards_and_notices), cards_and_notices  # both replicas really delivered
        for status in ("DISCOVERING", "PROCESSING", "COMPLETED"):
            clock.advance(10)
            await a.apply_snapshots([make_job(job_id(n), status=status) for n in range(jobs)], now=clock())
            await drain_together(first, second)

        cards = slack.top_level("C1")
        assert sorted(m.metadata["event_payload"]["job_id"] for m in cards if m.metadata) == sorted(
            job_id(n) for n in range(jobs)
        )
        for card in cards:
            transitions = [
                m.metadata["event_payload"]["transition"] for m in slack.replies(card.ts) if m.metadata
            ]
            assert transitions == ["PENDING->DISCOVERING", "DISCOVERING->PROCESSING", "PROCESSING->COMPLETED"]
        notices = [m for m in slack.top_level("C2") if (m.metadata or {}).get("event_type") == "sweep_notice"]
        assert len(notices) == jobs
        assert slack.count("post_message") == 2 * jobs + 3 * jobs
        rows = [await a.list_outbox(job_id(n)) for n in range(jobs)]
        assert {r.state for job_rows in rows for r in job_rows} == {OutboxState.SENT}


async def test_a_jobs_replies_keep_their_order_whichever_replica_delivers_them(
    pg_url: str, slack: LocalSlack
) -> None:
    """Replica A is still posting a job's reply when the job's next change is queued: replica B
    waits for it instead of posting the next reply first (the thread would read Completed, then
    Processing)."""
    clock = FakeClock()

    class Slow(LocalSlack):
        """A replica whose Slack call hangs until the test lets it go."""

        posting = asyncio.Event()
        go = asyncio.Event()

        async def post_message(self, **kwargs: object) -> str:
            self.posting.set()
            await self.go.wait()
            return await super().post_message(**kwargs)  # type: ignore[arg-type]

    async with SqlStore.open(pg_url) as a, SqlStore.open(pg_url) as b:
        await a.track_existing(
            make_job(job_id(1)), account_id="acc", requester="U1", channel_id="C1", now=clock()
        )
        slow = Slow(slack.state, slack.client)
        first = Notifier(a, slow, clock=clock, min_edit_interval=0)
        second = Notifier(b, slack, clock=clock, min_edit_interval=0)
        assert await drain_all(second) == 1  # the card
        [card] = slack.top_level("C1")
        clock.advance(10)
        await a.apply_snapshots([make_job(job_id(1), status="PROCESSING")], now=clock())
        delivering = asyncio.create_task(first.drain_once())
        await asyncio.wait_for(slow.posting.wait(), 10)
        clock.advance(10)
        await b.apply_snapshots([make_job(job_id(1), status="COMPLETED")], now=clock())
        await drain_all(second)  # may edit the card, must not reply
        assert slack.replies(card.ts) == []
        slow.go.set()
        await asyncio.wait_for(delivering, 10)
        await drain_together(first, second)
        replies = [m.metadata["event_payload"]["transition"] for m in slack.replies(card.ts) if m.metadata]
        assert replies == ["PENDING->PROCESSING", "PROCESSING->COMPLETED"]
        assert {r.state for r in await a.list_outbox(job_id(1))} == {OutboxState.SENT}


async def test_a_claim_keeps_the_other_replica_off_until_it_runs_out(pg_url: str, slack: LocalSlack) -> None:
    """A replica dies after Slack took its post: the other neither takes the row while the claim
    lasts, nor posts it again after (it finds the post by its metadata)."""
    clock = FakeClock()
    async with SqlStore.open(pg_url) as a, SqlStore.open(pg_url) as b:
        await a.queue_notice(
            "notice:1", channel_id="C2", payload={"notice": "create_not_made", **NOTICE}, now=clock()
        )

        class DiesAfterPosting(LocalSlack):
            async def post_message(self, **kwargs: object) -> str:
                await super().post_message(**kwargs)  # type: ignore[arg-type]
                raise Crash

        dying = Notifier(a, DiesAfterPosting(slack.state, slack.client), clock=clock)
        with pytest.raises(Crash):
            await dying.drain_once()
        [row] = await b.list_notices()
        assert row.state is OutboxState.ATTEMPTING
        survivor = Notifier(b, slack, clock=clock)
        assert await survivor.drain_once() == 0  # still claimed by the dead replica
        clock.advance(CLAIM_SECONDS + 1)
        assert await drain_all(survivor) == 1
        [row] = await b.list_notices()
        assert row.state is OutboxState.SENT
        assert len([m for m in slack.top_level("C2") if m.metadata]) == 1
        assert slack.count("post_message") == 1


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bot", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


def test_migrate_and_check_use_sweep_database_url_and_never_print_its_password(
    pg_url: str, tmp_path: Path
) -> None:
    # The test server trusts every local connection: a password in the URL is accepted and ignored.
    with_password = pg_url.replace("postgres@", "postgres:s3cret-pw@", 1)
    env = bot_env(
        sim_url="http://127.0.0.1:9/client/v4",
        slack_url="http://127.0.0.1:9/api/",
        database=tmp_path / "never.db",
        extra={"SWEEP_DATABASE_URL": with_password, "SWEEP_LOG_LEVEL": "WARNING"},
    )
    migrated = _cli(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr
    shown = with_password.replace("s3cret-pw", "***")
    assert migrated.stdout.splitlines() == [f"{shown}: schema at version {head_version()}"]
    checked = _cli(["check", "--offline"], env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"database OK: {shown} (schema at version {head_version()})" in checked.stdout
    assert "s3cret" not in migrated.stdout + migrated.stderr + checked.stdout + checked.stderr
    assert not (tmp_path / "never.db").exists()
    # --url still wins over the variable.
    other = _cli(["migrate", "--url", f"sqlite+aiosqlite:///{tmp_path / 'flag.db'}"], env)
    assert other.returncode == 0 and (tmp_path / "flag.db").exists(), other.stderr


def test_an_unreachable_sweep_database_url_is_one_line_naming_it(tmp_path: Path) -> None:
    env = bot_env(
        sim_url="http://127.0.0.1:9/client/v4",
        slack_url="http://127.0.0.1:9/api/",
        database=tmp_path / "never.db",
        extra={"SWEEP_DATABASE_URL": "postgresql://sweep:s3cret-pw@127.0.0.1:1/sweep"},
    )
    result = _cli(["migrate"], env)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("sweep-bot: configuration error: SWEEP_DATABASE_URL cannot be opened: ")
    assert "s3cret" not in line
