"""Sweep's own domain models, shared by the store, tracker, notifier, use cases and block builders.

Nothing here knows about Slack's API or SQL: these are the values passed between layers. Handlers
and blocks take their vocabulary from here, never from `bot.cloudflare`.

The value types that say *what to search and what to do* (search parameters, action, folder,
disposition and delivery enums, a found message, a capped search result, the unknown-count
sentinel) are Sweep's vocabulary as much as the API's: they are defined once, in
`bot.cloudflare.models` (which may import nothing of the bot), and adopted here. The API's
envelopes and resources (`BulkJob`, `Page`, `CreateJobRequest`, …) are not: the use cases turn
them into `TrackedJob`, `JobPage` and `JobLookup` below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from bot.cloudflare.models import (
    UNKNOWN_COUNT,
    ActionType,
    BulkJob,
    DeliveryStatus,
    Destination,
    Disposition,
    JobStatus,
    MessageSummary,
    SearchParams,
    SearchResult,
    is_known_count,
    is_terminal,
)
from bot.draft import JobDraft

__all__ = [
    "UNKNOWN_COUNT",
    "ActionType",
    "Approval",
    "ApprovalReason",
    "ApprovalState",
    "AuditAction",
    "AuditEntry",
    "DeliveryStatus",
    "Destination",
    "Disposition",
    "JobLookup",
    "JobPage",
    "JobStatus",
    "MessageSummary",
    "SearchParams",
    "SearchResult",
    "TrackedJob",
    "is_known_count",
    "is_terminal",
]


class TrackedJob(BaseModel):
    """A bulk job Sweep watches, with its last known Cloudflare state and where its card lives."""

    model_config = ConfigDict(frozen=True)

    job_id: str
    account_id: str
    action_type: str
    destination: str | None = None
    search_params: SearchParams = Field(default_factory=SearchParams)
    comment: str | None = None
    requester: str | None = None  # Slack user id of whoever asked (None for jobs created elsewhere)
    channel_id: str | None = None
    card_ts: str | None = None  # ts of the card message, once posted
    status: str
    total_messages_discovered: int = 0
    messages_pending: int = 0
    messages_successful: int = 0
    messages_failed: int = 0
    messages_cancelled: int | None = None
    messages_skipped: int | None = None
    status_message: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    cancelled_by: str | None = None  # Slack user id of whoever cancelled from Slack
    gone: bool = False  # the job disappeared from Cloudflare (deleted elsewhere)
    card_dead: bool = False  # Slack said the card or its channel no longer exists
    last_error: str | None = None
    updated_at: datetime
    agreed_max: int | None = None  # most messages it may discover (None: not created from a preview)
    overshoot: int | None = None  # discovered when Sweep cancelled it for going past `agreed_max`

    @property
    def is_terminal(self) -> bool:
        """Return True when the job will not change any more (or vanished)."""
        return self.gone or is_terminal(self.status)

    @property
    def processed(self) -> int:
        """Return how many discovered messages are no longer pending (`UNKNOWN_COUNT` when unknown)."""
        if not (is_known_count(self.total_messages_discovered) and is_known_count(self.messages_pending)):
            return UNKNOWN_COUNT
        return max(self.total_messages_discovered - self.messages_pending, 0)

    @classmethod
    def from_job(
        cls,
        job: BulkJob,
        *,
        account_id: str,
        now: datetime,
        requester: str | None = None,
        channel_id: str | None = None,
        agreed_max: int | None = None,
    ) -> TrackedJob:
        """Build the tracked form of a job Cloudflare just returned."""
        return cls(
            job_id=job.job_id,
            account_id=account_id,
            action_type=str(job.action_type),
            destination=job.destination,
            search_params=job.search_params,
            comment=job.comment,
            requester=requester,
            channel_id=channel_id,
            status=str(job.status),
            total_messages_discovered=job.total_messages_discovered,
            messages_pending=job.messages_pending,
            messages_successful=job.messages_successful,
            messages_failed=job.messages_failed,
            messages_cancelled=job.messages_cancelled,
            messages_skipped=job.messages_skipped,
            status_message=job.status_message,
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
            updated_at=now,
            agreed_max=agreed_max,
        )


@dataclass(frozen=True)
class JobPage:
    """One page of the account's recent jobs, newest first (`page` is 1-based)."""

    jobs: tuple[TrackedJob, ...]
    page: int
    per_page: int

    @property
    def has_more(self) -> bool:
        """Return True when a full page came back, so a next one may exist (the API gives no total)."""
        return len(self.jobs) == self.per_page


@dataclass(frozen=True)
class JobLookup:
    """A job as Cloudflare reports it now, and whether Sweep tracks it (a card in a channel)."""

    job: TrackedJob
    tracked: bool


#: The audit actor of what Sweep does by itself (an automatic cancel).
SWEEP_ACTOR = "sweep"


@dataclass(frozen=True)
class Overshoot:
    """A running job that discovered more messages than its agreed maximum."""

    job_id: str
    discovered: int
    agreed_max: int


class AuditAction(StrEnum):
    CREATE = "create"
    CANCEL = "cancel"
    WATCH = "watch"
    DENIED = "denied"
    AUTO_CANCEL = "auto_cancel"  # Sweep cancelled a job that discovered more than was agreed
    APPROVAL_REQUESTED = "approval_requested"
    APPROVE = "approve"
    REJECT = "reject"
    APPROVAL_EXPIRED = "approval_expired"


class AuditEntry(BaseModel):
    """One line of the append-only audit log: who did what to which job, when, and how it went."""

    model_config = ConfigDict(frozen=True)

    id: int | None = None
    at: datetime
    actor: str  # Slack user id, or "sweep" for the bot itself
    action: str
    job_id: str | None = None
    channel_id: str | None = None
    outcome: str  # "ok", "error: …", "refused: …"
    detail: str | None = None


class ApprovalState(StrEnum):
    PENDING = "pending"  # waiting for a second person
    APPROVED = "approved"  # approved: its create intent carries the job
    REJECTED = "rejected"
    EXPIRED = "expired"  # nobody decided before `expires_at`


class ApprovalReason(BaseModel):
    """Why a job needs a second person (`bot.approval.Reason`, as stored and shown)."""

    model_config = ConfigDict(frozen=True)

    code: str
    text: str
    narrow: str | None = None


class Approval(BaseModel):
    """A job waiting for (or decided by) a second person: exactly the request that was previewed.

    `request` is the canonical request — action, folder, every search field with absolute dates,
    `detections_only` — with no comment; `request_hash` is the hash of its canonical JSON, checked
    again before the job is created. `justification` is the requester's comment.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    preview_id: str
    requester: str
    channel_id: str
    request: JobDraft
    request_hash: str
    justification: str
    matched: int
    capped: bool = False
    samples: list[MessageSummary] = Field(default_factory=list)
    reasons: list[ApprovalReason] = Field(default_factory=list)
    agreed_max: int
    state: ApprovalState
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None  # the reason given for a rejection
    tag: str | None = None  # the create intent's request tag, once approved
    expires_at: datetime
    created_at: datetime

    def is_expired(self, now: datetime) -> bool:
        """Return True when it can no longer be approved because its time ran out (or it was expired)."""
        return self.state is ApprovalState.EXPIRED or (
            self.state is ApprovalState.PENDING and self.expires_at <= now
        )
