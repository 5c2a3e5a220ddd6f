"""Pydantic models of the Cloudflare Email Security bulk-job and investigate API.

Responses are parsed tolerantly: unknown fields are ignored and an enum value we do not know
(a new status, a new folder) is kept as a plain string instead of failing the whole parse.
Requests are validated strictly before anything is sent.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    model_validator,
)

#: The longest `comment` Cloudflare keeps on a bulk job (a request with a longer one is refused).
JOB_COMMENT_MAX = 2000

_JOB_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_job_id(text: object) -> bool:
    """Return True when `text` has the shape of a bulk job id (a UUID, either case)."""
    return isinstance(text, str) and _JOB_ID.match(text) is not None


class ActionType(StrEnum):
    MOVE = "MOVE"
    RELEASE = "RELEASE"


class JobStatus(StrEnum):
    PENDING = "PENDING"
    DISCOVERING = "DISCOVERING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


ACTIVE_STATUSES: tuple[JobStatus, ...] = (JobStatus.PENDING, JobStatus.DISCOVERING, JobStatus.PROCESSING)
TERMINAL_STATUSES: tuple[JobStatus, ...] = (
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
    JobStatus.SKIPPED,
)


def is_terminal(status: str) -> bool:
    """Return True when a job in this status will never change again.

    An unknown status is treated as active, so a job is never silently dropped from tracking.
    """
    return status in {s.value for s in TERMINAL_STATUSES}


class Destination(StrEnum):
    INBOX = "Inbox"
    JUNK_EMAIL = "JunkEmail"
    DELETED_ITEMS = "DeletedItems"
    RECOVERABLE_ITEMS_DELETIONS = "RecoverableItemsDeletions"
    RECOVERABLE_ITEMS_PURGES = "RecoverableItemsPurges"


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    MOVED = "moved"
    QUARANTINED = "quarantined"
    REJECTED = "rejected"
    DEFERRED = "deferred"
    BOUNCED = "bounced"
    QUEUED = "queued"


class Disposition(StrEnum):
    MALICIOUS = "MALICIOUS"
    MALICIOUS_BEC = "MALICIOUS-BEC"
    SUSPICIOUS = "SUSPICIOUS"
    SPOOF = "SPOOF"
    SPAM = "SPAM"
    BULK = "BULK"
    ENCRYPTED = "ENCRYPTED"
    EXTERNAL = "EXTERNAL"
    UNKNOWN = "UNKNOWN"
    NONE = "NONE"


# The investigate search accepts fewer dispositions than a bulk job does.
SEARCHABLE_DISPOSITIONS: frozenset[str] = frozenset(
    {"MALICIOUS", "SUSPICIOUS", "SPOOF", "SPAM", "BULK", "NONE"}
)


class MessageAction(StrEnum):
    PREVIEW = "PREVIEW"
    QUARANTINE_RELEASED = "QUARANTINE_RELEASED"
    MOVED = "MOVED"


# Tolerant enum types for responses: a known value becomes the enum member, anything else stays a str.
TolerantStatus = Annotated[JobStatus | str, Field(union_mode="left_to_right")]
TolerantAction = Annotated[ActionType | str, Field(union_mode="left_to_right")]
TolerantDestination = Annotated[Destination | str, Field(union_mode="left_to_right")]
TolerantDelivery = Annotated[DeliveryStatus | str, Field(union_mode="left_to_right")]
TolerantDisposition = Annotated[Disposition | str, Field(union_mode="left_to_right")]
TolerantMessageAction = Annotated[MessageAction | str, Field(union_mode="left_to_right")]


def format_timestamp(value: datetime) -> str:
    """Render a datetime as the ISO-8601 UTC form Cloudflare uses (`2026-11-23T07:00:00Z`)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_utc(value: datetime) -> datetime:
    """Return the instant in UTC (naive = UTC), clamped at the calendar's ends instead of overflowing.

    `0001-01-01T00:00:00+05:00` is valid RFC 3339 but has no UTC equivalent in Python's range.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return (datetime.min if value.year == datetime.min.year else datetime.max).replace(tzinfo=UTC)


# Every timestamp Sweep holds is in UTC, normalised once at parse time.
UtcDateTime = Annotated[datetime, AfterValidator(to_utc)]
IsoTimestamp = Annotated[
    datetime, AfterValidator(to_utc), PlainSerializer(format_timestamp, return_type=str, when_used="json")
]


#: A message count Cloudflare reported that cannot be true (negative, beyond 2**53, not a whole number).
#: Sweep keeps it as this value, which no real count can have, and shows it as unknown. A sentinel
#: rather than None: the store's count columns are NOT NULL, and one impossible number must not stop a
#: poll cycle (2**63 does not fit SQLite's INTEGER) or fail the parse of a whole page of jobs.
UNKNOWN_COUNT = -1
#: Counts are exact below 2**53 (JSON numbers are doubles in most clients); no mailbox holds more.
COUNT_LIMIT = 2**53


def sane_count(value: Any) -> int:
    """Return a whole count in [0, 2**53) as an int; anything else (and None) becomes `UNKNOWN_COUNT`."""
    if isinstance(value, bool):
        return UNKNOWN_COUNT
    if isinstance(value, float):
        value = int(value) if value.is_integer() else UNKNOWN_COUNT
    elif isinstance(value, str):
        stripped = value.strip()
        value = (
            int(stripped)
            if stripped.isascii() and stripped.isdigit() and len(stripped) <= 16
            else UNKNOWN_COUNT
        )
    if not isinstance(value, int) or not 0 <= value < COUNT_LIMIT:
        return UNKNOWN_COUNT
    return value


def is_known_count(value: int | None) -> bool:
    """Return True for a real count (None, a count the API revision does not report, is not one)."""
    return value is not None and value != UNKNOWN_COUNT


def _raw_count(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


class _Response(BaseModel):
    """Base of every parsed response: unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ApiMessage(_Response):
    code: int
    message: str
    documentation_url: str | None = None
    source: dict[str, Any] | None = None


