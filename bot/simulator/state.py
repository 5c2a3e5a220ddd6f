"""In-memory state of the simulator: mailboxes, bulk jobs computed lazily from elapsed time, stats.

A job's life over `job_seconds` (T) from its creation:

- PENDING for the first 10 % of T;
- DISCOVERING until 25 %: its search runs against the account's mailbox (default window: the 30 days
  before discovery began) and `total_messages_discovered` grows; phish submissions are found but
  skipped (`messages_skipped`), as the API does;
- PROCESSING until T: actionable messages are processed in discovery order, at an even pace;
- then terminal.

Nothing runs in the background: every read computes the job's state from the clock, so 10,000 jobs
cost nothing while nobody looks.

Terminal rules:
- **SKIPPED**: the search found no actionable message (nothing matched, or only phish submissions);
  the job ends SKIPPED at the end of discovery (25 % of T).
- **FAILED**: every actionable message failed. A message fails when its recipient mailbox is gone
  (`former.employee@acme-corp.example`, about 1 % of the mailbox: search `recipient=former.employee` to
  get a FAILED job), deterministically for about 3 % of the others, and always when the job's comment
  contains `#sim-fail`.
- **COMPLETED** otherwise (some failures allowed: `messages_failed` counts them).
- **CANCELLED**: cancelled through the API while active; pending messages become cancelled, processed
  ones keep their outcome. Cancelling a terminal job is a 409 (code 1409).

The counters always satisfy total_messages_discovered = messages_pending + messages_successful +
messages_failed + messages_skipped + messages_cancelled. One message record is kept per discovered
message (for the recipient in `client_recipients`); the mailbox itself is not changed by jobs.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from bot.cloudflare.models import ActionType, JobStatus, is_terminal
from bot.simulator.mailbox import (
    DEPARTED_MAILBOX,
    WINDOW,
    Discovery,
    Mailbox,
    Message,
    SearchFilter,
    format_ts_ms,
    generate_mailbox,
)
from bot.simulator.validation import SimError, page_of

DEFAULT_ACCOUNT_ID = "0123456789abcdef0123456789abcdef"
FAIL_TRIGGER = "#sim-fail"
PENDING_END = 0.10
DISCOVERY_END = 0.25
FAILURE_PERCENT = 3
# Where a job seeded or forced into a status is put on its timeline (fraction of T).
_PHASE_POINT = {JobStatus.PENDING: 0.0, JobStatus.DISCOVERING: 0.175, JobStatus.PROCESSING: 0.625}
# Searches used by seeded jobs (a few, so discoveries are shared through the mailbox cache).
_SEED_SEARCHES: list[dict[str, Any]] = [
    {"detections_only": True, "final_disposition": "MALICIOUS"},
    {"detections_only": True, "final_disposition": "SPAM"},
    {"detections_only": False, "subject": "invoice"},
    {"detections_only": True, "sender": "paypa1-secure.net"},
    {"detections_only": True, "final_disposition": "BULK", "subject": "newsletter"},
]


@dataclass(slots=True)
class Final:
    """A terminal state imposed on a job (cancel, or forced through the control API)."""

    status: str
    message: str | None
    at: float
    elapsed: float
    pending_to: str


@dataclass(slots=True)
class Counts:
    """A job's counters at one moment."""

    discovered: int = 0
    pending: int = 0
    successful: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0


@dataclass(slots=True)
class JobView:
    """What a job looks like at one moment."""

    status: str
    counts: Counts
    started_at: float | None
    completed_at: float | None
    status_message: str | None
    discovered: int  # how many found messages are visible (a prefix of the discovery)
    processed: int  # how many actionable messages have an outcome
    pending_to: str  # the status of a not-yet-processed message record


@dataclass(slots=True, eq=False)
class Job:
    """One bulk job; its progress is a function of the clock."""

    job_id: str
    account_id: str
    action: str
    destination: str | None
    comment: str | None
    search: SearchFilter
    search_echo: dict[str, Any]
    start_set: bool
    end_set: bool
    created_at: float
    origin: float
    held_elapsed: float | None = None
    final: Final | None = None
    seeded: bool = False
    # Counters to report instead of the real ones (any JSON value), set through the control API.
    reported_counts: dict[str, Any] | None = None
    _discovery: Discovery | None = None
    _fail_prefix: list[int] | None = None

    @property
    def force_fail(self) -> bool:
        """Return True when the comment asks every message to fail."""
        return self.comment is not None and FAIL_TRIGGER in self.comment


