"""Crash safety: `kill -9` the bot at random points; no job made twice, one card, one reply per transition.

The bot runs as a child process on one database. Each round starts it, creates one or two jobs through
the inline `/sweep move … comment:"crash-RRR-J"` + Confirm flow and kills it with SIGKILL at a point
picked by a seeded RNG:

- `confirm-click`:     a few random milliseconds after the Confirm click is sent (before or after its ack,
                       before or after the create reaches Cloudflare);
- `creating-notice`:   once "Creating the job…" is shown, plus a few random milliseconds;
- `create-refused`:    Cloudflare answered the create with a 429 or a 503 (the latter sometimes after creating
                       the job) and the bot is waiting to retry or looking for its tag, its intent open;
- `create-in-flight`:  the simulator has created the job but the bot has not heard back yet (a slow create);
- `answer-lost`:       the simulator created the job and answered 503, and the bot's look-up by tag failed
                       too: the outcome is unknown, the intent ambiguous (killed soon after, or not at all);
- `card-posted`:       Slack has stored a card but the bot has not got `chat.postMessage`'s answer yet;
- `reply-posted`:      the same for a transition reply in a card's thread;
- `update-sent`:       the same for a card edit (`chat.update`);
- `random`:            at a random offset while jobs progress (poll cycles, notifier posts).

After the last round the bot is started once more and, when every job has finished and the outbox is
drained, the test checks: at most one simulator job per comment tag (no double create); exactly one card
per simulator job; per card, thread replies with unique transitions forming a chain that ends at the job's
final status, and equal to the transitions the bot recorded; every job the analyst was told about has its
card; no create intent left unresolved and no outbox row unsent; and every confirm is accounted for:
each create intent the bot recorded ends as a job with one card, or as exactly one notice to the analyst
in the channel that no job was made, and "Creating the job…" was never shown for a create the bot had
not recorded. A create killed before its intent was recorded makes no job (the analyst never saw
"Creating the job…"). A round whose kill point is not reached is run again (up to twice), never counted.

Sizes: `SWEEP_CRASH_ROUNDS` (default: one round per kill point, the CI size) and `SWEEP_CRASH_SEED`
(default: random, printed).
A longer local run:

    SWEEP_CRASH_ROUNDS=50 .venv/bin/python -m pytest tests/e2e/test_crash_safety.py -s
    SWEEP_CRASH_SEED=1234 SWEEP_CRASH_ROUNDS=50 .venv/bin/python -m pytest tests/e2e/test_crash_safety.py -s
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.devslack.driver import SlackDriver
from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.ids import ActionId, EventType
from bot.simulator.app import RunningSimulator, SimulatorConfig, running_simulator
from tests.e2e.conftest import (
    ACCOUNT_ID,
    BOT_TOKEN,
    CF_TOKEN,
    CHANNEL,
    GROUP_MEMBER,
    OPERATOR,
    SIGNING_SECRET,
    BotProcess,
    bot_env,
    wait_until,
)
from tests.e2e.test_slack_flows import buttons, card_status

SEED = int(os.environ.get("SWEEP_CRASH_SEED") or random.SystemRandom().randrange(2**31))
JOB_SECONDS = 3.0
KINDS = (
    "confirm-click",
    "creating-notice",
    "create-refused",
    "create-in-flight",
    "answer-lost",
    "card-posted",
    "reply-posted",
    "update-sent",
    "random",
)
#: Every kill point once by default (the CI size).
ROUNDS = int(os.environ.get("SWEEP_CRASH_ROUNDS", str(len(KINDS))))
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "SKIPPED"}
TAG_RE = re.compile(r"crash-\d+[abc]-\d+\b")
CREATED_RE = re.compile(r"Created job `([^`]+)`")
#: How long Slack (or Cloudflare) sits on an answer it has already acted on, so the kill lands in between.
SLOW_ANSWER = 1.0
#: A kill point not reached within this long makes the round run again (at most `ROUND_TRIES` times).
STRIKE_DEADLINE = 12.0
ROUND_TRIES = 3


@dataclass
class Round:
    """What one round did, for the failure report."""

    number: int
    kind: str
    tags: list[str] = field(default_factory=list)
    note: str = ""
    created_at_kill: list[str] = field(default_factory=list)
    reached: bool = True

    def __str__(self) -> str:
        created = ",".join(self.created_at_kill) or "-"
        return (
            f"round {self.number:3d} {self.kind:17s} tags={self.tags} at-kill-created={created} {self.note}"
        )


@dataclass
class Crash:
    """The experiment's own stack: simulator, fake Slack and a bot process that gets killed."""

    sim: RunningSimulator
    slack: RunningFakeSlack
    bot: BotProcess
    database: Path
    rng: random.Random
    schedule: list[Round] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def driver(self) -> AsyncIterator[SlackDriver]:
        """Return a fresh driver (a new HTTP connection pool for each life of the bot)."""
        async with SlackDriver(
            self.bot.events_url, SIGNING_SECRET, self.slack.state, user_id=OPERATOR, channel_id=CHANNEL
        ) as driver:
            yield driver

    def report(self, headline: str, *, tail: int = 60) -> str:
        """Return a failure message: what failed, the seed, the kill schedule and the bot's last log lines."""
        logs = "\n".join(self.bot.logs().splitlines()[-tail:])
        schedule = "\n".join(str(r) for r in self.schedule)
        return (
            f"{headline}\n\nseed={SEED} rounds={ROUNDS} "
            f"(rerun with SWEEP_CRASH_SEED={SEED} SWEEP_CRASH_ROUNDS={ROUNDS})\n"
            f"kill schedule:\n{schedule}\n\nbot log (last {tail} lines):\n{logs}"
        )


