"""Ack latency of Sweep against the framework's ceiling (a bare Bolt app that only acks).

Sends signed requests — `/sweep help`, `/sweep list`, a Cancel button click and a create-modal
submission — at 1, 10 and 50 concurrent requests to `sweep-bot serve --http`, then the same load
to a bare Bolt AsyncApp, and prints p50/p99 latency, throughput and Sweep/bare ratios — for Sweep
on each store backend in the same run (SQLite, and PostgreSQL in a database of its own made on
`--postgres-server` and dropped afterwards), with PostgreSQL/SQLite ratios in the closing note.

    python bench/ack.py [--requests 300] [--rounds 5] [--concurrency 1 10 50] [--only "/sweep list"]
                        [--backends sqlite postgresql] [--postgres-server URL]

Fairness: every request body is built up front in this process (trigger ids and response URLs
registered with the local Slack, one freshly opened modal per submission), then a separate
load-generator process (this script with `--fire`) signs each body at send time, posts it and
times it. The load generator therefore never shares an event loop with the local Slack and the
simulator, which serve Sweep's after-ack work (response_url posts, views.update, Cloudflare
calls): only the servers under test differ.

Two ceilings: the bare app run as Sweep runs (`process_before_response=True`: the answer leaves
when the listener returns), and the same app with Bolt's defaults ("stock"), whose answer waits
for Bolt's next 10 ms poll for ack(). The target is measured against the first, the stricter one.

Each cell runs `--rounds` rounds, alternating Sweep (one process per backend, each with its own
simulator and local Slack) and the bare apps, each round preceded by the same warm-up; latencies
are pooled over the rounds (a p99 over 1,500 samples rather than 300). After each Sweep round
the script waits until Sweep's after-ack work is finished (its /healthz counters) and reports how
long that took, so a fast ack never hides slow follow-through.

On PostgreSQL part of the work moves out of Sweep's process into the server's: `db` is the CPU
time of the server's backends connected to Sweep's database during the burst (from /proc: the
server must run on this machine; its shared WAL writer and checkpointer are not counted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._stack import (  # noqa: E402
    BACKENDS,
    CHANNEL,
    OPERATOR,
    POSTGRES_SERVER,
    ROOT,
    SECRET,
    BenchDatabase,
    Stack,
    cpu_seconds,
    free_port,
    percentile,
    pinned_to_server_cpu,
    postgres_database,
    process,
    sweep_stack,
)
from blocks.create_modal import build_create_modal  # noqa: E402
from bot.devslack.driver import FORM, USER_AGENT, DriverResponse, SlackDriver, sign  # noqa: E402
from bot.devslack.modal import fill  # noqa: E402
from bot.devslack.server import RunningFakeSlack  # noqa: E402
from bot.ids import ActionId, BlockId  # noqa: E402
from bot.payloads import CancelButtonValue, ModalMetadata, encode  # noqa: E402
from bot.store import PreviewState, SqlStore  # noqa: E402

WARMUP = 10
Request = Callable[[SlackDriver], Awaitable[DriverResponse]]
JOB_ID = "00000000-0000-4000-8000-000000000001"
BENCH_FORM_ID = "bench-form-000000000001"


async def open_bench_form(database: str | Path) -> None:
    """Record the create form every modal submission of the benchmark comes from (as `/sweep new` does)."""
    now = datetime.now(UTC)
    async with SqlStore.open(database) as store:
        await store.save_preview(
            BENCH_FORM_ID,
            requester=OPERATOR,
            channel_id=CHANNEL,
            state=PreviewState.FORM,
            expires_at=now + timedelta(days=1),
            now=now,
        )


def scenarios() -> dict[str, Request]:
    """Return the four kinds of request measured, each a function of a driver."""
    # The form's server-side record is made once by `open_bench_form` (as `/sweep new` would).
    metadata = encode(ModalMetadata(preview_id=BENCH_FORM_ID, draft=None, stage="form"))
    view = build_create_modal(metadata=metadata, now=datetime.now(UTC))
    view.update({"id": "V_BENCH", "hash": "1.bench", "type": "modal"})
    state = fill(view, {BlockId.DESTINATION: "JunkEmail", BlockId.SENDER: "bench@example.com"})
    cancel_value = encode(CancelButtonValue(job_id=JOB_ID))
    card = [
        {
            "type": "actions",
            "block_id": "card",
            "elements": [
                {
                    "type": "button",
                    "action_id": ActionId.CANCEL_JOB.value,
                    "text": {"type": "plain_text", "text": "Cancel"},
                    "value": cancel_value,
                }
            ],
        }
    ]
    return {
        "/sweep help": lambda d: d.slash("help"),
        "/sweep list": lambda d: d.slash("list"),
        "button click": lambda d: d.block_action(ActionId.CANCEL_JOB, message_blocks=card),
        "modal submit": lambda d: d.view_submission(_open_modal(d, view), state),
    }


def _open_modal(driver: SlackDriver, view: dict[str, Any]) -> dict[str, Any]:
    """Open the create form in the local Slack (as views.open would) so the bot's views.update lands."""
    payload = {k: v for k, v in view.items() if k not in {"id", "hash"}}
    return dict(driver.fake.push_view(payload, user_id=OPERATOR).view)


