"""Blast-radius rules: when a job needs a second person, and how much more than agreed it may grow.

Pure functions over a draft and its preview count; no Slack, no Cloudflare, no store. The policy
comes from configuration (`SWEEP_APPROVERS`, `SWEEP_APPROVAL_ABOVE`, `SWEEP_APPROVAL_ALWAYS`,
`SWEEP_APPROVAL_TTL`, `SWEEP_APPROVAL_MARGIN`, `SWEEP_INTERNAL_DOMAINS`); each `parse_*` function
raises `ValueError` with the rule, which the configuration turns into one line naming the variable.

A search is *broad* — and always needs a second person, whatever the count rules say — when it has
no narrowing filter (only dates, disposition, delivery status or `detections_only`), when it acts
on mail *from* one of the organisation's own domains (usually spoofing, or colleagues' real mail),
when its window is longer than 30 days, or when the preview could not count it all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: the configuration imports this module (no import cycle)
    from bot.draft import JobDraft

__all__ = [
    "BROAD_WINDOW",
    "MIN_MARGIN_MESSAGES",
    "NARROWING_FILTERS",
    "ApprovalPolicy",
    "Reason",
    "ReasonCode",
    "agreed_maximum",
    "approval_reasons",
    "breadth_reasons",
    "parse_above",
    "parse_always",
    "parse_domains",
    "parse_duration",
    "parse_margin",
]

#: Filters that narrow a search to particular mail; dates, disposition and delivery status do not.
NARROWING_FILTERS = (
    "sender",
    "recipient",
    "domain",
    "subject",
    "exact_subject",
    "message_id",
    "alert_id",
    "query",
)
#: A window longer than this is broad.
BROAD_WINDOW = timedelta(days=30)
#: However small the preview, a job may discover at least this many more messages before it is stopped.
MIN_MARGIN_MESSAGES = 5
ALWAYS_KINDS = ("purge", "release", "move")

_DURATION_RE = re.compile(r"^\s*(\d{1,6})\s*([smhd])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class ReasonCode(StrEnum):
    NO_NARROWING_FILTER = "no_narrowing_filter"
    INTERNAL_SENDER = "internal_sender"
    LONG_WINDOW = "long_window"
    UNCOUNTED = "uncounted"
    ALWAYS = "always"
    ABOVE = "above"


@dataclass(frozen=True)
class Reason:
    """Why a job needs a second person: what applies, and (for breadth) what would narrow it.

    Both are user-facing clauses in plain words, lowercase, with no final stop (`text` completes
    "needs a second person because …", `narrow` is an instruction); a surface capitalises them.
    """

    code: ReasonCode
    text: str
    narrow: str | None = None

    @property
    def broad(self) -> bool:
        """Return True for a breadth reason (the search itself is wide)."""
        return self.code in _BROAD


_BROAD = frozenset(
    {ReasonCode.NO_NARROWING_FILTER, ReasonCode.INTERNAL_SENDER, ReasonCode.LONG_WINDOW, ReasonCode.UNCOUNTED}
)


@dataclass(frozen=True)
class ApprovalPolicy:
    """Who may approve and which jobs need it (defaults as the README's configuration table says)."""

    approvers: frozenset[str] | None = None  # None: any operator may approve
    above: int | None = 300  # a preview matching more than this needs approval; None: count rule off
    always: frozenset[str] = field(default_factory=lambda: frozenset({"purge"}))
    ttl: timedelta = timedelta(hours=1)
    margin_percent: float = 10.0
    internal_domains: frozenset[str] = frozenset()


def parse_duration(text: str) -> timedelta:
    """Read `90s`, `30m`, `2h` or `1d` (a whole number and a unit) as a positive duration."""
    match = _DURATION_RE.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValueError("must be a duration like 90s, 30m or 2h")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_margin(text: str) -> float:
    """Read a percentage (`10%` or `10`), from 0 to 1000."""
    raw = text.strip().removesuffix("%").strip()
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("must be a percentage like 10%") from None
    if not math.isfinite(value) or not 0 <= value <= 1000:
        raise ValueError("must be a percentage from 0% to 1000%")
    return value


def parse_above(text: str) -> int | None:
    """Read a message count (`300`; `0` means every job) or `off` (the count rule is off)."""
    raw = text.strip().lower()
    if raw == "off":
        return None
    if not raw.isdigit() or len(raw) > 9:
        raise ValueError("must be a whole number of messages (0 = every job) or off")
    return int(raw)


def parse_always(text: str) -> frozenset[str]:
    """Read a comma list from purge, release and move (`none`, `off` or empty: none)."""
    if text.strip().lower() in ("none", "off"):
        return frozenset()
    kinds = frozenset(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = sorted(kinds - set(ALWAYS_KINDS))
    if unknown:
        raise ValueError(f"must list only {', '.join(ALWAYS_KINDS)} (comma-separated), or none")
    return kinds


def parse_domains(text: str) -> frozenset[str]:
    """Read a comma list of mail domains (`example.com,corp.example`), lowercased."""
    domains = frozenset(part.strip().lower().rstrip(".") for part in text.split(",") if part.strip())
    bad = sorted(d for d in domains if not _DOMAIN_RE.match(d))
    if bad:
        raise ValueError("must list mail domains like example.com (comma-separated)")
    return domains


def agreed_maximum(matched: int, margin_percent: float) -> int:
    """Return the most messages a job previewed at `matched` may discover before it is stopped."""
    margin = max(math.ceil(matched * margin_percent / 100), MIN_MARGIN_MESSAGES)
    return matched + margin


def _span(span: timedelta) -> str:
    """Say how long a window over 30 days is: `45 days, more than 30`, or `more than 30 days`."""
    if span == timedelta(days=span.days):
        return f"{span.days} days, more than {BROAD_WINDOW.days}"
    return f"more than {span.days} days"  # not whole days: 30 days and an hour is "more than 30 days"


def _domain_of(value: str) -> str:
    text = value.strip().strip("<>").lower()
    return text.rpartition("@")[2].rstrip(".")


def _is_internal(domain: str, internal: Iterable[str]) -> str | None:
    for own in internal:
        if domain == own or domain.endswith("." + own):
            return own
    return None


def breadth_reasons(
    draft: JobDraft, *, capped: bool, counted_up_to: int, internal_domains: frozenset[str]
) -> list[Reason]:
    """Return why this search is broad (empty when it is not), each with what would narrow it."""
    params = draft.search_params
    reasons: list[Reason] = []
    if not any(getattr(params, key) is not None for key in NARROWING_FILTERS):
        reasons.append(
            Reason(
                ReasonCode.NO_NARROWING_FILTER,
                "it names no particular mail: it filters only on dates, disposition or delivery status",
                "add a sender, recipient, domain, subject, Message-ID, alert ID or query",
            )
        )
    for key in ("sender", "domain"):
        value = getattr(params, key)
        own = _is_internal(_domain_of(str(value)), internal_domains) if value is not None else None
        if own is not None:
            reasons.append(
                Reason(
                    ReasonCode.INTERNAL_SENDER,
                    f"it matches mail from your own domain {own}: usually spoofed, "
                    "but it can be colleagues' real mail",
                    "add a subject, Message-ID or alert ID that only the suspect mail has "
                    "(mail from your own domain still needs a second person)",
                )
            )
            break
    if params.start is not None and params.end is not None and params.end - params.start > BROAD_WINDOW:
        reasons.append(
            Reason(
                ReasonCode.LONG_WINDOW,
                f"its dates cover {_span(params.end - params.start)}",
                f"shorten the dates to {BROAD_WINDOW.days} days or fewer",
            )
        )
    if capped:
        reasons.append(
            Reason(
                ReasonCode.UNCOUNTED,
                f"it matches more than {counted_up_to:,} messages, more than the preview can count",
                "add filters or shorten the dates until the preview can count every message",
            )
        )
    return reasons


_ALWAYS_TEXT = {
    "purge": "it deletes permanently, and every permanent purge needs a second person here",
    "release": "it releases mail from quarantine, and every release needs a second person here",
    "move": "it moves mail, and every move needs a second person here",
}


def _always_kind(draft: JobDraft) -> str:
    # The API's enum values (StrEnums compare equal to them).
    if draft.action == "RELEASE":
        return "release"
    if draft.destination == "RecoverableItemsPurges":
        return "purge"
    return "move"


def approval_reasons(
    policy: ApprovalPolicy, draft: JobDraft, *, matched: int, capped: bool, counted_up_to: int
) -> list[Reason]:
    """Return every reason this job needs a second person (empty: the requester may create it)."""
    reasons = breadth_reasons(
        draft, capped=capped, counted_up_to=counted_up_to, internal_domains=policy.internal_domains
    )
    kind = _always_kind(draft)
    if kind in policy.always:
        reasons.append(Reason(ReasonCode.ALWAYS, _ALWAYS_TEXT[kind]))
    # An uncounted search is over any threshold, but its breadth reason already says so.
    if policy.above == 0:
        reasons.append(Reason(ReasonCode.ABOVE, "every job needs a second person here"))
    elif policy.above is not None and not capped and matched > policy.above:
        text = f"it matches {matched:,} messages, and more than {policy.above:,} needs a second person here"
        reasons.append(Reason(ReasonCode.ABOVE, text))
    return reasons
