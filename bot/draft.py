"""A job the analyst described but has not confirmed (`JobDraft`), and every rule a draft must keep.

One place for the limits and checks that `/sweep move …` (`bot.grammar`), the create form
(`bot.forms`) and the block builders (`blocks/`) share: value lengths, the comment's length, the
encoded size of a draft, "at least one filter", the Message-ID shape, the refused characters, the
date window. `validate_draft` re-checks a stored draft with the same rules as typed input.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from bot.cloudflare.models import (
    JOB_COMMENT_MAX,
    ActionType,
    CreateJobRequest,
    Destination,
    SearchParams,
    format_timestamp,
    request_problem,
)
from bot.slack_limits import PRIVATE_METADATA_MAX
from bot.text import INVISIBLE

__all__ = [
    "CLOCK_SKEW",
    "COMMENT_MAX",
    "DEFAULT_RANGE",
    "DRAFT_JSON_MAX",
    "EARLIEST",
    "FIELD_MAX",
    "FILTER_KEYS",
    "FILTER_LABELS",
    "JOB_COMMENT_MAX",
    "MAX_RANGE",
    "NO_FILTER_REASON",
    "REQUEST_COMMENT_MAX",
    "SETTABLE_SEARCH_FIELDS",
    "TEXT_FILTER_KEYS",
    "VALUE_MAX",
    "JobDraft",
    "clip",
    "display_time",
    "draft_size",
    "first_hidden_character",
    "first_problem",
    "hidden_character_problem",
    "has_filter",
    "is_message_id",
    "validate_draft",
]

DEFAULT_RANGE = timedelta(days=7)
"""The search window when no date is given (the command and the form)."""
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future a date may be before it is refused (clocks differ a little)."""
MAX_RANGE = timedelta(days=3650)
"""The longest date range a search may cover (`since:` included)."""
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""No search starts before this."""

COMMENT_MAX = 500
"""The analyst's comment, typed (command or form) and shown (preview)."""
REQUEST_COMMENT_MAX = JOB_COMMENT_MAX - 100
"""The comment Sweep sends: Cloudflare keeps 2000 characters, and the client appends the request tag
(` [sweep:<tag>]`, at most 73 characters for a 64-character tag)."""
DRAFT_JSON_MAX = PRIVATE_METADATA_MAX - 600
"""A draft's encoded size (`draft_size`), wherever it was described.

The draft rides in the create modal's `private_metadata` (Slack: 3000 characters) inside
`ModalMetadata`, whose other fields take about 110 today; the rest of the 600 is kept for fields a
later release adds, so a modal opened before an upgrade still decodes after it. Inline drafts are
held to the same number: a draft is a draft, and one typed inline may be edited in the form later.
"""

#: Per-value limits, the same for the command and the form's fields.
FIELD_MAX: dict[str, int] = {
    "sender": 254,
    "recipient": 254,
    "domain": 253,
    "subject": 200,
    "exact_subject": 200,
    "message_id": 250,
    "alert_id": 100,
    "query": 500,
    "comment": COMMENT_MAX,
}
VALUE_MAX = 500
"""The cap on any other typed value (dates, enum names, folders)."""

FILTER_KEYS: tuple[str, ...] = (
    "sender",
    "recipient",
    "domain",
    "subject",
    "exact_subject",
    "message_id",
    "alert_id",
    "query",
    "final_disposition",
    "delivery_status",
)
"""The keys that narrow a search; at least one is required (dates alone would match all mail)."""
TEXT_FILTER_KEYS: tuple[str, ...] = FILTER_KEYS[:8]
"""The filters typed as free text (the others are chosen from a list)."""
#: The search fields a person can set from `/sweep …` or the form; anything else in a draft is forged.
SETTABLE_SEARCH_FIELDS = frozenset((*FILTER_KEYS, "start", "end", "detections_only"))
#: How each filter is named to a person, in display order.
FILTER_LABELS: dict[str, str] = {
    "sender": "Sender",
    "recipient": "Recipient",
    "domain": "Domain",
    "subject": "Subject contains",
    "exact_subject": "Subject is exactly",
    "message_id": "Message-ID",
    "alert_id": "Alert ID",
    "query": "Query",
    "final_disposition": "Disposition",
    "delivery_status": "Delivery status",
}
NO_FILTER_REASON = "a date range alone would match all mail"
"""Why a search needs a filter (every surface that refuses one says it)."""

_MESSAGE_ID = re.compile(r"^<?[^\s<>@]+@[^\s<>@]+>?$")


def has_filter(values: Mapping[str, Any]) -> bool:
    """Return True when at least one filter (`FILTER_KEYS`) is set in these search values."""
    return any(values.get(key) is not None for key in FILTER_KEYS)


def is_message_id(text: str) -> bool:
    """Return True when `text` looks like a Message-ID (`<local@domain>`, brackets optional)."""
    return _MESSAGE_ID.match(text) is not None


def first_hidden_character(text: str, *, allowed: str = "\t\n\r") -> int | None:
    """Return the index of the first invisible, control or lone-surrogate character, or None.

    Characters in `allowed` (by default tab and line breaks) are fine. A search for what the analyst
    cannot see would surprise them, and a lone surrogate cannot even be sent to Cloudflare as UTF-8.
    """
    for index, ch in enumerate(text):
        if ch in allowed:
            continue
        if ch in INVISIBLE or unicodedata.category(ch) in ("Cc", "Cs"):
            return index
    return None


