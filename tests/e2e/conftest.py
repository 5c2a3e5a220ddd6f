"""End-to-end harness: the real `sweep-bot serve --http` process, the simulator and the local Slack.

The simulator and the fake Slack Web API run in the test's event loop (so tests can inspect them);
the bot runs as its own process and is reached only over signed HTTP, exactly as Slack reaches it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from bot.devslack.driver import SlackDriver
from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.ids import EventType
from bot.simulator.app import API_PREFIX, RunningSimulator, SimulatorConfig, running_simulator
from tests.component.conftest import postgres_database
from tests.support import ForwardingProxy, card_status

SIGNING_SECRET = "e2e-signing-secret"
BOT_TOKEN = "xoxb-e2e-bot-token"
CF_TOKEN = "e2e-cloudflare-token"
ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
OPERATOR = "U0OPERATOR"
GROUP_MEMBER = "U0GROUPIE"
STRANGER = "U0STRANGER"
CHANNEL = "C0INCIDENT"
OTHER_CHANNEL = "C0RANDOM"


def free_port() -> int:
    """Return a TCP port that is free, and kept from other processes asking the OS for a port.

    The port is left in TIME_WAIT (a connection to it was accepted and closed here): for about a minute
    the OS hands it to no one asking for any free port (bind or connect), while a server that sets
    SO_REUSEADDR, as aiohttp and asyncio do, can listen on it. So tests running in parallel do not take
    each other's ports. Port 0 with the bound port read back (`BotProcess` does) is simpler still;
    `ClosedPort` is a port nothing listens on.
    """
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = int(server.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the accepting side closes first: it is the one that waits
            client.recv(1)
    return port


class ClosedPort:
    """A port that refuses connections until released: bound (no other process gets it), not listening."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = int(self._socket.getsockname()[1])

    def release(self) -> None:
        """Free the port (for a server of the test's own to listen there); idempotent."""
        self._socket.close()

    def __enter__(self) -> ClosedPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


#: How long a bot process may take to start (imports, migrations, Slack's auth.test): the tests share the
#: machine's cores with each other (pytest-xdist) and with whatever else runs there. A healthy start takes
#: a second or two; this only bounds how long a broken one is waited for.
START_TIMEOUT = 60.0

#: What `sweep-bot serve --http` logs once it listens (plain or JSON logs).
LISTENING_RE = re.compile(r"listening on http://[^\s:/]+:(\d+)/slack/events")


async def wait_until(
    predicate: Callable[[], Awaitable[Any] | Any],
    *,
    timeout: float = 15.0,
    interval: float = 0.05,
    what: str = "",
) -> Any:
    """Poll a (sync or async) condition until it is truthy; fail with `what` after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(interval)


@dataclass
class BotProcess:
    """The bot as a child process, restartable on the same database.

    `port=0` (the default) lets the OS choose a free port at the first start (safe when tests run in
    parallel); `port` is then the bound one, which later starts reuse so URLs stay valid.
    """

    env: dict[str, str]
    log_path: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def events_url(self) -> str:
        """Return where Slack would send events."""
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def start(self, *, timeout: float = START_TIMEOUT) -> None:
        """Start the bot and wait until /healthz answers (a loaded machine may take a while to import it)."""
        self.starts += 1
        command = [sys.executable, "-m", "bot", "serve", "--http"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        logged = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:  # the child keeps its own handle
            self.process = subprocess.Popen(
                command,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if self.port == 0:

            def bound() -> int | None:
                self._check_running()
                found = LISTENING_RE.search(self.log_path.read_bytes()[logged:].decode(errors="replace"))
                return int(found.group(1)) if found else None

            self.port = await wait_until(bound, timeout=timeout, what="the bot to listen")
        async with httpx.AsyncClient() as http:

            async def healthy() -> bool:
                self._check_running()
                try:
                    return (await http.get(f"http://127.0.0.1:{self.port}/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(healthy, timeout=timeout, what="the bot's /healthz")

    def _check_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"bot exited with {self.process.returncode}:\n{self.logs()}")

    def kill(self) -> None:
        """Kill the bot with SIGKILL (no chance to clean up)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """Stop the bot gracefully (SIGTERM)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def logs(self) -> str:
        """Return everything the bot printed."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Stack:
    """Everything an end-to-end test touches."""

    sim: Any
    slack: RunningFakeSlack
    bot: BotProcess
    driver: SlackDriver
    database: Path

    @property
    def cloudflare_base(self) -> str:
        """Return the simulator's API base URL."""
        return str(self.sim.base_url)


