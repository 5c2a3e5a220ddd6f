"""Auto-cancel: how many messages a job processes past its agreed maximum before Sweep's cancel lands.

    .venv/bin/python bench/overshoot.py [--jobs 3] [--poll 10] [--job-seconds 40] [--grow 2.0]

Start the simulator and the local Slack (in this process) and `sweep-bot serve --http` (a child)
polling every `--poll` seconds (default: Sweep's default interval). Create `--jobs` jobs through the
bot exactly as an analyst does (a signed `/sweep move …`, then a signed click on the preview's
Confirm), read each job's agreed maximum from Sweep's database, and while the job is still pending
or discovering deliver `--grow` × the agreed maximum of new matching mail with the simulator's
more-mail control. Then watch each job at the simulator (every 20 ms) and Sweep's poll cycles
(`sweep_poll_cycle_seconds_count` on /metrics) until Sweep cancels it, and print per job:

- agreed max: the previewed count plus `SWEEP_APPROVAL_MARGIN` (default 10 %, at least 5);
- discovered: `total_messages_discovered` when the cancel landed;
- processed: messages acted on (successful + failed) when the cancel landed, and how many of them
  were past the cap (processed − agreed max, at least 0);
- visible → cancel: seconds from the first moment the API showed the overshoot to the cancel;
- cycles: poll cycles completed from that moment until the one that cancelled, inclusive (read
  from /metrics a moment after the cancel: min(poll/2, 1 s), well before the next cycle starts).

Target: the cancel is sent in the first poll cycle that sees the overshoot (cycles = 1). Jobs
discover for a quarter of `--job-seconds` and then act on their messages; an overshoot first
visible while the job processes lets it act on up to one poll interval's worth of messages before
the cancel. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._stack import ACCOUNT, CF_TOKEN, CHANNEL, OPERATOR, SECRET, Stack, sweep_stack  # noqa: E402
from bot.devslack.driver import SlackDriver  # noqa: E402
from bot.ids import ActionId  # noqa: E402

SUBJECTS = ("newsletter", "Invoice", "Meeting", "Lunch", "pull request", "Password", "Quarterly", "Contract")
_CYCLES = re.compile(r"^sweep_poll_cycle_seconds_count(?:\{[^}]*\})? ([0-9.e+]+)$", re.MULTILINE)


@dataclass
class Watched:
    job_id: str
    agreed_max: int
    visible_at: float | None = None
    cycles_at_visible: int | None = None
    cancelled_at: float | None = None
    final: dict[str, Any] = field(default_factory=dict)
    cycles: int | None = None


def _has_confirm(blocks: list[dict[str, Any]]) -> bool:
    return any(
        element.get("action_id") == ActionId.CONFIRM_CREATE
        for block in blocks
        if block.get("type") == "actions"
        for element in block.get("elements", [])
    )


async def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def _jobs(http: httpx.AsyncClient, stack: Stack) -> list[dict[str, Any]]:
    response = await http.get(
        f"{stack.sim.base_url}/accounts/{ACCOUNT}/email-security/investigate/bulk",
        params={"per_page": 1000},
        headers={"Authorization": f"Bearer {CF_TOKEN}"},
    )
    return list(response.json()["result"])


async def _cycles(http: httpx.AsyncClient, stack: Stack) -> int:
    text = (await http.get(stack.health_url.replace("/healthz", "/metrics"))).text
    return int(sum(float(value) for value in _CYCLES.findall(text)))


def _agreed_max(stack: Stack, job_id: str) -> int | None:
    connection = sqlite3.connect(f"file:{stack.database}?mode=ro", uri=True, timeout=5)
    try:
        row = connection.execute("SELECT agreed_max FROM tracked_jobs WHERE job_id = ?", (job_id,)).fetchone()
    finally:
        connection.close()
    return None if row is None or row[0] is None else int(row[0])


async def _create(
    driver: SlackDriver, stack: Stack, http: httpx.AsyncClient, subject: str, marker: str
) -> str:
    """Create one job through the bot (signed slash command, signed Confirm click); return its id."""
    state = stack.slack.state
    before = len(state.responses(OPERATOR))
    await driver.slash(f'move subject:"{subject}" since:30d to:junk comment:"{marker}"')
    preview = await _wait(
        lambda: next((r for r in state.responses(OPERATOR)[before:] if _has_confirm(r.blocks)), None),
        30,
        "the preview",
    )
    await driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=preview.blocks)

    async def made() -> str | None:
        return next(
            (j["job_id"] for j in await _jobs(http, stack) if marker in (j.get("comment") or "")), None
        )

    job_id: str = await _wait(made, 30, "the job at the simulator")
    return job_id


async def run(jobs: int, poll: float, job_seconds: float, grow: float) -> list[Watched]:
    """Create `jobs` jobs, grow each past its agreed maximum, and watch Sweep cancel them."""
    watched: list[Watched] = []
    async with sweep_stack(poll_seconds=poll, job_seconds=job_seconds) as stack, httpx.AsyncClient() as http:
        async with SlackDriver(
            stack.events_url, SECRET, stack.slack, user_id=OPERATOR, channel_id=CHANNEL
        ) as d:
            for index in range(jobs):
                job_id = await _create(d, stack, http, SUBJECTS[index % len(SUBJECTS)], f"bench-over-{index}")
                agreed = await _wait(lambda job_id=job_id: _agreed_max(stack, job_id), 30, "the tracked job")
                await stack.sim.add_matching_mail(job_id, max(1, int(agreed * grow)))
                watched.append(Watched(job_id=job_id, agreed_max=agreed))
        deadline = time.monotonic() + job_seconds + 3 * poll + 10
        while time.monotonic() < deadline and any(w.cycles is None for w in watched):
            now = time.monotonic()
            cycles = await _cycles(http, stack)
            current = {j["job_id"]: j for j in await _jobs(http, stack)}
            for w in watched:
                job = current[w.job_id]
                if w.visible_at is None and job["total_messages_discovered"] > w.agreed_max:
                    w.visible_at, w.cycles_at_visible = now, cycles
                if w.cancelled_at is None and job["status"] in ("CANCELLED", "COMPLETED", "FAILED"):
                    w.cancelled_at, w.final = now, job
                # The cancelling cycle ends moments after its cancel, long before the next one starts.
                settled = w.cancelled_at is not None and now - w.cancelled_at >= min(poll / 2, 1.0)
                if settled and w.cycles is None and w.cycles_at_visible is not None:
                    w.cycles = cycles - w.cycles_at_visible
            await asyncio.sleep(0.02)
    return watched


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one row per job."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument(
        "--poll", type=float, default=10.0, help="SWEEP_POLL_SECONDS (default: Sweep's, 10 s)"
    )
    parser.add_argument("--job-seconds", type=float, default=40.0, help="a job's life at the simulator")
    parser.add_argument("--grow", type=float, default=2.0, help="new mail per job, × its agreed maximum")
    args = parser.parse_args(argv)
    watched = asyncio.run(run(args.jobs, args.poll, args.job_seconds, args.grow))
    print(
        f"auto-cancel at poll {args.poll:g} s, jobs live {args.job_seconds:g} s, grown {args.grow:g}× the cap"
    )
    print(
        f"{'job':<38}{'agreed max':>11}{'discovered':>11}{'processed':>10}{'past cap':>9}"
        f"{'status':>11}{'visible→cancel s':>18}{'cycles':>7}"
    )
    for w in watched:
        final = w.final
        processed = int(final.get("messages_successful", 0)) + int(final.get("messages_failed", 0))
        past = max(0, processed - w.agreed_max)
        delay = (
            f"{w.cancelled_at - w.visible_at:.2f}"
            if w.cancelled_at is not None and w.visible_at is not None
            else "-"
        )
        print(
            f"{w.job_id:<38}{w.agreed_max:>11}{final.get('total_messages_discovered', '-'):>11}"
            f"{processed:>10}{past:>9}{final.get('status', 'RUNNING'):>11}{delay:>18}"
            f"{w.cycles if w.cycles is not None else '-':>7}"
        )
    met = sum(1 for w in watched if w.cycles == 1)
    print(f"target (cancel sent in the first cycle that sees the overshoot): {met}/{len(watched)} jobs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