class ResultInfo(_Response):
    """Paging info. `page` and `total_count` are deprecated and always 0: never trust them."""

    count: int = 0
    per_page: int = 0
    page: int | None = None
    total_count: int | None = None
    next: str | None = None
    previous: str | None = None


class SearchParams(BaseModel):
    """The search a bulk job (or a preview) runs.

    `action_log` and `expected_disposition` are deliberately absent: the first ended on
    2026-11-01, the second has no effect. `detections_only` has no default here because the
    API's default (true) surprises people: every caller must choose.
    """

    model_config = ConfigDict(extra="ignore")

    alert_id: str | None = None
    delivery_status: TolerantDelivery | None = None
    detections_only: bool | None = None
    domain: str | None = None
    end: IsoTimestamp | None = None
    exact_subject: str | None = None
    final_disposition: TolerantDisposition | None = None
    message_action: TolerantMessageAction | None = None
    message_id: str | None = None
    metric: str | None = None
    query: str | None = None
    recipient: str | None = None
    sender: str | None = None
    start: IsoTimestamp | None = None
    subject: str | None = None
    submissions: bool | None = None

    def range_error(self) -> str | None:
        """Return why the date range is unusable, or None (checked on requests, not on responses)."""
        if self.start is not None and self.end is not None and self.end < self.start:
            return "end must not be before start"
        return None

    def to_api(self) -> dict[str, Any]:
        """Return the JSON body fragment, without unset fields."""
        return self.model_dump(mode="json", exclude_none=True)

    def filters(self) -> dict[str, Any]:
        """Return the set search fields (for display), excluding nothing but unset ones."""
        return self.to_api()


def search_problem(params: SearchParams) -> str | None:
    """Return why a search cannot be sent (detections_only unset, or a backward range), or None."""
    if params.detections_only is None:
        return "detections_only must be chosen explicitly (the API defaults it to true)"
    return params.range_error()


def request_problem(action: ActionType, destination: Destination | None, params: SearchParams) -> str | None:
    """Return why a bulk job with this action, folder and search cannot be created, or None."""
    if action is ActionType.MOVE and destination is None:
        return "a move needs a destination folder"
    if action is ActionType.RELEASE and destination is not None:
        return "a release takes no destination folder"
    return search_problem(params)


class ActionParams(_Response):
    type: TolerantAction
    destination: TolerantDestination | None = None


