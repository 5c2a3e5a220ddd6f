"""Two `sweep-bot serve --http` replicas on one PostgreSQL database, the simulator and the local Slack.

The test itself is the load balancer: it sends requests to both replicas in turn (a preview shown by
one is confirmed through the other). Jobs made through either get exactly one card and one thread
reply per transition; only the replica holding the poller lease polls Cloudflare (the simulator sees
one replica's list calls, all made by the holder); killing the holder with SIGKILL moves the lease
(its `/metrics` `sweep_poller_lease_held`) to the other within two poll intervals, and the survivor
carries on with the jobs. The database is made for the test and dropped after it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.devslack.driver import SlackDriver
from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.ids import ActionId
from bot.simulator.app import RunningSimulator, SimulatorConfig, running_simulator
from bot.tracker import calls_budget
from tests.component.conftest import postgres_database
from tests.e2e.conftest import (
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
from tests.e2e.test_metrics import scrape, series, value
from tests.e2e.test_slack_flows import buttons, card_status

POLL_SECONDS = 1.0
TERMINAL = {"completed", "failed", "cancelled", "skipped"}
LIST = "GET /accounts/{account_id}/email-security/investigate/bulk"


@pytest.fixture
async def servers() -> AsyncIterator[tuple[RunningSimulator, RunningFakeSlack]]:
    config = SimulatorConfig(token=CF_TOKEN, job_seconds=3.0, seed=13)
    async with (
        running_simulator(config, host="127.0.0.1", port=0) as sim,
        running_fake_slack(bot_token=BOT_TOKEN, usergroups={"S0SOC": [GROUP_MEMBER]}) as slack,
    ):
        yield sim, slack


@pytest.fixture
async def replicas(
    tmp_path: Path, servers: tuple[RunningSimulator, RunningFakeSlack]
) -> AsyncIterator[list[BotProcess]]:
    """Two bot processes on a fresh PostgreSQL database (stopped, and the database dropped, after)."""
    sim, slack = servers
    async with postgres_database() as url:
        extra = {"SWEEP_DATABASE_URL": url, "SWEEP_POLL_SECONDS": str(POLL_SECONDS)}
        bots = [
            BotProcess(
                env=bot_env(
                    sim_url=sim.base_url,
                    slack_url=slack.api_url,
                    database=tmp_path / "unused.db",  # SWEEP_DATABASE_URL wins
                    extra=extra,
                ),
                log_path=tmp_path / f"bot{n}.log",
            )
            for n in range(2)
        ]
        try:
            for bot in bots:
                await bot.start()
            yield bots
        finally:
            for bot in bots:
                bot.stop()
            assert not (tmp_path / "unused.db").exists()
            for bot in bots:
                leaked = [line for line in bot.logs().splitlines() if BOT_TOKEN in line or CF_TOKEN in line]
                assert not leaked, f"a token reached a bot's log: {leaked[:3]}"


async def lease_holders(bots: list[BotProcess]) -> list[int]:
    """Return the indexes of the live replicas whose /metrics say they hold the poller lease."""
    held = []
    for n, bot in enumerate(bots):
        alive = bot.process is not None and bot.process.poll() is None
        if alive and value(await scrape(bot.port), "sweep_poller_lease_held") == 1:
            held.append(n)
    return held


async def polls_and_lists(bot: BotProcess) -> tuple[float, float]:
    """Return a replica's poll cycles so far and the list calls it made to Cloudflare."""
    samples = await scrape(bot.port)
    cycles = sum(series(samples, "sweep_poll_cycle_seconds_count").values())
    lists = sum(
        v
        for labels, v in series(samples, "sweep_cloudflare_requests_total").items()
        if dict(labels)["endpoint"] == LIST
    )
    return cycles, lists


async def create_through(
    slack: RunningFakeSlack, preview_on: SlackDriver, confirm_on: SlackDriver, tag: str
) -> None:
    """Preview a create on one replica and confirm it on the other."""
    before = len(slack.state.responses(OPERATOR))
    response = await preview_on.slash(f'move subject:invoice since:30d to:junk comment:"{tag}"')
    assert response.status == 200

    def shown() -> Any:
        for reply in slack.state.responses(OPERATOR)[before:]:
            if ActionId.CONFIRM_CREATE in buttons(reply.blocks):
                return reply
        return None

    preview = await wait_until(shown, timeout=15, what=f"the preview of {tag}")
    response = await confirm_on.block_action(ActionId.CONFIRM_CREATE, message_blocks=list(preview.blocks))
    assert response.status == 200


