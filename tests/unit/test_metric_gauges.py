"""Metric labels stay low-cardinality; the scrape-time gauges read what they claim to."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from bot.budget import BudgetSnapshot
from bot.cloudflare.budget import Priority
from bot.cloudflare.client import route_template
from bot.metrics import SweepMetrics, surface_of
from bot.throttle import BudgetKind, RequestBudgets, budget_windows

JOB = "5b5a3c5e-0000-4000-8000-000000000001"


def test_route_templates_carry_no_ids() -> None:
    bulk = "accounts/0123abcd/email-security/investigate/bulk"
    assert route_template("GET", bulk) == "GET /accounts/{account_id}/email-security/investigate/bulk"
    assert route_template("POST", f"{bulk}/{JOB}/cancel") == (
        "POST /accounts/{account_id}/email-security/investigate/bulk/{job_id}/cancel"
    )
    assert route_template("GET", f"{bulk}/{JOB}/messages") == (
        "GET /accounts/{account_id}/email-security/investigate/bulk/{job_id}/messages"
    )
    assert route_template("GET", "accounts/a/email-security/investigate/q-123") == (
        "GET /accounts/{account_id}/email-security/investigate/{id}"
    )


def test_surfaces() -> None:
    assert surface_of({"command": "/sweep", "text": "help"}) == "slash_command"
    assert surface_of({"type": "block_actions"}) == "block_action"
    assert surface_of({"type": "view_submission"}) == "view_submission"
    assert surface_of({"type": "view_closed"}) == surface_of("nonsense") == "other"


def _samples(metrics: SweepMetrics, text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


async def test_budget_left_and_the_429_pause() -> None:
    now = [100.0]
    metrics = SweepMetrics(clock=lambda: now[0])
    budgets = RequestBudgets(
        budget_windows(reads_total=5, writes_total=2), clock=lambda: datetime(2026, 12, 1, tzinfo=UTC)
    )
    metrics.watch(budgets=budgets)
    budgets.take(BudgetKind.READ, "U1")
    budgets.take(BudgetKind.WRITE, "U2")
    budgets.take(BudgetKind.WRITE, "U3")
    metrics.observe_cloudflare("GET /accounts/{account_id}/email-security/investigate/bulk", "429", 30.0)
    now[0] += 10
    samples = _samples(metrics, await metrics.render())
    assert samples[("sweep_cloudflare_budget_remaining", (("kind", "read"),))] == 4
    assert samples[("sweep_cloudflare_budget_remaining", (("kind", "write"),))] == 0
    assert samples[("sweep_cloudflare_rate_limit_pause_seconds", ())] == 20
    now[0] += 25
    samples = _samples(metrics, await metrics.render())
    assert samples[("sweep_cloudflare_rate_limit_pause_seconds", ())] == 0


def test_two_runtimes_in_one_process_do_not_collide() -> None:
    first, second = SweepMetrics(), SweepMetrics()
    first.observe_ack("slash_command", 0.01)
    assert first.registry.get_sample_value("sweep_ack_seconds_count", {"surface": "slash_command"}) == 1
    assert second.registry.get_sample_value("sweep_ack_seconds_count", {"surface": "slash_command"}) == 0


class SharedBudgetReading:
    """A `BudgetSource` reading as the shared budget would give it (its own tests are on real databases)."""

    def __init__(self, snapshot: BudgetSnapshot | None) -> None:
        self.snapshot_to_give = snapshot

    async def snapshot(self) -> BudgetSnapshot:
        if self.snapshot_to_give is None:
            raise ConnectionError("database down")
        return self.snapshot_to_give


async def test_the_shared_cloudflare_budget_left_and_its_pause() -> None:
    now = [100.0]
    metrics = SweepMetrics(clock=lambda: now[0])
    source = SharedBudgetReading(
        BudgetSnapshot(used=700, left={Priority.URGENT: 260, Priority.ROUTINE: 20}, pause_seconds=42.0)
    )
    metrics.watch(shared_budget=source)
    metrics.observe_reservation(Priority.ROUTINE, True)
    metrics.observe_reservation(Priority.ROUTINE, False)
    metrics.observe_reservation(Priority.URGENT, True)
    samples = _samples(metrics, await metrics.render())
    assert samples[("sweep_cloudflare_requests_left", (("priority", "urgent"),))] == 260
    assert samples[("sweep_cloudflare_requests_left", (("priority", "routine"),))] == 20
    # A 429 another replica saw shows here too: the pause is the shared one.
    assert samples[("sweep_cloudflare_rate_limit_pause_seconds", ())] == 42
    reservations = "sweep_cloudflare_budget_reservations_total"
    assert samples[(reservations, (("outcome", "granted"), ("priority", "routine")))] == 1
    assert samples[(reservations, (("outcome", "refused"), ("priority", "routine")))] == 1
    assert samples[(reservations, (("outcome", "granted"), ("priority", "urgent")))] == 1
    assert samples[(reservations, (("outcome", "refused"), ("priority", "urgent")))] == 0
    # This replica's own, longer 429 wins; an unreadable budget leaves its gauge out, the scrape answers.
    metrics.observe_cloudflare("GET /accounts/{account_id}/email-security/investigate/bulk", "429", 90.0)
    source.snapshot_to_give = None
    samples = _samples(metrics, await metrics.render())
    assert not [key for key in samples if key[0] == "sweep_cloudflare_requests_left"]
    assert samples[("sweep_cloudflare_rate_limit_pause_seconds", ())] == 90


class _Counts:
    def __init__(self, counts: list[tuple[str, str, int, float | None]]) -> None:
        self.counts = counts

    async def gauge_counts(self) -> list[tuple[str, str, int, float | None]]:
        return self.counts


async def test_approvals_pending_is_its_own_gauge_not_a_job_status() -> None:
    metrics = SweepMetrics()
    source = _Counts([("jobs", "PROCESSING", 2, None), ("approvals", "pending", 3, None)])
    metrics.watch(store=source)
    samples = _samples(metrics, await metrics.render())
    assert samples[("sweep_approvals_pending", ())] == 3
    assert samples[("sweep_jobs", (("status", "PROCESSING"),))] == 2
    assert not any(name == "sweep_jobs" and ("status", "pending") in labels for name, labels in samples)
    source.counts = [("jobs", "PROCESSING", 2, None)]
    assert _samples(metrics, await metrics.render())[("sweep_approvals_pending", ())] == 0
