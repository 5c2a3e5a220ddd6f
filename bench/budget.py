"""Benchmark the shared Cloudflare budget: what one reservation costs on SQLite and on PostgreSQL.

    .venv/bin/python bench/budget.py [--reservations 500] [--pg postgresql://postgres@127.0.0.1:5432/test]

For each backend (a temporary SQLite file; a temporary database on the PostgreSQL server, dropped
afterwards): wall time and CPU time (this process, threads included) per reservation of one slot, one
after another as a replica's requests take them; per slot when ten are reserved in one statement (what
leasing slots in batches would save); and two replicas (two stores, two engines) reserving at once.
Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.store import SqlStore  # noqa: E402

ACCOUNT = "bench-account"
HUGE = 10**9  # a limit never reached: every reservation is granted (the common case)


@asynccontextmanager
async def postgres(server: str) -> AsyncIterator[str]:
    """Create a database of its own on the server; yield its store URL; drop it."""
    name = f"sweep_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        try:
            yield f"{base}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def sequential(store: SqlStore, n: int, *, count: int = 1) -> tuple[float, float]:
    """Return (wall ms, CPU ms) per reserved slot over `n` statements reserving `count` slots each."""
    budget = store.request_budget
    await budget.reserve_requests(ACCOUNT, limit=HUGE, count=count)  # the row, the connection, the SQL
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        await budget.reserve_requests(ACCOUNT, limit=HUGE, count=count)
    slots = n * count
    return (time.perf_counter() - wall) * 1000 / slots, (time.process_time() - cpu) * 1000 / slots


async def concurrent(url: str, n: int) -> float:
    """Return reservations per second with two replicas reserving at once, `n` in all."""
    async with SqlStore.open(url) as a, SqlStore.open(url) as b:
        for store in (a, b):
            await store.request_budget.reserve_requests(ACCOUNT, limit=HUGE)
        started = time.perf_counter()
        await asyncio.gather(
            *(
                (a if i % 2 else b).request_budget.reserve_requests(ACCOUNT, limit=HUGE, count=1)
                for i in range(n)
            )
        )
        return n / (time.perf_counter() - started)


async def measure(name: str, url: str, n: int) -> None:
    async with SqlStore.open(url) as store:
        wall, cpu = await sequential(store, n)
        batch_wall, batch_cpu = await sequential(store, max(n // 10, 1), count=10)
    rate = await concurrent(url, n)
    print(
        f"{name:<11} one slot: {wall:6.2f} ms wall {cpu:5.2f} ms CPU | ten per statement: "
        f"{batch_wall:5.2f} ms wall {batch_cpu:5.2f} ms CPU per slot | two replicas at once: "
        f"{rate:7.0f} reservations/s"
    )


async def main(reservations: int, pg: str) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        await measure("SQLite", f"sqlite+aiosqlite:///{Path(workdir) / 'sweep.db'}", reservations)
    async with postgres(pg) as url:
        await measure("PostgreSQL", url, reservations)
    print(
        "Sweep spends at most 960 requests per 5 minutes (3.2 a second): the budget's share of a "
        "request's cost is the one-slot figure."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reservations", type=int, default=500)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    asyncio.run(main(args.reservations, args.pg))
