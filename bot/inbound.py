"""What arrives at `/slack/events`: check Slack's signature, then the body's shape, before Bolt sees it.

slack_sdk's `SignatureVerifier` does `int(timestamp)`, so a malformed `X-Slack-Request-Timestamp` raises
instead of failing, and Bolt then hands the *unverified* body to the app's error handler. Sweep therefore
verifies every HTTP request itself, on the raw bytes, with a strict timestamp parse and a constant-time
comparison; anything that fails is refused (401) here and never reaches Bolt. A verified body is then
checked for the few fields each kind of request needs (400 otherwise), so a listener or the error handler
never runs on a body Slack would not send.

Everything here is pure (no I/O, no clock reads: pass `now`), so it is unit-testable byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yarl import query_to_pairs

__all__ = [
    "MAX_CLOCK_SKEW_SECONDS",
    "VERIFIED_KEY",
    "Refusal",
    "check_shape",
    "read_body",
    "verify_signature",
]

#: Slack's rule: a request whose timestamp is more than five minutes away from now is a replay.
MAX_CLOCK_SKEW_SECONDS = 300
#: The Bolt context key set on a request once its signature was checked (never settable from a body).
VERIFIED_KEY = "sweep_request_verified"

TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE_HEADER = "X-Slack-Signature"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"

# Unix seconds in ASCII digits; twelve digits reach the year 33658, so anything longer is garbage.
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: the HTTP status and a short reason for the log (never the body)."""

    status: int
    reason: str


def verify_signature(
    *,
    secret: str | None,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now: float,
) -> Refusal | None:
    """Return None when Slack signed `body` (`v0=HMAC-SHA256(secret, "v0:{ts}:{body}")`), else why not.

    The timestamp must be ASCII digits only (no sign, no decimals, no exponent, at most 12 digits) and
    within five minutes of `now`; the signature is compared in constant time. Nothing here raises.
    """
    if not secret:
        return Refusal(401, "no signing secret is configured")
    if timestamp is None or signature is None:
        return Refusal(401, "missing signature headers")
    if not _TIMESTAMP.fullmatch(timestamp):
        return Refusal(401, "malformed request timestamp")
    if abs(now - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        return Refusal(401, "stale request timestamp")
    if not _SIGNATURE.fullmatch(signature):
        return Refusal(401, "malformed signature")
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
        return Refusal(401, "signature mismatch")
    return None


def _nonempty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _user_id(payload: Mapping[str, Any]) -> bool:
    user = payload.get("user")
    return isinstance(user, Mapping) and _nonempty_str(user.get("id"))


def _view_ok(view: Any) -> bool:
    """Return True for a view as Slack sends it: ids as strings, `state` an object, metadata a string."""
    return (
        isinstance(view, Mapping)
        and all(_nonempty_str(view.get(k)) for k in ("id", "type", "callback_id"))
        and isinstance(view.get("state", {}), Mapping)
        and all(isinstance(view.get(k, ""), str) for k in ("private_metadata", "hash"))
    )


def _actions_ok(payload: Mapping[str, Any]) -> bool:
    actions = payload.get("actions")
    return (
        isinstance(actions, list)
        and bool(actions)
        and all(isinstance(a, Mapping) and _nonempty_str(a.get("action_id")) for a in actions)
    )


def _interaction_problem(payload: Any) -> str | None:
    """Return what an interaction payload lacks, or None when Sweep's listeners can handle it."""
    if not isinstance(payload, Mapping):
        return "the payload is not a JSON object"
    kind = payload.get("type")
    if not _nonempty_str(kind):
        return "the payload has no type"
    if not _user_id(payload):
        return f"a {kind} payload without user.id"
    if kind == "block_actions" and not _actions_ok(payload):
        return "a block_actions payload without actions[].action_id"
    if kind in ("view_submission", "view_closed") and not _view_ok(payload.get("view")):
        return f"a {kind} payload without a well-formed view (id, type, callback_id, state)"
    if "view" in payload and not _view_ok(payload["view"]):
        return f"a {kind} payload with a malformed view"
    if kind == "block_actions" and "view" not in payload and not _nonempty_str(payload.get("response_url")):
        return "a block_actions payload from a message without a response_url"
    channel = payload.get("channel")
    if channel is not None and not (isinstance(channel, Mapping) and isinstance(channel.get("id", ""), str)):
        return f"a {kind} payload with a malformed channel"
    return None


def _command_problem(fields: Mapping[str, str]) -> str | None:
    """Return what a slash command's form lacks, or None."""
    missing = [name for name in ("command", "user_id", "channel_id") if not fields.get(name, "").strip()]
    return f"a slash command without {', '.join(missing)}" if missing else None


def check_shape(body: bytes, content_type: str | None) -> Refusal | None:
    """Return None when a verified body is a slash command or an interaction as Slack sends them, else why."""
    read = read_body(body, content_type)
    return read if isinstance(read, Refusal) else None


def read_body(body: bytes, content_type: str | None) -> dict[str, Any] | Refusal:
    """Return a verified body as Bolt reads it, when it is a slash command or an interaction, else why not.

    Slack posts both as `application/x-www-form-urlencoded` UTF-8: a command is a form with `command`,
    `user_id` and `channel_id` (returned as its fields); an interaction is a form whose one `payload`
    field is a JSON object with a `type` and `user.id` (and `actions` or `view` for the kinds Sweep
    listens to), returned decoded. Sweep subscribes to no Events API events, so a JSON body is never
    Slack's. The body is parsed here once: Bolt is handed what this returns, never parses it again.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != FORM_CONTENT_TYPE:
        return Refusal(400, f"unsupported content type {media_type[:60] or 'none'!r}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(400, "the body is not UTF-8")
    if text.startswith("{"):
        return Refusal(400, "a JSON body sent as a form")
    # `parse_qsl(text, keep_blank_values=True)`, as Bolt parses a form, but URL-decoded in C: a view
    # submission carries the whole view, thousands of %-escapes that cost milliseconds in Python.
    fields: dict[str, Any] = dict(query_to_pairs(text))
    if "payload" in fields and "command" not in fields:
        try:
            payload = json.loads(fields["payload"])
        except ValueError:
            return Refusal(400, "the payload is not JSON")
        problem = _interaction_problem(payload)
        fields = payload
    elif "command" in fields and "payload" not in fields:
        problem = _command_problem(fields)
    elif fields.get("ssl_check") == "1":
        problem = None  # Slack's certificate check: Bolt answers it with an empty 200
    else:
        problem = "neither a slash command nor an interaction payload"
    return fields if problem is None else Refusal(400, problem)
