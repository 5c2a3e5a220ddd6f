"""Ack latency of Sweep against the framework's ceiling (a bare Bolt app that only acks).

Sends signed requests — `/sweep help`, `/sweep list`, a Cancel button click and a create-modal
submission — at 1, 10 and 50 concurrent requests to `sweep-bot serve --http`, then the same load
to a bare Bolt AsyncApp, and prints p50/p99 latency, throughput and Sweep/bare ratios.

    python bench/ack.py [--requests 200] [--concurrency 1 10 50]

Fairness: every request body is built up front in this process (trigger ids and response URLs
registered with the local Slack, one freshly opened modal per submission), then a separate
load-generator process (this script with `--fire`) signs each body at send time, posts it and
times it. The load generator therefore never shares an event loop with the local Slack and the
simulator, which serve Sweep's after-ack work (response_url posts, views.update, Cloudflare
calls): only the servers under test differ. Each cell starts with the same warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._stack import (  # noqa: E402
    CHANNEL,
    OPERATOR,
    ROOT,
    SECRET,
    free_port,
    percentile,
    pinned_to_server_cpu,
    process,
    sweep_stack,
)
from blocks.create_modal import build_create_modal  # noqa: E402
from bot.devslack.driver import FORM, USER_AGENT, DriverResponse, SlackDriver, sign  # noqa: E402
from bot.devslack.modal import fill  # noqa: E402
from bot.devslack.server import RunningFakeSlack  # noqa: E402
from bot.ids import ActionId, BlockId  # noqa: E402
from bot.payloads import CancelButtonValue, ModalMetadata, encode  # noqa: E402

WARMUP = 10
Request = Callable[[SlackDriver], Awaitable[DriverResponse]]
JOB_ID = "00000000-0000-4000-8000-000000000001"


def scenarios() -> dict[str, Request]:
    """Return the four kinds of request measured, each a function of a driver."""
    metadata = encode(ModalMetadata(channel_id=CHANNEL, draft=None, stage="form"))
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


async def fire(url: str, bodies: list[str], concurrency: int) -> dict[str, Any]:
    """Post `bodies` (signed now) `concurrency` at a time; return latencies, statuses and wall time."""
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

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return {"latencies": latencies, "statuses": statuses, "wall": wall}


async def _fire_cell(url: str, warmup: list[str], bodies: list[str], concurrency: int) -> dict[str, Any]:
    await fire(url, warmup, min(concurrency, 2))
    return await fire(url, bodies, concurrency)


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


def _figures(result: dict[str, Any], total: int) -> dict[str, float]:
    latencies = result["latencies"]
    return {
        "p50": percentile(latencies, 0.5) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "rps": total / result["wall"],
        "failures": float(sum(status != 200 for status in result["statuses"])),
    }


async def main(requests: int, levels: list[int], only: list[str] | None = None, pin: bool = False) -> None:
    """Run the benchmark and print the table."""
    results: dict[tuple[str, str, int], dict[str, float]] = {}
    async with sweep_stack(pin=pin) as stack:
        bare_port = free_port()
        bare_args = [
            *pinned_to_server_cpu(pin),
            sys.executable,
            "bench/bare_app.py",
            str(bare_port),
            SECRET,
            stack.slack.api_url,
        ]
        async with process(bare_args, dict(os.environ), f"http://127.0.0.1:{bare_port}/slack/events"):
            targets = {"sweep": stack.events_url, "bare": f"http://127.0.0.1:{bare_port}/slack/events"}
            chosen = {k: v for k, v in scenarios().items() if not only or k in only}
            for name, request in chosen.items():
                for level in levels:
                    for target, url in targets.items():  # interleaved: both see the same conditions
                        bodies = await build_bodies(url, stack.slack, request, WARMUP + requests)
                        cell = {
                            "url": url,
                            "warmup": bodies[:WARMUP],
                            "bodies": bodies[WARMUP:],
                            "level": level,
                        }
                        # The local Slack and simulator keep serving Sweep while the generator runs.
                        result = await asyncio.to_thread(_run_load_generator, cell)
                        results[(target, name, level)] = _figures(result, requests)
                        await asyncio.sleep(0.5)  # let after-ack work of the last requests finish
    print(f"Ack latency, {requests} signed requests per cell (ms; rps = requests per second)")
    header = f"{'request':<14}{'conc':>5} | {'sweep p50':>9} {'p99':>7} {'rps':>6} | "
    header += f"{'bare p50':>8} {'p99':>7} {'rps':>6} | {'p99 ratio':>9}"
    print(header)
    print("-" * len(header))
    for name in scenarios():
        for level in levels:
            if ("sweep", name, level) not in results:
                continue
            sweep, bare = results[("sweep", name, level)], results[("bare", name, level)]
            ratio = sweep["p99"] / bare["p99"] if bare["p99"] else float("nan")
            line = f"{name:<14}{level:>5} | {sweep['p50']:>9.1f} {sweep['p99']:>7.1f} {sweep['rps']:>6.0f} | "
            line += f"{bare['p50']:>8.1f} {bare['p99']:>7.1f} {bare['rps']:>6.0f} | {ratio:>9.2f}"
            if sweep["failures"] or bare["failures"]:
                line += f"  (non-200: sweep {sweep['failures']:.0f}, bare {bare['failures']:.0f})"
            print(line)


def _args(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument(
        "--pin", action="store_true", help="run the server under test alone on the last CPU (taskset)"
    )
    parser.add_argument("--only", nargs="+", help='measure only these requests, e.g. --only "/sweep list"')
    parser.add_argument("--fire", help=argparse.SUPPRESS)  # internal: run one cell's load generator
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = _args()
    if arguments.fire:
        with open(arguments.fire) as spec_file:
            spec = json.load(spec_file)
        figures = asyncio.run(_fire_cell(spec["url"], spec["warmup"], spec["bodies"], spec["level"]))
        print(json.dumps(figures))
    else:
        asyncio.run(main(arguments.requests, arguments.concurrency, arguments.only, arguments.pin))
