"""The simulator is as strict as Cloudflare's OpenAPI document, over real HTTP (issue 14).

The first five tests are the findings of the schemathesis run in issue 14, one each: two 500s and three
requests the document forbids that were accepted. The rest pin the contract around them: every refusal
is a v4 envelope whose `errors[]` name the field, and nothing a client sends makes the simulator fail.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.simulator import app as simulator_app
from bot.simulator.app import RunningSimulator
from tests.support import SPEC_PATH

TOKEN = "test-token"
SHIPPED_SPEC = Path(simulator_app.__file__).parent / "email-security-investigate.openapi.json"


@pytest.fixture
async def api(simulator: RunningSimulator, account_id: str) -> AsyncIterator[httpx.AsyncClient]:
    base = f"{simulator.base_url}/accounts/{account_id}/email-security/investigate"
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as client:
        yield client


def refusal(response: httpx.Response, status: int = 400) -> list[dict[str, Any]]:
    """Return the `errors[]` of a v4 failure envelope with `status`, checking the envelope's shape."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    errors: list[dict[str, Any]] = body["errors"]
    assert errors, body
    for error in errors:
        assert isinstance(error["code"], int) and error["code"] >= 1000 and error["message"]
    assert len({json.dumps(e, sort_keys=True) for e in errors}) == len(errors), "errors are unique"
    return errors


def pointed(errors: list[dict[str, Any]]) -> dict[str, int]:
    """Map each error's `source.pointer` to its code."""
    return {error["source"]["pointer"]: error["code"] for error in errors}


def release(**search: Any) -> dict[str, Any]:
    return {"action": "RELEASE", "search_params": {"detections_only": True, **search}}


# ---------------------------------------------------------------------------- the findings of issue 14


