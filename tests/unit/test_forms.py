"""Reading the create modal back: round trips, field errors, garbled state, typed confirmation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blocks.create_modal import build_create_modal, build_preview_view
from bot.cloudflare.models import ActionType, Destination, SearchParams, SearchResult
from bot.draft import DRAFT_JSON_MAX, JobDraft
from bot.forms import (
    FormErrors,
    confirmation_errors,
    parse_confirmation,
    parse_create_form,
)
from bot.ids import ActionId, BlockId, CallbackId
from bot.payloads import ModalMetadata, decode, encode

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
WEEK_AGO = NOW - timedelta(days=7)


def state_from_view(view: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """Simulate what Slack sends back when the analyst submits a view without touching it."""
    state: dict[str, dict[str, dict[str, Any]]] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        kind = element["type"]
        if kind == "plain_text_input":
            value: dict[str, Any] = {"type": kind, "value": element.get("initial_value")}
        elif kind in {"static_select", "radio_buttons"}:
            value = {"type": kind, "selected_option": element.get("initial_option")}
        elif kind == "datetimepicker":
            value = {"type": kind, "selected_date_time": element.get("initial_date_time")}
        elif kind == "checkboxes":
            value = {"type": kind, "selected_options": element.get("initial_options", [])}
        else:  # pragma: no cover - the modal uses no other element
            raise AssertionError(kind)
        state[block["block_id"]] = {element["action_id"]: value}
    return state


def input_block_ids(view: dict[str, Any]) -> set[str]:
    return {b["block_id"] for b in view["blocks"] if b["type"] == "input"}


def form_state(
    action: str = "MOVE", destination: str | None = "DeletedItems", **texts: Any
) -> dict[str, Any]:
    """A filled-in form's state (MOVE to Deleted Items, sender set) with overrides."""
    view = build_create_modal(metadata="{}", action=action, now=NOW)
    state = state_from_view(view)
    if destination is not None and BlockId.DESTINATION in state:
        state[BlockId.DESTINATION][ActionId.DESTINATION]["selected_option"] = {
            "text": {"type": "plain_text", "text": destination},
            "value": destination,
        }
    texts.setdefault("sender", "bad@example.com")
    for field, value in texts.items():
        block_id = BlockId(f"sweep_{field}")
        state[block_id][ActionId(f"sweep_{field}")]["value"] = value
    return state


def parse(state: Any) -> JobDraft | FormErrors:
    return parse_create_form(state, now=NOW)


def errors_of(state: Any) -> FormErrors:
    result = parse(state)
    assert isinstance(result, FormErrors), result
    return result


DRAFTS = [
    JobDraft(
        action=ActionType.MOVE,
        destination=Destination.DELETED_ITEMS,
        search_params=SearchParams(sender="bad@example.com", start=WEEK_AGO, end=NOW, detections_only=False),
        comment=None,
    ),
    JobDraft(
        action=ActionType.MOVE,
        destination=Destination.RECOVERABLE_ITEMS_PURGES,
        search_params=SearchParams(
            sender="a@b.example",
            recipient="me@corp.example",
            domain="b.example",
            subject="Invoice & <stuff>",
            exact_subject="Your invoice #4411",
            message_id="<abc123@mail.example.com>",
            alert_id="4Njp3P0STMz2c02Q-2022-12-30T02:44:49",
            query="urgent wire",
            final_disposition="MALICIOUS",
            delivery_status="delivered",
            start=NOW - timedelta(days=2, hours=3),
            end=NOW - timedelta(hours=1),
            detections_only=True,
        ),
        comment="INC-42\nsecond line",
    ),
    JobDraft(
        action=ActionType.RELEASE,
        destination=None,
        search_params=SearchParams(
            subject="Quarterly report",
            delivery_status="quarantined",
            start=WEEK_AGO,
            end=NOW,
            detections_only=False,
        ),
        comment="false positive, INC-7",
    ),
]


@pytest.mark.parametrize("draft", DRAFTS)
def test_modal_round_trip(draft: JobDraft) -> None:
    view = build_create_modal(metadata="{}", draft=draft, now=NOW)
    assert parse(state_from_view(view)) == draft


