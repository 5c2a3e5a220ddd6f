"""Budgets for Slack requests that call Cloudflare: per user and for everyone, reads and creates apart.

Cloudflare allows 1,200 requests per 5 minutes per token and blocks every call for 5 minutes past
it — the poller's included. The hard limit is the shared budget (`bot/budget.py`): every replica
together sends at most 80 % of it, polls, lists and previews at most 60 %. These budgets come first
and are about people: at the defaults, reads (previews, lists, status, watch; about 2 calls each)
may use 300 × 2 = 600 calls per 5 minutes and creates and cancels (1 to 4 calls) 60 × 2 = 120, so
one person or a busy channel cannot spend the shared budget alone.

Sliding windows in memory, one process; a refused request is told when it may try again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from bot.clock import Clock, utc_now

__all__ = ["BudgetKind", "RequestBudgets", "ThrottledError", "Window", "budget_windows"]


class BudgetKind(StrEnum):
    READ = "read"  # preview, list, status, watch
    WRITE = "write"  # create, cancel


class ThrottledError(Exception):
    """Too many requests: `retry_after` seconds until one more is allowed."""

    def __init__(self, kind: BudgetKind, retry_after: float, *, scope: str) -> None:
        self.kind = kind
        self.retry_after = retry_after
        self.scope = scope  # "you" or "everyone"
        super().__init__(self.user_message())

    def user_message(self) -> str:
        """Say plainly what happened and when to try again."""
        seconds = max(int(self.retry_after + 0.999), 1)
        who = "you have" if self.scope == "you" else "this workspace has"
        what = "asked Cloudflare" if self.kind is BudgetKind.READ else "created or cancelled jobs"
        return (
            f"Slow down: {who} {what} too often in the last few minutes, and Sweep keeps Cloudflare's "
            f"shared request budget for the jobs it tracks. Try again in {seconds} s."
        )


@dataclass(frozen=True)
class Window:
    """At most `limit` requests per `seconds`."""

    limit: int
    seconds: float


@dataclass
class _Counter:
    window: Window
    times: deque[float] = field(default_factory=deque)

    def wait(self, now: float) -> float:
        """Return 0 if one more fits now, else the seconds until it does."""
        horizon = now - self.window.seconds
        while self.times and self.times[0] <= horizon:
            self.times.popleft()
        if len(self.times) < self.window.limit:
            return 0.0
        return self.times[0] + self.window.seconds - now


def budget_windows(
    *, reads_per_user: int = 30, writes_per_user: int = 10, reads_total: int = 300, writes_total: int = 60
) -> dict[tuple[BudgetKind, str], Window]:
    """Return the windows: per user per minute, for everyone per 5 minutes (the defaults above)."""
    return {
        (BudgetKind.READ, "you"): Window(limit=reads_per_user, seconds=60),
        (BudgetKind.WRITE, "you"): Window(limit=writes_per_user, seconds=60),
        (BudgetKind.READ, "everyone"): Window(limit=reads_total, seconds=300),
        (BudgetKind.WRITE, "everyone"): Window(limit=writes_total, seconds=300),
    }


DEFAULT_WINDOWS = budget_windows()


class RequestBudgets:
    """Counts Cloudflare-calling requests per user and in total; `take` refuses past a window."""

    def __init__(
        self, windows: dict[tuple[BudgetKind, str], Window] | None = None, *, clock: Clock = utc_now
    ) -> None:
        self._windows = dict(DEFAULT_WINDOWS if windows is None else windows)
        self._clock = clock
        self._counters: dict[tuple[BudgetKind, str], _Counter] = {}

    def take(self, kind: BudgetKind, user_id: str) -> None:
        """Count one request of `user_id`, or raise ThrottledError (counting nothing) if over budget."""
        now = self._clock().timestamp()
        counters: list[_Counter] = []
        for scope, key in (("you", user_id), ("everyone", "*")):
            window = self._windows.get((kind, scope))
            if window is None:
                continue
            counter = self._counters.setdefault((kind, f"{scope}:{key}"), _Counter(window))
            wait = counter.wait(now)
            if wait > 0:
                raise ThrottledError(kind, wait, scope=scope)
            counters.append(counter)
        for counter in counters:
            counter.times.append(now)
        if len(self._counters) > 10_000:  # forget idle users now and then
            self._counters = {k: c for k, c in self._counters.items() if c.wait(now) > 0 or c.times}

    def remaining(self, kind: BudgetKind) -> int | None:
        """Return how many more requests of `kind` everyone's window allows now (None: no such window)."""
        window = self._windows.get((kind, "everyone"))
        if window is None:
            return None
        counter = self._counters.get((kind, "everyone:*"))
        if counter is None:
            return window.limit
        counter.wait(self._clock().timestamp())  # forgets the requests that left the window
        return max(window.limit - len(counter.times), 0)
