"""Three `sweep-bot serve --http` replicas on one PostgreSQL database, behind a round-robin load balancer.

The balancer (`tests.support.ForwardingProxy`) is the one address the local Slack's requests go to: it
hands each request, bytes unchanged (so Slack's signatures stay valid), to the next live replica in
turn. Each replica reaches the simulator through a proxy of its own, so every Cloudflare call is
logged with the replica that made it and when; those logs (checked against the simulator's own
counts) and the local Slack are what the tests read, never the bot's word.

`test_fifty_jobs_one_card_and_one_reply_per_transition_while_the_poller_is_killed_and_restarted`:
fifty jobs are made through Slack (a signed `/sweep move …` and its Confirm, the two usually reaching
different replicas) in three batches: before the kill, while the killed replica is down (restarting),
and after it is back. The replica polling Cloudflare is killed with SIGKILL in the middle of a poll
cycle (one of its list calls answered, the next held at its proxy), then restarted. Every job has
exactly one card and one thread reply per transition, in order, and no job is created twice; the
poll cycles (see `Cycle`) are one replica's: never two at once, each listing each active status
once, one GET per job that finished; the lease moves to another replica within two poll intervals
of the kill (counted in the poller's own cycles, see the test).

`test_a_request_or_a_double_click_reaching_two_replicas_acts_once`: the same signed request (a slash
command, a create's Confirm, a card's Cancel) reaching two replicas, as two copies at once or as
Slack's retry (`X-Slack-Retry-Num`) after or during the first, is acknowledged by both and acted on
once; two clicks of one Confirm, then of one Cancel (two interactions), make one job and cancel it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.cloudflare.models import ACTIVE_STATUSES
from bot.devslack.driver import DriverResponse, SlackDriver
from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.ids import ActionId
from bot.simulator.app import RunningSimulator, SimulatorConfig, running_simulator
from tests.e2e.conftest import (
    BOT_TOKEN,
    CF_TOKEN,
    CHANNEL,
    GROUP_MEMBER,
    OPERATOR,
    SIGNING_SECRET,
    Replicas,
    assert_one_reply_per_transition,
    cards,
    running_replicas,
    transitions,
    wait_until,
)
from tests.e2e.test_slack_flows import everything
from tests.support import Exchange, ForwardingProxy, Hold, buttons, card_status

POLL_SECONDS = 0.5
JOB_SECONDS = 6.0
#: Jobs made before the kill, while the killed replica is down, and after it is back.
BATCHES = (20, 15, 15)
#: Creates in flight at once (each one preview and one Confirm, in turn).
LANES = 4
REPLICAS = 3
ENV = {
    "SWEEP_POLL_SECONDS": str(POLL_SECONDS),
    # One analyst makes every job here: lift the per-person budgets (a replica counts its own).
    "SWEEP_READS_PER_USER": "1000",
    "SWEEP_WRITES_PER_USER": "1000",
    "SWEEP_READS_TOTAL": "1000",
    "SWEEP_WRITES_TOTAL": "1000",
    "SWEEP_MAX_ACTIVE_JOBS": "100",  # all fifty may be running at once on a slow machine
}
BULK = "/email-security/investigate/bulk"
LIST_ROUTE = "GET /accounts/{account_id}/email-security/investigate/bulk"
GET_ROUTE = "GET /accounts/{account_id}/email-security/investigate/bulk/{job_id}"
CANCEL_ROUTE = "POST /accounts/{account_id}/email-security/investigate/bulk/{job_id}/cancel"
SEARCH_ROUTE = "GET /accounts/{account_id}/email-security/investigate"
ORDER = tuple(str(s) for s in ACTIVE_STATUSES)  # PENDING, DISCOVERING, PROCESSING
CREATED_RE = re.compile(r"Created job `([^`]+)`")
JOB_PATH_RE = re.compile(BULK + r"/([0-9a-f-]{36})$")


@pytest.fixture
async def servers() -> AsyncIterator[tuple[RunningSimulator, RunningFakeSlack]]:
    config = SimulatorConfig(token=CF_TOKEN, job_seconds=JOB_SECONDS, seed=13)
    async with (
        running_simulator(config, host="127.0.0.1", port=0) as sim,
        running_fake_slack(bot_token=BOT_TOKEN, usergroups={"S0SOC": [GROUP_MEMBER]}) as slack,
    ):
        yield sim, slack


@pytest.fixture
async def replicas(
    tmp_path: Path, servers: tuple[RunningSimulator, RunningFakeSlack]
) -> AsyncIterator[Replicas]:
    sim, slack = servers
    async with running_replicas(
        tmp_path, sim, slack, count=REPLICAS, extra_env=ENV, balanced=True, observed=True
    ) as running:
        yield running


# ---------------------------------------------------------------------------- reading the local Slack


def token_of(response_url: str | None) -> str:
    """Return the token of a local Slack response_url (the last part of its path)."""
    assert response_url is not None
    return response_url.rsplit("/", 1)[1]


def analyst_comment(job: Any) -> str:
    """Return a simulator job's comment without the request tag the client stamps on it."""
    return str(job.comment or "").split(" [sweep:", 1)[0].rsplit(" — ", 1)[-1]