@dataclass
class Stats:
    """Request counts per method and route template, for benchmarks."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    total: int = 0
    jobs_created: int = 0
    jobs_seeded: int = 0

    def record(self, route: str, status: int) -> None:
        """Count one API request."""
        self.requests[route] += 1
        self.statuses[str(status)] += 1
        self.total += 1

    def reset(self) -> None:
        """Zero every counter."""
        self.requests.clear()
        self.statuses.clear()
        self.total = self.jobs_created = self.jobs_seeded = 0

    def as_dict(self, jobs: int) -> dict[str, Any]:
        """Return the JSON form served by GET /__sim/stats."""
        return {
            "total": self.total,
            "requests": dict(sorted(self.requests.items())),
            "statuses": dict(sorted(self.statuses.items())),
            "jobs_created": self.jobs_created,
            "jobs_seeded": self.jobs_seeded,
            "jobs": jobs,
        }


class SimulatorState:
    """Accounts, their mailboxes and jobs; every method takes the current time from `clock`."""

    def __init__(
        self,
        *,
        job_seconds: float = 30.0,
        seed: int = 7,
        mailbox_size: int = 3000,
        default_account_id: str = DEFAULT_ACCOUNT_ID,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.job_seconds = job_seconds
        self.seed = seed
        self.mailbox_size = mailbox_size
        self.default_account_id = default_account_id
        self.clock = clock
        self.started = clock()
        self.stats = Stats()
        self._mailboxes: dict[str, Mailbox] = {}
        self._jobs: dict[str, dict[str, Job]] = {}
        self._index: dict[str, Job] = {}

    # ------------------------------------------------------------------ mailbox

    def mailbox(self, account_id: str) -> Mailbox:
        """Return the account's mailbox, generating it on first use."""
        box = self._mailboxes.get(account_id)
        if box is None:
            box = generate_mailbox(
                seed=self.seed, size=self.mailbox_size, now=self.started, account_id=account_id
            )
            self._mailboxes[account_id] = box
        return box

    def add_matching_mail(self, job: Job, count: int) -> int:
        """Deliver `count` new messages that the job's search matches, into its account's mailbox.

        For blast-radius tests: a job still PENDING or DISCOVERING then discovers more than its
        preview counted. The copies are of messages the job already matches (new ids, the same
        sender, subject and disposition), received when the originals were (so inside its search
        window). Every job of the account that has not finished discovering searches again;
        finished discoveries are kept. Returns how many messages were added (0 when the search
        matches nothing to copy).
        """
        found = self.discovery(job).found
        box = self.mailbox(job.account_id)
        if not found or count <= 0:
            return 0
        copies = []
        for n in range(count):
            original = box.messages[found[n % len(found)]]
            copy = replace(
                original,
                id=f"{original.postfix_id}x{n:06d}-{original.id.rsplit('-', 1)[-1]}",
                postfix_id=f"{original.postfix_id}x{n:06d}",
                details={},
            )
            copy.finish()
            copies.append(copy)
        return self.add_mail(job.account_id, copies)

    def add_mail(self, account_id: str, messages: Iterable[Message]) -> int:
        """Deliver `messages` into the account's mailbox (e.g. a `mailbox.campaign`); return how many.

        Searches see them at once; every job of the account that has not finished discovering
        searches again, finished discoveries are kept.
        """
        box = self.mailbox(account_id)
        added = list(messages)
        if not added:
            return 0
        # A new Mailbox object: generated mailboxes are shared by simulators in this process.
        self._mailboxes[account_id] = Mailbox([*box.messages, *added])
        now = self.clock()
        for other in self._jobs.get(account_id, {}).values():
            if other.final is None and self.status_of(other, now) in (
                JobStatus.PENDING,
                JobStatus.DISCOVERING,
            ):
                other._discovery = None
                other._fail_prefix = None
        return len(added)

    # ------------------------------------------------------------------ jobs

    def add_job(
        self,
        account_id: str,
        *,
        action: str,
        destination: str | None,
        comment: str | None,
        search: SearchFilter,
        search_echo: dict[str, Any],
        start_set: bool,
        end_set: bool,
        seeded: bool = False,
    ) -> Job:
        """Create a PENDING job."""
        now = self.clock()
        job = Job(
            job_id=str(uuid.uuid4()),
            account_id=account_id,
            action=action,
            destination=destination,
            comment=comment,
            search=search,
            search_echo=search_echo,
            start_set=start_set,
            end_set=end_set,
            created_at=now,
            origin=now,
            seeded=seeded,
        )
        self._jobs.setdefault(account_id, {})[job.job_id] = job
        self._index[job.job_id] = job
        if seeded:
            self.stats.jobs_seeded += 1
        else:
            self.stats.jobs_created += 1
        return job

    def job_count(self) -> int:
        """Return how many jobs exist in all accounts."""
        return len(self._index)

    def get(self, account_id: str, job_id: str) -> Job:
        """Return a job of the account or raise 404."""
        job = self._jobs.get(account_id, {}).get(job_id)
        if job is None:
            raise SimError(404, 1404, f"bulk job not found: {job_id}")
        return job

    def find(self, job_id: str) -> Job:
        """Return a job of any account or raise 404 (control API)."""
        job = self._index.get(job_id)
        if job is None:
            raise SimError(404, 1404, f"bulk job not found: {job_id}")
        return job

    def jobs_newest_first(self, account_id: str) -> Iterator[Job]:
        """Iterate the account's jobs, newest first."""
        return reversed(list(self._jobs.get(account_id, {}).values()))

    def list_jobs(
        self, account_id: str, *, page: int, per_page: int, status: str | None, action_type: str | None
    ) -> list[tuple[Job, JobView]]:
        """Return one page of jobs (newest first) with their current views."""
        now = self.clock()
        jobs = self._jobs.get(account_id)
        if not jobs:
            return []
        selected: Iterable[Job] = reversed(jobs.values())
        if action_type is not None:
            selected = (j for j in selected if j.action == action_type)
        if status is not None:
            selected = (j for j in selected if self.status_of(j, now) == status)
        return [(j, self.view(j, now)) for j in page_of(selected, page, per_page)]

    def cancel(self, job: Job) -> JobView:
        """Cancel an active job (409 when it is already terminal)."""
        now = self.clock()
        view = self.view(job, now)
        if is_terminal(view.status):
            raise SimError(
                409, 1409, f"bulk job {job.job_id} is already {view.status} and cannot be cancelled"
            )
        job.final = Final(
            JobStatus.CANCELLED, "Cancelled via the API", now, self._elapsed(job, now), "CANCELLED"
        )
        job.held_elapsed = None
        return self.view(job, now)

    def delete(self, job: Job) -> None:
        """Delete a terminal job (409 otherwise)."""
        view = self.view(job, self.clock())
        if not is_terminal(view.status):
            raise SimError(
                409,
                1409,
                f"bulk job {job.job_id} is {view.status}: only COMPLETED, CANCELLED, FAILED or SKIPPED "
                "jobs can be deleted; cancel it first",
            )
        del self._jobs[job.account_id][job.job_id]
        del self._index[job.job_id]

    # ------------------------------------------------------------------ control

    def seed_jobs(
        self, count: int, *, status: str, hold: bool, account_id: str | None = None, action: str | None = None
    ) -> list[Job]:
        """Create `count` jobs directly in `status` (held there when `hold`)."""
        account = account_id or self.default_account_id
        created = []
        for n in range(count):
            params = dict(_SEED_SEARCHES[n % len(_SEED_SEARCHES)])
            chosen = action or (ActionType.MOVE if n % 3 else ActionType.RELEASE)
            job = self.add_job(
                account,
                action=chosen,
                destination="JunkEmail" if chosen == ActionType.MOVE else None,
                comment=f"seeded job {n + 1}",
                search=SearchFilter(**params),
                search_echo=params,
                start_set=False,
                end_set=False,
                seeded=True,
            )
            self._place(job, status, None, hold, job.created_at)
            created.append(job)
        return created

    def force_status(
        self, job: Job, status: str, *, status_message: str | None = None, hold: bool | None = None
    ) -> JobView:
        """Put a job into `status` now; active statuses continue from there unless held."""
        now = self.clock()
        self._place(job, status, status_message, hold, now)
        return self.view(job, now)

    def _place(
        self, job: Job, status: str, status_message: str | None, hold: bool | None, now: float
    ) -> None:
        total = self.job_seconds
        keep_hold = job.held_elapsed is not None if hold is None else hold
        job.final = None
        if status in _PHASE_POINT:
            point = _PHASE_POINT[JobStatus(status)] * total
            job.origin = now - point
            job.held_elapsed = point if keep_hold else None
        elif status in {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.SKIPPED}:
            current = self._elapsed(job, now)
            if status == JobStatus.COMPLETED:
                elapsed = max(current, total)
            elif status == JobStatus.SKIPPED:
                elapsed = max(current, DISCOVERY_END * total)
            else:
                elapsed = max(current, _PHASE_POINT[JobStatus.PROCESSING] * total) if job.seeded else current
            elapsed = min(elapsed, total)
            default_message = {
                JobStatus.COMPLETED: None,
                JobStatus.FAILED: "Simulated failure",
                JobStatus.CANCELLED: "Cancelled",
                JobStatus.SKIPPED: "Simulated skip",
            }[JobStatus(status)]
            job.origin = now - elapsed
            job.held_elapsed = None
            job.final = Final(
                status,
                status_message or default_message,
                now,
                elapsed,
                "COMPLETED" if status == "COMPLETED" else status,
            )
        else:
            raise SimError(400, 1002, f"unknown status {status!r}")

    def hold(self, job_ids: Iterable[str] | None = None) -> int:
        """Freeze jobs (all active ones by default) where they are now; return how many."""
        now = self.clock()
        count = 0
        for job in self._select(job_ids):
            if job.final is None and job.held_elapsed is None and not is_terminal(self.view(job, now).status):
                job.held_elapsed = now - job.origin
                count += 1
        return count

    def release(self, job_ids: Iterable[str] | None = None) -> int:
        """Unfreeze held jobs (all by default): they continue from where they were; return how many."""
        now = self.clock()
        count = 0
        for job in self._select(job_ids):
            if job.held_elapsed is not None:
                job.origin = now - job.held_elapsed
                job.held_elapsed = None
                count += 1
        return count

    def _select(self, job_ids: Iterable[str] | None) -> list[Job]:
        if job_ids is None:
            return list(self._index.values())
        return [self.find(job_id) for job_id in job_ids]

    # ------------------------------------------------------------------ progress

    def _elapsed(self, job: Job, now: float) -> float:
        return job.held_elapsed if job.held_elapsed is not None else now - job.origin

    def discovery(self, job: Job) -> Discovery:
        """Run (once) the job's search, with the default 30-day window ending when discovery began."""
        if job._discovery is None:
            began = job.origin + PENDING_END * self.job_seconds
            search = job.search
            if not job.end_set:
                search = replace(search, end=began)
            if not job.start_set:
                search = replace(search, start=(search.end if search.end is not None else began) - WINDOW)
            job._discovery = self.mailbox(job.account_id).search(search)
        return job._discovery

    def fail_prefix(self, job: Job) -> list[int]:
        """Return failures among the first k actionable messages, for every k.

        A message fails when its mailbox is gone, or when its roll plus the job's salt lands in the
        bottom FAILURE_PERCENT; jobs with the same discovery and salt share one array, so 10,000
        seeded jobs cost a few hundred arrays, not 10,000.
        """
        if job._fail_prefix is None:
            found = self.discovery(job)
            salt = -1 if job.force_fail else zlib.crc32(job.job_id.encode()) % 100
            prefix = found.fail_cache.get(salt)
            if prefix is None:
                messages = self.mailbox(job.account_id).messages
                prefix = [0]
                for position in found.actionable:
                    message = messages[found.found[position]]
                    prefix.append(prefix[-1] + _fails(salt, message))
                found.fail_cache[salt] = prefix
            job._fail_prefix = prefix
        return job._fail_prefix

    def status_of(self, job: Job, now: float) -> str:
        """Return only the job's status at `now` (cheaper than `view`, for filtering long lists)."""
        if job.final is not None:
            return job.final.status
        total = self.job_seconds
        elapsed = self._elapsed(job, now)
        if total > 0 and elapsed < PENDING_END * total:
            return JobStatus.PENDING
        if total > 0 and elapsed < DISCOVERY_END * total:
            return JobStatus.DISCOVERING
        actionable = len(self.discovery(job).actionable)
        if actionable == 0:
            return JobStatus.SKIPPED
        if total > 0 and elapsed < total:
            fraction = (elapsed - DISCOVERY_END * total) / ((1 - DISCOVERY_END) * total)
            if int(actionable * fraction) < actionable:
                return JobStatus.PROCESSING
        return JobStatus.FAILED if self.fail_prefix(job)[-1] == actionable else JobStatus.COMPLETED

    def view(self, job: Job, now: float | None = None) -> JobView:
        """Compute the job's status and counters at `now`."""
        now = self.clock() if now is None else now
        total = self.job_seconds
        final = job.final
        elapsed = final.elapsed if final is not None else self._elapsed(job, now)
        pending_end = PENDING_END * total
        discovery_end = DISCOVERY_END * total
        started = job.origin + pending_end
        if elapsed < pending_end and total > 0:
            view = JobView(JobStatus.PENDING, Counts(), None, None, None, 0, 0, "PENDING")
        elif elapsed < discovery_end and total > 0:
            found = self.discovery(job)
            visible = int(len(found.found) * (elapsed - pending_end) / (discovery_end - pending_end))
            skipped = found.skip_prefix[visible]
            counts = Counts(discovered=visible, pending=visible - skipped, skipped=skipped)
            view = JobView(JobStatus.DISCOVERING, counts, started, None, None, visible, 0, "PENDING")
        else:
            view = self._processing_view(job, elapsed, started)
        if final is not None:
            view = self._finalised(view, final)
        return view

    def _processing_view(self, job: Job, elapsed: float, started: float) -> JobView:
        total = self.job_seconds
        found = self.discovery(job)
        actionable = len(found.actionable)
        counts = Counts(discovered=len(found.found), skipped=found.skipped)
        if actionable == 0:
            message = (
                "No messages matched the search"
                if not found.found
                else f"All {len(found.found)} discovered messages were skipped (phish submissions)"
            )
            ended = job.origin + DISCOVERY_END * total
            return JobView(JobStatus.SKIPPED, counts, started, ended, message, len(found.found), 0, "SKIPPED")
        if total > 0:
            fraction = (elapsed - DISCOVERY_END * total) / ((1 - DISCOVERY_END) * total)
            processed = max(0, min(actionable, int(actionable * fraction)))
        else:
            processed = actionable
        failed = self.fail_prefix(job)[processed]
        counts.failed = failed
        counts.successful = processed - failed
        counts.pending = actionable - processed
        if processed < actionable:
            return JobView(
                JobStatus.PROCESSING, counts, started, None, None, len(found.found), processed, "PENDING"
            )
        ended = job.origin + total
        verb = "moved" if job.action == ActionType.MOVE else "released"
        if failed == actionable:
            status, message = JobStatus.FAILED, f"All {actionable} messages failed"
        else:
            status = JobStatus.COMPLETED
            message = f"{counts.successful} of {actionable} messages {verb}"
            if failed:
                message += f"; {failed} failed"
        return JobView(status, counts, started, ended, message, len(found.found), processed, "COMPLETED")

    def _finalised(self, view: JobView, final: Final) -> JobView:
        counts = replace(view.counts)
        pending = counts.pending
        counts.pending = 0
        if final.pending_to == JobStatus.CANCELLED:
            counts.cancelled += pending
        elif final.pending_to == JobStatus.FAILED:
            counts.failed += pending
        elif final.pending_to == JobStatus.SKIPPED:
            counts.skipped += pending
        else:
            counts.successful += pending
        started = view.started_at
        if started is None and final.status != JobStatus.CANCELLED:
            started = final.at
        message = final.message if final.message is not None else view.status_message
        return replace(
            view,
            status=final.status,
            counts=counts,
            started_at=started,
            completed_at=final.at if view.completed_at is None else view.completed_at,
            status_message=message,
            pending_to=final.pending_to,
        )

    # ------------------------------------------------------------------ answers

    def job_json(self, job: Job, view: JobView | None = None) -> dict[str, Any]:
        """Return the BulkJobDetail answer for a job."""
        view = view or self.view(job)
        params: dict[str, Any] = {"type": job.action}
        if job.destination is not None:
            params["destination"] = job.destination
        c = view.counts
        answer = {
            "job_id": job.job_id,
            "action_type": job.action,
            "action_params": params,
            "search_params": dict(job.search_echo),
            "status": view.status,
            "total_messages_discovered": c.discovered,
            "messages_pending": c.pending,
            "messages_successful": c.successful,
            "messages_failed": c.failed,
            "messages_skipped": c.skipped,
            "messages_cancelled": c.cancelled,
            "comment": job.comment,
            "created_at": format_ts_ms(job.created_at),
            "started_at": None if view.started_at is None else format_ts_ms(view.started_at),
            "completed_at": None if view.completed_at is None else format_ts_ms(view.completed_at),
            "status_message": view.status_message,
        }
        if job.reported_counts:
            answer.update(job.reported_counts)
        return answer

    def message_records(self, job: Job, status: str | None = None) -> Iterator[dict[str, Any]]:
        """Yield one BulkActionMessageDetail per discovered message, in discovery order."""
        now = self.clock()
        view = self.view(job, now)
        if view.discovered == 0:
            return
        found = self.discovery(job)
        messages = self.mailbox(job.account_id).messages
        total = self.job_seconds
        discovery_span = (DISCOVERY_END - PENDING_END) * total
        processing_span = (1 - DISCOVERY_END) * total
        actionable = max(len(found.actionable), 1)
        failures = self.fail_prefix(job) if view.processed else [0]
        rank = 0
        for position in range(view.discovered):
            message = messages[found.found[position]]
            discovered_at = (
                job.origin + PENDING_END * total + discovery_span * (position + 1) / len(found.found)
            )
            record_status: str
            processed_at: float | None = None
            note: str | None = None
            retries = 0
            if message.is_phish_submission:
                record_status, processed_at = JobStatus.SKIPPED, discovered_at
                note = "Phish submissions cannot be actioned"
            else:
                if rank < view.processed:
                    failed = failures[rank + 1] > failures[rank]
                    record_status = JobStatus.FAILED if failed else JobStatus.COMPLETED
                    processed_at = (
                        job.origin + DISCOVERY_END * total + processing_span * (rank + 1) / actionable
                    )
                    if failed:
                        retries = 3
                        note = _failure_note(job, message.recipients)
                else:
                    record_status = view.pending_to
                    if job.final is not None and record_status != JobStatus.PENDING:
                        processed_at = job.final.at
                        if record_status == JobStatus.CANCELLED:
                            note = "Job cancelled before this message was processed"
                rank += 1
            if status is not None and record_status != status:
                continue
            record_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{job.job_id}/{message.id}")
            params: dict[str, Any] = {"type": job.action, "client_recipient": message.recipients[0]}
            if job.destination is not None:
                params["destination"] = job.destination
            yield {
                "message_id": str(record_id),
                "postfix_id": message.postfix_id,
                "email_message_id": message.message_id,
                "alert_id": message.alert_id,
                "action_type": job.action,
                "action_params": params,
                "status": record_status,
                "status_message": note,
                "retry_count": retries,
                "retry_after": None,
                "created_at": format_ts_ms(discovered_at),
                "processed_at": None if processed_at is None else format_ts_ms(min(processed_at, now)),
                "message": message.details,
            }


def _fails(salt: int, message: Message) -> bool:
    if salt < 0 or message.departed:
        return True
    return (message.fail_roll + salt) % 100 < FAILURE_PERCENT


def _failure_note(job: Job, recipients: list[str]) -> str:
    if job.force_fail:
        return f"Simulated failure ({FAIL_TRIGGER} in the job comment)"
    if DEPARTED_MAILBOX in recipients:
        return f"Mailbox not found: {DEPARTED_MAILBOX}"
    return "Microsoft Graph answered 503 Service Unavailable after 3 attempts"
