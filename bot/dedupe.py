"""Which Slack request is being handled, so a replay or a Slack retry of it is acknowledged but not acted on.

Every interaction Slack sends carries a `trigger_id` unique to that command, click or submission;
a byte-for-byte replay and a Slack retry (`X-Slack-Retry-Num`) carry the same one. The request's
key is set around Bolt's whole dispatch (`bot.app.SweepApp.async_dispatch`: with
`process_before_response` the listener runs inside it; a middleware would be too early, Bolt returns
from every middleware before it runs the listener). The work a listener hands over after its ack
first claims the key in the database (`Store.claim_request`) and does nothing if the key was
claimed before. Double clicks are two interactions: they are caught by the use-once preview.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

__all__ = ["current_request_key", "request_key"]

#: The key of the Slack request whose listener is running (None outside one, or when it has none).
current_request_key: ContextVar[str | None] = ContextVar("sweep_request_key", default=None)


def request_key(body: Mapping[str, Any] | Any) -> str | None:
    """Return the identity of one Slack interaction (its kind and trigger id), or None if it has none."""
    if not isinstance(body, Mapping):
        return None
    trigger = body.get("trigger_id")
    if not isinstance(trigger, str) or not trigger or len(trigger) > 200:
        return None
    kind = body.get("type") if isinstance(body.get("type"), str) else "command"
    return f"{kind}:{trigger}"
