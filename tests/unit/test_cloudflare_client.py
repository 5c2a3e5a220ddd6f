"""Unit tests of the Cloudflare client over httpx.MockTransport (what the simulator cannot easily do)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
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
    """A tiny in-memory bulk-job API with scriptable failures for the create path."""

    def __init__(self) -> None:
        self.jobs: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []
        self.create_script: list[str] = []  # per POST: "ok", "timeout-after-create", "500", "429", "connect"
        self.list_script: list[int] = []  # per list GET: an HTTP error status to answer instead

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.method == "POST" and request.url.path == BULK:
            step = self.create_script.pop(0) if self.create_script else "ok"
            if step == "429":
                return failure(429, 10429, "slow down", **{"Retry-After": "2"})
            if step == "connect":
                raise httpx.ConnectError("refused", request=request)
            if step == "500-before":
                return failure(500, 10500, "internal")
            if step == "400":
                return failure(400, 10001, "bad request")
            body = json.loads(request.content)
            job = job_json(comment=body.get("comment"))
            self.jobs.insert(0, job)
            if step == "timeout-after-create":
                raise httpx.ReadTimeout("read timed out", request=request)
            if step == "500-after":
                return failure(502, 10502, "bad gateway")
            return envelope(job, status=201)
        if request.method == "GET" and request.url.path == BULK:
            if self.list_script:
                return failure(self.list_script.pop(0), 10500, "internal")
            page = int(request.url.params.get("page", "1"))
            per_page = int(request.url.params.get("per_page", "20"))
            chunk = self.jobs[(page - 1) * per_page : page * per_page]
            return envelope(chunk, result_info=info(len(chunk), per_page))
        return failure(404, 7003, "No route for the URI")

    def posts(self) -> int:
        return sum(1 for r in self.requests if r.method == "POST")


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
        retry=retry or RetryPolicy(jitter=0),
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


async def test_5xx_is_retried_with_capped_backoff_then_gives_up_clearly() -> None:
    sleep = Recorder()
    client = make_client(lambda request: failure(503, 10503, "busy"), sleep=sleep)
    with pytest.raises(errors.ServerError) as caught:
        await client.get_job(str(uuid.uuid4()))
    assert client.api_calls == 4
    assert sleep.delays == [0.5, 1.0, 2.0]
    assert caught.value.attempts == 4
    assert "gave up after 4 attempts" in str(caught.value)
    assert "10503: busy" in str(caught.value)


async def test_timeouts_are_retried_then_raise_timeout_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    sleep = Recorder()
    client = make_client(handler, sleep=sleep, retry=RetryPolicy(max_attempts=2, jitter=0))
    with pytest.raises(errors.TimeoutError):
        await client.get_job(str(uuid.uuid4()))
    assert client.api_calls == 2
    assert sleep.delays == [0.5]


async def test_connect_errors_raise_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = make_client(handler, retry=RetryPolicy(max_attempts=3, jitter=0))
    with pytest.raises(errors.TransportError) as caught:
        await client.list_jobs()
    assert not isinstance(caught.value, errors.TimeoutError)
    assert client.api_calls == 3


async def test_429_honours_retry_after_seconds() -> None:
    answers = [failure(429, 10429, "slow", **{"Retry-After": "7"}), envelope(job_json())]
    sleep = Recorder()
    client = make_client(lambda request: answers.pop(0), sleep=sleep)
    await client.get_job(str(uuid.uuid4()))
    assert sleep.delays == [7.0]
    assert client.api_calls == 2


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


async def test_429_longer_than_bound_gives_up_at_once_with_retry_after() -> None:
    sleep = Recorder()
    client = make_client(
        lambda request: failure(429, 10429, "blocked", **{"Retry-After": "300"}), sleep=sleep
    )
    with pytest.raises(errors.RateLimitedError) as caught:
        await client.list_jobs()
    assert caught.value.retry_after == 300.0
    assert "retry in 300 s" in str(caught.value)
    assert sleep.delays == []
    assert client.api_calls == 1


async def test_429_every_time_gives_up_after_max_attempts() -> None:
    sleep = Recorder()
    client = make_client(lambda request: failure(429, **{"Retry-After": "1"}), sleep=sleep)
    with pytest.raises(errors.RateLimitedError) as caught:
        await client.list_jobs()
    assert client.api_calls == 4
    assert sleep.delays == [1.0, 1.0, 1.0]
    assert caught.value.attempts == 4


async def test_logs_show_method_path_status_but_never_credentials(caplog: pytest.LogCaptureFixture) -> None:
    answers = [failure(503), failure(401, 10000, "Authentication error")]
    client = make_client(lambda request: answers.pop(0))
    with caplog.at_level(logging.DEBUG, logger="sweep.cloudflare"), pytest.raises(errors.AuthenticationError):
        await client.list_jobs()
    assert f"GET /accounts/{ACCOUNT}/email-security/investigate/bulk -> 503 (attempt 1)" in caplog.text
    assert "-> 401 (attempt 2)" in caplog.text
    assert TOKEN not in caplog.text


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


async def test_create_stamps_a_generated_tag() -> None:
    fake = FakeJobs()
    client = make_client(fake.handler)
    job = await client.create_job(move_request())
    assert job.comment is not None
    assert job.comment.startswith("phish wave [sweep:")
    assert json.loads(fake.requests[0].content)["destination"] == "JunkEmail"


async def test_create_timing_out_after_the_server_created_it_returns_that_job() -> None:
    fake = FakeJobs()
    fake.jobs = [job_json(comment=f"older [sweep:other{i}]") for i in range(5)]
    fake.create_script = ["timeout-after-create"]
    sleep = Recorder()
    client = make_client(fake.handler, sleep=sleep)
    job = await client.create_job(move_request(), request_tag="tag42")
    assert job.comment == "phish wave [sweep:tag42]"
    assert fake.posts() == 1
    assert sum(1 for j in fake.jobs if "[sweep:tag42]" in (j["comment"] or "")) == 1
    assert [r.method for r in fake.requests] == ["POST", "GET"]
    assert sleep.delays == [0.5]


async def test_create_5xx_after_creating_returns_that_job() -> None:
    fake = FakeJobs()
    fake.create_script = ["500-after"]
    client = make_client(fake.handler)
    job = await client.create_job(move_request(), request_tag="t5")
    assert len(fake.jobs) == 1
    assert job.job_id == fake.jobs[0]["job_id"]
    assert fake.posts() == 1


async def test_create_5xx_before_creating_is_unknown_after_one_lookup_and_never_reposts() -> None:
    # Issue 9: a 5xx may come after Cloudflare made the job, so a second POST could make a second
    # job. One look-up by tag; not found (yet) means the outcome is unknown, never "retry".
    fake = FakeJobs()
    fake.create_script = ["500-before"]
    client = make_client(fake.handler)
    with pytest.raises(errors.CreateOutcomeUnknownError) as caught:
        await client.create_job(move_request(), request_tag="t6")
    assert [r.method for r in fake.requests] == ["POST", "GET"]
    assert fake.posts() == 1
    assert caught.value.request_tag == "t6"
    assert fake.jobs == []


async def test_create_5xx_and_a_failing_lookup_is_unknown_without_duplicates() -> None:
    fake = FakeJobs()
    fake.create_script = ["500-after"]
    fake.list_script = [500] * 10
    client = make_client(fake.handler, retry=RetryPolicy(max_attempts=3, jitter=0))
    with pytest.raises(errors.CreateOutcomeUnknownError) as caught:
        await client.create_job(move_request(), request_tag="t7")
    assert fake.posts() == 1
    assert "looking the job up failed too" in caught.value.user_message()
    assert len(fake.jobs) == 1  # Cloudflare made it: the caller must keep looking, not re-create


async def test_create_4xx_is_a_definite_failure_without_lookup() -> None:
    fake = FakeJobs()
    fake.create_script = ["400"]
    client = make_client(fake.handler)
    with pytest.raises(errors.BadRequestError):
        await client.create_job(move_request(), request_tag="t7b")
    assert [r.method for r in fake.requests] == ["POST"]


async def test_create_429_is_unambiguous_waits_and_retries_without_lookup() -> None:
    fake = FakeJobs()
    fake.create_script = ["429"]
    sleep = Recorder()
    client = make_client(fake.handler, sleep=sleep)
    await client.create_job(move_request(), request_tag="t8")
    assert [r.method for r in fake.requests] == ["POST", "POST"]
    assert sleep.delays == [2.0]
    assert len(fake.jobs) == 1


async def test_create_connect_error_sent_nothing_so_retries_without_lookup() -> None:
    fake = FakeJobs()
    fake.create_script = ["connect"]
    client = make_client(fake.handler)
    await client.create_job(move_request(), request_tag="t9")
    assert [r.method for r in fake.requests] == ["POST", "POST"]
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


async def test_find_job_by_tag_walks_at_most_the_given_pages() -> None:
    fake = FakeJobs()
    fake.jobs = [job_json(comment=f"[sweep:n{i}]") for i in range(25)]
    client = make_client(fake.handler)
    assert (await client.find_job_by_tag("n12", per_page=10)) is not None
    assert client.api_calls == 2
    assert (await client.find_job_by_tag("n24", pages=2, per_page=10)) is None
    assert (await client.find_job_by_tag("missing", per_page=10)) is None
    assert client.api_calls == 2 + 2 + 3
    with pytest.raises(errors.InvalidRequestError):
        await client.find_job_by_tag("x", pages=0)


# ---------------------------------------------------------------- cancel / delete reconciliation


async def test_cancel_retried_after_it_took_effect_returns_the_cancelled_job() -> None:
    job_id = str(uuid.uuid4())
    answers = [
        failure(502),
        failure(409, 10409, "job already finished"),
        envelope(job_json(job_id, status="CANCELLED")),
    ]
    client = make_client(lambda request: answers.pop(0))
    job = await client.cancel_job(job_id)
    assert job.status == "CANCELLED"
    assert client.api_calls == 3


async def test_cancel_of_a_finished_job_is_a_conflict() -> None:
    client = make_client(lambda request: failure(409, 10409, "job already finished"))
    with pytest.raises(errors.ConflictError, match="10409"):
        await client.cancel_job(str(uuid.uuid4()))
    assert client.api_calls == 1


async def test_cancel_conflict_after_retry_for_a_completed_job_is_still_a_conflict() -> None:
    job_id = str(uuid.uuid4())
    answers = [failure(500), failure(409), envelope(job_json(job_id, status="COMPLETED"))]
    client = make_client(lambda request: answers.pop(0))
    with pytest.raises(errors.ConflictError):
        await client.cancel_job(job_id)


async def test_delete_retried_after_it_took_effect_is_a_success() -> None:
    answers = [httpx.Response(504, text="gateway timeout"), failure(404, 10404, "no such job")]
    client = make_client(lambda request: answers.pop(0))
    await client.delete_job(str(uuid.uuid4()))
    assert client.api_calls == 2


async def test_delete_of_unknown_job_is_not_found() -> None:
    client = make_client(lambda request: failure(404, 10404, "no such job"))
    with pytest.raises(errors.NotFoundError):
        await client.delete_job(str(uuid.uuid4()))


# ---------------------------------------------------------------- pagination


async def test_iter_jobs_stops_on_short_page_ignoring_total_count() -> None:
    fake = FakeJobs()
    fake.jobs = [job_json() for _ in range(25)]
    client = make_client(fake.handler)
    jobs = [job async for job in client.iter_jobs(per_page=10, status="PENDING", action_type="MOVE")]
    assert len(jobs) == 25
    assert client.api_calls == 3
    assert fake.requests[0].url.params["status"] == "PENDING"
    assert fake.requests[0].url.params["action_type"] == "MOVE"


async def test_iter_jobs_stops_on_empty_page() -> None:
    fake = FakeJobs()
    fake.jobs = [job_json() for _ in range(20)]
    client = make_client(fake.handler)
    assert len([job async for job in client.iter_jobs(per_page=10)]) == 20
    assert client.api_calls == 3


async def test_job_messages_walk_pages() -> None:
    job_id = str(uuid.uuid4())
    messages = [
        {"message_id": str(uuid.uuid4()), "postfix_id": f"p{i}", "status": "COMPLETED", "retry_count": 0}
        for i in range(7)
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"{BULK}/{job_id}/messages"
        page, per_page = int(request.url.params["page"]), int(request.url.params["per_page"])
        chunk = messages[(page - 1) * per_page : page * per_page]
        return envelope(chunk, result_info=info(len(chunk), per_page))

    client = make_client(handler)
    got = [m async for m in client.iter_job_messages(job_id, per_page=3, status="COMPLETED")]
    assert [m.postfix_id for m in got] == [f"p{i}" for i in range(7)]
    assert client.api_calls == 3
    assert len(await client.list_job_messages(job_id)) == 7


# ---------------------------------------------------------------- search


def summary(i: int, subject: str = "hello") -> dict[str, Any]:
    return {
        "id": f"msg-{i}",
        "subject": subject,
        "from": "bad@example.com",
        "client_recipients": ["me@example.com"],
    }


def cursor_search(total: int, *, subject: Callable[[int], str] = lambda i: "hello") -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == SEARCH
        per_page = int(request.url.params["per_page"])
        start = int(request.url.params.get("cursor", "0"))
        chunk = [summary(i, subject(i)) for i in range(start, min(start + per_page, total))]
        nxt = str(start + per_page) if start + per_page < total else None
        return envelope(chunk, result_info=info(len(chunk), per_page, nxt))

    return handler


async def test_search_follows_cursors_and_sends_params() -> None:
    seen: list[httpx.Request] = []
    inner = cursor_search(250)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return inner(request)

    client = make_client(handler)
    params = SearchParams(
        detections_only=False,
        sender="bad@example.com",
        start=datetime(2026, 11, 1, tzinfo=UTC),
        final_disposition="SPAM",
    )
    result = await client.search_messages(params, limit=1000, per_page=100)
    assert result.count == 250
    assert not result.capped
    assert client.api_calls == 3
    first = seen[0].url.params
    assert first["detections_only"] == "false"
    assert first["start"] == "2026-11-01T00:00:00Z"
    assert first["final_disposition"] == "SPAM"
    assert "cursor" not in first
    assert "page" not in first
    assert seen[1].url.params["cursor"] == "100"


async def test_search_stops_at_limit_and_reports_capped() -> None:
    client = make_client(cursor_search(250))
    result = await client.search_messages(SearchParams(detections_only=True), limit=150, per_page=100)
    assert result.count == 150
    assert result.capped
    assert client.api_calls == 2
    exact = make_client(cursor_search(200))
    result = await exact.search_messages(SearchParams(detections_only=True), limit=200, per_page=100)
    assert (result.count, result.capped) == (200, False)


async def test_search_exact_subject_is_sent_as_subject_and_filtered() -> None:
    seen: list[httpx.Request] = []
    inner = cursor_search(30, subject=lambda i: "Invoice" if i % 3 == 0 else "Invoice overdue")

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return inner(request)

    client = make_client(handler)
    result = await client.search_messages(
        SearchParams(detections_only=True, exact_subject="Invoice"), per_page=10
    )
    assert seen[0].url.params["subject"] == "Invoice"
    assert "exact_subject" not in seen[0].url.params
    assert result.count == 10
    assert all(m.subject == "Invoice" for m in result.messages)


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

    client = make_client(handler, retry=RetryPolicy(jitter=0, max_polls=3))
    with pytest.raises(errors.TimeoutError, match="still running after 3 polls"):
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

    async def handler(request: httpx.Request) -> httpx.Response:
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
    blocking = asyncio.ensure_future(client.get_job(str(uuid.uuid4())))
    await asyncio.wait_for(holding.wait(), 5)  # the first request holds the only slot
    with pytest.raises(errors.TimeoutError) as caught:
        await asyncio.wait_for(client.get_job(str(uuid.uuid4())), 5)
    assert isinstance(caught.value.__cause__, httpx.PoolTimeout)
    assert "PoolTimeout" in str(caught.value)
    release.set()
    await blocking
