"""Prometheus metrics of one Sweep process, on a registry its runtime owns (never the global one).

Events are counted where they happen (an ack, a Cloudflare answer, a budget reservation, a poll
cycle) through the small `observe_*` methods; states are read when Prometheus scrapes: the follow-up
queue and the Slack-side request budgets from memory, the outbox, the tracked jobs, the pending
approvals and the shared Cloudflare budget from the store (`refresh`, a few cheap statements, awaited
by the /metrics handler before the synchronous exposition). Every label has a small fixed set of
values: a surface, a route template, a status, a state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.budget import BudgetSnapshot
from bot.cloudflare.budget import Priority
from bot.cloudflare.models import ACTIVE_STATUSES
from bot.followups import FollowUpStats
from bot.throttle import BudgetKind, RequestBudgets

__all__ = ["CONTENT_TYPE", "SURFACES", "GaugeSource", "SweepMetrics", "surface_of"]

log = logging.getLogger("sweep.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SURFACES = ("slash_command", "block_action", "view_submission", "other")
#: Slack wants an answer within 3 s: the buckets are dense below that and stop just past it.
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
POLL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: How long a scrape waits for the store before it reports the database as down.
STORE_TIMEOUT_SECONDS = 2.0
_OUTBOX_STATES = ("pending", "attempting", "failed")


class GaugeSource(Protocol):
    """The store's one metrics query (see `SqlStore.gauge_counts`)."""

    async def gauge_counts(self) -> list[tuple[str, str, int, float | None]]:
        """Return (table, state, rows, oldest due_at epoch): outbox rows, active jobs, pending approvals."""


class BudgetSource(Protocol):
    """The shared Cloudflare request budget (see `bot.budget.SharedBudget.snapshot`)."""

    async def snapshot(self) -> BudgetSnapshot:
        """Return the requests left per priority and the pause left, all replicas together."""


def surface_of(body: Any) -> str:
    """Return which Slack surface a request body came from, one of `SURFACES`."""
    if isinstance(body, Mapping):
        kind = body.get("type")
        if kind == "block_actions":
            return "block_action"
        if kind == "view_submission":
            return "view_submission"
        if kind is None and "command" in body:
            return "slash_command"
    return "other"


