"""Benchmark the tracker's polling cycle against the simulator: API calls, wall, CPU, peak RSS.

    .venv/bin/python bench/poll.py [--jobs 1000 10000] [--cycles 5] [--finish 0.03]
                                   [--backends sqlite postgresql] [--postgres-server URL]

Each run (one job count on one backend) is a process of its own (this script with `--one`), so
its peak RSS is its own, and starts a fresh simulator as a subprocess (`python -m bot.simulator`):
the CPU time and RSS printed are the tracker's process only (the tracker, its Cloudflare client
and, on SQLite, the database engine, which runs inside it). A run seeds N held active jobs (spread
over PENDING, DISCOVERING and PROCESSING), tracks them in a fresh store — a SQLite file in a
temporary directory, or a PostgreSQL database of its own made on `--postgres-server` and dropped
afterwards — then runs cycles, letting a few percent finish between cycles (the same draws on
every backend).

On PostgreSQL the database works in server processes: `db cpu` is the CPU time of the server's
backends connected to the run's database (read from /proc: the server must run on this machine;
its shared WAL writer and checkpointer are not counted), and `total` is tracker + backends.

Targets: calls/cycle ≤ 3 × ⌈active/1000⌉ + finished; at 10,000 jobs ≤ 1 s CPU per cycle (on
PostgreSQL too, the server's share included) and ≤ 150 MB peak RSS. The closing note puts the
backends side by side (PostgreSQL / SQLite). Figures are printed, never asserted.

SWEEP_BENCH_PROFILE=<prefix>: profile the cycles (not the seeding) with cProfile, one file per run
(`<prefix>.<backend>.<jobs>`, timed in CPU seconds); the profiler then inflates the CPU figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import math
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

from bench._stack import BACKENDS, POSTGRES_SERVER, BenchDatabase, bench_database, cpu_delta  # noqa: E402
from bot.cloudflare.client import CloudflareClient, Credentials, RetryPolicy  # noqa: E402
from bot.models import Overshoot  # noqa: E402
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


async def _finish(control: httpx.AsyncClient, job_ids: list[str], draws: random.Random) -> None:
    for job_id in job_ids:
        response = await control.post(f"/__sim/jobs/{job_id}/status", json={"status": draws.choice(TERMINAL)})
        response.raise_for_status()


async def run(
    count: int,
    cycles: int,
    finish: float,
    base: str,
    backend: str = "sqlite",
    *,
    seed: int = 1,
    server: str = POSTGRES_SERVER,
) -> list[dict[str, float]]:
    """Seed, track and poll `count` jobs on `backend`; return one row of figures per cycle."""
    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as tmp:
        async with bench_database(backend, Path(tmp), server=server) as database:
            return await _run(count, cycles, finish, base, database, random.Random(seed))


async def _run(
    count: int, cycles: int, finish: float, base: str, database: BenchDatabase, draws: random.Random
) -> list[dict[str, float]]:
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
        async with SqlStore.open(database.target) as store:
            now = datetime.now(UTC)
            async for job in _iter_all(client):
                await store.track_existing(
                    job, account_id=ACCOUNT, requester="UBENCH", channel_id="CBENCH", now=now
                )
            # As `sweep-bot serve` runs it: each cycle also asks the store for jobs past their agreed
            # maximum (none here: these jobs were not created from a preview, so none is acted on).
            tracker = Tracker(store, client, poll_seconds=10, on_overshoot=_act_on_overshoots)
            profile_to = os.environ.get("SWEEP_BENCH_PROFILE")
            profiler = cProfile.Profile(time.process_time) if profile_to else None  # CPU time
            active = list(ids)
            for cycle in range(cycles):
                finished_now: list[str] = []
                if cycle > 0:
                    finished_now = draws.sample(active, max(int(len(active) * finish), 1))
                    await _finish(control, finished_now, draws)
                    done = set(finished_now)
                    active = [job_id for job_id in active if job_id not in done]
                server_before = await database.server_cpu()
                wall, cpu = time.perf_counter(), time.process_time()
                if profiler is not None:
                    profiler.enable()
                report = await tracker.tick()
                if profiler is not None:
                    profiler.disable()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                db_cpu = cpu_delta(server_before, await database.server_cpu())
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
                        "db_cpu": db_cpu if database.admin is not None else float("nan"),
                        "rss": _rss_mb(),
                    }
                )
            if profiler is not None:
                profiler.dump_stats(f"{profile_to}.{database.backend}.{count}")
    return rows


async def _act_on_overshoots(overshoots: list[Overshoot]) -> None:
    """Stand in for the guard (`bot.guard.OvershootGuard`, which would cancel them): never called here."""


async def _iter_all(client: CloudflareClient) -> Any:
    for status in ACTIVE:
        async for job in client.iter_jobs(status=status, per_page=1000):
            yield job


def _total(row: dict[str, float]) -> float:
    """Return the tracker's CPU time plus the database server's (the tracker's alone on SQLite)."""
    return row["cpu"] + (0.0 if math.isnan(row["db_cpu"]) else row["db_cpu"])  # NaN: no server


def _print(count: int, rows: list[dict[str, float]], backend: str = "sqlite") -> None:
    print(f"\n{count} tracked jobs on {backend}")
    header = f"{'cycle':>5} {'active':>7} {'done':>5} {'calls':>5} {'budget':>6} {'trans':>6} {'err':>4} "
    print(header + f"{'wall s':>8} {'cpu s':>8} {'db cpu s':>9} {'total s':>8} {'peak RSS MB':>12}")
    for row in rows:
        db_cpu = "-" if math.isnan(row["db_cpu"]) else f"{row['db_cpu']:.3f}"
        print(
            f"{row['cycle']:>5.0f} {row['active']:>7.0f} {row['finished']:>5.0f} {row['calls']:>5.0f} "
            f"{row['budget']:>6.0f} {row['transitions']:>6.0f} {row['errors']:>4.0f} "
            f"{row['wall']:>8.3f} {row['cpu']:>8.3f} {db_cpu:>9} {_total(row):>8.3f} {row['rss']:>12.1f}"
        )
    over = [row for row in rows if row["calls"] > row["budget"]]
    print(
        f"calls within budget: {'yes' if not over else f'NO ({len(over)} cycles over)'}; "
        f"max CPU {max(r['cpu'] for r in rows):.3f} s (with the database server's "
        f"{max(_total(r) for r in rows):.3f} s); peak RSS {max(r['rss'] for r in rows):.1f} MB"
    )


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """Return a run's figures per cycle: mean and max CPU (tracker, server, both), mean wall, peak RSS."""
    n = len(rows)
    return {
        "cpu": sum(r["cpu"] for r in rows) / n,
        "cpu_max": max(r["cpu"] for r in rows),
        "db_cpu": sum(r["db_cpu"] for r in rows) / n,
        "total": sum(_total(r) for r in rows) / n,
        "total_max": max(_total(r) for r in rows),
        "wall": sum(r["wall"] for r in rows) / n,
        "wall_max": max(r["wall"] for r in rows),
        "rss": max(r["rss"] for r in rows),
        "errors": sum(r["errors"] for r in rows),
        "over_budget": sum(r["calls"] > r["budget"] for r in rows),
    }


def _print_comparison(results: dict[tuple[int, str], list[dict[str, float]]]) -> None:
    """The closing note: each job count's backends side by side, and PostgreSQL / SQLite."""
    print("\nBackends side by side, per cycle (mean over the cycles, max in brackets; s, MB). cpu = the")
    print("tracker's process (on SQLite the database engine runs inside it); db = PostgreSQL's backends")
    print("for the run's database; total = cpu + db; ratio = PostgreSQL / SQLite.")
    header = f"{'jobs':>6} {'backend':<11}| {'cpu':>14} {'db':>6} {'total':>14} | {'wall':>14} | {'RSS':>6}"
    print(header)
    print("-" * len(header))
    for count in sorted({count for count, _ in results}):
        figures = {b: summarise(rows) for (c, b), rows in results.items() if c == count}
        for backend, f in figures.items():
            db = "-" if math.isnan(f["db_cpu"]) else f"{f['db_cpu']:.3f}"
            print(
                f"{count:>6} {backend:<11}| {f['cpu']:>6.3f} ({f['cpu_max']:.3f}) {db:>6} "
                f"{f['total']:>6.3f} ({f['total_max']:.3f}) | {f['wall']:>6.3f} ({f['wall_max']:.3f}) | "
                f"{f['rss']:>6.1f}"
            )
        if "sqlite" in figures and "postgresql" in figures:
            pg, lite = figures["postgresql"], figures["sqlite"]
            print(
                f"{count:>6} {'PG/SQLite':<11}| {pg['cpu'] / lite['cpu']:>14.2f} {'':>6} "
                f"{pg['total'] / lite['total']:>14.2f} | {pg['wall'] / lite['wall']:>14.2f} | "
                f"{pg['rss'] / lite['rss']:>6.2f}"
            )
    for (count, backend), rows in sorted(results.items()):
        if count < 10_000:
            continue
        f = summarise(rows)
        verdict = "met" if f["total_max"] <= 1.0 else "MISSED"
        print(
            f"target at {count} jobs on {backend}: ≤ 1 s CPU per cycle — {verdict} (worst cycle "
            f"{f['total_max']:.3f} s, tracker {f['cpu_max']:.3f} s); ≤ 150 MB RSS — "
            f"{'met' if f['rss'] <= 150 else 'MISSED'} ({f['rss']:.1f} MB)"
        )


def _one(spec: dict[str, Any]) -> list[dict[str, float]]:
    """Run one job count on one backend (in this process) with a simulator of its own."""
    args = (spec["count"], spec["cycles"], spec["finish"])
    options = {"backend": spec["backend"], "seed": spec["seed"], "server": spec["server"]}
    if spec["simulator_url"]:
        return asyncio.run(run(*args, spec["simulator_url"].rstrip("/"), **options))
    with simulator() as base:  # a fresh simulator per run: no state carries over
        return asyncio.run(run(*args, base, **options))


def _in_child(spec: dict[str, Any]) -> list[dict[str, float]]:
    """Run `_one` in a process of its own (its peak RSS is then this run's alone)."""
    done = subprocess.run(
        [sys.executable, __file__, "--one", json.dumps(spec)], cwd=ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {spec['backend']} run of {spec['count']} jobs failed:\n{done.stderr}")
    rows: list[dict[str, float]] = json.loads(done.stdout)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table per job count and backend, then the backends side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument(
        "--finish", type=float, default=0.03, help="fraction of active jobs finishing per cycle"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument(
        "--postgres-server",
        default=POSTGRES_SERVER,
        help="PostgreSQL server to make each run's database on (default %(default)s)",
    )
    parser.add_argument(
        "--simulator-url", help="use a simulator already running here instead of starting one"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one run, figures as JSON
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(_one(json.loads(args.one))))
        return 0
    results: dict[tuple[int, str], list[dict[str, float]]] = {}
    for count in args.jobs:
        for backend in args.backends:
            spec = {
                "count": count,
                "cycles": args.cycles,
                "finish": args.finish,
                "backend": backend,
                "seed": args.seed,
                "server": args.postgres_server,
                "simulator_url": args.simulator_url,
            }
            results[(count, backend)] = _in_child(spec)
            _print(count, results[(count, backend)], backend)
    _print_comparison(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
