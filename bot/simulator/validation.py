from __future__ import annotations

import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from bot.cloudflare.models import ActionType, JobStatus
from bot.simulator.mailbox import SearchFilter

T = TypeVar("T")
# For the control routes (`/__sim/...`), which are not part of Cloudflare's document.
ACTIONS = frozenset(a.value for a in ActionType)
JOB_STATUSES = frozenset(s.value for s in JobStatus)
# The string filters of a job's search (`metric` is echoed but filters nothing).
_STRING_FIELDS = (
    "alert_id", "domain", "exact_subject", "message_id", "metric", "query", "recipient", "sender",
    "subject", "smtp_helo_ip",
)  # fmt: skip
_ENUM_FIELDS = ("delivery_status", "final_disposition", "message_action")
# The search's text filters (it cannot filter on `exact_subject` or `submissions`: those are ignored).
_SEARCH_TEXT = ("query", "recipient", "sender", "alert_id", "domain", "message_id", "subject", "smtp_helo_ip")


class SimError(Exception):
    """An error answer: HTTP status plus Cloudflare `errors[]` entries (this one, then `more`)."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        pointer: str | None = None,
        more: Sequence[SimError] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.pointer = pointer
        self.more = tuple(more)

    def entry(self) -> dict[str, Any]:
        """Return this error's `errors[]` entry."""
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.pointer is not None:
            entry["source"] = {"pointer": self.pointer}
        return entry

    def entries(self) -> list[dict[str, Any]]:
        """Return every `errors[]` entry of the answer (this one first)."""
        return [self.entry(), *(other.entry() for other in self.more)]


def invalid(message: str, pointer: str | None = None) -> SimError:
    """Return a 400 for a bad value."""
    return SimError(400, 1002, message, pointer=pointer)


def parse_time(value: Any, pointer: str) -> float:
    """Parse a date-time (RFC 3339; a naive one is taken as UTC) into epoch seconds."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(f"{pointer.rsplit('/', 1)[-1]} must be an RFC 3339 date-time", pointer)
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise invalid(f"{pointer.rsplit('/', 1)[-1]} is not a valid date-time: {value!r}", pointer) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_job_id(value: str) -> str:
    """Return the canonical job id, or raise 404 (a malformed id names no job)."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise SimError(404, 1404, f"bulk job not found: {value}") from None


def page_of(items: Iterable[T], page: int, per_page: int) -> list[T]:
    """Return page `page` (from 1) of `items`; a page past the end, however far, is empty."""
    start = (page - 1) * per_page
    if start >= sys.maxsize:
        return []
    result: list[T] = []
    for position, item in enumerate(items):
        if position >= start + per_page:
            break
        if position >= start:
            result.append(item)
    return result


def check_range(start: float | None, end: float | None, pointer: str) -> None:
    """Refuse a range that ends before it starts (code 1005)."""
    if start is not None and end is not None and end < start:
        raise SimError(400, 1005, "end must not be before start", pointer=pointer)


@dataclass(frozen=True)
class CreateRequest:
    """A validated create-job body."""

    action: str
    destination: str | None
    comment: str | None
    search: SearchFilter
    search_echo: dict[str, Any]
    start_set: bool
    end_set: bool


def parse_create(body: Mapping[str, Any]) -> CreateRequest:
    """Apply the rules of a create body the document does not state (its types are already checked).

    Unknown fields are ignored like the real API does; `expected_disposition` (non-functional) and
    `action_log` (end of life 2026-11-01) are accepted and ignored.
    """
    action = body["action"]
    destination = body.get("destination")
    # The document makes `destination` optional, but Cloudflare documents it as required for MOVE
    # (and the API refuses a MOVE without one): the simulator keeps the documented behaviour.
    if action == ActionType.MOVE and destination is None:
        raise SimError(400, 1003, "destination is required when action is MOVE", pointer="/destination")
    # The document allows a destination with RELEASE too; the simulator refuses it (its own stricter rule)
    # rather than drop it silently, so a client that sends one finds out.
    if action == ActionType.RELEASE and destination is not None:
        raise SimError(400, 1004, "destination is not allowed when action is RELEASE", pointer="/destination")
    search, echo, start_set, end_set = parse_search_params(body["search_params"])
    return CreateRequest(action, destination, body.get("comment"), search, echo, start_set, end_set)


def parse_search_params(params: Mapping[str, Any]) -> tuple[SearchFilter, dict[str, Any], bool, bool]:
    """Build a job's search from validated BulkSearchParams: filter, echo and which bounds were set."""
    echo: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for name in _STRING_FIELDS:
        value = params.get(name)
        if value is None:
            continue
        echo[name] = value
        if name != "metric" and value != "":
            values[name] = value
    for name in _ENUM_FIELDS:
        if params.get(name) is not None:
            echo[name] = values[name] = params[name]
    detections_only = params.get("detections_only", True)
    echo["detections_only"] = values["detections_only"] = detections_only
    if "submissions" in params:
        echo["submissions"] = values["submissions"] = params["submissions"]
    start = end = None
    if "start" in params:
        start = parse_time(params["start"], "/search_params/start")
        echo["start"] = params["start"]
    if "end" in params:
        end = parse_time(params["end"], "/search_params/end")
        echo["end"] = params["end"]
    check_range(start, end, "/search_params/end")
    return SearchFilter(start=start, end=end, **values), echo, start is not None, end is not None


def parse_search_query(query: Mapping[str, Any]) -> SearchFilter:
    """Build the filter of GET /investigate from its validated query (defaults already filled in)."""
    values: dict[str, Any] = {name: query[name] for name in _SEARCH_TEXT if query.get(name)}
    for name in _ENUM_FIELDS:
        if query.get(name) is not None:
            values[name] = query[name]
    values["detections_only"] = query.get("detections_only", True)
    start = parse_time(query["start"], "start") if "start" in query else None
    end = parse_time(query["end"], "end") if "end" in query else None
    check_range(start, end, "end")
    return SearchFilter(start=start, end=end, **values)
