"""Read the create modal's `view.state.values` into a `JobDraft`, or field errors to show in the modal.

The shape is Slack's: `{block_id: {action_id: {"type": ..., "value" | "selected_option" | ...}}}`.
Anything missing, garbled or unexpected becomes a `FormErrors` entry, never an exception: the
analyst sees which field to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import ValidationError

from bot.cloudflare.models import ActionType, DeliveryStatus, Destination, Disposition, SearchParams
from bot.draft import (
    CLOCK_SKEW,
    COMMENT_MAX,
    DEFAULT_RANGE,
    DRAFT_JSON_MAX,
    FIELD_MAX,
    NO_FILTER_REASON,
    JobDraft,
    draft_size,
    first_hidden_character,
    first_problem,
    has_filter,
    is_message_id,
)
from bot.ids import ActionId, BlockId

ANY_VALUE = "any"
DETECTIONS_VALUE = "detections_only"
CONFIRM_WORD_MAX = 100
"""The typed confirmation word's input (the form's `max_length`, and what is read back)."""

TEXT_FIELDS: dict[BlockId, tuple[ActionId, str, int]] = {
    # block: (action, search_params field, max length — the same limits as the inline grammar)
    BlockId.SENDER: (ActionId.SENDER, "sender", FIELD_MAX["sender"]),
    BlockId.RECIPIENT: (ActionId.RECIPIENT, "recipient", FIELD_MAX["recipient"]),
    BlockId.DOMAIN: (ActionId.DOMAIN, "domain", FIELD_MAX["domain"]),
    BlockId.SUBJECT: (ActionId.SUBJECT, "subject", FIELD_MAX["subject"]),
    BlockId.EXACT_SUBJECT: (ActionId.EXACT_SUBJECT, "exact_subject", FIELD_MAX["exact_subject"]),
    BlockId.MESSAGE_ID: (ActionId.MESSAGE_ID, "message_id", FIELD_MAX["message_id"]),
    BlockId.ALERT_ID: (ActionId.ALERT_ID, "alert_id", FIELD_MAX["alert_id"]),
    BlockId.QUERY: (ActionId.QUERY, "query", FIELD_MAX["query"]),
}
SELECT_FIELDS: dict[BlockId, tuple[ActionId, str, frozenset[str]]] = {
    BlockId.FINAL_DISPOSITION: (
        ActionId.FINAL_DISPOSITION,
        "final_disposition",
        frozenset(d.value for d in Disposition),
    ),
    BlockId.DELIVERY_STATUS: (
        ActionId.DELIVERY_STATUS,
        "delivery_status",
        frozenset(d.value for d in DeliveryStatus),
    ),
}


ChoiceT = TypeVar("ChoiceT", bound=StrEnum)


class FormErrors(dict[str, str]):
    """Field errors keyed by block_id, ready for `ack(response_action="errors", errors=...)`."""

    def response(self) -> dict[str, Any]:
        """Return the ack body that shows these errors under their fields."""
        return {"response_action": "errors", "errors": dict(self)}


class _Invalid(Exception):
    """One field's value is unusable; the message is shown under the field."""


def _element(state: Mapping[str, Any], block_id: str, action_id: str) -> Mapping[str, Any] | None:
    block = state.get(block_id)
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise _Invalid("This field could not be read; please set it again.")
    element = block.get(action_id)
    if element is None:
        return None
    if not isinstance(element, Mapping):
        raise _Invalid("This field could not be read; please set it again.")
    return element


def _raw(state: Mapping[str, Any], block_id: str, action_id: str, key: str) -> Any:
    """Return what Slack sent under `key` for this element (None when the field is absent or unset)."""
    element = _element(state, block_id, action_id)
    return None if element is None else element.get(key)


def _text(
    state: Mapping[str, Any], block_id: str, action_id: str, limit: int, *, multiline: bool = False
) -> str | None:
    value = _raw(state, block_id, action_id, "value")
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid("This field could not be read; please type it again.")
    value = value.strip()
    if not value:
        return None
    if len(value) > limit:
        raise _Invalid(f"Too long: {len(value)} characters, at most {limit}.")
    if first_hidden_character(value, allowed="\n\r\t" if multiline else "") is not None:
        raise _Invalid("Contains control or invisible characters; please retype it.")
    return value