def answers(slack: RunningFakeSlack, response_url: str | None) -> list[Any]:
    """Return what the bot sent to one response_url, oldest first."""
    token = token_of(response_url)
    return [r for r in slack.state.responses() if r.via == "response_url" and r.token == token]


async def answer(
    slack: RunningFakeSlack, response_url: str | None, accepts: Callable[[Any], bool], what: str
) -> Any:
    """Wait for an answer to a response_url that `accepts`; return it."""

    def found() -> Any:
        return next((r for r in answers(slack, response_url) if accepts(r)), None)

    return await wait_until(found, timeout=60, what=what)


def has_confirm(response: Any) -> bool:
    return ActionId.CONFIRM_CREATE in buttons(response.blocks)


def created_job(response: Any) -> str | None:
    match = CREATED_RE.search(everything(response))
    return match.group(1) if match else None


async def create(replicas: Replicas, slack: RunningFakeSlack, driver: SlackDriver, tag: str) -> str:
    """Preview a create and confirm it (through whichever replicas the balancer picks); return the
    job id the analyst is told."""
    assert replicas.balancer is not None
    mark = len(replicas.balancer.exchanges)
    urls: list[str | None] = []
    try:
        response = await driver.slash(f'move subject:invoice since:30d to:junk comment:"{tag}"')
        urls.append(driver.last_response_url)
        assert response.status == 200, response
        preview = await answer(slack, driver.last_response_url, has_confirm, f"the preview of {tag}")
        response = await driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=list(preview.blocks))
        urls.append(driver.last_response_url)
        assert response.status == 200, response
        done = await answer(
            slack, driver.last_response_url, lambda r: created_job(r) is not None, f"{tag} made"
        )
    except AssertionError as error:
        said = [[everything(r)[:300] for r in answers(slack, url)] for url in urls]
        reached = [(e.backend, e.refused, e.status) for e in replicas.balancer.exchanges[mark:]]
        logs = "\n".join(line for bot in replicas.bots for line in bot.logs().splitlines()[-8:])
        raise AssertionError(
            f"{error}\nanswers: {said}\n(replica, refused, status): {reached}\n{logs}"
        ) from None
    assert len(answers(slack, driver.last_response_url)) == 2, "a create answers 'Creating…' then 'Created'"
    job_id = created_job(done)
    assert job_id is not None
    return job_id


async def create_many(replicas: Replicas, slack: RunningFakeSlack, tags: list[str]) -> dict[str, str]:
    """Make one job per tag, `LANES` creates at a time; return the job ids by tag."""
    made: dict[str, str] = {}

    async def lane(mine: list[str]) -> None:
        async with SlackDriver(
            replicas.events_url, SIGNING_SECRET, slack.state, user_id=OPERATOR, channel_id=CHANNEL
        ) as d:
            for tag in mine:
                made[tag] = await create(replicas, slack, d, tag)

    await asyncio.gather(*(lane(tags[n::LANES]) for n in range(LANES)))
    return made


