"""Follow every tracked job with the fewest Cloudflare calls, and turn changes into outbox rows.

Each cycle lists the account's jobs by active status (`PENDING`, then `DISCOVERING`, then
`PROCESSING`; `per_page=1000`, walking pages until a short one) — a few calls whatever the
number of jobs. Only a tracked job found in none of those lists gets one `GET` (it finished, or
moved during the walk); a 404 there means it was deleted. The store diffs and queues the
notifications in one transaction (`Store.apply_snapshots`).

A status is not listed when no tracked job can be in it: statuses only move forward, so with no
tracked job in `PENDING` that list is skipped. Skipping is always safe — a job the lists miss
just gets its `GET`.

A failed list (429, 5xx, timeout after the client's own retries) means the cycle learns nothing
about jobs missing from the lists, so none of them is fetched one by one; the next cycle waits
longer (Cloudflare's `Retry-After`, else capped exponential backoff). The loop never crashes.

Polls are routine requests of the shared Cloudflare budget (`bot/budget.py`) and never wait for a
slot: when the budget has none (spent for now, or paused by a 429 any replica saw) the cycle stops
where it is — a deferred cycle, not a failure: the next one comes after the usual interval and
costs one database statement, no Cloudflare call, until the budget has a slot again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from bot.backoff import capped_exponential
from bot.clock import Clock, utc_now
from bot.cloudflare.budget import budget_wait
from bot.cloudflare.client import CloudflareClient
from bot.cloudflare.errors import BudgetExhaustedError, CloudflareError, NotFoundError, RateLimitedError
from bot.cloudflare.models import ACTIVE_STATUSES, BulkJob, is_terminal
from bot.models import Overshoot
from bot.store import Store, Transition

__all__ = ["TickReport", "Tracker"]

log = logging.getLogger("sweep.tracker")

PER_PAGE = 1000
# Statuses in the order a job moves through them (a job can only go right).
_ORDER = tuple(str(s) for s in ACTIVE_STATUSES)


class Wakeable(Protocol):
    """Something to nudge when new notifications are queued (the notifier)."""

    def wake(self) -> None:
        """Look at the outbox now."""


@dataclass
class TickReport:
    """What one tracker cycle did."""

    api_calls: int = 0
    active: int = 0
    jobs_seen: int = 0
    fetched: int = 0
    transitions: list[Transition] = field(default_factory=list)
    finished: int = 0
    gone: int = 0
    errors: list[str] = field(default_factory=list)
    retry_after: float | None = None
    overshoots: int = 0  # running jobs seen past their agreed maximum
    #: Seconds until the shared budget has a slot, when the cycle stopped for want of one (else None).
    deferred: float | None = None

    @property
    def ok(self) -> bool:
        """Return True when every call of the cycle was made and succeeded."""
        return not self.errors and self.deferred is None


def statuses_to_list(stored: Sequence[str]) -> list[str]:
    """Return the active statuses that tracked jobs with these last-known statuses may be in now."""
    ranks = [_ORDER.index(status) if status in _ORDER else 0 for status in stored]
    if not ranks:
        return []
    return list(_ORDER[min(ranks) :])


class Tracker:
    """Polls Cloudflare for the tracked jobs and records what changed."""

    def __init__(
        self,
        store: Store,
        client: CloudflareClient,
        *,
        poll_seconds: float,
        clock: Clock = utc_now,
        notifier: Wakeable | None = None,
        max_backoff: float = 300.0,
        get_concurrency: int = 4,
        per_page: int = PER_PAGE,
        on_cycle: Callable[[float, bool], None] | None = None,
        lease: Callable[[], Awaitable[bool]] | None = None,
        on_overshoot: Callable[[list[Overshoot]], Awaitable[None]] | None = None,
    ) -> None:
        self._store = store
        self._lease = lease  # asked before each cycle: only the replica holding it polls (None: always)
        self._client = client
        self._poll_seconds = poll_seconds
        self._clock = clock
        self._notifier = notifier
        self._max_backoff = max_backoff
        self._get_limit = asyncio.Semaphore(get_concurrency)
        self._per_page = per_page
        self._on_cycle = on_cycle  # hears each cycle's duration (s) and whether it succeeded (metrics)
        # hears, in the cycle that sees them, the running jobs past their agreed maximum (the guard)
        self._on_overshoot = on_overshoot
        self._failures = 0
        self._impossible_logged: set[str] = set()

    def _wake(self) -> None:
        if self._notifier is not None:
            self._notifier.wake()

    # ------------------------------------------------------------------ the cycle

    async def tick(self) -> TickReport:
        """Run one polling cycle; never raises for a Cloudflare failure."""
        report = TickReport()
        calls_before = self._client.api_calls
        # A spent budget skips the rest of the cycle rather than holding the poller in a wait.
        token = budget_wait.set(0.0)
        try:
            await self._poll(report)
        finally:
            budget_wait.reset(token)
            report.api_calls = self._client.api_calls - calls_before
        if report.errors:
            self._failures += 1
        elif report.deferred is None:
            self._failures = 0
        if report.transitions or report.gone:
            self._wake()
        return report

    async def _poll(self, report: TickReport) -> None:
        active = await self._store.active_statuses()
        report.active = len(active)
        if not active:
            return
        seen: dict[str, BulkJob] = {}
        complete = True
        for status in statuses_to_list(list(active.values())):
            try:
                await self._walk(status, active, seen)
            except BudgetExhaustedError as error:
                complete = False
                report.deferred = error.retry_after or 0.0
                log.info("poll deferred: %s", error.user_message())
                break
            except CloudflareError as error:
                complete = False
                report.errors.append(f"list {status}: {error.user_message()}")
                if isinstance(error, RateLimitedError):
                    report.retry_after = error.retry_after
                    break  # every further call would be refused too
        report.jobs_seen = len(seen)
        snapshots = list(seen.values())
        missing = [job_id for job_id in active if job_id not in seen]
        if missing and complete:
            fetched, gone = await self._fetch(missing, report)
            snapshots.extend(fetched)
            report.fetched = len(fetched)
            now = self._clock()
            for job_id in gone:
                if await self._store.mark_gone(job_id, now=now, reason="deleted at Cloudflare (404)"):
                    report.gone += 1
        elif missing:
            log.info("%d tracked jobs not listed; not fetching them after a failed list", len(missing))
        self._note_impossible_counts(snapshots)
        report.transitions = await self._store.apply_snapshots(snapshots, now=self._clock())
        report.finished = sum(1 for t in report.transitions if is_terminal(t.status)) + report.gone
        if self._on_overshoot is not None:
            overshoots = await self._store.overshoots(snapshots)
            report.overshoots = len(overshoots)
            if overshoots:
                try:
                    await self._on_overshoot(overshoots)
                except Exception:  # noqa: BLE001 - reported again next cycle; the cycle goes on
                    log.exception("acting on %d jobs past their agreed maximum failed", len(overshoots))

    def _note_impossible_counts(self, snapshots: Sequence[BulkJob]) -> None:
        """Log, once per job, the counts Cloudflare reported that cannot be true (its card says so too)."""
        for job in snapshots:
            if job.impossible_counts and job.job_id not in self._impossible_logged:
                self._impossible_logged.add(job.job_id)
                log.warning(
                    "job %s: Cloudflare reported impossible counts %s; shown as unknown",
                    job.job_id,
                    ", ".join(f"{name}={raw}" for name, raw in job.impossible_counts.items()),
                    extra={"job_id": job.job_id},
                )

    async def _walk(self, status: str, active: dict[str, str], seen: dict[str, BulkJob]) -> None:
        """List one status page by page until a short page, keeping tracked jobs only."""
        page = 1
        while True:
            batch = await self._client.list_jobs(status=status, page=page, per_page=self._per_page)
            for job in batch.items:
                if job.job_id in active:
                    # Statuses are walked in order, so a later sighting is the newer state.
                    seen[job.job_id] = job
            # total_count and page are deprecated (always 0): only a short page ends the walk.
            if len(batch.items) < self._per_page:
                return
            page += 1

    async def _fetch(self, job_ids: Sequence[str], report: TickReport) -> tuple[list[BulkJob], list[str]]:
        """GET each job that left the active lists; return the found ones and the 404 ones."""
        found: list[BulkJob] = []
        gone: list[str] = []
        stop = asyncio.Event()

        async def one(job_id: str) -> None:
            async with self._get_limit:
                if stop.is_set():
                    return
                try:
                    found.append(await self._client.get_job(job_id))
                except NotFoundError:
                    gone.append(job_id)
                except BudgetExhaustedError as error:
                    report.deferred = error.retry_after or 0.0
                    stop.set()
                except CloudflareError as error:
                    report.errors.append(f"get {job_id}: {error.user_message()}")
                    if isinstance(error, RateLimitedError):
                        report.retry_after = error.retry_after
                        stop.set()

        await asyncio.gather(*(one(job_id) for job_id in job_ids))
        return found, gone

    def next_delay(self, report: TickReport) -> float:
        """Return how long to wait before the next cycle: the poll interval, longer after failures.

        A cycle deferred for want of a budget slot is no failure: the next one comes at the interval.
        """
        if not report.errors:
            return self._poll_seconds
        backoff = capped_exponential(self._poll_seconds, self._failures, cap=self._max_backoff)
        if report.retry_after is not None:
            backoff = max(backoff, report.retry_after)
        return max(backoff, self._poll_seconds)

    async def run(self, stop: asyncio.Event) -> None:
        """Tick every `poll_seconds` until `stop` is set, while holding `lease`; back off after failures."""
        while not stop.is_set():
            if self._lease is not None and not await self._lease():
                # Another replica polls; ask again next interval (takeover within one interval).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._poll_seconds)
                continue
            started = time.monotonic()
            try:
                report = await self.tick()
                if self._on_cycle is not None:
                    self._on_cycle(time.monotonic() - started, report.ok)
                delay = self.next_delay(report)
                if report.errors:
                    log.warning("tracker cycle had %d errors: %s", len(report.errors), report.errors[0])
            except Exception:  # noqa: BLE001 - e.g. a locked database: try again next cycle
                log.exception("tracker cycle failed")
                if self._on_cycle is not None:
                    self._on_cycle(time.monotonic() - started, False)
                self._failures += 1
                delay = capped_exponential(self._poll_seconds, self._failures, cap=self._max_backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    # ------------------------------------------------------------------ watches


def calls_budget(active: int, finished: int, *, per_page: int = PER_PAGE) -> int:
    """Return the most calls a cycle may use: 3 × ⌈active/1000⌉ + finished (the design target)."""
    return 3 * max(math.ceil(active / per_page), 1) + finished