def cards(slack: RunningFakeSlack) -> dict[str, Any]:
    """Return the job cards in the incident channel by job id (failing on a second card for a job)."""
    found: dict[str, Any] = {}
    for message in slack.state.top_level(CHANNEL):
        meta = message.metadata or {}
        if meta.get("event_type") == "sweep_card":
            job_id = meta["event_payload"]["job_id"]
            assert job_id not in found, f"job {job_id} has two cards"
            found[job_id] = message
    return found


def transitions(slack: RunningFakeSlack, card: Any) -> list[str]:
    """Return the transitions replied in a card's thread, in order."""
    return [
        m.metadata["event_payload"]["transition"]
        for m in slack.state.messages(CHANNEL)
        if m.is_reply
        and m.thread_ts == card.ts
        and (m.metadata or {}).get("event_type") == "sweep_transition"
    ]


async def all_finished(slack: RunningFakeSlack, count: int) -> bool:
    found = cards(slack)
    return len(found) == count and all(card_status(card) in TERMINAL for card in found.values())


def assert_one_reply_per_transition(slack: RunningFakeSlack, sim: RunningSimulator, count: int) -> None:
    found = cards(slack)
    assert len(found) == count
    assert sim.state.stats.jobs_created == count  # no job created twice
    for card in found.values():
        steps = transitions(slack, card)
        assert len(steps) == len(set(steps)), f"a transition was replied twice: {steps}"
        assert steps, "a job finished with no transition replied"
        chain = [steps[0].split("->")[0]] + [step.split("->")[1] for step in steps]
        assert all(a.split("->")[1] == b.split("->")[0] for a, b in zip(steps, steps[1:], strict=False))
        assert chain[-1].lower() == card_status(card)


async def test_two_replicas_one_poller_one_card_per_job_and_the_lease_moves_on_sigkill(
    replicas: list[BotProcess], servers: tuple[RunningSimulator, RunningFakeSlack]
) -> None:
    sim, slack = servers
    holders = await wait_until(lambda: lease_holders(replicas), timeout=10, what="a poller lease holder")
    assert len(holders) == 1, holders
    holder = holders[0]
    other = 1 - holder
    drivers = [
        SlackDriver(bot.events_url, SIGNING_SECRET, slack.state, user_id=OPERATOR, channel_id=CHANNEL)
        for bot in replicas
    ]
    try:
        await drivers[0].__aenter__()
        await drivers[1].__aenter__()
        jobs = 4
        for n in range(jobs):
            await create_through(slack, drivers[n % 2], drivers[(n + 1) % 2], f"replicas-{n}")
        await wait_until(lambda: all_finished(slack, jobs), timeout=60, what="every job finished")
        assert_one_reply_per_transition(slack, sim, jobs)

        # One replica's worth of polling: every list call the simulator saw came from the holder.
        assert await lease_holders(replicas) == [holder]
        held_cycles, held_lists = await polls_and_lists(replicas[holder])
        idle_cycles, idle_lists = await polls_and_lists(replicas[other])
        stats = await sim.stats()
        assert held_cycles > 0 and held_lists > 0
        assert (idle_cycles, idle_lists) == (0, 0)
        # Every list call the simulator answered (since it started, before both replicas) was the holder's.
        assert stats["requests"].get(LIST, 0) == held_lists
        # …and one replica's worth per cycle: at most one list per active status (a page each, < 1000 jobs).
        assert held_lists <= calls_budget(jobs, 0) * held_cycles
        print(f"{held_lists:g} list calls in {held_cycles:g} poll cycles, all by the lease holder")

        # SIGKILL the holder: the other replica holds the lease within two poll intervals.
        replicas[holder].kill()
        killed_at = time.monotonic()
        await wait_until(
            lambda: lease_holders(replicas), timeout=10 * POLL_SECONDS, interval=0.05, what="a new holder"
        )
        took = time.monotonic() - killed_at
        assert await lease_holders(replicas) == [other]
        assert took <= 2 * POLL_SECONDS, f"the lease moved after {took:.2f} s"
        print(f"lease moved {took:.2f} s after SIGKILL (poll interval {POLL_SECONDS:g} s)")

        # The survivor polls now: a job made through it is carried to its end, one card, one reply each.
        await create_through(slack, drivers[other], drivers[other], "replicas-after")
        await wait_until(lambda: all_finished(slack, jobs + 1), timeout=60, what="the last job finished")
        assert_one_reply_per_transition(slack, sim, jobs + 1)
        cycles_after, _ = await polls_and_lists(replicas[other])
        assert cycles_after > 0
    finally:
        for driver in drivers:
            await driver.aclose()
