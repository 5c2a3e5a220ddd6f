"""Unit tests of the Cloudflare client over httpx.MockTransport: what the simulator cannot serve.

Answers no real API gives (non-JSON bodies, `success: false` on a 200, an HTTP-date Retry-After, a 202 to
another host…), local validation, and concurrency bounds. Behaviour the simulator can serve is tested over
HTTP in tests/component/test_client.py.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from bot.cloudflare import errors
from bot.cloudflare.client import (
    CloudflareClient,
    Credentials,
    RetryPolicy,
    make_request_tag,
    parse_retry_after,
    rate_limit_hook,
    tag_marker,
)
from bot.cloudflare.models import ActionType, CreateJobRequest, Destination, SearchParams
from bot.config import CloudflareSettings

ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
TOKEN = "tok-SECRET-do-not-leak"
BASE = "https://api.test/client/v4"
BULK = f"/client/v4/accounts/{ACCOUNT}/email-security/investigate/bulk"
SEARCH = f"/client/v4/accounts/{ACCOUNT}/email-security/investigate"

Handler = Callable[[httpx.Request], httpx.Response]

# The retry policy these tests run with, stated here: every expected count and delay below follows from it
# (4 tries in all; waits of 0.5 s doubling per retry, capped at 8 s; a Retry-After over 30 s is not waited
# out; no jitter), not from the client's defaults.
POLICY = RetryPolicy(
    max_attempts=4, base_delay=0.5, max_delay=8.0, max_retry_after=30.0, jitter=0, max_polls=10
)


def envelope(result: Any, *, result_info: dict[str, Any] | None = None, status: int = 200) -> httpx.Response:
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return httpx.Response(status, json=body)


def failure(status: int, code: int = 10000, message: str = "nope", **headers: str) -> httpx.Response:
    body = {"success": False, "errors": [{"code": code, "message": message}], "messages": [], "result": None}
    return httpx.Response(status, json=body, headers=headers)


def job_json(
    job_id: str | None = None, *, comment: str | None = None, status: str = "PENDING"
) -> dict[str, Any]:
    return {
        "job_id": job_id or str(uuid.uuid4()),
        "action_type": "MOVE",
        "action_params": {"type": "MOVE", "destination": "JunkEmail"},
        "search_params": {"detections_only": False, "sender": "bad@example.com"},
        "status": status,
        "total_messages_discovered": 0,
        "messages_pending": 0,
        "messages_successful": 0,
        "messages_failed": 0,
        "comment": comment,
        "created_at": "2026-11-23T07:00:00Z",
    }


def info(count: int, per_page: int, next_cursor: str | None = None) -> dict[str, Any]:
    return {"count": count, "per_page": per_page, "page": 0, "total_count": 0, "next": next_cursor}


class Recorder:
    """Records the delays the client asks to sleep instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class FakeJobs:
    """A tiny in-memory bulk-job API for what the simulator cannot serve: a refused connection on a create.

    Failures the simulator can inject (429, 5xx before or after the create, an answer too late) are
    tested against it in tests/component/test_client.py.
    """

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []
        self.create_script: list[str] = []  # per POST: "ok" or "connect"

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST" and request.url.path == BULK:
            step = self.create_script.pop(0) if self.create_script else "ok"
            if step == "connect":
                raise httpx.ConnectError("refused", request=request)
            body = json.loads(request.content)
            job = job_json(comment=body.get("comment"))
            self.jobs.insert(0, job)
            return envelope(job, status=201)
        if request.method == "GET" and request.url.path == BULK:
            page = int(request.url.params.get("page", "1"))
            per_page = int(request.url.params.get("per_page", "20"))
            chunk = self.jobs[(page - 1) * per_page : page * per_page]
            return envelope(chunk, result_info=info(len(chunk), per_page))
        return failure(404, 7003, "No route for the URI")