async def build_bodies(url: str, slack: RunningFakeSlack, request: Request, count: int) -> list[str]:
    """Return `count` request bodies of one kind, built exactly as the driver sends them (not sent)."""
    captured: list[str] = []

    def capture(http_request: httpx.Request) -> httpx.Response:
        captured.append(http_request.content.decode())
        return httpx.Response(200, text="")

    async with httpx.AsyncClient(transport=httpx.MockTransport(capture)) as http:
        driver = SlackDriver(
            url, SECRET, slack, user_id=OPERATOR, channel_id=CHANNEL, apply_slack_side=False, client=http
        )
        for _ in range(count):
            await request(driver)
    assert len(captured) == count  # noqa: S101 - one POST per request
    return captured


async def fire(
    url: str,
    bodies: list[str],
    concurrency: int,
    server_pid: int | None = None,
    db_pids: list[int] | None = None,
) -> dict[str, Any]:
    """Post `bodies` (signed now) `concurrency` at a time; return latencies, statuses, wall time and
    the server's CPU time (s) when the first request went out and when the last answer came back
    (and the summed CPU time of the database server processes `db_pids`, likewise)."""
    latencies: list[float] = []
    statuses: list[int] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    # aiohttp rather than httpx here: httpcore's pool scans every connection for every queued
    # request, which at 50 concurrent makes the load generator, not the server, the bottleneck.
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def worker() -> None:
            while not queue.empty():
                data = queue.get_nowait().encode()
                headers = {
                    "Content-Type": FORM,
                    "User-Agent": USER_AGENT,
                    **sign(SECRET, data, int(time.time())),
                }
                started = time.perf_counter()
                async with http.post(url, data=data, headers=headers) as response:
                    await response.read()
                latencies.append(time.perf_counter() - started)
                statuses.append(response.status)

        cpu_start = cpu_seconds(server_pid) if server_pid else float("nan")
        db_start = {pid: cpu_seconds(pid) for pid in db_pids or []}
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        cpu_end = cpu_seconds(server_pid) if server_pid else float("nan")
        db_end = {pid: cpu_seconds(pid) for pid in db_pids or []}
    return {
        "latencies": latencies,
        "statuses": statuses,
        "wall": wall,
        "server_cpu_start": cpu_start,
        "server_cpu_end": cpu_end,
        "db_cpu_start": sum(db_start.values()),
        "db_cpu_end": sum(db_end.values()),
    }


async def _fire_cell(cell: dict[str, Any]) -> dict[str, Any]:
    await fire(cell["url"], cell["warmup"], min(cell["level"], 2))
    return await fire(cell["url"], cell["bodies"], cell["level"], cell["server_pid"], cell.get("db_pids"))


