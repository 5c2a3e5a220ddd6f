"""Shared by the benchmarks: start the simulator, the local Slack and bot processes on loopback.

Also a PostgreSQL database of its own for a run (`postgres_database`: created on the server at
`POSTGRES_SERVER`, dropped afterwards), and the CPU time its server processes use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url

from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.simulator.app import SimulatorConfig, running_simulator

SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"
CF_TOKEN = "bench-cloudflare-token"
ACCOUNT = "be0c0000000000000000000000000001"
OPERATOR = "U0OPERATOR"
CHANNEL = "C0INCIDENT"
ROOT = Path(__file__).resolve().parent.parent
#: The PostgreSQL server the benchmarks use (a database of their own is made on it per run).
POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


def free_port() -> int:
    """Return a TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Wait until `url` answers (any HTTP status), failing if the process dies."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with httpx.AsyncClient() as http:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"process exited with {process.returncode}")
            try:
                await http.get(url)
                return
            except httpx.TransportError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def process(
    args: list[str], env: dict[str, str], health_url: str
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Run a child process until the block ends; its output is kept (and named) only if it failed to start."""
    log = tempfile.NamedTemporaryFile(prefix="sweep-bench-", suffix=".log", delete=False)  # noqa: SIM115
    child = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    started = False
    try:
        try:
            await wait_healthy(health_url, child)
        except (RuntimeError, httpx.TransportError) as error:
            raise RuntimeError(f"{' '.join(args)} did not start ({error}); its output: {log.name}") from error
        started = True
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()
        if started:
            os.unlink(log.name)


@dataclass
class Stack:
    """The simulator and local Slack (in this process) and Sweep (a child process)."""

    sim: Any
    slack: RunningFakeSlack
    events_url: str
    bot: subprocess.Popen[bytes]
    #: The store Sweep runs on: a SQLite file, or the URL of a PostgreSQL database.
    database: str | Path

    @property
    def health_url(self) -> str:
        """Return Sweep's /healthz address."""
        return self.events_url.replace("/slack/events", "/healthz")


@contextlib.asynccontextmanager
async def sweep_stack(
    *,
    poll_seconds: float = 10.0,
    job_seconds: float = 30.0,
    log_level: str = "WARNING",
    profile_to: str | None = None,
    pin: bool = False,
    database_url: str | None = None,
) -> AsyncIterator[Stack]:
    """Start everything Sweep needs, on loopback, and Sweep itself in HTTP mode.

    The store is a SQLite file in a temporary directory (removed at the end), or the PostgreSQL
    database at `database_url` (SWEEP_DATABASE_URL; see `postgres_database`).
    """
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as workdir:
        database: str | Path = database_url or Path(workdir) / "sweep.db"
        async with _sweep_stack(database, poll_seconds, job_seconds, log_level, profile_to, pin) as stack:
            yield stack


@contextlib.asynccontextmanager
async def _sweep_stack(
    database: str | Path,
    poll_seconds: float,
    job_seconds: float,
    log_level: str,
    profile_to: str | None,
    pin: bool,
) -> AsyncIterator[Stack]:
    """`sweep_stack` once its store is chosen."""
    config = SimulatorConfig(token=CF_TOKEN, job_seconds=job_seconds, seed=3)
    async with (
        running_simulator(config, host="127.0.0.1", port=0) as sim,
        running_fake_slack(bot_token=BOT_TOKEN, trigger_ttl=60.0, validate_blocks=False) as slack,
    ):
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLOUDFLARE_", "SWEEP_"))}
        env.update(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.api_url,
            CLOUDFLARE_API_TOKEN=CF_TOKEN,
            CLOUDFLARE_ACCOUNT_ID=ACCOUNT,
            CLOUDFLARE_BASE_URL=sim.base_url,
            **(
                {"SWEEP_DATABASE_URL": str(database)}
                if isinstance(database, str)
                else {"SWEEP_DATABASE": str(database)}
            ),
            SWEEP_POLL_SECONDS=str(poll_seconds),
            SWEEP_OPERATORS=OPERATOR,
            SWEEP_LOG_LEVEL=log_level,
            # A benchmark is one operator sending thousands of requests: no per-user budget may refuse
            # them, or the figures would measure refusals.
            SWEEP_READS_PER_USER="100000",
            SWEEP_WRITES_PER_USER="100000",
            SWEEP_READS_TOTAL="1000000",
            SWEEP_WRITES_TOTAL="1000000",
            # Nor may the shared Cloudflare budget (the simulator has no limit to keep under).
            SWEEP_CLOUDFLARE_BUDGET="1000000",
        )
        # SWEEP_BENCH_PROFILE=<file>: run the bot under cProfile (written when it exits on SIGTERM).
        profile_to = profile_to or os.environ.get("SWEEP_BENCH_PROFILE")
        profiler = ["-m", "cProfile", "-o", profile_to] if profile_to else []
        args = [
            *pinned_to_server_cpu(pin),
            sys.executable,
            *profiler,
            "-m",
            "bot",
            "serve",
            "--http",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        async with process(args, env, f"http://127.0.0.1:{port}/healthz") as bot:
            yield Stack(
                sim=sim,
                slack=slack,
                events_url=f"http://127.0.0.1:{port}/slack/events",
                bot=bot,
                database=database,
            )


def pinned_to_server_cpu(pin: bool) -> list[str]:
    """Return a command prefix running a server on the last CPU alone (and keep this process off it).

    On a small machine the load generator, the simulator and the local Slack otherwise compete with
    the server under test for the same cores, and the downstream work Sweep causes (which a bare app
    does not) shows up as Sweep's ack latency.
    """
    cpus = os.cpu_count() or 1
    if not pin or cpus < 2 or shutil.which("taskset") is None:
        return []
    os.sched_setaffinity(0, set(range(cpus - 1)))
    return ["taskset", "-c", str(cpus - 1)]


def cpu_seconds(pid: int) -> float:
    """Return the CPU time a process has used so far (nanosecond precision from schedstat on Linux)."""
    try:
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    """Return the value below which `fraction` of `values` fall (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


@dataclass
class BenchDatabase:
    """The store of one benchmark run: its URL or path, and (PostgreSQL) how to see its server's CPU."""

    backend: str
    target: str | Path
    name: str | None = None
    admin: Any = field(default=None, repr=False)  # an asyncpg connection to the server's own database

    async def server_cpu(self) -> dict[int, float]:
        """Return the CPU time (s) so far of each server process serving this database, by pid.

        Only PostgreSQL's backends connected to this run's database count (the server's shared
        processes, WAL writer and checkpointer, serve every database and are not included). The
        server must run on this machine (its /proc is read); SQLite runs inside the client: {}.
        """
        if self.admin is None:
            return {}
        rows = await self.admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", self.name)
        return {int(row["pid"]): cpu_seconds(int(row["pid"])) for row in rows}


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """Return the CPU time the processes of `after` used since `before` (a new process: all of it)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


@contextlib.asynccontextmanager
async def bench_database(
    backend: str, workdir: Path, *, server: str = POSTGRES_SERVER
) -> AsyncIterator[BenchDatabase]:
    """Yield a fresh store for one run: a SQLite file in `workdir`, or a PostgreSQL database of its own."""
    if backend == "sqlite":
        yield BenchDatabase(backend, workdir / "bench.db")
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}: choose from {', '.join(BACKENDS)}")
    async with postgres_database(server) as database:
        yield database


@contextlib.asynccontextmanager
async def postgres_database(server: str = POSTGRES_SERVER) -> AsyncIterator[BenchDatabase]:
    """Create a database of its own on the PostgreSQL `server`; yield it; drop it (even after a failure)."""
    url = make_url(server)
    name = f"sweep_bench_{uuid.uuid4().hex[:12]}"
    try:
        admin = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    except OSError as error:
        raise RuntimeError(
            f"PostgreSQL is not running at {url.render_as_string(hide_password=True)} ({error})"
        ) from None
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            target = url.set(drivername="postgresql+asyncpg", database=name)
            yield BenchDatabase("postgresql", target.render_as_string(hide_password=False), name, admin)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