class BulkJob(_Response):
    """A bulk action job as Cloudflare reports it."""

    job_id: str
    action_type: TolerantAction
    action_params: ActionParams
    search_params: SearchParams = Field(default_factory=SearchParams)
    status: TolerantStatus
    total_messages_discovered: int = 0
    messages_pending: int = 0
    messages_successful: int = 0
    messages_failed: int = 0
    # Newer API revision (SDK 5.9); absent from older answers.
    messages_cancelled: int | None = None
    messages_skipped: int | None = None
    comment: str | None = None
    created_at: UtcDateTime
    started_at: UtcDateTime | None = None
    completed_at: UtcDateTime | None = None
    status_message: str | None = None
    #: The counts Cloudflare reported that cannot be true, as sent (repr, shortened), by field name; each
    #: of them is `UNKNOWN_COUNT` above. Never read from Cloudflare's answer: always set by the parse.
    impossible_counts: dict[str, str] = Field(default_factory=dict, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _replace_impossible_counts(cls, data: Any) -> Any:
        # One pass per job, copying the dict only when something needs replacing: this runs for every
        # job of every 1,000-job page the tracker lists.
        if not isinstance(data, dict):
            return data
        impossible: dict[str, str] = {}
        for name in COUNT_FIELDS:
            value = data.get(name)
            if value is None or (type(value) is int and 0 <= value < COUNT_LIMIT):
                continue
            count = sane_count(value)
            if count == UNKNOWN_COUNT:
                impossible[name] = _raw_count(value)
        if not impossible and "impossible_counts" not in data:
            return data
        cleaned = {k: v for k, v in data.items() if k != "impossible_counts"}
        for name in impossible:
            cleaned[name] = UNKNOWN_COUNT
        cleaned["impossible_counts"] = impossible
        return cleaned

    @property
    def destination(self) -> str | None:
        """Return the destination folder of a MOVE (None for RELEASE)."""
        return None if self.action_params.destination is None else str(self.action_params.destination)

    @property
    def is_terminal(self) -> bool:
        """Return True when the job will not change any more."""
        return is_terminal(self.status)

    @property
    def processed(self) -> int:
        """Return how many discovered messages are no longer pending (`UNKNOWN_COUNT` when unknown)."""
        if not (is_known_count(self.total_messages_discovered) and is_known_count(self.messages_pending)):
            return UNKNOWN_COUNT
        return max(self.total_messages_discovered - self.messages_pending, 0)


#: The counters of a bulk job, in the order the card shows them.
COUNT_FIELDS: tuple[str, ...] = (
    "total_messages_discovered",
    "messages_successful",
    "messages_failed",
    "messages_pending",
    "messages_skipped",
    "messages_cancelled",
)


class CreateJobRequest(BaseModel):
    """A validated request to create a bulk job (POST …/investigate/bulk)."""

    model_config = ConfigDict(extra="forbid")

    action: ActionType
    search_params: SearchParams
    destination: Destination | None = None
    comment: str | None = Field(default=None, max_length=JOB_COMMENT_MAX)

    @model_validator(mode="after")
    def _check_destination(self) -> CreateJobRequest:
        if (problem := request_problem(self.action, self.destination, self.search_params)) is not None:
            raise ValueError(problem)
        return self

    def to_api(self, *, comment: str | None = None) -> dict[str, Any]:
        """Return the JSON body; `comment` overrides the stored one (used to stamp a request tag)."""
        body: dict[str, Any] = {"action": self.action.value, "search_params": self.search_params.to_api()}
        if self.destination is not None:
            body["destination"] = self.destination.value
        final_comment = comment if comment is not None else self.comment
        if final_comment:
            body["comment"] = final_comment
        return body


class JobMessage(_Response):
    """One message of a bulk job, with its own processing status."""

    message_id: str
    postfix_id: str | None = None
    action_type: TolerantAction | None = None
    action_params: ActionParams | None = None
    alert_id: str | None = None
    email_message_id: str | None = None
    status: TolerantStatus
    status_message: str | None = None
    retry_count: int = 0
    retry_after: UtcDateTime | None = None
    created_at: UtcDateTime | None = None
    processed_at: UtcDateTime | None = None


class MessageSummary(_Response):
    """The fields of an investigate search result that Sweep shows in a preview."""

    id: str
    postfix_id: str | None = None
    message_id: str | None = None
    alert_id: str | None = None
    from_: str | None = Field(default=None, alias="from")
    from_name: str | None = None
    envelope_from: str | None = None
    to: list[str] | None = None
    client_recipients: list[str] = Field(default_factory=list)
    subject: str | None = None
    sent_at: UtcDateTime | None = None
    scanned_at: UtcDateTime | None = None
    final_disposition: TolerantDisposition | None = None
    delivery_status: list[TolerantDelivery] | None = None
    is_quarantined: bool = False


class SearchResult(BaseModel):
    """A capped investigate search: the messages fetched and whether more exist."""

    messages: list[MessageSummary]
    capped: bool

    @property
    def count(self) -> int:
        """Return the number of messages fetched (a lower bound when capped)."""
        return len(self.messages)


ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a list endpoint."""

    items: list[ItemT]
    result_info: ResultInfo
