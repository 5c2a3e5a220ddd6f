"""The approvals aggregate on real databases, SQLite and PostgreSQL (every test runs on both).

Requesting uses the preview and queues the request message in one transaction; a decision is made
once, whoever races for it (two approvers, two replicas expiring); approving records the create
intent with the approved maximum; the create's end re-arms the request's message.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.approvals import canonical_hash, canonical_json, canonical_request
from bot.cloudflare.models import BulkJob
from bot.draft import JobDraft
from bot.models import Approval, ApprovalReason, ApprovalState, MessageSummary
from bot.outbox import Notifier
from bot.slack_port import RecordingSlackPort, SlackTransientError
from bot.store import IntentState, OutboxKind, OutboxState, PreviewState, SqlStore, open_store

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
JOB = "00000000-0000-4000-8000-0000000000aa"
REQUESTER, APPROVER, OTHER = "U0ALICE", "U0BOB", "U0CAROL"
CHANNEL = "C0INCIDENT"


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    async with open_store(store_url) as opened:
        yield opened


def draft(comment: str | None = "INC-1 phish wave") -> JobDraft:
    return JobDraft.model_validate(
        {
            "action": "MOVE",
            "destination": "RecoverableItemsPurges",
            "search_params": {
                "subject": "Invoice <urgent>",
                "start": "2026-11-13T09:00:00Z",
                "end": "2026-11-20T09:00:00Z",
                "detections_only": False,
            },
            "comment": comment,
        }
    )


async def stored_preview(
    store: SqlStore, preview_id: str, *, expires: timedelta = timedelta(minutes=30)
) -> None:
    assert await store.save_preview(
        preview_id,
        requester=REQUESTER,
        channel_id=CHANNEL,
        state=PreviewState.PREVIEWED,
        expires_at=T0 + expires,
        now=T0,
        draft_json=draft().model_dump_json(exclude_none=True),
        request_hash="h",
        matched=420,
        samples_json='[{"id": "m1", "subject": "Invoice <urgent>", "from": "x@bad.example"}]',
    )


def approval(
    preview_id: str, approval_id: str, *, ttl: timedelta = timedelta(hours=1)
) -> tuple[Approval, str]:
    text = canonical_json(draft())
    made = Approval(
        id=approval_id,
        preview_id=preview_id,
        requester=REQUESTER,
        channel_id=CHANNEL,
        request=canonical_request(draft()),
        request_hash=canonical_hash(text),
        justification="INC-1 phish wave",
        matched=420,
        samples=[
            MessageSummary.model_validate(
                {"id": "m1", "subject": "Invoice <urgent>", "from": "x@bad.example"}
            )
        ],
        reasons=[ApprovalReason(code="always", text="it is a permanent purge")],
        agreed_max=462,
        state=ApprovalState.PENDING,
        expires_at=T0 + ttl,
        created_at=T0,
    )
    return made, text


async def requested(store: SqlStore, name: str = "a", *, ttl: timedelta = timedelta(hours=1)) -> Approval:
    preview_id, approval_id = f"preview-{name}-0123456789", f"approval-{name}-0123456789"
    await stored_preview(store, preview_id)
    made, text = approval(preview_id, approval_id, ttl=ttl)
    assert await store.request_approval(made, request_json=text, now=T0)
    return made


def request_of(made: Approval) -> Any:
    return draft().to_request(
        requester_label=f"@{REQUESTER}", channel_label=f"#{CHANNEL}", approver_label="@B"
    )


def rows(items: list[Any], kind: str) -> list[Any]:
    return [i for i in items if i.kind == kind]


async def test_a_request_uses_the_preview_and_queues_its_message_once(store: SqlStore) -> None:
    made = await requested(store)
    got = await store.get_approval(made.id)
    assert got is not None and got == made
    assert got.request.comment is None and got.samples[0].from_ == "x@bad.example"
    assert await store.approval_request_text(made.id) == canonical_json(draft())
    assert await store.approval_for_preview(made.preview_id) == made
    preview = await store.get_preview(made.preview_id)
    assert preview is not None and preview.state is PreviewState.USED and preview.tag is None
    # A second request for the same preview (a double click) stores and queues nothing.
    again, text = approval(made.preview_id, "approval-again-0123456789")
    assert not await store.request_approval(again, request_json=text, now=T0)
    assert await store.get_approval(again.id) is None
    [post] = rows(await store.list_notices(), OutboxKind.APPROVAL_REQUEST)
    assert (post.key, post.channel_id, post.job_id) == (f"approval:{made.id}", CHANNEL, None)
    assert Approval.model_validate(post.payload["approval"]) == made
    [entry] = [e for e in await store.list_audit() if e.action == "approval_requested"]
    assert (entry.actor, entry.channel_id, entry.outcome) == (REQUESTER, CHANNEL, "ok")
    assert await store.pending_approvals() == 1
    assert ("approvals", "pending", 1, None) in await store.gauge_counts()


async def test_an_expired_or_someone_elses_preview_is_not_requested(store: SqlStore) -> None:
    await stored_preview(store, "preview-old-0123456789", expires=timedelta(seconds=-1))
    made, text = approval("preview-old-0123456789", "approval-old-0123456789")
    assert not await store.request_approval(made, request_json=text, now=T0)
    await stored_preview(store, "preview-theirs-0123456789")
    theirs, text = approval("preview-theirs-0123456789", "approval-theirs-0123456789")
    assert not await store.request_approval(
        theirs.model_copy(update={"requester": OTHER}), request_json=text, now=T0
    )
    assert await store.pending_approvals() == 0 and await store.list_notices() == []


async def test_approve_records_the_intent_with_the_agreed_maximum_once(store: SqlStore) -> None:
    made = await requested(store)
    now = T0 + timedelta(minutes=5)
    before = await store.approve(
        made.id, approver=APPROVER, tag="tag-approve-1", account_id="acct", request=request_of(made), now=now
    )
    assert before is not None and before.state is ApprovalState.PENDING
    after = await store.get_approval(made.id)
    assert after is not None and (after.state, after.decided_by, after.tag) == (
        ApprovalState.APPROVED,
        APPROVER,
        "tag-approve-1",
    )
    intent = await store.get_create_intent("tag-approve-1")
    assert intent is not None and intent.state is IntentState.OPEN
    assert (intent.requester, intent.channel_id, intent.agreed_max, intent.preview_id) == (
        REQUESTER,
        CHANNEL,
        462,
        made.preview_id,
    )
    assert "approved by @B" in (intent.request.comment or "")
    # A second click (or a second approver) finds it approved: no second intent.
    again = await store.approve(
        made.id, approver=OTHER, tag="tag-approve-2", account_id="acct", request=request_of(made), now=now
    )
    assert again is not None and again.state is ApprovalState.APPROVED and again.decided_by == APPROVER
    assert await store.get_create_intent("tag-approve-2") is None
    [edit] = rows(await store.list_notices(), OutboxKind.APPROVAL_UPDATE)
    assert edit.payload["approval"]["state"] == "approved" and edit.payload["job_id"] is None
    assert [e.actor for e in await store.list_audit() if e.action == "approve"] == [APPROVER]
    assert await store.pending_approvals() == 0


async def test_two_approvers_at_once_make_one_intent(store: SqlStore, store_url: str) -> None:
    made = await requested(store)
    # Two connections' worth of racing: a second store on the same database (a second replica).
    async with open_store(store_url) as other:
        results = await asyncio.gather(
            *(
                target.approve(
                    made.id,
                    approver=who,
                    tag=f"tag-race-{i}",
                    account_id="acct",
                    request=request_of(made),
                    now=T0,
                )
                for i, (target, who) in enumerate(((store, APPROVER), (other, OTHER), (store, OTHER)))
            )
        )
    won = [r for r in results if r is not None and r.state is ApprovalState.PENDING]
    assert len(won) == 1
    intents = [await store.get_create_intent(f"tag-race-{i}") for i in range(3)]
    assert sum(i is not None for i in intents) == 1
    assert len([e for e in await store.list_audit() if e.action == "approve"]) == 1


async def test_an_expired_or_rejected_request_cannot_be_approved(store: SqlStore) -> None:
    late = await requested(store, "late", ttl=timedelta(minutes=1))
    before = await store.approve(
        late.id,
        approver=APPROVER,
        tag="tag-late",
        account_id="acct",
        request=request_of(late),
        now=T0 + timedelta(minutes=2),
    )
    assert (
        before is not None
        and before.state is ApprovalState.PENDING
        and before.is_expired(T0 + timedelta(minutes=2))
    )
    assert await store.get_create_intent("tag-late") is None
    assert (await store.get_approval(late.id)).state is ApprovalState.PENDING  # type: ignore[union-attr]
    no = await requested(store, "no")
    assert (
        await store.reject(no.id, by=APPROVER, note="not a phish <!channel>", now=T0)
    ).state is ApprovalState.PENDING  # type: ignore[union-attr]
    rejected = await store.get_approval(no.id)
    assert rejected is not None and (rejected.state, rejected.note) == (
        ApprovalState.REJECTED,
        "not a phish <!channel>",
    )
    after = await store.approve(
        no.id, approver=OTHER, tag="tag-no", account_id="acct", request=request_of(no), now=T0
    )
    assert after is not None and after.state is ApprovalState.REJECTED
    assert await store.get_create_intent("tag-no") is None
    assert (await store.reject(no.id, by=OTHER, note=None, now=T0)).state is ApprovalState.REJECTED  # type: ignore[union-attr]
    assert [e.detail for e in await store.list_audit() if e.action == "reject"] == [
        f"approval {no.id} requested by {REQUESTER}; reason: not a phish <!channel>"
    ]


async def test_expiry_marks_each_request_once_across_replicas(store: SqlStore, store_url: str) -> None:
    soon = await requested(store, "soon", ttl=timedelta(minutes=1))
    later = await requested(store, "later", ttl=timedelta(hours=1))
    assert await store.next_approval_expiry() == soon.expires_at
    assert await store.expire_approvals(now=T0 + timedelta(seconds=30)) == []
    now = T0 + timedelta(minutes=2)
    async with open_store(store_url) as other:
        first, second = await asyncio.gather(store.expire_approvals(now=now), other.expire_approvals(now=now))
    assert [a.id for a in first + second] == [soon.id]
    assert await store.expire_approvals(now=now) == []
    assert (await store.get_approval(soon.id)).state is ApprovalState.EXPIRED  # type: ignore[union-attr]
    assert (await store.get_approval(later.id)).state is ApprovalState.PENDING  # type: ignore[union-attr]
    [edit] = rows(await store.list_notices(), OutboxKind.APPROVAL_UPDATE)
    assert edit.key == f"approval:{soon.id}" and edit.payload["approval"]["state"] == "expired"
    assert len([e for e in await store.list_audit() if e.action == "approval_expired"]) == 1
    assert await store.next_approval_expiry() == later.expires_at


async def test_the_creates_end_rearms_the_message_with_the_job_or_the_failure(store: SqlStore) -> None:
    made = await requested(store)
    await store.approve(
        made.id, approver=APPROVER, tag="tag-made", account_id="acct", request=request_of(made), now=T0
    )
    [edit] = rows(await store.list_notices(), OutboxKind.APPROVAL_UPDATE)
    await store.outbox_sent(edit.id, now=T0, seq=edit.seq)
    job = BulkJob.model_validate(
        {
            "job_id": JOB,
            "action_type": "MOVE",
            "action_params": {"type": "MOVE", "destination": "RecoverableItemsPurges"},
            "search_params": {"subject": "Invoice <urgent>", "detections_only": False},
            "status": "PENDING",
            "comment": "[sweep:tag-made]",
            "created_at": "2026-11-20T08:59:00Z",
        }
    )
    tracked = await store.finish_create("tag-made", job, now=T0)
    assert tracked.agreed_max == 462  # the approved maximum rides on the job
    assert rows(await store.list_notices(), OutboxKind.APPROVAL_UPDATE) == []  # it belongs to the job now
    [moved] = rows(await store.list_outbox(JOB), OutboxKind.APPROVAL_UPDATE)
    assert moved.id == edit.id and moved.state is OutboxState.PENDING and moved.seq == edit.seq + 1
    assert moved.payload["job_id"] == JOB and moved.channel_id == CHANNEL
    # It waits for the job's card (to link to it): not due before the card is posted.
    due = await store.outbox_due(now=T0 + timedelta(seconds=1))
    assert moved.id not in [d.id for d in due]
    # A create that failed says so on the message instead.
    failed = await requested(store, "failed")
    await store.approve(
        failed.id, approver=APPROVER, tag="tag-failed", account_id="acct", request=request_of(failed), now=T0
    )
    assert await store.fail_create("tag-failed", error="Cloudflare said no (1001)", now=T0)
    [told] = [
        r for r in rows(await store.list_notices(), OutboxKind.APPROVAL_UPDATE) if r.key.endswith(failed.id)
    ]
    assert told.payload["error"] == "Cloudflare said no (1001)"


async def test_the_notifier_posts_the_request_then_edits_that_message_and_links_the_card(
    store: SqlStore,
) -> None:
    """The request is posted once; its edits go to that message (waiting for it, then for the job's card)."""
    slack = RecordingSlackPort()
    clock = [T0]
    notifier = Notifier(store, slack, clock=lambda: clock[0], min_edit_interval=0)
    made = await requested(store)
    await store.approve(
        made.id, approver=APPROVER, tag="tag-notify", account_id="acct", request=request_of(made), now=T0
    )
    # A crash-like stall of the post: the edit cannot go before the message it edits exists.
    slack.fail_next(SlackTransientError("internal_error"))
    await notifier.drain_once()
    assert slack.top_level(CHANNEL) == [] and slack.count("update_message") == 0
    clock[0] += timedelta(minutes=10)  # past any backoff
    await notifier.drain_once()
    clock[0] += timedelta(minutes=10)
    await notifier.drain_once()
    [message] = slack.top_level(CHANNEL)
    assert message.metadata == {"event_type": "sweep_approval", "event_payload": {"approval_id": made.id}}
    shown = json.dumps(message.blocks)
    assert message.edits == 1 and "Approved by <@U0BOB>" in shown and "creating the job" in shown
    # The job is created: the edit waits for the job's card, then links to it.
    job = BulkJob.model_validate(
        {
            "job_id": JOB,
            "action_type": "MOVE",
            "action_params": {"type": "MOVE", "destination": "RecoverableItemsPurges"},
            "search_params": {"subject": "Invoice <urgent>", "detections_only": False},
            "status": "PENDING",
            "comment": "[sweep:tag-notify]",
            "created_at": "2026-11-20T08:59:00Z",
        }
    )
    await store.finish_create("tag-notify", job, now=clock[0])
    clock[0] += timedelta(minutes=1)
    await notifier.drain_once()
    await notifier.drain_once()
    card = next(m for m in slack.top_level(CHANNEL) if (m.metadata or {}).get("event_type") == "sweep_card")
    assert message.edits == 2 and message.metadata["event_payload"] == {"approval_id": made.id}  # type: ignore[index]
    assert f"p{card.ts.replace('.', '')}|job card>" in json.dumps(message.blocks)
    assert slack.count("post_message") == 3  # the request (tried twice) and the card: never the request again
