"""Approval rows and the message that announces them, inside a caller's transaction.

Shared by the approvals aggregate (`bot/store/approvals.py`) and the create intents
(`bot/store/intents.py`): when an approved job is created or its create fails, the approval's
message is re-armed in the same transaction, so it says what became of the approval exactly once.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.draft import JobDraft
from bot.models import Approval, ApprovalReason, ApprovalState, MessageSummary
from bot.store import outbox as rows
from bot.store.db import epoch, iso, now_iso, parse
from bot.store.models import OutboxKind
from bot.store.schema import approvals


def approval_key(approval_id: str) -> str:
    """Return the outbox key of an approval's message (the request and its edits share it)."""
    return f"approval:{approval_id}"


def from_row(row: Any) -> Approval:
    """Return the approval of a stored row."""
    return Approval(
        id=row.id,
        preview_id=row.preview_id,
        requester=row.requester,
        channel_id=row.channel_id,
        request=JobDraft.model_validate_json(row.request),
        request_hash=row.request_hash,
        justification=row.justification,
        matched=row.matched,
        capped=bool(row.capped),
        samples=[MessageSummary.model_validate(s) for s in json.loads(row.samples or "[]")],
        reasons=[ApprovalReason.model_validate(r) for r in json.loads(row.reasons or "[]")],
        agreed_max=row.agreed_max,
        state=ApprovalState(row.state),
        decided_by=row.decided_by,
        decided_at=parse(row.decided_at),
        note=row.note,
        tag=row.tag,
        expires_at=datetime.fromtimestamp(row.expires_at, UTC),
        created_at=datetime.fromisoformat(row.created_at),
    )


def to_row(approval: Approval, *, request_json: str, now: datetime) -> dict[str, Any]:
    """Return the stored columns of a new approval (`request_json`: the canonical text that was hashed)."""
    return {
        "id": approval.id,
        "preview_id": approval.preview_id,
        "requester": approval.requester,
        "channel_id": approval.channel_id,
        "request": request_json,
        "request_hash": approval.request_hash,
        "justification": approval.justification,
        "matched": approval.matched,
        "capped": int(approval.capped),
        "samples": json.dumps([s.model_dump(mode="json", by_alias=True) for s in approval.samples]),
        "reasons": json.dumps([r.model_dump(mode="json") for r in approval.reasons]),
        "agreed_max": approval.agreed_max,
        "state": approval.state.value,
        "decided_by": approval.decided_by,
        "decided_at": iso(approval.decided_at),
        "note": approval.note,
        "tag": approval.tag,
        "expires_at": epoch(approval.expires_at),
        "created_at": now_iso(approval.created_at),
        "updated_at": now_iso(now),
    }


async def fetch(conn: AsyncConnection, approval_id: str, *, lock: bool = False) -> Approval | None:
    """Return one approval (`lock`: hold its row until the transaction ends, on backends that can)."""
    query = select(approvals).where(approvals.c.id == approval_id)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    return None if row is None else from_row(row)


async def stored_request(conn: AsyncConnection, approval_id: str) -> str | None:
    """Return the canonical request text exactly as stored (what its hash was computed over)."""
    query = select(approvals.c.request).where(approvals.c.id == approval_id)
    return (await conn.execute(query)).scalar()


def message_payload(
    approval: Approval, *, job_id: str | None = None, error: str | None = None
) -> dict[str, Any]:
    """Return the outbox payload of an approval's message: the approval as it is now, and its job's fate."""
    return {
        "approval": approval.model_dump(mode="json", by_alias=True),
        "job_id": job_id,
        "error": error,
    }


async def announce(
    conn: AsyncConnection,
    approval: Approval,
    *,
    now: datetime,
    job_id: str | None = None,
    error: str | None = None,
) -> None:
    """Re-arm the edit of the approval's message with its current state (coalesced like card edits).

    With `job_id` the edit belongs to that job and waits for its card, so it can link to it.
    """
    await rows.rearm_delivery(
        conn,
        approval_key(approval.id),
        kind=OutboxKind.APPROVAL_UPDATE.value,
        payload=message_payload(approval, job_id=job_id, error=error),
        now=now,
        channel_id=approval.channel_id,
        job_id=job_id,
    )


async def create_resolved(
    conn: AsyncConnection, tag: str, *, now: datetime, job_id: str | None = None, error: str | None = None
) -> None:
    """Tell an approval's message what became of its create (the job, or why none was made), if any."""
    row = (await conn.execute(select(approvals).where(approvals.c.tag == tag))).first()
    if row is not None:
        await announce(conn, from_row(row), now=now, job_id=job_id, error=error)