def make_client(
    handler: Handler,
    *,
    sleep: Recorder | None = None,
    retry: RetryPolicy | None = None,
    credentials: Credentials | None = None,
) -> CloudflareClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return CloudflareClient(
        http,
        account_id=ACCOUNT,
        credentials=credentials or Credentials(api_token=SecretStr(TOKEN)),
        base_url=BASE,
        retry=retry or POLICY,
        sleep=sleep or Recorder(),
    )


def move_request(comment: str | None = "phish wave") -> CreateJobRequest:
    return CreateJobRequest(
        action=ActionType.MOVE,
        destination=Destination.JUNK_EMAIL,
        search_params=SearchParams(sender="bad@example.com", detections_only=False),
        comment=comment,
    )


# ---------------------------------------------------------------- credentials and config


def test_token_credentials_send_bearer_header_and_hide_secret() -> None:
    creds = Credentials(api_token=SecretStr(TOKEN))
    assert creds.headers() == {"Authorization": f"Bearer {TOKEN}"}
    assert TOKEN not in repr(creds)


def test_email_key_credentials_send_legacy_headers() -> None:
    creds = Credentials(email="me@example.com", api_key=SecretStr("key-SECRET"))
    assert creds.headers() == {"X-Auth-Email": "me@example.com", "X-Auth-Key": "key-SECRET"}
    assert "key-SECRET" not in repr(creds)


def test_credentials_require_token_or_email_and_key() -> None:
    with pytest.raises(ValueError, match="api_token"):
        Credentials(email="me@example.com")


def test_from_settings_uses_account_and_hides_token() -> None:
    settings = CloudflareSettings(account_id=ACCOUNT, api_token=SecretStr(TOKEN), base_url=BASE + "/")
    client = CloudflareClient.from_settings(httpx.AsyncClient(), settings, retry=RetryPolicy(max_attempts=1))
    assert client.account_id == ACCOUNT
    assert client.retry_policy.max_attempts == 1
    assert TOKEN not in repr(client)


async def test_from_settings_requests_go_to_configured_base() -> None:
    settings = CloudflareSettings(
        account_id=ACCOUNT, email="me@example.com", api_key=SecretStr("k"), base_url=BASE
    )
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return envelope(job_json(str(uuid.UUID(int=1))))

    client = CloudflareClient.from_settings(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)), settings
    )
    await client.get_job(str(uuid.UUID(int=1)))
    assert str(seen[0].url) == f"{BASE}/accounts/{ACCOUNT}/email-security/investigate/bulk/{uuid.UUID(int=1)}"
    assert seen[0].headers["X-Auth-Email"] == "me@example.com"
    assert "authorization" not in seen[0].headers


def test_request_tags_are_short_random_and_marked() -> None:
    tags = {make_request_tag() for _ in range(50)}
    assert len(tags) == 50
    assert all(len(t) == 12 for t in tags)
    assert tag_marker("abc") == "[sweep:abc]"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("1.5", 1.5), ("-4", 0.0), ("", None), (None, None), ("soon", None)],
)
def test_parse_retry_after_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    assert parse_retry_after("Mon, 23 Nov 2026 07:00:12 GMT", now=now) == 12.0
    assert parse_retry_after("Mon, 23 Nov 2026 06:59:00 GMT", now=now) == 0.0


def test_retry_policy_backoff_is_capped_and_jittered() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4.0, jitter=0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    jittered = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter=0.5)
    assert all(0.5 <= jittered.backoff(1) <= 1.0 for _ in range(100))
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)


# ---------------------------------------------------------------- envelope and errors


async def test_get_job_unwraps_envelope_and_tolerates_unknown_values() -> None:
    job_id = str(uuid.uuid4())
    raw = job_json(job_id, status="PAUSED") | {"brand_new_field": 1, "messages_cancelled": 3}
    client = make_client(lambda request: envelope(raw))
    job = await client.get_job(job_id)
    assert job.job_id == job_id
    assert job.status == "PAUSED"
    assert job.messages_cancelled == 3
    assert client.api_calls == 1


