"""One backoff formula, used by the tracker, the notifier and the Cloudflare client."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import pytest

from bot.backoff import capped_exponential
from bot.cloudflare.client import RetryPolicy
from bot.tracker import TickReport, Tracker


def test_capped_exponential_doubles_from_base_up_to_the_cap() -> None:
    assert [capped_exponential(0.5, n, cap=4.0) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert capped_exponential(1.0, -3, cap=10.0) == 1.0, "a negative attempt waits the base"
    assert capped_exponential(1.0, 10**6, cap=300.0) == 300.0, "no overflow for a huge attempt"


@pytest.mark.parametrize("attempt", range(1, 8))
def test_the_client_backoff_is_the_shared_formula_plus_jitter(attempt: int) -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=3.0, jitter=0)
    assert policy.backoff(attempt) == capped_exponential(0.25, attempt - 1, cap=3.0)
    jittered = replace(policy, jitter=0.5)
    assert 0.5 * policy.backoff(attempt) <= jittered.backoff(attempt) <= policy.backoff(attempt)


def test_the_tracker_waits_the_shared_formula_after_failed_cycles() -> None:
    tracker = Tracker(cast(Any, None), cast(Any, None), poll_seconds=2.0, max_backoff=60.0)
    assert tracker.next_delay(TickReport()) == 2.0
    failed = TickReport(errors=["503"])
    for failures in range(8):
        tracker._failures = failures
        assert tracker.next_delay(failed) == capped_exponential(2.0, failures, cap=60.0)
    tracker._failures = 1
    assert tracker.next_delay(TickReport(errors=["429"], retry_after=30.0)) == 30.0
