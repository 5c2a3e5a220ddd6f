"""The draft's rules, written once (`bot.draft`): limits, checks, and `validate_draft`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.cloudflare.models import JOB_COMMENT_MAX, ActionType, Destination, SearchParams
from bot.draft import (
    COMMENT_MAX,
    DRAFT_JSON_MAX,
    EARLIEST,
    FIELD_MAX,
    FILTER_KEYS,
    FILTER_LABELS,
    MAX_RANGE,
    REQUEST_COMMENT_MAX,
    SETTABLE_SEARCH_FIELDS,
    TEXT_FILTER_KEYS,
    JobDraft,
    draft_size,
    first_hidden_character,
    has_filter,
    is_message_id,
    validate_draft,
)
from bot.payloads import ModalMetadata, encode
from bot.slack_limits import PRIVATE_METADATA_MAX
from bot.text import INVISIBLE

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def make(comment: str | None = None, **search: object) -> JobDraft:
    params = {"sender": "bad@phish.example", "start": NOW - timedelta(days=1), "end": NOW, **search}
    return JobDraft(
        action=ActionType.MOVE,
        destination=Destination.JUNK_EMAIL,
        search_params=SearchParams(detections_only=False, **params),  # type: ignore[arg-type]
        comment=comment,
    )


def sized(size: int) -> JobDraft:
    """A draft of exactly `size` characters encoded, every value within its typed limit."""
    values: dict[str, str] = {}
    for key in ("query", "subject", "exact_subject", "recipient", "domain", "alert_id", "sender"):
        values[key] = ""
        room = size - draft_size(make(**values))
        values[key] = "x" * min(room, FIELD_MAX[key])
        if draft_size(make(**values)) == size:
            return make(**values)
    room = size - draft_size(make(comment="", **values))
    draft = make(comment="c" * room, **values)
    assert draft_size(draft) == size and room <= COMMENT_MAX
    return draft


def test_a_draft_at_the_size_limit_fits_in_the_modal_metadata_with_room_to_spare() -> None:
    draft = sized(DRAFT_JSON_MAX)
    text = encode(ModalMetadata(preview_id="p" * 64, draft=draft, stage="preview"))
    assert len(text) <= PRIVATE_METADATA_MAX - 400, "room kept for fields a later release adds"
    assert draft_size(draft) == len(draft.model_dump_json(exclude_none=True)), "measured as it is encoded"


def test_the_request_comment_leaves_room_for_the_longest_request_tag() -> None:
    longest_stamp = len(" [sweep:" + "t" * 64 + "]")
    assert REQUEST_COMMENT_MAX + longest_stamp <= JOB_COMMENT_MAX
    request = make(comment="c" * COMMENT_MAX).to_request(requester_label="u" * 500, channel_label="c" * 500)
    assert request.comment is not None and len(request.comment) <= REQUEST_COMMENT_MAX


def test_the_filter_rule_is_one_set_of_keys() -> None:
    assert tuple(FILTER_LABELS) == FILTER_KEYS
    assert set(TEXT_FILTER_KEYS) <= set(FIELD_MAX) and FIELD_MAX["comment"] == COMMENT_MAX
    assert {*FILTER_KEYS, "start", "end", "detections_only"} == SETTABLE_SEARCH_FIELDS
    assert not has_filter({}) and not has_filter({"start": NOW, "sender": None})
    assert all(has_filter({key: "x"}) for key in FILTER_KEYS)
    with pytest.raises(ValueError, match="at least one filter"):
        JobDraft(
            action=ActionType.RELEASE,
            search_params=SearchParams(start=NOW - timedelta(days=1), end=NOW, detections_only=False),
        )


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("<abc123@mail.example.com>", True),
        ("abc123@mail.example.com", True),
        ("abc 123@mail.example.com", False),
        ("<abc@@example.com>", False),
        ("no-at-sign", False),
        ("", False),
    ],
)
def test_message_id_shape(text: str, ok: bool) -> None:
    assert is_message_id(text) is ok


def test_first_hidden_character() -> None:
    assert first_hidden_character("plain text, naïve, 日本") is None
    assert all(first_hidden_character(f"ab{ch}") == 2 for ch in INVISIBLE)
    assert first_hidden_character("a\x00b") == 1 and first_hidden_character("a\x85") == 1
    assert first_hidden_character("lone \ud800") == 5
    assert first_hidden_character("two\nlines\ttab") is None
    assert first_hidden_character("two\nlines", allowed="") == 3


def test_validate_draft_accepts_what_could_have_been_typed() -> None:
    assert validate_draft(make(comment="INC-1")) is None
    assert validate_draft(sized(DRAFT_JSON_MAX)) is None


@pytest.mark.parametrize(
    ("draft", "complaint"),
    [
        (make(submissions=True), "fields no Sweep form can set: submissions"),
        (make(subject="   "), "`subject` is blank"),
        (make(sender="s" * (FIELD_MAX["sender"] + 1)), f"longer than {FIELD_MAX['sender']}"),
        (make(subject="pay\u200bpal"), "U+200B"),
        (make(comment="c" * (COMMENT_MAX + 1)), f"comment is longer than {COMMENT_MAX}"),
        (make(comment="a\u202eb"), "the comment: contains an invisible"),
        (make(start=EARLIEST - timedelta(days=1)), "`start` is before 2000-01-01"),
        (make(start=NOW - MAX_RANGE - timedelta(days=1)), f"longer than {MAX_RANGE.days} days"),
        (sized(DRAFT_JSON_MAX + 1), f"more than {DRAFT_JSON_MAX}"),
    ],
)
def test_validate_draft_refuses_what_no_parser_would_have_made(draft: JobDraft, complaint: str) -> None:
    problem = validate_draft(draft)
    assert problem is not None and complaint in problem, problem
