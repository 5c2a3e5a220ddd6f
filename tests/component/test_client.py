"""The Cloudflare client against the simulator over real HTTP: operations, errors, retries, paging."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.cloudflare import errors
from bot.cloudflare.client import CloudflareClient, Credentials, RetryPolicy, tag_marker
from bot.cloudflare.models import ActionType, CreateJobRequest, Destination, SearchParams

pytest.importorskip("bot.simulator.server", reason="simulator not available")

TOKEN = "test-token"


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
async def control(simulator: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=root(simulator.base_url), timeout=10) as client:
        yield client


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make(
    http: httpx.AsyncClient,
    simulator: Any,
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
        retry=retry or RetryPolicy(jitter=0),
        sleep=sleeps,
    )


@pytest.fixture
def client(http: httpx.AsyncClient, simulator: Any, account_id: str, sleeps: Sleeps) -> CloudflareClient:
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

    messages = await client.list_job_messages(job.job_id)
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
    http: httpx.AsyncClient, simulator: Any, account_id: str, sleeps: Sleeps
) -> None:
    client = make(http, simulator, account_id, sleeps, token="wrong-SECRET")
    with pytest.raises(errors.PermissionDeniedError) as caught:
        await client.list_jobs()
    assert caught.value.status == 403
    assert caught.value.codes == (9109,)
    assert "wrong-SECRET" not in str(caught.value)
    assert client.api_calls == 1


async def test_missing_credentials_are_an_authentication_error(
    http: httpx.AsyncClient, simulator: Any, account_id: str
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
    simulator: Any, account_id: str, control: httpx.AsyncClient, sleeps: Sleeps
) -> None:
    await fault(control, latency=1.0, count=2)
    async with httpx.AsyncClient(timeout=0.2) as http:
        client = make(http, simulator, account_id, sleeps, retry=RetryPolicy(max_attempts=2, jitter=0))
        with pytest.raises(errors.TimeoutError):
            await client.list_jobs()
    assert client.api_calls == 2


async def test_create_after_an_ambiguous_failure_makes_no_duplicate(
    simulator: Any, account_id: str, control: httpx.AsyncClient, sleeps: Sleeps
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
    await fault(control, status=202, count=1, path="/email-security/investigate")
    result = await client.search_messages(SearchParams(detections_only=False), limit=10)
    assert result.count >= 0
    assert client.api_calls >= 2
