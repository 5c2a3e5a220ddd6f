"""Words for Cloudflare values: action titles, status labels, filter lists. Shared by every surface."""

from __future__ import annotations

from datetime import datetime

from blocks._kit import format_time, plural, safe, truncate
from bot.draft import FILTER_LABELS
from bot.models import SearchParams

FILTER_VALUE_MAX = 300

DESTINATION_LABELS: dict[str, str] = {
    "Inbox": "Inbox",
    "JunkEmail": "Junk Email",
    "DeletedItems": "Deleted Items",
    "RecoverableItemsDeletions": "Recoverable Items (soft delete)",
    "RecoverableItemsPurges": "Recoverable Items – Purges (permanent)",
}

_STATUS: dict[str, tuple[str, str]] = {
    "PENDING": (":hourglass_flowing_sand:", "Pending"),
    "DISCOVERING": (":mag:", "Finding messages"),
    "PROCESSING": (":gear:", "Processing"),
    "COMPLETED": (":white_check_mark:", "Completed"),
    "FAILED": (":x:", "Failed"),
    "CANCELLED": (":no_entry_sign:", "Cancelled"),
    "SKIPPED": (":fast_forward:", "Skipped"),
}
GONE_EMOJI = ":wastebasket:"
GONE_LABEL = "Deleted at Cloudflare"

# (field, label) in display order: the draft's filters, then what only a job made elsewhere can set.
_FILTER_LABELS: tuple[tuple[str, str], ...] = (
    *FILTER_LABELS.items(),
    ("message_action", "Message action"),
    ("metric", "Metric"),
    ("submissions", "Submissions"),
)


def destination_label(destination: str | None) -> str:
    """Return a human name for a destination folder (unknown ones as-is)."""
    if destination is None:
        return "no folder"
    return DESTINATION_LABELS.get(destination, destination)


def action_title(action_type: str, destination: str | None) -> str:
    """Return what a job does, e.g. `Move to Deleted Items` (plain text, not escaped)."""
    if action_type == "RELEASE":
        return "Release from quarantine"
    if action_type == "MOVE":
        if destination == "RecoverableItemsPurges":
            return "Permanently delete (move to Recoverable Items – Purges)"
        return f"Move to {destination_label(destination)}" if destination else "Move (no folder given)"
    return f"{action_type} {destination}" if destination else action_type


def status_word(status: str) -> str:
    """Return a status word without emoji (escaped), e.g. `Processing`."""
    known = _STATUS.get(status)
    return known[1] if known else safe(status, 80)


def outcome_words(status: str, *, failed: int = 0, gone: bool = False) -> str:
    """Return a job's status as every surface words it (escaped), e.g. `Completed with 2 failures`."""
    if gone:
        return GONE_LABEL
    words = status_word(status)
    if status == "COMPLETED" and failed > 0:
        words += f" with {plural(failed, 'failure')}"
    return words


def outcome_label(status: str, *, failed: int = 0, gone: bool = False) -> str:
    """Return `outcome_words` after the status emoji (escaped mrkdwn); an unknown status is shown as-is."""
    emoji = GONE_EMOJI if gone else _STATUS.get(status, (":grey_question:", ""))[0]
    return f"{emoji} {outcome_words(status, failed=failed, gone=gone)}"


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return format_time(value)
    return safe(str(value), FILTER_VALUE_MAX)


def filter_pairs(params: SearchParams) -> list[tuple[str, str]]:
    """Return (label, escaped value) for every set search field, dates and detections last."""
    pairs: list[tuple[str, str]] = []
    for field, label in _FILTER_LABELS:
        value = getattr(params, field)
        if value is not None and value != "":
            pairs.append((label, _value(value)))
    if params.start is not None or params.end is not None:
        pairs.append(("Received", f"{format_time(params.start)} → {format_time(params.end)}"))
    if params.detections_only is None:
        pairs.append(("Detections only", "not set (Cloudflare treats it as yes)"))
    else:
        pairs.append(
            (
                "Detections only",
                "yes: only messages flagged as detections"
                if params.detections_only
                else "no: all matching mail",
            )
        )
    return pairs


def filter_lines(params: SearchParams) -> str:
    """Return the filters as escaped mrkdwn bullet lines."""
    return "\n".join(f"• *{label}:* {value}" for label, value in filter_pairs(params))


def filter_summary(params: SearchParams, *, limit: int = 400) -> str:
    """Return the non-date filters on one escaped line, for fallback text and lists."""
    skipped = {"Received", "Detections only"}
    parts = [f"{label}: {value}" for label, value in filter_pairs(params) if label not in skipped]
    return truncate("; ".join(parts), limit) if parts else "no filter"