# ---------------------------------------------------------------------------- observations


async def sim_jobs(sim: RunningSimulator) -> list[dict[str, Any]]:
    """Return every job the simulator holds, as the API lists them (newest first)."""
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{sim.base_url}/accounts/{ACCOUNT_ID}/email-security/investigate/bulk",
            params={"per_page": 1000},
            headers={"Authorization": f"Bearer {CF_TOKEN}"},
        )
    response.raise_for_status()
    return list(response.json()["result"])


def tag_of(job: dict[str, Any]) -> str | None:
    """Return the `crash-RRR-J` tag in a simulator job's comment, if any."""
    match = TAG_RE.search(job.get("comment") or "")
    return match.group(0) if match else None


def cards(crash: Crash) -> dict[str, list[Any]]:
    """Return the channel's cards by job id (a list, so duplicates show)."""
    found: dict[str, list[Any]] = {}
    for message in crash.slack.state.top_level(CHANNEL):
        metadata = message.metadata or {}
        if metadata.get("event_type") == EventType.CARD.value:
            found.setdefault(str(metadata["event_payload"]["job_id"]), []).append(message)
    return found


def replies(crash: Crash, card_ts: str) -> list[str]:
    """Return the transitions of a card's thread replies, oldest first."""
    transitions = []
    for message in crash.slack.state.thread(CHANNEL, card_ts)[1:]:
        metadata = message.metadata or {}
        if metadata.get("event_type") == EventType.TRANSITION.value:
            transitions.append(str(metadata["event_payload"]["transition"]))
    return transitions


def thread_replies_total(crash: Crash) -> int:
    """Return how many transition replies exist in the channel."""
    return sum(
        1
        for m in crash.slack.state.messages(CHANNEL)
        if m.is_reply and (m.metadata or {}).get("event_type") == EventType.TRANSITION.value
    )


