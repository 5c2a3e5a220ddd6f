"""Sweep's use cases — preview, create, cancel, list, status, watch — with no Slack types.

Handlers call these after acknowledging Slack; every Cloudflare call happens here. Errors from
Cloudflare leave as Sweep's own (`bot.errors`: `JobNotFound`, `CloudflareFailed`, carrying
Cloudflare's code and message) and results as Sweep's own models (`bot.models`); refusals that
are part of the domain come back as values, not exceptions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from bot.approval import ApprovalPolicy, Reason, agreed_maximum, approval_reasons
from bot.clock import Clock, utc_now
from bot.cloudflare.budget import urgent
from bot.cloudflare.client import CloudflareClient, make_request_tag
from bot.cloudflare.errors import (
    BudgetExhaustedError,
    CloudflareError,
    ConflictError,
    CreateOutcomeUnknownError,
)
from bot.cloudflare.models import (
    SEARCHABLE_DISPOSITIONS,
    BulkJob,
    CreateJobRequest,
    MessageSummary,
    SearchParams,
    SearchResult,
)
from bot.creates import CreateResolver
from bot.draft import JobDraft, validate_draft
from bot.errors import CloudflareFailed, JobNotFound, failed, translated
from bot.models import Approval, AuditAction, AuditEntry, JobLookup, JobPage, TrackedJob
from bot.store import IntentState, PreviewRecord, PreviewState, Store
from bot.throttle import BudgetKind, RequestBudgets, ThrottledError

__all__ = [
    "PREVIEW_LIMIT",
    "PREVIEW_TTL",
    "SAMPLES_KEPT",
    "CancelOutcome",
    "Confirmable",
    "CreateOutcome",
    "CreateStatus",
    "JobService",
    "Preview",
    "PreviewUnusableError",
]

log = logging.getLogger("sweep.jobs")

#: A preview counts exactly up to this many messages (cursor pages of 1,000) before it says "more than".
PREVIEW_LIMIT = 10_000
PREVIEW_PAGE = 1000
#: How many of the active jobs a max-active refusal names.
_NAMED_ACTIVE = 3
#: How long a preview may be confirmed (Slack's response_url lives 30 minutes too).
PREVIEW_TTL = timedelta(minutes=30)
#: How many of a preview's sample messages are stored with it (what an approval request shows).
SAMPLES_KEPT = 5
_EXPIRED = "this preview expired; run the command again to see a fresh count"
_EDITED = (
    "the form's data changed after the preview was counted, so it is not what was previewed; "
    "run `/sweep new` again"
)


@dataclass(frozen=True)
class CancelOutcome:
    """What a cancel did: the job's state afterwards, and whether it had already finished."""

    job: TrackedJob
    already_finished: bool


class CreateStatus(StrEnum):
    CREATED = "created"
    UNKNOWN = "unknown"  # Cloudflare may have made it: being resolved by tag
    ALREADY_CONFIRMED = "already_confirmed"  # this preview was used before (double click, replay)
    REFUSED = "refused"  # the preview cannot be confirmed (unknown, expired, someone else's, forged)
    AWAITING_APPROVAL = "awaiting_approval"  # a second person must approve: a request was posted
    ALREADY_REQUESTED = "already_requested"  # this preview's approval request exists already
    NEEDS_JUSTIFICATION = "needs_justification"  # it needs approval, and approval needs a why


@dataclass(frozen=True)
class CreateOutcome:
    """What confirming a preview did; `reason` says why for REFUSED and UNKNOWN."""

    status: CreateStatus
    channel_id: str | None = None
    tracked: TrackedJob | None = None
    earlier_failed: bool = False  # ALREADY_CONFIRMED: the create that used this preview failed
    reason: str | None = None
    approval: Approval | None = None  # AWAITING_APPROVAL, ALREADY_REQUESTED: the stored request
    reasons: tuple[str, ...] = ()  # AWAITING_APPROVAL, NEEDS_JUSTIFICATION: why a second person


@dataclass(frozen=True)
class Confirmable:
    """A stored preview its requester may confirm now, and the draft it holds (`check_confirm`)."""

    record: PreviewRecord
    draft: JobDraft


class PreviewUnusableError(Exception):
    """A stored preview cannot be used for this (unknown, expired, someone else's, already used)."""


@dataclass(frozen=True)
class Preview:
    """A counted preview, stored server-side under `id` (what Confirm buttons and modals carry).

    `reasons` says why confirming it needs a second person (breadth first; empty: it does not).
    """

    id: str
    channel_id: str
    result: SearchResult
    reasons: tuple[Reason, ...] = ()