def _run_load_generator(cell: dict[str, Any]) -> dict[str, Any]:
    """Run one cell in a separate load-generator process; return its figures."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as spec:
        json.dump(cell, spec)
    try:
        done = subprocess.run(  # noqa: S603 - our own script
            [sys.executable, __file__, "--fire", spec.name],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
    finally:
        os.unlink(spec.name)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def _figures(rounds: list[dict[str, Any]]) -> dict[str, float]:
    """Pool the latencies of every round of a cell; throughput is requests over summed wall time."""
    latencies = [latency for result in rounds for latency in result["latencies"]]
    statuses = [status for result in rounds for status in result["statuses"]]
    return {
        "p50": percentile(latencies, 0.5) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "rps": len(latencies) / sum(result["wall"] for result in rounds),
        "failures": float(sum(status != 200 for status in statuses)),
        "cpu_us": sum(r["server_cpu_end"] - r["server_cpu_start"] for r in rounds) / len(latencies) * 1e6,
        "db_us": sum(r.get("db_cpu", float("nan")) for r in rounds) / len(latencies) * 1e6,
    }


async def follow_up_counters(http: httpx.AsyncClient, health_url: str) -> dict[str, Any]:
    """Return Sweep's follow-up counters from /healthz."""
    counters: dict[str, Any] = (await http.get(health_url)).json()["follow_ups"]
    return counters


async def wait_for_follow_ups(
    http: httpx.AsyncClient, health_url: str, before: dict[str, Any], timeout: float = 120.0
) -> dict[str, float]:
    """Wait until Sweep has no follow-up waiting or running; return how long that took and the counts."""
    started = time.perf_counter()
    while True:
        counters = await follow_up_counters(http, health_url)
        if counters["waiting"] == 0 and counters["running"] == 0:
            break
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"follow-ups still busy after {timeout} s: {counters}")
        await asyncio.sleep(0.01)
    return {
        "drain": time.perf_counter() - started,
        "done": counters["done"] - before["done"],
        "failed": counters["failed"] - before["failed"],
    }


async def main(
    requests: int,
    levels: list[int],
    rounds: int = 5,
    only: list[str] | None = None,
    pin: bool = False,
    backends: tuple[str, ...] | list[str] = BACKENDS,
    postgres_server: str = POSTGRES_SERVER,
) -> None:
    """Run the benchmark (Sweep once per backend) and print the tables."""
    samples: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    follow_ups: dict[tuple[str, str, int], list[dict[str, float]]] = {}
    async with contextlib.AsyncExitStack() as running:
        health = await running.enter_async_context(httpx.AsyncClient())
        stacks: dict[str, Stack] = {}
        databases: dict[str, BenchDatabase] = {}
        # SWEEP_BENCH_PROFILE (see bench/_stack.py) names one file per Sweep process: <file>.<backend>.
        profile = os.environ.get("SWEEP_BENCH_PROFILE") if len(backends) > 1 else None
        for backend in backends:
            url = None
            if backend == "postgresql":  # a database of its own, dropped after Sweep stops
                databases[backend] = await running.enter_async_context(postgres_database(postgres_server))
                url = str(databases[backend].target)
            profile_to = f"{profile}.{backend}" if profile else None
            stacks[backend] = await running.enter_async_context(
                sweep_stack(pin=pin, database_url=url, profile_to=profile_to)
            )
            await open_bench_form(stacks[backend].database)
        # The bare apps' bodies are built with the first stack's local Slack (they never call it).
        stack = next(iter(stacks.values()))
        bare_port, stock_port = free_port(), free_port()
        bare_args = [*pinned_to_server_cpu(pin), sys.executable, "bench/bare_app.py"]
        bare_args += [str(bare_port), SECRET, stack.slack.api_url]
        stock_args = [*bare_args[:-3], str(stock_port), SECRET, stack.slack.api_url, "--stock"]
        bare_url = f"http://127.0.0.1:{bare_port}/slack/events"
        stock_url = f"http://127.0.0.1:{stock_port}/slack/events"
        async with (
            process(bare_args, dict(os.environ), bare_url) as bare,
            process(stock_args, dict(os.environ), stock_url) as stock,
        ):
            # Sweep's targets are named by backend; each has its own local Slack and /healthz.
            targets = {backend: sweep.events_url for backend, sweep in stacks.items()}
            targets |= {"bare": bare_url, "stock": stock_url}
            pids = {backend: sweep.bot.pid for backend, sweep in stacks.items()}
            pids |= {"bare": bare.pid, "stock": stock.pid}
            chosen = {k: v for k, v in scenarios().items() if not only or k in only}
            for name, request in chosen.items():
                for level in levels:
                    for _ in range(rounds):
                        for target, url in targets.items():  # interleaved: all see the same conditions
                            sweep = stacks.get(target)
                            slack = (sweep or stack).slack
                            bodies = await build_bodies(url, slack, request, WARMUP + requests)
                            database = databases.get(target)
                            db_before = await database.server_cpu() if database else {}
                            cell = {
                                "url": url,
                                "warmup": bodies[:WARMUP],
                                "bodies": bodies[WARMUP:],
                                "level": level,
                                "server_pid": pids[target],
                                "db_pids": list(db_before),
                            }
                            if sweep is not None:
                                before = await follow_up_counters(health, sweep.health_url)
                            # The local Slack and simulator keep serving Sweep while the generator runs.
                            result = await asyncio.to_thread(_run_load_generator, cell)
                            if database is not None:
                                result["db_cpu"] = await _db_cpu(database, db_before, result)
                            samples.setdefault((target, name, level), []).append(result)
                            if sweep is not None:
                                # Each round starts with no after-ack work left over from the last one.
                                drained = await wait_for_follow_ups(health, sweep.health_url, before)
                                drained["cpu"] = cpu_seconds(pids[target]) - result["server_cpu_end"]
                                follow_ups.setdefault((target, name, level), []).append(drained)
    _print_tables(requests, rounds, levels, samples, follow_ups, list(stacks))