def _selected(state: Mapping[str, Any], block_id: str, action_id: str) -> str | None:
    option = _raw(state, block_id, action_id, "selected_option")
    if option is None:
        return None
    if not isinstance(option, Mapping) or not isinstance(option.get("value"), str):
        raise _Invalid("This choice could not be read; please choose again.")
    value: str = option["value"]
    return value


def _chosen(
    state: Mapping[str, Any],
    block_id: str,
    action_id: str,
    kind: type[ChoiceT],
    *,
    missing: str,
    unknown: str | None = None,
) -> ChoiceT:
    """Return the required choice as a member of `kind`; `missing` or `unknown` when it is not one."""
    raw = _selected(state, block_id, action_id)
    if raw is None:
        raise _Invalid(missing)
    if raw not in {member.value for member in kind}:
        raise _Invalid(unknown or missing)
    return kind(raw)


def _datetime(state: Mapping[str, Any], block_id: str, action_id: str) -> datetime | None:
    raw = _raw(state, block_id, action_id, "selected_date_time")
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise _Invalid("This date could not be read; please pick it again.")
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (ValueError, OverflowError, OSError) as error:
        raise _Invalid("This date could not be read; please pick it again.") from error


def _checked(state: Mapping[str, Any], block_id: str, action_id: str, value: str) -> bool:
    options = _raw(state, block_id, action_id, "selected_options") or []
    if not isinstance(options, list):
        raise _Invalid("This choice could not be read; please tick it again.")
    return any(isinstance(o, Mapping) and o.get("value") == value for o in options)


def parse_create_form(state_values: object, *, now: datetime) -> JobDraft | FormErrors:
    """Return the draft the analyst filled in, or field errors keyed by block_id."""
    errors = FormErrors()
    if not isinstance(state_values, Mapping):
        errors[BlockId.ACTION] = "The form could not be read; please close it and run `/sweep new` again."
        return errors
    state: Mapping[str, Any] = state_values

    action: ActionType | None = None
    try:
        action = _chosen(
            state, BlockId.ACTION, ActionId.ACTION_SELECT, ActionType, missing="Choose Move or Release."
        )
    except _Invalid as error:
        errors[BlockId.ACTION] = str(error)

    destination: Destination | None = None
    if action is ActionType.MOVE:
        try:
            destination = _chosen(
                state,
                BlockId.DESTINATION,
                ActionId.DESTINATION,
                Destination,
                missing="Choose the folder to move the messages to.",
                unknown="Unknown folder; choose one from the list.",
            )
        except _Invalid as error:
            errors[BlockId.DESTINATION] = str(error)

    fields: dict[str, Any] = {}
    for block_id, (action_id, field, limit) in TEXT_FIELDS.items():
        try:
            fields[field] = _text(state, block_id, action_id, limit)
        except _Invalid as error:
            errors[block_id] = str(error)
    message_id = fields.get("message_id")
    if message_id is not None and not is_message_id(message_id):
        errors[BlockId.MESSAGE_ID] = "Not a Message-ID: expected something like <abc123@mail.example.com>."
    for block_id, (action_id, field, allowed) in SELECT_FIELDS.items():
        try:
            choice = _selected(state, block_id, action_id)
            if choice is not None and choice != ANY_VALUE and choice not in allowed:
                raise _Invalid("Unknown value; choose one from the list.")
            fields[field] = None if choice in (None, ANY_VALUE) else choice
        except _Invalid as error:
            errors[block_id] = str(error)

    start = end = None
    try:
        start = _datetime(state, BlockId.START, ActionId.START)
    except _Invalid as error:
        errors[BlockId.START] = str(error)
    try:
        end = _datetime(state, BlockId.END, ActionId.END)
    except _Invalid as error:
        errors[BlockId.END] = str(error)
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    if BlockId.START not in errors and BlockId.END not in errors:
        start = start or now - DEFAULT_RANGE
        end = end or now
        if start > now + CLOCK_SKEW:
            errors[BlockId.START] = "The start is in the future."
        if end > now + CLOCK_SKEW:
            errors[BlockId.END] = "The end is in the future; at the latest, use now."
        elif end < start:
            errors[BlockId.END] = "The end is before the start."

    try:
        detections_only = _checked(state, BlockId.DETECTIONS_ONLY, ActionId.DETECTIONS_ONLY, DETECTIONS_VALUE)
    except _Invalid as error:
        errors[BlockId.DETECTIONS_ONLY] = str(error)
        detections_only = False
    try:
        comment = _text(state, BlockId.COMMENT, ActionId.COMMENT, COMMENT_MAX, multiline=True)
    except _Invalid as error:
        errors[BlockId.COMMENT] = str(error)
        comment = None

    if not has_filter(fields) and not any(b in errors for b in (*TEXT_FIELDS, *SELECT_FIELDS)):
        errors[BlockId.SENDER] = (
            "Give at least one filter (sender, recipient, domain, subject, Message-ID, alert, query, "
            f"disposition or delivery status): {NO_FILTER_REASON}."
        )
    if errors or action is None:
        return errors

    try:
        params = SearchParams(**fields, start=start, end=end, detections_only=detections_only)
        draft = JobDraft(action=action, destination=destination, search_params=params, comment=comment)
    except (ValidationError, ValueError, TypeError) as error:
        errors[BlockId.ACTION] = first_problem(error, default="This combination is not valid.")[:300]
        return errors
    size = draft_size(draft)
    if size > DRAFT_JSON_MAX:
        errors[BlockId.COMMENT] = (
            f"The filters and comment are too long together ({size} characters, at most {DRAFT_JSON_MAX}); "
            "shorten some of them."
        )
        return errors
    return draft


