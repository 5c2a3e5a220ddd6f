"""The client asks its request budget before every send and tells it about every 429 (MockTransport).

`Ledger` is a scripted `RequestBudget`: it records what was asked and answers from a script. The
shared, store-backed budget itself is tested on real databases in tests/component/test_budget.py and,
with the simulator, in tests/component/test_shared_budget.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from bot.cloudflare import errors
from bot.cloudflare.budget import Priority, Reservation, budget_wait, urgent
from bot.cloudflare.client import CloudflareClient, Credentials, rate_limit_hook
from bot.cloudflare.models import SearchParams
from tests.unit.test_cloudflare_client import (
    ACCOUNT,
    BASE,
    POLICY,
    SEARCH,
    TOKEN,
    FakeJobs,
    Recorder,
    envelope,
    failure,
    info,
    job_json,
    move_request,
)


class Ledger:
    """A `RequestBudget` that grants (or refuses, as scripted) and writes everything down."""

    def __init__(self, refusals: list[Reservation] | None = None, *, pause: float = 300.0) -> None:
        self.asked: list[Priority] = []
        self.refusals = list(refusals or [])
        self.pauses: list[float | None] = []
        self.pause = pause
        self.broken = False

    async def reserve(self, priority: Priority) -> Reservation:
        self.asked.append(priority)
        if self.refusals:
            return self.refusals.pop(0)
        return Reservation(granted=True)

    async def rate_limited(self, retry_after: float | None) -> float:
        self.pauses.append(retry_after)
        if self.broken:
            raise RuntimeError("database down")
        return self.pause if retry_after is None else retry_after


def budgeted(
    handler: Callable[[httpx.Request], httpx.Response], ledger: Ledger, sleep: Recorder | None = None
) -> CloudflareClient:
    return CloudflareClient(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        account_id=ACCOUNT,
        credentials=Credentials(api_token=SecretStr(TOKEN)),
        base_url=BASE,
        retry=POLICY,
        sleep=sleep or Recorder(),
        budget=ledger,
    )


async def test_every_send_takes_a_slot_of_its_priority() -> None:
    fake = FakeJobs()
    ledger = Ledger()
    client = budgeted(fake.handler, ledger)
    await client.list_jobs()
    job = await client.create_job(move_request())
    assert job.comment and await client.find_job_by_tag("nope", pages=1) is None
    with urgent():
        await client.list_jobs()
    await client.list_jobs()
    assert ledger.asked == [
        Priority.ROUTINE,  # a list
        Priority.URGENT,  # the create
        Priority.URGENT,  # the look-up by tag
        Priority.URGENT,  # a list a caller marked urgent
        Priority.ROUTINE,  # and back to routine outside the block
    ]
    assert len(ledger.asked) == len(fake.requests)


async def test_a_cancel_and_its_reconciling_get_are_urgent_and_every_retry_takes_a_slot() -> None:
    job_id = str(uuid.uuid4())
    answers = [
        failure(503),
        failure(409, 1000, "already cancelled"),
        envelope(job_json(job_id, status="CANCELLED")),
    ]
    ledger = Ledger()
    client = budgeted(lambda request: answers.pop(0), ledger)
    job = await client.cancel_job(job_id)
    assert job.status == "CANCELLED"
    assert ledger.asked == [Priority.URGENT] * 3  # the 503, the retried cancel (409), the GET


async def test_every_poll_of_a_202_search_takes_a_slot() -> None:
    answers = [
        httpx.Response(202, json={"success": True, "result": None}, headers={"Location": f"{SEARCH}?t=1"}),
        envelope([], result_info=info(0, 100)),
    ]
    ledger = Ledger()
    client = budgeted(lambda request: answers.pop(0), ledger)
    await client.search_messages(SearchParams(subject="x", detections_only=True))
    assert ledger.asked == [Priority.ROUTINE, Priority.ROUTINE]


async def test_a_refused_call_waits_for_its_slot_telling_the_hook_then_sends() -> None:
    fake = FakeJobs()
    sleep = Recorder()
    ledger = Ledger([Reservation(False, 4.0, "spent"), Reservation(False, 0.0, "spent")])
    client = budgeted(fake.handler, ledger, sleep)
    told: list[float] = []

    async def tell(seconds: float) -> None:
        told.append(seconds)

    token = rate_limit_hook.set(tell)
    try:
        await client.list_jobs()
    finally:
        rate_limit_hook.reset(token)
    assert sleep.delays == [4.0, 0.05] and told == [4.0, 0.05]  # a slot due "now" is asked again shortly
    assert len(ledger.asked) == 3 and len(fake.requests) == 1


async def test_past_its_bound_a_call_raises_and_sends_nothing() -> None:
    fake = FakeJobs()
    sleep = Recorder()
    reason = "Sweep's share of this account's Cloudflare request budget is used up for now"
    # 20 s, then 15 s more: past the policy's 30 s over the whole call.
    ledger = Ledger([Reservation(False, 20.0, reason), Reservation(False, 15.0, reason)])
    client = budgeted(fake.handler, ledger, sleep)
    with pytest.raises(errors.BudgetExhaustedError) as raised:
        await client.create_job(move_request())
    assert sleep.delays == [20.0] and fake.requests == [] and fake.jobs == []
    error = raised.value
    assert isinstance(error, errors.RateLimitedError) and error.status is None and error.retry_after == 15
    assert (
        error.user_message() == f"Sweep did not send this request to Cloudflare: {reason}; try again in 15 s"
    )


async def test_a_task_that_may_not_wait_is_refused_at_once() -> None:
    fake = FakeJobs()
    sleep = Recorder()
    client = budgeted(fake.handler, Ledger([Reservation(False, 0.5, "paused")]), sleep)
    token = budget_wait.set(0.0)
    try:
        with pytest.raises(errors.BudgetExhaustedError):
            await client.list_jobs()
    finally:
        budget_wait.reset(token)
    assert sleep.delays == [] and fake.requests == []


async def test_a_429_pauses_the_budget_and_is_waited_out() -> None:
    answers = [
        failure(429, 10429, "Rate limited", **{"Retry-After": "7"}),
        envelope([], result_info=info(0, 100)),
    ]
    sleep = Recorder()
    ledger = Ledger()
    client = budgeted(lambda request: answers.pop(0), ledger, sleep)
    await client.list_jobs()
    assert ledger.pauses == [7.0] and sleep.delays == [7.0] and len(ledger.asked) == 2


async def test_a_429_without_retry_after_takes_the_budgets_pause() -> None:
    # Without a budget the client would back off for 0.5 s; with one, the fleet pauses 5 minutes, so
    # the caller hears Cloudflare's 429 at once with the pause as its Retry-After.
    answers = [failure(429, 10429, "Rate limited")]
    sleep = Recorder()
    ledger = Ledger(pause=300.0)
    client = budgeted(lambda request: answers.pop(0), ledger, sleep)
    with pytest.raises(errors.RateLimitedError) as raised:
        await client.list_jobs()
    assert not isinstance(raised.value, errors.BudgetExhaustedError)
    assert ledger.pauses == [None] and raised.value.retry_after == 300 and sleep.delays == []
    assert "10429" in raised.value.user_message() and "retry in 300 s" in raised.value.user_message()


async def test_a_budget_that_cannot_record_the_pause_does_not_hide_cloudflares_answer() -> None:
    answers = [
        failure(429, 10429, "Rate limited", **{"Retry-After": "2"}),
        envelope([], result_info=info(0, 100)),
    ]
    sleep = Recorder()
    ledger = Ledger()
    ledger.broken = True
    client = budgeted(lambda request: answers.pop(0), ledger, sleep)
    await client.list_jobs()
    assert sleep.delays == [2.0]
