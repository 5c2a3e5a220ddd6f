"""The create modal: the form, its preview step (typed confirmation when dangerous), interim views."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from blocks._describe import DESTINATION_LABELS
from blocks._kit import actions, button, divider, plain, plain_text, section
from blocks.preview import danger_sentence, summary_blocks
from bot.approval import Reason
from bot.draft import COMMENT_MAX, DEFAULT_RANGE, JobDraft
from bot.forms import ANY_VALUE, CONFIRM_WORD_MAX, DETECTIONS_VALUE, TEXT_FIELDS, confirmation_word
from bot.ids import ActionId, BlockId, CallbackId
from bot.models import (
    ActionType,
    DeliveryStatus,
    Destination,
    Disposition,
    SearchParams,
    SearchResult,
)
from bot.slack_limits import (
    HINT_TEXT_MAX,
    INPUT_LABEL_MAX,
    OPTION_TEXT_MAX,
    PLACEHOLDER_MAX,
    TEXT_INPUT_MAX,
    VIEW_TITLE_MAX,
)

__all__ = [
    "build_create_modal",
    "build_loading_view",
    "build_preview_view",
    "build_result_view",
    "confirmation_word",
]

_ACTION_OPTIONS: dict[str, tuple[str, str]] = {
    "MOVE": ("Move messages to a folder", "Junk, Deleted Items, or delete (soft or permanent)."),
    "RELEASE": ("Release from quarantine", "Delivers quarantined messages to recipients' inboxes."),
}
_TEXT_LABELS: dict[BlockId, tuple[str, str]] = {
    BlockId.SENDER: ("Sender", "attacker@example.com"),
    BlockId.RECIPIENT: ("Recipient", "someone@yourcompany.com"),
    BlockId.DOMAIN: ("Domain", "example.com"),
    BlockId.SUBJECT: ("Subject contains", "Invoice overdue"),
    BlockId.EXACT_SUBJECT: ("Subject is exactly", "Your invoice #4411 is overdue"),
    BlockId.MESSAGE_ID: ("Message-ID", "<abc123@mail.example.com>"),
    BlockId.ALERT_ID: ("Alert ID", "4Njp3P0STMz2c02Q-2022-12-30T02:44:49"),
    BlockId.QUERY: ("Free-text query", "Words anywhere in the message"),
}


def _option(text: str, value: str, description: str | None = None) -> dict[str, Any]:
    option: dict[str, Any] = {"text": plain_text(text, limit=OPTION_TEXT_MAX), "value": value}
    if description is not None:
        option["description"] = plain_text(description, limit=OPTION_TEXT_MAX)
    return option


def _input(
    block_id: str,
    label: str,
    element: dict[str, Any],
    *,
    optional: bool = True,
    hint: str | None = None,
    dispatch_action: bool = False,
) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "label": plain_text(label, limit=INPUT_LABEL_MAX),
        "element": element,
        "optional": optional,
    }
    if dispatch_action:
        block["dispatch_action"] = True
    if hint is not None:
        block["hint"] = plain_text(hint, limit=HINT_TEXT_MAX)
    return block


def _text_input(
    action_id: str,
    *,
    limit: int,
    initial: str | None,
    placeholder: str | None = None,
    multiline: bool = False,
) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": action_id}
    if multiline:
        element["multiline"] = True
    if initial:
        # Never let a prefilled value make the view invalid; the form then reports it as too long.
        element["max_length"] = max(limit, min(len(initial), TEXT_INPUT_MAX))
        element["initial_value"] = initial[:TEXT_INPUT_MAX]
    else:
        element["max_length"] = limit
    if placeholder:
        element["placeholder"] = plain_text(placeholder, limit=PLACEHOLDER_MAX)
    return element


def _select(
    action_id: str, options: list[dict[str, Any]], *, initial: str | None, placeholder: str
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": action_id,
        "options": options,
        "placeholder": plain_text(placeholder, limit=PLACEHOLDER_MAX),
    }
    chosen = next((o for o in options if o["value"] == initial), None)
    if chosen is not None:
        element["initial_option"] = chosen
    return element


def _epoch(value: datetime) -> int:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return int(aware.timestamp())


def _resolve_action(action: str | None, draft: JobDraft | None) -> str:
    if action is not None and action in _ACTION_OPTIONS:
        return action
    if draft is not None:
        return draft.action.value
    return ActionType.MOVE.value


def build_create_modal(
    *, metadata: str, draft: JobDraft | None = None, action: str | None = None, now: datetime
) -> dict[str, Any]:
    """Build the create form (prefilled from `draft`); the destination shows only for MOVE.

    `action` (from the ACTION_SELECT radio) wins over the draft's action; unknown values mean MOVE.
    """
    chosen = _resolve_action(action, draft)
    params = draft.search_params if draft is not None else SearchParams()
    radio_options = [
        _option(text, value, description) for value, (text, description) in _ACTION_OPTIONS.items()
    ]
    blocks: list[dict[str, Any]] = [
        section(
            "Describe the messages, then press *Preview*: Sweep shows how many match and a few samples. "
            "Nothing happens until you confirm on the next screen."
        ),
        _input(
            BlockId.ACTION,
            "Action",
            {
                "type": "radio_buttons",
                "action_id": ActionId.ACTION_SELECT,
                "options": radio_options,
                "initial_option": next(o for o in radio_options if o["value"] == chosen),
            },
            optional=False,
            dispatch_action=True,
        ),
    ]
    if chosen == ActionType.MOVE.value:
        folders = [_option(DESTINATION_LABELS[d.value], d.value) for d in Destination]
        initial_folder = (
            draft.destination.value if draft is not None and draft.destination is not None else None
        )
        blocks.append(
            _input(
                BlockId.DESTINATION,
                "Move to folder",
                _select(ActionId.DESTINATION, folders, initial=initial_folder, placeholder="Choose a folder"),
                optional=False,
                hint="Recoverable Items – Purges deletes permanently and asks you to type PURGE to confirm.",
            )
        )
    blocks.append(divider())
    blocks.append(section("*Which messages* (at least one filter besides the dates)"))
    for block_id, (action_id, field, limit) in TEXT_FIELDS.items():
        label, placeholder = _TEXT_LABELS[block_id]
        initial = getattr(params, field)
        element = _text_input(action_id, limit=limit, initial=initial, placeholder=placeholder)
        blocks.append(_input(block_id, label, element))
    any_option = _option("Any", ANY_VALUE)
    dispositions = [any_option, *(_option(d.value, d.value) for d in Disposition)]
    statuses = [any_option, *(_option(s.value.capitalize(), s.value) for s in DeliveryStatus)]
    blocks.append(
        _input(
            BlockId.FINAL_DISPOSITION,
            "Final disposition",
            _select(
                ActionId.FINAL_DISPOSITION,
                dispositions,
                initial=str(params.final_disposition) if params.final_disposition else ANY_VALUE,
                placeholder="Any",
            ),
        )
    )
    blocks.append(
        _input(
            BlockId.DELIVERY_STATUS,
            "Delivery status",
            _select(
                ActionId.DELIVERY_STATUS,
                statuses,
                initial=str(params.delivery_status) if params.delivery_status else ANY_VALUE,
                placeholder="Any",
            ),
        )
    )
    start = params.start or now - DEFAULT_RANGE
    end = params.end or now
    blocks.append(
        _input(
            BlockId.START,
            "Received from",
            {"type": "datetimepicker", "action_id": ActionId.START, "initial_date_time": _epoch(start)},
            hint="Defaults to 7 days ago. Shown in your Slack time zone.",
        )
    )
    blocks.append(
        _input(
            BlockId.END,
            "Received until",
            {"type": "datetimepicker", "action_id": ActionId.END, "initial_date_time": _epoch(end)},
            hint="Defaults to when this form opened; mail arriving later is not included.",
        )
    )
    detections_option = _option(
        "Only messages flagged as detections",
        DETECTIONS_VALUE,
        "Unticked: all matching mail, clean mail included.",
    )
    detections: dict[str, Any] = {
        "type": "checkboxes",
        "action_id": ActionId.DETECTIONS_ONLY,
        "options": [detections_option],
    }
    if params.detections_only:
        detections["initial_options"] = [detections_option]
    blocks.append(_input(BlockId.DETECTIONS_ONLY, "Detections", detections))
    blocks.append(divider())
    comment = draft.comment if draft is not None else None
    blocks.append(
        _input(
            BlockId.COMMENT,
            "Comment",
            _text_input(
                ActionId.COMMENT,
                limit=COMMENT_MAX,
                initial=comment,
                placeholder="Why: incident or ticket reference",
                multiline=True,
            ),
            hint="Stored with the job at Cloudflare and shown on the job card.",
        )
    )
    return {
        "type": "modal",
        "callback_id": CallbackId.CREATE_FORM.value,
        "title": plain_text("New bulk action", limit=VIEW_TITLE_MAX),
        "submit": plain_text("Preview", limit=VIEW_TITLE_MAX),
        "close": plain_text("Cancel", limit=VIEW_TITLE_MAX),
        "private_metadata": metadata,
        "blocks": blocks,
    }


MODAL_ADD_COMMENT = (
    "write it in the *Justification* field below (or go back with *← Edit search*), for example the ticket"
)
"""How to give the modal's justification (the comment) when it has none."""
REQUEST_APPROVAL = "Request approval"
"""The preview's submit label when a second person must approve the job."""