def test_round_trip_after_going_back_from_preview() -> None:
    # The way the modal goes: form → (submit) preview, whose private_metadata carries the draft →
    # "Edit search" → the form rebuilt from that metadata alone → (submit untouched) the same draft.
    form = build_create_modal(
        metadata=encode(ModalMetadata(preview_id="pV1ew-0123456789abcdef")), draft=DRAFTS[1], now=NOW
    )
    draft = parse(state_from_view(form))
    assert draft == DRAFTS[1]
    preview = build_preview_view(
        metadata=encode(ModalMetadata(preview_id="pV1ew-0123456789abcdef", draft=draft, stage="preview")),
        draft=draft,
        preview=SearchResult(messages=[], capped=False),
        limit=10,
        now=NOW,
    )
    edit = [
        element
        for block in preview["blocks"]
        if block.get("block_id") == BlockId.PREVIEW_ACTIONS
        for element in block["elements"]
    ]
    assert [element["action_id"] for element in edit] == [ActionId.EDIT_DRAFT]
    # What the Edit search button's listener reads: only the preview's private_metadata.
    carried = decode(ModalMetadata, preview["private_metadata"])
    assert carried.stage == "preview" and carried.draft is not None
    back = encode(ModalMetadata(preview_id=carried.preview_id, draft=carried.draft, stage="form"))
    again = build_create_modal(metadata=back, draft=carried.draft, now=NOW)
    assert again["callback_id"] == CallbackId.CREATE_FORM
    assert parse(state_from_view(again)) == DRAFTS[1]


def test_untouched_blank_form_asks_for_a_destination_and_a_filter() -> None:
    view = build_create_modal(metadata="{}", now=NOW)
    errors = errors_of(state_from_view(view))
    assert set(errors) == {BlockId.DESTINATION, BlockId.SENDER}
    assert set(errors) <= input_block_ids(view)


def test_defaults_last_seven_days_and_no_detections_filter() -> None:
    draft = parse(form_state())
    assert isinstance(draft, JobDraft)
    assert draft.search_params.start == WEEK_AGO and draft.search_params.end == NOW
    assert draft.search_params.detections_only is False
    state = form_state()
    del state[BlockId.START], state[BlockId.END], state[BlockId.DETECTIONS_ONLY]
    draft = parse(state)
    assert isinstance(draft, JobDraft)
    assert (draft.search_params.start, draft.search_params.end) == (WEEK_AGO, NOW)
    assert draft.search_params.detections_only is False


def test_detections_only_when_ticked() -> None:
    state = form_state()
    state[BlockId.DETECTIONS_ONLY][ActionId.DETECTIONS_ONLY]["selected_options"] = [
        {"value": "detections_only"}
    ]
    draft = parse(state)
    assert isinstance(draft, JobDraft) and draft.search_params.detections_only is True


def test_release_ignores_a_stale_destination() -> None:
    state = form_state(action="RELEASE")
    state[BlockId.DESTINATION] = {ActionId.DESTINATION: {"selected_option": {"value": "Inbox"}}}
    draft = parse(state)
    assert isinstance(draft, JobDraft)
    assert draft.action is ActionType.RELEASE and draft.destination is None


def test_blank_strings_are_unset_and_values_are_trimmed() -> None:
    draft = parse(form_state(sender="  bad@example.com  ", subject="   ", comment=""))
    assert isinstance(draft, JobDraft)
    assert draft.search_params.sender == "bad@example.com"
    assert draft.search_params.subject is None and draft.comment is None


@pytest.mark.parametrize(
    ("changes", "block_id"),
    [
        ({"destination": None}, BlockId.DESTINATION),
        ({"destination": "Shredder"}, BlockId.DESTINATION),
        ({"sender": None}, BlockId.SENDER),
        ({"sender": "x" * 255}, BlockId.SENDER),
        ({"subject": "s" * 201}, BlockId.SUBJECT),
        ({"query": "q" * 501}, BlockId.QUERY),
        ({"comment": "c" * 501}, BlockId.COMMENT),
        ({"subject": "bell\x07"}, BlockId.SUBJECT),
        ({"recipient": "evil\u202emoc.elgoog@x"}, BlockId.RECIPIENT),
        ({"comment": "null\x00byte"}, BlockId.COMMENT),
        ({"message_id": "not a message id"}, BlockId.MESSAGE_ID),
        ({"message_id": "no-at-sign"}, BlockId.MESSAGE_ID),
        ({"sender": 42}, BlockId.SENDER),
    ],
)
def test_field_errors(changes: dict[str, Any], block_id: str) -> None:
    destination = changes.pop("destination", "DeletedItems")
    state = form_state(destination=destination, **changes)
    if destination is None:
        state[BlockId.DESTINATION][ActionId.DESTINATION]["selected_option"] = None
    errors = errors_of(state)
    assert block_id in errors
    assert set(errors) <= input_block_ids(build_create_modal(metadata="{}", now=NOW))
    assert errors.response() == {"response_action": "errors", "errors": dict(errors)}


def test_comment_may_span_lines() -> None:
    draft = parse(form_state(comment="INC-1\n\tsecond line"))
    assert isinstance(draft, JobDraft) and draft.comment == "INC-1\n\tsecond line"


def test_message_id_with_and_without_brackets() -> None:
    for value in ("<abc@example.com>", "abc.def@mail.example.com"):
        draft = parse(form_state(message_id=value))
        assert isinstance(draft, JobDraft) and draft.search_params.message_id == value