async def _db_cpu(database: BenchDatabase, before: dict[int, float], result: dict[str, Any]) -> float:
    """Return the database server's CPU time during a cell's burst: its backends' from the load
    generator's readings, plus all of any backend the pool opened meanwhile (a slight overcount)."""
    born = sum(cpu for pid, cpu in (await database.server_cpu()).items() if pid not in before)
    return float(result["db_cpu_end"] - result["db_cpu_start"] + born)


def _print_tables(
    requests: int,
    rounds: int,
    levels: list[int],
    samples: dict[tuple[str, str, int], list[dict[str, Any]]],
    follow_ups: dict[tuple[str, str, int], list[dict[str, float]]],
    backends: list[str],
) -> None:
    print(
        f"Ack latency: {rounds} rounds of {requests} signed requests per cell, pooled (ms; rps = requests\n"
        "per second; cpu = the server's CPU time per request during the burst, in microseconds).\n"
        "bare = a Bolt app that only acks, run as Sweep is (process_before_response); ratio = Sweep\n"
        "p99 / bare p99. stock = the same app with Bolt's defaults (its answer waits for a 10 ms ack poll)."
    )
    for backend in backends:
        _print_backend(backend, levels, samples)
    print()
    print("Sweep's after-ack work (follow-ups), every round's warm-up included: how many finished, how")
    print("many reported a failure to the user, the slowest round's time from its last ack to its last")
    print("follow-up, and Sweep's CPU time per follow-up after the burst (microseconds)")
    header = f"{'request':<14}{'conc':>5} {'backend':<11}| {'done':>6} {'failed':>6} "
    print(header + f"{'finished after s':>17} {'cpu':>6}")
    for (backend, name, level), drains in follow_ups.items():
        done = sum(d["done"] for d in drains)
        failed = sum(d["failed"] for d in drains)
        slowest = max(d["drain"] for d in drains)
        cpu = sum(d["cpu"] for d in drains) / done * 1e6 if done else 0.0
        print(f"{name:<14}{level:>5} {backend:<11}| {done:>6.0f} {failed:>6.0f} {slowest:>17.2f} {cpu:>6.0f}")
    if "sqlite" in backends and "postgresql" in backends:
        _print_comparison(levels, samples)


