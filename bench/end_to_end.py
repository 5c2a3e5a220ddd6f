"""End-to-end delay: a status change at Cloudflare → the card edit and the thread reply in Slack.

    .venv/bin/python bench/end_to_end.py [--jobs 100] [--poll 1 2] [--spread 3]

For each poll interval: start the simulator and the local Slack (in this process) and
`sweep-bot serve --http` (a child), seed `--jobs` jobs held in PENDING, have Sweep track them with
signed `/sweep watch <id>` commands and wait for every card. Then move the jobs to DISCOVERING one
at a time with `force_status`, at instants spread evenly over `--spread` poll intervals (so the
changes fall at every phase of the polling cycle), and for each one measure, on the same clock
(`time.time`, which the local Slack stamps on every recorded call), the delay until Slack receives

- the `chat.update` of the job's card showing DISCOVERING, and
- the thread reply `Job <id>: Pending → Discovering` under that card.

Expected: about poll/2 on average (up to one poll interval) plus the cycle and notifier time.
The notifier edits a card at most once per 2.5 s, which can add to the card figure when a card
was edited recently. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._stack import ACCOUNT, CHANNEL, OPERATOR, SECRET, percentile, sweep_stack  # noqa: E402
from blocks._describe import status_word  # noqa: E402
from bot.devslack.driver import SlackDriver  # noqa: E402
from bot.devslack.state import RecordedCall  # noqa: E402


def _is_card_post(call: RecordedCall, job_id: str) -> bool:
    return (
        call.method == "chat.postMessage"
        and call.ok
        and not call.params.get("thread_ts")
        and f"(job {job_id})" in str(call.params.get("text", ""))
    )


async def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def run(jobs: int, poll: float, spread: float) -> dict[str, Any]:
    """Measure `jobs` status changes with Sweep polling every `poll` seconds."""
    async with sweep_stack(poll_seconds=poll, job_seconds=3600) as stack:
        fake = stack.slack.state
        ids = await stack.sim.seed_jobs(jobs, "PENDING", hold=True, account_id=ACCOUNT)
        async with SlackDriver(
            stack.events_url, SECRET, stack.slack, user_id=OPERATOR, channel_id=CHANNEL
        ) as driver:
            for job_id in ids:
                response = await driver.slash(f"watch {job_id}")
                if response.status != 200:
                    raise RuntimeError(f"/sweep watch answered {response.status}: {response.body[:200]}")
        cards: dict[str, str] = {}

        def all_cards() -> bool:
            for call in fake.calls("chat.postMessage"):
                for job_id in ids:
                    if job_id not in cards and _is_card_post(call, job_id):
                        cards[job_id] = str(
                            call.response.get("ts") or call.response.get("message", {}).get("ts")
                        )
            return len(cards) == len(ids)

        await _wait(all_cards, 60 + jobs * 0.5, "every card to be posted")
        await asyncio.sleep(poll * 2 + 3)  # let the first cycles and card edits settle

        word_before, word_after = status_word("PENDING"), status_word("DISCOVERING")
        changed_at: dict[str, float] = {}
        gap = spread * poll / jobs
        started = time.monotonic()
        for index, job_id in enumerate(ids):
            await asyncio.sleep(max(0.0, started + index * gap - time.monotonic()))
            await stack.sim.force_status(job_id, "DISCOVERING", hold=True)
            changed_at[job_id] = fake.clock()

        card_seen: dict[str, float] = {}
        reply_seen: dict[str, float] = {}
        reply_text = {job_id: (f"Job {job_id}:", f"{word_before} → {word_after}") for job_id in ids}

        def all_seen() -> bool:
            for call in fake.calls():
                if not call.ok:
                    continue
                text = str(call.params.get("text", ""))
                if call.method == "chat.update":
                    for job_id in ids:
                        if (
                            job_id not in card_seen
                            and call.at >= changed_at[job_id]
                            and call.params.get("ts") == cards[job_id]
                            and f": {word_after}," in text
                        ):
                            card_seen[job_id] = call.at
                elif call.method == "chat.postMessage" and call.params.get("thread_ts"):
                    for job_id in ids:
                        head, transition = reply_text[job_id]
                        if (
                            job_id not in reply_seen
                            and call.at >= changed_at[job_id]
                            and call.params.get("thread_ts") == cards[job_id]
                            and text.startswith(head)
                            and transition in text
                        ):
                            reply_seen[job_id] = call.at
            return len(card_seen) == len(ids) and len(reply_seen) == len(ids)

        try:
            await _wait(all_seen, poll * (spread + 3) + 30, "every card edit and thread reply")
        except TimeoutError as error:
            print(f"  poll {poll:g} s: {error} ({len(card_seen)} cards, {len(reply_seen)} replies seen)")
    return {
        "card": [card_seen[j] - changed_at[j] for j in ids if j in card_seen],
        "reply": [reply_seen[j] - changed_at[j] for j in ids if j in reply_seen],
        "jobs": jobs,
    }


def _row(name: str, poll: float, values: list[float], jobs: int) -> str:
    if not values:
        return f"{name:<12}{poll:>6g} {0:>5}/{jobs:<3} " + "       -" * 5
    mean = sum(values) / len(values)
    figures = [percentile(values, 0.5), percentile(values, 0.9), percentile(values, 0.99), max(values), mean]
    return f"{name:<12}{poll:>6g} {len(values):>5}/{jobs:<3} " + " ".join(f"{v:>7.2f}" for v in figures)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark for each poll interval and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--poll", type=float, nargs="+", default=[1.0, 2.0])
    parser.add_argument("--spread", type=float, default=3.0, help="spread the changes over N poll intervals")
    args = parser.parse_args(argv)
    results = {poll: asyncio.run(run(args.jobs, poll, args.spread)) for poll in args.poll}
    print(
        "Status change at Cloudflare → Slack (seconds; card = chat.update of the card, reply = thread reply)"
    )
    header = (
        f"{'delay of':<12}{'poll s':>6} {'seen':>9} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7} {'mean':>7}"
    )
    print(header)
    print("-" * len(header))
    for poll, result in results.items():
        print(_row("card edit", poll, result["card"], result["jobs"]))
        print(_row("thread reply", poll, result["reply"], result["jobs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
