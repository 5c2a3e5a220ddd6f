"""The previews aggregate: use-once server-side previews, and Slack requests already seen."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.cloudflare.models import CreateJobRequest
from bot.store import intents
from bot.store.db import Database, epoch, insert, now_iso
from bot.store.models import PreviewRecord, PreviewState
from bot.store.schema import previews, seen_requests


class PreviewStore(Protocol):
    """Store previews (used once) and remember Slack requests."""

    async def save_preview(
        self,
        preview_id: str,
        *,
        requester: str,
        channel_id: str,
        state: PreviewState,
        expires_at: datetime,
        now: datetime,
        draft_json: str | None = None,
        request_hash: str | None = None,
        matched: int | None = None,
        capped: bool = False,
        samples_json: str | None = None,
    ) -> bool:
        """Insert a preview, or update one that is not used yet (same requester); False if it is used."""

    async def get_preview(self, preview_id: str) -> PreviewRecord | None:
        """Return a stored preview, or None."""

    async def consume_preview(
        self,
        preview_id: str,
        *,
        tag: str,
        account_id: str,
        request: CreateJobRequest,
        now: datetime,
        agreed_max: int | None = None,
    ) -> PreviewRecord | None:
        """Mark a previewed preview used and record its create intent (with its agreed maximum)."""

    async def claim_request(self, key: str, *, now: datetime, keep: timedelta = ...) -> bool:
        """Remember a Slack request by key; False if it was seen before."""


def from_row(row: Any) -> PreviewRecord:
    """Return the preview of a stored row."""
    return PreviewRecord(
        id=row.id,
        requester=row.requester,
        channel_id=row.channel_id,
        draft_json=row.draft,
        request_hash=row.request_hash,
        matched=row.matched,
        capped=bool(row.capped),
        state=PreviewState(row.state),
        tag=row.tag,
        expires_at=datetime.fromtimestamp(row.expires_at, UTC),
        created_at=datetime.fromisoformat(row.created_at),
        samples_json=row.samples,
    )


async def fetch(conn: AsyncConnection, preview_id: str, *, lock: bool = False) -> PreviewRecord | None:
    """Return one preview (`lock`: hold its row until the transaction ends, on backends that can)."""
    query = select(previews).where(previews.c.id == preview_id)
    row = (await conn.execute(query.with_for_update() if lock else query)).first()
    return None if row is None else from_row(row)


class SqlPreviews:
    """`PreviewStore` over SQLAlchemy Core."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def save_preview(
        self,
        preview_id: str,
        *,
        requester: str,
        channel_id: str,
        state: PreviewState,
        expires_at: datetime,
        now: datetime,
        draft_json: str | None = None,
        request_hash: str | None = None,
        matched: int | None = None,
        capped: bool = False,
        samples_json: str | None = None,
    ) -> bool:
        """Insert a preview, or update one that is not used yet (same requester); False if it is used."""
        async with self._db.begin() as conn:
            statement = insert(conn, previews).values(
                id=preview_id,
                requester=requester,
                channel_id=channel_id,
                draft=draft_json,
                request_hash=request_hash,
                matched=matched,
                capped=int(capped),
                samples=samples_json,
                state=state.value,
                expires_at=epoch(expires_at),
                created_at=now_iso(now),
                updated_at=now_iso(now),
            )
            excluded = statement.excluded
            statement = statement.on_conflict_do_update(
                index_elements=[previews.c.id],
                set_={
                    name: excluded[name]
                    for name in (
                        "draft",
                        "request_hash",
                        "matched",
                        "capped",
                        "samples",
                        "state",
                        "expires_at",
                        "updated_at",
                    )
                },
                where=(previews.c.state != PreviewState.USED.value)
                & (previews.c.requester == excluded.requester),
            )
            result = await conn.execute(statement)
            return bool(result.rowcount == 1)

    async def get_preview(self, preview_id: str) -> PreviewRecord | None:
        """Return a stored preview, or None."""
        async with self._db.read() as conn:
            return await fetch(conn, preview_id)

    async def consume_preview(
        self,
        preview_id: str,
        *,
        tag: str,
        account_id: str,
        request: CreateJobRequest,
        now: datetime,
        agreed_max: int | None = None,
    ) -> PreviewRecord | None:
        """Mark a previewed, unexpired preview used and record its create intent, in one transaction.

        `agreed_max` (the previewed count plus the margin) is recorded with the intent and carried
        to the tracked job when the create is finished.

        Returns the preview as it was before (None: it does not exist). When it was not in the
        `previewed` state or had expired, nothing changes: the caller reads why from what it gets.
        """
        async with self._db.begin() as conn:
            before = await fetch(conn, preview_id, lock=True)
            if before is None:
                return None
            if before.state is not PreviewState.PREVIEWED or before.expires_at <= now:
                return before
            await conn.execute(
                update(previews)
                .where(previews.c.id == preview_id, previews.c.state == PreviewState.PREVIEWED.value)
                .values(state=PreviewState.USED.value, tag=tag, updated_at=now_iso(now))
            )
            await intents.insert_intent(
                conn,
                tag,
                account_id=account_id,
                requester=before.requester,
                channel_id=before.channel_id,
                request=request,
                now=now,
                preview_id=preview_id,
                agreed_max=agreed_max,
            )
            return before

    async def claim_request(self, key: str, *, now: datetime, keep: timedelta = timedelta(hours=1)) -> bool:
        """Remember a Slack request (by its trigger id); False if it was seen before (a replay or retry).

        Entries older than `keep` are forgotten: Slack refuses a request whose timestamp is more than
        five minutes old, so a replay after that fails the signature check instead.
        """
        async with self._db.begin() as conn:
            statement = insert(conn, seen_requests).values(key=key, at=epoch(now)).on_conflict_do_nothing()
            first = (await conn.execute(statement)).rowcount == 1
            if first and secrets.randbelow(64) == 0:  # prune now and then, not on every request
                await conn.execute(delete(seen_requests).where(seen_requests.c.at < epoch(now - keep)))
            return bool(first)
