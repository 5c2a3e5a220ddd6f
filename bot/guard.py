"""The auto-cancel use case: stop a job Sweep created once it discovers more than was agreed.

The tracker reports overshoots (a running job whose `total_messages_discovered` is above its
agreed maximum: the previewed count plus `SWEEP_APPROVAL_MARGIN`) in the cycle that sees them;
`OvershootGuard` cancels each through the Cloudflare client at once and records it (card line, one
thread reply, audit entry with actor `sweep`). A cancel that fails is logged and tried again on the
next cycle (the job is still over its maximum then); it never breaks the cycle.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from bot.clock import Clock, utc_now
from bot.cloudflare.client import CloudflareClient
from bot.cloudflare.errors import CloudflareError, ConflictError, NotFoundError
from bot.models import Overshoot
from bot.store import Store

__all__ = ["OvershootGuard"]

log = logging.getLogger("sweep.guard")


class OvershootGuard:
    """Cancels jobs that went past their agreed maximum (called by the tracker each cycle)."""

    def __init__(
        self,
        *,
        client: CloudflareClient,
        store: Store,
        wake_notifier: Callable[[], None],
        clock: Clock = utc_now,
    ) -> None:
        self._client = client
        self._store = store
        self._wake_notifier = wake_notifier
        self._clock = clock
        self.cancelled = 0  # jobs this process cancelled automatically
        self.failures = 0  # cancels that failed (tried again next cycle)

    async def __call__(self, overshoots: Sequence[Overshoot]) -> None:
        """Cancel every job reported (concurrently); never raises for a Cloudflare failure."""
        if not overshoots:
            return
        results = await asyncio.gather(*(self._cancel(item) for item in overshoots))
        if any(results):
            self._wake_notifier()

    async def _cancel(self, overshoot: Overshoot) -> bool:
        job_id = overshoot.job_id
        try:
            try:
                job = await self._client.cancel_job(job_id)
                cancelled = True
            except ConflictError:  # it finished (or was cancelled) between the poll and the cancel
                job = await self._client.get_job(job_id)
                cancelled = False
        except NotFoundError:
            log.warning("job %s: gone before Sweep could cancel it", job_id, extra={"job_id": job_id})
            return False
        except CloudflareError as error:
            self.failures += 1
            log.warning(
                "job %s discovered %d messages, agreed at most %d: cancel failed (%s); retrying next cycle",
                job_id,
                overshoot.discovered,
                overshoot.agreed_max,
                error.user_message(),
                extra={"job_id": job_id},
            )
            return False
        first = await self._store.record_auto_cancel(job, overshoot, cancelled=cancelled, now=self._clock())
        if first:
            self.cancelled += 1
            log.warning(
                "job %s discovered %d messages, agreed at most %d: cancelled automatically",
                job_id,
                overshoot.discovered,
                overshoot.agreed_max,
                extra={"job_id": job_id},
            )
        return True
