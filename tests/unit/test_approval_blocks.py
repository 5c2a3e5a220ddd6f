"""The approval request, its decided forms and the reject modal: valid Block Kit, escaped, within limits.

Also the pure pieces around them: the preview view's justification field and its form checks, the
canonical request and its hash, the job comment naming the approver, `Operation.APPROVE`.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from blocks.approval import build_approval_decided, build_approval_request, build_reject_modal
from blocks.create_modal import build_preview_view
from bot.approval import Reason, ReasonCode
from bot.approvals import canonical_hash, canonical_json, canonical_request
from bot.draft import REQUEST_COMMENT_MAX
from bot.forms import justification_errors, parse_justification
from bot.ids import ActionId, BlockId
from bot.models import Approval, ApprovalReason, ApprovalState, MessageSummary, TrackedJob
from bot.outbox.kinds import render_approval_request, render_approval_update
from bot.payloads import ApprovalButtonValue, decode
from bot.policy import Operation, Policy
from bot.store.approval_rows import message_payload
from tests.unit.test_blocks import (
    EVIL,
    NOW,
    action_ids,
    assert_escaped,
    check_message,
    check_view,
    make_draft,
    make_result,
    mrkdwn_texts,
)

JOB_ID = "00000000-0000-4000-8000-0000000000aa"


def make_approval(**changes: Any) -> Approval:
    draft = make_draft(destination="RecoverableItemsPurges", subject=EVIL)
    values: dict[str, Any] = {
        "id": "approval-0123456789abcdef",
        "preview_id": "preview-0123456789abcdef",
        "requester": "U0ALICE",
        "channel_id": "C0INCIDENT",
        "request": canonical_request(draft),
        "request_hash": canonical_hash(canonical_json(draft)),
        "justification": f"INC-42 {EVIL}\nsecond line",
        "matched": 420,
        "samples": [
            MessageSummary.model_validate({"id": f"m{i}", "subject": EVIL, "from": "x@bad.example"})
            for i in range(7)
        ],
        "reasons": [
            ApprovalReason(code="always", text="it is a permanent purge, which always needs a second person"),
            ApprovalReason(code="above", text=f"it matches 420 messages, more than 300 {EVIL}"),
        ],
        "agreed_max": 462,
        "state": ApprovalState.PENDING,
        "expires_at": NOW + timedelta(hours=1),
        "created_at": NOW,
    }
    values.update(changes)
    return Approval(**values)


def everything(payload: dict[str, Any]) -> str:
    return payload["text"] + "\n" + "\n".join(mrkdwn_texts(payload["blocks"]))


def test_a_pending_request_shows_what_why_who_and_until_when_with_two_buttons() -> None:
    approval = make_approval()
    message = check_message(build_approval_request(approval, now=NOW))
    assert_escaped(message)
    shown = everything(message)
    assert "Permanently delete" in shown and "420 messages" in shown
    assert "<@U0ALICE>" in shown and "INC-42" in shown and "second line" in shown
    assert "permanent purge" in shown and "more than 300" in shown
    assert "2026-11-" in shown and "in 1 h" in shown  # the expiry, absolute and relative
    assert "462" in shown  # the agreed maximum
    assert "Received" in shown  # the filters, with their absolute dates
    assert shown.count("x@bad.example") == 5  # five samples of seven
    assert action_ids(message) == [ActionId.APPROVE_JOB, ActionId.REJECT_JOB]
    values = {
        e["value"]
        for b in message["blocks"]
        if b.get("block_id") == BlockId.APPROVAL_ACTIONS
        for e in b["elements"]
    }
    # The buttons carry only the request's id.
    assert values == {json.dumps({"approval_id": approval.id}, separators=(",", ":"))}
    assert decode(ApprovalButtonValue, values.pop()).approval_id == approval.id


@pytest.mark.parametrize(
    ("changes", "job", "extra", "expected"),
    [
        ({"state": ApprovalState.APPROVED, "decided_by": "U0BOB"}, None, {}, "creating the job"),
        (
            {"state": ApprovalState.APPROVED, "decided_by": "U0BOB"},
            None,
            {"job_id": JOB_ID},
            "its card follows",
        ),
        ({"state": ApprovalState.APPROVED, "decided_by": "U0BOB"}, "card", {"job_id": JOB_ID}, "|job card>"),
        (
            {"state": ApprovalState.APPROVED, "decided_by": "U0BOB"},
            None,
            {"error": f"Cloudflare said no {EVIL}"},
            "no job was made",
        ),
        (
            {"state": ApprovalState.REJECTED, "decided_by": "U0BOB", "note": EVIL},
            None,
            {},
            "Rejected by <@U0BOB>",
        ),
        ({"state": ApprovalState.EXPIRED}, None, {}, "Expired"),
    ],
    ids=["approved", "approved-job", "approved-card", "approved-failed", "rejected", "expired"],
)
def test_a_decided_request_says_how_it_ended_and_has_no_buttons(
    changes: dict[str, Any], job: str | None, extra: dict[str, Any], expected: str
) -> None:
    approval = make_approval(decided_at=NOW + timedelta(minutes=3), **changes)
    tracked = None
    if job is not None:
        tracked = TrackedJob(
            job_id=JOB_ID,
            account_id="a",
            action_type="MOVE",
            status="PENDING",
            channel_id="C0INCIDENT",
            card_ts="1700000000.000100",
            created_at=NOW,
            updated_at=NOW,
        )
    message = check_message(build_approval_decided(approval, now=NOW, job=tracked, **extra))
    assert_escaped(message)
    shown = everything(message)
    assert expected in shown, shown
    assert action_ids(message) == []
    if job is not None:
        assert "https://slack.com/archives/C0INCIDENT/p1700000000000100" in shown
    # The outbox renders the same from its stored payload (what the notifier does).
    payload = json.loads(
        json.dumps(message_payload(approval, job_id=extra.get("job_id"), error=extra.get("error")))
    )
    assert render_approval_update(payload, tracked, NOW) == message


def test_the_request_renders_from_its_stored_payload() -> None:
    approval = make_approval()
    payload = json.loads(json.dumps(message_payload(approval)))
    assert render_approval_request(payload, None, NOW) == build_approval_request(approval, now=NOW)
    # A pending request's update (never queued today) is the request again.
    assert build_approval_decided(approval, now=NOW) == build_approval_request(approval, now=NOW)


def test_huge_strings_stay_within_slacks_limits() -> None:
    long = "x" * 5000
    approval = make_approval(
        justification=long,
        reasons=[ApprovalReason(code="above", text=long)] * 20,
        samples=[MessageSummary.model_validate({"id": "m", "subject": long, "from": long})] * 5,
    )
    check_message(build_approval_request(approval, now=NOW))
    check_message(
        build_approval_decided(
            approval.model_copy(update={"state": ApprovalState.REJECTED, "note": long}), now=NOW
        )
    )


def test_the_reject_modal_asks_for_an_optional_reason() -> None:
    view = check_view(
        build_reject_modal(metadata='{"approval_id":"approval-0123456789abcdef"}', approval=make_approval())
    )
    assert_escaped({"blocks": view["blocks"]})
    [field] = [b for b in view["blocks"] if b.get("block_id") == BlockId.REJECT_REASON]
    assert field["optional"] is True and field["element"]["action_id"] == ActionId.REJECT_REASON


def test_a_preview_that_needs_approval_asks_for_a_justification() -> None:
    draft = make_draft(comment="INC-7")
    plain = check_view(
        build_preview_view(metadata="{}", draft=draft, preview=make_result(), limit=100, now=NOW)
    )
    assert BlockId.JUSTIFICATION not in json.dumps(plain)
    assert justification_errors(plain) is None and parse_justification(plain) is None
    view = check_view(
        build_preview_view(
            metadata="{}",
            draft=draft,
            preview=make_result(),
            limit=100,
            now=NOW,
            reasons=[Reason(ReasonCode.ALWAYS, "it deletes permanently")],
        )
    )
    [field] = [b for b in view["blocks"] if b.get("block_id") == BlockId.JUSTIFICATION]
    assert field["optional"] is False and field["element"]["initial_value"] == "INC-7"
    assert view["submit"]["text"] == "Request approval"
    empty = dict(view, state={"values": {BlockId.JUSTIFICATION: {ActionId.JUSTIFICATION: {"value": "  "}}}})
    errors = justification_errors(empty)
    assert errors is not None and BlockId.JUSTIFICATION in errors
    typed = dict(
        view, state={"values": {BlockId.JUSTIFICATION: {ActionId.JUSTIFICATION: {"value": " INC-8 "}}}}
    )
    assert justification_errors(typed) is None and parse_justification(typed) == "INC-8"
    hidden = dict(
        view, state={"values": {BlockId.JUSTIFICATION: {ActionId.JUSTIFICATION: {"value": "a\u202eb"}}}}
    )
    assert justification_errors(hidden) is not None and parse_justification(hidden) is None


def test_the_canonical_request_has_no_comment_and_a_stable_hash() -> None:
    draft = make_draft(comment="one")
    assert canonical_request(draft).comment is None
    assert canonical_json(draft) == canonical_json(make_draft(comment="two"))
    assert canonical_hash(canonical_json(draft)) != canonical_hash(
        canonical_json(make_draft(subject="other"))
    )
    assert '"start":' in canonical_json(draft) and '"detections_only":false' in canonical_json(draft)


def test_the_job_comment_names_requester_approver_and_channel_within_the_limit() -> None:
    request = make_draft(comment="INC-9 " + "y" * 600).to_request(
        requester_label="@U0ALICE", channel_label="#C0INCIDENT", approver_label="@U0BOB"
    )
    assert request.comment is not None and len(request.comment) <= REQUEST_COMMENT_MAX
    assert request.comment.startswith(
        "Sweep: requested by @U0ALICE in #C0INCIDENT, approved by @U0BOB — INC-9"
    )


async def _no_groups(group: str) -> frozenset[str]:
    return frozenset({"U0GROUPIE"}) if group == "S0APPROVERS" else frozenset()


async def test_approvers_are_sweep_approvers_or_else_operators() -> None:
    anyone = Policy(operators=frozenset({"U0ALICE", "U0BOB"}), channels=None)
    assert await anyone.can_operate("U0BOB", resolve_group_members=_no_groups, operation=Operation.APPROVE)
    refused = await anyone.can_operate("U0EVE", resolve_group_members=_no_groups, operation=Operation.APPROVE)
    assert not refused and "approve jobs" in refused.reason and "SWEEP_OPERATORS" in refused.reason
    listed = Policy(
        operators=frozenset({"U0ALICE", "U0BOB"}),
        channels=None,
        approvers=frozenset({"U0CAROL", "S0APPROVERS"}),
    )
    assert listed.approvers == frozenset({"U0CAROL", "S0APPROVERS"})
    for user in ("U0CAROL", "U0GROUPIE"):
        assert await listed.can_operate(user, resolve_group_members=_no_groups, operation=Operation.APPROVE)
    # An operator who is not an approver may create, but not approve.
    refused = await listed.can_operate("U0BOB", resolve_group_members=_no_groups, operation=Operation.APPROVE)
    assert not refused and "SWEEP_APPROVERS" in refused.reason
    assert await listed.can_operate("U0BOB", resolve_group_members=_no_groups, operation=Operation.CREATE)
    with pytest.raises(ValueError, match="SWEEP_APPROVERS"):
        Policy(operators=frozenset({"U0ALICE"}), channels=None, approvers=frozenset({"#soc"}))