def confirmation_word(draft: JobDraft) -> str | None:
    """Return the word the analyst must type to confirm a dangerous draft (`PURGE`, `RELEASE`), else None."""
    if not draft.needs_strong_confirmation:
        return None
    return "RELEASE" if draft.action is ActionType.RELEASE else "PURGE"


def parse_confirmation(state_values: object, draft: JobDraft) -> str | None:
    """Return an error message when the typed confirmation word is missing or wrong, else None."""
    word = confirmation_word(draft)
    if word is None:
        return None
    typed: str | None = None
    if isinstance(state_values, Mapping):
        try:
            typed = _text(state_values, BlockId.CONFIRM_WORD, ActionId.CONFIRM_WORD, CONFIRM_WORD_MAX)
        except _Invalid:
            typed = None
    if typed is None or typed.upper() != word:
        return f"Type {word} to confirm, or press Cancel."
    return None


def confirmation_errors(state_values: object, draft: JobDraft) -> FormErrors | None:
    """Return the typed-word problem as field errors for `ack(response_action="errors")`, or None."""
    problem = parse_confirmation(state_values, draft)
    return None if problem is None else FormErrors({BlockId.CONFIRM_WORD.value: problem})


def _asks_justification(view: object) -> bool:
    blocks = view.get("blocks") if isinstance(view, Mapping) else None
    return isinstance(blocks, list) and any(
        isinstance(b, Mapping) and b.get("block_id") == BlockId.JUSTIFICATION for b in blocks
    )


def _state_values(view: object) -> Mapping[str, Any]:
    state = view.get("state") if isinstance(view, Mapping) else None
    values = state.get("values") if isinstance(state, Mapping) else None
    return values if isinstance(values, Mapping) else {}


def parse_justification(view: object) -> str | None:
    """Return the justification typed in a preview that asks for one (None: not asked, empty, unreadable)."""
    if not _asks_justification(view):
        return None
    try:
        return _text(
            _state_values(view), BlockId.JUSTIFICATION, ActionId.JUSTIFICATION, COMMENT_MAX, multiline=True
        )
    except _Invalid:
        return None


def justification_errors(view: object) -> FormErrors | None:
    """Return the field error of a preview that asks for a justification when none usable was typed."""
    if not _asks_justification(view):
        return None
    try:
        typed = _text(
            _state_values(view), BlockId.JUSTIFICATION, ActionId.JUSTIFICATION, COMMENT_MAX, multiline=True
        )
    except _Invalid as error:
        return FormErrors({BlockId.JUSTIFICATION.value: str(error)})
    if typed is None:
        return FormErrors(
            {
                BlockId.JUSTIFICATION.value: "A second person must approve this job: say why it is needed "
                "(e.g. the incident ticket)."
            }
        )
    return None
