"""The job card (one message per job, edited as it runs), its thread replies, and `/sweep status`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from blocks._describe import action_title, filter_lines, outcome_label, outcome_words, status_word
from blocks._kit import (
    actions,
    button,
    confirm_dialog,
    context,
    fields_section,
    format_age,
    format_count,
    format_time,
    header,
    mention,
    message,
    plural,
    progress_bar,
    safe,
    safe_multiline,
    section,
)
from bot.draft import JOB_COMMENT_MAX
from bot.ids import ActionId, BlockId
from bot.models import UNKNOWN_COUNT, TrackedJob
from bot.payloads import CancelButtonValue, PayloadError, encode

STATUS_MESSAGE_MAX = 1000


def _count_values(job: TrackedJob) -> list[tuple[str, int]]:
    pairs = [
        ("Discovered", job.total_messages_discovered),
        ("Successful", job.messages_successful),
        ("Failed", job.messages_failed),
        ("Pending", job.messages_pending),
    ]
    if job.messages_skipped is not None:
        pairs.append(("Skipped", job.messages_skipped))
    if job.messages_cancelled is not None:
        pairs.append(("Cancelled", job.messages_cancelled))
    return pairs


def _counts(job: TrackedJob) -> list[tuple[str, str]]:
    return [(label, format_count(value)) for label, value in _count_values(job)]


def _impossible_counts_note(job: TrackedJob) -> str | None:
    """Say which counts Cloudflare reported impossibly (Sweep shows them as unknown), or None."""
    labels = [label for label, value in _count_values(job) if value == UNKNOWN_COUNT]
    if not labels:
        return None
    return (
        f":warning: Cloudflare reported an impossible count ({', '.join(labels)}); shown as unknown. "
        "Check the job in the Cloudflare dashboard."
    )


_ENDED_EMPTY = {
    "COMPLETED": "No messages matched the search.",
    "CANCELLED": "Cancelled before any message was discovered.",
    "FAILED": "Failed before any message was discovered.",
    "SKIPPED": "Skipped before any message was discovered.",
}


def _nothing_discovered(job: TrackedJob) -> str:
    """Say what a job with no discovered message means: still searching, or how it ended."""
    if job.gone:
        return "Deleted at Cloudflare before any message was discovered."
    if not job.is_terminal:
        return "Searching for matching messages…"
    return _ENDED_EMPTY.get(job.status, f"Ended ({status_word(job.status)}) with no message discovered.")


def _progress(job: TrackedJob) -> str:
    total = job.total_messages_discovered
    if job.processed == UNKNOWN_COUNT:
        return "Progress unknown: Cloudflare reported an impossible count."
    if total <= 0:
        return _nothing_discovered(job)
    bar = progress_bar(job.processed, total)
    return f"`{bar}`  {format_count(job.processed)} of {plural(total, 'message')} processed"


def _status_line(job: TrackedJob) -> str:
    """Return the job's status with its emoji: the one wording of the card and its thread replies."""
    return outcome_label(job.status, failed=job.messages_failed, gone=job.gone)


def _status_words(job: TrackedJob) -> str:
    return outcome_words(job.status, failed=job.messages_failed, gone=job.gone)


def _requester(job: TrackedJob) -> str:
    return mention(job.requester) if job.requester else "created outside Sweep"


def _cancel_button(job: TrackedJob) -> dict[str, Any] | None:
    try:
        value = encode(CancelButtonValue(job_id=job.job_id))
    except (ValidationError, PayloadError):
        return None  # not a job id Sweep can cancel (the API's ids are UUIDs)
    verb = {"MOVE": "moved", "RELEASE": "released"}.get(job.action_type, "processed")
    dialog = confirm_dialog(
        title="Cancel this job?",
        text=(
            f"Cancelling stops only the pending work. Messages already {verb} "
            f"({format_count(job.messages_successful)} so far) stay {verb}; nothing is undone."
        ),
        confirm="Cancel job",
        deny="Keep it running",
        danger=True,
    )
    return button(
        "Cancel job",
        action_id=ActionId.CANCEL_JOB,
        value=value,
        style="danger",
        confirm=dialog,
    )


def _fallback(job: TrackedJob) -> str:
    title = safe(action_title(job.action_type, job.destination), 200)
    # The status word stays first and alone before the comma (notifications and tools read it there).
    status = "deleted at Cloudflare" if job.gone else status_word(job.status)
    counts = f"{format_count(job.processed)}/{format_count(job.total_messages_discovered)} processed"
    if job.messages_failed > 0:
        counts += f", {format_count(job.messages_failed)} failed"
    return f"{title}: {status}, {counts} (job {safe(job.job_id, 100)})"


def auto_cancel_line(job: TrackedJob, *, discovered: int, agreed_max: int) -> str:
    """Say that Sweep cancelled a job for discovering more messages than was agreed."""
    done = "released stay released" if job.action_type == "RELEASE" else "moved stay moved"
    return (
        f":octagonal_sign: *Discovered {format_count(discovered)} messages, agreed at most "
        f"{format_count(agreed_max)}: cancelled automatically.* Messages already {done}."
    )


