"""Benchmark the tracker's polling cycle against the simulator: API calls, wall, CPU, peak RSS.

    .venv/bin/python bench/poll.py [--jobs 1000 10000] [--cycles 5] [--finish 0.03]

The simulator runs as a subprocess (`python -m bot.simulator`), so the CPU time and RSS printed
are the tracker's process only. Each run seeds N held active jobs (spread over PENDING,
DISCOVERING and PROCESSING), tracks them in a temporary SQLite store, then runs cycles, letting a
few percent finish between cycles. Targets: calls/cycle ≤ 3 × ⌈active/1000⌉ + finished; at
10,000 jobs ≤ 1 s CPU per cycle and ≤ 150 MB peak RSS. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.cloudflare.client import CloudflareClient, Credentials, RetryPolicy  # noqa: E402
from bot.store import SqlStore  # noqa: E402
from bot.tracker import Tracker, calls_budget  # noqa: E402

ACCOUNT = "bench-account"
TOKEN = "test-token"
ACTIVE = ("PENDING", "DISCOVERING", "PROCESSING")
TERMINAL = ("COMPLETED", "COMPLETED", "COMPLETED", "FAILED", "CANCELLED")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def simulator() -> Iterator[str]:
    """Run the simulator in a subprocess; yield its base URL."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.simulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--token",
            TOKEN,
            "--job-seconds",
            "3600",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"simulator exited: {process.stderr.read().decode() if process.stderr else ''}"
                )
            try:
                httpx.get(f"{base}/__sim/stats", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("simulator did not start") from None
                time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _seed(control: httpx.AsyncClient, count: int) -> list[str]:
    """Seed `count` held active jobs spread over the three active statuses; return their ids."""
    ids: list[str] = []
    for index, status in enumerate(ACTIVE):
        share = count // 3 + (1 if index < count % 3 else 0)
        response = await control.post(
            "/__sim/seed-jobs", json={"account_id": ACCOUNT, "count": share, "status": status, "hold": True}
        )
        response.raise_for_status()
        body: Any = response.json()
        ids.extend(body["job_ids"])
    return ids


async def _finish(control: httpx.AsyncClient, job_ids: list[str]) -> None:
    for job_id in job_ids:
        response = await control.post(
            f"/__sim/jobs/{job_id}/status", json={"status": random.choice(TERMINAL)}
        )
        response.raise_for_status()


async def run(count: int, cycles: int, finish: float, base: str) -> list[dict[str, float]]:
    """Seed, track and poll `count` jobs; return one row of figures per cycle."""
    rows: list[dict[str, float]] = []
    async with (
        httpx.AsyncClient(base_url=base, timeout=60) as control,
        httpx.AsyncClient(timeout=60) as http,
    ):
        ids = await _seed(control, count)
        client = CloudflareClient(
            http,
            account_id=ACCOUNT,
            credentials=Credentials(api_token=SecretStr(TOKEN)),
            base_url=f"{base}/client/v4",
            retry=RetryPolicy(max_attempts=2, base_delay=0.05),
        )
        with tempfile.TemporaryDirectory() as tmp:
            async with SqlStore.open(Path(tmp) / "bench.db") as store:
                now = datetime.now(UTC)
                async for job in _iter_all(client):
                    await store.track_existing(
                        job, account_id=ACCOUNT, requester="UBENCH", channel_id="CBENCH", now=now
                    )
                tracker = Tracker(store, client, poll_seconds=10)
                active = list(ids)
                for cycle in range(cycles):
                    finished_now: list[str] = []
                    if cycle > 0:
                        finished_now = random.sample(active, max(int(len(active) * finish), 1))
                        await _finish(control, finished_now)
                        done = set(finished_now)
                        active = [job_id for job_id in active if job_id not in done]
                    wall, cpu = time.perf_counter(), time.process_time()
                    report = await tracker.tick()
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    rows.append(
                        {
                            "cycle": cycle + 1,
                            "active": report.active,
                            "finished": len(finished_now),
                            "calls": report.api_calls,
                            "budget": calls_budget(report.active, len(finished_now)),
                            "transitions": len(report.transitions),
                            "errors": len(report.errors),
                            "wall": wall,
                            "cpu": cpu,
                            "rss": _rss_mb(),
                        }
                    )
    return rows


async def _iter_all(client: CloudflareClient) -> Any:
    for status in ACTIVE:
        async for job in client.iter_jobs(status=status, per_page=1000):
            yield job


def _print(count: int, rows: list[dict[str, float]]) -> None:
    print(f"\n{count} tracked jobs")
    header = f"{'cycle':>5} {'active':>7} {'done':>5} {'calls':>5} {'budget':>6} {'trans':>6} {'err':>4} "
    print(header + f"{'wall s':>8} {'cpu s':>8} {'peak RSS MB':>12}")
    for row in rows:
        print(
            f"{row['cycle']:>5.0f} {row['active']:>7.0f} {row['finished']:>5.0f} {row['calls']:>5.0f} "
            f"{row['budget']:>6.0f} {row['transitions']:>6.0f} {row['errors']:>4.0f} "
            f"{row['wall']:>8.3f} {row['cpu']:>8.3f} {row['rss']:>12.1f}"
        )
    over = [row for row in rows if row["calls"] > row["budget"]]
    print(
        f"calls within budget: {'yes' if not over else f'NO ({len(over)} cycles over)'}; "
        f"max CPU {max(r['cpu'] for r in rows):.3f} s; peak RSS {max(r['rss'] for r in rows):.1f} MB"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table per job count."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument(
        "--finish", type=float, default=0.03, help="fraction of active jobs finishing per cycle"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--simulator-url", help="use a simulator already running here instead of starting one"
    )
    args = parser.parse_args(argv)
    random.seed(args.seed)
    for count in args.jobs:
        if args.simulator_url:
            _print(count, asyncio.run(run(count, args.cycles, args.finish, args.simulator_url.rstrip("/"))))
            continue
        with simulator() as base:  # a fresh simulator per size: no state carries over
            _print(count, asyncio.run(run(count, args.cycles, args.finish, base)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
