"""One Cloudflare request budget per account, shared by every replica through the database.

Cloudflare allows a token 1,200 requests per 5 minutes (`SWEEP_CLOUDFLARE_BUDGET`) and blocks every
call for 5 minutes past it. Sweep spends at most 80 % of that, all replicas together (960 at the
default), and splits it by priority:

- creates, cancels (the overshoot guard's too) and the look-up by tag that settles an ambiguous
  create (`Priority.URGENT`) may use all of it: 960;
- polls, lists, status, watch and previews (`Priority.ROUTINE`) stop at three quarters of it: 720,
  so 240 requests per 5 minutes are always left for urgent work, whatever the poller and the
  people reading are doing.

A 429 seen by any replica pauses them all until its `Retry-After` (300 s when it carries none:
Cloudflare's block lasts 5 minutes; at most `MAX_PAUSE_SECONDS`). A refused request waits for a
slot in the client, up to its bound (the tracker waits 0: it skips the cycle; everything else up to
the retry policy's `max_retry_after`, 30 s), and otherwise fails with `BudgetExhaustedError` naming
what happened and when to try again. The counting itself is the store's (`bot.store.budget`): one
atomic statement per request, on the database's clock.

This is the budget the client sees (`bot.cloudflare.budget.RequestBudget`); `bot/throttle.py` is a
different thing: per-person limits on Slack requests, so that one person cannot spend it all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.cloudflare.budget import Priority, Reservation
from bot.store.budget import BudgetReading, RequestBudgetStore

__all__ = [
    "DEFAULT_PAUSE_SECONDS",
    "DEFAULT_REQUESTS_PER_5_MINUTES",
    "MAX_PAUSE_SECONDS",
    "BudgetLimits",
    "BudgetSnapshot",
    "SharedBudget",
]

log = logging.getLogger("sweep.budget")

DEFAULT_REQUESTS_PER_5_MINUTES = 1200
#: The share of Cloudflare's limit Sweep may use at all, and of that the share routine requests may.
USABLE_PERCENT = 80
ROUTINE_PERCENT = 75
#: How long every replica pauses after a 429 without `Retry-After` (Cloudflare blocks for 5 minutes).
DEFAULT_PAUSE_SECONDS = 300.0
#: The longest pause a `Retry-After` may ask for (a garbled header must not stop Sweep for a day).
MAX_PAUSE_SECONDS = 3600.0
#: How long a request waits before asking again when the database could not count it.
UNAVAILABLE_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class BudgetLimits:
    """The requests per 5 minutes each priority may reserve, from Cloudflare's limit for the token."""

    cloudflare: int = DEFAULT_REQUESTS_PER_5_MINUTES

    def __post_init__(self) -> None:
        if self.routine < 1:
            raise ValueError("the Cloudflare budget is too small to leave routine requests a slot")

    @property
    def urgent(self) -> int:
        """Return what creates, cancels and create look-ups may use: 80 % of Cloudflare's limit."""
        return self.cloudflare * USABLE_PERCENT // 100

    @property
    def routine(self) -> int:
        """Return what polls, lists and previews may use: three quarters of the urgent limit."""
        return self.urgent * ROUTINE_PERCENT // 100

    def limit(self, priority: Priority) -> int:
        """Return the limit requests of this priority stop at."""
        return self.urgent if priority is Priority.URGENT else self.routine


@dataclass(frozen=True)
class BudgetSnapshot:
    """What the metrics show: requests left per priority and the pause left, all replicas together."""

    used: int
    left: dict[Priority, int]
    pause_seconds: float


class SharedBudget:
    """The client's `RequestBudget` over the store's shared counter for one account."""

    def __init__(
        self,
        store: RequestBudgetStore,
        account_id: str,
        *,
        limits: BudgetLimits | None = None,
        observer: Callable[[Priority, bool], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._store = store
        self._account_id = account_id
        self.limits = limits or BudgetLimits()
        self._observer = observer  # hears each reservation's priority and whether it was granted
        # Epoch seconds every replica agrees on; None: the database's clock (tests give one of theirs).
        self._clock = clock

    def _now(self) -> float | None:
        return None if self._clock is None else self._clock()

    async def reserve(self, priority: Priority) -> Reservation:
        """Take one request slot of `priority` now, or say how long until one may be free and why."""
        limit = self.limits.limit(priority)
        try:
            reading = await self._store.reserve_requests(self._account_id, limit=limit, now=self._now())
        except Exception as error:  # noqa: BLE001 - the database's trouble becomes a refusal, never a crash
            log.warning("could not count a Cloudflare request in the database: %s", type(error).__name__)
            self._observe(priority, False)
            return Reservation(
                granted=False,
                wait=UNAVAILABLE_RETRY_SECONDS,
                reason="Sweep could not reach its database to count the request against the shared budget",
            )
        self._observe(priority, reading.granted)
        if reading.granted:
            return Reservation(granted=True)
        wait = reading.seconds_until(limit=limit)
        return Reservation(granted=False, wait=wait if wait is not None else 0.0, reason=self._why(reading))

    async def rate_limited(self, retry_after: float | None) -> float:
        """Pause every replica for `retry_after` seconds (default 300, at most 3600); return what is left."""
        seconds = DEFAULT_PAUSE_SECONDS if retry_after is None else retry_after
        seconds = min(max(seconds, 0.0), MAX_PAUSE_SECONDS)
        left = await self._store.pause_requests(self._account_id, seconds=seconds, now=self._now())
        log.warning("Cloudflare answered 429: every replica pauses for %.0f s", left)
        return left

    async def snapshot(self) -> BudgetSnapshot:
        """Read the shared budget (reserving nothing) for the metrics."""
        reading = await self._store.reserve_requests(
            self._account_id, limit=self.limits.urgent, count=0, now=self._now()
        )
        left = {priority: max(self.limits.limit(priority) - reading.used, 0) for priority in Priority}
        return BudgetSnapshot(used=reading.used, left=left, pause_seconds=reading.pause_left)

    def _why(self, reading: BudgetReading) -> str:
        if reading.pause_left > 0:
            until = datetime.fromtimestamp(reading.paused_until or reading.at, UTC).strftime("%H:%M:%S UTC")
            return f"Cloudflare rate limited this account (HTTP 429): every Sweep replica waits until {until}"
        return (
            f"Sweep's share of this account's Cloudflare request budget is used up for now "
            f"({reading.used} requests in the last 5 minutes, across every replica; Sweep keeps to "
            f"{self.limits.urgent} of Cloudflare's {self.limits.cloudflare} per 5 minutes, and polls, lists "
            f"and previews to {self.limits.routine})"
        )

    def _observe(self, priority: Priority, granted: bool) -> None:
        if self._observer is not None:
            self._observer(priority, granted)
