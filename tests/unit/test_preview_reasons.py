"""Both previews say first why a second person must approve (issue 12, "Breadth guard").

The reasons are data (`bot.approval.Reason`) passed to pure builders: each breadth reason with what
would narrow it, the others after, then what Confirm does instead of creating and that the comment
is the required justification — all before the count and the samples, escaped, within Slack's limits.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from blocks.create_modal import build_preview_view
from blocks.preview import build_inline_preview
from bot.approval import ApprovalPolicy, Reason, ReasonCode, approval_reasons
from bot.draft import JobDraft
from bot.ids import ActionId, BlockId
from bot.models import ActionType, Destination, SearchParams
from tests.unit.test_blocks import (
    EVIL,
    HUGE,
    NOW,
    all_text,
    assert_escaped,
    check_message,
    check_view,
    find_buttons,
    make_draft,
    make_result,
)

INTERNAL = frozenset({"corp.example"})
POLICY = ApprovalPolicy(internal_domains=INTERNAL)
LIMIT = 10_000


def broad_draft(comment: str | None = None, **changes: Any) -> JobDraft:
    """A move with no narrowing filter (only a disposition) over 60 days."""
    params = SearchParams(
        final_disposition="MALICIOUS", start=NOW - timedelta(days=60), end=NOW, detections_only=False
    )
    draft = JobDraft(
        action=ActionType.MOVE, destination=Destination.JUNK_EMAIL, search_params=params, comment=comment
    )
    return draft.model_copy(update=changes) if changes else draft


def reasons_for(draft: JobDraft, *, matched: int = 3, capped: bool = False) -> list[Reason]:
    return approval_reasons(POLICY, draft, matched=matched, capped=capped, counted_up_to=LIMIT)


def inline(draft: JobDraft, reasons: list[Reason], *, count: int = 3, capped: bool = False) -> dict[str, Any]:
    return check_message(
        build_inline_preview(
            draft=draft,
            preview=make_result(count, capped=capped),
            limit=LIMIT,
            confirm_value="v",
            now=NOW,
            reasons=reasons,
        )
    )


def modal(draft: JobDraft, reasons: list[Reason], *, count: int = 3, capped: bool = False) -> dict[str, Any]:
    return check_view(
        build_preview_view(
            metadata="m",
            draft=draft,
            preview=make_result(count, capped=capped),
            limit=LIMIT,
            now=NOW,
            reasons=reasons,
        )
    )


def texts(payload: dict[str, Any]) -> list[str]:
    """Return each block's text, in order (sections and contexts; "" for the others)."""
    found: list[str] = []
    for block in payload["blocks"]:
        if "text" in block and isinstance(block["text"], dict):
            found.append(block["text"]["text"])
        elif block["type"] == "context":
            found.append(" ".join(e.get("text", "") for e in block["elements"]))
        else:
            found.append("")
    return found


def index_of(lines: list[str], needle: str) -> int:
    return next(i for i, line in enumerate(lines) if needle in line)


# ---------------------------------------------------------------- what they say, and where


@pytest.mark.parametrize("build", [inline, modal], ids=["inline", "modal"])
def test_a_broad_search_says_each_reason_and_what_would_narrow_it_before_the_count(build: Any) -> None:
    draft = broad_draft()
    reasons = reasons_for(draft)
    assert [r.code for r in reasons] == [ReasonCode.NO_NARROWING_FILTER, ReasonCode.LONG_WINDOW]
    lines = texts(build(draft, reasons))
    first = lines[0]
    assert first.startswith(":warning: *A second person must approve this job:*")
    for reason in reasons:
        assert reason.narrow is not None
        shown = reason.text[0].upper() + reason.text[1:]
        assert f"• *Broad search:* {shown}. _To narrow it:_ {reason.narrow[0].upper()}" in first
    assert "60 days, more than 30" in first and "Add a sender" in first
    # The reasons and what Confirm does come before what the job does, the count and the samples.
    assert "approval request" in lines[1] and "does not create the job" in lines[1]
    assert index_of(lines, "*Move to Junk Email.*") == 2
    assert index_of(lines, "The search matches 3 messages") == 3
    assert index_of(lines, "Sample messages") > 3


def test_the_inline_preview_names_confirm_and_how_to_add_the_comment() -> None:
    message = inline(broad_draft(), reasons_for(broad_draft()))
    request = texts(message)[1]
    assert request.startswith("*Confirm* posts an approval request in the channel for a second person")
    assert "justification" in request and '`comment:"…"`' in request
    assert message["text"].startswith("Preview (broad search, a second person must approve it): Move to")
    (confirm,) = find_buttons(message, ActionId.CONFIRM_CREATE)
    assert confirm["text"]["text"] == "Confirm" and confirm["value"] == "v"  # Confirm itself is unchanged


