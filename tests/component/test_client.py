"""The Cloudflare client against the simulator over real HTTP: operations, errors, retries, paging."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.cloudflare import errors
from bot.cloudflare.client import CloudflareClient, Credentials, RetryPolicy, tag_marker
from bot.cloudflare.models import ActionType, CreateJobRequest, Destination, SearchParams
from bot.simulator.app import RunningSimulator

TOKEN = "test-token"

# The retry policy these tests run with, stated here: every expected count and delay below follows from it
# (4 tries in all; waits of 0.5 s doubling per retry, capped at 8 s; a Retry-After over 30 s is not waited
# out; no jitter), not from the client's defaults.
POLICY = RetryPolicy(
    max_attempts=4, base_delay=0.5, max_delay=8.0, max_retry_after=30.0, jitter=0, max_polls=10
)


class Sleeps:
    """Records the delays the client asks for instead of waiting them out."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def root(base_url: str) -> str:
    return str(httpx.URL(str(base_url)).copy_with(path="/", query=None))


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
async def control(simulator: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=root(simulator.base_url), timeout=10) as client:
        yield client


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make(
    http: httpx.AsyncClient,
    simulator: RunningSimulator,
    account_id: str,
    sleeps: Sleeps,
    *,
    token: str = TOKEN,
    retry: RetryPolicy | None = None,
) -> CloudflareClient:
    return CloudflareClient(
        http,
        account_id=account_id,
        credentials=Credentials(api_token=SecretStr(token)),
        base_url=str(simulator.base_url),
        retry=retry or POLICY,
        sleep=sleeps,
    )


@pytest.fixture
def client(
    http: httpx.AsyncClient, simulator: RunningSimulator, account_id: str, sleeps: Sleeps
) -> CloudflareClient:
    return make(http, simulator, account_id, sleeps)


async def seed_jobs(
    control: httpx.AsyncClient, account_id: str, count: int, status: str = "PENDING"
) -> list[str]:
    response = await control.post(
        "/__sim/seed-jobs", json={"account_id": account_id, "count": count, "status": status, "hold": True}
    )
    response.raise_for_status()
    body: Any = response.json()
    jobs = body.get("jobs") or body.get("job_ids") or body.get("result") or []
    return [job if isinstance(job, str) else job["job_id"] for job in jobs]


async def set_status(control: httpx.AsyncClient, job_id: str, status: str) -> None:
    response = await control.post(f"/__sim/jobs/{job_id}/status", json={"status": status})
    response.raise_for_status()


async def fault(control: httpx.AsyncClient, **spec: Any) -> None:
    response = await control.post("/__sim/faults", json=spec)
    response.raise_for_status()


async def stats(control: httpx.AsyncClient) -> dict[str, Any]:
    response = await control.get("/__sim/stats")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def move(comment: str | None = "component test") -> CreateJobRequest:
    return CreateJobRequest(
        action=ActionType.MOVE,
        destination=Destination.JUNK_EMAIL,
        search_params=SearchParams(
            detections_only=False, start=datetime.now(UTC) - timedelta(days=7), end=datetime.now(UTC)
        ),
        comment=comment,
    )


async def all_jobs(client: CloudflareClient) -> list[str]:
    return [job.job_id async for job in client.iter_jobs()]


# ---------------------------------------------------------------- every operation


async def test_create_get_list_messages_cancel_delete(
    client: CloudflareClient, control: httpx.AsyncClient
) -> None:
    job = await client.create_job(move(), request_tag="op1")
    assert job.comment == f"component test {tag_marker('op1')}"
    assert job.destination == "JunkEmail"
    assert job.search_params.detections_only is False

    fetched = await client.get_job(job.job_id)
    assert fetched.job_id == job.job_id

    page = await client.list_jobs(per_page=10)
    assert job.job_id in {j.job_id for j in page.items}
    assert job.job_id in await all_jobs(client)
    assert (await client.find_job_by_tag("op1")) is not None
    assert (await client.find_job_by_tag("never-used")) is None

    # Right after a create nothing is discovered yet; a finished job lists every message it touched.
    await set_status(control, job.job_id, "COMPLETED")
    messages = await client.list_job_messages(job.job_id)
    finished = await client.get_job(job.job_id)
    assert messages, "a completed job over a week of mail lists its messages"
    assert len(messages) == finished.total_messages_discovered
    assert all(m.message_id for m in messages)

    release = await client.create_job(
        CreateJobRequest(action=ActionType.RELEASE, search_params=SearchParams(detections_only=True))
    )
    assert release.action_type == "RELEASE"
    assert release.destination is None

    cancelled = await client.cancel_job(release.job_id)
    assert cancelled.status == "CANCELLED"
    await client.delete_job(release.job_id)
    with pytest.raises(errors.NotFoundError):
        await client.get_job(release.job_id)


