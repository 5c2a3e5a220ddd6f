"""Every Slack identifier Sweep uses (action_id, block_id, callback_id, metadata event type), in one place.

Listeners match on these values and block builders emit them, so a rename can never leave one side behind.
Values are prefixed with `sweep_` so they cannot collide with another app's ids in a shared payload log.
"""

from __future__ import annotations

from enum import StrEnum


class ActionId(StrEnum):
    """`action_id` of interactive elements; the ones marked *listener* need an `app.action(...)`."""

    # Messages (listeners).
    CANCEL_JOB = "sweep_cancel_job"  # card / status card: value = CancelButtonValue
    CONFIRM_CREATE = "sweep_confirm_create"  # inline preview: value = ConfirmCreateValue
    DISMISS_PREVIEW = "sweep_dismiss_preview"  # inline preview: value is a constant
    LIST_PAGE = "sweep_list_page"  # job list Previous/Next: value = ListPageValue
    APPROVE_JOB = "sweep_approve_job"  # approval request: value = ApprovalButtonValue
    REJECT_JOB = "sweep_reject_job"  # approval request: value = ApprovalButtonValue (opens the reject modal)
    # Create modal (listeners).
    # MOVE/RELEASE radio (dispatch_action): views.update to show or hide the destination.
    ACTION_SELECT = "sweep_action_select"
    EDIT_DRAFT = "sweep_edit_draft"  # preview view "Edit search": views.update back to the form, prefilled
    # Create modal inputs (no listener: read from view.state.values at submission).
    DESTINATION = "sweep_destination"
    SENDER = "sweep_sender"
    RECIPIENT = "sweep_recipient"
    DOMAIN = "sweep_domain"
    SUBJECT = "sweep_subject"
    EXACT_SUBJECT = "sweep_exact_subject"
    MESSAGE_ID = "sweep_message_id"
    ALERT_ID = "sweep_alert_id"
    QUERY = "sweep_query"
    FINAL_DISPOSITION = "sweep_final_disposition"
    DELIVERY_STATUS = "sweep_delivery_status"
    START = "sweep_start"
    END = "sweep_end"
    DETECTIONS_ONLY = "sweep_detections_only"
    COMMENT = "sweep_comment"
    CONFIRM_WORD = "sweep_confirm_word"
    JUSTIFICATION = "sweep_justification"  # preview view of a job that needs approval: the why
    REJECT_REASON = "sweep_reject_reason"  # reject modal: the optional reason


class BlockId(StrEnum):
    """`block_id` of blocks a handler reads (state values, field errors) or tests look for."""

    # Create modal inputs: keys of view.state.values and of `response_action: "errors"`.
    ACTION = "sweep_action"
    DESTINATION = "sweep_destination"
    SENDER = "sweep_sender"
    RECIPIENT = "sweep_recipient"
    DOMAIN = "sweep_domain"
    SUBJECT = "sweep_subject"
    EXACT_SUBJECT = "sweep_exact_subject"
    MESSAGE_ID = "sweep_message_id"
    ALERT_ID = "sweep_alert_id"
    QUERY = "sweep_query"
    FINAL_DISPOSITION = "sweep_final_disposition"
    DELIVERY_STATUS = "sweep_delivery_status"
    START = "sweep_start"
    END = "sweep_end"
    DETECTIONS_ONLY = "sweep_detections_only"
    COMMENT = "sweep_comment"
    # Preview view.
    CONFIRM_WORD = "sweep_confirm_word"
    JUSTIFICATION = "sweep_justification"
    PREVIEW_ACTIONS = "sweep_preview_actions"
    # Messages.
    CARD_ACTIONS = "sweep_card_actions"
    INLINE_PREVIEW_ACTIONS = "sweep_inline_preview_actions"
    APPROVAL_ACTIONS = "sweep_approval_actions"
    # Reject modal.
    REJECT_REASON = "sweep_reject_reason"
    # Previous and Next sit in separate blocks: an action_id must be unique within its block.
    LIST_PAGE_PREVIOUS = "sweep_list_page_previous"
    LIST_PAGE_NEXT = "sweep_list_page_next"


class CallbackId(StrEnum):
    """`callback_id` of modal views (view_submission listeners)."""

    CREATE_FORM = "sweep_create_form"  # submit: parse with bot.forms.parse_create_form
    CREATE_PREVIEW = "sweep_create_preview"  # submit: check bot.forms.parse_confirmation, then create
    CREATE_STATUS = "sweep_create_status"  # loading / result views (no submit button)
    REJECT_APPROVAL = "sweep_reject_approval"  # submit: reject the approval named by RejectMetadata


class EventType(StrEnum):
    """`metadata.event_type` of messages Sweep posts, so a restart can recognise its own messages."""

    CARD = "sweep_card"
    TRANSITION = "sweep_transition"
    NOTICE = "sweep_notice"
    APPROVAL = "sweep_approval"


DISMISS_VALUE = "dismiss"
"""Constant `value` of the DISMISS_PREVIEW button (Slack requires a non-empty value)."""
