"""Who may do what: operators (Slack users and user groups), approvers and channels. Default deny.

Viewing (help, list, status) is allowed to anyone in an allowed channel; creating, cancelling and
watching jobs is for operators only; approving (and rejecting) a job that needs a second person is
for the approvers (`SWEEP_APPROVERS`, users and user groups; unset: any operator) — and never for
the person who asked, which the approval use case checks against the stored request. A user
group's members are resolved through an injected callable (the app passes one calling
`usergroups.users.list`), cached by `GroupMembershipCache`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from bot.slack_limits import is_user_id

__all__ = [
    "EVERYONE",
    "NOT_AN_OPERATOR",
    "NOT_IN_CHANNEL",
    "Decision",
    "GroupMembershipCache",
    "Operation",
    "Policy",
    "not_an_operator",
    "parse_ids",
]

log = logging.getLogger("sweep.policy")

EVERYONE = "*"


class Operation(StrEnum):
    """An operator-only request, worded as its refusal names it."""

    CREATE = "create jobs"
    CANCEL = "cancel jobs"
    WATCH = "watch jobs"
    OPEN_FORM = "open the create form"
    APPROVE = "approve jobs"


def not_an_operator(operation: Operation) -> str:
    """Return the refusal for a non-operator, naming what they tried."""
    return f"only Sweep operators may {operation}; ask an admin to add you to SWEEP_OPERATORS"


def not_an_approver() -> str:
    """Return the refusal for someone not listed in SWEEP_APPROVERS."""
    return "only Sweep approvers may approve jobs; ask an admin to add you to SWEEP_APPROVERS"


NOT_AN_OPERATOR = not_an_operator(Operation.CREATE)
NOT_IN_CHANNEL = "Sweep is not enabled in this channel; ask an admin to add it to SWEEP_CHANNELS"
LOOKUP_FAILED = "(Sweep could not check your user-group membership just now; try again in a minute)"

_GROUP_RE = re.compile(r"^S[A-Z0-9]+$")
_CHANNEL_RE = re.compile(r"^[CGD][A-Z0-9]+$")

ResolveMembers = Callable[[str], Awaitable[frozenset[str]]]


@dataclass(frozen=True)
class Decision:
    """An authorisation answer with the reason to show when it is a refusal (truthy when allowed)."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed

    @classmethod
    def allow(cls, reason: str = "allowed") -> Decision:
        """Return a positive decision."""
        return cls(True, reason)

    @classmethod
    def deny(cls, reason: str) -> Decision:
        """Return a refusal with the reason the user will see."""
        return cls(False, reason)


def parse_ids(entries: Iterable[str]) -> frozenset[str]:
    """Return the stripped, non-empty entries."""
    return frozenset(e.strip() for e in entries if e and e.strip())


