"""Unknown create outcomes and use-once previews: the simulator, a real store (SQLite, PostgreSQL), Slack.

Issue 9 (items 2 and 3) and issue 11 (item 2, the lost create is told): an ambiguous create stays
open and is resolved by its tag — tracked with its card when found, told once when proven absent;
a preview is confirmed at most once, whoever clicks how often.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from bot.cloudflare.client import CloudflareClient, Credentials, RetryPolicy, tag_marker
from bot.cloudflare.models import ActionType, CreateJobRequest, Destination, SearchParams
from bot.creates import MISSES_TO_FAIL, CreateResolver
from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.draft import JobDraft
from bot.ids import EventType
from bot.jobs import CreateStatus, JobService
from bot.outbox import Notifier
from bot.slack_port import WebClientSlackPort
from bot.store import IntentState, OutboxState, PreviewState, SqlStore, open_store
from bot.store.schema import create_intents

SETTLE = 30.0  # seconds after its intent a create may be proven absent (the test's own value)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Env:
    store: SqlStore
    client: CloudflareClient
    control: httpx.AsyncClient
    slack: RunningFakeSlack
    notifier: Notifier
    resolver: CreateResolver
    jobs: JobService
    clock: Clock


def _root(base_url: str) -> str:
    return str(httpx.URL(str(base_url)).copy_with(path="/", query=None))


@pytest.fixture
async def env(simulator: Any, account_id: str, store_url: str) -> AsyncIterator[Env]:
    clock = Clock()
    async with (
        httpx.AsyncClient(timeout=10) as http,
        httpx.AsyncClient(base_url=_root(simulator.base_url), timeout=10) as control,
        open_store(store_url) as store,
        running_fake_slack(bot_token="xoxb-creates") as slack,
    ):
        client = CloudflareClient(
            http,
            account_id=account_id,
            credentials=Credentials(api_token=SecretStr("test-token")),
            base_url=str(simulator.base_url),
            retry=RetryPolicy(max_attempts=2, base_delay=0, jitter=0),
        )
        web = AsyncWebClient(token="xoxb-creates", base_url=slack.api_url)
        notifier = Notifier(store, WebClientSlackPort(web), min_edit_interval=0, clock=clock)
        resolver = CreateResolver(
            store, client, settle_seconds=SETTLE, wake_notifier=notifier.wake, clock=clock
        )
        jobs = JobService(
            client=client,
            store=store,
            account_id=account_id,
            wake_notifier=notifier.wake,
            resolver=resolver,
            clock=clock,
        )
        yield Env(store, client, control, slack, notifier, resolver, jobs, clock)


async def fault(env: Env, **spec: Any) -> None:
    response = await env.control.post("/__sim/faults", json=spec)
    response.raise_for_status()


async def tagged_jobs(env: Env, tag: str) -> list[str]:
    return [j.job_id async for j in env.client.iter_jobs() if j.comment and tag_marker(tag) in j.comment]


def release_request() -> CreateJobRequest:
    return CreateJobRequest.model_validate(
        {"action": "RELEASE", "search_params": {"sender": "a@example.com", "detections_only": True}}
    )


DRAFT = JobDraft(
    action=ActionType.MOVE,
    destination=Destination.JUNK_EMAIL,
    search_params=SearchParams(
        subject="invoice",
        start=datetime(2026, 11, 24, tzinfo=UTC),
        end=datetime(2026, 12, 1, tzinfo=UTC),
        detections_only=False,
    ),
)


async def notices(env: Env, channel: str) -> list[Any]:
    return [
        m
        for m in env.slack.top_level(channel)
        if (m.metadata or {}).get("event_type") == EventType.NOTICE.value
    ]


# ---------------------------------------------------------------- recovery after a crash


async def test_create_intents_are_recovered_after_a_crash(env: Env) -> None:
    # Moved from test_tracker.py: recovery now lives in the create resolver, not the tracker.
    request = release_request()
    for tag in ("made", "never"):
        await env.store.begin_create(
            tag, account_id="acc", requester="U9", channel_id="C9", request=request, now=env.clock()
        )
    job = await env.client.create_job(request, request_tag="made")  # then the process "died"

    assert await env.resolver.adopt_orphans() == 2
    assert await env.resolver.resolve_due() == 1  # found "made"; "never" needs more proof
    env.clock.advance(SETTLE + 1)
    assert await env.resolver.resolve_due() == 1  # a second miss after the settle time: not created
    assert await env.store.open_create_intents() == []
    tracked = await env.store.get_job(job.job_id)
    assert tracked is not None and tracked.requester == "U9" and tracked.channel_id == "C9"
    audit = await env.store.list_audit()
    assert {(a.actor, a.outcome.split(":")[0]) for a in audit} == {("U9", "ok"), ("U9", "error")}
    await env.notifier.drain_once()
    kinds = sorted((m.metadata or {}).get("event_type") for m in env.slack.top_level("C9"))
    assert kinds == [EventType.CARD.value, EventType.NOTICE.value]
    rows = await env.store.list_outbox(job.job_id)
    assert [r.kind for r in rows if r.state is not OutboxState.SENT] == []


async def test_the_lost_create_is_told_once_with_what_was_asked(env: Env) -> None:
    await env.store.begin_create(
        "lost1", account_id="acc", requester="U9", channel_id="C9", request=release_request(), now=env.clock()
    )
    await env.resolver.adopt_orphans()
    for _ in range(MISSES_TO_FAIL + 2):
        await env.resolver.resolve_due()
        env.clock.advance(SETTLE)
    intent = await env.store.get_create_intent("lost1")
    assert intent is not None and intent.state is IntentState.FAILED
    await env.notifier.drain_once()
    await env.notifier.drain_once()
    [notice] = await notices(env, "C9")
    assert "<@U9>" in notice.text and "not created" in notice.text
    assert "Release" in notice.text and "a@example.com" in str(notice.blocks)
    # A restart resolves nothing more and posts nothing more.
    assert await env.resolver.adopt_orphans() == 0
    assert await env.resolver.resolve_due() == 0
    await env.notifier.drain_once()
    assert len(await notices(env, "C9")) == 1


async def test_a_failing_lookup_proves_nothing(env: Env) -> None:
    await env.store.begin_create(
        "quiet", account_id="acc", requester="U9", channel_id="C9", request=release_request(), now=env.clock()
    )
    await env.resolver.adopt_orphans()
    await fault(env, status=503, method="GET", path="/bulk")  # every look-up fails
    for _ in range(6):
        env.clock.advance(SETTLE * 10)
        assert await env.resolver.resolve_due() == 0
    intent = await env.store.get_create_intent("quiet")
    assert intent is not None and intent.state is IntentState.AMBIGUOUS
    assert intent.misses == 0 and intent.checks == 6
    await fault(env)
    env.clock.advance(SETTLE * 10)
    await env.resolver.resolve_due()
    env.clock.advance(SETTLE * 10)
    await env.resolver.resolve_due()
    intent = await env.store.get_create_intent("quiet")
    assert intent is not None and intent.state is IntentState.FAILED


# ---------------------------------------------------------------- use-once previews and ambiguity


async def preview(env: Env, channel: str = "C1", requester: str = "U1") -> str:
    return (await env.jobs.preview(DRAFT, requester=requester, channel_id=channel)).id


async def test_a_preview_is_created_once_however_often_it_is_confirmed(env: Env) -> None:
    preview_id = await preview(env)
    first = await env.jobs.create_from_preview(preview_id, actor="U1", click_channel_id="C1")
    assert first.status is CreateStatus.CREATED and first.tracked is not None
    for _ in range(3):
        again = await env.jobs.create_from_preview(preview_id, actor="U1", click_channel_id="C1")
        assert again.status is CreateStatus.ALREADY_CONFIRMED
        assert again.tracked is not None and again.tracked.job_id == first.tracked.job_id
    jobs = [j async for j in env.client.iter_jobs()]
    assert len(jobs) == 1


async def test_a_preview_is_refused_to_anyone_else_elsewhere_or_late(env: Env) -> None:
    preview_id = await preview(env)
    other_user = await env.jobs.create_from_preview(preview_id, actor="U2", click_channel_id="C1")
    other_channel = await env.jobs.create_from_preview(preview_id, actor="U1", click_channel_id="C2")
    unknown = await env.jobs.create_from_preview("p" * 22, actor="U1", click_channel_id="C1")
    env.clock.advance(31 * 60)
    late = await env.jobs.create_from_preview(preview_id, actor="U1", click_channel_id="C1")
    for outcome in (other_user, other_channel, unknown, late):
        assert outcome.status is CreateStatus.REFUSED, outcome
    assert "expired" in (late.reason or "")
    assert [j async for j in env.client.iter_jobs()] == []
    refusals = [a for a in await env.store.list_audit() if a.outcome.startswith("refused")]
    assert len(refusals) == 4


async def test_a_stored_preview_edited_in_the_database_is_refused(env: Env) -> None:
    preview_id = await preview(env)
    forged = DRAFT.model_copy(
        update={"search_params": DRAFT.search_params.model_copy(update={"subject": " ", "submissions": True})}
    )
    await env.store.save_preview(
        preview_id,
        requester="U1",
        channel_id="C1",
        state=PreviewState.PREVIEWED,
        expires_at=env.clock() + timedelta(minutes=5),
        now=env.clock(),
        draft_json=forged.model_dump_json(exclude_none=True),
    )
    outcome = await env.jobs.create_from_preview(preview_id, actor="U1", click_channel_id="C1")
    assert outcome.status is CreateStatus.REFUSED
    assert "submissions" in (outcome.reason or "")
    assert [j async for j in env.client.iter_jobs()] == []


async def test_an_ambiguous_create_is_unknown_then_found_and_carded(env: Env) -> None:
    # Issue 9, item 2: Cloudflare makes the job, the answer is lost (503) and the look-up fails too.
    preview_id = await preview(env, channel="C5")
    await fault(
        env,
        rules=[
            {"status": 503, "method": "POST", "path": "/bulk", "after": True, "count": 1},
            {"status": 503, "method": "GET", "path": "/bulk", "count": 2},
        ],
    )
    outcome = await env.jobs.create_from_preview(preview_id, actor="U1", click_channel_id="C5")
    assert outcome.status is CreateStatus.UNKNOWN
    assert "503" in (outcome.reason or "")
    [intent] = await env.store.open_create_intents()
    assert intent.state is IntentState.AMBIGUOUS
    # The analyst's retry of the same preview makes nothing new.
    again = await env.jobs.create_from_preview(preview_id, actor="U1", click_channel_id="C5")
    assert again.status is CreateStatus.ALREADY_CONFIRMED
    await fault(env)
    env.clock.advance(10)
    assert await env.resolver.resolve_due() == 1
    [job_id] = await tagged_jobs(env, intent.tag)
    tracked = await env.store.get_job(job_id)
    assert tracked is not None and tracked.channel_id == "C5"
    await env.notifier.drain_once()
    cards = [
        m for m in env.slack.top_level("C5") if (m.metadata or {}).get("event_type") == EventType.CARD.value
    ]
    assert len(cards) == 1
    assert await notices(env, "C5") == []


async def test_a_refused_create_is_a_definite_failure(env: Env) -> None:
    preview_id = await preview(env)
    await fault(env, status=429, method="POST", path="/bulk", retry_after=600, count=1)
    with pytest.raises(Exception, match="429|rate"):
        await env.jobs.create_from_preview(preview_id, actor="U1", click_channel_id="C1")
    [intent_row] = [i for i in [await env.store.get_create_intent(t) for t in await _tags(env)] if i]
    assert intent_row.state is IntentState.FAILED
    assert await env.store.open_create_intents() == []


async def _tags(env: Env) -> list[str]:
    async with env.store.db.read() as conn:  # inspection: every tag, resolved or not
        return list((await conn.execute(select(create_intents.c.tag))).scalars())


async def test_a_request_key_is_claimed_once(env: Env) -> None:
    assert await env.jobs.claim_request("block_actions:123.456.abc")
    assert not await env.jobs.claim_request("block_actions:123.456.abc")
    assert await env.jobs.claim_request("block_actions:123.456.abd")


async def test_with_several_replicas_only_an_intent_past_the_safe_age_is_adopted(env: Env) -> None:
    """An `open` intent may be another live replica's create in flight: adopted only once older
    than any create can take (at start and on each resolver cycle), then resolved as any other."""
    resolver = CreateResolver(
        env.store,
        env.client,
        settle_seconds=SETTLE,
        wake_notifier=env.notifier.wake,
        clock=env.clock,
        orphan_seconds=60,
    )
    request = release_request()
    await env.store.begin_create(
        "inflight", account_id="acc", requester="U9", channel_id="C9", request=request, now=env.clock()
    )
    env.clock.advance(59)
    assert await resolver.adopt_orphans() == 0
    assert await resolver.resolve_due() == 0
    [intent] = await env.store.open_create_intents()
    assert intent.state is IntentState.OPEN
    env.clock.advance(2)
    await resolver.resolve_due()  # adopts it, then looks it up: a first miss proves nothing yet
    [intent] = await env.store.open_create_intents()
    assert intent.state is IntentState.AMBIGUOUS and intent.misses == 1


async def test_only_the_lease_holder_looks_creates_up(env: Env) -> None:
    """A replica without the poller lease leaves ambiguous creates to the holder (no Cloudflare call)."""
    request = release_request()
    await env.store.begin_create(
        "elsewhere", account_id="acc", requester="U9", channel_id="C9", request=request, now=env.clock()
    )
    await env.resolver.adopt_orphans()
    holding = False
    asked = 0
    stop = asyncio.Event()

    def leader() -> bool:
        nonlocal asked
        asked += 1
        if asked >= 3:
            stop.set()
        resolver.wake()  # the loop asks again at once instead of waiting its idle time
        return holding

    resolver = CreateResolver(
        env.store,
        env.client,
        settle_seconds=SETTLE,
        wake_notifier=env.notifier.wake,
        clock=env.clock,
        leader=leader,
    )
    await asyncio.wait_for(resolver.run(stop), 10)
    [intent] = await env.store.open_create_intents()
    assert asked == 3 and intent.checks == 0  # never looked up

    holding, asked = True, 0
    stop.clear()
    await asyncio.wait_for(resolver.run(stop), 10)
    [intent] = await env.store.open_create_intents()
    assert intent.checks == 1 and intent.misses == 1  # the holder looked it up
