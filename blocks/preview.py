"""What a draft job would do, before it exists: shared by the inline preview and the modal's preview."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from blocks._describe import destination_label, filter_lines
from blocks._kit import (
    actions,
    button,
    confirm_dialog,
    context,
    format_count,
    format_time,
    message,
    safe,
    safe_multiline,
    section,
)
from bot.approval import Reason
from bot.draft import COMMENT_MAX, JobDraft
from bot.ids import DISMISS_VALUE, ActionId, BlockId
from bot.models import ActionType, MessageSummary, SearchResult
from bot.slack_limits import BUTTON_TEXT_MAX

SAMPLES_SHOWN = 5
SAMPLE_FIELD_MAX = 200
REASON_MAX = 400
"""The most of one reason (or of what would narrow it) a preview shows."""
INLINE_ADD_COMMENT = 'add `comment:"…"` to the command, for example the ticket, and run it again'
"""How to give an inline preview's justification (the comment) when it has none."""


def match_phrase(preview: SearchResult, limit: int) -> str:
    """Return how many messages match, e.g. `1,234 messages` or `more than 1,000 messages` (plain)."""
    if preview.capped:
        return f"more than {format_count(preview.count or limit)} messages"
    if preview.count == 1:
        return "1 message"
    return f"{format_count(preview.count)} messages"


def what_happens(draft: JobDraft) -> str:
    """Return what the job will do, in plain words (escaped mrkdwn)."""
    if draft.action is ActionType.RELEASE:
        return (
            ":warning: *Release from quarantine.* Every quarantined message matching the search below "
            "is delivered to its recipients' inboxes."
        )
    if draft.is_permanent:
        return (
            ":warning: *Permanently delete.* Every message matching the search below is moved to "
            "Recoverable Items – Purges. Recipients cannot get them back and it cannot be undone."
        )
    folder = destination_label(draft.destination.value if draft.destination else None)
    return f"*Move to {folder}.* Every message matching the search below is moved to {folder}."


def danger_sentence(draft: JobDraft, preview: SearchResult, limit: int) -> str:
    """Return the plain confirm-dialog sentence for a dangerous draft (≤ 300 chars)."""
    count = match_phrase(preview, limit)
    if draft.action is ActionType.RELEASE:
        return (
            f"This releases {count} from quarantine into recipients' inboxes. "
            "Make sure they are safe: released mail can be opened at once."
        )
    return f"This permanently deletes {count}. It cannot be undone."


def _sender(sample: MessageSummary) -> str | None:
    address = sample.from_ or sample.envelope_from
    if sample.from_name and address:
        return f"{sample.from_name} ({address})"
    return address or sample.from_name


def _recipients(sample: MessageSummary) -> str | None:
    people = sample.to or sample.client_recipients
    if not people:
        return None
    shown = ", ".join(people[:2])
    return shown + (f" +{len(people) - 2} more" if len(people) > 2 else "")


def sample_section(sample: MessageSummary) -> dict[str, Any]:
    """Return one sample message (subject, sender, recipients, date), every part escaped."""
    subject = safe(sample.subject, SAMPLE_FIELD_MAX, empty="(no subject)")
    sender = safe(_sender(sample), SAMPLE_FIELD_MAX, empty="unknown sender")
    recipients = safe(_recipients(sample), SAMPLE_FIELD_MAX, empty="unknown recipient")
    when = format_time(sample.sent_at or sample.scanned_at)
    return section(f"*{subject}*\nFrom {sender} to {recipients} · {when}")


def _clause(text: str) -> str:
    """Return a reason's clause as a sentence: escaped, capitalised, with a final stop."""
    shown = safe(text, REASON_MAX)
    return shown[:1].upper() + shown[1:] + ("" if shown.endswith((".", "…")) else ".")