def test_the_modal_says_request_approval_and_sends_the_user_back_for_a_comment() -> None:
    view = modal(broad_draft(), reasons_for(broad_draft()))
    assert view["submit"]["text"] == "Request approval"
    request = texts(view)[1]
    assert request.startswith("*Request approval* posts an approval request")
    assert "justification" in request and "*← Edit search*" in request
    assert find_buttons(view, ActionId.EDIT_DRAFT)


@pytest.mark.parametrize("build", [inline, modal], ids=["inline", "modal"])
def test_with_a_comment_it_says_the_comment_is_the_justification(build: Any) -> None:
    draft = broad_draft(comment="INC-4411")
    request = texts(build(draft, reasons_for(draft)))[1]
    assert "your comment is sent as one" in request
    assert "comment:" not in request and "Edit search" not in request


def test_mail_from_an_internal_domain_and_an_uncounted_search_are_named() -> None:
    draft = make_draft(sender="payroll@hr.corp.example")
    reasons = reasons_for(draft, matched=LIMIT, capped=True)
    assert [r.code for r in reasons] == [ReasonCode.INTERNAL_SENDER, ReasonCode.UNCOUNTED]
    for payload in (
        inline(draft, reasons, count=5, capped=True),
        modal(draft, reasons, count=5, capped=True),
    ):
        first = texts(payload)[0]
        assert "your own domain corp.example" in first
        assert "more than 10,000 messages, more than the preview can count" in first
        assert first.count("_To narrow it:_") == 2


@pytest.mark.parametrize("build", [inline, modal], ids=["inline", "modal"])
def test_reasons_that_are_not_breadth_come_after_and_say_nothing_about_narrowing(build: Any) -> None:
    draft = make_draft(destination=Destination.RECOVERABLE_ITEMS_PURGES, start=NOW - timedelta(days=60))
    reasons = reasons_for(draft, matched=301)
    assert [r.code for r in reasons] == [ReasonCode.LONG_WINDOW, ReasonCode.ALWAYS, ReasonCode.ABOVE]
    payload = build(draft, reasons, count=5)
    first = texts(payload)[0]
    lines = first.split("\n")
    assert lines[1].startswith("• *Broad search:* Its dates cover 60 days")
    assert lines[2] == "• It deletes permanently, and every permanent purge needs a second person here."
    assert lines[3] == "• It matches 301 messages, and more than 300 needs a second person here."
    assert first.count("_To narrow it:_") == 1


def test_a_narrow_job_of_a_kind_that_always_needs_approval_is_not_called_broad() -> None:
    draft = make_draft(destination=Destination.RECOVERABLE_ITEMS_PURGES)
    reasons = reasons_for(draft)
    assert [r.code for r in reasons] == [ReasonCode.ALWAYS]
    message = inline(draft, reasons)
    assert "Broad search" not in all_text(message) and "broad" not in message["text"]
    assert message["text"].startswith("Preview (a second person must approve it): Permanently delete.")
    view = modal(draft, reasons)
    # The typed word is still asked for; only the submit's label says what it does.
    assert view["submit"]["text"] == "Request approval"
    assert BlockId.CONFIRM_WORD in {b.get("block_id") for b in view["blocks"]}


@pytest.mark.parametrize("build", [inline, modal], ids=["inline", "modal"])
def test_no_reason_no_approval_lines(build: Any) -> None:
    draft = make_draft()
    assert reasons_for(draft) == []
    payload = build(draft, [])
    assert "second person" not in all_text(payload) and "approval" not in all_text(payload)
    assert texts(payload)[0].startswith("*Move to Deleted Items.*")
    if "submit" in payload:
        assert payload["submit"]["text"] == "Create job"
    else:
        assert payload["text"].startswith("Preview: Move to Deleted Items.")


# ---------------------------------------------------------------- escaped and within limits


def test_reasons_are_escaped_wherever_they_come_from() -> None:
    reasons = [
        Reason(ReasonCode.NO_NARROWING_FILTER, EVIL, EVIL),
        Reason(ReasonCode.ABOVE, EVIL),
    ]
    for payload in (inline(make_draft(comment=None), reasons), modal(make_draft(comment=EVIL), reasons)):
        assert_escaped(payload)
        assert "&lt;!channel&gt;" in texts(payload)[0]


def test_huge_and_many_reasons_stay_within_slack_limits() -> None:
    reasons = [Reason(ReasonCode.LONG_WINDOW, HUGE, HUGE) for _ in range(20)]
    reasons += [Reason(ReasonCode.ALWAYS, HUGE) for _ in range(20)]
    message = inline(make_draft(comment=HUGE), reasons, count=40)  # check_message: ≤ 50 blocks, 3000 chars
    view = modal(make_draft(comment=HUGE), reasons, count=40)
    for payload in (message, view):
        assert_escaped(payload)
        assert all(len(text) <= 3000 for text in texts(payload))
        assert texts(payload)[0].startswith(":warning: *A second person must approve this job:*")
