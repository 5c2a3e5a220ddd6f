"""Request validation of the simulator: what the real API rejects, with Cloudflare-style error codes.

Error codes (all >= 1000, as the schema requires):

| HTTP | code  | when |
|------|-------|------|
| 400  | 1001  | body is not valid JSON or not an object |
| 400  | 1002  | a field or query parameter has the wrong type, an unknown enum value or a bad date |
| 400  | 1003  | a required field is missing (`action`, `search_params`, `destination` for MOVE) |
| 400  | 1004  | a field that is not allowed here (`destination` with RELEASE) |
| 400  | 1005  | `end` before `start` |
| 400  | 1006  | `page` < 1, `per_page` outside 1..1000, or an invalid search cursor |
| 401  | 9106  | no credentials |
| 403  | 9109  | a token (or X-Auth-Key) that is not the simulator's |
| 404  | 1404  | unknown job id (a malformed uuid is also "not found") |
| 404  | 7003  | no route for the URI |
| 405  | 7001  | method not allowed |
| 409  | 1409  | cancel of a job already in a terminal state, or delete of a job that is not |
| 429  | 10429 | rate limited (fault injection; with `Retry-After`) |
| 5xx  | 10002 | server error (fault injection) |
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.cloudflare.models import (
    SEARCHABLE_DISPOSITIONS,
    ActionType,
    DeliveryStatus,
    Destination,
    Disposition,
    JobStatus,
    MessageAction,
)
from bot.simulator.mailbox import SearchFilter

# The newer revision (SDK 5.9) adds `move_failed`; the simulator accepts it in filters.
DELIVERY_STATUSES = frozenset({*(s.value for s in DeliveryStatus), "move_failed"})
DISPOSITIONS = frozenset(d.value for d in Disposition)
MESSAGE_ACTIONS = frozenset(a.value for a in MessageAction)
ACTIONS = frozenset(a.value for a in ActionType)
DESTINATIONS = frozenset(d.value for d in Destination)
JOB_STATUSES = frozenset(s.value for s in JobStatus)
MAX_PER_PAGE = 1000


class SimError(Exception):
    """An error answer: HTTP status plus one Cloudflare `errors[]` entry."""

    def __init__(self, status: int, code: int, message: str, *, pointer: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.pointer = pointer

    def entry(self) -> dict[str, Any]:
        """Return the `errors[]` entry."""
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.pointer is not None:
            entry["source"] = {"pointer": self.pointer}
        return entry


def invalid(message: str, pointer: str | None = None) -> SimError:
    """Return a 400 for a bad value."""
    return SimError(400, 1002, message, pointer=pointer)


def parse_time(value: Any, pointer: str) -> float:
    """Parse an RFC 3339 date-time (a naive one is taken as UTC) into epoch seconds."""
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


def parse_page(query: Mapping[str, str]) -> tuple[int, int]:
    """Return (page, per_page) from a list query, validated like the API does."""
    page = _int_param(query, "page", 1)
    per_page = _int_param(query, "per_page", 20)
    if page < 1:
        raise SimError(400, 1006, "page must be at least 1", pointer="page")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise SimError(400, 1006, f"per_page must be between 1 and {MAX_PER_PAGE}", pointer="per_page")
    return page, per_page


def _int_param(query: Mapping[str, str], name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SimError(400, 1006, f"{name} must be an integer", pointer=name) from None


def enum_param(query: Mapping[str, str], name: str, allowed: frozenset[str]) -> str | None:
    """Return an optional enum query parameter, or raise 400 on an unknown value."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if raw not in allowed:
        raise invalid(f"{name} must be one of {', '.join(sorted(allowed))}; got {raw!r}", name)
    return raw


def bool_param(raw: str | None, name: str, default: bool) -> bool:
    """Parse a boolean query parameter (`true`/`false`, also `1`/`0`)."""
    if raw is None or raw == "":
        return default
    lowered = raw.lower()
    if lowered in {"true", "1"}:
        return True
    if lowered in {"false", "0"}:
        return False
    raise invalid(f"{name} must be true or false", name)


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


_STRING_FIELDS = (
    "alert_id", "domain", "exact_subject", "message_id", "metric", "query", "recipient", "sender",
    "subject", "smtp_helo_ip",
)  # fmt: skip
_ENUM_FIELDS: dict[str, frozenset[str]] = {
    "delivery_status": DELIVERY_STATUSES,
    "final_disposition": DISPOSITIONS,
    "message_action": MESSAGE_ACTIONS,
}


