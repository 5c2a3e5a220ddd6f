"""What a delivery kind is, and the registry that holds each kind once.

A kind says everything the notifier needs to deliver a row of that kind, so the notifier never
branches on kind names:

- `render`: the row's payload and the job's *current* state (None for a row with no job) → the
  message (`{"text": …, "blocks": […]}`).
- `target`: where it goes (`Target`): the job's channel, the job's card (an edit), the card's
  thread, the row's own channel (and thread), or a user (a DM).
- `recovery`: the metadata posted with the message (`event_type` + an event payload whose
  `metadata_key` identifies it), which is how a post interrupted by a crash is found again in
  Slack's history instead of being posted twice.
- `rearmable`: the row is re-armed by later changes and coalesced (at most one edit per
  `min_edit_interval`, settled only when its `seq` did not move).
- `waits_for_card`: a row with a job is not sent before the job's card exists.
- `records_card`: the posted message becomes the job's card (its ts is stored on the job, and a
  card found again after a crash is brought up to date).
- `edits`: for target `MESSAGE`, the kind whose posted message this kind edits (the row of that kind
  with the same key, e.g. an approval request and its update); the edit waits until it is posted.

Adding a kind is one `Registry.register(Kind(...))` call: the outbox table names no kinds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.models import TrackedJob
from bot.slack_port import metadata_key
from bot.store import OutboxItem

__all__ = ["Kind", "KindError", "Recovery", "Registry", "Render", "Target", "UnknownKindError"]

#: payload, the job's current state (None when the row has no job), now → `{"text", "blocks"}`.
Render = Callable[[Mapping[str, Any], TrackedJob | None, datetime], dict[str, Any]]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class KindError(ValueError):
    """A kind cannot be registered: a bad definition, or its name is taken."""


class UnknownKindError(LookupError):
    """No kind of that name is registered (a row queued by newer code, or a typo)."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"no delivery kind {name!r} is registered (known: {', '.join(sorted(known))})")
        self.name = name


class Target(StrEnum):
    """Where a kind's message goes."""

    JOB_CHANNEL = "job_channel"  # a new message in the job's channel
    CARD = "card"  # an edit of the job's card (chat.update)
    CARD_THREAD = "card_thread"  # a reply in the job's card's thread
    CHANNEL = "channel"  # the row's `channel_id`, in the row's `thread_ts` if set
    USER = "user"  # a direct message to the row's `user_id` (conversations.open)
    MESSAGE = "message"  # an edit of the message the row of kind `Kind.edits` with the same key posted

    @property
    def needs_job(self) -> bool:
        """Return True when the target is found through the row's job."""
        return self in (Target.JOB_CHANNEL, Target.CARD, Target.CARD_THREAD)

    @property
    def needs_card(self) -> bool:
        """Return True when the target is the job's card or its thread."""
        return self in (Target.CARD, Target.CARD_THREAD)

    @property
    def edits(self) -> bool:
        """Return True when delivering edits a message (idempotent: never looked up, never ambiguous)."""
        return self in (Target.CARD, Target.MESSAGE)


@dataclass(frozen=True, slots=True)
class Recovery:
    """The metadata a kind's message carries: how Sweep recognises it in Slack's history."""

    event_type: str
    payload: Callable[[OutboxItem], dict[str, Any]]

    def metadata(self, item: OutboxItem) -> dict[str, Any]:
        """Return the `metadata` argument of chat.postMessage / chat.update for this row."""
        return {"event_type": self.event_type, "event_payload": self.payload(item)}

    def key(self, item: OutboxItem) -> str:
        """Return the identity the history search matches (`bot.slack_port.metadata_key`)."""
        return metadata_key(self.payload(item))


@dataclass(frozen=True, slots=True)
class Kind:
    """One delivery kind; see the module docstring for each field."""

    name: str
    target: Target
    render: Render
    recovery: Recovery
    rearmable: bool = False
    waits_for_card: bool = False
    records_card: bool = False
    edits: str | None = None

    def __post_init__(self) -> None:
        problems: list[str] = []
        if (self.target is Target.MESSAGE) != (self.edits is not None):
            problems.append("target message and `edits` (the kind whose message it edits) go together")
        if not _NAME.match(self.name):
            problems.append("its name must be lower_snake_case (at most 64 characters)")
        if self.target.needs_card and not self.waits_for_card:
            problems.append(f"target {self.target} is the job's card, so it must wait for the card")
        if self.rearmable and not self.target.edits:
            problems.append("only an edit can be re-armed (re-sending a post would duplicate it)")
        if self.records_card and (self.target is not Target.JOB_CHANNEL or self.waits_for_card):
            problems.append("only a post to the job's channel, not waiting for a card, can become the card")
        if problems:
            raise KindError(f"delivery kind {self.name!r}: " + "; ".join(problems))


class Registry:
    """The delivery kinds by name; each name is registered once."""

    def __init__(self, kinds: Iterable[Kind] = ()) -> None:
        self._kinds: dict[str, Kind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: Kind) -> Kind:
        """Add a kind; a name already registered is an error. Return the kind."""
        if kind.name in self._kinds:
            raise KindError(f"delivery kind {kind.name!r} is already registered")
        if kind.edits is not None and kind.edits not in self._kinds:
            raise KindError(f"delivery kind {kind.name!r} edits {kind.edits!r}, which is not registered")
        self._kinds[kind.name] = kind
        return kind

    def get(self, name: str) -> Kind:
        """Return the kind of that name, or raise `UnknownKindError`."""
        try:
            return self._kinds[name]
        except KeyError:
            raise UnknownKindError(name, self._kinds) from None

    def copy(self) -> Registry:
        """Return a new registry with the same kinds (to add more without changing this one)."""
        return Registry(self._kinds.values())

    def card_free(self) -> frozenset[str]:
        """Return the names of the kinds whose rows do not wait for their job's card."""
        return frozenset(name for name, kind in self._kinds.items() if not kind.waits_for_card)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Iterator[Kind]:
        return iter(self._kinds.values())

    def __len__(self) -> int:
        return len(self._kinds)
