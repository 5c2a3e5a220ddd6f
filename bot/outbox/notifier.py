"""Drain the store's outbox to Slack: every row is delivered through its kind (`bot.outbox.registry`).

Guarantee. A post (a card, a thread reply, a notice, a DM) is made **exactly once**, provided Slack's
history can be read back; otherwise at least once. How:

1. The store commits a change and the outbox rows that announce it in one transaction, and a row is
   keyed `(job, kind, key)`: the same message is queued once or not at all.
2. A notifier claims the rows it is about to send (`Store.outbox_claim`: `FOR UPDATE SKIP LOCKED`
   and a claim expiry), so with several replicas one row is delivered by one notifier; a claim
   left by a replica that died runs out and the row is recovered as in 3. A job's row that waits
   for its card is not claimable while an older one of the job is undelivered (its card edit
   apart), so its thread replies keep their order whichever notifier posts them.
   Before calling Slack the notifier marks the row `attempting`; it marks it `sent` (with the ts)
   only after Slack accepted the message.
3. A row found `attempting` (the process died, or the call failed ambiguously — a timeout may have
   posted) is not re-posted blindly: the notifier first asks Slack whether a message with the
   kind's recovery metadata (`event_type` + key, e.g. `sweep_card` + job id, `sweep_transition` +
   job id + transition, `sweep_notice` + row key) exists where the kind posts —
   `conversations.replies` in a thread, `conversations.history` in a channel or DM — and records
   its ts if so. If history cannot be read (missing scope, or the message scrolled out of the
   searched pages) it posts again: at-least-once.

Edits (the card update) are idempotent, so they need no check. A re-armable kind has one row per
job, rendered from the store's *current* state at send time, at most one edit per
`min_edit_interval` seconds; a change during an edit re-arms the row, so the final state is always
sent. `message_not_found`, `channel_not_found` and friends mark the card dead (no more edits or
replies for it, recorded in the store) instead of retrying forever. Transient errors are retried
with capped exponential backoff while other rows keep flowing; a 429 pauses the notifier for
Slack's `Retry-After`. A row of a kind nobody registered is failed with that reason.

Scopes: `chat:write` (post, edit, thread replies); `channels:history` and `groups:history` for the
exactly-once check in public and private channels; `im:write` and `im:history` for a DM kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import assert_never

from bot.backoff import capped_exponential
from bot.clock import Clock, utc_now
from bot.logs import bind_log_fields
from bot.models import TrackedJob
from bot.outbox.kinds import KINDS
from bot.outbox.registry import Kind, Registry, Target, UnknownKindError
from bot.slack_port import (
    SlackPermanentError,
    SlackPort,
    SlackRateLimitedError,
    SlackTransientError,
)
from bot.store import OutboxItem, OutboxState, Store

__all__ = ["Notifier"]

log = logging.getLogger("sweep.notifier")


@dataclass
class _Attempt:
    """Whether Slack may have accepted this row (so a retry must check first)."""

    ambiguous: bool


class _Skip(Exception):  # noqa: N818 - control flow, not an error
    """The row cannot be sent (job untracked, no channel, no user): fail it with this reason."""


class _NotYet(Exception):  # noqa: N818 - control flow, not an error
    """The row cannot be sent yet (the message it edits is not posted yet): try again shortly."""


class Notifier:
    """Sends the outbox to Slack through the kinds of `kinds`; `run` loops, `wake` makes it look at once."""

    def __init__(
        self,
        store: Store,
        slack: SlackPort,
        *,
        kinds: Registry = KINDS,
        min_edit_interval: float = 2.5,
        clock: Clock = utc_now,
        batch: int = 100,
        claim: int = 10,
        base_backoff: float = 1.0,
        max_backoff: float = 300.0,
        idle_seconds: float = 5.0,
    ) -> None:
        self._store = store
        self._slack = slack
        self._kinds = kinds
        self._edit_interval = timedelta(seconds=min_edit_interval)
        self._clock = clock
        self._batch = batch
        self._claim = max(1, claim)
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
        """Send every due row once; return how many rows were settled (sent or given up).

        Rows are claimed a few at a time (`claim`) just before they are sent, so another replica's
        notifier never takes them while this one delivers, and a claim never has to outlast a batch.
        """
        async with self._lock:
            now = self._clock()
            if self._paused_until is not None and now < self._paused_until:
                return 0
            self._paused_until = None
            settled = 0
            seen = 0
            while seen < self._batch:
                due = await self._store.outbox_claim(
                    now=self._clock(),
                    limit=min(self._claim, self._batch - seen),
                    card_free=self._kinds.card_free(),
                )
                if not due:
                    break
                seen += len(due)
                done, paused = await self._send_claimed(due)
                settled += done
                if paused:
                    break
            return settled

    async def _send_claimed(self, due: list[OutboxItem]) -> tuple[int, bool]:
        """Deliver claimed rows; return (rows settled, whether Slack's rate limit stopped the batch)."""
        settled = 0
        untouched = [item.id for item in due]
        try:
            for item in due:
                untouched.remove(item.id)
                bind_log_fields(job_id=item.job_id)
                attempt = _Attempt(ambiguous=item.state is OutboxState.ATTEMPTING)
                try:
                    kind = self._kinds.get(item.kind)
                except UnknownKindError as error:
                    log.error("outbox row %d cannot be sent: %s", item.id, error)
                    await self._store.outbox_failed(item.id, now=self._clock(), error=str(error))
                    settled += 1
                    continue
                try:
                    await self._deliver(item, kind, attempt)
                    settled += 1
                except SlackRateLimitedError as error:
                    self._paused_until = self._clock() + timedelta(seconds=error.retry_after)
                    log.warning("Slack rate limit: pausing notifications for %.1f s", error.retry_after)
                    await self._retry(item, kind, attempt, error.code, due_at=self._paused_until)
                    return settled, True
                except SlackTransientError as error:
                    await self._retry(item, kind, attempt, error.code)
                except SlackPermanentError as error:
                    await self._give_up(item, kind, error)
                    settled += 1
                except _Skip as reason:
                    await self._store.outbox_failed(item.id, now=self._clock(), error=str(reason))
                    settled += 1
                except _NotYet as reason:
                    await self._retry(item, kind, attempt, str(reason))
                except Exception as error:  # noqa: BLE001 - one bad row must not stop the others
                    log.exception("unexpected error sending outbox row %d", item.id)
                    await self._retry(item, kind, attempt, f"unexpected: {type(error).__name__}")
            return settled, False
        finally:
            # Rows this notifier did not get to are free for the next drain (here or elsewhere) at once.
            with contextlib.suppress(Exception):
                await self._store.outbox_release(untouched)

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
            due = await self._store.outbox_next_due(card_free=self._kinds.card_free())
        except Exception:  # noqa: BLE001 - fall back to the idle poll
            log.exception("could not read the outbox")
            return self._idle_seconds
        if due is None:
            return self._idle_seconds
        return min(max((due - now).total_seconds(), 0.0), self._idle_seconds)

    # ------------------------------------------------------------------ one row

    async def _deliver(self, item: OutboxItem, kind: Kind, attempt: _Attempt) -> None:
        job: TrackedJob | None = None
        card_seq = 0
        if item.job_id is not None:
            state = await self._store.card_state(item.job_id)
            if state is None:
                raise _Skip("job is not tracked")
            job, card_seq = state
            if kind.target.needs_job and job.channel_id is None:
                raise _Skip("job has no channel")
        elif kind.target.needs_job:
            raise _Skip(f"{kind.name} {item.key} has no job")
        if kind.target.edits:
            await self._edit(item, kind, job)
        else:
            await self._post(item, kind, job, card_seq, attempt)

    async def _where(self, item: OutboxItem, kind: Kind, job: TrackedJob | None) -> tuple[str, str | None]:
        """Return the channel (and thread) a post of this kind goes to."""
        match kind.target:
            case Target.JOB_CHANNEL | Target.CARD | Target.CARD_THREAD:
                assert job is not None and job.channel_id is not None  # noqa: S101 - checked by _deliver
                return job.channel_id, job.card_ts if kind.target is Target.CARD_THREAD else None
            case Target.CHANNEL:
                if item.channel_id is None:
                    raise _Skip(f"{kind.name} {item.key} has no channel")
                return item.channel_id, item.thread_ts
            case Target.USER:
                if item.user_id is None:
                    raise _Skip(f"{kind.name} {item.key} has no user")
                return await self._slack.open_dm(user=item.user_id), item.thread_ts
            case Target.MESSAGE:  # an edit: `_edited` finds its message
                raise _Skip(f"{kind.name} {item.key} edits a message, it posts none")
            case unreachable:
                assert_never(unreachable)

    async def _post(
        self, item: OutboxItem, kind: Kind, job: TrackedJob | None, card_seq: int, attempt: _Attempt
    ) -> None:
        if kind.records_card and job is not None and job.card_ts is not None:
            await self._store.outbox_sent(item.id, now=self._clock(), ts=job.card_ts)
            return
        channel, thread_ts = await self._where(item, kind, job)
        metadata = kind.recovery.metadata(item)
        if attempt.ambiguous:
            ts = await self._find(channel, thread_ts, kind.recovery.event_type, kind.recovery.key(item))
            if ts is not None:
                log.info("%s %s was already posted (ts %s)", kind.name, item.key, ts)
                if kind.records_card and job is not None:
                    # Posted before a crash, maybe from an older state: bring it up to date.
                    card = kind.render(item.payload, job.model_copy(update={"card_ts": ts}), self._clock())
                    await self._slack.update_message(
                        channel=channel, ts=ts, text=card["text"], blocks=card["blocks"], metadata=metadata
                    )
                await self._posted(item, kind, job, channel, ts, card_seq)
                return
        now = self._clock()
        message = kind.render(item.payload, job, now)
        await self._store.outbox_attempting(item.id, now=now)
        attempt.ambiguous = True
        ts = await self._slack.post_message(
            channel=channel,
            text=message["text"],
            blocks=message["blocks"],
            thread_ts=thread_ts,
            metadata=metadata,
        )
        await self._posted(item, kind, job, channel, ts, card_seq)

    async def _posted(
        self, item: OutboxItem, kind: Kind, job: TrackedJob | None, channel: str, ts: str, card_seq: int
    ) -> None:
        now = self._clock()
        if kind.records_card and job is not None:
            await self._store.card_posted(
                item.id, job_id=job.job_id, ts=ts, seq=card_seq, now=now, hold_until=now + self._edit_interval
            )
            log.info("posted card for job %s in %s (ts %s)", job.job_id, channel, ts)
        else:
            await self._store.outbox_sent(item.id, now=now, ts=ts)
            log.info("posted %s %s in %s (ts %s)", kind.name, item.key, channel, ts)

    async def _edited(self, item: OutboxItem, kind: Kind, job: TrackedJob | None) -> tuple[str, str]:
        """Return the channel and ts of the message this row edits."""
        if kind.target is Target.MESSAGE:
            assert kind.edits is not None  # noqa: S101 - the registry checks it
            posted = await self._store.outbox_find(kind=kind.edits, key=item.key)
            if posted is None or posted.state is OutboxState.FAILED:
                raise _Skip(f"the {kind.edits} {item.key} it edits was never posted")
            if posted.slack_ts is None or posted.channel_id is None:
                raise _NotYet(f"the {kind.edits} {item.key} it edits is not posted yet")
            return posted.channel_id, posted.slack_ts
        assert job is not None and job.channel_id is not None  # noqa: S101 - checked by _deliver
        assert job.card_ts is not None  # noqa: S101 - the query holds the row until the card exists
        return job.channel_id, job.card_ts

    async def _edit(self, item: OutboxItem, kind: Kind, job: TrackedJob | None) -> None:
        channel, ts = await self._edited(item, kind, job)
        now = self._clock()
        message = kind.render(item.payload, job, now)
        await self._store.outbox_attempting(item.id, now=now)
        await self._slack.update_message(
            channel=channel,
            ts=ts,
            text=message["text"],
            blocks=message["blocks"],
            metadata=kind.recovery.metadata(item),
        )
        done = self._clock()
        if kind.rearmable:
            # Settled only if no change re-armed the row meanwhile; the next edit waits the interval.
            hold_until = done + self._edit_interval
            await self._store.outbox_sent(item.id, now=done, seq=item.seq, hold_until=hold_until)
        else:
            await self._store.outbox_sent(item.id, now=done)

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
        self, item: OutboxItem, kind: Kind, attempt: _Attempt, error: str, *, due_at: datetime | None = None
    ) -> None:
        now = self._clock()
        if due_at is None:
            delay = capped_exponential(self._base_backoff, item.attempts, cap=self._max_backoff)
            due_at = now + timedelta(seconds=delay)
        ambiguous = attempt.ambiguous and not kind.target.edits
        log.warning(
            "outbox row %d (%s %s) failed: %s; retrying at %s", item.id, item.kind, item.key, error, due_at
        )
        await self._store.outbox_retry(item.id, now=now, due_at=due_at, error=error, ambiguous=ambiguous)

    async def _give_up(self, item: OutboxItem, kind: Kind, error: SlackPermanentError) -> None:
        now = self._clock()
        if item.job_id is not None and (kind.records_card or (error.kills_card and kind.target.needs_job)):
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