def build_preview_view(
    *,
    metadata: str,
    draft: JobDraft,
    preview: SearchResult,
    limit: int,
    now: datetime,
    reasons: Sequence[Reason] = (),
) -> dict[str, Any]:
    """Build the modal's preview step: summary, samples, Edit search, and Create (typed word if dangerous).

    `reasons` are why a second person must approve it: shown first, the submit then says Request
    approval, and a justification is required (a field prefilled with the comment).
    """
    word = confirmation_word(draft)
    if reasons:
        submit = REQUEST_APPROVAL
    elif word is None:
        submit = "Create job"
    else:
        submit = "Release messages" if draft.action is ActionType.RELEASE else "Delete permanently"
    blocks = summary_blocks(
        draft=draft,
        preview=preview,
        limit=limit,
        now=now,
        reasons=reasons,
        confirm=submit,
        add_comment=MODAL_ADD_COMMENT,
    )
    blocks.append(
        actions(
            button("← Edit search", action_id=ActionId.EDIT_DRAFT, value="edit"),
            block_id=BlockId.PREVIEW_ACTIONS,
        )
    )
    if word is not None:
        element = {
            "type": "plain_text_input",
            "action_id": ActionId.CONFIRM_WORD,
            "max_length": CONFIRM_WORD_MAX,
            "placeholder": plain_text(word, limit=PLACEHOLDER_MAX),
        }
        blocks.append(
            _input(
                BlockId.CONFIRM_WORD,
                f"Type {word} to confirm",
                element,
                optional=False,
                hint=danger_sentence(draft, preview, limit),
            )
        )
    if reasons:
        blocks.append(
            _input(
                BlockId.JUSTIFICATION,
                "Justification",
                _text_input(ActionId.JUSTIFICATION, limit=COMMENT_MAX, initial=draft.comment, multiline=True),
                optional=False,
                hint="This job needs a second person's approval: say why it is needed (it is shown to "
                "the approvers and kept in the job's comment).",
            )
        )
    return {
        "type": "modal",
        "callback_id": CallbackId.CREATE_PREVIEW.value,
        "title": plain_text("Review bulk action", limit=VIEW_TITLE_MAX),
        "submit": plain_text(submit, limit=VIEW_TITLE_MAX),
        "close": plain_text("Cancel", limit=VIEW_TITLE_MAX),
        "private_metadata": metadata,
        "blocks": blocks,
    }


def _status_view(title: str, text: str, close: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": CallbackId.CREATE_STATUS.value,
        "title": plain_text(plain(title, VIEW_TITLE_MAX, empty="Sweep"), limit=VIEW_TITLE_MAX),
        "close": plain_text(close, limit=VIEW_TITLE_MAX),
        "blocks": [section(text.strip() or "…")],
    }


def build_loading_view(title: str, message: str) -> dict[str, Any]:
    """Build an interim view (e.g. while the preview search runs).

    `message` is Sweep's own mrkdwn (like `build_notice`): escape any user-supplied part first.
    """
    return _status_view(title, message, "Close")


def build_result_view(title: str, message: str) -> dict[str, Any]:
    """Build the final view (job created, or what failed); `message` is Sweep's own mrkdwn."""
    return _status_view(title, message, "Done")