def database_rows(database: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Return the bot's outbox rows (job_id, kind, key, state) and create intents (tag, state, job_id)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        outbox = connection.execute("SELECT job_id, kind, key, state FROM outbox ORDER BY id").fetchall()
        intents = connection.execute("SELECT tag, state, job_id FROM create_intents").fetchall()
    finally:
        connection.close()
    return outbox, intents


# ---------------------------------------------------------------------------- driving


async def preview(crash: Crash, driver: SlackDriver, tag: str) -> list[dict[str, Any]]:
    """Run `/sweep move … comment:"<tag>"` and return the blocks of its preview (with the Confirm button)."""
    state = crash.slack.state
    before = len(state.responses(OPERATOR))
    response = await driver.slash(f'move subject:invoice since:30d to:junk comment:"{tag}"')
    assert response.status == 200, crash.report(f"/sweep answered {response.status}")

    def shown() -> Any:
        for reply in state.responses(OPERATOR)[before:]:
            if ActionId.CONFIRM_CREATE in buttons(reply.blocks):
                return reply
        return None

    return list((await wait_until(shown, timeout=15, what=f"the preview of {tag}")).blocks)


async def confirm_create(crash: Crash, driver: SlackDriver, tag: str) -> None:
    """Preview a create and click Confirm (returns at the click's ack; the create goes on in the bot)."""
    blocks = await preview(crash, driver, tag)
    response = await driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=blocks)
    assert response.status == 200, crash.report(f"Confirm answered {response.status}")


async def strike(crash: Crash, driver: SlackDriver, entry: Round) -> None:
    """Create this round's jobs and kill the bot at the round's kill point."""
    state = crash.slack.state
    rng = crash.rng
    for tag in entry.tags[:-1]:
        await confirm_create(crash, driver, tag)
    last = entry.tags[-1]
    kind = entry.kind
    refusal = None
    if kind == "create-refused":
        # 429: not created, retried after Retry-After; 503: maybe created (`after`: it was), so the bot
        # backs off and then looks for its tag before sending again.
        status, after = rng.choice(((429, False), (503, False), (503, True)))
        rule = {
            "method": "POST",
            "path": "/bulk",
            "status": status,
            "after": after,
            "count": 1,
            "retry_after": 3,
        }
        refusal = (await crash.sim.set_faults({"rules": [rule]})).rules[0]
        entry.note = f"HTTP {status}" + (" after creating" if after else "")
    elif kind == "answer-lost":
        # Cloudflare makes the job and the answer is lost; so is the bot's first look-up by its tag.
        rules = [
            {"method": "POST", "path": "/bulk", "status": 503, "after": True, "count": 1},
            {"method": "GET", "path": "/bulk", "status": 503, "count": 3},
        ]
        refusal = (await crash.sim.set_faults({"rules": rules})).rules[1]
    elif kind == "create-in-flight":
        # The simulator creates the job, then sits on the answer: the bot dies not knowing the job id.
        await crash.sim.set_faults({"rules": [{"method": "POST", "path": "/bulk", "latency": 2.0}]})
    elif kind in ("card-posted", "reply-posted"):
        crash.slack.slow_down("chat.postMessage", SLOW_ANSWER)
    elif kind == "update-sent":
        crash.slack.slow_down("chat.update", SLOW_ANSWER)
    cards_before = sum(len(c) for c in cards(crash).values())
    replies_before = thread_replies_total(crash)
    updates_before = len(state.calls("chat.update"))
    notices_before = len(state.responses(OPERATOR))
    if kind == "confirm-click":
        blocks = await preview(crash, driver, last)
        click = asyncio.create_task(driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=blocks))
        delay = rng.uniform(0, 0.04)
        entry.note = f"{delay * 1000:.0f} ms after the click"
        await asyncio.sleep(delay)  # the experiment: somewhere between the click and the create
        crash.bot.kill()
        with contextlib.suppress(httpx.HTTPError):
            await click
    else:
        await confirm_create(crash, driver, last)

    async def job_created() -> bool:
        return any(tag_of(job) == last for job in await sim_jobs(crash.sim))

    def creating_shown() -> bool:
        return any("Creating the job" in r.text for r in state.responses(OPERATOR)[notices_before:])

    waits: dict[str, Any] = {
        "creating-notice": creating_shown,
        "create-refused": lambda: refusal is not None and refusal.count == 0,
        "answer-lost": lambda: refusal is not None and refusal.count is not None and refusal.count < 3,
        "create-in-flight": job_created,
        "card-posted": lambda: sum(len(c) for c in cards(crash).values()) > cards_before,
        "reply-posted": lambda: thread_replies_total(crash) > replies_before,
        "update-sent": lambda: len(state.calls("chat.update")) > updates_before,
    }
    if kind in waits:
        try:
            await wait_until(waits[kind], timeout=STRIKE_DEADLINE, interval=0.005, what=kind)
        except AssertionError:
            entry.note = "(kill point not reached in time: the round runs again)"
            entry.reached = False
        if kind in ("creating-notice", "create-refused", "answer-lost"):
            await asyncio.sleep(rng.uniform(0, 0.2))  # the experiment: somewhere inside the create
    elif kind == "random":
        delay = rng.uniform(0, JOB_SECONDS)
        entry.note = f"after {delay:.2f} s"
        await asyncio.sleep(delay)  # the experiment: a random moment of polling and posting
    crash.bot.kill()
    crash.slack.clear_faults()
    await crash.sim.clear_faults()
    entry.created_at_kill = sorted(t for job in await sim_jobs(crash.sim) if (t := tag_of(job)) in entry.tags)