def _set_dates(state: dict[str, Any], start: datetime | None, end: datetime | None) -> dict[str, Any]:
    state[BlockId.START][ActionId.START]["selected_date_time"] = int(start.timestamp()) if start else None
    state[BlockId.END][ActionId.END]["selected_date_time"] = int(end.timestamp()) if end else None
    return state


def test_end_before_start() -> None:
    errors = errors_of(_set_dates(form_state(), NOW - timedelta(days=1), NOW - timedelta(days=2)))
    assert set(errors) == {BlockId.END}


def test_future_dates() -> None:
    errors = errors_of(_set_dates(form_state(), NOW + timedelta(days=1), NOW + timedelta(days=2)))
    assert set(errors) == {BlockId.START, BlockId.END}
    skewed = parse(_set_dates(form_state(), NOW - timedelta(days=1), NOW + timedelta(minutes=2)))
    assert isinstance(skewed, JobDraft)


def test_selects() -> None:
    state = form_state()
    state[BlockId.FINAL_DISPOSITION][ActionId.FINAL_DISPOSITION]["selected_option"] = {"value": "SPOOF"}
    state[BlockId.DELIVERY_STATUS][ActionId.DELIVERY_STATUS]["selected_option"] = {"value": "any"}
    draft = parse(state)
    assert isinstance(draft, JobDraft)
    assert draft.search_params.final_disposition == "SPOOF" and draft.search_params.delivery_status is None
    state[BlockId.DELIVERY_STATUS][ActionId.DELIVERY_STATUS]["selected_option"] = {"value": "vaporised"}
    assert BlockId.DELIVERY_STATUS in errors_of(state)


def test_a_select_alone_counts_as_a_filter() -> None:
    state = form_state(sender=None)
    state[BlockId.FINAL_DISPOSITION][ActionId.FINAL_DISPOSITION]["selected_option"] = {"value": "MALICIOUS"}
    assert isinstance(parse(state), JobDraft)


def test_everything_at_its_limit_is_refused_as_too_long_together() -> None:
    big = {
        "sender": "s" * 250 + "@x",
        "recipient": "r" * 250 + "@x",
        "domain": "d" * 253,
        "subject": '"' * 200,
        "exact_subject": '"' * 200,
        "message_id": "<" + "m" * 240 + "@x>",
        "alert_id": "a" * 100,
        "query": '"' * 500,
        "comment": '"' * 500,
    }
    errors = errors_of(form_state(**big))
    assert BlockId.COMMENT in errors and str(DRAFT_JSON_MAX) in errors[BlockId.COMMENT]


@pytest.mark.parametrize(
    "state",
    [
        None,
        [],
        "values",
        {},
        {BlockId.ACTION: "MOVE"},
        {BlockId.ACTION: {ActionId.ACTION_SELECT: "MOVE"}},
        {BlockId.ACTION: {ActionId.ACTION_SELECT: {"selected_option": "MOVE"}}},
        {BlockId.ACTION: {ActionId.ACTION_SELECT: {"selected_option": {"value": 5}}}},
        {BlockId.ACTION: {ActionId.ACTION_SELECT: {"selected_option": {"value": "DESTROY"}}}},
        {
            BlockId.ACTION: {ActionId.ACTION_SELECT: {"selected_option": {"value": "RELEASE"}}},
            BlockId.SENDER: {ActionId.SENDER: {"value": ["x"]}},
            BlockId.START: {ActionId.START: {"selected_date_time": "yesterday"}},
            BlockId.END: {ActionId.END: {"selected_date_time": 10**20}},
            BlockId.DETECTIONS_ONLY: {ActionId.DETECTIONS_ONLY: {"selected_options": "all"}},
            BlockId.FINAL_DISPOSITION: {ActionId.FINAL_DISPOSITION: {"selected_option": {"value": None}}},
            BlockId.COMMENT: {ActionId.COMMENT: 7},
        },
        {BlockId.START: {ActionId.START: {"selected_date_time": True}}},
    ],
)
def test_garbled_state_gives_errors_not_exceptions(state: Any) -> None:
    errors = errors_of(state)
    assert errors
    assert set(errors) <= input_block_ids(build_create_modal(metadata="{}", now=NOW))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=30), children, max_size=4)
    ),
    max_leaves=12,
)
_block_ids = st.sampled_from([b.value for b in BlockId])
_action_ids = st.sampled_from([a.value for a in ActionId])
_element = st.dictionaries(
    st.sampled_from(["type", "value", "selected_option", "selected_options", "selected_date_time"]),
    _json,
    max_size=3,
)
_state = st.dictionaries(_block_ids, st.dictionaries(_action_ids, _element | _json, max_size=2), max_size=8)


@settings(max_examples=200, deadline=None)
@given(state=_state | _json)
def test_random_state_never_raises(state: Any) -> None:
    result = parse(state)
    assert isinstance(result, JobDraft | FormErrors)


