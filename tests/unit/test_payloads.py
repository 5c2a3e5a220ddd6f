"""State in Slack payloads: compact, within Slack's limits, and garbage never crashes a handler."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.cloudflare.models import ActionType, Destination, SearchParams
from bot.draft import JobDraft
from bot.grammar import CreateCommand, parse_command
from bot.payloads import (
    CancelButtonValue,
    ConfirmCreateValue,
    ListPageValue,
    ModalMetadata,
    Payload,
    PayloadError,
    PayloadTooLargeError,
    decode,
    encode,
)
from bot.slack_limits import BUTTON_VALUE_MAX, PRIVATE_METADATA_MAX

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
JOB = "0b8c2a4e-6f1d-4c3b-9a7e-2d5f8e1c3b90"
DRAFT = JobDraft(
    action=ActionType.MOVE,
    destination=Destination.RECOVERABLE_ITEMS_PURGES,
    search_params=SearchParams(
        sender="bad@phish.example",
        subject='Invoice "overdue" & <stuff> \u00e9\u6f22',
        final_disposition="MALICIOUS",
        start=NOW - timedelta(days=7),
        end=NOW,
        detections_only=False,
    ),
    comment="INC-1\nsecond line",
)

PREVIEW_ID = "pV1ew-0123456789abcdef"

PAYLOADS: list[Payload] = [
    CancelButtonValue(job_id=JOB),
    ConfirmCreateValue(preview_id=PREVIEW_ID),
    ModalMetadata(preview_id=PREVIEW_ID, draft=None, stage="form"),
    ModalMetadata(preview_id=PREVIEW_ID, draft=DRAFT, stage="preview"),
    ListPageValue(status="PROCESSING", action_type="MOVE", page=3),
    ListPageValue(status=None, action_type=None, page=1),
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: type(p).__name__)
def test_round_trip(payload: Payload) -> None:
    text = encode(payload)
    assert decode(type(payload), text) == payload
    assert len(text) <= type(payload).MAX_CHARS
    assert "null" not in text and ": " not in text, "compact JSON without unset fields"


def test_limits() -> None:
    assert CancelButtonValue.MAX_CHARS == ConfirmCreateValue.MAX_CHARS == BUTTON_VALUE_MAX == 2000
    assert ListPageValue.MAX_CHARS == BUTTON_VALUE_MAX
    assert ModalMetadata.MAX_CHARS == PRIVATE_METADATA_MAX == 3000


def test_encode_refuses_what_slack_would_refuse() -> None:
    # Buttons carry only ids now (issue 9); the modal's metadata still carries a draft to show.
    big = DRAFT.model_copy(update={"comment": "c" * 2500})
    encode(ModalMetadata(preview_id=PREVIEW_ID, draft=big, stage="preview"))
    huge = DRAFT.model_copy(update={"comment": "c" * 3500})
    with pytest.raises(PayloadTooLargeError, match="3000"):
        encode(ModalMetadata(preview_id=PREVIEW_ID, draft=huge, stage="preview"))


def test_the_largest_inline_draft_fits_its_confirm_button() -> None:
    text = (
        'move subject:"'
        + "s" * 200
        + '" exact_subject:"'
        + "e" * 200
        + '" query:"'
        + "q" * 500
        + '" comment:"'
        + "\u00e9" * 400
        + '" sender:"'
        + "x" * 200
        + '" to:junk'
    )
    command = parse_command(text, now=NOW)
    assert isinstance(command, CreateCommand)
    # Issue 9: the draft is stored server-side; its Confirm button carries only the preview's id.
    value = encode(ConfirmCreateValue(preview_id="p" * 64))
    assert len(value) < 100
    assert decode(ConfirmCreateValue, value).preview_id == "p" * 64


def test_building_is_lenient_reading_is_strict() -> None:
    # A card or list for odd data still renders; its button cannot be replayed as an odd value.
    odd = encode(CancelButtonValue(job_id="job-0001"))
    with pytest.raises(PayloadError):
        decode(CancelButtonValue, odd)
    listing = encode(ListPageValue(status="<!channel>", action_type=None, page=2))
    with pytest.raises(PayloadError):
        decode(ListPageValue, listing)


@pytest.mark.parametrize(
    ("cls", "text"),
    [
        (CancelButtonValue, ""),
        (CancelButtonValue, "not json"),
        (CancelButtonValue, "null"),
        (CancelButtonValue, "[]"),
        (CancelButtonValue, '{"job_id": 5}'),
        (CancelButtonValue, '{"job_id": "../../accounts"}'),
        (CancelButtonValue, "{" * 1500),
        (CancelButtonValue, "[" * 1999),
        (CancelButtonValue, "x" * 2001),
        (ListPageValue, '{"page": 0}'),
        (ListPageValue, '{"page": 10001}'),
        (ListPageValue, '{"page": "two"}'),
        (ListPageValue, '{"page": 1e400}'),
        (ModalMetadata, '{"preview_id": "pV1ew-0123456789abcdef", "stage": "preview"}'),
        (ModalMetadata, '{"preview_id": "pV1ew-0123456789abcdef", "stage": "done"}'),
        (ModalMetadata, '{"stage": "form"}'),
        (ModalMetadata, '{"preview_id": "<!channel>"}'),
        (ModalMetadata, '{"channel_id": "C1"}'),
        (ConfirmCreateValue, '{"channel_id": "C1"}'),
        (ConfirmCreateValue, '{"preview_id": "short"}'),
        (ConfirmCreateValue, '{"preview_id": "' + "p" * 65 + '"}'),
        (ConfirmCreateValue, '{"preview_id": "../../../etc/passwd-00000"}'),
        (ConfirmCreateValue, '{"channel_id": "C1", "draft": {"action": "MOVE", "search_params": {}}}'),
        (ConfirmCreateValue, "\ud800"),
    ],
)
def test_garbage_is_a_payload_error(cls: type[Payload], text: str) -> None:
    with pytest.raises(PayloadError):
        decode(cls, text)


def _draft_json(**changes: object) -> str:
    body = json.loads(encode(ModalMetadata(preview_id=PREVIEW_ID, draft=DRAFT, stage="preview")))
    body["draft"].update(changes)
    return json.dumps(body)


@pytest.mark.parametrize(
    "changes",
    [
        {"destination": None},  # a move without a folder
        {"action": "RELEASE"},  # a release with a folder
        {"action": "DESTROY"},
        {"destination": "Nowhere"},
        {
            "search_params": {
                "start": "2026-11-16T07:00:00Z",
                "end": "2026-11-23T07:00:00Z",
                "detections_only": False,
            }
        },
        {"search_params": {"sender": "x", "detections_only": None}},
        {
            "search_params": {
                "sender": "x",
                "detections_only": False,
                "start": "2026-11-23T00:00:00Z",
                "end": "2026-11-01T00:00:00Z",
            }
        },
    ],
)
def test_forged_drafts_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(PayloadError):
        decode(ModalMetadata, _draft_json(**changes))


def test_unknown_fields_are_ignored() -> None:
    value = decode(CancelButtonValue, json.dumps({"job_id": JOB, "v": 2, "extra": [1, 2]}))
    assert value.job_id == JOB


def test_modal_metadata_defaults() -> None:
    assert decode(ModalMetadata, '{"preview_id":"pV1ew-0123456789abcdef"}') == ModalMetadata(
        preview_id=PREVIEW_ID, draft=None, stage="form"
    )


def test_payloads_are_frozen() -> None:
    value = CancelButtonValue(job_id=JOB)
    with pytest.raises(ValueError, match="frozen"):
        value.job_id = "other"  # type: ignore[misc]


@settings(max_examples=300)
@given(
    st.sampled_from([CancelButtonValue, ConfirmCreateValue, ModalMetadata, ListPageValue]),
    st.text(max_size=400),
)
def test_fuzz_decode_only_raises_payload_error(cls: type[Payload], text: str) -> None:
    with contextlib.suppress(PayloadError):
        decode(cls, text)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "job_id",
                    "draft",
                    "channel_id",
                    "preview_id",
                    "stage",
                    "page",
                    "status",
                    "action",
                    "search_params",
                    "destination",
                    "comment",
                    "sender",
                    "detections_only",
                    "x",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(st.sampled_from([CancelButtonValue, ConfirmCreateValue, ModalMetadata, ListPageValue]), _JSONISH)
def test_fuzz_decode_json_shaped_garbage(cls: type[Payload], value: object) -> None:
    try:
        decoded = decode(cls, json.dumps(value))
    except PayloadError:
        return
    assert isinstance(decoded, cls)


@settings(max_examples=100)
@given(st.integers(min_value=1, max_value=10_000), st.sampled_from([None, "PENDING", "COMPLETED"]))
def test_fuzz_list_page_round_trip(page: int, status: str | None) -> None:
    value = ListPageValue(status=status, action_type="RELEASE", page=page)
    assert decode(ListPageValue, encode(value)) == value


@settings(max_examples=100)
@given(
    st.text(min_size=1, max_size=200).filter(str.strip),
    st.one_of(st.none(), st.text(max_size=300)),
    st.sampled_from(list(Destination)),
)
def test_fuzz_confirm_round_trip(subject: str, comment: str | None, destination: Destination) -> None:
    try:
        draft = JobDraft(
            action=ActionType.MOVE,
            destination=destination,
            search_params=SearchParams(
                subject=subject, start=NOW - timedelta(hours=1), end=NOW, detections_only=True
            ),
            comment=comment,
        )
        text = encode(ModalMetadata(preview_id=PREVIEW_ID, draft=draft, stage="preview"))
    except (PayloadError, UnicodeEncodeError):
        return
    assert decode(ModalMetadata, text).draft == draft
