"""The two-person rule as use cases: confirm (create, or ask for approval), approve, reject, expire.

`bot/approval.py` says *when* a job needs a second person (pure rules); this module acts on it, with
no Slack types. Confirming a preview that needs approval does not create a job: it stores an
approval request — the canonical request and its hash, the previewed count and samples, the reasons,
requester, channel, justification and agreed maximum — using the preview in the same transaction,
and queues the request message (Approve / Reject) through the outbox.

Approving re-reads the stored request, never a payload: the requester can never approve, the hash is
checked against the stored canonical request, and the create goes through the create-intent path
(the approval and the intent commit together, before the POST), so double clicks, Slack retries,
two approvers at once or a crash between the click and the POST make one job or a clear notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.approval import ApprovalPolicy, agreed_maximum
from bot.clock import Clock, utc_now
from bot.cloudflare.client import make_request_tag
from bot.draft import COMMENT_MAX, JobDraft, hidden_character_problem, validate_draft
from bot.jobs import Confirmable, CreateOutcome, CreateStatus, JobService
from bot.models import Approval, ApprovalReason, ApprovalState, MessageSummary
from bot.store import Store
from bot.throttle import BudgetKind

__all__ = [
    "SWEEP_IDLE_SECONDS",
    "ApprovalOutcome",
    "ApprovalService",
    "Verdict",
    "canonical_hash",
    "canonical_json",
    "canonical_request",
]

log = logging.getLogger("sweep.approvals")

#: The longest the expiry sweep sleeps when nothing is due sooner (a new request wakes it).
SWEEP_IDLE_SECONDS = 30.0
_JUSTIFICATION_NEEDED = (
    "this job needs a second person's approval, and an approval request needs a justification"
)


def canonical_request(draft: JobDraft) -> JobDraft:
    """Return the request a second person approves: action, folder, every search field — no comment.

    Dates are absolute already (the grammar and the form resolve `since:` and "now" when parsing).
    """
    return draft.model_copy(update={"comment": None})


def canonical_json(draft: JobDraft) -> str:
    """Return the canonical request's JSON (what is stored and hashed)."""
    return canonical_request(draft).model_dump_json(exclude_none=True)


def canonical_hash(text: str) -> str:
    """Return the hash of a canonical request's JSON."""
    return hashlib.sha256(text.encode()).hexdigest()


class Verdict(StrEnum):
    """What an Approve or Reject click did."""

    APPROVED = "approved"  # this click approved it (the job is created, or its outcome is being resolved)
    REJECTED = "rejected"
    REFUSED = "refused"  # not allowed, or no longer possible: `reason` says why


@dataclass(frozen=True)
class ApprovalOutcome:
    """What deciding an approval did: the approval as it is now, and the create's outcome if approved."""

    decision: Verdict
    approval: Approval | None = None
    create: CreateOutcome | None = None
    reason: str | None = None