def bot_env(
    *, sim_url: str, slack_url: str, database: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Return the environment of a bot process pointed at the local servers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLOUDFLARE_", "SWEEP_"))}
    env.update(
        {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack_url,
            "CLOUDFLARE_API_TOKEN": CF_TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": ACCOUNT_ID,
            "CLOUDFLARE_BASE_URL": sim_url,
            "SWEEP_DATABASE": str(database),
            "SWEEP_POLL_SECONDS": "0.3",
            # Polling every 0.3 s is 30 times what Cloudflare's 1,200 per 5 minutes allows a 10 s
            # poller: a budget that never binds here; tests of the budget set a small one themselves.
            "SWEEP_CLOUDFLARE_BUDGET": "1000000",
            "SWEEP_OPERATORS": f"{OPERATOR},S0SOC",
            "SWEEP_CHANNELS": f"{CHANNEL},C0SECOND",
            # The two-person rule's count and always-rules are off for the tests of other flows (the
            # breadth guard always applies); tests/e2e/test_two_person_approval.py turns them on.
            "SWEEP_APPROVAL_ABOVE": "off",
            "SWEEP_APPROVAL_ALWAYS": "none",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra or {})
    return env


def lift_cloudflare_pause(database: Path) -> None:
    """End the pause a 429 started in the bot's SQLite database, as if its Retry-After had passed.

    A test that makes Cloudflare ask for a long wait (600 s) calls this afterwards, so the tests after
    it in the module find Cloudflare usable again (the bot reads the pause from the database).
    """
    with contextlib.closing(sqlite3.connect(database, timeout=10)) as db, db:
        db.execute("UPDATE cloudflare_budget SET paused_until = NULL")


@contextlib.asynccontextmanager
async def open_stack(
    workdir: Path, *, job_seconds: float = 3.0, seed: int = 11, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Stack]:
    """Start the simulator, the fake Slack and the bot; on exit, check no token reached the bot's log."""
    config = SimulatorConfig(token=CF_TOKEN, job_seconds=job_seconds, seed=seed)
    async with (
        running_simulator(config, host="127.0.0.1", port=0) as sim,
        running_fake_slack(bot_token=BOT_TOKEN, usergroups={"S0SOC": [GROUP_MEMBER]}) as slack,
    ):
        database = workdir / "sweep.db"
        bot = BotProcess(
            env=bot_env(sim_url=sim.base_url, slack_url=slack.api_url, database=database, extra=extra_env),
            log_path=workdir / "bot.log",
        )
        await bot.start()
        try:
            async with SlackDriver(
                bot.events_url, SIGNING_SECRET, slack.state, user_id=OPERATOR, channel_id=CHANNEL
            ) as driver:
                yield Stack(sim=sim, slack=slack, bot=bot, driver=driver, database=database)
        finally:
            bot.stop()
            leaked = [line for line in bot.logs().splitlines() if BOT_TOKEN in line or CF_TOKEN in line]
            assert not leaked, f"a token reached the bot's log: {leaked[:3]}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """Start the simulator, the fake Slack and the bot once per test module."""
    async with open_stack(tmp_path_factory.mktemp("e2e")) as opened:
        yield opened


# ---------------------------------------------------------------------------- several replicas

TERMINAL = {"completed", "failed", "cancelled", "skipped"}


@dataclass
class Replicas:
    """Replicas of the bot on one PostgreSQL database, as a load balancer would front them.

    `balancer` (when asked for) is the one address Slack knows: it hands each request to the next
    live replica in turn. `cloudflare[n]` (when asked for) stands between replica `n` and the
    simulator, so the test can tell which replica made each Cloudflare call and when.
    """

    bots: list[BotProcess]
    database_url: str
    balancer: ForwardingProxy | None = None
    cloudflare: list[ForwardingProxy] = field(default_factory=list)

    @property
    def events_url(self) -> str:
        """Return where Slack sends events: the balancer."""
        assert self.balancer is not None, "these replicas have no balancer"
        return self.balancer.url("/slack/events")

    def alive(self, n: int) -> bool:
        """Return whether replica `n`'s process is running."""
        process = self.bots[n].process
        return process is not None and process.poll() is None


@contextlib.asynccontextmanager
async def running_replicas(
    workdir: Path,
    sim: RunningSimulator,
    slack: RunningFakeSlack,
    *,
    count: int,
    extra_env: dict[str, str] | None = None,
    balanced: bool = False,
    observed: bool = False,
) -> AsyncIterator[Replicas]:
    """Start `count` bot processes on a fresh PostgreSQL database (stopped, and the database dropped, after).

    `balanced`: put a round-robin `ForwardingProxy` in front of them; `observed`: give each its own
    proxy to the simulator. On exit, checks that no bot used the SQLite file and no token reached a log.
    """
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(postgres_database())
        cloudflare = [await stack.enter_async_context(ForwardingProxy([sim.port])) for _ in range(count)]
        ports = [free_port() for _ in range(count)]
        balancer = await stack.enter_async_context(ForwardingProxy(ports)) if balanced else None
        extra = {"SWEEP_DATABASE_URL": url, **(extra_env or {})}
        bots = [
            BotProcess(
                env=bot_env(
                    sim_url=cloudflare[n].url(API_PREFIX) if observed else sim.base_url,
                    slack_url=slack.api_url,
                    database=workdir / "unused.db",  # SWEEP_DATABASE_URL wins
                    extra=extra,
                ),
                port=ports[n],
                log_path=workdir / f"bot{n}.log",
            )
            for n in range(count)
        ]
        try:
            await asyncio.gather(*(bot.start() for bot in bots))
            yield Replicas(bots, url, balancer, cloudflare if observed else [])
        finally:
            for bot in bots:
                bot.stop()
        assert not (workdir / "unused.db").exists()
        for bot in bots:
            leaked = [line for line in bot.logs().splitlines() if BOT_TOKEN in line or CF_TOKEN in line]
            assert not leaked, f"a token reached a bot's log: {leaked[:3]}"


def cards(slack: RunningFakeSlack) -> dict[str, Any]:
    """Return the job cards in the incident channel by job id (failing on a second card for a job)."""
    found: dict[str, Any] = {}
    for message in slack.state.top_level(CHANNEL):
        meta = message.metadata or {}
        if meta.get("event_type") == EventType.CARD:
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
        and (m.metadata or {}).get("event_type") == EventType.TRANSITION
    ]


async def all_finished(slack: RunningFakeSlack, count: int) -> bool:
    """Return whether `count` cards exist and every one shows a final status."""
    found = cards(slack)
    return len(found) == count and all(card_status(card) in TERMINAL for card in found.values())


def assert_one_reply_per_transition(slack: RunningFakeSlack, sim: RunningSimulator, count: int) -> None:
    """Check `count` jobs were made, one card each, with one thread reply per transition of the job:
    unique, each starting where the last ended, from PENDING (the status a job is created in) to the
    status the simulator says the job ended in, which the card shows."""
    found = cards(slack)
    assert len(found) == count
    assert sim.state.stats.jobs_created == count  # no job created twice
    for job_id, card in found.items():
        steps = transitions(slack, card)
        assert len(steps) == len(set(steps)), f"a transition was replied twice: {steps}"
        assert steps, "a job finished with no transition replied"
        chain = [steps[0].split("->")[0]] + [step.split("->")[1] for step in steps]
        assert all(a.split("->")[1] == b.split("->")[0] for a, b in zip(steps, steps[1:], strict=False)), (
            steps
        )
        assert chain[0] == "PENDING", steps
        final = str(sim.state.view(sim.state.find(job_id)).status)
        assert chain[-1] == final, (steps, final)
        assert chain[-1].lower() == card_status(card)
