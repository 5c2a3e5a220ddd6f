"""Resolve creates whose outcome Sweep does not know, by their request tag, until the answer is certain.

A create intent is recorded before the POST. It is left unresolved when the answer was lost
(timeout, 5xx, an unreadable 2xx, and the look-up by tag was inconclusive) or when the process
died before it could record the answer. Such an intent is *ambiguous*: Cloudflare may have made
the job. The resolver looks the tag up again, with backoff and across restarts, until either

- the job is found: it is tracked and its card posted as for any create (`Store.finish_create`), or
- Cloudflare's answers prove there is no such job: at least `MISSES_TO_FAIL` successful look-ups
  found nothing, the last of them at least `settle` seconds after the intent was recorded (by then
  a request Cloudflare received has long been answered). The intent fails, is audited, and one
  notice tells the requester in their channel that no job was made (queued with the failure, in
  the same transaction, so it is sent exactly once).

A look-up that fails (Cloudflare unreachable, rate limited) proves nothing and is simply retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from bot.backoff import capped_exponential
from bot.clock import Clock, utc_now
from bot.cloudflare.client import CloudflareClient
from bot.cloudflare.errors import CloudflareError
from bot.models import AuditAction, AuditEntry
from bot.store import CreateIntent, IntentState, Store

__all__ = ["MISSES_TO_FAIL", "CreateResolver", "not_created_notice"]

log = logging.getLogger("sweep.creates")

MISSES_TO_FAIL = 2
FIRST_CHECK_SECONDS = 5.0
MAX_CHECK_SECONDS = 300.0
IDLE_SECONDS = 30.0


def not_created_notice(intent: CreateIntent, reason: str) -> dict[str, Any]:
    """Return the outbox payload telling the requester that their create made no job."""
    request = intent.request
    return {
        "notice": "create_not_made",
        "requester": intent.requester,
        "action": str(request.action),
        "destination": None if request.destination is None else str(request.destination),
        "search_params": request.search_params.to_api(),
        "comment": request.comment,
        "reason": reason,
        "tag": intent.tag,
    }


class CreateResolver:
    """Looks unresolved creates up by tag on a schedule (one instance per process)."""

    def __init__(
        self,
        store: Store,
        client: CloudflareClient,
        *,
        settle_seconds: float,
        wake_notifier: Callable[[], None],
        clock: Clock = utc_now,
        orphan_seconds: float = 0.0,
        leader: Callable[[], bool] | None = None,
    ) -> None:
        """`orphan_seconds`: how old an `open` intent must be before it counts as left by a dead process
        (0 with one replica; with several, longer than any create can be in flight in another replica).
        `leader`: whether this replica holds the poller lease (only the holder looks creates up).
        """
        self._store = store
        self._orphan_age = timedelta(seconds=orphan_seconds)
        self._leader = leader
        self._client = client
        self._settle = timedelta(seconds=settle_seconds)
        self._wake_notifier = wake_notifier
        self._clock = clock
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look at the unresolved creates now (one was just marked ambiguous)."""
        self._wake.set()

    def first_check_at(self, now: datetime) -> datetime:
        """Return when an intent that just became ambiguous is looked up again."""
        return now + timedelta(seconds=FIRST_CHECK_SECONDS)

    async def adopt_orphans(self) -> int:
        """Mark creates a dead process left `open` ambiguous, to be resolved like any other.

        With `orphan_seconds` 0 (one replica), only call this when this process has no create in
        flight (before serving requests). Otherwise only intents older than that are adopted: none of
        them can still be in flight in a live replica, whose client has given up on them by then.
        """
        now = self._clock()
        adopted = 0
        for intent in await self._store.open_create_intents():
            if intent.state is IntentState.OPEN and intent.created_at <= now - self._orphan_age:
                await self._store.mark_create_ambiguous(
                    intent.tag,
                    error="Sweep stopped before Cloudflare answered",
                    now=now,
                    next_check_at=now,
                )
                adopted += 1
        if adopted:
            log.info("%d creates left open by a stopped process are being resolved by tag", adopted)
        return adopted

    async def resolve_due(self) -> int:
        """Look up every ambiguous create that is due; return how many were resolved."""
        resolved = 0
        if self._orphan_age:
            # Several replicas: one may have died mid-create at any time, not only before a start.
            await self.adopt_orphans()
        now = self._clock()
        for intent in await self._store.open_create_intents():
            if intent.state is not IntentState.AMBIGUOUS:
                continue  # a create in flight in this process: its own call resolves it
            if intent.next_check_at is not None and intent.next_check_at > now:
                continue
            if await self._resolve(intent):
                resolved += 1
        return resolved

    async def _resolve(self, intent: CreateIntent) -> bool:
        try:
            job = await self._client.find_job_by_tag(intent.tag)
        except CloudflareError as error:
            log.warning("cannot resolve create %s yet: %s", intent.tag, error.user_message())
            await self._reschedule(intent, missed=False)
            return False
        now = self._clock()
        if job is not None:
            await self._store.finish_create(intent.tag, job, now=now)
            log.info("resolved create %s: Cloudflare has it as job %s", intent.tag, job.job_id)
            self._wake_notifier()
            return True
        misses = intent.misses + 1
        if misses < MISSES_TO_FAIL or now < intent.created_at + self._settle:
            await self._reschedule(intent, missed=True)
            return False
        reason = "Cloudflare has no job with this request's tag: it was not created"
        decided = await self._store.fail_create(
            intent.tag,
            error=reason,
            now=now,
            audit=AuditEntry(
                at=now,
                actor=intent.requester,
                action=AuditAction.CREATE.value,
                channel_id=intent.channel_id,
                outcome=f"error: {reason}",
                detail=f"request tag {intent.tag}; {misses} look-ups found nothing",
            ),
            notice=not_created_notice(intent, reason),
        )
        if decided:
            log.info("create %s never reached Cloudflare; the requester is told", intent.tag)
            self._wake_notifier()
        return decided

    async def _reschedule(self, intent: CreateIntent, *, missed: bool) -> None:
        now = self._clock()
        delay = capped_exponential(FIRST_CHECK_SECONDS, intent.checks, cap=MAX_CHECK_SECONDS)
        due = now + timedelta(seconds=delay)
        if missed:
            # Absence is only proof once the settle time has passed: look again no earlier than that.
            due = max(due, min(intent.created_at + self._settle, now + timedelta(seconds=MAX_CHECK_SECONDS)))
        await self._store.schedule_create_check(intent.tag, now=now, next_check_at=due, missed=missed)

    async def _next_due_in(self) -> float:
        now = self._clock()
        due: list[datetime] = []
        for i in await self._store.open_create_intents():
            if i.state is IntentState.AMBIGUOUS and i.next_check_at is not None:
                due.append(i.next_check_at)
            elif i.state is IntentState.OPEN and self._orphan_age:
                due.append(i.created_at + self._orphan_age)
        if not due:
            return IDLE_SECONDS
        return min(max((min(due) - now).total_seconds(), 0.0), IDLE_SECONDS)

    async def run(self, stop: asyncio.Event) -> None:
        """Resolve due creates until `stop` is set; never crash."""
        while not stop.is_set():
            try:
                if self._leader is None or self._leader():
                    await self.resolve_due()
                    timeout = await self._next_due_in()
                else:
                    timeout = FIRST_CHECK_SECONDS  # another replica resolves; look again if it stops
            except Exception:  # noqa: BLE001 - e.g. a locked database: try again shortly
                log.exception("create resolver cycle failed")
                timeout = FIRST_CHECK_SECONDS
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait(
                    {waiter, stopper}, timeout=max(timeout, 0.05), return_when="FIRST_COMPLETED"
                )
            finally:
                for task in (waiter, stopper):
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(waiter, stopper, return_exceptions=True)
            self._wake.clear()