class ApprovalService:
    """Confirm, approve, reject and expire approval requests; one instance per process."""

    def __init__(
        self,
        *,
        jobs: JobService,
        store: Store,
        policy: ApprovalPolicy,
        account_id: str,
        wake_notifier: Callable[[], None],
        clock: Clock = utc_now,
    ) -> None:
        self._jobs = jobs
        self._store = store
        self.policy = policy
        self._account_id = account_id
        self._wake_notifier = wake_notifier
        self._clock = clock
        self._wake = asyncio.Event()

    # ------------------------------------------------------------------ confirm

    def reasons_for(self, draft: JobDraft, *, matched: int, capped: bool) -> list[ApprovalReason]:
        """Return why this draft, previewed at `matched`, needs a second person (empty: it does not)."""
        found = self._jobs.approval_reasons(draft, matched=matched, capped=capped)  # what the preview said
        return [ApprovalReason(code=str(r.code), text=r.text, narrow=r.narrow) for r in found]

    async def confirm(
        self,
        preview_id: str,
        *,
        actor: str,
        click_channel_id: str | None = None,
        confirm_check: Callable[[JobDraft], str | None] | None = None,
        on_recorded: Callable[[], Awaitable[None]] | None = None,
        shown: JobDraft | None = None,
        justification: str | None = None,
    ) -> CreateOutcome:
        """Confirm a preview: create it, or — when the policy asks for a second person — request approval.

        The checks are the create's (`JobService.check_confirm`). A job that needs approval needs a
        justification (`justification`, else the draft's comment): without one nothing changes and
        NEEDS_JUSTIFICATION says so, the preview still usable. A second confirm of a preview whose
        request exists says ALREADY_REQUESTED.
        """
        checked = await self._jobs.check_confirm(
            preview_id,
            actor=actor,
            click_channel_id=click_channel_id,
            confirm_check=confirm_check,
            shown=shown,
        )
        if isinstance(checked, CreateOutcome):
            if checked.status is CreateStatus.ALREADY_CONFIRMED:
                # The preview was used: by an approval request (a double click), or by a create.
                existing = await self._store.approval_for_preview(preview_id)
                if existing is not None:
                    return CreateOutcome(
                        CreateStatus.ALREADY_REQUESTED, channel_id=existing.channel_id, approval=existing
                    )
            return checked
        record = checked.record
        reasons = self.reasons_for(checked.draft, matched=record.matched or 0, capped=record.capped)
        if not reasons:
            return await self._jobs.create_checked(checked, actor=actor, on_recorded=on_recorded)
        why = (justification if justification is not None else checked.draft.comment or "").strip()
        problem = _justification_problem(why)
        if problem is not None:
            await self._jobs.record_refusal(actor, "request approval", record.channel_id, problem)
            return CreateOutcome(
                CreateStatus.NEEDS_JUSTIFICATION,
                channel_id=record.channel_id,
                reason=problem,
                reasons=tuple(r.text for r in reasons),
            )
        return await self._request(checked, actor=actor, justification=why, reasons=reasons)

    async def _request(
        self, checked: Confirmable, *, actor: str, justification: str, reasons: list[ApprovalReason]
    ) -> CreateOutcome:
        record, draft = checked.record, checked.draft
        now = self._clock()
        text = canonical_json(draft)
        samples = [MessageSummary.model_validate(s) for s in _samples(record.samples_json)]
        approval = Approval(
            id=secrets.token_urlsafe(16),
            preview_id=record.id,
            requester=actor,
            channel_id=record.channel_id,
            request=canonical_request(draft),
            request_hash=canonical_hash(text),
            justification=justification,
            matched=record.matched or 0,
            capped=record.capped,
            samples=samples,
            reasons=reasons,
            agreed_max=agreed_maximum(record.matched or 0, self.policy.margin_percent),
            state=ApprovalState.PENDING,
            expires_at=now + self.policy.ttl,
            created_at=now,
        )
        if not await self._store.request_approval(approval, request_json=text, now=now):
            # Another click used the preview first (or it expired meanwhile): say what it did.
            existing = await self._store.approval_for_preview(record.id)
            if existing is not None:
                return CreateOutcome(
                    CreateStatus.ALREADY_REQUESTED, channel_id=existing.channel_id, approval=existing
                )
            latest = await self._jobs.check_confirm(record.id, actor=actor)
            if isinstance(latest, CreateOutcome):
                return latest
            return CreateOutcome(
                CreateStatus.REFUSED, channel_id=record.channel_id, reason="this preview could not be used"
            )
        self._wake_notifier()
        self._wake.set()
        log.info("approval %s requested by %s in %s", approval.id, actor, approval.channel_id)
        return CreateOutcome(
            CreateStatus.AWAITING_APPROVAL,
            channel_id=approval.channel_id,
            approval=approval,
            reasons=tuple(r.text for r in reasons),
        )

    # ------------------------------------------------------------------ decide

    async def get(self, approval_id: str) -> Approval | None:
        """Return a stored approval, or None."""
        return await self._store.get_approval(approval_id)

    async def _refuse(
        self, actor: str, approval: Approval | None, reason: str, *, channel_id: str | None, what: str
    ) -> ApprovalOutcome:
        await self._jobs.record_refusal(
            actor, f"{what} {approval.id}" if approval is not None else what, channel_id, reason
        )
        log.info("%s refused for %s: %s", what, actor, reason)
        return ApprovalOutcome(Verdict.REFUSED, approval=approval, reason=reason)

    def _undecidable(self, approval: Approval, *, now: datetime) -> str | None:
        """Say why this approval can no longer be decided, or None while it is pending and in time."""
        who = f"<@{approval.decided_by}>" if approval.decided_by else "someone"
        if approval.state is ApprovalState.APPROVED:
            return f"this request was already approved by {who}"
        if approval.state is ApprovalState.REJECTED:
            return f"this request was rejected by {who}; nothing can be approved from it"
        if approval.is_expired(now):
            return "this request expired before anyone approved it; run the command again to ask anew"
        return None

    async def approve(
        self,
        approval_id: str,
        *,
        actor: str,
        click_channel_id: str | None,
        on_recorded: Callable[[], Awaitable[None]] | None = None,
    ) -> ApprovalOutcome:
        """Approve a pending request by someone other than its requester, and create its job exactly once.

        The caller has checked that `actor` may approve here (`Operation.APPROVE`). Every refusal is
        audited with why. `on_recorded` runs once the approval and its create intent are recorded.
        """
        now = self._clock()
        approval = await self._store.get_approval(approval_id)
        if approval is None:
            return await self._refuse(
                actor,
                None,
                "this approval request is not known to Sweep",
                channel_id=click_channel_id,
                what="approve",
            )
        if click_channel_id is not None and click_channel_id != approval.channel_id:
            return await self._refuse(
                actor,
                approval,
                "this request was made in another channel",
                channel_id=click_channel_id,
                what="approve",
            )
        if actor == approval.requester:
            return await self._refuse(
                actor,
                approval,
                "you asked for this job, so someone else must approve it (two people, always)",
                channel_id=approval.channel_id,
                what="approve",
            )
        if (why := self._undecidable(approval, now=now)) is not None:
            return await self._refuse(actor, approval, why, channel_id=approval.channel_id, what="approve")
        stored = await self._store.approval_request_text(approval_id)
        if stored is None or canonical_hash(stored) != approval.request_hash:
            return await self._refuse(
                actor,
                approval,
                "the stored request does not match its hash, so it is not what was previewed; "
                "nothing was created",
                channel_id=approval.channel_id,
                what="approve",
            )
        draft = JobDraft.model_validate_json(stored).model_copy(update={"comment": approval.justification})
        if (problem := validate_draft(draft)) is not None:
            return await self._refuse(
                actor, approval, problem, channel_id=approval.channel_id, what="approve"
            )
        if (busy := await self._jobs.too_many_active()) is not None:
            return await self._refuse(actor, approval, busy, channel_id=approval.channel_id, what="approve")
        await self._jobs.spend(BudgetKind.WRITE, actor, approval.channel_id)
        request = draft.to_request(
            requester_label=f"@{approval.requester}",
            channel_label=f"#{approval.channel_id}",
            approver_label=f"@{actor}",
        )
        tag = make_request_tag()
        before = await self._store.approve(
            approval_id,
            approver=actor,
            tag=tag,
            account_id=self._account_id,
            request=request,
            now=self._clock(),
        )
        if before is None or before.state is not ApprovalState.PENDING or before.expires_at <= self._clock():
            # Another approver (or the expiry sweep) decided it first: say what happened instead.
            latest = await self._store.get_approval(approval_id) or before
            why = self._undecidable(latest, now=self._clock()) if latest is not None else None
            return await self._refuse(
                actor,
                latest,
                why or "this request was decided meanwhile",
                channel_id=approval.channel_id,
                what="approve",
            )
        self._wake_notifier()
        approved = await self._store.get_approval(approval_id)
        log.info("approval %s approved by %s (request tag %s)", approval_id, actor, tag)
        if on_recorded is not None:
            await on_recorded()
        created = await self._jobs.send_create(tag, request, actor=actor, channel_id=approval.channel_id)
        return ApprovalOutcome(Verdict.APPROVED, approval=approved, create=created)

    async def check_reject(
        self, approval_id: str, *, actor: str, click_channel_id: str | None
    ) -> ApprovalOutcome | Approval:
        """Return the approval `actor` may reject now (before asking for a reason), or the refusal."""
        approval = await self._store.get_approval(approval_id)
        if approval is None:
            return await self._refuse(
                actor,
                None,
                "this approval request is not known to Sweep",
                channel_id=click_channel_id,
                what="reject",
            )
        if click_channel_id is not None and click_channel_id != approval.channel_id:
            return await self._refuse(
                actor,
                approval,
                "this request was made in another channel",
                channel_id=click_channel_id,
                what="reject",
            )
        if (why := self._undecidable(approval, now=self._clock())) is not None:
            return await self._refuse(actor, approval, why, channel_id=approval.channel_id, what="reject")
        return approval

    async def reject(self, approval_id: str, *, actor: str, note: str | None) -> ApprovalOutcome:
        """Reject a pending request (the caller checked `actor` may), with an optional reason."""
        checked = await self.check_reject(approval_id, actor=actor, click_channel_id=None)
        if isinstance(checked, ApprovalOutcome):
            return checked
        reason = (note or "").strip() or None
        if reason is not None and (problem := hidden_character_problem(reason)) is not None:
            return ApprovalOutcome(Verdict.REFUSED, approval=checked, reason=f"the reason {problem}")
        before = await self._store.reject(approval_id, by=actor, note=reason, now=self._clock())
        if before is None or before.state is not ApprovalState.PENDING or before.expires_at <= self._clock():
            latest = await self._store.get_approval(approval_id) or before
            why = self._undecidable(latest, now=self._clock()) if latest is not None else None
            return await self._refuse(
                actor,
                latest,
                why or "this request was decided meanwhile",
                channel_id=checked.channel_id,
                what="reject",
            )
        self._wake_notifier()
        log.info("approval %s rejected by %s", approval_id, actor)
        return ApprovalOutcome(Verdict.REJECTED, approval=await self._store.get_approval(approval_id))

    # ------------------------------------------------------------------ expire

    async def expire_due(self) -> int:
        """Expire every pending request past its expiry (each once, whichever replica); return how many."""
        expired = await self._store.expire_approvals(now=self._clock())
        if expired:
            log.info("%d approval requests expired undecided", len(expired))
            self._wake_notifier()
        return len(expired)

    def wake(self) -> None:
        """Look at the expiries now (a request was just stored)."""
        self._wake.set()

    async def _next_due_in(self) -> float:
        due = await self._store.next_approval_expiry()
        if due is None:
            return SWEEP_IDLE_SECONDS
        return min(max((due - self._clock()).total_seconds(), 0.0), SWEEP_IDLE_SECONDS)

    async def run(self, stop: asyncio.Event) -> None:
        """Expire undecided requests as they fall due until `stop` is set; never crash."""
        while not stop.is_set():
            try:
                await self.expire_due()
                timeout = await self._next_due_in()
            except Exception:  # noqa: BLE001 - e.g. a locked database: try again shortly
                log.exception("approval expiry sweep failed")
                timeout = 5.0
            waiter = asyncio.ensure_future(self._wake.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                # A little past the due time: an expiry is never marked a moment early.
                await asyncio.wait(
                    {waiter, stopper}, timeout=max(timeout, 0.05) + 0.05, return_when="FIRST_COMPLETED"
                )
            finally:
                for task in (waiter, stopper):
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(waiter, stopper, return_exceptions=True)
            self._wake.clear()


def _justification_problem(text: str) -> str | None:
    if not text:
        return _JUSTIFICATION_NEEDED
    if len(text) > COMMENT_MAX:
        return f"the justification is longer than {COMMENT_MAX} characters"
    if (problem := hidden_character_problem(text)) is not None:
        return f"the justification {problem}"
    return None


def _samples(text: str | None) -> list[object]:
    if not text:
        return []
    try:
        found = json.loads(text)
    except ValueError:
        return []
    return list(found) if isinstance(found, list) else []