def build_auto_cancel_reply(
    job: TrackedJob, *, discovered: int, agreed_max: int, now: datetime
) -> dict[str, Any]:
    """Build the thread reply saying Sweep cancelled the job past its agreed maximum (posted once)."""
    line = auto_cancel_line(job, discovered=discovered, agreed_max=agreed_max)
    fallback = (
        f"Job {safe(job.job_id, 100)} discovered {format_count(discovered)} messages, agreed at most "
        f"{format_count(agreed_max)}: cancelled automatically"
    )
    blocks = [
        section(line),
        context(f"Job `{safe(job.job_id, 200)}` · created {format_age(job.created_at, now)}"),
    ]
    return message(fallback, blocks)


def build_job_card(job: TrackedJob, *, now: datetime) -> dict[str, Any]:
    """Build the job's card: what it does, status, counts, filters, who asked, and Cancel while it runs."""
    blocks: list[dict[str, Any]] = [
        header(action_title(job.action_type, job.destination)),
        fields_section(
            [
                ("Status", _status_line(job)),
                ("Requested by", _requester(job)),
                ("Job", f"`{safe(job.job_id, 200)}`"),
                ("Created", f"{format_age(job.created_at, now)} ({format_time(job.created_at)})"),
            ]
        ),
        section(_progress(job)),
        fields_section(_counts(job)),
        section(f"*Filters*\n{filter_lines(job.search_params)}"),
    ]
    if job.comment and job.comment.strip():
        quoted = "\n".join(f">{line}" for line in safe_multiline(job.comment, JOB_COMMENT_MAX).splitlines())
        blocks.append(section(f"*Comment*\n{quoted}"))
    if job.overshoot is not None and job.agreed_max is not None:
        blocks.append(section(auto_cancel_line(job, discovered=job.overshoot, agreed_max=job.agreed_max)))
    notes: list[str] = []
    if (impossible := _impossible_counts_note(job)) is not None:
        notes.append(impossible)
    if job.status_message:
        notes.append(f"Cloudflare says: {safe(job.status_message, STATUS_MESSAGE_MAX)}")
    if job.cancelled_by:
        notes.append(f":no_entry_sign: Cancelled from Slack by {mention(job.cancelled_by)}")
    if job.completed_at is not None:
        notes.append(f"Finished {format_time(job.completed_at)}")
    if notes:
        blocks.append(context(*notes))
    if job.gone:
        blocks.append(
            section(
                ":wastebasket: *This job no longer exists at Cloudflare* (it was deleted outside Sweep). "
                "The counts above are the last ones Sweep saw."
            )
        )
    if not job.is_terminal and (cancel := _cancel_button(job)) is not None:
        blocks.append(actions(cancel, block_id=BlockId.CARD_ACTIONS))
    return message(_fallback(job), blocks)


def build_status_card(job: TrackedJob, *, tracked: bool, now: datetime) -> dict[str, Any]:
    """Build the `/sweep status` answer: the job card, also for a job Sweep does not track."""
    card = build_job_card(job, now=now)
    if not tracked:
        note = context("Not tracked by Sweep: no card in a channel (`/sweep watch` tracks it).")
        card["blocks"].insert(1, note)
    return card


def build_transition_reply(job: TrackedJob, *, previous_status: str | None, now: datetime) -> dict[str, Any]:
    """Build the thread reply for a status change, with final counts once the job is done."""
    current = _status_words(job)
    if previous_status is None:
        headline = _status_line(job)
        fallback = f"Job {safe(job.job_id, 100)} is now {current}"
    else:
        # The arrow names the bare statuses; the label before it is the card's own wording.
        arrow = f"{status_word(previous_status)} → {outcome_words(job.status, gone=job.gone)}"
        headline = f"{_status_line(job)}  *{arrow}*"
        fallback = f"Job {safe(job.job_id, 100)}: {status_word(previous_status)} → {current}"
    blocks: list[dict[str, Any]] = [section(headline)]
    if job.is_terminal:
        counts = ", ".join(f"{label.lower()}: {value}" for label, value in _counts(job))
        blocks.append(section(f"Final counts: {counts}"))
        fallback += f" ({counts})"
    else:
        blocks.append(section(_progress(job)))
    notes: list[str] = []
    if (impossible := _impossible_counts_note(job)) is not None:
        notes.append(impossible)
    if job.gone:
        notes.append("The job was deleted outside Sweep; Sweep stopped tracking it.")
    if job.status_message:
        notes.append(f"Cloudflare says: {safe(job.status_message, STATUS_MESSAGE_MAX)}")
    if job.cancelled_by:
        notes.append(f"Cancelled from Slack by {mention(job.cancelled_by)}")
    notes.append(f"Job `{safe(job.job_id, 200)}` · created {format_age(job.created_at, now)}")
    blocks.append(context(*notes))
    return message(fallback, blocks)