def parse_create(body: Any) -> CreateRequest:
    """Validate a BulkActionRequest body; unknown fields are ignored like the real API does."""
    if not isinstance(body, dict):
        raise SimError(400, 1001, "request body must be a JSON object")
    action = body.get("action")
    if action is None:
        raise SimError(400, 1003, "action is required (MOVE or RELEASE)", pointer="/action")
    if action not in ACTIONS:
        raise invalid(f"action must be MOVE or RELEASE; got {action!r}", "/action")
    destination = body.get("destination")
    if destination is not None and destination not in DESTINATIONS:
        raise invalid(f"destination must be one of {', '.join(sorted(DESTINATIONS))}", "/destination")
    if action == ActionType.MOVE and destination is None:
        raise SimError(400, 1003, "destination is required when action is MOVE", pointer="/destination")
    if action == ActionType.RELEASE and destination is not None:
        raise SimError(400, 1004, "destination is not allowed when action is RELEASE", pointer="/destination")
    expected = body.get("expected_disposition")  # non-functional: validated, then ignored
    if expected is not None and expected not in DISPOSITIONS:
        raise invalid("expected_disposition is not a known disposition", "/expected_disposition")
    comment = body.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise invalid("comment must be a string", "/comment")
    if "search_params" not in body:
        raise SimError(400, 1003, "search_params is required", pointer="/search_params")
    params = body["search_params"]
    if not isinstance(params, dict):
        raise invalid("search_params must be an object", "/search_params")
    search, echo, start_set, end_set = parse_search_params(params)
    return CreateRequest(action, destination, comment, search, echo, start_set, end_set)


def parse_search_params(params: Mapping[str, Any]) -> tuple[SearchFilter, dict[str, Any], bool, bool]:
    """Validate BulkSearchParams; return the filter, the echo for answers and which bounds were set."""
    echo: dict[str, Any] = {}
    values: dict[str, Any] = {}
    for name in _STRING_FIELDS:
        value = params.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise invalid(f"{name} must be a string", f"/search_params/{name}")
        echo[name] = value
        if name != "metric" and value != "":
            values[name] = value
    for name, allowed in _ENUM_FIELDS.items():
        value = params.get(name)
        if value is None:
            continue
        if value not in allowed:
            raise invalid(
                f"{name} must be one of {', '.join(sorted(allowed))}; got {value!r}", f"/search_params/{name}"
            )
        echo[name] = values[name] = value
    for name in ("detections_only", "submissions", "action_log"):
        value = params.get(name)
        if value is not None and not isinstance(value, bool):
            raise invalid(f"{name} must be a boolean", f"/search_params/{name}")
    detections_only = params.get("detections_only")
    echo["detections_only"] = values["detections_only"] = True if detections_only is None else detections_only
    if params.get("submissions") is not None:
        echo["submissions"] = values["submissions"] = params["submissions"]
    # action_log (end of life 2026-11-01) is accepted and ignored.
    start = end = None
    if params.get("start") is not None:
        start = parse_time(params["start"], "/search_params/start")
        echo["start"] = params["start"]
    if params.get("end") is not None:
        end = parse_time(params["end"], "/search_params/end")
        echo["end"] = params["end"]
    if start is not None and end is not None and end < start:
        raise SimError(400, 1005, "end must not be before start", pointer="/search_params/end")
    return SearchFilter(start=start, end=end, **values), echo, start is not None, end is not None


def parse_search_query(query: Mapping[str, str]) -> SearchFilter:
    """Validate the query of GET /investigate (no `exact_subject`/`submissions` there: ignored)."""
    values: dict[str, Any] = {}
    for name in (
        "query",
        "recipient",
        "sender",
        "alert_id",
        "domain",
        "message_id",
        "subject",
        "smtp_helo_ip",
    ):
        raw = query.get(name)
        if raw:
            values[name] = raw
    final = enum_param(query, "final_disposition", SEARCHABLE_DISPOSITIONS)
    if final is not None:
        values["final_disposition"] = final
    action = enum_param(query, "message_action", MESSAGE_ACTIONS)
    if action is not None:
        values["message_action"] = action
    delivery = enum_param(query, "delivery_status", DELIVERY_STATUSES)
    if delivery is not None:
        values["delivery_status"] = delivery
    values["detections_only"] = bool_param(query.get("detections_only"), "detections_only", True)
    start = parse_time(query["start"], "start") if query.get("start") else None
    end = parse_time(query["end"], "end") if query.get("end") else None
    if start is not None and end is not None and end < start:
        raise SimError(400, 1005, "end must not be before start", pointer="end")
    return SearchFilter(start=start, end=end, **values)