@settings(max_examples=100, deadline=None)
@given(subject=st.text(max_size=200), comment=st.text(max_size=500))
def test_random_text_round_trips_or_is_refused(subject: str, comment: str) -> None:
    result = parse(form_state(subject=subject, comment=comment))
    if isinstance(result, JobDraft):
        view = build_create_modal(metadata="{}", draft=result, now=NOW)
        assert parse(state_from_view(view)) == result
    else:
        assert set(result) <= {BlockId.SUBJECT, BlockId.COMMENT}


# ---------------------------------------------------------------- typed confirmation


def _confirm_state(typed: Any) -> dict[str, Any]:
    return {BlockId.CONFIRM_WORD: {ActionId.CONFIRM_WORD: {"type": "plain_text_input", "value": typed}}}


def test_no_word_needed_for_a_plain_move() -> None:
    assert parse_confirmation({}, DRAFTS[0]) is None


@pytest.mark.parametrize(("draft", "word"), [(DRAFTS[1], "PURGE"), (DRAFTS[2], "RELEASE")])
def test_typed_word(draft: JobDraft, word: str) -> None:
    assert parse_confirmation(_confirm_state(word), draft) is None
    assert parse_confirmation(_confirm_state(f"  {word.lower()} "), draft) is None
    for wrong in (None, "", "yes", word + "!", 5):
        message = parse_confirmation(_confirm_state(wrong), draft)
        assert message is not None and word in message
    for garbled in (None, [], {BlockId.CONFIRM_WORD: "x"}):
        assert parse_confirmation(garbled, draft) is not None


def test_confirmation_errors_point_at_the_word_field() -> None:
    assert confirmation_errors(_confirm_state("PURGE"), DRAFTS[1]) is None
    errors = confirmation_errors(_confirm_state("nope"), DRAFTS[1])
    assert errors is not None
    assert errors.response() == {
        "response_action": "errors",
        "errors": {BlockId.CONFIRM_WORD: errors[BlockId.CONFIRM_WORD]},
    }
    view = build_preview_view(
        metadata="{}", draft=DRAFTS[1], preview=SearchResult(messages=[], capped=False), limit=10, now=NOW
    )
    assert set(errors) <= input_block_ids(view)


# ---------------------------------------------------------------- the form and the command share bot.draft


def _typed(**values: str) -> str:
    words = " ".join(f'{key}:"{value}"' for key, value in values.items())
    return f"move {words} since:7d to:deleted"


def _both(**values: str) -> tuple[object, object]:
    """Describe the same job in the form and as `/sweep move …`; return both results."""
    from bot.grammar import CreateCommand, UsageError, parse_command

    texts = {"sender": "bad@example.com", **values}
    form = parse(form_state(**texts))
    try:
        parsed = parse_command(_typed(**texts), now=NOW)
    except UsageError as error:
        return form, error
    assert isinstance(parsed, CreateCommand)
    return form, parsed.draft


def test_the_form_and_the_command_make_the_same_draft_from_the_same_values() -> None:
    form, typed = _both(sender="bad@phish.example", subject="Invoice", comment="INC-1")
    assert isinstance(form, JobDraft) and form == typed


def test_the_form_and_the_command_refuse_a_comment_over_the_same_limit() -> None:
    from bot.draft import COMMENT_MAX
    from bot.grammar import UsageError

    at_limit = _both(comment="c" * COMMENT_MAX)
    assert all(isinstance(result, JobDraft) for result in at_limit)
    form, typed = _both(comment="c" * (COMMENT_MAX + 1))
    assert isinstance(form, FormErrors) and str(COMMENT_MAX) in form[BlockId.COMMENT]
    assert isinstance(typed, UsageError) and str(COMMENT_MAX) in typed.message


def test_the_form_and_the_command_hold_drafts_to_the_same_size() -> None:
    from bot.draft import draft_size
    from bot.grammar import UsageError

    # Over the grammar's old 1800 and under the one limit: both surfaces accept it now.
    middle = {"query": "q" * 500, "recipient": "r" * 254, "subject": "s" * 200, "exact_subject": "e" * 200}
    form, typed = _both(**middle, domain="d" * 253, comment="c" * 300)
    assert isinstance(form, JobDraft) and form == typed and 1800 < draft_size(form) <= DRAFT_JSON_MAX
    big = {**middle, "domain": "d" * 253, "alert_id": "a" * 100, "message_id": "<" + "m" * 240 + "@x>"}
    form, typed = _both(**big, comment="c" * 500)
    assert isinstance(form, FormErrors) and str(DRAFT_JSON_MAX) in form[BlockId.COMMENT]
    assert isinstance(typed, UsageError) and str(DRAFT_JSON_MAX) in typed.message