def approval_blocks(
    reasons: Sequence[Reason], *, draft: JobDraft, confirm: str, add_comment: str
) -> list[dict[str, Any]]:
    """Return the lines saying why a second person must approve (none when no reason applies).

    Breadth reasons come first, each with what would narrow it; then the others; then what
    `confirm` (the button's label) does instead of creating, and that the comment is required.
    """
    if not reasons:
        return []
    lines = [":warning: *A second person must approve this job:*"]
    for reason in [r for r in reasons if r.broad]:
        narrow = f" _To narrow it:_ {_clause(reason.narrow)}" if reason.narrow else ""
        lines.append(f"• *Broad search:* {_clause(reason.text)}{narrow}")
    lines.extend(f"• {_clause(reason.text)}" for reason in reasons if not reason.broad)
    if draft.comment and draft.comment.strip():
        justification = "The request needs a justification: your comment is sent as one."
    else:
        justification = f"The request needs a justification (your comment): {add_comment}."
    request = (
        f"*{safe(confirm, BUTTON_TEXT_MAX)}* posts an approval request in the channel for a second person; "
        f"it does not create the job. {justification}"
    )
    return [section("\n".join(lines)), section(request)]


def approval_phrase(reasons: Sequence[Reason]) -> str:
    """Return a short plain note for a preview's fallback text ("" when no second person is needed)."""
    if not reasons:
        return ""
    if any(reason.broad for reason in reasons):
        return "broad search, a second person must approve it"
    return "a second person must approve it"


def summary_blocks(
    *,
    draft: JobDraft,
    preview: SearchResult,
    limit: int,
    now: datetime,
    reasons: Sequence[Reason] = (),
    confirm: str = "Confirm",
    add_comment: str = INLINE_ADD_COMMENT,
) -> list[dict[str, Any]]:
    """Return the shared preview blocks: why approval is needed, what happens, how many match, filters…

    `reasons` (from the policy) come first; `confirm` and `add_comment` name the surface's button
    and how to add the comment there.
    """
    count = match_phrase(preview, limit)
    if preview.count == 0 and not preview.capped:
        matches = (
            "*No messages match right now.* A job with this search would do nothing; "
            "check the filters and dates."
        )
    else:
        matches = f"*The search matches {count} right now* (checked {format_time(now)})."
    blocks: list[dict[str, Any]] = [
        *approval_blocks(reasons, draft=draft, confirm=confirm, add_comment=add_comment),
        section(what_happens(draft)),
        section(matches),
        section(f"*Filters*\n{filter_lines(draft.search_params)}"),
    ]
    if draft.comment and draft.comment.strip():
        blocks.append(section(f"*Comment*\n{safe_multiline(draft.comment, COMMENT_MAX)}"))
    samples = preview.messages[:SAMPLES_SHOWN]
    if samples:
        shown = f"{len(samples)} of {count}"
        blocks.append(context(f"Sample messages ({shown}):"))
        blocks.extend(sample_section(sample) for sample in samples)
    return blocks


def build_inline_preview(
    *,
    draft: JobDraft,
    preview: SearchResult,
    limit: int,
    confirm_value: str,
    now: datetime,
    reasons: Sequence[Reason] = (),
) -> dict[str, Any]:
    """Build the ephemeral preview of an inline `/sweep move|release …`, with Confirm and Cancel.

    `reasons` are why a second person must approve it (shown first; empty: none is needed).
    """
    blocks = summary_blocks(draft=draft, preview=preview, limit=limit, now=now, reasons=reasons)
    if draft.needs_strong_confirmation:
        title = "Release these messages?" if draft.action is ActionType.RELEASE else "Delete permanently?"
        dialog = confirm_dialog(
            title=title,
            text=danger_sentence(draft, preview, limit),
            confirm="Yes, release" if draft.action is ActionType.RELEASE else "Yes, delete permanently",
            deny="No, go back",
            danger=True,
        )
        confirm = button(
            "Confirm", action_id=ActionId.CONFIRM_CREATE, value=confirm_value, style="danger", confirm=dialog
        )
    else:
        confirm = button("Confirm", action_id=ActionId.CONFIRM_CREATE, value=confirm_value, style="primary")
    cancel = button("Cancel", action_id=ActionId.DISMISS_PREVIEW, value=DISMISS_VALUE)
    blocks.append(actions(confirm, cancel, block_id=BlockId.INLINE_PREVIEW_ACTIONS))
    blocks.append(context("Only you can see this. Nothing happens until you press Confirm."))
    headline = what_happens(draft).replace(":warning: ", "").replace("*", "")
    note = approval_phrase(reasons)
    lead = f"Preview ({note})" if note else "Preview"
    return message(f"{lead}: {headline} Matches {match_phrase(preview, limit)}.", blocks)