async def test_list_filters_by_status_and_action(
    client: CloudflareClient, control: httpx.AsyncClient
) -> None:
    ids = await seed_jobs(control, client.account_id, 3, "PROCESSING")
    listed = [job async for job in client.iter_jobs(status="PROCESSING")]
    assert set(ids) <= {job.job_id for job in listed}
    assert all(job.status == "PROCESSING" for job in listed)
    moves = await client.list_jobs(action_type="RELEASE", per_page=1000)
    assert all(job.action_type == "RELEASE" for job in moves.items)


# ---------------------------------------------------------------- error paths


async def test_wrong_token_is_permission_denied(
    http: httpx.AsyncClient, simulator: RunningSimulator, account_id: str, sleeps: Sleeps
) -> None:
    client = make(http, simulator, account_id, sleeps, token="wrong-SECRET")
    with pytest.raises(errors.PermissionDeniedError) as caught:
        await client.list_jobs()
    assert caught.value.status == 403
    assert caught.value.codes == (9109,)
    assert "wrong-SECRET" not in str(caught.value)
    assert client.api_calls == 1


async def test_missing_credentials_are_an_authentication_error(
    http: httpx.AsyncClient, simulator: RunningSimulator, account_id: str
) -> None:
    client = CloudflareClient(
        http,
        account_id=account_id,
        credentials=Credentials(email="me@example.com", api_key=SecretStr("")),
        base_url=str(simulator.base_url),
    )
    with pytest.raises((errors.AuthenticationError, errors.PermissionDeniedError)) as caught:
        await client.list_jobs()
    assert caught.value.status in {401, 403}


async def test_unknown_filter_value_is_a_bad_request(client: CloudflareClient) -> None:
    # Unknown statuses are passed through (forward compatible); the API rejects this one.
    with pytest.raises(errors.BadRequestError) as caught:
        await client.list_jobs(status="NOT_A_STATUS")
    assert caught.value.status == 400
    assert caught.value.codes == (1002,)
    assert client.api_calls == 1


async def test_unknown_job_is_not_found(client: CloudflareClient) -> None:
    with pytest.raises(errors.NotFoundError) as caught:
        await client.get_job(str(uuid.uuid4()))
    assert caught.value.status == 404
    assert caught.value.codes
    assert client.api_calls == 1


async def test_cancel_of_finished_job_is_a_conflict(
    client: CloudflareClient, control: httpx.AsyncClient
) -> None:
    [job_id] = await seed_jobs(control, client.account_id, 1, "COMPLETED")
    with pytest.raises(errors.ConflictError) as caught:
        await client.cancel_job(job_id)
    assert caught.value.status == 409
    # Merged here from the unit test_cancel_of_a_finished_job_is_a_conflict: the code is in the message.
    assert caught.value.codes == (1409,) and "1409" in str(caught.value)
    assert client.api_calls == 1


async def test_invalid_job_id_never_reaches_the_server(
    client: CloudflareClient, control: httpx.AsyncClient
) -> None:
    before = await stats(control)
    with pytest.raises(errors.InvalidRequestError):
        await client.get_job("not-a-uuid")
    assert client.api_calls == 0
    assert (await stats(control)) == before


# ---------------------------------------------------------------- retries


