"""Drain the store's outbox to Slack: post cards, coalesce card edits, one thread reply per transition.

Guarantee. A thread reply (and a card) is posted **exactly once**, provided Slack's history can be
read back; otherwise at least once. How:

1. The tracker commits a status change and its outbox row in one transaction, and the outbox is
   keyed `(job, kind, transition)`: a transition is queued once or not at all.
2. Before calling Slack the notifier marks the row `attempting`; it marks it `sent` (with the ts)
   only after Slack accepted the message.
3. A row found `attempting` (the process died, or the call failed ambiguously — a timeout may have
   posted) is not re-posted blindly: the notifier first asks Slack whether a message with that
   row's metadata (`sweep_card` + job id, or `sweep_transition` + job id + transition) exists —
   `conversations.replies` for replies, `conversations.history` for cards — and records its ts if so.
   If history cannot be read (missing scope, or the card scrolled out of the searched pages) it
   posts again: at-least-once.

Card edits are idempotent, so they need no check: each job has one re-armable card-update row,
rendered from the store's *current* state at send time, at most one `chat.update` per card per
`min_edit_interval` seconds; a change during an edit re-arms the row, so the final state is always
sent. `message_not_found`, `channel_not_found` and friends mark the card dead (no more edits or
replies for it, recorded in the store) instead of retrying forever. Transient errors are retried
with capped exponential backoff while other rows keep flowing; a 429 pauses the notifier for
Slack's `Retry-After`.

Scopes: `chat:write` (post, edit, thread replies); `channels:history` and `groups:history` for the
exactly-once check in public and private channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from blocks.job_card import build_job_card, build_transition_reply
from blocks.notice import build_create_not_made
from bot.ids import EventType
from bot.logs import bind_log_fields
from bot.models import TrackedJob
from bot.slack_port import (
    SlackPermanentError,
    SlackPort,
    SlackRateLimitedError,
    SlackTransientError,
    metadata_key,
)
from bot.store import OutboxItem, OutboxKind, OutboxState, Store

__all__ = ["Notifier", "card_metadata", "transition_metadata"]

log = logging.getLogger("sweep.notifier")

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


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


#: Renderers of the notices (outbox rows with no job), by `payload["notice"]`.
NOTICE_RENDERERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "create_not_made": build_create_not_made,
}


def _reply_job(job: TrackedJob, payload: dict[str, Any]) -> TrackedJob:
    """Return the job as it was at the transition (the store may already hold a later state)."""
    if payload.get("gone"):
        return job
    state = payload.get("state") or {"status": payload.get("status", job.status)}
    return TrackedJob.model_validate({**job.model_dump(), **state, "gone": False})


@dataclass
class _Attempt:
    """Whether Slack may have accepted this row (so a retry must check first)."""

    ambiguous: bool


class _Skip(Exception):  # noqa: N818 - control flow, not an error
    """The row cannot be sent (job untracked, no channel): fail it with this reason."""


class Notifier:
    """Sends the outbox to Slack; `run` loops, `wake` makes it look at once."""

    def __init__(
        self,
        store: Store,
        slack: SlackPort,
        *,
        min_edit_interval: float = 2.5,
        clock: Clock = _utc_now,
        batch: int = 100,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
        idle_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._slack = slack
        self._edit_interval = timedelta(seconds=min_edit_interval)
        self._clock = clock
        self._batch = batch
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._idle_seconds = idle_seconds
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._paused_until: datetime | None = None

    def wake(self) -> None:
        """Look at the outbox now (a card was queued), not at the next idle timeout."""
        self._wake.set()

    @property
    def paused_until(self) -> datetime | None:
        """Return when a Slack rate limit ends, if one is in force."""
        return self._paused_until

    async def drain_once(self) -> int:
        """Send every due row once; return how many rows were settled (sent or given up)."""
        async with self._lock:
            now = self._clock()
            if self._paused_until is not None and now < self._paused_until:
                return 0
            self._paused_until = None
            settled = 0
            for item in await self._store.outbox_due(now=now, limit=self._batch):
                bind_log_fields(job_id=item.job_id)
                attempt = _Attempt(ambiguous=item.state is OutboxState.ATTEMPTING)
                try:
                    await self._deliver(item, attempt)
                    settled += 1
                except SlackRateLimitedError as error:
                    self._paused_until = self._clock() + timedelta(seconds=error.retry_after)
                    log.warning("Slack rate limit: pausing notifications for %.1f s", error.retry_after)
                    await self._retry(item, attempt, error.code, due_at=self._paused_until)
                    break
                except SlackTransientError as error:
                    await self._retry(item, attempt, error.code)
                except SlackPermanentError as error:
                    await self._give_up(item, error)
                    settled += 1
                except _Skip as reason:
                    await self._store.outbox_failed(item.id, now=self._clock(), error=str(reason))
                    settled += 1
                except Exception as error:  # noqa: BLE001 - one bad row must not stop the others
                    log.exception("unexpected error sending outbox row %d", item.id)
                    await self._retry(item, attempt, f"unexpected: {type(error).__name__}")
            return settled

    async def run(self, stop: asyncio.Event) -> None:
        """Drain until `stop` is set, sleeping until the next row is due or `wake` is called."""
        while not stop.is_set():
            settled = 0
            try:
                settled = await self.drain_once()
            except Exception:  # noqa: BLE001 - the loop must survive a bad cycle (e.g. a locked database)
                log.exception("notifier cycle failed")
            if settled:
                continue
            timeout = await self._idle_timeout()
            await _wait_any(self._wake, stop, timeout=timeout)
            self._wake.clear()

    async def _idle_timeout(self) -> float:
        now = self._clock()
        if self._paused_until is not None:
            return max((self._paused_until - now).total_seconds(), 0.0)
        try:
            due = await self._store.outbox_next_due()
        except Exception:  # noqa: BLE001 - fall back to the idle poll
            log.exception("could not read the outbox")
            return self._idle_seconds
        if due is None:
            return self._idle_seconds
        return min(max((due - now).total_seconds(), 0.0), self._idle_seconds)

    # ------------------------------------------------------------------ one row

    async def _deliver(self, item: OutboxItem, attempt: _Attempt) -> None:
        if item.job_id is None:
            await self._post_notice(item, attempt)
            return
        state = await self._store.card_state(item.job_id)
        if state is None:
            raise _Skip("job is not tracked")
        job, seq = state
        if job.channel_id is None:
            raise _Skip("job has no channel")
        if item.kind is OutboxKind.CARD_POST:
            await self._post_card(item, job, seq, attempt)
        elif item.kind is OutboxKind.CARD_UPDATE:
            await self._update_card(item, job, seq)
        else:
            await self._post_reply(item, job, attempt)

    async def _post_card(self, item: OutboxItem, job: TrackedJob, seq: int, attempt: _Attempt) -> None:
        channel = job.channel_id
        assert channel is not None  # noqa: S101 - checked by _deliver
        now = self._clock()
        if job.card_ts is not None:
            await self._store.outbox_sent(item.id, now=now, ts=job.card_ts)
            return
        if attempt.ambiguous:
            ts = await self._find(channel, None, EventType.CARD.value, job.job_id)
            if ts is not None:
                # Posted before a crash, maybe from an older state: record it and bring it up to date.
                card = build_job_card(job.model_copy(update={"card_ts": ts}), now=now)
                await self._slack.update_message(
                    channel=channel,
                    ts=ts,
                    text=card["text"],
                    blocks=card["blocks"],
                    metadata=card_metadata(job.job_id),
                )
                await self._card_recorded(item, job, ts, seq)
                return
        card = build_job_card(job, now=now)
        await self._store.outbox_attempting(item.id, now=now)
        attempt.ambiguous = True
        ts = await self._slack.post_message(
            channel=channel, text=card["text"], blocks=card["blocks"], metadata=card_metadata(job.job_id)
        )
        await self._card_recorded(item, job, ts, seq)

    async def _card_recorded(self, item: OutboxItem, job: TrackedJob, ts: str, seq: int) -> None:
        now = self._clock()
        await self._store.card_posted(
            item.id, job_id=job.job_id, ts=ts, seq=seq, now=now, hold_until=now + self._edit_interval
        )
        log.info("posted card for job %s in %s (ts %s)", job.job_id, job.channel_id, ts)

    async def _update_card(self, item: OutboxItem, job: TrackedJob, seq: int) -> None:
        assert job.channel_id is not None and job.card_ts is not None  # noqa: S101 - the query ensures it
        now = self._clock()
        card = build_job_card(job, now=now)
        await self._store.outbox_attempting(item.id, now=now)
        await self._slack.update_message(
            channel=job.channel_id,
            ts=job.card_ts,
            text=card["text"],
            blocks=card["blocks"],
            metadata=card_metadata(job.job_id),
        )
        done = self._clock()
        await self._store.outbox_sent(item.id, now=done, seq=seq, hold_until=done + self._edit_interval)

    async def _post_reply(self, item: OutboxItem, job: TrackedJob, attempt: _Attempt) -> None:
        assert job.channel_id is not None and job.card_ts is not None  # noqa: S101 - the query ensures it
        metadata = transition_metadata(job.job_id, item.key)
        if attempt.ambiguous:
            key = metadata_key(metadata["event_payload"])
            ts = await self._find(job.channel_id, job.card_ts, EventType.TRANSITION.value, key)
            if ts is not None:
                log.info("reply %s of job %s was already posted (ts %s)", item.key, job.job_id, ts)
                await self._store.outbox_sent(item.id, now=self._clock(), ts=ts)
                return
        now = self._clock()
        reply = build_transition_reply(
            _reply_job(job, item.payload), previous_status=item.payload.get("previous"), now=now
        )
        await self._store.outbox_attempting(item.id, now=now)
        attempt.ambiguous = True
        ts = await self._slack.post_message(
            channel=job.channel_id,
            text=reply["text"],
            blocks=reply["blocks"],
            thread_ts=job.card_ts,
            metadata=metadata,
        )
        await self._store.outbox_sent(item.id, now=self._clock(), ts=ts)

    async def _post_notice(self, item: OutboxItem, attempt: _Attempt) -> None:
        """Post a notice that belongs to no job, exactly once (recovered by its metadata after a crash)."""
        channel = item.channel_id
        render = NOTICE_RENDERERS.get(str(item.payload.get("notice")))
        if channel is None or render is None:
            raise _Skip(f"notice {item.key} has no channel or an unknown kind")
        metadata = notice_metadata(item.key)
        if attempt.ambiguous:
            ts = await self._find(channel, None, EventType.NOTICE.value, item.key)
            if ts is not None:
                log.info("notice %s was already posted (ts %s)", item.key, ts)
                await self._store.outbox_sent(item.id, now=self._clock(), ts=ts)
                return
        notice = render(item.payload)
        await self._store.outbox_attempting(item.id, now=self._clock())
        attempt.ambiguous = True
        ts = await self._slack.post_message(
            channel=channel, text=notice["text"], blocks=notice["blocks"], metadata=metadata
        )
        await self._store.outbox_sent(item.id, now=self._clock(), ts=ts)
        log.info("posted notice %s in %s (ts %s)", item.key, channel, ts)

    async def _find(self, channel: str, thread_ts: str | None, event_type: str, key: str) -> str | None:
        """Ask Slack whether the message exists; None when it does not or history is unreadable."""
        try:
            return await self._slack.find_message_with_metadata(
                channel=channel, thread_ts=thread_ts, event_type=event_type, key=key
            )
        except SlackPermanentError as error:
            if error.kills_card:
                raise
            # e.g. missing_scope (channels:history / groups:history): fall back to at-least-once.
            log.warning("cannot check Slack history (%s): posting again, a duplicate is possible", error.code)
            return None

    async def _retry(
        self, item: OutboxItem, attempt: _Attempt, error: str, *, due_at: datetime | None = None
    ) -> None:
        now = self._clock()
        if due_at is None:
            delay = min(self._base_backoff * 2.0 ** max(item.attempts, 0), self._max_backoff)
            due_at = now + timedelta(seconds=delay)
        ambiguous = attempt.ambiguous and item.kind is not OutboxKind.CARD_UPDATE
        log.warning(
            "outbox row %d (%s %s) failed: %s; retrying at %s", item.id, item.kind, item.key, error, due_at
        )
        await self._store.outbox_retry(item.id, now=now, due_at=due_at, error=error, ambiguous=ambiguous)

    async def _give_up(self, item: OutboxItem, error: SlackPermanentError) -> None:
        now = self._clock()
        if item.job_id is None:
            log.error("notice %s rejected by Slack: %s", item.key, error.code)
            await self._store.outbox_failed(item.id, now=now, error=f"slack: {error.code}")
        elif error.kills_card or item.kind is OutboxKind.CARD_POST:
            # Without its card a job has no thread to reply in: stop notifying about it.
            log.warning("card of job %s is gone (%s): no more updates", item.job_id, error.code)
            await self._store.mark_card_dead(item.job_id, error=f"slack: {error.code}", now=now)
        else:
            log.error("outbox row %d (%s %s) rejected by Slack: %s", item.id, item.kind, item.key, error.code)
            await self._store.outbox_failed(item.id, now=now, error=f"slack: {error.code}")


async def _wait_any(*events: asyncio.Event, timeout: float) -> None:
    """Return when any event is set or after `timeout` seconds."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, return_exceptions=True)
