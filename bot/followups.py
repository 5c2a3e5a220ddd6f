"""After-ack work, run with lower priority than acknowledging Slack.

Every Slack request is acknowledged first; what it asked for (a Cloudflare call, a reply through
its response_url, a modal update) is a *follow-up* submitted here. Acks and follow-ups share one
event loop, so a follow-up's CPU time delays any ack that arrives while it runs. To keep acks fast
during a burst, a follow-up waits until Slack has been quiet for a moment (no request for
`quiet_seconds`) — but never longer than `max_defer_seconds`, so a busy bot still makes progress.
Under sustained overload follow-ups therefore start at most `max_defer_seconds` late and then share
the loop with acks as before.

Urgent follow-ups start at once: those racing an expiring Slack trigger id, and creates (the user
was already told "Creating the job…", so a crash must not find that promise unrecorded). At most `max_running`
follow-ups run concurrently; they are I/O bound, so this limits CPU contention, not throughput.
Slack-free: a follow-up is any coroutine function, with a callback that reports its failure and,
optionally, one that is told at once when the work waits out a Cloudflare rate limit (the client's
`rate_limit_hook`, set for that follow-up's task only).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.cloudflare.client import rate_limit_hook
from bot.logs import LogFields, log_fields

log = logging.getLogger("sweep.followups")

Work = Callable[[], Awaitable[None]]
ErrorReporter = Callable[[Exception], Awaitable[None]]
#: Told the seconds a follow-up is about to wait because Cloudflare is rate limiting.
WaitReporter = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

#: Log a warning each time the number of waiting follow-ups crosses a multiple of this.
BACKLOG_WARNING_STEP = 500


@dataclass
class _FollowUp:
    work: Work
    on_error: ErrorReporter
    label: str
    submitted_at: float
    on_wait: WaitReporter | None = None
    #: What the submitter's log records were about (its request, user, job): the work's records say so too.
    fields: LogFields = dataclasses.field(default_factory=log_fields.get)


@dataclass(frozen=True)
class FollowUpStats:
    """A snapshot of the counters, for /healthz and the benchmarks."""

    waiting: int
    running: int
    done: int
    failed: int
    #: Longest time (s) a follow-up waited before it started, since the process began.
    max_wait_seconds: float

    @property
    def idle(self) -> bool:
        """Return True when nothing is waiting or running."""
        return self.waiting == 0 and self.running == 0


class FollowUps:
    """Runs follow-ups in submission order, deferring them while Slack requests keep arriving."""

    def __init__(
        self,
        *,
        quiet_seconds: float = 0.05,
        max_defer_seconds: float = 1.0,
        max_running: int = 32,
        clock: Clock = time.monotonic,
    ) -> None:
        if quiet_seconds < 0 or max_defer_seconds < 0 or max_running < 1:
            raise ValueError("quiet_seconds and max_defer_seconds must be >= 0, max_running >= 1")
        self._quiet = quiet_seconds
        self._max_defer = max_defer_seconds
        self._clock = clock
        self._slots = asyncio.Semaphore(max_running)
        self._waiting: collections.deque[_FollowUp] = collections.deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._last_request = float("-inf")
        # Resolved to make the scheduler look again (it is otherwise asleep until its own timer).
        self._nudge: asyncio.Future[None] | None = None
        self._scheduler: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._done = 0
        self._failed = 0
        self._max_wait = 0.0

    @property
    def stats(self) -> FollowUpStats:
        """Return the current counters."""
        return FollowUpStats(
            waiting=len(self._waiting),
            running=len(self._tasks),
            done=self._done,
            failed=self._failed,
            max_wait_seconds=self._max_wait,
        )

    def note_request(self) -> None:
        """Record that a Slack request just arrived (its ack comes before any waiting follow-up)."""
        self._last_request = self._clock()

    def submit(
        self,
        work: Work,
        *,
        on_error: ErrorReporter,
        label: str,
        urgent: bool = False,
        on_wait: WaitReporter | None = None,
    ) -> None:
        """Run `work` after the current burst of requests (at once if `urgent`); never raises.

        `on_wait` hears of every Cloudflare rate-limit wait while `work` runs.
        """
        item = _FollowUp(
            work=work, on_error=on_error, label=label, submitted_at=self._clock(), on_wait=on_wait
        )
        self._idle.clear()
        if urgent:
            self._start(item)
            return
        was_empty = not self._waiting
        self._waiting.append(item)
        if len(self._waiting) % BACKLOG_WARNING_STEP == 0:
            log.warning(
                "%d follow-ups waiting: requests arrive faster than Sweep acts on them", len(self._waiting)
            )
        if self._scheduler is None or self._scheduler.done():
            self._scheduler = asyncio.create_task(self._schedule(), name="follow-up scheduler")
        elif was_empty:
            self._wake_scheduler()  # behind a non-empty queue, the head's timer covers this one too

    async def drain(self, timeout: float) -> int:
        """Start everything waiting at once and wait up to `timeout` s; return how many did not finish."""
        self._max_defer = 0.0
        self._wake_scheduler()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
        unfinished = len(self._waiting) + len(self._tasks)
        if self._scheduler is not None:
            self._scheduler.cancel()
        for task in list(self._tasks):
            task.cancel()
        if unfinished:
            log.warning("stopped with %d follow-ups unfinished", unfinished)
        return unfinished

    def _wake_scheduler(self) -> None:
        if self._nudge is not None and not self._nudge.done():
            self._nudge.set_result(None)

    async def _sleep(self, delay: float | None) -> None:
        """Sleep until `delay` s have passed (forever if None) or the scheduler is nudged."""
        loop = asyncio.get_running_loop()
        self._nudge = loop.create_future()
        timer = loop.call_later(delay, self._wake_scheduler) if delay is not None else None
        try:
            await self._nudge
        finally:
            if timer is not None:
                timer.cancel()

    async def _schedule(self) -> None:
        while True:
            if not self._waiting:
                await self._sleep(None)
                continue
            delay = self._delay(self._waiting[0])
            if delay > 0:
                await self._sleep(delay)  # then look again: a request may have arrived meanwhile
                continue
            await self._slots.acquire()
            item = self._waiting.popleft()
            self._start(item, holds_slot=True)
            # One start per loop iteration: a request that arrived meanwhile is noted before the next.
            await asyncio.sleep(0)

    def _delay(self, item: _FollowUp) -> float:
        """Return how long `item` should still wait: until Slack is quiet, at most until its deadline."""
        now = self._clock()
        start_at = min(self._last_request + self._quiet, item.submitted_at + self._max_defer)
        return max(0.0, start_at - now)

    def _start(self, item: _FollowUp, *, holds_slot: bool = False) -> None:
        self._max_wait = max(self._max_wait, self._clock() - item.submitted_at)
        task = asyncio.create_task(self._run(item, holds_slot), name=f"follow-up {item.label}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def _run(self, item: _FollowUp, holds_slot: bool) -> None:
        # Each follow-up is its own task (its own context): the hook reaches only this work.
        rate_limit_hook.set(item.on_wait)
        log_fields.set(item.fields)
        try:
            await item.work()
            self._done += 1
        except Exception as error:  # noqa: BLE001 - a follow-up's failure is reported, never raised
            self._failed += 1
            try:
                await item.on_error(error)
            except Exception:  # noqa: BLE001 - reporting must not kill the runner either
                log.exception("could not report a failed follow-up (%s)", item.label)
        finally:
            if holds_slot:
                self._slots.release()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks and not self._waiting:
            self._idle.set()