def request_hash(draft: JobDraft) -> str:
    """Return the hash of a draft's canonical form (action, folder, every search field, absolute dates)."""
    canonical = draft.model_dump_json(exclude_none=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def new_preview_id() -> str:
    """Return an unguessable one-time preview id."""
    return secrets.token_urlsafe(16)


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
        account_id: str,
        wake_notifier: Callable[[], None],
        resolver: CreateResolver | None = None,
        budgets: RequestBudgets | None = None,
        preview_limit: int = PREVIEW_LIMIT,
        margin_percent: float = 10.0,
        max_active_jobs: int | None = 20,
        approval_policy: ApprovalPolicy | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._client = client
        self._store = store
        self._account_id = account_id
        self._wake_notifier = wake_notifier
        self._resolver = resolver
        self._budgets = budgets or RequestBudgets(clock=clock)
        self.preview_limit = preview_limit
        self.margin_percent = margin_percent  # SWEEP_APPROVAL_MARGIN
        self.max_active_jobs = max_active_jobs  # SWEEP_MAX_ACTIVE_JOBS (None: no limit)
        self.approval_policy = approval_policy or ApprovalPolicy(margin_percent=margin_percent)
        self._clock = clock
        self._throttle_audited: dict[str, datetime] = {}

    # ------------------------------------------------------------------ budgets

    async def spend(self, kind: BudgetKind, actor: str, channel_id: str | None) -> None:
        """Count one Cloudflare-calling request, or raise ThrottledError (audited once a minute)."""
        try:
            self._budgets.take(kind, actor)
        except ThrottledError:
            now = self._clock()
            last = self._throttle_audited.get(actor)
            if last is None or now - last > timedelta(minutes=1):
                self._throttle_audited[actor] = now
                await self._audit(
                    actor, AuditAction.DENIED, None, channel_id, "refused: throttled", detail=str(kind)
                )
            raise

    async def claim_request(self, key: str) -> bool:
        """Claim a Slack request by key; False if it was handled before (a replay or a retry)."""
        return await self._store.claim_request(key, now=self._clock())

    # ------------------------------------------------------------------ previews

    async def open_form(self, *, requester: str, channel_id: str) -> str:
        """Record a create form opened by `requester` in `channel_id`; return the id its modal carries."""
        preview_id = new_preview_id()
        now = self._clock()
        await self._store.save_preview(
            preview_id,
            requester=requester,
            channel_id=channel_id,
            state=PreviewState.FORM,
            expires_at=now + PREVIEW_TTL,
            now=now,
        )
        return preview_id

    async def get_preview(self, preview_id: str) -> PreviewRecord | None:
        """Return a stored preview (or open form), or None."""
        return await self._store.get_preview(preview_id)

    async def preview(
        self, draft: JobDraft, *, requester: str, channel_id: str | None = None, preview_id: str | None = None
    ) -> Preview:
        """Count what the draft matches now (capped, with samples) and store it as a use-once preview.

        With `preview_id` (the modal), the form opened by the same requester is updated and its
        channel is the one recorded when it was opened; otherwise `channel_id` is where Slack says
        the command was typed.
        """
        now = self._clock()
        if preview_id is not None:
            record = await self._store.get_preview(preview_id)
            if record is None or record.requester != requester:
                raise PreviewUnusableError(
                    "This form is not known to Sweep any more; run `/sweep new` again."
                )
            if record.state is PreviewState.USED:
                raise PreviewUnusableError(
                    "This form was already confirmed; run `/sweep new` for another job."
                )
            channel_id = record.channel_id
        if channel_id is None:
            raise ValueError("a preview needs a channel or the id of an open form")
        await self.spend(BudgetKind.READ, requester, channel_id)
        search, keep = _preview_search(draft.search_params)
        # One more than the limit: exactly `preview_limit` matches is a count, not "more than".
        with translated():
            found = await self._client.search_messages(
                search, limit=self.preview_limit + 1, per_page=min(self.preview_limit, PREVIEW_PAGE)
            )
        capped = len(found.messages) > self.preview_limit
        counted = found.messages[: self.preview_limit]
        result = SearchResult(messages=[m for m in counted if keep(m)], capped=capped)
        stored_id = preview_id or new_preview_id()
        saved = await self._store.save_preview(
            stored_id,
            requester=requester,
            channel_id=channel_id,
            state=PreviewState.PREVIEWED,
            expires_at=self._clock() + PREVIEW_TTL,
            now=now,
            draft_json=draft.model_dump_json(exclude_none=True),
            request_hash=request_hash(draft),
            matched=len(result.messages),
            capped=result.capped,
            samples_json=json.dumps(
                [m.model_dump(mode="json", by_alias=True) for m in result.messages[:SAMPLES_KEPT]]
            ),
        )
        if not saved:
            raise PreviewUnusableError("This form was already confirmed; run `/sweep new` for another job.")
        reasons = self.approval_reasons(draft, matched=result.count, capped=result.capped)
        return Preview(id=stored_id, channel_id=channel_id, result=result, reasons=reasons)

    def approval_reasons(self, draft: JobDraft, *, matched: int, capped: bool) -> tuple[Reason, ...]:
        """Return why creating this draft, previewed at `matched` (`capped`), needs a second person."""
        # "More than N" says what the preview shows: the messages kept, or the limit if none were.
        counted_up_to = (matched or self.preview_limit) if capped else self.preview_limit
        return tuple(
            approval_reasons(
                self.approval_policy, draft, matched=matched, capped=capped, counted_up_to=counted_up_to
            )
        )

    # ------------------------------------------------------------------ create

    async def create_from_preview(
        self,
        preview_id: str,
        *,
        actor: str,
        click_channel_id: str | None = None,
        confirm_check: Callable[[JobDraft], str | None] | None = None,
        on_recorded: Callable[[], Awaitable[None]] | None = None,
        shown: JobDraft | None = None,
    ) -> CreateOutcome:
        """Create exactly the stored preview, once; a second confirm creates nothing and says so.

        `click_channel_id` is the channel Slack says a Confirm button was clicked in (None for the
        modal, whose channel was recorded when it was opened); it must be the preview's channel.
        `shown` is the draft the modal carried: if it is not what was previewed, nothing is created.
        The intent is recorded with the preview's use, in one transaction, before the POST, so a
        crash is resolved by tag later, never by creating twice. An ambiguous failure leaves the
        intent open for the resolver and says the outcome is unknown. `on_recorded` runs once the
        intent is recorded, before the POST (so "Creating the job…" is only ever said of a recorded
        create).
        """
        checked = await self.check_confirm(
            preview_id,
            actor=actor,
            click_channel_id=click_channel_id,
            confirm_check=confirm_check,
            shown=shown,
        )
        if isinstance(checked, CreateOutcome):
            return checked
        return await self.create_checked(checked, actor=actor, on_recorded=on_recorded)

    async def check_confirm(
        self,
        preview_id: str,
        *,
        actor: str,
        click_channel_id: str | None = None,
        confirm_check: Callable[[JobDraft], str | None] | None = None,
        shown: JobDraft | None = None,
    ) -> Confirmable | CreateOutcome:
        """Return the preview `actor` may confirm now, or the outcome that says why not (refusals audited).

        A preview used before gives ALREADY_CONFIRMED; an unknown, expired, someone else's or
        other channel's preview, a stored draft no form could have typed, a `shown` draft that is not
        the stored one, or a failed `confirm_check` gives REFUSED.
        """
        record = await self._store.get_preview(preview_id)
        refusal = self._refusal(record, actor=actor, click_channel_id=click_channel_id)
        if refusal is not None:
            await self._audit(
                actor, AuditAction.DENIED, None, click_channel_id, f"refused: {refusal}", detail="create"
            )
            return CreateOutcome(CreateStatus.REFUSED, channel_id=click_channel_id, reason=refusal)
        assert record is not None  # noqa: S101 - _refusal checked it
        if record.state is PreviewState.USED:
            return await self._already(record)
        draft = JobDraft.model_validate_json(record.draft_json or "")
        problem = validate_draft(draft)
        if problem is None and shown is not None and request_hash(shown) != record.request_hash:
            problem = _EDITED
        if problem is None and confirm_check is not None:
            problem = confirm_check(draft)
        if problem is not None:
            await self._audit(
                actor, AuditAction.DENIED, None, record.channel_id, f"refused: {problem}", detail="create"
            )
            return CreateOutcome(CreateStatus.REFUSED, channel_id=record.channel_id, reason=problem)
        return Confirmable(record=record, draft=draft)

    async def create_checked(
        self,
        checked: Confirmable,
        *,
        actor: str,
        on_recorded: Callable[[], Awaitable[None]] | None = None,
    ) -> CreateOutcome:
        """Create a checked preview (see `create_from_preview`): use it and record the intent, then POST."""
        record, draft = checked.record, checked.draft
        preview_id = record.id
        busy = await self.too_many_active()
        if busy is not None:
            await self._audit(
                actor, AuditAction.DENIED, None, record.channel_id, f"refused: {busy}", detail="create"
            )
            return CreateOutcome(CreateStatus.REFUSED, channel_id=record.channel_id, reason=busy)
        await self.spend(BudgetKind.WRITE, actor, record.channel_id)
        request = draft.to_request(requester_label=f"@{actor}", channel_label=f"#{record.channel_id}")
        tag = make_request_tag()
        before = await self._store.consume_preview(
            preview_id,
            tag=tag,
            account_id=self._account_id,
            request=request,
            now=self._clock(),
            agreed_max=agreed_maximum(record.matched or 0, self.margin_percent),
        )
        if before is None or before.state is not PreviewState.PREVIEWED or before.expires_at <= self._clock():
            # Another click got there first (or it expired meanwhile): read what it did.
            latest = await self._store.get_preview(preview_id)
            if latest is not None and latest.state is PreviewState.USED:
                return await self._already(latest)
            return CreateOutcome(CreateStatus.REFUSED, channel_id=record.channel_id, reason=_EXPIRED)
        if on_recorded is not None:
            await on_recorded()
        return await self.send_create(tag, request, actor=actor, channel_id=record.channel_id)

    async def too_many_active(self) -> str | None:
        """Say why one more job may not start now (SWEEP_MAX_ACTIVE_JOBS reached), or None."""
        if self.max_active_jobs is None:
            return None
        running, in_flight = await self._store.active_created(self._account_id)
        active = len(running) + in_flight
        if active < self.max_active_jobs:
            return None
        named = ", ".join(running[:_NAMED_ACTIVE])
        more = active - min(len(running), _NAMED_ACTIVE)
        listed = f"{named} and {more} more" if named and more else named or f"{more} being created"
        return (
            f"{active} jobs created by Sweep are still active in this account, the most allowed at once "
            f"is {self.max_active_jobs} (SWEEP_MAX_ACTIVE_JOBS): {listed}; "
            "wait for one to finish or cancel one, then confirm again"
        )

    def _refusal(
        self, record: PreviewRecord | None, *, actor: str, click_channel_id: str | None
    ) -> str | None:
        if record is None:
            return (
                "this preview is not known to Sweep (it may be from before an upgrade); run the command again"
            )
        if record.requester != actor:
            return "only the person who asked for this preview may confirm it"
        if click_channel_id is not None and click_channel_id != record.channel_id:
            return "this preview was made for another channel"
        if record.state is PreviewState.FORM or record.draft_json is None:
            return "nothing was previewed yet"
        if record.state is PreviewState.PREVIEWED and record.expires_at <= self._clock():
            return _EXPIRED
        return None

    async def _already(self, record: PreviewRecord) -> CreateOutcome:
        intent = await self._store.get_create_intent(record.tag) if record.tag else None
        tracked = await self._store.get_job(intent.job_id) if intent is not None and intent.job_id else None
        return CreateOutcome(
            CreateStatus.ALREADY_CONFIRMED,
            channel_id=record.channel_id,
            tracked=tracked,
            earlier_failed=intent is not None and intent.state is IntentState.FAILED,
            reason=intent.error if intent is not None else None,
        )

    async def send_create(
        self, tag: str, request: CreateJobRequest, *, actor: str, channel_id: str
    ) -> CreateOutcome:
        """POST a create recorded under `tag`; finish it, fail it or leave it unknown, by the answer."""
        try:
            job = await self._client.create_job(request, request_tag=tag)
        except CreateOutcomeUnknownError as error:
            now = self._clock()
            first_check = self._resolver.first_check_at(now) if self._resolver else now
            await self._store.mark_create_ambiguous(
                tag,
                error=error.user_message(),
                now=now,
                next_check_at=first_check,
                audit=AuditEntry(
                    at=now,
                    actor=actor,
                    action=AuditAction.CREATE.value,
                    channel_id=channel_id,
                    outcome=f"unknown: {error.user_message()}",
                    detail=f"request tag {tag}",
                ),
            )
            if self._resolver is not None:
                self._resolver.wake()
            log.warning("create %s for %s: outcome unknown (%s)", tag, actor, error.user_message())
            return CreateOutcome(
                CreateStatus.UNKNOWN,
                channel_id=channel_id,
                reason=error.user_message(),
            )
        except CloudflareError as error:
            await self._store.fail_create(tag, error=error.user_message(), now=self._clock())
            await self._audit(actor, AuditAction.CREATE, None, channel_id, f"error: {error.user_message()}")
            # Nothing was sent when the budget refused: the job was not made, and the user is told so.
            prefix = "No job was created. " if isinstance(error, BudgetExhaustedError) else ""
            raise failed(error, prefix=prefix) from error
        tracked = await self._store.finish_create(tag, job, now=self._clock())
        self._wake_notifier()
        log.info(
            "created job %s (%s) for %s in %s",
            job.job_id,
            job.action_type,
            actor,
            channel_id,
            extra={"job_id": job.job_id},
        )
        return CreateOutcome(CreateStatus.CREATED, channel_id=channel_id, tracked=tracked)

    async def cancel(self, job_id: str, *, actor: str, channel_id: str | None = None) -> CancelOutcome:
        """Cancel a job; cancelling a finished (or already cancelled) job is harmless and says so."""
        tracked = await self._store.get_job(job_id)
        if tracked is not None and tracked.is_terminal:
            await self._audit(actor, AuditAction.CANCEL, job_id, channel_id, "noop: already finished")
            return CancelOutcome(job=tracked, already_finished=True)
        await self.spend(BudgetKind.WRITE, actor, channel_id)
        try:
            with translated(job_id):
                try:
                    job = await self._client.cancel_job(job_id)
                    already_finished = False
                except ConflictError:
                    with urgent():  # still the cancel the user asked for
                        job = await self._client.get_job(job_id)
                    already_finished = True
        except JobNotFound:
            await self._audit(actor, AuditAction.CANCEL, job_id, channel_id, "error: not found")
            raise
        except CloudflareFailed as error:
            await self._audit(actor, AuditAction.CANCEL, job_id, channel_id, f"error: {error.user_message()}")
            raise
        if not already_finished and tracked is not None:
            await self._store.set_cancelled_by(job_id, actor)
        await self._store.apply_snapshots([job], now=self._clock())
        self._wake_notifier()
        outcome = "noop: already finished" if already_finished else "ok"
        await self._audit(actor, AuditAction.CANCEL, job_id, channel_id, outcome)
        after = await self._store.get_job(job_id) or self._untracked(job)
        return CancelOutcome(job=after, already_finished=already_finished)

    async def list_jobs(
        self,
        *,
        actor: str,
        status: str | None,
        action_type: str | None,
        page: int,
        per_page: int = 10,
        channel_id: str | None = None,
    ) -> JobPage:
        """Return one page of the account's recent jobs, newest first."""
        await self.spend(BudgetKind.READ, actor, channel_id)
        with translated():
            found = await self._client.list_jobs(
                status=status, action_type=action_type, page=page, per_page=per_page
            )
        return JobPage(jobs=tuple(self._untracked(job) for job in found.items), page=page, per_page=per_page)

    async def status(self, job_id: str, *, actor: str, channel_id: str | None = None) -> JobLookup:
        """Return Cloudflare's current view of a job, as Sweep's record of it when tracked."""
        await self.spend(BudgetKind.READ, actor, channel_id)
        with translated(job_id):
            job = await self._client.get_job(job_id)
        tracked = await self._store.get_job(job_id)
        if tracked is not None:
            return JobLookup(job=tracked, tracked=True)
        return JobLookup(job=self._untracked(job), tracked=False)

    def _untracked(self, job: BulkJob) -> TrackedJob:
        """Return Sweep's model of a job it does not track (no requester, channel or card)."""
        return TrackedJob.from_job(job, account_id=self._account_id, now=self._clock())

    async def watch(self, job_id: str, *, requester: str, channel_id: str) -> tuple[TrackedJob, bool]:
        """Start tracking a job created elsewhere (one GET); True if it was not tracked yet.

        Its card is posted by the notifier; the tracker follows it from the next cycle on.
        """
        await self.spend(BudgetKind.READ, requester, channel_id)
        with translated(job_id):
            job = await self._client.get_job(job_id)
        now = self._clock()
        tracked, is_new = await self._store.track_existing(
            job, account_id=self._account_id, requester=requester, channel_id=channel_id, now=now
        )
        if not is_new:
            await self._store.apply_snapshots([job], now=now)
            tracked = await self._store.get_job(job.job_id) or tracked
        self._wake_notifier()
        await self._audit(
            requester, AuditAction.WATCH, job_id, channel_id, "ok" if is_new else "noop: tracked"
        )
        return tracked, is_new

    async def record_refusal(self, actor: str, what: str, channel_id: str | None, reason: str) -> None:
        """Write a refused attempt to the audit log."""
        await self._audit(actor, AuditAction.DENIED, None, channel_id, f"refused: {reason}", detail=what)

    async def audit(
        self,
        actor: str,
        action: AuditAction,
        job_id: str | None,
        channel_id: str | None,
        outcome: str,
        *,
        detail: str | None = None,
    ) -> None:
        """Append one entry to the audit log, stamped with the service's clock."""
        await self._audit(actor, action, job_id, channel_id, outcome, detail=detail)

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
