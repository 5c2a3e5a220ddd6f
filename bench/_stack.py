"""Shared by the benchmarks: start the simulator, the local Slack and bot processes on loopback."""

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
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.simulator.app import SimulatorConfig, running_simulator

SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-bench"
CF_TOKEN = "bench-cloudflare-token"
ACCOUNT = "be0c0000000000000000000000000001"
OPERATOR = "U0OPERATOR"
CHANNEL = "C0INCIDENT"
ROOT = Path(__file__).resolve().parent.parent


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
    """Run a child process until the block ends."""
    log = tempfile.NamedTemporaryFile(prefix="sweep-bench-", suffix=".log", delete=False)  # noqa: SIM115
    child = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        await wait_healthy(health_url, child)
        yield child
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
        log.close()


@dataclass
class Stack:
    """The simulator and local Slack (in this process) and Sweep (a child process)."""

    sim: Any
    slack: RunningFakeSlack
    events_url: str
    bot: subprocess.Popen[bytes]
    database: Path

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
) -> AsyncIterator[Stack]:
    """Start everything Sweep needs, on loopback, and Sweep itself in HTTP mode."""
    workdir = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
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
            SWEEP_DATABASE=str(workdir / "sweep.db"),
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
                database=workdir / "sweep.db",
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