async def test_finding_a_page_too_large_for_the_arithmetic_is_an_empty_page(
    simulator: RunningSimulator, api: httpx.AsyncClient
) -> None:
    await simulator.seed_jobs(3, "PROCESSING", hold=True)
    query = {
        "page": "7188401581758531781001216",
        "status": "PROCESSING",
        "per_page": "945",
        "action_type": "RELEASE",
    }
    response = await api.get("/bulk", params=query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True and body["result"] == []
    assert body["result_info"] == {"count": 0, "per_page": 945, "page": 0, "total_count": 0}


async def test_finding_an_object_for_message_action_in_a_create_is_400_naming_the_field(
    api: httpx.AsyncClient,
) -> None:
    errors = refusal(await api.post("/bulk", json=release(message_action={})))
    assert pointed(errors) == {"/search_params/message_action": 1002}
    assert "message_action must be" in errors[0]["message"]


async def test_finding_an_empty_start_on_the_search_is_400(api: httpx.AsyncClient) -> None:
    errors = refusal(await api.get("", params={"start": ""}))
    assert pointed(errors) == {"start": 1002}
    assert "RFC 3339 date-time" in errors[0]["message"]


async def test_finding_an_empty_action_type_and_a_per_page_that_is_no_integer_are_both_400(
    api: httpx.AsyncClient,
) -> None:
    errors = refusal(await api.get("/bulk", params={"action_type": "", "per_page": "ten"}))
    assert pointed(errors) == {"action_type": 1002, "per_page": 1006}
    assert refusal(await api.get("/bulk", params={"action_type": ""})) != []
    assert pointed(refusal(await api.get("/bulk", params={"per_page": "1.5"}))) == {"per_page": 1006}


async def test_finding_a_null_submissions_in_a_create_is_400(api: httpx.AsyncClient) -> None:
    errors = refusal(await api.post("/bulk", json=release(submissions=None)))
    assert pointed(errors) == {"/search_params/submissions": 1002}
    assert errors[0]["message"] == "submissions must be true or false"


# ---------------------------------------------------------------------------- the contract around them


@pytest.mark.parametrize(
    ("search", "pointer"),
    [
        ({"detections_only": None}, "/search_params/detections_only"),
        ({"final_disposition": None}, "/search_params/final_disposition"),
        ({"delivery_status": None}, "/search_params/delivery_status"),
        ({"message_action": None}, "/search_params/message_action"),  # nullable, but null is not in its enum
        ({"start": None}, "/search_params/start"),
        ({"start": "2026-01-01T00:00:00"}, "/search_params/start"),  # RFC 3339 needs an offset
        ({"end": "2026-01-01"}, "/search_params/end"),
        ({"end": "2026-02-30T00:00:00Z"}, "/search_params/end"),
        ({"action_log": "yes"}, "/search_params/action_log"),
        ({"smtp_helo_ip": 7}, "/search_params/smtp_helo_ip"),
    ],
)
async def test_search_params_the_document_forbids_are_400(
    api: httpx.AsyncClient, search: dict[str, Any], pointer: str
) -> None:
    assert pointed(refusal(await api.post("/bulk", json=release(**search)))) == {pointer: 1002}


async def test_what_the_document_makes_nullable_may_be_null(api: httpx.AsyncClient) -> None:
    nulls = {"alert_id": None, "domain": None, "sender": None, "subject": None, "metric": None, "query": None}
    response = await api.post("/bulk", json={**release(**nulls), "comment": None})
    assert response.status_code == 201, response.text
    assert response.json()["result"]["search_params"] == {"detections_only": True}


async def test_a_null_destination_or_expected_disposition_is_400(api: httpx.AsyncClient) -> None:
    body = {"action": "MOVE", "destination": None, "expected_disposition": None, "search_params": {}}
    assert pointed(refusal(await api.post("/bulk", json=body))) == {
        "/destination": 1002,
        "/expected_disposition": 1002,
    }


async def test_a_move_without_destination_stays_refused_though_the_document_allows_it(
    api: httpx.AsyncClient,
) -> None:
    errors = refusal(await api.post("/bulk", json={"action": "MOVE", "search_params": {}}))
    assert pointed(errors) == {"/destination": 1003}


async def test_every_violation_of_a_body_is_listed(api: httpx.AsyncClient) -> None:
    body = {"action": "PURGE", "comment": 5, "search_params": {"sender": 1, "submissions": "no"}}
    errors = refusal(await api.post("/bulk", json=body))
    assert pointed(errors) == {
        "/action": 1002,
        "/comment": 1002,
        "/search_params/sender": 1002,
        "/search_params/submissions": 1002,
    }


@pytest.mark.parametrize(
    ("query", "pointer", "code"),
    [
        ({"detections_only": "1"}, "detections_only", 1002),  # only true or false
        ({"detections_only": "TRUE"}, "detections_only", 1002),
        ({"end": "2026-01-01T00:00:00"}, "end", 1002),
        ({"page": "0"}, "page", 1006),
        ({"page": "+2"}, "page", 1006),
        ({"per_page": " 5"}, "per_page", 1006),
        ({"per_page": "9" * 5000}, "per_page", 1006),
        ({"message_action": ""}, "message_action", 1002),
        ({"final_disposition": "malicious"}, "final_disposition", 1002),
    ],
)
async def test_search_query_values_the_document_forbids_are_400(
    api: httpx.AsyncClient, query: dict[str, str], pointer: str, code: int
) -> None:
    assert pointed(refusal(await api.get("", params=query))) == {pointer: code}


async def test_a_parameter_given_twice_is_400(api: httpx.AsyncClient) -> None:
    errors = refusal(await api.get("/bulk", params=[("status", "PENDING"), ("status", "FAILED")]))
    assert pointed(errors) == {"status": 1002}
    assert "more than once" in errors[0]["message"]


async def test_far_pages_of_the_search_and_of_a_jobs_messages_are_empty(
    simulator: RunningSimulator, api: httpx.AsyncClient
) -> None:
    far = "9" * 5000  # more digits than Python converts at once
    search = await api.get("", params={"detections_only": "false", "page": far, "per_page": "1000"})
    assert search.status_code == 200, search.text
    assert search.json()["result"] == [] and search.json()["result_info"]["next"] is None
    [job_id] = await simulator.seed_jobs(1, "COMPLETED")
    messages = await api.get(f"/bulk/{job_id}/messages", params={"page": "7188401581758531781001216"})
    assert messages.status_code == 200, messages.text
    assert messages.json()["result"] == []
    assert (await api.get("/bulk", params={"page": far})).json()["result"] == []


@pytest.mark.parametrize(
    "cursor",
    [
        {"s": "x", "e": 0, "o": 0, "f": 0},
        {"s": 0, "e": [1], "o": 0, "f": 0},
        {"s": 10**400, "e": 0, "o": 0, "f": 0},
        {"s": 0, "e": 0, "o": -5, "f": 0},
        {"s": 0, "e": 0, "o": 1.5, "f": 0},
        {"s": 0, "e": 0, "o": 0, "f": True},
        ["not", "an", "object"],
    ],
)
async def test_a_forged_cursor_is_400_not_500(api: httpx.AsyncClient, cursor: Any) -> None:
    token = base64.urlsafe_b64encode(json.dumps(cursor).encode()).decode().rstrip("=")
    assert pointed(refusal(await api.get("", params={"cursor": token}))) == {"cursor": 1006}


async def test_a_body_that_is_too_deep_or_too_large_is_refused_in_the_envelope(
    api: httpx.AsyncClient,
) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    headers = {"Content-Type": "application/json"}
    assert refusal(await api.post("/bulk", content=deep, headers=headers))[0]["code"] == 1001
    large = json.dumps(release(comment="x" * 2_000_000))
    assert refusal(await api.post("/bulk", content=large, headers=headers), 413)[0]["code"] == 1001


async def test_a_malformed_job_id_names_no_job(api: httpx.AsyncClient) -> None:
    errors = refusal(await api.get("/bulk/not-a-uuid", params={"per_page": "0"}), 404)
    assert errors[0] == {
        "code": 1404,
        "message": "bulk job not found: not-a-uuid",
        "source": {"pointer": "job_id"},
    }


async def test_head_is_answered_like_get(api: httpx.AsyncClient) -> None:
    assert (await api.head("/bulk")).status_code == 200
    assert (await api.head("/bulk", params={"per_page": "x"})).status_code == 400


async def test_an_unexpected_exception_is_a_logged_500_in_the_envelope(
    simulator: RunningSimulator,
    api: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the simulator")

    monkeypatch.setattr(simulator.state, "list_jobs", broken)
    with caplog.at_level(logging.ERROR, logger="bot.simulator.app"):
        response = await api.get("/bulk")
    [error] = refusal(response, 500)
    assert error["code"] == 10002 and error["message"].startswith("Internal server error (reference ")
    reference = error["message"].removeprefix("Internal server error (reference ").rstrip(")")
    [record] = [r for r in caplog.records if r.name == "bot.simulator.app"]
    assert reference in record.getMessage() and record.exc_info is not None
    assert TOKEN not in caplog.text
    assert (await simulator.stats())["statuses"] == {"500": 1}


def test_the_simulator_ships_cloudflares_document_unchanged() -> None:
    assert SHIPPED_SPEC.read_bytes() == SPEC_PATH.read_bytes()