# ---------------------------------------------------------------------------- the checks


async def problems(crash: Crash, confirmed: list[str]) -> list[str]:
    """Return everything wrong with the end state (empty when the bot is drained and exactly-once held)."""
    found: list[str] = []
    jobs = [job for job in await sim_jobs(crash.sim) if tag_of(job) is not None]
    per_tag = Counter(tag_of(job) for job in jobs)
    found += [f"{tag} was created {n} times at Cloudflare" for tag, n in per_tag.items() if n > 1]
    found += [f"{tag} was never confirmed but exists" for tag in per_tag if tag not in confirmed]
    posted = cards(crash)
    by_id = {job["job_id"]: job for job in jobs}
    found += [f"card for unknown job {job_id}" for job_id in posted if job_id not in by_id]
    for reply in crash.slack.state.responses(OPERATOR):
        for job_id in CREATED_RE.findall(reply.text):
            if job_id not in by_id:
                found.append(f"the analyst was told job {job_id} was created, but Cloudflare has no such job")
            elif job_id not in posted:
                found.append(f"the analyst was told job {job_id} was created, but it has no card")
    outbox, intents = database_rows(crash.database)
    recorded: dict[str, set[str]] = {}
    for job_id, kind, key, row_state in outbox:
        if kind == "transition":
            recorded.setdefault(job_id, set()).add(key)
        if row_state != "sent":
            found.append(f"outbox row {kind} {key} of {job_id} is {row_state}")
    found += [
        f"create intent {tag} is still {state}" for tag, state, _ in intents if state in ("open", "ambiguous")
    ]
    # Every recorded create is accounted for: a job (its card is checked below) or one notice.
    notices = Counter(
        str((m.metadata or {}).get("event_payload", {}).get("job_id"))
        for m in crash.slack.state.top_level(CHANNEL)
        if (m.metadata or {}).get("event_type") == EventType.NOTICE.value
    )
    for tag, state, job_id in intents:
        if state == "done" and job_id not in by_id:
            found.append(f"create intent {tag} says job {job_id}, which Cloudflare does not have")
        if state == "failed" and notices[f"create:{tag}"] != 1:
            found.append(f"create intent {tag} failed and the analyst got {notices[f'create:{tag}']} notices")
    creating_shown = sum(1 for r in crash.slack.state.responses(OPERATOR) if "Creating the job" in r.text)
    if creating_shown > len(intents):
        found.append(
            f"'Creating the job…' was shown {creating_shown} times for {len(intents)} recorded creates"
        )
    for job in jobs:
        job_id, status, tag = job["job_id"], job["status"], tag_of(job)
        label = f"{tag} (job {job_id}, {status} at Cloudflare)"
        if status not in TERMINAL:
            found.append(f"{label} has not finished yet")
        mine = posted.get(job_id, [])
        if len(mine) != 1:
            found.append(f"{label} has {len(mine)} cards")
            continue
        card = mine[0]
        if card_status(crash.slack.state.message(CHANNEL, card.ts)) != status.lower():
            found.append(f"{label}: card says {card.text!r}")
        transitions = replies(crash, card.ts)
        twice = [t for t, n in Counter(transitions).items() if n > 1]
        if twice:
            found.append(f"{label}: transitions replied more than once: {twice} in {transitions}")
        steps = [t.split("->") for t in transitions]
        broken = [
            f"{a}->{b} then {c}->{d}" for (a, b), (c, d) in zip(steps, steps[1:], strict=False) if b != c
        ]
        if broken:
            found.append(f"{label}: thread replies do not chain: {broken} in {transitions}")
        if set(transitions) != recorded.get(job_id, set()):
            found.append(f"{label}: replies {transitions} != recorded transitions {recorded.get(job_id)}")
        if transitions and steps[-1][1] != status:
            found.append(f"{label}: last reply is {transitions[-1]}, not the final status")
        if not transitions and recorded.get(job_id):
            found.append(f"{label}: no thread replies")
    return found


