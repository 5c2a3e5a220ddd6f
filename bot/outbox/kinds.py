"""Sweep's delivery kinds, each registered once in `KINDS`.

- `card_post`: the job's card, posted in its channel when tracking starts; it becomes the card.
- `card_update`: the card edited to the job's current state, re-armed by every change, coalesced.
- `transition`: one reply in the card's thread per status change, showing the state of that moment.
- `auto_cancel`: one reply in the card's thread saying Sweep cancelled the job because it discovered
  more messages than agreed (key `auto_cancel`: queued once per job, also across restarts).
- `create_not_made`: a notice to the requester's channel that a confirmed create made no job (no
  job row; key `create:{tag}`).
- `approval_request`: the approval request with Approve / Reject, posted in its channel (no job;
  key `approval:{id}`).
- `approval_update`: that message edited to the approval's current state (approved → job card,
  rejected, expired, or why no job was made); one re-armable row per approval, coalesced like card
  edits; once the approved job exists the row belongs to it and waits for its card, to link to it.

A new kind is one more `KINDS.register(Kind(...))` here (its renderer may live in `blocks/`), and
its rows are queued with `Store.queue_delivery(key, kind=…, …)`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from blocks.approval import build_approval_decided, build_approval_request
from blocks.job_card import build_auto_cancel_reply, build_job_card, build_transition_reply
from blocks.notice import build_create_not_made
from bot.ids import EventType
from bot.models import Approval, TrackedJob
from bot.outbox.registry import Kind, Recovery, Registry, Target
from bot.store import OutboxItem, OutboxKind

__all__ = [
    "CREATE_NOT_MADE",
    "KINDS",
    "approval_metadata",
    "card_metadata",
    "notice_metadata",
    "transition_metadata",
]

#: The kind (and `payload["notice"]`) of the notice that a confirmed create made no job.
CREATE_NOT_MADE = "create_not_made"


def card_metadata(job_id: str) -> dict[str, Any]:
    """Return the metadata Sweep posts with a job's card."""
    return {"event_type": EventType.CARD.value, "event_payload": {"job_id": job_id}}


def transition_metadata(job_id: str, transition: str) -> dict[str, Any]:
    """Return the metadata Sweep posts with a transition reply."""
    return {
        "event_type": EventType.TRANSITION.value,
        "event_payload": {"job_id": job_id, "transition": transition},
    }


def notice_metadata(key: str) -> dict[str, Any]:
    """Return the metadata Sweep posts with a channel notice (keyed like its outbox row)."""
    return {"event_type": EventType.NOTICE.value, "event_payload": {"job_id": key}}


def approval_metadata(approval_id: str) -> dict[str, Any]:
    """Return the metadata Sweep posts with an approval request (kept when the message is edited)."""
    return {"event_type": EventType.APPROVAL.value, "event_payload": {"approval_id": approval_id}}


def _the_job(job: TrackedJob | None) -> TrackedJob:
    if job is None:  # the notifier never renders a job's message without its job
        raise ValueError("this kind renders a tracked job")
    return job


def _reply_job(job: TrackedJob, payload: Mapping[str, Any]) -> TrackedJob:
    """Return the job as it was at the transition (the store may already hold a later state)."""
    if payload.get("gone"):
        return job
    state = payload.get("state") or {"status": payload.get("status", job.status)}
    return TrackedJob.model_validate({**job.model_dump(), **state, "gone": False})


def render_card(payload: Mapping[str, Any], job: TrackedJob | None, now: datetime) -> dict[str, Any]:
    """Render the job's card from its current state."""
    return build_job_card(_the_job(job), now=now)


def render_transition(payload: Mapping[str, Any], job: TrackedJob | None, now: datetime) -> dict[str, Any]:
    """Render a transition reply from the state recorded with the transition."""
    job = _the_job(job)
    return build_transition_reply(_reply_job(job, payload), previous_status=payload.get("previous"), now=now)


def render_auto_cancel(payload: Mapping[str, Any], job: TrackedJob | None, now: datetime) -> dict[str, Any]:
    """Render the reply that Sweep cancelled the job past its agreed maximum (figures of that moment)."""
    return build_auto_cancel_reply(
        _the_job(job), discovered=int(payload["discovered"]), agreed_max=int(payload["agreed_max"]), now=now
    )


def render_create_not_made(
    payload: Mapping[str, Any], job: TrackedJob | None, now: datetime
) -> dict[str, Any]:
    """Render the notice that a confirmed create made no job."""
    return build_create_not_made(payload)


def render_approval_request(
    payload: Mapping[str, Any], job: TrackedJob | None, now: datetime
) -> dict[str, Any]:
    """Render the approval request as it was stored (pending, with Approve / Reject)."""
    return build_approval_request(Approval.model_validate(payload["approval"]), now=now)


def render_approval_update(
    payload: Mapping[str, Any], job: TrackedJob | None, now: datetime
) -> dict[str, Any]:
    """Render the approval's message in its latest state (with a link to the job's card once it has one)."""
    return build_approval_decided(
        Approval.model_validate(payload["approval"]),
        now=now,
        job=job,
        job_id=payload.get("job_id"),
        error=payload.get("error"),
    )


def _card_payload(item: OutboxItem) -> dict[str, Any]:
    return dict(card_metadata(str(item.job_id))["event_payload"])


def _transition_payload(item: OutboxItem) -> dict[str, Any]:
    return dict(transition_metadata(str(item.job_id), item.key)["event_payload"])


def _notice_payload(item: OutboxItem) -> dict[str, Any]:
    return dict(notice_metadata(item.key)["event_payload"])


def _approval_payload(item: OutboxItem) -> dict[str, Any]:
    return dict(approval_metadata(item.key.removeprefix("approval:"))["event_payload"])


_CARD = Recovery(EventType.CARD.value, _card_payload)

KINDS = Registry()
KINDS.register(
    Kind(
        name=OutboxKind.CARD_POST.value,
        target=Target.JOB_CHANNEL,
        render=render_card,
        recovery=_CARD,
        records_card=True,
    )
)
KINDS.register(
    Kind(
        name=OutboxKind.CARD_UPDATE.value,
        target=Target.CARD,
        render=render_card,
        recovery=_CARD,
        rearmable=True,
        waits_for_card=True,
    )
)
KINDS.register(
    Kind(
        name=OutboxKind.TRANSITION.value,
        target=Target.CARD_THREAD,
        render=render_transition,
        recovery=Recovery(EventType.TRANSITION.value, _transition_payload),
        waits_for_card=True,
    )
)
KINDS.register(
    Kind(
        name=OutboxKind.AUTO_CANCEL.value,
        target=Target.CARD_THREAD,
        render=render_auto_cancel,
        recovery=Recovery(EventType.TRANSITION.value, _transition_payload),
        waits_for_card=True,
    )
)
KINDS.register(
    Kind(
        name=CREATE_NOT_MADE,
        target=Target.CHANNEL,
        render=render_create_not_made,
        recovery=Recovery(EventType.NOTICE.value, _notice_payload),
    )
)
_APPROVAL = Recovery(EventType.APPROVAL.value, _approval_payload)
KINDS.register(
    Kind(
        name=OutboxKind.APPROVAL_REQUEST.value,
        target=Target.CHANNEL,
        render=render_approval_request,
        recovery=_APPROVAL,
    )
)
KINDS.register(
    Kind(
        name=OutboxKind.APPROVAL_UPDATE.value,
        target=Target.MESSAGE,
        render=render_approval_update,
        recovery=_APPROVAL,
        rearmable=True,
        waits_for_card=True,
        edits=OutboxKind.APPROVAL_REQUEST.value,
    )
)