async def test_429_with_retry_after_is_honoured(
    client: CloudflareClient, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    await fault(control, status=429, count=1, retry_after=2)
    await client.list_jobs()
    assert sleeps.delays == [2.0]
    assert client.api_calls == 2


async def test_429_beyond_the_bound_gives_up_with_when_to_retry(
    client: CloudflareClient, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    await fault(control, status=429, count=1, retry_after=300)
    with pytest.raises(errors.RateLimitedError) as caught:
        await client.list_jobs()
    assert caught.value.retry_after == 300
    assert "retry in 300 s" in str(caught.value)
    assert sleeps.delays == []


async def test_5xx_burst_is_retried_then_succeeds(
    client: CloudflareClient, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    await fault(control, status=503, count=2)
    await client.list_jobs()
    assert client.api_calls == 3
    assert sleeps.delays == [0.5, 1.0]


async def test_5xx_past_the_bound_gives_up_clearly(
    client: CloudflareClient, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    await fault(control, status=500, count=10)
    with pytest.raises(errors.ServerError) as caught:
        await client.list_jobs()
    assert client.api_calls == 4
    assert "gave up after 4 attempts" in str(caught.value)


async def test_latency_beyond_the_timeout_is_a_timeout_error(
    simulator: RunningSimulator, account_id: str, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    await fault(control, latency=1.0, count=2)
    async with httpx.AsyncClient(timeout=0.2) as http:
        client = make(http, simulator, account_id, sleeps, retry=replace(POLICY, max_attempts=2))
        with pytest.raises(errors.RequestTimeoutError):
            await client.list_jobs()
    assert client.api_calls == 2


async def test_create_after_an_ambiguous_failure_makes_no_duplicate(
    simulator: RunningSimulator, account_id: str, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    # The server creates the job, then answers too late: the client times out, finds its tag, stops.
    await fault(control, latency=1.0, count=1, method="POST")
    async with httpx.AsyncClient(timeout=0.3) as http:
        client = make(http, simulator, account_id, sleeps)
        job = await client.create_job(move(), request_tag="ambiguous1")
        tagged = [j async for j in client.iter_jobs() if j.comment and tag_marker("ambiguous1") in j.comment]
    assert [j.job_id for j in tagged] == [job.job_id]


async def test_create_after_5xx_makes_exactly_one_job(
    client: CloudflareClient, control: httpx.AsyncClient
) -> None:
    # Issue 9: a 5xx is ambiguous, so the create is never sent twice. Made, then 503: found by tag.
    await fault(control, status=503, count=1, method="POST", after=True)
    job = await client.create_job(move(), request_tag="fivexx")
    tagged = [j async for j in client.iter_jobs() if j.comment and tag_marker("fivexx") in j.comment]
    assert [j.job_id for j in tagged] == [job.job_id]


async def test_create_5xx_before_acting_is_unknown_and_makes_no_job(
    client: CloudflareClient, control: httpx.AsyncClient
) -> None:
    await fault(control, status=503, count=1, method="POST")
    with pytest.raises(errors.CreateOutcomeUnknownError):
        await client.create_job(move(), request_tag="fivexx2")
    tagged = [j async for j in client.iter_jobs() if j.comment and tag_marker("fivexx2") in j.comment]
    assert tagged == []


# ---------------------------------------------------------------- pagination


async def test_paging_2500_jobs_takes_the_expected_requests(
    client: CloudflareClient, control: httpx.AsyncClient
) -> None:
    await seed_jobs(control, client.account_id, 2500, "PENDING")
    calls = client.api_calls
    jobs = [job async for job in client.iter_jobs(status="PENDING", per_page=1000)]
    assert len(jobs) == 2500
    assert len({job.job_id for job in jobs}) == 2500
    assert client.api_calls - calls == 3  # 1000 + 1000 + 500 (short page ends the walk)

    calls = client.api_calls
    assert len([job async for job in client.iter_jobs(status="PENDING", per_page=500)]) == 2500
    assert client.api_calls - calls == 6  # five full pages, then an empty one


# ---------------------------------------------------------------- search


async def test_search_pages_with_cursor_and_caps(client: CloudflareClient) -> None:
    params = SearchParams(detections_only=False, start=datetime.now(UTC) - timedelta(days=30))
    everything = await client.search_messages(params, limit=100000, per_page=1000)
    assert not everything.capped
    if everything.count < 3:
        pytest.skip("simulator has too few messages to page through")
    calls = client.api_calls
    capped = await client.search_messages(params, limit=everything.count - 1, per_page=2)
    assert capped.capped
    assert capped.count == everything.count - 1
    assert client.api_calls - calls == (everything.count - 1 + 1) // 2
    assert [m.id for m in capped.messages] == [m.id for m in everything.messages[: capped.count]]


async def test_search_202_is_polled(
    client: CloudflareClient, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    params = SearchParams(detections_only=False)
    direct = await client.search_messages(params, limit=10)
    assert direct.count == 10, "the simulator's mailbox holds more than 10 messages of the last week"
    calls = client.api_calls
    await fault(control, status=202, count=1, path="/email-security/investigate")
    result = await client.search_messages(params, limit=10)
    # The 202 answer, then the poll of its Location that returns the page.
    assert client.api_calls - calls == 2
    assert [m.id for m in result.messages] == [m.id for m in direct.messages]


# ---------------------------------------------------------------- moved from the unit tests
# (tests/unit/test_cloudflare_client.py)
# These behaviour tests ran against an in-memory FakeJobs whose failure scripts duplicated the simulator's
# fault injection; they keep their names and assertions, with the simulator serving each failure.


class SentRequests(httpx.AsyncBaseTransport):
    """Records every request as it is sent (also those that then time out), and passes it on."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def methods(self) -> list[str]:
        return [request.method for request in self.requests]

    def posts(self) -> int:
        return self.methods().count("POST")


@pytest.fixture
async def sent() -> AsyncIterator[SentRequests]:
    transport = SentRequests()
    yield transport
    await transport.aclose()


def recorded_client(
    sent: SentRequests,
    simulator: RunningSimulator,
    account_id: str,
    sleeps: Sleeps,
    *,
    timeout: float = 5.0,
    retry: RetryPolicy | None = None,
) -> tuple[httpx.AsyncClient, CloudflareClient]:
    http = httpx.AsyncClient(transport=sent, timeout=timeout)
    return http, make(http, simulator, account_id, sleeps, retry=retry)


async def tagged(client: CloudflareClient, tag: str) -> list[str]:
    return [j.job_id async for j in client.iter_jobs() if j.comment and tag_marker(tag) in j.comment]


async def test_5xx_is_retried_with_capped_backoff_then_gives_up_clearly(
    client: CloudflareClient, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    [job_id] = await seed_jobs(control, client.account_id, 1, "PROCESSING")
    await fault(control, status=503)  # every request, for as long as the test runs
    with pytest.raises(errors.ServerError) as caught:
        await client.get_job(job_id)
    assert client.api_calls == 4
    assert sleeps.delays == [0.5, 1.0, 2.0]
    assert caught.value.attempts == 4
    assert "gave up after 4 attempts" in str(caught.value)
    assert "10002: Simulated server error (503)" in str(caught.value)  # Cloudflare's code and message


async def test_timeouts_are_retried_then_raise_timeout_error(
    simulator: RunningSimulator, account_id: str, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    [job_id] = await seed_jobs(control, account_id, 1, "PROCESSING")
    await fault(control, latency=1.0, method="GET")
    async with httpx.AsyncClient(timeout=0.2) as http:
        client = make(http, simulator, account_id, sleeps, retry=replace(POLICY, max_attempts=2))
        with pytest.raises(errors.RequestTimeoutError):
            await client.get_job(job_id)
    assert client.api_calls == 2
    assert sleeps.delays == [0.5]


async def test_429_honours_retry_after_seconds(
    client: CloudflareClient, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    [job_id] = await seed_jobs(control, client.account_id, 1, "PROCESSING")
    await fault(control, status=429, count=1, retry_after=7)
    assert (await client.get_job(job_id)).job_id == job_id
    assert sleeps.delays == [7.0]
    assert client.api_calls == 2


async def test_429_longer_than_bound_gives_up_at_once_with_retry_after(
    client: CloudflareClient, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    await fault(control, status=429, retry_after=300)
    with pytest.raises(errors.RateLimitedError) as caught:
        await client.list_jobs()
    assert caught.value.retry_after == 300.0
    assert "retry in 300 s" in str(caught.value)
    assert sleeps.delays == []
    assert client.api_calls == 1


async def test_429_every_time_gives_up_after_max_attempts(
    client: CloudflareClient, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    await fault(control, status=429, retry_after=1)
    with pytest.raises(errors.RateLimitedError) as caught:
        await client.list_jobs()
    assert client.api_calls == 4
    assert sleeps.delays == [1.0, 1.0, 1.0]
    assert caught.value.attempts == 4


async def test_logs_show_method_path_status_but_never_credentials(
    http: httpx.AsyncClient,
    simulator: RunningSimulator,
    account_id: str,
    control: httpx.AsyncClient,
    sleeps: Sleeps,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A 503, then the simulator refuses the token (a secret-looking one, which must not be logged).
    client = make(http, simulator, account_id, sleeps, token="tok-SECRET-do-not-leak")
    await fault(control, status=503, count=1)
    with (
        caplog.at_level(logging.DEBUG, logger="sweep.cloudflare"),
        pytest.raises(errors.PermissionDeniedError),
    ):
        await client.list_jobs()
    assert f"GET /accounts/{account_id}/email-security/investigate/bulk -> 503 (attempt 1)" in caplog.text
    assert "-> 403 (attempt 2)" in caplog.text
    assert "tok-SECRET-do-not-leak" not in caplog.text


async def test_create_stamps_a_generated_tag(
    sent: SentRequests, simulator: RunningSimulator, account_id: str, sleeps: Sleeps
) -> None:
    http, client = recorded_client(sent, simulator, account_id, sleeps)
    async with http:
        job = await client.create_job(move("phish wave"))
    assert job.comment is not None
    assert job.comment.startswith("phish wave [sweep:")
    assert json.loads(sent.requests[0].content)["destination"] == "JunkEmail"


async def test_create_timing_out_after_the_server_created_it_returns_that_job(
    sent: SentRequests,
    simulator: RunningSimulator,
    account_id: str,
    control: httpx.AsyncClient,
    sleeps: Sleeps,
) -> None:
    http, client = recorded_client(sent, simulator, account_id, sleeps, timeout=0.3)
    async with http:
        for i in range(5):
            await client.create_job(move("older"), request_tag=f"other{i}")
        sent.requests.clear()
        # The create is done, then the answer comes after the client stopped waiting.
        await fault(control, latency=1.0, count=1, method="POST")
        job = await client.create_job(move("phish wave"), request_tag="tag42")
        assert job.comment == "phish wave [sweep:tag42]"
        assert sent.posts() == 1
        assert sent.methods() == ["POST", "GET"]
        assert sleeps.delays == [0.5]
        assert await tagged(client, "tag42") == [job.job_id]


async def test_create_5xx_after_creating_returns_that_job(
    sent: SentRequests,
    simulator: RunningSimulator,
    account_id: str,
    control: httpx.AsyncClient,
    sleeps: Sleeps,
) -> None:
    http, client = recorded_client(sent, simulator, account_id, sleeps)
    async with http:
        await fault(control, status=502, count=1, method="POST", after=True)
        job = await client.create_job(move("phish wave"), request_tag="t5")
        assert sent.posts() == 1
        assert await all_jobs(client) == [job.job_id]
    assert (await stats(control))["jobs_created"] == 1


async def test_create_5xx_before_creating_is_unknown_after_one_lookup_and_never_reposts(
    sent: SentRequests,
    simulator: RunningSimulator,
    account_id: str,
    control: httpx.AsyncClient,
    sleeps: Sleeps,
) -> None:
    # Issue 9 (was: "looks up then retries once"): a 5xx may come after Cloudflare made the job, so
    # a second POST could make a second job. One look-up by tag; not found means the outcome is
    # unknown (the caller keeps resolving it by tag), never a retry.
    http, client = recorded_client(sent, simulator, account_id, sleeps)
    async with http:
        await fault(control, status=500, count=1, method="POST")
        with pytest.raises(errors.CreateOutcomeUnknownError) as caught:
            await client.create_job(move("phish wave"), request_tag="t6")
        assert sent.methods() == ["POST", "GET"]
        assert caught.value.request_tag == "t6"
        assert await all_jobs(client) == []


async def test_create_never_posts_twice_whatever_the_5xx_and_a_failing_lookup_is_unknown(
    sent: SentRequests,
    simulator: RunningSimulator,
    account_id: str,
    control: httpx.AsyncClient,
    sleeps: Sleeps,
) -> None:
    # Was "gives up after max attempts without duplicates": now one POST, however many tries remain.
    http, client = recorded_client(sent, simulator, account_id, sleeps, retry=replace(POLICY, max_attempts=3))
    async with http:
        await fault(
            control,
            rules=[
                {"status": 500, "method": "POST", "after": True, "count": 1},
                {"status": 500, "method": "GET", "count": 3},
            ],
        )
        with pytest.raises(errors.CreateOutcomeUnknownError) as caught:
            await client.create_job(move("phish wave"), request_tag="t7")
        assert sent.posts() == 1
        assert "looking the job up failed too" in caught.value.user_message()
        await control.post("/__sim/faults", json={})
        assert len(await tagged(client, "t7")) == 1  # Cloudflare made it: resolve by tag, never re-create
    assert (await stats(control))["jobs_created"] == 1


async def test_create_4xx_is_a_definite_failure_without_lookup(
    sent: SentRequests, simulator: RunningSimulator, account_id: str, sleeps: Sleeps
) -> None:
    # A refused token (403) is known not to have made anything: no look-up, no "unknown".
    http = httpx.AsyncClient(transport=sent, timeout=5.0)
    async with http:
        client = make(http, simulator, account_id, sleeps, token="not-the-simulators-token")
        with pytest.raises(errors.APIStatusError) as caught:
            await client.create_job(move("phish wave"), request_tag="t7b")
        assert not isinstance(caught.value, errors.CreateOutcomeUnknownError)
        assert caught.value.status is not None and 400 <= caught.value.status < 500
        assert sent.methods() == ["POST"]


async def test_create_429_is_unambiguous_waits_and_retries_without_lookup(
    sent: SentRequests,
    simulator: RunningSimulator,
    account_id: str,
    control: httpx.AsyncClient,
    sleeps: Sleeps,
) -> None:
    http, client = recorded_client(sent, simulator, account_id, sleeps)
    async with http:
        await fault(control, status=429, count=1, retry_after=2, method="POST")
        job = await client.create_job(move("phish wave"), request_tag="t8")
        assert sent.methods() == ["POST", "POST"]
        assert sleeps.delays == [2.0]
        assert await all_jobs(client) == [job.job_id]


async def test_find_job_by_tag_walks_at_most_the_given_pages(client: CloudflareClient) -> None:
    # Created oldest first, so the list (newest first) is n0, n1, … n24: n12 is on page 2 of 10.
    for i in reversed(range(25)):
        await client.create_job(move(None), request_tag=f"n{i}")
    calls = client.api_calls
    assert (await client.find_job_by_tag("n12", per_page=10)) is not None
    assert client.api_calls - calls == 2
    assert (await client.find_job_by_tag("n24", pages=2, per_page=10)) is None
    assert (await client.find_job_by_tag("missing", per_page=10)) is None
    assert client.api_calls - calls == 2 + 2 + 3
    with pytest.raises(errors.InvalidRequestError):
        await client.find_job_by_tag("x", pages=0)


async def test_cancel_retried_after_it_took_effect_returns_the_cancelled_job(
    client: CloudflareClient, control: httpx.AsyncClient
) -> None:
    [job_id] = await seed_jobs(control, client.account_id, 1, "PROCESSING")
    # The cancel takes effect, then the answer is lost: the retry gets 409, a GET shows CANCELLED.
    await fault(control, status=502, count=1, method="POST", path="/cancel", after=True)
    job = await client.cancel_job(job_id)
    assert job.status == "CANCELLED"
    assert client.api_calls == 3


async def test_cancel_conflict_after_retry_for_a_completed_job_is_still_a_conflict(
    client: CloudflareClient, control: httpx.AsyncClient
) -> None:
    [job_id] = await seed_jobs(control, client.account_id, 1, "COMPLETED")
    await fault(control, status=500, count=1, method="POST", path="/cancel")
    with pytest.raises(errors.ConflictError):
        await client.cancel_job(job_id)
    assert client.api_calls == 3  # the 500, the 409, the GET that shows COMPLETED


async def test_delete_retried_after_it_took_effect_is_a_success(
    client: CloudflareClient, control: httpx.AsyncClient
) -> None:
    [job_id] = await seed_jobs(control, client.account_id, 1, "COMPLETED")
    await fault(control, status=504, count=1, method="DELETE", after=True)
    await client.delete_job(job_id)
    assert client.api_calls == 2
    with pytest.raises(errors.NotFoundError):
        await client.get_job(job_id)


async def test_delete_of_unknown_job_is_not_found(client: CloudflareClient) -> None:
    with pytest.raises(errors.NotFoundError):
        await client.delete_job(str(uuid.uuid4()))
    assert client.api_calls == 1


async def test_iter_jobs_stops_on_short_page_ignoring_total_count(
    sent: SentRequests,
    simulator: RunningSimulator,
    account_id: str,
    control: httpx.AsyncClient,
    sleeps: Sleeps,
) -> None:
    response = await control.post(
        "/__sim/seed-jobs", json={"count": 25, "status": "PENDING", "hold": True, "action": "MOVE"}
    )
    response.raise_for_status()
    await seed_jobs(control, account_id, 5, "COMPLETED")  # not listed: another status
    http, client = recorded_client(sent, simulator, account_id, sleeps)
    async with http:
        jobs = [job async for job in client.iter_jobs(per_page=10, status="PENDING", action_type="MOVE")]
    assert len(jobs) == 25
    assert client.api_calls == 3
    assert sent.requests[0].url.params["status"] == "PENDING"
    assert sent.requests[0].url.params["action_type"] == "MOVE"


async def test_iter_jobs_stops_on_empty_page(client: CloudflareClient, control: httpx.AsyncClient) -> None:
    await seed_jobs(control, client.account_id, 20)
    assert len([job async for job in client.iter_jobs(per_page=10)]) == 20
    assert client.api_calls == 3


async def test_job_messages_walk_pages(client: CloudflareClient, control: httpx.AsyncClient) -> None:
    job = await client.create_job(move())
    await set_status(control, job.job_id, "COMPLETED")
    finished = await client.get_job(job.job_id)
    everything = await client.list_job_messages(job.job_id)
    assert len(everything) == finished.total_messages_discovered > 3
    completed = [m.postfix_id for m in everything if m.status == "COMPLETED"]
    assert len(completed) > 3
    calls = client.api_calls
    got = [m async for m in client.iter_job_messages(job.job_id, per_page=3, status="COMPLETED")]
    assert [m.postfix_id for m in got] == completed
    # Pages of 3 until a short (or, for an exact multiple, an empty) page.
    assert client.api_calls - calls == len(completed) // 3 + 1


async def test_search_follows_cursors_and_sends_params(
    sent: SentRequests, simulator: RunningSimulator, account_id: str, sleeps: Sleeps
) -> None:
    start = (datetime.now(UTC) - timedelta(days=30)).replace(microsecond=0)
    params = SearchParams(detections_only=False, start=start, final_disposition="SPAM")
    http, client = recorded_client(sent, simulator, account_id, sleeps)
    async with http:
        result = await client.search_messages(params, limit=1000, per_page=100)
    assert 200 < result.count < 1000, "a few pages of SPAM in the simulator's mailbox"
    assert not result.capped
    assert client.api_calls == -(-result.count // 100)
    first = sent.requests[0].url.params
    assert first["detections_only"] == "false"
    assert first["start"] == start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert first["final_disposition"] == "SPAM"
    assert "cursor" not in first
    assert "page" not in first
    assert sent.requests[1].url.params["cursor"]
    assert all(m.final_disposition == "SPAM" for m in result.messages)


async def test_search_stops_at_limit_and_reports_capped(client: CloudflareClient) -> None:
    params = SearchParams(detections_only=False, final_disposition="SPAM")
    everything = await client.search_messages(params, limit=1000, per_page=100)
    assert everything.count > 150 and not everything.capped
    calls = client.api_calls
    result = await client.search_messages(params, limit=150, per_page=100)
    assert result.count == 150
    assert result.capped
    assert client.api_calls - calls == 2
    exact = await client.search_messages(params, limit=everything.count, per_page=100)
    assert (exact.count, exact.capped) == (everything.count, False)


async def test_search_exact_subject_is_sent_as_subject_and_filtered(
    sent: SentRequests, simulator: RunningSimulator, account_id: str, sleeps: Sleeps
) -> None:
    # The search matches subject keywords (so "Ion" also finds "Webinar invitation: Harbor at scale");
    # the exact subject is applied by the client to what comes back.
    subject = "Webinar invitation: Ion at scale"
    http, client = recorded_client(sent, simulator, account_id, sleeps)
    async with http:
        loose = await client.search_messages(
            SearchParams(detections_only=False, subject=subject), per_page=10
        )
        sent.requests.clear()
        result = await client.search_messages(
            SearchParams(detections_only=False, exact_subject=subject), per_page=10
        )
    assert sent.requests[0].url.params["subject"] == subject
    assert "exact_subject" not in sent.requests[0].url.params
    assert 0 < result.count < loose.count
    assert all(m.subject == subject for m in result.messages)
    assert [m.id for m in result.messages] == [m.id for m in loose.messages if m.subject == subject]
