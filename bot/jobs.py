"""Sweep's use cases — preview, create, cancel, list, status, watch — with no Slack types.

Handlers call these after acknowledging Slack; every Cloudflare call happens here. Errors from
Cloudflare propagate as `CloudflareError` (carrying Cloudflare's code and message) for the caller
to show; refusals that are part of the domain come back as values, not exceptions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.cloudflare.client import CloudflareClient, make_request_tag
from bot.cloudflare.errors import CloudflareError, ConflictError, NotFoundError
from bot.cloudflare.models import (
    SEARCHABLE_DISPOSITIONS,
    BulkJob,
    MessageSummary,
    Page,
    SearchParams,
    SearchResult,
)
from bot.grammar import JobDraft
from bot.models import AuditAction, AuditEntry, TrackedJob
from bot.store import Store
from bot.tracker import Tracker

log = logging.getLogger("sweep.jobs")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """Return the current time in UTC (the default clock)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel did: the job's state afterwards, and whether it had already finished."""

    job: BulkJob | None
    tracked: TrackedJob | None
    already_finished: bool


def _preview_search(params: SearchParams) -> tuple[SearchParams, Callable[[MessageSummary], bool]]:
    """Split a bulk-job search into what the investigate search accepts and a local filter.

    The search accepts fewer dispositions than a bulk job and cannot filter on submissions; such a
    disposition is applied to the fetched results instead (the client handles `exact_subject`).
    """
    disposition = str(params.final_disposition) if params.final_disposition is not None else None
    if disposition is None or disposition in SEARCHABLE_DISPOSITIONS:
        return params.model_copy(update={"submissions": None}), lambda _: True
    searchable = params.model_copy(update={"submissions": None, "final_disposition": None})
    return searchable, lambda message: str(message.final_disposition) == disposition


class JobService:
    """The use cases behind every Slack surface; one instance per process."""

    def __init__(
        self,
        *,
        client: CloudflareClient,
        store: Store,
        tracker: Tracker,
        account_id: str,
        wake_notifier: Callable[[], None],
        preview_limit: int = 1000,
        clock: Clock = utc_now,
    ) -> None:
        self._client = client
        self._store = store
        self._tracker = tracker
        self._account_id = account_id
        self._wake_notifier = wake_notifier
        self.preview_limit = preview_limit
        self._clock = clock

    async def preview(self, draft: JobDraft) -> SearchResult:
        """Return how many messages the draft's search matches now, with samples (capped)."""
        search, keep = _preview_search(draft.search_params)
        # One page holds the whole preview: fewer round trips than the default page size.
        result = await self._client.search_messages(
            search, limit=self.preview_limit, per_page=min(self.preview_limit, 1000)
        )
        return SearchResult(messages=[m for m in result.messages if keep(m)], capped=result.capped)

    async def create(self, draft: JobDraft, *, requester: str, channel_id: str) -> TrackedJob:
        """Create the bulk job at Cloudflare and start tracking it; its card is posted by the notifier.

        The intent is recorded before the call, so a crash mid-create is resolved at restart by
        looking the job up by its request tag — never by creating it twice.
        """
        request = draft.to_request(requester_label=f"@{requester}", channel_label=f"#{channel_id}")
        tag = make_request_tag()
        now = self._clock()
        await self._store.begin_create(
            tag,
            account_id=self._account_id,
            requester=requester,
            channel_id=channel_id,
            request=request,
            now=now,
        )
        try:
            job = await self._client.create_job(request, request_tag=tag)
        except CloudflareError as error:
            await self._store.fail_create(tag, error=error.user_message(), now=self._clock())
            await self._audit(
                requester, AuditAction.CREATE, None, channel_id, f"error: {error.user_message()}"
            )
            raise
        tracked = await self._store.finish_create(tag, job, now=self._clock())
        self._wake_notifier()
        log.info("created job %s (%s) for %s in %s", job.job_id, job.action_type, requester, channel_id)
        return tracked

    async def cancel(self, job_id: str, *, actor: str, channel_id: str | None = None) -> CancelOutcome:
        """Cancel a job; cancelling a finished (or already cancelled) job is harmless and says so."""
        tracked = await self._store.get_job(job_id)
        if tracked is not None and tracked.is_terminal:
            await self._audit(actor, AuditAction.CANCEL, job_id, channel_id, "noop: already finished")
            return CancelOutcome(job=None, tracked=tracked, already_finished=True)
        try:
            job = await self._client.cancel_job(job_id)
            already_finished = False
        except ConflictError:
            job = await self._client.get_job(job_id)
            already_finished = True
        except NotFoundError:
            await self._audit(actor, AuditAction.CANCEL, job_id, channel_id, "error: not found")
            raise
        except CloudflareError as error:
            await self._audit(actor, AuditAction.CANCEL, job_id, channel_id, f"error: {error.user_message()}")
            raise
        if not already_finished and tracked is not None:
            await self._store.set_cancelled_by(job_id, actor)
        await self._store.apply_snapshots([job], now=self._clock())
        self._wake_notifier()
        outcome = "noop: already finished" if already_finished else "ok"
        await self._audit(actor, AuditAction.CANCEL, job_id, channel_id, outcome)
        return CancelOutcome(
            job=job, tracked=await self._store.get_job(job_id), already_finished=already_finished
        )

    async def list_jobs(
        self, *, status: str | None, action_type: str | None, page: int, per_page: int = 10
    ) -> Page[BulkJob]:
        """Return one page of the account's recent jobs, newest first."""
        return await self._client.list_jobs(
            status=status, action_type=action_type, page=page, per_page=per_page
        )

    async def status(self, job_id: str) -> tuple[BulkJob, TrackedJob | None]:
        """Return Cloudflare's current view of a job, and Sweep's record of it if tracked."""
        job = await self._client.get_job(job_id)
        return job, await self._store.get_job(job_id)

    async def watch(self, job_id: str, *, requester: str, channel_id: str) -> tuple[TrackedJob, bool]:
        """Start tracking a job created elsewhere; its card is posted by the notifier."""
        tracked, is_new = await self._tracker.watch(job_id, requester=requester, channel_id=channel_id)
        await self._audit(
            requester, AuditAction.WATCH, job_id, channel_id, "ok" if is_new else "noop: tracked"
        )
        return tracked, is_new

    async def record_refusal(self, actor: str, what: str, channel_id: str | None, reason: str) -> None:
        """Write a refused attempt to the audit log."""
        await self._audit(actor, AuditAction.DENIED, None, channel_id, f"refused: {reason}", detail=what)

    async def _audit(
        self,
        actor: str,
        action: AuditAction,
        job_id: str | None,
        channel_id: str | None,
        outcome: str,
        *,
        detail: str | None = None,
    ) -> None:
        await self._store.add_audit(
            AuditEntry(
                at=self._clock(),
                actor=actor,
                action=action.value,
                job_id=job_id,
                channel_id=channel_id,
                outcome=outcome,
                detail=detail,
            )
        )