async def test_success_false_on_200_is_an_error_with_cloudflare_codes() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "success": False,
            "errors": [{"code": 1234, "message": "odd"}],
            "messages": [],
            "result": None,
        }
        return httpx.Response(200, json=body)

    client = make_client(handler)
    with pytest.raises(errors.APIStatusError) as caught:
        await client.get_job(str(uuid.uuid4()))
    assert caught.value.codes == (1234,)
    assert "1234: odd" in str(caught.value)
    assert client.api_calls == 1


async def test_non_json_answer_is_a_response_format_error() -> None:
    client = make_client(lambda request: httpx.Response(200, text="<html>hello</html>"))
    with pytest.raises(errors.ResponseFormatError, match="not a JSON object"):
        await client.get_job(str(uuid.uuid4()))
    assert client.api_calls == 1


async def test_malformed_result_is_a_response_format_error() -> None:
    client = make_client(lambda request: envelope({"job_id": "x"}))
    with pytest.raises(errors.ResponseFormatError, match="unexpected job"):
        await client.get_job(str(uuid.uuid4()))


async def test_non_json_5xx_from_an_edge_is_a_retried_server_error() -> None:
    answers = [httpx.Response(502, text="<html>Bad gateway</html>"), envelope(job_json())]
    sleep = Recorder()
    client = make_client(lambda request: answers.pop(0), sleep=sleep)
    await client.get_job(str(uuid.uuid4()))
    assert client.api_calls == 2
    assert sleep.delays == [0.5]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (409, errors.ConflictError),
        (422, errors.APIStatusError),
    ],
)
async def test_4xx_maps_to_error_class_and_is_never_retried(status: int, kind: type[Exception]) -> None:
    client = make_client(lambda request: failure(status, 10001, "bad thing"))
    with pytest.raises(kind) as caught:
        await client.get_job(str(uuid.uuid4()))
    error = caught.value
    assert isinstance(error, errors.APIStatusError)
    assert type(error) is kind
    assert error.status == status
    assert error.errors == (errors.ErrorDetail(10001, "bad thing"),)
    assert client.api_calls == 1
    assert TOKEN not in str(error)


async def test_connect_errors_raise_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = make_client(handler, retry=replace(POLICY, max_attempts=3))
    with pytest.raises(errors.TransportError) as caught:
        await client.list_jobs()
    assert not isinstance(caught.value, errors.RequestTimeoutError)
    assert client.api_calls == 3


async def test_429_waits_are_told_to_the_rate_limit_hook_before_sleeping() -> None:
    events: list[str] = []

    async def hook(seconds: float) -> None:
        events.append(f"told {seconds:g}")

    async def sleep(delay: float) -> None:
        events.append(f"slept {delay:g}")

    answers = [
        failure(429, 10429, "slow", **{"Retry-After": "7"}),
        failure(429, 10429, "slow", **{"Retry-After": "3"}),
        envelope(job_json()),
    ]
    client = make_client(lambda request: answers.pop(0), sleep=sleep)
    rate_limit_hook.set(hook)  # pytest-asyncio runs each test in its own context
    await client.get_job(str(uuid.uuid4()))
    assert events == ["told 7", "slept 7", "told 3", "slept 3"]


async def test_a_failing_rate_limit_hook_does_not_break_the_call() -> None:
    async def hook(seconds: float) -> None:
        raise RuntimeError("slack is down")

    answers = [failure(429, 10429, "slow", **{"Retry-After": "2"}), envelope(job_json())]
    sleep = Recorder()
    client = make_client(lambda request: answers.pop(0), sleep=sleep)
    rate_limit_hook.set(hook)
    await client.get_job(str(uuid.uuid4()))
    assert sleep.delays == [2.0]


async def test_429_honours_retry_after_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    answers = [failure(429, 10429, "slow", **{"Retry-After": when}), envelope(job_json())]
    sleep = Recorder()
    client = make_client(lambda request: answers.pop(0), sleep=sleep)
    await client.get_job(str(uuid.uuid4()))
    assert len(sleep.delays) == 1
    assert 7.0 <= sleep.delays[0] <= 10.0