def clip(text: str, limit: int) -> str:
    """Return `text` cut to `limit` characters, ending with an ellipsis when cut (plain text)."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def display_time(value: datetime) -> str:
    """Return a moment as `2026-11-23 07:00:00 UTC` (plain text)."""
    return format_timestamp(value).replace("T", " ").replace("Z", " UTC")


class JobDraft(BaseModel):
    """A bulk job the analyst described but has not confirmed yet (from `/sweep move …` or the modal)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    action: ActionType
    destination: Destination | None = None
    search_params: SearchParams
    comment: str | None = None

    @field_validator("search_params", mode="after")
    @classmethod
    def _whole_seconds(cls, params: SearchParams) -> SearchParams:
        # The API's timestamp form has whole seconds in UTC; normalising here makes drafts round-trip.
        update: dict[str, datetime] = {}
        for name in ("start", "end"):
            value = getattr(params, name)
            if value is None:
                continue
            if value.tzinfo is not UTC or value.microsecond:
                aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
                update[name] = aware.astimezone(UTC).replace(microsecond=0)
        return params.model_copy(update=update) if update else params

    @model_validator(mode="after")
    def _check(self) -> JobDraft:
        if (problem := request_problem(self.action, self.destination, self.search_params)) is not None:
            raise ValueError(problem)
        if not has_filter(dict(self.search_params)):
            raise ValueError(f"at least one filter is required: {NO_FILTER_REASON}")
        return self

    @property
    def is_permanent(self) -> bool:
        """Return True when the job deletes mail for good (a move to RecoverableItemsPurges)."""
        return self.action is ActionType.MOVE and self.destination is Destination.RECOVERABLE_ITEMS_PURGES

    @property
    def needs_strong_confirmation(self) -> bool:
        """Return True when confirming must take more than a click (a permanent delete or a release)."""
        return self.is_permanent or self.action is ActionType.RELEASE

    def summary_filters(self) -> list[tuple[str, str]]:
        """Return (label, value) pairs of the search, in display order (plain text, not escaped)."""
        params = self.search_params
        pairs: list[tuple[str, str]] = []
        for key in FILTER_KEYS:
            value = getattr(params, key)
            if value is not None:
                pairs.append((FILTER_LABELS[key], str(value)))
        if params.start is not None:
            pairs.append(("From", display_time(params.start)))
        if params.end is not None:
            pairs.append(("Until", display_time(params.end)))
        if params.detections_only is not None:
            pairs.append(("Detections only", "yes" if params.detections_only else "no"))
        return pairs

    def to_request(
        self, *, requester_label: str, channel_label: str, approver_label: str | None = None
    ) -> CreateJobRequest:
        """Build the Cloudflare request; its comment records who asked, where, who approved, and why."""
        comment = f"Sweep: requested by {clip(requester_label, 100)} in {clip(channel_label, 100)}"
        if approver_label is not None:
            comment += f", approved by {clip(approver_label, 100)}"
        if self.comment and self.comment.strip():
            comment += " \u2014 " + self.comment.strip()
        return CreateJobRequest(
            action=self.action,
            destination=self.destination,
            search_params=self.search_params,
            comment=clip(comment, REQUEST_COMMENT_MAX),
        )


def first_problem(error: Exception, *, default: str) -> str:
    """Return the first reason a draft could not be built (pydantic's prefix removed), or `default`."""
    if isinstance(error, ValidationError):
        details = error.errors()
        if details:
            return str(details[0].get("msg") or default).removeprefix("Value error, ")
    return str(error) or default


def draft_size(draft: JobDraft) -> int:
    """Return the draft's encoded size, as it is carried in a payload (unset fields left out)."""
    return len(draft.model_dump_json(exclude_none=True))


def hidden_character_problem(text: str) -> str | None:
    """Return which hidden character `text` holds and where (`contains … at position N`), or None."""
    index = first_hidden_character(text)
    if index is None:
        return None
    ch = text[index]
    name = unicodedata.name(ch, "control character")
    return f"contains an invisible or control character (U+{ord(ch):04X} {name}) at position {index + 1}"


def validate_draft(draft: JobDraft) -> str | None:
    """Return why a stored draft could not have been typed (same rules as typed input), or None.

    The model's own rules (a filter, a destination for a move, a sane range) hold already; this adds
    what the parsers check on the way in: known fields only, value lengths, no blank values, no
    invisible or control characters, and dates inside the searchable range.
    """
    params = draft.search_params
    extra = sorted(set(params.model_dump(exclude_none=True)) - SETTABLE_SEARCH_FIELDS)
    if extra:
        return f"the search sets fields no Sweep form can set: {', '.join(extra)}"
    for key in TEXT_FILTER_KEYS:
        value = getattr(params, key)
        if value is None:
            continue
        text = str(value)
        if not text.strip():
            return f"`{key}` is blank"
        if len(text) > FIELD_MAX.get(key, VALUE_MAX):
            return f"`{key}` is longer than {FIELD_MAX.get(key, VALUE_MAX)} characters"
        if (problem := hidden_character_problem(text)) is not None:
            return f"`{key}`: {problem}"
    if draft.comment is not None:
        if len(draft.comment) > COMMENT_MAX:
            return f"the comment is longer than {COMMENT_MAX} characters"
        if (problem := hidden_character_problem(draft.comment)) is not None:
            return f"the comment: {problem}"
    for name in ("start", "end"):
        moment = getattr(params, name)
        if moment is not None and moment < EARLIEST:
            return f"`{name}` is before {EARLIEST:%Y-%m-%d}"
    if params.start is not None and params.end is not None and params.end - params.start > MAX_RANGE:
        return f"the date range is longer than {MAX_RANGE.days} days"
    if (size := draft_size(draft)) > DRAFT_JSON_MAX:
        return f"the draft is {size} characters encoded, more than {DRAFT_JSON_MAX}"
    return None
