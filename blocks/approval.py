"""The approval request message (Approve / Reject), the same message once decided, and the reject modal.

Pure builders: the stored `Approval` in, Block Kit out, every user string escaped, within Slack's
limits. The buttons carry only the approval's id (`ApprovalButtonValue`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from blocks._describe import action_title, filter_lines
from blocks._kit import (
    actions,
    button,
    confirm_dialog,
    context,
    fields_section,
    format_count,
    format_time,
    header,
    mention,
    message,
    message_link,
    plain,
    plain_text,
    safe,
    safe_multiline,
    section,
)
from blocks.preview import sample_section
from bot.draft import COMMENT_MAX
from bot.ids import ActionId, BlockId, CallbackId
from bot.models import Approval, ApprovalState, TrackedJob
from bot.payloads import ApprovalButtonValue, PayloadError, encode
from bot.slack_limits import VIEW_TITLE_MAX

__all__ = [
    "REJECT_REASON_MAX",
    "SAMPLES_SHOWN",
    "build_approval_decided",
    "build_approval_request",
    "build_reject_modal",
]

SAMPLES_SHOWN = 5
REJECT_REASON_MAX = 500
_REASON_SHOWN = 300
_ERROR_SHOWN = 600


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _until(moment: datetime, now: datetime) -> str:
    """Return how far away `moment` is, e.g. `in 59 min`, `in 2 h`, `now`."""
    seconds = int((_aware(moment) - _aware(now)).total_seconds())
    if seconds <= 0:
        return "now"
    if seconds < 60:
        return f"in {seconds} s"
    if seconds < 3600:
        return f"in {seconds // 60} min"
    return (
        f"in {seconds // 3600} h {seconds % 3600 // 60} min" if seconds < 10800 else f"in {seconds // 3600} h"
    )


def _count(approval: Approval) -> str:
    """Return the previewed count, e.g. `1,234 messages` or `more than 10,000 messages` (plain)."""
    shown = format_count(approval.matched)
    if approval.capped:
        return f"more than {shown} messages"
    return "1 message" if approval.matched == 1 else f"{shown} messages"


def _sentence(clause: str) -> str:
    """Return a reason's clause (lowercase, no stop) as an escaped sentence."""
    text = safe(clause, _REASON_SHOWN)
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "…")) else ".")


def _title(approval: Approval) -> str:
    request = approval.request
    return action_title(str(request.action), str(request.destination) if request.destination else None)


def _summary(approval: Approval, *, now: datetime) -> list[dict[str, Any]]:
    """Return what is asked, by whom and why: shared by the pending and the decided message."""
    request = approval.request
    asked = (
        f"{mention(approval.requester)} asks for *{safe(_title(approval), 200)}* of the "
        f"*{_count(approval)}* the search matched when previewed ({format_time(approval.created_at)})."
    )
    reasons = "\n".join(f"• {_sentence(reason.text)}" for reason in approval.reasons) or "• —"
    quoted = "\n".join(
        f">{line}" for line in safe_multiline(approval.justification, COMMENT_MAX).splitlines()
    )
    blocks: list[dict[str, Any]] = [
        section(asked),
        section(f"*Why a second person is needed*\n{reasons}"),
        section(f"*Justification*\n{quoted}"),
        section(f"*Filters*\n{filter_lines(request.search_params)}"),
        fields_section(
            [
                ("Requested by", mention(approval.requester)),
                ("Agreed maximum", f"{format_count(approval.agreed_max)} messages (stopped past it)"),
                ("Expires", f"{format_time(approval.expires_at)} ({_until(approval.expires_at, now)})"),
                ("Request", f"`{safe(approval.id, 64)}`"),
            ]
        ),
    ]
    samples = approval.samples[:SAMPLES_SHOWN]
    if samples:
        blocks.append(context(f"Sample messages ({len(samples)} of {_count(approval)}):"))
        blocks.extend(sample_section(sample) for sample in samples)
    return blocks


def _buttons(approval: Approval) -> dict[str, Any] | None:
    try:
        value = encode(ApprovalButtonValue(approval_id=approval.id))
    except (PayloadError, ValueError):
        return None  # an id that cannot be carried: the message shows without buttons
    approve = button(
        "Approve",
        action_id=ActionId.APPROVE_JOB,
        value=value,
        style="primary",
        confirm=confirm_dialog(
            title="Approve this job?",
            text=plain(
                f"Sweep creates it at once: {_title(approval)}, {_count(approval)} when previewed "
                f"(stopped past {approval.agreed_max:,}).",
                300,
            ),
            confirm="Approve",
            deny="Not yet",
            danger=approval.request.needs_strong_confirmation,
        ),
    )
    reject = button("Reject", action_id=ActionId.REJECT_JOB, value=value, style="danger")
    return actions(approve, reject, block_id=BlockId.APPROVAL_ACTIONS)


