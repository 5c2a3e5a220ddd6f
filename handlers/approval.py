"""A job that needs a second person: the request's Approve and Reject buttons, and the reject modal.

The buttons carry only the request's id; what is approved is the stored request. Approving is
urgent (it creates a job); Reject opens a small modal for an optional reason (the trigger id lives
3 s), whose submission rejects. Who may decide is `Operation.APPROVE`; that the requester never
approves, and what the request's state allows, the use case decides (`bot/approvals.py`).
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from blocks._kit import safe
from blocks.approval import REJECT_REASON_MAX, build_reject_modal
from blocks.create_modal import build_loading_view, build_result_view
from blocks.notice import build_notice
from bot.approvals import ApprovalOutcome, Verdict
from bot.ids import ActionId, BlockId, CallbackId
from bot.payloads import ApprovalButtonValue, RejectMetadata, encode
from bot.policy import Operation
from handlers._common import Services, reply_ephemeral
from handlers._listen import Request, on_button, on_view_submission, requires
from handlers.create import create_outcome_text
from handlers.create_form import report_in_view

TITLE = "Sweep"


def approval_outcome_text(outcome: ApprovalOutcome) -> str:
    """Return what an Approve or Reject click did, for the person who clicked (mrkdwn)."""
    reason = safe(outcome.reason, 600, empty="no reason given")
    if outcome.decision is Verdict.REFUSED:
        return f"Not done: {reason}."
    if outcome.decision is Verdict.REJECTED:
        return "Rejected. Nothing was created; the request in the channel says so."
    if outcome.create is not None:
        return "Approved. " + create_outcome_text(outcome.create)
    return "Approved."


def _approving(value: ApprovalButtonValue) -> str:
    return f"approve {value.approval_id}"


def _rejecting(value: ApprovalButtonValue) -> str:
    return f"reject {value.approval_id}"


@requires(Operation.APPROVE, _approving)
async def handle_approve_button(services: Services, request: Request, value: ApprovalButtonValue) -> None:
    """Approve: create the stored request's job exactly once (never for the requester)."""

    async def creating() -> None:
        await reply_ephemeral(request.respond, build_notice("Approved; creating the job…"))

    outcome = await services.approvals.approve(
        value.approval_id, actor=request.user_id, click_channel_id=request.channel_id, on_recorded=creating
    )
    await reply_ephemeral(request.respond, build_notice(approval_outcome_text(outcome)))


@requires(Operation.APPROVE, _rejecting)
async def handle_reject_button(services: Services, request: Request, value: ApprovalButtonValue) -> None:
    """Reject: ask for an optional reason in a small modal (the request must still be pending)."""
    checked = await services.approvals.check_reject(
        value.approval_id, actor=request.user_id, click_channel_id=request.channel_id
    )
    if isinstance(checked, ApprovalOutcome):
        await reply_ephemeral(request.respond, build_notice(approval_outcome_text(checked)))
        return
    if request.trigger_id is None:  # a button click always has one
        return
    metadata = encode(RejectMetadata(approval_id=checked.id))
    await request.client.views_open(
        trigger_id=request.trigger_id, view=build_reject_modal(metadata=metadata, approval=checked)
    )


def garbled_reject() -> dict[str, Any]:
    """Return the view shown in place of a reject modal whose metadata could not be read."""
    return build_result_view(TITLE, "This form's data was garbled; nothing was rejected.")


def _reason(view: dict[str, Any]) -> str | None:
    values = (view.get("state") or {}).get("values") or {}
    element = (values.get(BlockId.REJECT_REASON) or {}).get(ActionId.REJECT_REASON) or {}
    value = element.get("value") if isinstance(element, dict) else None
    return value[:REJECT_REASON_MAX] if isinstance(value, str) else None


async def handle_reject_submission(
    services: Services,
    ack: AsyncAck,
    body: dict[str, Any],
    view: dict[str, Any],
    client: AsyncWebClient,
    metadata: RejectMetadata,
) -> None:
    """The reject modal's submit: reject after the ack (re-authorised against the stored request)."""
    await ack(response_action="update", view=build_loading_view(TITLE, "Rejecting…"))
    approval_id, user_id, view_id, note = metadata.approval_id, body["user"]["id"], view["id"], _reason(view)

    async def act() -> None:
        approval = await services.approvals.get(approval_id)
        if approval is not None:  # an unknown one is refused (and audited) by the use case
            decision = await services.authorise(
                user_id, approval.channel_id, Operation.APPROVE, what=f"reject {approval_id}"
            )
            if not decision.allowed:
                await client.views_update(view_id=view_id, view=build_result_view(TITLE, decision.reason))
                return
        outcome = await services.approvals.reject(approval_id, actor=user_id, note=note)
        await client.views_update(
            view_id=view_id, view=build_result_view(TITLE, approval_outcome_text(outcome))
        )

    services.after_ack(act, label="reject (modal)", on_error=report_in_view(client, view_id))


def register(app: AsyncApp, services: Services) -> None:
    """Attach the request's Approve and Reject buttons and the reject modal's submission."""
    # An approval creates a job: it starts at once, never deferred, like any create.
    app.action(ActionId.APPROVE_JOB.value)(
        on_button(
            services,
            ApprovalButtonValue,
            handle_approve_button,
            label="approve",
            replace="never",
            urgent=True,
        )
    )
    # The trigger id of the modal lives 3 s: open it at once.
    app.action(ActionId.REJECT_JOB.value)(
        on_button(
            services, ApprovalButtonValue, handle_reject_button, label="reject", replace="never", urgent=True
        )
    )
    app.view(CallbackId.REJECT_APPROVAL.value)(
        on_view_submission(services, RejectMetadata, handle_reject_submission, garbled=garbled_reject)
    )
