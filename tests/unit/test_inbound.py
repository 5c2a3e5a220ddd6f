"""Signature verification and shape checks of inbound Slack requests (pure functions, byte for byte)."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from slack_bolt.request.internals import parse_body
from slack_sdk.signature import SignatureVerifier

from bot.inbound import FORM_CONTENT_TYPE, Refusal, check_shape, read_body, verify_signature

SECRET = "unit-secret"
NOW = 1_796_000_000


def sign(body: bytes, timestamp: str, secret: str = SECRET) -> str:
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def verify(body: bytes, timestamp: str | None, signature: str | None, *, now: float = NOW) -> Refusal | None:
    return verify_signature(secret=SECRET, body=body, timestamp=timestamp, signature=signature, now=now)


def test_a_request_signed_as_slack_signs_passes_and_agrees_with_slack_sdk() -> None:
    body = b"command=%2Fsweep&text=help"
    signature = sign(body, str(NOW))
    assert verify(body, str(NOW), signature) is None
    sdk = SignatureVerifier(SECRET, clock=type("C", (), {"now": lambda self: NOW})())  # type: ignore[no-untyped-call]
    assert sdk.is_valid(body=body.decode(), timestamp=str(NOW), signature=signature)


@pytest.mark.parametrize("offset", [-300, 300])
def test_five_minutes_either_way_is_still_fresh(offset: int) -> None:
    timestamp = str(NOW + offset)
    assert verify(b"x", timestamp, sign(b"x", timestamp)) is None


@pytest.mark.parametrize(
    ("timestamp", "reason"),
    [
        ("abc", "malformed"),
        ("", "malformed"),
        ("1.5e9", "malformed"),
        (f"{NOW}.0", "malformed"),
        ("9" * 500, "malformed"),
        (f"+{NOW}", "malformed"),
        ("1_796_000_000", "malformed"),
        ("".join(chr(0x0660 + int(d)) for d in str(NOW)), "malformed"),
        (str(NOW - 301), "stale"),
        (str(NOW + 301), "stale"),
        (None, "missing"),
    ],
)
def test_bad_timestamps_are_refused_never_raised(timestamp: str | None, reason: str) -> None:
    signature = sign(b"x", timestamp or "")
    refusal = verify(b"x", timestamp, signature)
    assert refusal is not None and refusal.status == 401 and reason in refusal.reason


@pytest.mark.parametrize(
    "signature", [None, "", "v0=00", "v0=" + "0" * 64, "v1=" + "a" * 64, "v0=" + "é" * 64, "v0=" + "A" * 64]
)
def test_bad_signatures_are_refused(signature: str | None) -> None:
    refusal = verify(b"x", str(NOW), signature)
    assert refusal is not None and refusal.status == 401


def test_no_secret_refuses_everything() -> None:
    body = b"x"
    assert verify_signature(
        secret=None, body=body, timestamp=str(NOW), signature=sign(body, str(NOW)), now=NOW
    )
    assert verify_signature(secret="", body=body, timestamp=str(NOW), signature=sign(body, str(NOW)), now=NOW)


@given(body=st.binary(max_size=200), timestamp=st.text(max_size=30), signature=st.text(max_size=80))
def test_verification_never_raises(body: bytes, timestamp: str, signature: str) -> None:
    refusal = verify(body, timestamp, signature)
    assert refusal is not None and refusal.status == 401


def _payload(payload: object) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


VIEW = {"id": "V1", "type": "modal", "callback_id": "sweep_create"}


SLACK_BODIES = [
    b"command=%2Fsweep&text=&user_id=U1&channel_id=C1",
    b"command=%2Fsweep&text=move+query%3Apayload+to%3Ajunk&user_id=U1&channel_id=C1",
    _payload(
        {
            "type": "block_actions",
            "user": {"id": "U1"},
            "actions": [{"action_id": "a"}],
            "response_url": "u",
        }
    ),
    _payload({"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "a"}], "view": VIEW}),
    _payload({"type": "view_submission", "user": {"id": "U1"}, "view": VIEW}),
    _payload({"type": "view_closed", "user": {"id": "U1"}, "view": VIEW}),
    _payload({"type": "shortcut", "user": {"id": "U1"}}),
    b"ssl_check=1&token=x",
]


@pytest.mark.parametrize("body", SLACK_BODIES)
def test_what_slack_sends_has_the_right_shape(body: bytes) -> None:
    assert check_shape(body, FORM_CONTENT_TYPE) is None
    assert check_shape(body, FORM_CONTENT_TYPE + "; charset=utf-8") is None


@pytest.mark.parametrize("body", SLACK_BODIES)
def test_the_body_handed_to_bolt_is_the_one_bolt_would_read(body: bytes) -> None:
    # Bolt no longer parses the body: it gets what `read_body` read, which must be what it would
    # have read itself (its parser mistakes a command whose text says "payload" for an interaction).
    read = read_body(body, FORM_CONTENT_TYPE)
    form = dict(parse_qsl(body.decode(), keep_blank_values=True))
    if "command" in form:
        assert read == form
    else:
        assert read == parse_body(body.decode(), FORM_CONTENT_TYPE)


_FORM_PIECES = [*"%&=+;aZ09 é\x00", "%2", "%20", "%2B", "%25", "%26", "%3D", "%C3%A9", "%C3", "%ff", "%e2%80"]


@given(text=st.lists(st.sampled_from(_FORM_PIECES) | st.text(max_size=4), max_size=25).map("".join))
def test_a_form_is_url_decoded_exactly_as_urllib_decodes_it(text: str) -> None:
    # The C decoder (yarl's query_to_pairs) must agree with urllib's parse_qsl, which Bolt uses,
    # on every escape, valid or not, and every separator.
    body = ("command=%2Fsweep&user_id=U1&channel_id=C1&text=" + text).encode()
    read = read_body(body, FORM_CONTENT_TYPE)
    form = dict(parse_qsl(body.decode(), keep_blank_values=True))
    if isinstance(read, Refusal):
        assert "payload" in form or not all(
            form.get(k, "").strip() for k in ("command", "user_id", "channel_id")
        )
    else:
        assert read == form


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"payload=null", FORM_CONTENT_TYPE),
        (b"payload=%5B1%2C2%5D", FORM_CONTENT_TYPE),
        (b"payload=%22x%22", FORM_CONTENT_TYPE),
        (b"payload=%7Bnot-json", FORM_CONTENT_TYPE),
        (_payload({"user": {"id": "U1"}}), FORM_CONTENT_TYPE),
        (_payload({"type": "block_actions", "actions": [{"action_id": "a"}]}), FORM_CONTENT_TYPE),
        (_payload({"type": "block_actions", "user": {"id": "U1"}}), FORM_CONTENT_TYPE),
        (
            _payload({"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "a"}]}),
            FORM_CONTENT_TYPE,
        ),
        (_payload({"type": "block_actions", "user": {"id": "U1"}, "actions": [{}]}), FORM_CONTENT_TYPE),
        (_payload({"type": "view_submission", "user": {"id": "U1"}}), FORM_CONTENT_TYPE),
        (_payload({"type": "view_submission", "user": {"id": "U1"}, "view": {"id": "V"}}), FORM_CONTENT_TYPE),
        (
            _payload({"type": "view_submission", "user": {"id": "U1"}, "view": {**VIEW, "state": []}}),
            FORM_CONTENT_TYPE,
        ),
        (
            _payload(
                {"type": "view_submission", "user": {"id": "U1"}, "view": {**VIEW, "private_metadata": 1}}
            ),
            FORM_CONTENT_TYPE,
        ),
        (
            _payload(
                {"type": "block_actions", "user": {"id": "U1"}, "actions": [{"action_id": "a"}], "view": []}
            ),
            FORM_CONTENT_TYPE,
        ),
        (
            _payload(
                {
                    "type": "block_actions",
                    "user": {"id": "U1"},
                    "actions": [{"action_id": "a"}],
                    "channel": "C1",
                }
            ),
            FORM_CONTENT_TYPE,
        ),
        (b"command=%2Fsweep&channel_id=C1", FORM_CONTENT_TYPE),
        (b"command=%2Fsweep&user_id=U1&channel_id=", FORM_CONTENT_TYPE),
        (b"command=%2Fsweep&user_id=U1&channel_id=C1", "application/json"),
        (b"command=%2Fsweep&user_id=U1&channel_id=C1", None),
        (b'{"command": "/sweep"}', FORM_CONTENT_TYPE),
        (b"command=%2Fsweep&user_id=U1&channel_id=C1&text=\xff", FORM_CONTENT_TYPE),
        (b"", FORM_CONTENT_TYPE),
        (b"command=%2Fsweep&user_id=U1&channel_id=C1&payload=%7B%7D", FORM_CONTENT_TYPE),
    ],
)
def test_malformed_bodies_are_400(body: bytes, content_type: str | None) -> None:
    refusal = check_shape(body, content_type)
    assert refusal is not None and refusal.status == 400


@given(
    body=st.binary(max_size=300), content_type=st.sampled_from([FORM_CONTENT_TYPE, "application/json", None])
)
def test_shape_checks_never_raise(body: bytes, content_type: str | None) -> None:
    refusal = check_shape(body, content_type)
    assert refusal is None or refusal.status == 400


@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(
                st.sampled_from(["type", "user", "id", "view", "actions", "action_id", "callback_id"]),
                c,
                max_size=4,
            )
        ),
        max_leaves=10,
    )
)
def test_shape_checks_never_raise_on_any_json_payload(payload: object) -> None:
    refusal = check_shape(_payload(payload), FORM_CONTENT_TYPE)
    assert refusal is None or refusal.status == 400