def build_approval_request(approval: Approval, *, now: datetime) -> dict[str, Any]:
    """Build the approval request: what, how many, why, who and why they ask, expiry, Approve / Reject."""
    blocks = [header(f"Approval needed: {_title(approval)}"), *_summary(approval, now=now)]
    if (controls := _buttons(approval)) is not None:
        blocks.append(controls)
    blocks.append(
        context(
            "Approving creates the job at once, exactly as previewed. Anyone but the requester who may "
            f"approve can decide; unanswered, the request expires {format_time(approval.expires_at)}."
        )
    )
    fallback = (
        f"Approval needed: {_title(approval)}, {_count(approval)}, requested by "
        f"{plain(approval.requester, 64)}; expires {format_time(approval.expires_at)}."
    )
    return message(fallback, blocks)


def _outcome(
    approval: Approval, *, job: TrackedJob | None, job_id: str | None, error: str | None
) -> tuple[str, str]:
    """Return (headline, fallback) of a decided approval."""
    when = format_time(approval.decided_at) if approval.decided_at is not None else "—"
    who = mention(approval.decided_by)
    if approval.state is ApprovalState.APPROVED:
        if error is not None:
            return (
                f":x: *Approved by {who}* ({when}), but no job was made: {safe(error, _ERROR_SHOWN)}",
                "Approved, but no job was made",
            )
        if job is not None and job.card_ts and job.channel_id:
            link = message_link(job.channel_id, job.card_ts)
            return (
                f":white_check_mark: *Approved by {who}* ({when}) → <{link}|job card> "
                f"(job `{safe(job.job_id, 64)}`)",
                f"Approved: job {plain(job.job_id, 64)}",
            )
        if job_id is not None:
            return (
                f":white_check_mark: *Approved by {who}* ({when}) → job `{safe(job_id, 64)}`; "
                "its card follows",
                f"Approved: job {plain(job_id, 64)}",
            )
        return (
            f":white_check_mark: *Approved by {who}* ({when}): creating the job…",
            "Approved: creating the job",
        )
    if approval.state is ApprovalState.REJECTED:
        line = f":no_entry: *Rejected by {who}* ({when}). Nothing was created."
        if approval.note and approval.note.strip():
            quoted = "\n".join(
                f">{line}" for line in safe_multiline(approval.note, REJECT_REASON_MAX).splitlines()
            )
            line += f"\n{quoted}"
        return line, "Rejected: nothing was created"
    if approval.state is ApprovalState.EXPIRED:
        return (
            f":hourglass: *Expired* {format_time(approval.expires_at)} without a decision. Nothing was "
            "created; run the command again to ask anew.",
            "Expired: nothing was created",
        )
    return ":hourglass_flowing_sand: *Waiting for approval.*", "Waiting for approval"


def build_approval_decided(
    approval: Approval,
    *,
    now: datetime,
    job: TrackedJob | None = None,
    job_id: str | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """Build the request once decided or expired: the same summary, the outcome, no buttons.

    An approved request links to its job's card once `job` has one; `error` says why no job was made.
    """
    if approval.state is ApprovalState.PENDING:
        return build_approval_request(approval, now=now)
    line, word = _outcome(approval, job=job, job_id=job_id, error=error)
    blocks = [header(f"Approval request: {_title(approval)}"), section(line), *_summary(approval, now=now)]
    fallback = (
        f"{word}. {_title(approval)}, {_count(approval)}, requested by {plain(approval.requester, 64)}."
    )
    return message(fallback, blocks)


def build_reject_modal(*, metadata: str, approval: Approval) -> dict[str, Any]:
    """Build the small modal that asks for an (optional) reason before rejecting."""
    element = {
        "type": "plain_text_input",
        "action_id": ActionId.REJECT_REASON,
        "multiline": True,
        "max_length": REJECT_REASON_MAX,
    }
    return {
        "type": "modal",
        "callback_id": CallbackId.REJECT_APPROVAL.value,
        "title": plain_text("Reject request", limit=VIEW_TITLE_MAX),
        "submit": plain_text("Reject", limit=VIEW_TITLE_MAX),
        "close": plain_text("Cancel", limit=VIEW_TITLE_MAX),
        "private_metadata": metadata,
        "blocks": [
            section(
                f"Reject {mention(approval.requester)}'s request for *{safe(_title(approval), 200)}* "
                f"({_count(approval)})? Nothing is created."
            ),
            {
                "type": "input",
                "block_id": BlockId.REJECT_REASON,
                "optional": True,
                "label": plain_text("Reason (optional)", limit=2000),
                "element": element,
            },
        ],
    }