def settled(slack: RunningFakeSlack, count: int) -> bool:
    """Return whether `count` cards show a final status, each thread's replies reaching it."""
    found = cards(slack)
    if len(found) != count:
        return False
    for card in found.values():
        steps = transitions(slack, card)
        if not steps or steps[-1].split("->")[1].lower() != card_status(card):
            return False
    return all(
        card_status(card) in {"completed", "failed", "cancelled", "skipped"} for card in found.values()
    )


async def unsettled(slack: RunningFakeSlack, replicas: Replicas) -> str:
    """Describe the cards not settled yet and the outbox rows not sent (for a failure message)."""
    lines = []
    for job_id, card in cards(slack).items():
        steps = transitions(slack, card)
        if not steps or steps[-1].split("->")[1].lower() != card_status(card):
            lines.append(f"job {job_id}: card says {card_status(card)!r}, thread says {steps}")
    lines.append(f"{len(cards(slack))} cards; outbox rows not sent: {await unsent(replicas.database_url)}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- reading Cloudflare's side


def is_list(exchange: Exchange) -> bool:
    """A tracker's list call: the jobs in one active status."""
    return exchange.method == "GET" and exchange.path.endswith(BULK) and "status" in exchange.query


def fetched_job(exchange: Exchange) -> str | None:
    """The job a `GET …/bulk/{job_id}` asked for, else None."""
    match = JOB_PATH_RE.search(exchange.path) if exchange.method == "GET" else None
    return match.group(1) if match else None


@dataclass
class Cycle:
    """One poll cycle as Cloudflare saw it.

    A cycle is what the tracker does each poll interval: list the active statuses in their order
    (PENDING, DISCOVERING, PROCESSING; only those a tracked job may still be in, so always ending at
    PROCESSING), one page each, then GET each tracked job the lists no longer show. So in one
    replica's calls a new cycle begins at a list call that does not come after the cycle's lists
    in that order, or that comes after its GETs.
    """

    replica: int
    calls: list[Exchange] = field(default_factory=list)

    @property
    def started(self) -> float:
        return self.calls[0].started

    @property
    def ended(self) -> float:
        return max(c.finished if c.finished is not None else c.started for c in self.calls)

    @property
    def listed(self) -> list[str]:
        return [c.query["status"] for c in self.calls if is_list(c)]

    @property
    def fetched(self) -> list[str]:
        return [job for c in self.calls if (job := fetched_job(c)) is not None]


def cycles(proxies: list[ForwardingProxy]) -> list[Cycle]:
    """Return every replica's poll cycles from its proxy's log, in the order they started."""
    found: list[Cycle] = []
    for replica, proxy in enumerate(proxies):
        current: Cycle | None = None
        for exchange in proxy.exchanges:
            if is_list(exchange):
                rank = ORDER.index(exchange.query["status"])
                if current is None or current.fetched or rank <= ORDER.index(current.listed[-1]):
                    current = Cycle(replica)
                    found.append(current)
                current.calls.append(exchange)
            elif fetched_job(exchange) is not None:
                assert current is not None, f"replica {replica} fetched a job before any list: {exchange}"
                current.calls.append(exchange)
    return sorted(found, key=lambda c: c.started)


def mid_cycle(exchange: Exchange, earlier: list[Exchange]) -> bool:
    """Accept the PROCESSING list call of a cycle that has already had an earlier list answered."""
    if not is_list(exchange) or exchange.query["status"] != "PROCESSING":
        return False
    tracker = [e for e in earlier if is_list(e) or fetched_job(e) is not None]
    return bool(tracker) and is_list(tracker[-1]) and tracker[-1].query["status"] != "PROCESSING"


async def live_claims(database_url: str) -> int:
    """Return how many outbox rows a notifier is delivering right now (a live claim)."""
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return int(
            await connection.fetchval("SELECT count(*) FROM outbox WHERE claimed_until > $1", time.time())
        )
    finally:
        await connection.close()


async def no_claims(database_url: str) -> bool:
    """Return whether no outbox row is claimed, looking twice a moment apart: a claim a replica sent
    just before it was stopped may still be committing when the first look finds none."""
    if await live_claims(database_url):
        return False
    await asyncio.sleep(0.15)
    return await live_claims(database_url) == 0


async def unsent(database_url: str) -> list[tuple[Any, ...]]:
    """Return the outbox rows not sent."""
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        rows = await connection.fetch(
            "SELECT job_id, kind, key, state, due_at, claimed_until, attempts, last_error FROM outbox"
            " WHERE state <> 'sent'"
        )
    finally:
        await connection.close()
    return [tuple(r) for r in rows]


async def kill_mid_cycle(replicas: Replicas, victim: int) -> tuple[float, Hold, int]:
    """SIGKILL the poller while one of its poll cycles is half done; return when, the held call and
    how many cycles it took.

    The cycle's PROCESSING list is held at the victim's proxy (an earlier list of the cycle answered).
    The victim is then stopped (SIGSTOP) and killed once no outbox row is claimed, else let go on for a
    moment to finish its deliveries, and so on (a few seconds at most, well inside the Cloudflare
    client's timeout; then the next cycle): a claim the victim held would keep that row from the
    others for the claim's two minutes before they recover it (tests/component/test_replicas.py
    covers that), which would only make this test slow.
    """
    bot = replicas.bots[victim]
    assert bot.process is not None
    pid = bot.process.pid
    proxy = replicas.cloudflare[victim]
    for attempt in range(1, 11):
        hold = proxy.hold(mid_cycle)
        await asyncio.wait_for(hold.caught.wait(), timeout=30)
        give_up = time.monotonic() + 4.0
        while time.monotonic() < give_up:
            os.kill(pid, signal.SIGSTOP)
            for _ in range(10):
                if await no_claims(replicas.database_url):
                    bot.kill()  # SIGKILL (a stopped process dies of it at once)
                    killed_at = time.monotonic()
                    hold.release()  # to a client that is gone
                    return killed_at, hold, attempt
                await asyncio.sleep(0.03)
            os.kill(pid, signal.SIGCONT)  # it is delivering: let it get on with it
            await asyncio.sleep(0.2)
        hold.release()
    raise AssertionError("the poller was never free of outbox claims at a cycle's middle")


# ---------------------------------------------------------------------------- the proof


async def test_fifty_jobs_one_card_and_one_reply_per_transition_while_the_poller_is_killed_and_restarted(
    replicas: Replicas, servers: tuple[RunningSimulator, RunningFakeSlack]
) -> None:
    sim, slack = servers
    balancer = replicas.balancer
    assert balancer is not None
    tags = [f"three-{n:02d}" for n in range(sum(BATCHES))]
    first, second = BATCHES[0], BATCHES[0] + BATCHES[1]

    # Batch 1, all replicas up.
    made = await create_many(replicas, slack, tags[:first])
    served_before = Counter(e.backend for e in balancer.exchanges)
    assert set(served_before) == set(range(REPLICAS)), f"the balancer used {served_before}"
    # Keep one job short of PROCESSING, so every cycle lists more than one status until it is let go.
    early = [j for j in sim.state.jobs_newest_first(sim.account_id) if sim.state.view(j).status in ORDER[:2]]
    assert early, "every job of the first batch is past discovery already"
    anchor = early[0]
    await sim.hold([anchor.job_id])

    def polling() -> list[int]:
        return [n for n, proxy in enumerate(replicas.cloudflare) if any(is_list(e) for e in proxy.exchanges)]

    [victim] = await wait_until(polling, timeout=30, what="the poller's first list call")

    killed_at, held, attempts = await kill_mid_cycle(replicas, victim)
    assert not replicas.alive(victim)
    await sim.release([anchor.job_id])

    # Batch 2 while the victim is down (restarted once another replica polls; it takes a while to
    # start): the balancer sends the victim's turns to the others. Batch 3 reaches all three again.
    def taken_over() -> bool:
        return any(is_list(e) for n, p in enumerate(replicas.cloudflare) if n != victim for e in p.exchanges)

    await wait_until(taken_over, timeout=30, what="another replica's first poll")
    restart = asyncio.create_task(replicas.bots[victim].start())
    log_mark = len(balancer.exchanges)
    made |= await create_many(replicas, slack, tags[first:second])
    assert any(victim in e.refused for e in balancer.exchanges[log_mark:]), "the victim was never skipped"
    await restart
    log_mark = len(balancer.exchanges)
    made |= await create_many(replicas, slack, tags[second:])
    assert victim in Counter(e.backend for e in balancer.exchanges[log_mark:])

    total = sum(BATCHES)
    try:
        await wait_until(
            lambda: settled(slack, total), timeout=60, what="every job finished, replied and shown"
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{await unsettled(slack, replicas)}") from None

    # No job created twice, one card each, one thread reply per transition (the local Slack's and
    # the simulator's records).
    sim_jobs = list(sim.state.jobs_newest_first(sim.account_id))
    by_tag = Counter(analyst_comment(job) for job in sim_jobs)
    assert by_tag == Counter({tag: 1 for tag in tags}), "a job was made twice (or not at all)"
    assert {job.job_id for job in sim_jobs} == set(made.values()) == set(cards(slack))
    assert_one_reply_per_transition(slack, sim, total)
    assert await unsent(replicas.database_url) == []

    # What the replicas' proxies saw is what the simulator answered.
    stats = await sim.stats()
    seen = Counter(e.method for p in replicas.cloudflare for e in p.exchanges if e.path.endswith(BULK))
    assert stats["requests"][LIST_ROUTE] == seen["GET"]
    fetched = Counter(job for p in replicas.cloudflare for e in p.exchanges if (job := fetched_job(e)))
    assert stats["requests"][GET_ROUTE] == sum(fetched.values())

    # Poll cycles: one replica's worth. Before the kill only the victim polls; after it, one other
    # replica and only that one (the restarted victim finds the lease taken).
    found = cycles(replicas.cloudflare)
    before = [c for c in found if c.started < killed_at]
    after = [c for c in found if c.started >= killed_at]
    assert {c.replica for c in before} == {victim}
    [holder] = {c.replica for c in after}
    assert holder != victim
    interrupted = before[-1]
    assert held.exchange is interrupted.calls[-1], "the kill did not land in the victim's last cycle"
    assert len(interrupted.listed) >= 2 and interrupted.listed[-1] == "PROCESSING"
    # Never two cycles at once (the interrupted one ends with its replica).
    for one, next_one in zip(found, found[1:], strict=False):
        end = min(one.ended, killed_at) if one is interrupted else one.ended
        assert next_one.started >= end, f"two replicas polled at once: {one} and {next_one}"
    # Each cycle lists every status a tracked job may be in once, in order, one page of 1000 each…
    for cycle in found:
        if cycle is not interrupted:
            assert cycle.listed == list(ORDER[ORDER.index(cycle.listed[0]) :]), cycle.listed
        for call in cycle.calls:
            if is_list(call):
                assert (call.query["page"], call.query["per_page"]) == ("1", "1000"), call
    # …and then GETs each job that left the lists: exactly once over the whole run, every job (a job
    # is never listed in a final status, so each is fetched once when it has finished).
    polled = Counter(job for cycle in found for job in cycle.fetched)
    assert polled == Counter({job_id: 1 for job_id in made.values()}), polled
    assert sum(polled.values()) == sum(fetched.values())  # nothing else fetched a job
    # One replica's pace: a replica's next cycle starts a poll interval after its last one ended.
    for one, next_one in zip(found, found[1:], strict=False):
        if one.replica == next_one.replica and one is not interrupted:
            assert next_one.started - one.ended >= 0.9 * POLL_SECONDS, (one, next_one)

    # The lease moved within two poll intervals of the kill, counted in the victim's own cycles (the
    # time from one cycle's start to the next: an interval plus a cycle's work, however loaded the
    # machine), so the other replica missed at most two of the victim's cycles.
    pace = statistics.median(b.started - a.started for a, b in zip(before, before[1:], strict=False))
    takeover = after[0].started - killed_at
    assert pace >= POLL_SECONDS
    assert takeover <= 2 * pace, f"lease moved {takeover:.2f} s after the kill; a cycle every {pace:.2f} s"
    lists = sum(len(c.listed) for c in found)
    per_replica = dict(Counter(e.backend for e in balancer.exchanges))
    print(
        f"\n{total} jobs, {len(found)} poll cycles ({len(before)} by replica {victim} until SIGKILL, "
        f"{len(after)} by replica {holder} after), {lists} list calls and {sum(polled.values())} GETs; "
        f"killed in cycle {len(before)} (attempt {attempts}); lease moved {takeover:.2f} s after SIGKILL "
        f"({takeover / POLL_SECONDS:.1f} poll intervals of {POLL_SECONDS:g} s; the poller's cycles came "
        f"every {pace:.2f} s); Slack requests by replica: {per_replica}"
    )


# ---------------------------------------------------------------------------- the same request twice


class TwiceDriver(SlackDriver):
    """A driver whose every request reaches the balancer twice, byte for byte the same: `together`
    sends both copies at once (a request delivered twice), else the second after the first's answer;
    `retry` marks the second copy as Slack's retry (`X-Slack-Retry-Num: 1`, reason `http_timeout`)."""

    def __init__(self, *args: Any, retry: bool, together: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry = retry
        self.together = together
        self.answers: list[DriverResponse] = []

    async def raw(self, body: bytes | str, headers: Mapping[str, str]) -> DriverResponse:
        again = dict(headers)
        if self.retry:
            again.update({"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})
        first, second = super().raw(body, headers), super().raw(body, again)  # neither sent yet
        both = list(await asyncio.gather(first, second)) if self.together else [await first, await second]
        self.answers = both
        return both[0]


def repeat_seen(replicas: Replicas, key: str) -> bool:
    """Return whether a replica logged that it acknowledged request `key` without acting on it again."""
    return any(f"a repeat of request {key}," in bot.logs() for bot in replicas.bots)


@contextlib.asynccontextmanager
async def copies_reach_two_replicas(replicas: Replicas, driver: TwiceDriver) -> AsyncIterator[None]:
    """Check the request sent inside the block reached two different replicas and both acked it."""
    assert replicas.balancer is not None
    mark = len(replicas.balancer.exchanges)
    yield
    reached = [e.backend for e in replicas.balancer.exchanges[mark:]]
    assert len(reached) == 2 and reached[0] != reached[1], reached
    assert [a.status for a in driver.answers] == [200, 200], driver.answers


#: How the second copy of a request comes: (marked as Slack's retry, sent while the first is in flight).
COPIES = {
    "a request delivered twice at once": (False, True),
    "Slack's retry after the first answer": (True, False),
    "Slack's retry while the first is in flight": (True, True),
}


async def test_a_request_or_a_double_click_reaching_two_replicas_acts_once(
    replicas: Replicas, servers: tuple[RunningSimulator, RunningFakeSlack]
) -> None:
    sim, slack = servers
    text = 'move subject:invoice since:30d to:junk comment:"{}"'
    async with SlackDriver(
        replicas.events_url, SIGNING_SECRET, slack.state, user_id=OPERATOR, channel_id=CHANNEL
    ) as once:
        # What one preview costs at Cloudflare, sent once.
        searches = (await sim.stats())["requests"].get(SEARCH_ROUTE, 0)
        await once.slash(text.format("once"))
        await answer(slack, once.last_response_url, has_confirm, "the single preview")
        one_preview = (await sim.stats())["requests"][SEARCH_ROUTE] - searches
        assert one_preview > 0
    for n, (how, (retry, together)) in enumerate(COPIES.items()):
        tag = f"twice-{n}"
        async with TwiceDriver(
            replicas.events_url,
            SIGNING_SECRET,
            slack.state,
            user_id=OPERATOR,
            channel_id=CHANNEL,
            retry=retry,
            together=together,
        ) as twice:
            await acts_once(replicas, sim, slack, twice, tag=tag, one_preview=one_preview, how=how)
    await double_clicks(replicas, sim, slack, tag="double-click")


async def acts_once(
    replicas: Replicas,
    sim: RunningSimulator,
    slack: RunningFakeSlack,
    twice: TwiceDriver,
    *,
    tag: str,
    one_preview: int,
    how: str,
) -> None:
    """Send a slash command, its Confirm and the new card's Cancel twice each; check each acted once."""
    stats = await sim.stats()
    cards_before = len(cards(slack))

    # The slash command: one preview (one preview's searches at Cloudflare, one answer).
    async with copies_reach_two_replicas(replicas, twice):
        await twice.slash(f'move subject:invoice since:30d to:junk comment:"{tag}"')
    await wait_until(lambda: repeat_seen(replicas, f"command:{twice.last_trigger_id}"), what=f"{how}: repeat")
    preview = await answer(slack, twice.last_response_url, has_confirm, f"{how}: the preview")
    assert len(answers(slack, twice.last_response_url)) == 1, how
    searches = (await sim.stats())["requests"][SEARCH_ROUTE] - stats["requests"][SEARCH_ROUTE]
    assert searches == one_preview, how

    # Its Confirm: one job, one card, one "Creating the job…" and one "Created job".
    async with copies_reach_two_replicas(replicas, twice):
        await twice.block_action(ActionId.CONFIRM_CREATE, message_blocks=list(preview.blocks))
    await wait_until(lambda: repeat_seen(replicas, f"block_actions:{twice.last_trigger_id}"), what=how)
    done = await answer(slack, twice.last_response_url, lambda r: created_job(r) is not None, f"{how}: made")
    job_id = created_job(done)
    assert job_id is not None
    await sim.hold([job_id])  # running until cancelled, however slow the machine
    said = [created_job(r) is not None for r in answers(slack, twice.last_response_url)]
    assert said == [False, True], f"{how}: {said}"
    assert sim.state.stats.jobs_created - stats["jobs_created"] == 1, how
    made = [j.job_id for j in sim.state.jobs_newest_first(sim.account_id) if analyst_comment(j) == tag]
    assert made == [job_id], how
    card = await wait_until(lambda: cards(slack).get(job_id), what=f"{how}: the card")

    # The card's Cancel: one cancel at Cloudflare, one answer, one reply in the card's thread.
    async with copies_reach_two_replicas(replicas, twice):
        await twice.block_action(ActionId.CANCEL_JOB, message_ts=card.ts)
    await wait_until(lambda: repeat_seen(replicas, f"block_actions:{twice.last_trigger_id}"), what=how)
    await answer(slack, twice.last_response_url, lambda r: "Cancelled job" in everything(r), f"{how}: cancel")
    assert len(answers(slack, twice.last_response_url)) == 1, how
    cancels = (await sim.stats())["requests"][CANCEL_ROUTE] - stats["requests"].get(CANCEL_ROUTE, 0)
    assert cancels == 1, how

    def cancelled() -> bool:
        steps = transitions(slack, card)
        shown = card_status(slack.state.message(CHANNEL, card.ts)) == "cancelled"
        return shown and bool(steps) and steps[-1].endswith("->CANCELLED")

    await wait_until(cancelled, what=f"{how}: the card and its thread to say cancelled")
    steps = transitions(slack, card)
    assert len(steps) == len(set(steps)), f"{how}: {steps}"
    assert len(cards(slack)) == cards_before + 1, how


def cancels_done(replicas: Replicas, *, since: float) -> list[int | None]:
    """Return the statuses Cloudflare answered the replicas' cancel calls made since then with."""
    return [
        e.status
        for proxy in replicas.cloudflare
        for e in proxy.exchanges
        if e.method == "POST" and e.path.endswith("/cancel") and e.started >= since
    ]


def confirm_answered(response: Any) -> bool:
    """A Confirm's last answer: the job made, or nothing made by this click."""
    return created_job(response) is not None or "Nothing new was created" in everything(response)


def cancel_answered(response: Any) -> bool:
    """A Cancel's answer: the job cancelled, or nothing left to cancel."""
    return "Cancelled job" in everything(response) or "nothing left to cancel" in everything(response)


async def double_clicks(
    replicas: Replicas, sim: RunningSimulator, slack: RunningFakeSlack, *, tag: str
) -> None:
    """Click a preview's Confirm twice, then the new card's Cancel twice: two interactions each (two
    trigger ids), reaching two replicas at once. One job is made and cancelled once; each second
    click is told nothing more was done."""
    assert replicas.balancer is not None
    balancer = replicas.balancer
    created_before = sim.state.stats.jobs_created
    drivers = [
        SlackDriver(replicas.events_url, SIGNING_SECRET, slack.state, user_id=OPERATOR, channel_id=CHANNEL)
        for _ in range(2)
    ]
    async with drivers[0] as one, drivers[1] as other:
        await one.slash(f'move subject:invoice since:30d to:junk comment:"{tag}"')
        preview = await answer(slack, one.last_response_url, has_confirm, "the double-clicked preview")

        mark = len(balancer.exchanges)
        clicks = [
            d.block_action(ActionId.CONFIRM_CREATE, message_blocks=list(preview.blocks)) for d in drivers
        ]
        assert [r.status for r in await asyncio.gather(*clicks)] == [200, 200]
        assert len({e.backend for e in balancer.exchanges[mark:]}) == 2
        urls = [one.last_response_url, other.last_response_url]
        finals = [await answer(slack, url, confirm_answered, "a Confirm's answer") for url in urls]
        made = [created_job(r) for r in finals if created_job(r) is not None]
        assert len(made) == 1, [everything(r) for r in finals]
        job_id = made[0]
        assert job_id is not None
        await sim.hold([job_id])
        assert sim.state.stats.jobs_created == created_before + 1
        card = await wait_until(lambda: cards(slack).get(job_id), what="the double-clicked job's card")

        mark, clicked_at = len(balancer.exchanges), time.monotonic()
        clicks = [d.block_action(ActionId.CANCEL_JOB, message_ts=card.ts) for d in drivers]
        assert [r.status for r in await asyncio.gather(*clicks)] == [200, 200]
        assert len({e.backend for e in balancer.exchanges[mark:]}) == 2
        urls = [one.last_response_url, other.last_response_url]
        finals = [await answer(slack, url, cancel_answered, "a Cancel's answer") for url in urls]
        said = sorted("Cancelled job" in everything(r) for r in finals)
        assert said == [False, True], [everything(r) for r in finals]
        # At most one cancel reached Cloudflare and succeeded (a second one is refused: 409).
        statuses = cancels_done(replicas, since=clicked_at)
        assert statuses.count(200) == 1 and set(statuses) <= {200, 409}, statuses

        def cancelled() -> bool:
            steps = transitions(slack, card)
            shown = card_status(slack.state.message(CHANNEL, card.ts)) == "cancelled"
            return shown and bool(steps) and steps[-1].endswith("->CANCELLED")

        await wait_until(cancelled, what="the double-clicked card to say cancelled")
        steps = transitions(slack, card)
        assert [s for s in steps if s.endswith("->CANCELLED")] == steps[-1:], steps