async def test_429_without_retry_after_uses_backoff() -> None:
    answers = [failure(429), envelope(job_json())]
    sleep = Recorder()
    client = make_client(lambda request: answers.pop(0), sleep=sleep)
    await client.get_job(str(uuid.uuid4()))
    assert sleep.delays == [0.5]


# ---------------------------------------------------------------- local validation


@pytest.mark.parametrize(
    "job_id", ["", "123", "../../accounts", "182bd5e5-6e1a-4fe4-a799-aa6d9a6ab26", "x" * 36]
)
async def test_bad_job_ids_are_refused_before_sending(job_id: str) -> None:
    client = make_client(lambda request: envelope(job_json()))
    for call in (client.get_job, client.cancel_job, client.delete_job, client.list_job_messages):
        with pytest.raises(errors.InvalidRequestError):
            await call(job_id)
    assert client.api_calls == 0


@pytest.mark.parametrize("per_page", [0, 1001, -5])
async def test_per_page_out_of_range_is_refused(per_page: int) -> None:
    client = make_client(lambda request: envelope([]))
    with pytest.raises(errors.InvalidRequestError):
        await client.list_jobs(per_page=per_page)
    with pytest.raises(errors.InvalidRequestError):
        async for _ in client.iter_jobs(per_page=per_page):
            pass
    with pytest.raises(errors.InvalidRequestError):
        await client.search_messages(SearchParams(detections_only=True), per_page=per_page)
    with pytest.raises(errors.InvalidRequestError):
        await client.list_jobs(page=0)
    assert client.api_calls == 0


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (SearchParams(sender="a@b.c"), "detections_only"),
        (
            SearchParams(
                detections_only=True,
                start=datetime(2026, 2, 1, tzinfo=UTC),
                end=datetime(2026, 1, 1, tzinfo=UTC),
            ),
            "end must not be before start",
        ),
        (SearchParams(detections_only=True, submissions=True), "submissions"),
        (SearchParams(detections_only=True, final_disposition="MALICIOUS-BEC"), "disposition"),
    ],
)
async def test_search_refuses_what_it_cannot_do_faithfully(params: SearchParams, reason: str) -> None:
    client = make_client(lambda request: envelope([]))
    with pytest.raises(errors.InvalidRequestError, match=reason):
        await client.search_messages(params)
    assert client.api_calls == 0


async def test_create_sends_explicit_detections_only_and_no_deprecated_fields() -> None:
    fake = FakeJobs()
    client = make_client(fake.handler)
    params = SearchParams.model_validate(
        {
            "sender": "bad@example.com",
            "detections_only": False,
            "action_log": True,
            "expected_disposition": "SPAM",
        }
    )
    request = CreateJobRequest(action=ActionType.RELEASE, search_params=params)
    job = await client.create_job(request, request_tag="t1")
    body = json.loads(fake.requests[0].content)
    assert body == {
        "action": "RELEASE",
        "search_params": {"sender": "bad@example.com", "detections_only": False},
        "comment": "[sweep:t1]",
    }
    assert job.comment == "[sweep:t1]"


async def test_create_refuses_bad_tag_and_overlong_comment() -> None:
    client = make_client(FakeJobs().handler)
    with pytest.raises(errors.InvalidRequestError, match="request_tag"):
        await client.create_job(move_request(), request_tag="has space")
    with pytest.raises(errors.InvalidRequestError, match="comment too long"):
        await client.create_job(move_request("x" * 1995), request_tag="abc")
    assert client.api_calls == 0


async def test_create_does_not_stamp_twice() -> None:
    fake = FakeJobs()
    client = make_client(fake.handler)
    await client.create_job(move_request("hello [sweep:abc]"), request_tag="abc")
    assert json.loads(fake.requests[0].content)["comment"] == "hello [sweep:abc]"


# ---------------------------------------------------------------- create: never a duplicate


