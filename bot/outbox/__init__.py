"""The outbox: Slack delivery intents stored with the change they announce, delivered exactly once.

`registry` says what a delivery kind is; `kinds` registers Sweep's kinds once each; `notifier`
drains the store's outbox through them.
"""

from __future__ import annotations

from bot.outbox.kinds import KINDS, card_metadata, notice_metadata, transition_metadata
from bot.outbox.notifier import Notifier
from bot.outbox.registry import Kind, KindError, Recovery, Registry, Target, UnknownKindError

__all__ = [
    "KINDS",
    "Kind",
    "KindError",
    "Notifier",
    "Recovery",
    "Registry",
    "Target",
    "UnknownKindError",
    "card_metadata",
    "notice_metadata",
    "transition_metadata",
]
