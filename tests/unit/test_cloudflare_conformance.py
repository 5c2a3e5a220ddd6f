"""Every request the client builds is valid against Cloudflare's OpenAPI document (offline check).

The same check runs against the simulator over real HTTP in tests/component/test_client_conformance.py;
this one needs no server and also covers the legacy email + key authentication.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from pydantic import SecretStr

from bot.cloudflare.client import CloudflareClient, Credentials, RetryPolicy
from bot.cloudflare.models import ActionType, CreateJobRequest, Destination, SearchParams
from tests.support import load_openapi

ACCOUNT = "023e105f4ecef8ad9ca31a8372d0c353"
BASE = "https://api.cloudflare.com/client/v4"


@pytest.fixture(scope="module")
def spec() -> OpenAPI:
    return load_openapi()


def to_mock(request: httpx.Request) -> MockRequest:
    """Translate an httpx request for openapi-core (the spec's server is https://api.cloudflare.com/client/v4)."""
    return MockRequest(
        "https://api.cloudflare.com",
        request.method.lower(),
        request.url.path,
        args=dict(request.url.params.multi_items()),
        headers=dict(request.headers),
        data=request.content or None,
        content_type=request.headers.get("content-type", "application/json"),
    )


def job_json(job_id: str, comment: str | None, status: str = "COMPLETED") -> dict[str, Any]:
    return {
        "job_id": job_id,
        "action_type": "MOVE",
        "action_params": {"type": "MOVE", "destination": "JunkEmail"},
        "search_params": {"detections_only": False},
        "status": status,
        "total_messages_discovered": 1,
        "messages_pending": 0,
        "messages_successful": 1,
        "messages_failed": 0,
        "comment": comment,
        "created_at": "2026-11-23T07:00:00Z",
    }


def answer(result: Any, status: int = 200, **extra: Any) -> httpx.Response:
    return httpx.Response(
        status, json={"success": True, "errors": [], "messages": [], "result": result, **extra}
    )


@pytest.mark.parametrize(
    "credentials",
    [
        Credentials(api_token=SecretStr("token")),
        Credentials(email="me@example.com", api_key=SecretStr("key")),
    ],
    ids=["token", "email+key"],
)
async def test_every_request_and_answer_matches_the_openapi_document(
    spec: OpenAPI, credentials: Credentials
) -> None:
    job_id = str(uuid.uuid4())
    result_info = {"count": 1, "per_page": 1000, "page": 0, "total_count": 0}
    exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix(f"/client/v4/accounts/{ACCOUNT}/email-security/investigate")
        if request.method == "POST" and path == "/bulk":
            response = answer(job_json(job_id, json.loads(request.content)["comment"], "PENDING"), 201)
        elif request.method == "GET" and path == "/bulk":
            response = answer([job_json(job_id, "x")], result_info=result_info)
        elif path == f"/bulk/{job_id}" and request.method == "DELETE":
            response = answer({"id": job_id})
        elif path == f"/bulk/{job_id}":
            response = answer(job_json(job_id, "x"))
        elif path == f"/bulk/{job_id}/cancel":
            response = answer(job_json(job_id, "x", "CANCELLED"))
        elif path == f"/bulk/{job_id}/messages":
            message = {
                "message_id": str(uuid.uuid4()),
                "postfix_id": "4Xyz",
                "action_type": "MOVE",
                "action_params": {
                    "type": "MOVE",
                    "destination": "JunkEmail",
                    "client_recipient": "me@example.com",
                },
                "status": "COMPLETED",
                "retry_count": 0,
                "created_at": "2026-11-23T07:00:00Z",
            }
            response = answer([message], result_info=result_info)
        else:
            response = answer([], result_info={**result_info, "count": 0, "next": None})
        exchanges.append((request, response))
        return response

    client = CloudflareClient(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        account_id=ACCOUNT,
        credentials=credentials,
        base_url=BASE,
        retry=RetryPolicy(jitter=0),
    )
    await client.create_job(
        CreateJobRequest(
            action=ActionType.MOVE,
            destination=Destination.JUNK_EMAIL,
            search_params=SearchParams(
                sender="bad@example.com",
                detections_only=False,
                start=datetime(2026, 11, 1, tzinfo=UTC),
                end=datetime(2026, 11, 2, tzinfo=UTC),
                final_disposition="MALICIOUS",
                delivery_status="delivered",
            ),
            comment="wave 1",
        )
    )
    await client.create_job(
        CreateJobRequest(action=ActionType.RELEASE, search_params=SearchParams(detections_only=True))
    )
    await client.list_jobs(status="PROCESSING", action_type="MOVE", page=2, per_page=1000)
    await client.get_job(job_id)
    await client.list_job_messages(job_id, status="COMPLETED")
    await client.cancel_job(job_id)
    await client.delete_job(job_id)
    await client.find_job_by_tag("abc")
    await client.search_messages(
        SearchParams(
            detections_only=False,
            start=datetime(2026, 11, 1, tzinfo=UTC),
            final_disposition="SPAM",
            message_action="MOVED",
            delivery_status="quarantined",
            exact_subject="Invoice",
            recipient="me@example.com",
        ),
        per_page=1000,
    )
    assert len(exchanges) == 9
    for request, response in exchanges:
        mock = to_mock(request)
        spec.validate_request(mock)
        spec.validate_response(mock, MockResponse(response.content, response.status_code))
