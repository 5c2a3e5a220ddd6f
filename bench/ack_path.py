"""CPU time of one ack, in one process: Sweep's `/slack/events` handler against the bare Bolt app's.

    python bench/ack_path.py [--requests 200] [--rounds 5] [--only "/sweep list"] [--profile FILE]

`bench/ack.py` measures latency over real HTTP, which on a shared machine moves with everything else
that runs. This measures what the server spends on each request, without the network: both handlers
are fed the same signed requests (`bench/ack.py`'s four kinds, through aiohttp's mocked requests) in
one process, alternating round by round after one uncounted warm-up round, and the process CPU time
per request is printed (median of the rounds) with the Sweep/bare ratio. Sweep runs fully wired
(store, local Slack, simulator); its after-ack work runs between rounds, never inside one.
`--profile` writes a cProfile of Sweep's rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from unittest import mock

from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._stack import ACCOUNT, BOT_TOKEN, CF_TOKEN, OPERATOR, SECRET  # noqa: E402
from bench.ack import build_bodies, open_bench_form, scenarios  # noqa: E402
from bench.bare_app import build_bare_app  # noqa: E402
from bot.devslack.driver import FORM, USER_AGENT, sign  # noqa: E402
from bot.devslack.server import running_fake_slack  # noqa: E402
from bot.simulator.app import SimulatorConfig, running_simulator  # noqa: E402

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def post_handler(application: web.Application) -> Handler:
    """Return the handler of the application's one POST route (`/slack/events`)."""
    for route in application.router.routes():
        if route.method == "POST":
            handler: Handler = route.handler  # type: ignore[assignment]
            return handler
    raise RuntimeError("no POST route")


def mocked_request(body: bytes) -> web.Request:
    """Return a signed POST of `body` as aiohttp hands it to a handler (the body already received)."""
    headers = {"Content-Type": FORM, "User-Agent": USER_AGENT, **sign(SECRET, body, int(time.time()))}
    stream = StreamReader(mock.Mock(), 2**16, loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    return make_mocked_request("POST", "/slack/events", headers=headers, payload=stream)


async def one_round(handler: Handler, bodies: list[bytes], profiler: cProfile.Profile | None) -> float:
    """Answer every body once; return the CPU time per request in microseconds."""
    requests = [mocked_request(body) for body in bodies]
    gc.collect()
    if profiler is not None:
        profiler.enable()
    started = time.process_time()
    for request in requests:
        response = await handler(request)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")
    spent = time.process_time() - started
    if profiler is not None:
        profiler.disable()
    return spent / len(requests) * 1e6


async def main(requests: int, rounds: int, only: list[str] | None, profile_to: str | None) -> None:
    """Run the rounds and print a line per kind of request."""
    workdir = Path(tempfile.mkdtemp(prefix="sweep-bench-"))
    config = SimulatorConfig(token=CF_TOKEN, job_seconds=30.0, seed=3)
    async with (
        running_simulator(config, host="127.0.0.1", port=0) as sim,
        running_fake_slack(bot_token=BOT_TOKEN, trigger_ttl=600.0, validate_blocks=False) as slack,
    ):
        env = {
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.api_url,
            "CLOUDFLARE_API_TOKEN": CF_TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
            "CLOUDFLARE_BASE_URL": sim.base_url,
            "SWEEP_DATABASE": str(workdir / "sweep.db"),
            "SWEEP_POLL_SECONDS": "3600",
            "SWEEP_OPERATORS": OPERATOR,
            "SWEEP_READS_PER_USER": "100000",
            "SWEEP_WRITES_PER_USER": "100000",
            "SWEEP_READS_TOTAL": "1000000",
            "SWEEP_WRITES_TOTAL": "1000000",
        }
        from bot.app import http_application, open_runtime
        from bot.config import load_settings
        from bot.logs import configure_logging

        configure_logging("WARNING", "text")
        settings = load_settings({**os.environ, **env}, socket_mode=False)
        await open_bench_form(workdir / "sweep.db")
        async with open_runtime(settings.settings, settings.cloudflare) as runtime:
            targets = {
                "sweep": post_handler(http_application(runtime)),
                "bare": post_handler(build_bare_app(SECRET, slack.api_url).web_app(path="/slack/events")),
            }
            profiler = cProfile.Profile() if profile_to else None
            gc.freeze()  # as `sweep-bot serve` does once it is up
            print(f"CPU time per ack, in microseconds: median of {rounds} rounds of {requests} requests")
            print(f"{'request':<14} | {'sweep':>6} {'bare':>6} | {'ratio':>5} | rounds (sweep / bare)")
            for name, request in scenarios().items():
                if only and name not in only:
                    continue
                spent: dict[str, list[float]] = {"sweep": [], "bare": []}
                for round_number in range(rounds + 1):  # the first round warms up, uncounted
                    for target, handler in targets.items():
                        url = "http://127.0.0.1/slack/events"
                        bodies = [body.encode() for body in await build_bodies(url, slack, request, requests)]
                        counted = round_number > 0
                        profiling = profiler if target == "sweep" and counted else None
                        cpu = await one_round(handler, bodies, profiling)
                        if counted:
                            spent[target].append(cpu)
                        await _wait_idle(lambda: runtime.services.follow_ups.stats.idle)
                sweep, bare = statistics.median(spent["sweep"]), statistics.median(spent["bare"])
                pairs = zip(spent["sweep"], spent["bare"], strict=True)
                detail = " ".join(f"{s:.0f}/{b:.0f}" for s, b in pairs)
                print(f"{name:<14} | {sweep:>6.0f} {bare:>6.0f} | {sweep / bare:>5.2f} | {detail}")
            if profiler is not None and profile_to:
                profiler.dump_stats(profile_to)


async def _wait_idle(idle: Callable[[], bool], timeout: float = 120.0) -> None:
    """Wait until Sweep's after-ack work is done, so the next round measures acks alone."""
    deadline = time.monotonic() + timeout
    while not idle():
        if time.monotonic() > deadline:
            raise RuntimeError("follow-ups still busy")
        await asyncio.sleep(0.01)


def _args(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=200, help="requests per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per kind (the median is printed)")
    parser.add_argument("--only", nargs="+", help='measure only these requests, e.g. --only "/sweep list"')
    parser.add_argument("--profile", help="write a cProfile of Sweep's rounds to this file")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = _args()
    asyncio.run(main(arguments.requests, arguments.rounds, arguments.only, arguments.profile))