class SweepMetrics:
    """The metrics of one runtime: its own registry, its event metrics, its scrape-time collector."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time):
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._wall = wall
        ack = Histogram(
            "sweep_ack_seconds",
            "Time from a Slack request's arrival to Sweep's answer (the ack), by surface.",
            ["surface"],
            buckets=ACK_BUCKETS,
            registry=self.registry,
        )
        # Children bound up front: an observe on the ack path is one dict lookup and one add.
        self._ack = {surface: ack.labels(surface) for surface in SURFACES}
        self._cloudflare = Counter(
            "sweep_cloudflare_requests",
            "Requests sent to Cloudflare, by endpoint (route template) and HTTP status "
            "('timeout' or 'error' when no answer came).",
            ["endpoint", "status"],
            registry=self.registry,
        )
        reservations = Counter(
            "sweep_cloudflare_budget_reservations",
            "Slots asked of the Cloudflare request budget all replicas share, by priority (urgent: "
            "creates, cancels, create look-ups; routine: polls, lists, previews) and outcome (refused: "
            "held back, waiting or failing, because the budget was spent or a 429 paused it).",
            ["priority", "outcome"],
            registry=self.registry,
        )
        self._reservations = {
            (priority, granted): reservations.labels(priority.value, "granted" if granted else "refused")
            for priority in Priority
            for granted in (True, False)
        }
        poll = Histogram(
            "sweep_poll_cycle_seconds",
            "Duration of one tracker poll cycle, by outcome (ok: every Cloudflare call succeeded).",
            ["outcome"],
            buckets=POLL_BUCKETS,
            registry=self.registry,
        )
        self._poll = {outcome: poll.labels(outcome) for outcome in ("ok", "error")}
        self.poller_lease = Gauge(
            "sweep_poller_lease_held",
            "1 while this replica holds the poller lease and runs the tracker, else 0.",
            registry=self.registry,
        )
        self._paused_until = float("-inf")
        self._follow_ups: Callable[[], FollowUpStats] | None = None
        self._budgets: RequestBudgets | None = None
        self._store: GaugeSource | None = None
        self._counts: list[tuple[str, str, int, float | None]] | None = None
        self._shared_budget: BudgetSource | None = None
        self._budget_snapshot: BudgetSnapshot | None = None
        self.registry.register(_StateCollector(self))

    # ------------------------------------------------------------------ events

    def observe_ack(self, surface: str, seconds: float) -> None:
        """Record one ack's latency."""
        self._ack[surface].observe(seconds)

    def observe_cloudflare(self, endpoint: str, status: str, retry_after: float | None) -> None:
        """Record one Cloudflare answer; a 429's Retry-After starts (or extends) the pause shown."""
        self._cloudflare.labels(endpoint, status).inc()
        if retry_after is not None:
            self._paused_until = max(self._paused_until, self._clock() + retry_after)

    def observe_reservation(self, priority: Priority, granted: bool) -> None:
        """Record one slot asked of the shared Cloudflare budget."""
        self._reservations[(priority, granted)].inc()

    def observe_poll_cycle(self, seconds: float, ok: bool) -> None:
        """Record one tracker cycle."""
        self._poll["ok" if ok else "error"].observe(seconds)

    # ------------------------------------------------------------------ states

    def watch(
        self,
        *,
        follow_ups: Callable[[], FollowUpStats] | None = None,
        budgets: RequestBudgets | None = None,
        store: GaugeSource | None = None,
        shared_budget: BudgetSource | None = None,
    ) -> None:
        """Name the sources of the scrape-time gauges (each is read only when Prometheus scrapes)."""
        self._follow_ups = follow_ups or self._follow_ups
        self._budgets = budgets or self._budgets
        self._store = store or self._store
        self._shared_budget = shared_budget or self._shared_budget

    async def refresh(self) -> None:
        """Read the store's counts for the next exposition; on failure the database shows as down."""
        if self._shared_budget is not None:
            try:
                self._budget_snapshot = await asyncio.wait_for(
                    self._shared_budget.snapshot(), STORE_TIMEOUT_SECONDS
                )
            except Exception as error:  # noqa: BLE001 - as below: the scrape still answers
                log.warning("metrics: could not read the Cloudflare budget (%s)", type(error).__name__)
                self._budget_snapshot = None
        if self._store is None:
            return
        try:
            self._counts = await asyncio.wait_for(self._store.gauge_counts(), STORE_TIMEOUT_SECONDS)
        except Exception as error:  # noqa: BLE001 - a scrape must answer even when the database does not
            log.warning("metrics: could not read the database (%s)", type(error).__name__)
            self._counts = None

    async def render(self) -> bytes:
        """Return the exposition text, the store read first."""
        await self.refresh()
        return generate_latest(self.registry)

    def _collect_state(self) -> Iterator[Metric]:
        if self._follow_ups is not None:
            stats = self._follow_ups()
            family = GaugeMetricFamily(
                "sweep_follow_ups",
                "Work acknowledged to Slack and not finished yet, by state (waiting to start, running).",
                labels=["state"],
            )
            family.add_metric(["waiting"], stats.waiting)
            family.add_metric(["running"], stats.running)
            yield family
        if self._budgets is not None:
            family = GaugeMetricFamily(
                "sweep_cloudflare_budget_remaining",
                "Cloudflare-calling Slack requests everyone may still make in the shared window "
                "(SWEEP_READS_TOTAL / SWEEP_WRITES_TOTAL per 5 minutes), by kind.",
                labels=["kind"],
            )
            for kind in BudgetKind:
                remaining = self._budgets.remaining(kind)
                if remaining is not None:
                    family.add_metric([kind.value], remaining)
            yield family
        shared = self._budget_snapshot
        if shared is not None:
            family = GaugeMetricFamily(
                "sweep_cloudflare_requests_left",
                "Requests every replica together may still send to Cloudflare for this account now, by "
                "priority: urgent up to 80 % of SWEEP_CLOUDFLARE_BUDGET per 5 minutes, routine (polls, "
                "lists, previews) up to three quarters of that.",
                labels=["priority"],
            )
            for priority in Priority:
                family.add_metric([priority.value], shared.left[priority])
            yield family
        # The pause any replica's 429 started (the shared budget's), else the last one this replica saw.
        local = max(self._paused_until - self._clock(), 0.0)
        yield GaugeMetricFamily(
            "sweep_cloudflare_rate_limit_pause_seconds",
            "Seconds until the pause the last 429's Retry-After started ends, for every replica "
            "(0: no pause in force).",
            value=max(local, shared.pause_seconds) if shared is not None else local,
        )
        if self._store is not None:
            yield from self._store_families(self._counts)

    def _store_families(
        self, counts: Sequence[tuple[str, str, int, float | None]] | None
    ) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "sweep_database_up",
            "1 if the last scrape could read the database, else 0.",
            value=int(counts is not None),
        )
        if counts is None:
            return
        outbox = dict.fromkeys(_OUTBOX_STATES, 0)
        jobs = {str(status): 0 for status in ACTIVE_STATUSES}
        oldest: float | None = None
        approvals_pending = 0
        for table, state, rows, due in counts:
            if table == "outbox":
                outbox[state] = rows
                if state != "failed" and due is not None:
                    oldest = due if oldest is None else min(oldest, due)
            elif table == "approvals":
                approvals_pending += rows
            else:
                jobs[state] = rows
        family = GaugeMetricFamily(
            "sweep_outbox_rows",
            "Slack deliveries (cards, thread replies, notices) in the outbox, by state: pending, "
            "attempting (sent, answer not recorded yet) and failed (given up).",
            labels=["state"],
        )
        for state, rows in outbox.items():
            family.add_metric([state], rows)
        yield family
        yield GaugeMetricFamily(
            "sweep_outbox_oldest_pending_seconds",
            "Seconds the longest-overdue pending outbox row has been due (0 when nothing is overdue).",
            value=max(self._wall() - oldest, 0.0) if oldest is not None else 0.0,
        )
        family = GaugeMetricFamily(
            "sweep_jobs",
            "Tracked jobs that may still change, by last known Cloudflare status.",
            labels=["status"],
        )
        for status, rows in jobs.items():
            family.add_metric([status], rows)
        yield family
        yield GaugeMetricFamily(
            "sweep_approvals_pending",
            "Approval requests waiting for a second person (neither decided nor expired yet).",
            value=approvals_pending,
        )


class _StateCollector(Collector):
    """Yields the scrape-time gauges of one `SweepMetrics`."""

    def __init__(self, metrics: SweepMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        """Return the current gauges."""
        return self._metrics._collect_state()  # noqa: SLF001 - the collector is the metrics' own part

    def describe(self) -> Iterator[Metric]:
        """Describe nothing: the families depend on what is watched, so none is checked at register."""
        return iter(())
