"""The store's own values: what its methods take and return besides `bot.models` (never rows)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from bot.cloudflare.models import CreateJobRequest, is_terminal

CARD_KEY = "card"
AUTO_CANCEL_KEY = "auto_cancel"  # one reply per job saying Sweep cancelled it past its agreed maximum
GONE = "GONE"


class StoreError(Exception):
    """The store cannot do what was asked (unknown intent, database newer than this code…)."""


class StoreUnavailable(StoreError):
    """The database cannot be opened or reached (not a database, no server, bad URL…)."""


class IntentState(StrEnum):
    OPEN = "open"  # recorded, the POST not answered yet (or a crash came in between)
    AMBIGUOUS = "ambiguous"  # Cloudflare may have made the job: re-checked by tag until resolved
    DONE = "done"
    FAILED = "failed"


UNRESOLVED_INTENTS = (IntentState.OPEN, IntentState.AMBIGUOUS)


class OutboxKind(StrEnum):
    CARD_POST = "card_post"
    CARD_UPDATE = "card_update"
    TRANSITION = "transition"
    AUTO_CANCEL = "auto_cancel"
    APPROVAL_REQUEST = "approval_request"  # the approval request message (no job; key `approval:{id}`)
    APPROVAL_UPDATE = "approval_update"  # that message edited once decided, expired or carded


#: Kinds whose rows do not wait for their job's card (the notifier passes the registry's own set).
CARD_FREE_KINDS: frozenset[str] = frozenset({OutboxKind.CARD_POST.value})


def notice_kind(payload: dict[str, Any]) -> str:
    """Return the outbox kind of a notice: its own name (`payload["notice"]`, e.g. `create_not_made`)."""
    kind = payload.get("notice")
    if not isinstance(kind, str) or not kind:
        raise StoreError("a notice names its kind in payload['notice'] (e.g. create_not_made)")
    return kind


class OutboxState(StrEnum):
    PENDING = "pending"
    ATTEMPTING = "attempting"
    SENT = "sent"
    FAILED = "failed"


class PreviewState(StrEnum):
    FORM = "form"  # the create form is open; nothing previewed yet
    PREVIEWED = "previewed"  # counted and shown; may be confirmed once
    USED = "used"  # confirmed: a create intent carries it


class PreviewRecord(BaseModel):
    """A preview as stored server-side: the only thing a Confirm button or modal may create from."""

    model_config = ConfigDict(frozen=True)

    id: str
    requester: str
    channel_id: str
    draft_json: str | None
    request_hash: str | None
    matched: int | None
    capped: bool
    state: PreviewState
    tag: str | None
    expires_at: datetime
    created_at: datetime
    samples_json: str | None = None  # the first sample messages shown (JSON list; revision 7)


class CreateIntent(BaseModel):
    """A create that was asked for: recorded before the Cloudflare call so a crash can be resolved."""

    model_config = ConfigDict(frozen=True)

    tag: str
    account_id: str
    requester: str
    channel_id: str
    request: CreateJobRequest
    state: IntentState
    job_id: str | None = None
    error: str | None = None
    preview_id: str | None = None
    checks: int = 0  # look-ups by tag made since the outcome became unknown
    misses: int = 0  # of those, the ones Cloudflare answered without the job
    next_check_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    agreed_max: int | None = None  # the previewed count plus the margin (None: made before revision 4)


class OutboxItem(BaseModel):
    """One queued Slack delivery, with what the notifier needs to send it."""

    model_config = ConfigDict(frozen=True)

    id: int
    job_id: str | None  # None for a row that belongs to no tracked job (a notice…)
    kind: str  # an `OutboxKind` for the store's own kinds; others are registered in `bot.outbox`
    key: str
    state: OutboxState
    seq: int
    attempts: int
    payload: dict[str, Any]
    channel_id: str | None  # the row's own target channel, else its job's
    card_ts: str | None
    slack_ts: str | None = None
    last_error: str | None = None
    thread_ts: str | None = None  # target thread of a job-less row
    user_id: str | None = None  # target user of a job-less row (a DM)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        return OutboxKind(value) if value in OutboxKind._value2member_map_ else value


@dataclass(frozen=True, slots=True)
class Transition:
    """A status change the store recorded (and queued a thread reply for)."""

    job_id: str
    previous_status: str
    status: str

    @property
    def key(self) -> str:
        """Return the outbox key of this transition."""
        return transition_key(self.previous_status, self.status)

    @property
    def finished(self) -> bool:
        """Return True when the job reached a terminal status."""
        return is_terminal(self.status) or self.status == GONE


def transition_key(previous: str, status: str) -> str:
    """Return the outbox key of a status change."""
    return f"{previous}->{status}"