async def test_create_connect_error_sent_nothing_so_retries_without_lookup() -> None:
    fake = FakeJobs()
    fake.create_script = ["connect"]
    client = make_client(fake.handler)
    await client.create_job(move_request(), request_tag="t9")
    assert [r.method for r in fake.requests] == ["POST", "POST"]
    assert len(fake.jobs) == 1


async def test_create_that_never_leaves_gives_up_after_max_attempts_without_lookup() -> None:
    fake = FakeJobs()
    fake.create_script = ["connect"] * 10
    sleep = Recorder()
    client = make_client(fake.handler, sleep=sleep, retry=replace(POLICY, max_attempts=3))
    with pytest.raises(errors.TransportError) as caught:
        await client.create_job(move_request(), request_tag="t11")
    assert not isinstance(caught.value, errors.CreateOutcomeUnknownError)
    assert caught.value.attempts == 3
    assert [r.method for r in fake.requests] == ["POST", "POST", "POST"]
    assert len(sleep.delays) == 2, "the shared loop's backoff between tries"


async def test_create_5xx_after_sending_is_not_retried_by_the_loop_but_looked_up_once() -> None:
    fake = FakeJobs()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            fake.handler(request)  # Cloudflare made the job, then the answer was a 502
            return failure(502, 10502, "bad gateway")
        return fake.handler(request)

    client = make_client(handler)
    job = await client.create_job(move_request(), request_tag="t12")
    assert job.job_id == fake.jobs[0]["job_id"]
    assert [r.method for r in fake.requests] == ["POST", "GET"]


async def test_create_429_is_told_to_the_rate_limit_hook_and_retried() -> None:
    events: list[str] = []

    async def hook(seconds: float) -> None:
        events.append(f"told {seconds:g}")

    async def sleep(delay: float) -> None:
        events.append(f"slept {delay:g}")

    fake = FakeJobs()
    answers = [failure(429, 10429, "slow", **{"Retry-After": "4"})]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and answers:
            return answers.pop(0)
        return fake.handler(request)

    client = make_client(handler, sleep=sleep)
    rate_limit_hook.set(hook)
    await client.create_job(move_request(), request_tag="t13")
    assert events == ["told 4", "slept 4"]
    assert len(fake.jobs) == 1


async def test_create_unreadable_2xx_returns_the_created_job() -> None:
    fake = FakeJobs()
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        response = fake.handler(request)
        if request.method == "POST":
            return httpx.Response(201, text="not json")
        return response

    client = make_client(handler)
    job = await client.create_job(move_request(), request_tag="t10")
    assert job.job_id == fake.jobs[0]["job_id"]
    assert calls == ["POST", "GET"]


# ---------------------------------------------------------------- search


def summary(i: int, subject: str = "hello") -> dict[str, Any]:
    return {
        "id": f"msg-{i}",
        "subject": subject,
        "from": "bad@example.com",
        "client_recipients": ["me@example.com"],
    }


@pytest.mark.parametrize(
    "location", ["/client/v4/accounts/{a}/email-security/investigate?poll=1", "{base}?poll=1"]
)
async def test_search_202_polls_location_until_ready(location: str) -> None:
    url = location.format(a=ACCOUNT, base=f"{BASE}/accounts/{ACCOUNT}/email-security/investigate")
    polls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if "poll" not in request.url.params:
            return httpx.Response(
                202,
                json={
                    "success": True,
                    "errors": [],
                    "messages": [],
                    "result": [],
                    "result_info": info(0, 100),
                },
                headers={"Location": url},
            )
        polls.append(str(request.url))
        if len(polls) < 3:
            return httpx.Response(
                202,
                json={
                    "success": True,
                    "errors": [],
                    "messages": [],
                    "result": [],
                    "result_info": info(0, 100),
                },
                headers={"Location": url, "Retry-After": "1"},
            )
        return envelope([summary(1), summary(2)], result_info=info(2, 100))

    sleep = Recorder()
    client = make_client(handler, sleep=sleep)
    result = await client.search_messages(SearchParams(detections_only=True))
    assert result.count == 2
    assert len(polls) == 3
    assert polls[0].startswith(BASE)
    assert sleep.delays == [0.5, 1.0, 1.0]