def _print_backend(
    backend: str, levels: list[int], samples: dict[tuple[str, str, int], list[dict[str, Any]]]
) -> None:
    """Print Sweep on one backend against the bare apps."""
    print(f"\nSweep on {backend}")
    header = f"{'request':<14}{'conc':>5} | {'sweep p50':>9} {'p99':>7} {'rps':>6} {'cpu':>5} | "
    header += (
        f"{'bare p50':>8} {'p99':>7} {'rps':>6} {'cpu':>5} | {'ratio':>5} | {'stock p99':>9} {'ratio':>5}"
    )
    print(header)
    print("-" * len(header))
    for name in scenarios():
        for level in levels:
            if (backend, name, level) not in samples:
                continue
            sweep, bare = _figures(samples[(backend, name, level)]), _figures(samples[("bare", name, level)])
            stock = _figures(samples[("stock", name, level)])
            ratio = sweep["p99"] / bare["p99"] if bare["p99"] else float("nan")
            stock_ratio = sweep["p99"] / stock["p99"] if stock["p99"] else float("nan")
            line = f"{name:<14}{level:>5} | {sweep['p50']:>9.1f} {sweep['p99']:>7.1f} {sweep['rps']:>6.0f} "
            line += f"{sweep['cpu_us']:>5.0f} | {bare['p50']:>8.1f} {bare['p99']:>7.1f} {bare['rps']:>6.0f} "
            line += f"{bare['cpu_us']:>5.0f} | {ratio:>5.2f} | {stock['p99']:>9.1f} {stock_ratio:>5.2f}"
            failures = {k: v["failures"] for k, v in {"sweep": sweep, "bare": bare, "stock": stock}.items()}
            if any(failures.values()):
                line += "  (non-200: " + ", ".join(f"{k} {v:.0f}" for k, v in failures.items()) + ")"
            print(line)


def _print_comparison(levels: list[int], samples: dict[tuple[str, str, int], list[dict[str, Any]]]) -> None:
    """The closing note: Sweep on PostgreSQL beside Sweep on SQLite, and each against the bare app."""
    print()
    print("PostgreSQL beside SQLite (ms; PG/SQLite = PostgreSQL's figure / SQLite's; /bare = p99 / bare")
    print("p99; cpu = Sweep's CPU per request (us), db = PostgreSQL's backends' CPU per request (us),")
    print("both during the burst: on SQLite the database's work is inside Sweep's cpu)")
    header = f"{'request':<14}{'conc':>5} | {'sqlite p50':>10} {'p99':>6} {'cpu':>5} | "
    header += (
        f"{'pg p50':>6} {'p99':>6} {'cpu':>5} {'db':>5} | {'PG/SQLite p50':>13} {'p99':>5} {'rps':>5} | "
    )
    header += f"{'sqlite/bare':>11} {'pg/bare':>7}"
    print(header)
    print("-" * len(header))
    for name in scenarios():
        for level in levels:
            if ("sqlite", name, level) not in samples or ("postgresql", name, level) not in samples:
                continue
            lite, pg = (
                _figures(samples[("sqlite", name, level)]),
                _figures(samples[("postgresql", name, level)]),
            )
            bare = _figures(samples[("bare", name, level)])
            line = (
                f"{name:<14}{level:>5} | {lite['p50']:>10.1f} {lite['p99']:>6.1f} {lite['cpu_us']:>5.0f} | "
            )
            line += f"{pg['p50']:>6.1f} {pg['p99']:>6.1f} {pg['cpu_us']:>5.0f} {pg['db_us']:>5.0f} | "
            line += f"{_ratio(pg['p50'], lite['p50']):>13.2f} {_ratio(pg['p99'], lite['p99']):>5.2f} "
            line += f"{_ratio(pg['rps'], lite['rps']):>5.2f} | "
            line += f"{_ratio(lite['p99'], bare['p99']):>11.2f} {_ratio(pg['p99'], bare['p99']):>7.2f}"
            print(line)


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("nan")


def _args(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300, help="requests per round of a cell")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per cell (latencies are pooled)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument(
        "--pin", action="store_true", help="run the server under test alone on the last CPU (taskset)"
    )
    parser.add_argument("--only", nargs="+", help='measure only these requests, e.g. --only "/sweep list"')
    parser.add_argument(
        "--backends",
        nargs="+",
        choices=BACKENDS,
        default=list(BACKENDS),
        help="Sweep's store, one process each",
    )
    parser.add_argument(
        "--postgres-server",
        default=POSTGRES_SERVER,
        help="PostgreSQL server to make the run's database on (default %(default)s)",
    )
    parser.add_argument("--fire", help=argparse.SUPPRESS)  # internal: run one cell's load generator
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = _args()
    if arguments.fire:
        with open(arguments.fire) as spec_file:
            spec = json.load(spec_file)
        figures = asyncio.run(_fire_cell(spec))
        print(json.dumps(figures))
    else:
        asyncio.run(
            main(
                arguments.requests,
                arguments.concurrency,
                arguments.rounds,
                arguments.only,
                arguments.pin,
                arguments.backends,
                arguments.postgres_server,
            )
        )