class Policy:
    """Authorisation rules: who operates (users `U…`/`W…`, user groups `S…`, or `*`) and where."""

    def __init__(
        self,
        operators: frozenset[str],
        channels: frozenset[str] | None,
        approvers: frozenset[str] | None = None,
    ) -> None:
        """`approvers`: who may approve (users and user groups); None: any operator."""
        self._approver_users: frozenset[str] | None = None
        self._approver_groups: tuple[str, ...] = ()
        if approvers is not None:
            listed = parse_ids(approvers)
            bad = sorted(e for e in listed if not (is_user_id(e) or _GROUP_RE.match(e)))
            if bad or not listed:
                raise ValueError(
                    "SWEEP_APPROVERS entries must be Slack user IDs (U…/W…) or user-group IDs (S…); "
                    f"not {', '.join(bad[:5]) or 'nothing'}"
                )
            self._approver_users = frozenset(e for e in listed if is_user_id(e))
            self._approver_groups = tuple(sorted(e for e in listed if _GROUP_RE.match(e)))
        operators = parse_ids(operators)
        bad = sorted(e for e in operators if e != EVERYONE and not (is_user_id(e) or _GROUP_RE.match(e)))
        if bad:
            raise ValueError(
                "SWEEP_OPERATORS entries must be Slack user IDs (U…/W…), user-group IDs (S…) or *; "
                f"not {', '.join(bad[:5])}"
            )
        self._everyone = EVERYONE in operators
        self._users = frozenset(e for e in operators if is_user_id(e))
        self._groups = tuple(sorted(e for e in operators if _GROUP_RE.match(e)))
        self._channels: frozenset[str] | None = None
        if channels is not None:
            allowed = parse_ids(channels)
            if EVERYONE not in allowed:
                bad = sorted(e for e in allowed if not _CHANNEL_RE.match(e))
                if bad:
                    raise ValueError(
                        "SWEEP_CHANNELS entries must be Slack channel IDs (C…/G…/D…); "
                        f"not {', '.join(bad[:5])}"
                    )
                self._channels = allowed

    @property
    def everyone(self) -> bool:
        """Return True when every Slack user is an operator (`*`): worth a warning at startup."""
        return self._everyone

    @property
    def users(self) -> frozenset[str]:
        """Return the user IDs listed as operators."""
        return self._users

    @property
    def groups(self) -> tuple[str, ...]:
        """Return the user-group IDs whose members are operators."""
        return self._groups

    @property
    def channels(self) -> frozenset[str] | None:
        """Return the channels Sweep answers in, or None for every channel."""
        return self._channels

    async def can_operate(
        self,
        user_id: str,
        *,
        resolve_group_members: ResolveMembers,
        operation: Operation = Operation.CREATE,
    ) -> Decision:
        """Decide whether this user may do `operation` (a failed group lookup denies); a refusal names it.

        `Operation.APPROVE` is decided against SWEEP_APPROVERS when it is set, else like any operation.
        """
        if operation is Operation.APPROVE and self._approver_users is not None:
            return await self._member(
                user_id,
                users=self._approver_users,
                groups=self._approver_groups,
                refusal=not_an_approver(),
                resolve_group_members=resolve_group_members,
                role="approver",
            )
        if self._everyone:
            return Decision.allow("everyone is an operator")
        return await self._member(
            user_id,
            users=self._users,
            groups=self._groups,
            refusal=not_an_operator(operation),
            resolve_group_members=resolve_group_members,
            role="operator",
        )

    @property
    def approvers(self) -> frozenset[str] | None:
        """Return the users and groups listed in SWEEP_APPROVERS, or None when any operator approves."""
        if self._approver_users is None:
            return None
        return self._approver_users | frozenset(self._approver_groups)

    async def _member(
        self,
        user_id: str,
        *,
        users: frozenset[str],
        groups: tuple[str, ...],
        refusal: str,
        resolve_group_members: ResolveMembers,
        role: str,
    ) -> Decision:
        if not isinstance(user_id, str) or not user_id:
            return Decision.deny(refusal)
        if user_id in users:
            return Decision.allow(f"listed {role}")
        lookup_failed = False
        for group_id in groups:
            try:
                members = await resolve_group_members(group_id)
            except Exception as error:  # any failure must deny, never crash the handler
                lookup_failed = True
                log.warning(
                    "could not resolve user group %s for %s: %s: %s",
                    group_id,
                    user_id,
                    type(error).__name__,
                    error,
                )
                continue
            if user_id in members:
                return Decision.allow(f"member of user group {group_id}")
        if lookup_failed:
            return Decision.deny(f"{refusal} {LOOKUP_FAILED}")
        return Decision.deny(refusal)

    def channel_allowed(self, channel_id: str | None) -> Decision:
        """Decide whether Sweep answers in this channel (an unknown channel is refused when restricted)."""
        if self._channels is None:
            return Decision.allow("every channel is enabled")
        if channel_id and channel_id in self._channels:
            return Decision.allow("enabled channel")
        return Decision.deny(NOT_IN_CHANNEL)


class GroupMembershipCache:
    """Cache user-group members for `ttl_seconds`; concurrent look-ups of one group share one call.

    Failures are not cached and not replaced by stale data (a removed operator must lose access):
    the error propagates, and `Policy.can_operate` turns it into a refusal.
    """

    def __init__(
        self,
        fetch: ResolveMembers,
        ttl_seconds: float = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("ttl_seconds must not be negative")
        self._fetch = fetch
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, frozenset[str]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def members(self, group_id: str) -> frozenset[str]:
        """Return the group's member user IDs, from the cache while fresh."""
        cached = self._fresh(group_id)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(group_id, asyncio.Lock())
        async with lock:
            cached = self._fresh(group_id)
            if cached is not None:
                return cached
            members = frozenset(await self._fetch(group_id))
            self._entries[group_id] = (self._clock() + self._ttl, members)
            return members

    def invalidate(self, group_id: str | None = None) -> None:
        """Forget one group's members, or every group's."""
        if group_id is None:
            self._entries.clear()
        else:
            self._entries.pop(group_id, None)

    def _fresh(self, group_id: str) -> frozenset[str] | None:
        entry = self._entries.get(group_id)
        if entry is None:
            return None
        expires, members = entry
        if self._clock() >= expires:
            return None
        return members
