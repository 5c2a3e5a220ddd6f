"""OpenAPI conformance: every request the client sends to the simulator, and every answer it parses,
is valid against Cloudflare's official document (spec/email-security-investigate.openapi.json)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from pydantic import SecretStr

from bot.cloudflare import errors
from bot.cloudflare.client import CloudflareClient, Credentials, RetryPolicy
from bot.cloudflare.models import ActionType, CreateJobRequest, Destination, SearchParams
from bot.simulator.app import RunningSimulator
from tests.support import RecordingTransport, load_openapi


def to_mock(request: httpx.Request, base_path: str) -> MockRequest:
    """Re-home the request on the spec's server (https://api.cloudflare.com/client/v4)."""
    return MockRequest(
        "https://api.cloudflare.com",
        request.method.lower(),
        "/client/v4" + request.url.path.removeprefix(base_path),
        args=dict(request.url.params.multi_items()),
        headers=dict(request.headers),
        data=request.content or None,
        content_type=request.headers.get("content-type", "application/json"),
    )


@pytest.fixture(scope="module")
def spec() -> OpenAPI:
    return load_openapi()


@pytest.fixture
async def captured(
    simulator: RunningSimulator, account_id: str
) -> AsyncIterator[tuple[CloudflareClient, RecordingTransport]]:
    capture = RecordingTransport()
    async with httpx.AsyncClient(transport=capture, timeout=10) as http:

        async def no_wait(delay: float) -> None:
            return None

        client = CloudflareClient(
            http,
            account_id=account_id,
            credentials=Credentials(api_token=SecretStr("test-token")),
            base_url=str(simulator.base_url),
            retry=RetryPolicy(jitter=0),
            sleep=no_wait,
        )
        yield client, capture


async def test_scenario_requests_and_answers_match_the_openapi_document(
    spec: OpenAPI, simulator: RunningSimulator, captured: tuple[CloudflareClient, RecordingTransport]
) -> None:
    client, capture = captured
    now = datetime.now(UTC)
    job = await client.create_job(
        CreateJobRequest(
            action=ActionType.MOVE,
            destination=Destination.DELETED_ITEMS,
            search_params=SearchParams(
                detections_only=False,
                start=now - timedelta(days=7),
                end=now,
                final_disposition="MALICIOUS",
                delivery_status="delivered",
            ),
            comment="conformance",
        )
    )
    release = await client.create_job(
        CreateJobRequest(action=ActionType.RELEASE, search_params=SearchParams(detections_only=True))
    )
    await client.list_jobs(status="PENDING", action_type="MOVE", per_page=1000)
    _ = [j async for j in client.iter_jobs(per_page=1000)]
    await client.get_job(job.job_id)
    await client.list_job_messages(job.job_id)
    await client.cancel_job(release.job_id)
    await client.delete_job(release.job_id)
    await client.search_messages(
        SearchParams(detections_only=False, start=now - timedelta(days=30)), per_page=50
    )
    await client.search_messages(
        SearchParams(detections_only=True, final_disposition="SPAM", exact_subject="Invoice"), per_page=1000
    )
    with pytest.raises(errors.NotFoundError):
        await client.get_job(str(uuid.uuid4()))

    base_path = httpx.URL(str(simulator.base_url)).path.rstrip("/")
    assert len(capture.exchanges) >= 11
    for request, response in capture.exchanges:
        mock = to_mock(request, base_path)
        spec.validate_request(mock)
        spec.validate_response(
            mock,
            MockResponse(
                response.content,
                response.status_code,
                headers=dict(response.headers),
                content_type=response.headers.get("content-type", "application/json").split(";")[0],
            ),
        )
