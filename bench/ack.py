"""Ack latency of Sweep against the framework's ceiling (a bare Bolt app that only acks).

Sends signed requests — `/sweep help`, `/sweep list`, a Cancel button click and a create-modal
submission — at 1, 10 and 50 concurrent requests to `sweep-bot serve --http`, then the same load
to a bare Bolt AsyncApp, and prints p50/p99 latency, throughput and Sweep/bare ratios.

    python bench/ack.py [--requests 200] [--concurrency 1 10 50]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._stack import CHANNEL, OPERATOR, SECRET, free_port, percentile, process, sweep_stack  # noqa: E402
from blocks.create_modal import build_create_modal  # noqa: E402
from bot.devslack.driver import DriverResponse, SlackDriver  # noqa: E402
from bot.devslack.modal import fill  # noqa: E402
from bot.ids import ActionId, BlockId  # noqa: E402
from bot.payloads import CancelButtonValue, ModalMetadata, encode  # noqa: E402

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
        "modal submit": lambda d: d.view_submission(view, state),
    }


async def measure(driver: SlackDriver, request: Request, *, total: int, concurrency: int) -> dict[str, float]:
    """Send `total` requests, `concurrency` at a time; return latency percentiles and throughput."""
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(index)

    async def worker() -> None:
        nonlocal failures
        while not queue.empty():
            queue.get_nowait()
            response = await request(driver)
            latencies.append(response.elapsed)
            failures += response.status != 200

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {
        "p50": percentile(latencies, 0.5) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "rps": total / wall,
        "failures": float(failures),
    }


async def main(requests: int, levels: list[int]) -> None:
    """Run the benchmark and print the table."""
    results: dict[tuple[str, str, int], dict[str, float]] = {}
    async with sweep_stack() as stack:
        bare_port = free_port()
        bare_args = [sys.executable, "bench/bare_app.py", str(bare_port), SECRET, stack.slack.api_url]
        async with process(bare_args, dict(os.environ), f"http://127.0.0.1:{bare_port}/slack/events"):
            targets = {"sweep": stack.events_url, "bare": f"http://127.0.0.1:{bare_port}/slack/events"}
            for target, url in targets.items():
                async with SlackDriver(
                    url, SECRET, stack.slack, user_id=OPERATOR, channel_id=CHANNEL, apply_slack_side=False
                ) as driver:
                    for name, request in scenarios().items():
                        await measure(driver, request, total=10, concurrency=2)  # warm-up
                        for level in levels:
                            results[(target, name, level)] = await measure(
                                driver, request, total=requests, concurrency=level
                            )
    print(f"Ack latency, {requests} signed requests per cell (ms; rps = requests per second)")
    header = f"{'request':<14}{'conc':>5} | {'sweep p50':>9} {'p99':>7} {'rps':>6} | "
    header += f"{'bare p50':>8} {'p99':>7} {'rps':>6} | {'p99 ratio':>9}"
    print(header)
    print("-" * len(header))
    for name in scenarios():
        for level in levels:
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
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = _args()
    asyncio.run(main(arguments.requests, arguments.concurrency))
