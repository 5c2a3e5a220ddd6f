"""The approvals aggregate: jobs that need a second person, from request to decision or expiry.

Every step is one transaction with its audit entry and the outbox row that tells Slack:

- `request_approval`: the preview is used, the approval stored, its request message queued.
- `approve`: a pending, unexpired approval becomes approved and its create intent is recorded (so
  the job is created exactly once, through the create-intent path); its message is re-armed.
- `reject`, `expire_approvals`: a pending approval is decided; its message is re-armed.

A decision is a conditional update of a locked row (`FOR UPDATE` on PostgreSQL; SQLite has one
writer): two approvers clicking at once, or two replicas expiring at once, decide it once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.cloudflare.models import CreateJobRequest
from bot.models import SWEEP_ACTOR, Approval, ApprovalState, AuditAction, AuditEntry
from bot.store import intents
from bot.store import outbox as rows
from bot.store import previews as preview_rows
from bot.store.approval_rows import (
    announce,
    approval_key,
    fetch,
    from_row,
    message_payload,
    stored_request,
    to_row,
)
from bot.store.audit import append as append_audit
from bot.store.db import Database, epoch, from_epoch, now_iso
from bot.store.models import OutboxKind, PreviewState
from bot.store.schema import approvals, previews

_PENDING = ApprovalState.PENDING.value


class ApprovalStore(Protocol):
    """Store approval requests and their decisions."""

    async def request_approval(self, approval: Approval, *, request_json: str, now: datetime) -> bool:
        """Use the preview, store the approval, its message and audit entry; False if the preview is gone."""

    async def get_approval(self, approval_id: str) -> Approval | None:
        """Return one approval, or None."""

    async def approval_for_preview(self, preview_id: str) -> Approval | None:
        """Return the approval a preview was used for, or None."""

    async def approval_request_text(self, approval_id: str) -> str | None:
        """Return the canonical request exactly as stored (what its hash covers), or None."""

    async def approve(
        self,
        approval_id: str,
        *,
        approver: str,
        tag: str,
        account_id: str,
        request: CreateJobRequest,
        now: datetime,
    ) -> Approval | None:
        """Approve a pending, unexpired approval and record its create intent; return it as it was before."""

    async def reject(self, approval_id: str, *, by: str, note: str | None, now: datetime) -> Approval | None:
        """Reject a pending, unexpired approval; return it as it was before (None: unknown)."""

    async def expire_approvals(self, *, now: datetime, limit: int = 50) -> list[Approval]:
        """Mark pending approvals past their expiry expired (each once); return the ones this call expired."""

    async def next_approval_expiry(self) -> datetime | None:
        """Return when the next pending approval expires, or None if none is pending."""

    async def pending_approvals(self) -> int:
        """Return how many approvals are pending."""


def _decided(
    approval: Approval, *, state: ApprovalState, by: str | None, now: datetime, **extra: object
) -> Approval:
    return approval.model_copy(update={"state": state, "decided_by": by, "decided_at": now, **extra})


async def _decide_pending(
    conn: AsyncConnection, approval_id: str, *, state: ApprovalState, by: str, now: datetime, **extra: object
) -> tuple[Approval | None, bool]:
    """Lock an approval and decide it if it is still pending and unexpired, in the caller's transaction.

    Returns the approval as it was before (or as it is now, when another decision won the race) and
    whether this call decided it.
    """
    before = await fetch(conn, approval_id, lock=True)
    if before is None or before.state is not ApprovalState.PENDING or before.expires_at <= now:
        return before, False
    if not await _decide(
        conn, approval_id, state=state, now=now, decided_by=by, decided_at=now_iso(now), **extra
    ):
        return await fetch(conn, approval_id), False
    return before, True


async def _decide(
    conn: AsyncConnection, approval_id: str, *, state: ApprovalState, now: datetime, **values: object
) -> bool:
    """Move a pending approval to `state` (conditional on it still being pending); True if this did it."""
    result = await conn.execute(
        update(approvals)
        .where(approvals.c.id == approval_id, approvals.c.state == _PENDING)
        .values(state=state.value, updated_at=now_iso(now), **values)
    )
    return bool(result.rowcount == 1)


class SqlApprovals:
    """`ApprovalStore` over SQLAlchemy Core."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def request_approval(self, approval: Approval, *, request_json: str, now: datetime) -> bool:
        """Use the preview and store the approval, queue its request message and audit it, in one transaction.

        The preview must still be previewed, unexpired and the requester's: otherwise nothing changes
        and False is returned (the caller reads why, e.g. a second click found it used).
        """
        async with self._db.begin() as conn:
            preview = await preview_rows.fetch(conn, approval.preview_id, lock=True)
            if (
                preview is None
                or preview.state is not PreviewState.PREVIEWED
                or preview.expires_at <= now
                or preview.requester != approval.requester
            ):
                return False
            used = await conn.execute(
                update(previews)
                .where(previews.c.id == approval.preview_id, previews.c.state == PreviewState.PREVIEWED.value)
                .values(state=PreviewState.USED.value, updated_at=now_iso(now))
            )
            if used.rowcount != 1:
                return False
            await conn.execute(
                approvals.insert().values(to_row(approval, request_json=request_json, now=now))
            )
            row = rows.delivery_row(
                approval_key(approval.id),
                kind=OutboxKind.APPROVAL_REQUEST.value,
                payload=message_payload(approval),
                now=now,
                channel_id=approval.channel_id,
            )
            await rows.queue(conn, [row])
            reasons = ", ".join(reason.code for reason in approval.reasons)
            await append_audit(
                conn,
                AuditEntry(
                    at=now,
                    actor=approval.requester,
                    action=AuditAction.APPROVAL_REQUESTED.value,
                    channel_id=approval.channel_id,
                    outcome="ok",
                    detail=f"approval {approval.id}: {approval.matched} messages; {reasons}",
                ),
            )
            return True

    async def get_approval(self, approval_id: str) -> Approval | None:
        """Return one approval, or None."""
        async with self._db.read() as conn:
            return await fetch(conn, approval_id)

    async def approval_for_preview(self, preview_id: str) -> Approval | None:
        """Return the approval a preview was used for, or None."""
        async with self._db.read() as conn:
            row = (await conn.execute(select(approvals).where(approvals.c.preview_id == preview_id))).first()
        return None if row is None else from_row(row)

    async def approval_request_text(self, approval_id: str) -> str | None:
        """Return the canonical request exactly as stored (what its hash covers), or None."""
        async with self._db.read() as conn:
            return await stored_request(conn, approval_id)

    async def approve(
        self,
        approval_id: str,
        *,
        approver: str,
        tag: str,
        account_id: str,
        request: CreateJobRequest,
        now: datetime,
    ) -> Approval | None:
        """Approve a pending, unexpired approval and record its create intent, in one transaction.

        The intent carries the approval's agreed maximum; the approval's message is re-armed and the
        approval audited with it. Returns the approval as it was before (None: unknown): when that is
        not pending, or it had expired, nothing changed.
        """
        async with self._db.begin() as conn:
            before, decided = await _decide_pending(
                conn, approval_id, state=ApprovalState.APPROVED, by=approver, now=now, tag=tag
            )
            if not decided or before is None:
                return before
            await intents.insert_intent(
                conn,
                tag,
                account_id=account_id,
                requester=before.requester,
                channel_id=before.channel_id,
                request=request,
                now=now,
                preview_id=before.preview_id,
                agreed_max=before.agreed_max,
            )
            after = _decided(before, state=ApprovalState.APPROVED, by=approver, now=now, tag=tag)
            await announce(conn, after, now=now)
            await append_audit(
                conn,
                AuditEntry(
                    at=now,
                    actor=approver,
                    action=AuditAction.APPROVE.value,
                    channel_id=before.channel_id,
                    outcome="ok",
                    detail=f"approval {approval_id} requested by {before.requester}; request tag {tag}",
                ),
            )
            return before

    async def reject(self, approval_id: str, *, by: str, note: str | None, now: datetime) -> Approval | None:
        """Reject a pending, unexpired approval (re-arming its message, audited), in one transaction.

        Returns the approval as it was before (None: unknown); when that was not pending, or it had
        expired, nothing changed.
        """
        async with self._db.begin() as conn:
            before, decided = await _decide_pending(
                conn, approval_id, state=ApprovalState.REJECTED, by=by, now=now, note=note
            )
            if not decided or before is None:
                return before
            after = _decided(before, state=ApprovalState.REJECTED, by=by, now=now, note=note)
            await announce(conn, after, now=now)
            await append_audit(
                conn,
                AuditEntry(
                    at=now,
                    actor=by,
                    action=AuditAction.REJECT.value,
                    channel_id=before.channel_id,
                    outcome="ok",
                    detail=f"approval {approval_id} requested by {before.requester}"
                    + (f"; reason: {note}" if note else ""),
                ),
            )
            return before

    async def expire_approvals(self, *, now: datetime, limit: int = 50) -> list[Approval]:
        """Mark pending approvals past their expiry expired, each exactly once, in one transaction.

        Rows another replica is expiring right now are skipped (`SKIP LOCKED` on PostgreSQL), and the
        update is conditional on the row still being pending, so each is expired, announced and
        audited once whoever runs the sweep.
        """
        due = (
            select(approvals.c.id)
            .where(approvals.c.state == _PENDING, approvals.c.expires_at <= epoch(now))
            .order_by(approvals.c.expires_at, approvals.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        expired: list[Approval] = []
        async with self._db.begin() as conn:
            for approval_id in list((await conn.execute(due)).scalars()):
                before = await fetch(conn, approval_id)
                if before is None or not await _decide(
                    conn, approval_id, state=ApprovalState.EXPIRED, now=now
                ):
                    continue
                after = before.model_copy(update={"state": ApprovalState.EXPIRED})
                await announce(conn, after, now=now)
                await append_audit(
                    conn,
                    AuditEntry(
                        at=now,
                        actor=SWEEP_ACTOR,
                        action=AuditAction.APPROVAL_EXPIRED.value,
                        channel_id=before.channel_id,
                        outcome="ok",
                        detail=f"approval {approval_id} requested by {before.requester}: not decided in time",
                    ),
                )
                expired.append(after)
        return expired

    async def next_approval_expiry(self) -> datetime | None:
        """Return when the next pending approval expires, or None if none is pending."""
        query = select(func.min(approvals.c.expires_at)).where(approvals.c.state == _PENDING)
        async with self._db.read() as conn:
            return from_epoch((await conn.execute(query)).scalar())

    async def pending_approvals(self) -> int:
        """Return how many approvals are pending."""
        query = select(func.count()).select_from(approvals).where(approvals.c.state == _PENDING)
        async with self._db.read() as conn:
            return int((await conn.execute(query)).scalar_one())