# ---------------------------------------------------------------------------- the test


@pytest.fixture
async def crash(tmp_path: Path) -> AsyncIterator[Crash]:
    """Start the simulator and the fake Slack; the bot process is started and killed by the test."""
    config = SimulatorConfig(token=CF_TOKEN, job_seconds=JOB_SECONDS, seed=SEED % 1000)
    async with (
        running_simulator(config, host="127.0.0.1", port=0) as sim,
        running_fake_slack(bot_token=BOT_TOKEN, usergroups={"S0SOC": [GROUP_MEMBER]}) as slack,
    ):
        database = tmp_path / "sweep.db"
        bot = BotProcess(
            env=bot_env(
                sim_url=sim.base_url,
                slack_url=slack.api_url,
                database=database,
                extra={"SWEEP_POLL_SECONDS": "0.2", "SWEEP_CLOUDFLARE_TIMEOUT": "3"},
            ),
            log_path=tmp_path / "bot.log",
        )
        try:
            yield Crash(sim=sim, slack=slack, bot=bot, database=database, rng=random.Random(SEED))
        finally:
            bot.stop()
            leaked = [line for line in bot.logs().splitlines() if BOT_TOKEN in line or CF_TOKEN in line]
            assert not leaked, f"a token reached the bot's log: {leaked[:3]}"


async def test_kill_nine_at_random_points_never_duplicates_or_loses_a_notification(crash: Crash) -> None:
    print(f"\ncrash safety: seed={SEED} rounds={ROUNDS}")
    rng = crash.rng
    # Every kill point at least once (when there are enough rounds), then random ones.
    kinds = rng.sample(KINDS, len(KINDS)) + [rng.choice(KINDS) for _ in range(max(ROUNDS - len(KINDS), 0))]
    confirmed: list[str] = []
    for number, kind in enumerate(kinds[:ROUNDS], start=1):
        for attempt in range(1, ROUND_TRIES + 1):
            tags = [
                f"crash-{number:03d}{'abc'[attempt - 1]}-{j}" for j in range(1, rng.choice((1, 1, 2)) + 1)
            ]
            entry = Round(number, kind, tags)
            crash.schedule.append(entry)
            confirmed += tags
            await crash.bot.start()
            async with crash.driver() as driver:
                await strike(crash, driver, entry)
            print(entry)
            if entry.reached:
                break
        else:
            raise AssertionError(crash.report(f"round {number}: kill point {kind} never reached"))

    await crash.bot.start()
    with contextlib.suppress(AssertionError):  # a timeout is reported below, with the details
        await wait_until(
            lambda: _settled(crash, confirmed), timeout=30 + JOB_SECONDS, interval=0.2, what="the drain"
        )
    left = await problems(crash, confirmed)
    assert not left, crash.report("crash safety broken:\n  " + "\n  ".join(left))
    jobs = [job for job in await sim_jobs(crash.sim) if tag_of(job) is not None]
    print(
        f"crash safety: {len(jobs)} jobs from {len(confirmed)} confirms over {ROUNDS} kills, "
        f"{len(cards(crash))} cards, {thread_replies_total(crash)} replies, {crash.bot.starts} starts"
    )


async def _settled(crash: Crash, confirmed: list[str]) -> bool:
    return not await problems(crash, confirmed)
