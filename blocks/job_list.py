"""`/sweep list`: recent bulk jobs with status, counts and age, paged with Previous/Next."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from blocks._describe import action_title, outcome_label
from blocks._kit import (
    actions,
    button,
    context,
    format_age,
    format_count,
    header,
    message,
    safe,
    section,
)
from bot.ids import ActionId, BlockId
from bot.models import TrackedJob
from bot.payloads import ListPageValue, encode

MAX_LISTED = 40
"""Jobs shown in one message: header, filter line, paging and a note must still fit in 50 blocks."""


def _job_section(job: TrackedJob, now: datetime) -> dict[str, Any]:
    title = safe(action_title(str(job.action_type), job.destination), 150)
    counts = (
        f"{format_count(job.total_messages_discovered)} found · "
        f"{format_count(job.messages_successful)} done · "
        f"{format_count(job.messages_failed)} failed · "
        f"{format_count(job.messages_pending)} pending"
    )
    lines = [
        f"*{title}* · {outcome_label(str(job.status), failed=job.messages_failed)}",
        f"`{safe(job.job_id, 100)}` · {counts} · {format_age(job.created_at, now)}",
    ]
    if job.comment and job.comment.strip():
        lines.append(f"_{safe(job.comment, 150)}_")
    return section("\n".join(lines))


def _page_button(label: str, *, page: int, status: str | None, action_type: str | None) -> dict[str, Any]:
    value = encode(ListPageValue(status=status, action_type=action_type, page=page))
    return button(label, action_id=ActionId.LIST_PAGE, value=value)


def build_job_list(
    jobs: Sequence[TrackedJob],
    *,
    page: int,
    has_more: bool,
    status: str | None,
    action_type: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Build the list of recent jobs (page is 1-based), with paging buttons when there is more."""
    filters = []
    if status:
        filters.append(f"status {safe(status, 40)}")
    if action_type:
        filters.append(f"action {safe(action_type, 40)}")
    scope = f"Filtered by {' and '.join(filters)}" if filters else "All statuses and actions"
    blocks: list[dict[str, Any]] = [header("Recent bulk jobs"), context(f"{scope} · page {page}")]
    shown = list(jobs[:MAX_LISTED])
    if not shown:
        blocks.append(
            section("No bulk jobs match." if page <= 1 else "No more jobs: this page is past the end.")
        )
    blocks.extend(_job_section(job, now) for job in shown)
    if len(jobs) > len(shown):
        hidden = len(jobs) - len(shown)
        note = f"{format_count(hidden)} more on this page not shown: narrow the list with a filter."
        blocks.append(context(note))
    if page > 1:
        previous = _page_button("← Previous", page=page - 1, status=status, action_type=action_type)
        blocks.append(actions(previous, block_id=BlockId.LIST_PAGE_PREVIOUS))
    if has_more:
        following = _page_button("Next →", page=page + 1, status=status, action_type=action_type)
        blocks.append(actions(following, block_id=BlockId.LIST_PAGE_NEXT))
    text = f"Recent bulk jobs, page {page}: {len(shown)} shown" if shown else "No bulk jobs match."
    return message(text, blocks)