async def test_search_202_polling_is_bounded() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            202,
            json={"success": True, "errors": [], "messages": [], "result": [], "result_info": info(0, 100)},
            headers={"Location": "?poll=1"},
        )

    client = make_client(handler, retry=replace(POLICY, max_polls=3))
    with pytest.raises(errors.RequestTimeoutError, match="still running after 3 polls"):
        await client.search_messages(SearchParams(detections_only=True))
    assert client.api_calls == 4


async def test_search_202_to_another_host_is_refused() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            202,
            json={"success": True, "errors": [], "messages": [], "result": [], "result_info": info(0, 100)},
            headers={"Location": "https://evil.example/steal"},
        )

    client = make_client(handler)
    with pytest.raises(errors.ResponseFormatError, match="different host"):
        await client.search_messages(SearchParams(detections_only=True))
    assert client.api_calls == 1


async def test_search_202_without_location_is_a_format_error() -> None:
    client = make_client(
        lambda request: httpx.Response(202, json={"success": True, "errors": [], "result": []})
    )
    with pytest.raises(errors.ResponseFormatError, match="Location"):
        await client.search_messages(SearchParams(detections_only=True))


async def test_search_stops_on_a_repeated_cursor() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return envelope([summary(1)], result_info=info(1, 1, "same"))

    client = make_client(handler)
    with pytest.raises(errors.ResponseFormatError, match="same cursor"):
        await client.search_messages(SearchParams(detections_only=True), per_page=1)
    assert client.api_calls == 2


async def test_max_in_flight_bounds_concurrent_requests_and_the_rest_wait_their_turn() -> None:
    release = asyncio.Event()
    in_flight = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        return envelope(job_json(request.url.path.rsplit("/", 1)[-1]))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = CloudflareClient(
        http, account_id=ACCOUNT, credentials=Credentials(api_token=SecretStr(TOKEN)), max_in_flight=2
    )
    ids = [str(uuid.uuid4()) for _ in range(5)]
    calls = asyncio.gather(*(client.get_job(job_id) for job_id in ids))

    async def two_in_flight() -> None:
        while in_flight < 2:
            await asyncio.sleep(0.005)

    await asyncio.wait_for(two_in_flight(), 5)
    await asyncio.sleep(0.05)  # room for a third request, were the bound not kept
    assert peak == 2 and in_flight == 2
    release.set()
    jobs = await calls
    assert [job.job_id for job in jobs] == ids and peak == 2


async def test_waiting_too_long_for_a_request_slot_is_a_timeout_that_sent_nothing() -> None:
    release = asyncio.Event()
    holding = asyncio.Event()
    sent: list[str] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        holding.set()
        await release.wait()
        return envelope(job_json(request.url.path.rsplit("/", 1)[-1]))

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler), timeout=httpx.Timeout(5.0, pool=0.02))
    client = CloudflareClient(
        http,
        account_id=ACCOUNT,
        credentials=Credentials(api_token=SecretStr(TOKEN)),
        max_in_flight=1,
        sleep=Recorder(),
    )
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    blocking = asyncio.ensure_future(client.get_job(first))
    await asyncio.wait_for(holding.wait(), 5)  # the first request holds the only slot
    with pytest.raises(errors.RequestTimeoutError) as caught:
        await asyncio.wait_for(client.get_job(second), 5)
    assert isinstance(caught.value.__cause__, httpx.PoolTimeout)
    assert "PoolTimeout" in str(caught.value)
    assert client.api_calls == 1 and [path.rsplit("/", 1)[-1] for path in sent] == [first]
    release.set()
    assert (await blocking).job_id == first
    # The timed-out call was never sent, not even late, once the slot came free.
    assert [path.rsplit("/", 1)[-1] for path in sent] == [first]
