"""The request budget the client asks before every send: a small port, implemented outside this package.

Cloudflare allows a token a fixed number of requests per 5 minutes and blocks every call for 5
minutes past it. Whoever builds the client may give it a `RequestBudget` (Sweep's is shared by every
replica through the database, `bot.budget.SharedBudget`); the client then reserves one slot before
each request it sends (each retry and each poll of a 202 included) and reports every 429 it sees.

Two priorities: `URGENT` (creates, cancels, and the look-up by tag that settles an ambiguous create)
and `ROUTINE` (polls, lists, status, previews); the client sets `URGENT` itself inside its create,
cancel and look-up methods, and a caller may wrap other calls in `urgent()`. How long a refused call
waits for a slot is bounded per call: `budget_wait` for this task (the tracker sets 0: it skips a
cycle rather than wait), else the retry policy's `max_retry_after`. Past the bound the call raises
`BudgetExhaustedError` and nothing is sent.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

__all__ = [
    "Priority",
    "RequestBudget",
    "Reservation",
    "budget_wait",
    "request_priority",
    "urgent",
]


class Priority(StrEnum):
    URGENT = "urgent"  # creates, cancels, the create look-up by tag: may use the whole budget
    ROUTINE = "routine"  # polls, lists, status, previews: stop at a lower share


@dataclass(frozen=True)
class Reservation:
    """The budget's answer: a slot (`granted`), or how long until one may be free and why not now."""

    granted: bool
    wait: float = 0.0
    reason: str = ""


class RequestBudget(Protocol):
    """What the client asks before each request and tells after each 429."""

    async def reserve(self, priority: Priority) -> Reservation:
        """Take one request slot now, or say how long until asking again may succeed (never raises)."""

    async def rate_limited(self, retry_after: float | None) -> float:
        """Pause every sender after a 429 (`Retry-After` seconds, or a default); return the pause's length."""


#: The priority of the requests this task sends (the client's create, cancel and look-up set URGENT).
request_priority: contextvars.ContextVar[Priority] = contextvars.ContextVar(
    "cloudflare_request_priority", default=Priority.ROUTINE
)
#: The most seconds one call of this task may wait for a budget slot (None: the retry policy's
#: `max_retry_after`). The tracker sets 0: a spent budget skips its cycle rather than holding it.
budget_wait: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "cloudflare_budget_wait", default=None
)


@contextlib.contextmanager
def urgent() -> Iterator[None]:
    """Send the requests made inside the block with URGENT priority."""
    token = request_priority.set(Priority.URGENT)
    try:
        yield
    finally:
        request_priority.reset(token)
