"""The Cloudflare simulator over real HTTP: endpoints, errors, job life, faults and control routes."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from bot.simulator.app import RunningSimulator, SimulatorConfig, running_simulator
from bot.simulator.faults import parse_fault_spec
from bot.simulator.mailbox import _generate
from bot.simulator.server import main as simulator_main
from bot.simulator.server import serve
from tests.support import ROOT, SPEC_PATH, RecordingTransport, load_openapi

TOKEN = "test-token"
T = TypeVar("T")

COUNTERS = (
    "messages_pending",
    "messages_successful",
    "messages_failed",
    "messages_skipped",
    "messages_cancelled",
)


class FakeClock:
    """A clock the test moves by hand (installed on the simulator's state)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def api(simulator: RunningSimulator, account_id: str) -> AsyncIterator[httpx.AsyncClient]:
    base = f"{simulator.base_url}/accounts/{account_id}/email-security/investigate"
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture
async def control(simulator: RunningSimulator) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=simulator.root_url, timeout=10) as client:
        yield client


@pytest.fixture
def clock(simulator: RunningSimulator) -> FakeClock:
    fake = FakeClock()
    simulator.state.clock = fake
    return fake


async def wait_until(condition: Callable[[], Awaitable[T | None]], *, timeout: float = 10.0) -> T:
    """Poll `condition` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.02)


def assert_counters(job: dict[str, Any]) -> None:
    assert job["total_messages_discovered"] == sum(job[name] for name in COUNTERS), job
    assert all(job[name] >= 0 for name in COUNTERS)


def move(**search: Any) -> dict[str, Any]:
    return {
        "action": "MOVE",
        "destination": "JunkEmail",
        "search_params": {"detections_only": True, **search},
    }


async def create(api: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post("/bulk", json=body)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()["result"]
    return job


async def get(api: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await api.get(f"/bulk/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()["result"]
    assert_counters(job)
    return job


async def all_messages(api: httpx.AsyncClient, job_id: str, **params: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    page = 1
    while True:
        response = await api.get(f"/bulk/{job_id}/messages", params={"per_page": 100, "page": page, **params})
        assert response.status_code == 200, response.text
        batch = response.json()["result"]
        records.extend(batch)
        if len(batch) < 100:
            return records
        page += 1


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["result"] is None and body["messages"] == []
    error: dict[str, Any] = body["errors"][0]
    assert error["code"] >= 1000 and error["message"]
    return error


# ---------------------------------------------------------------------------- auth and routing


async def test_missing_credentials_are_401_and_a_wrong_token_403(
    simulator: RunningSimulator, account_id: str
) -> None:
    url = f"{simulator.base_url}/accounts/{account_id}/email-security/investigate/bulk"
    async with httpx.AsyncClient() as http:
        assert error_of(await http.get(url), 401)["code"] == 9106
        assert error_of(await http.get(url, headers={"Authorization": "Bearer nope"}), 403)["code"] == 9109
        assert error_of(await http.get(url, headers={"Authorization": f"Basic {TOKEN}"}), 403)["code"] == 9109
        legacy = {"X-Auth-Email": "soc@acme-corp.example", "X-Auth-Key": TOKEN}
        assert (await http.get(url, headers=legacy)).status_code == 200
        wrong_key = {"X-Auth-Email": "soc@acme-corp.example", "X-Auth-Key": "nope"}
        assert error_of(await http.get(url, headers=wrong_key), 403)["code"] == 9109
        assert error_of(await http.get(url, headers={"X-Auth-Key": TOKEN}), 401)["code"] == 9106


async def test_unknown_route_and_method_use_the_envelope(api: httpx.AsyncClient) -> None:
    assert error_of(await api.get("/nothing-here"), 404)["code"] == 7003
    assert error_of(await api.put("/bulk"), 405)["code"] == 7001


async def test_account_id_longer_than_32_is_rejected(simulator: RunningSimulator) -> None:
    url = f"{simulator.base_url}/accounts/{'a' * 33}/email-security/investigate/bulk"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        assert error_of(await http.get(url), 400)["code"] == 1002


# ---------------------------------------------------------------------------- create


async def test_create_move_and_release(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/bulk",
        json={
            "action": "MOVE",
            "destination": "DeletedItems",
            "comment": "phish wave",
            "search_params": {"final_disposition": "MALICIOUS", "start": "2026-01-01T00:00:00Z"},
        },
    )
    assert response.status_code == 201
    body = response.json()
    assert body["success"] is True and body["errors"] == [] and body["messages"] == []
    job = body["result"]
    uuid.UUID(job["job_id"])
    assert job["status"] == "PENDING"
    assert job["action_type"] == "MOVE"
    assert job["action_params"] == {"type": "MOVE", "destination": "DeletedItems"}
    assert job["comment"] == "phish wave"
    # detections_only defaults to true, and the answer says so.
    assert job["search_params"] == {
        "final_disposition": "MALICIOUS",
        "start": "2026-01-01T00:00:00Z",
        "detections_only": True,
    }
    assert job["started_at"] is None and job["completed_at"] is None
    assert job["created_at"].endswith("Z")
    assert_counters(job)
    assert job["total_messages_discovered"] == 0

    release = await create(api, {"action": "RELEASE", "search_params": {"detections_only": False}})
    assert release["action_params"] == {"type": "RELEASE"}
    assert release["comment"] is None


async def test_unknown_fields_and_deprecated_ones_are_accepted_and_ignored(api: httpx.AsyncClient) -> None:
    job = await create(
        api,
        {
            "action": "RELEASE",
            "expected_disposition": "SPAM",
            "something_new": {"x": 1},
            "search_params": {"detections_only": False, "action_log": True, "future_filter": "x"},
        },
    )
    assert job["search_params"] == {"detections_only": False}
    assert "something_new" not in job and "expected_disposition" not in job


@pytest.mark.parametrize(
    ("body", "code", "pointer"),
    [
        ("{not json", 1001, None),
        ("[1, 2]", 1001, None),
        ("", 1001, None),
        ({"search_params": {}}, 1003, "/action"),
        ({"action": "DELETE", "search_params": {}}, 1002, "/action"),
        ({"action": "RELEASE"}, 1003, "/search_params"),
        ({"action": "RELEASE", "search_params": "all"}, 1002, "/search_params"),
        ({"action": "MOVE", "search_params": {}}, 1003, "/destination"),
        ({"action": "MOVE", "destination": "Trash", "search_params": {}}, 1002, "/destination"),
        ({"action": "RELEASE", "destination": "Inbox", "search_params": {}}, 1004, "/destination"),
        (
            {"action": "RELEASE", "search_params": {"final_disposition": "EVIL"}},
            1002,
            "/search_params/final_disposition",
        ),
        (
            {"action": "RELEASE", "search_params": {"delivery_status": "lost"}},
            1002,
            "/search_params/delivery_status",
        ),
        (
            {"action": "RELEASE", "search_params": {"message_action": "EAT"}},
            1002,
            "/search_params/message_action",
        ),
        ({"action": "RELEASE", "search_params": {"start": "yesterday"}}, 1002, "/search_params/start"),
        ({"action": "RELEASE", "search_params": {"end": 12}}, 1002, "/search_params/end"),
        (
            {
                "action": "RELEASE",
                "search_params": {"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            },
            1005,
            "/search_params/end",
        ),
        (
            {"action": "RELEASE", "search_params": {"detections_only": "yes"}},
            1002,
            "/search_params/detections_only",
        ),
        ({"action": "RELEASE", "search_params": {"sender": 5}}, 1002, "/search_params/sender"),
        ({"action": "RELEASE", "comment": 5, "search_params": {}}, 1002, "/comment"),
        (
            {"action": "RELEASE", "expected_disposition": "BAD", "search_params": {}},
            1002,
            "/expected_disposition",
        ),
    ],
)
async def test_invalid_create_bodies_are_400(
    api: httpx.AsyncClient, body: Any, code: int, pointer: str | None
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    response = await api.post("/bulk", content=content, headers={"Content-Type": "application/json"})
    error = error_of(response, 400)
    assert error["code"] == code
    if pointer is not None:
        assert error["source"] == {"pointer": pointer}


async def test_move_failed_delivery_status_of_the_newer_revision_is_accepted(api: httpx.AsyncClient) -> None:
    job = await create(api, move(delivery_status="move_failed"))
    assert job["search_params"]["delivery_status"] == "move_failed"


# ---------------------------------------------------------------------------- get, list, paging


async def test_get_unknown_or_malformed_job_is_404(api: httpx.AsyncClient) -> None:
    assert error_of(await api.get(f"/bulk/{uuid.uuid4()}"), 404)["code"] == 1404
    assert error_of(await api.get("/bulk/not-a-uuid"), 404)["code"] == 1404
    assert error_of(await api.post(f"/bulk/{uuid.uuid4()}/cancel"), 404)["code"] == 1404
    assert error_of(await api.delete(f"/bulk/{uuid.uuid4()}"), 404)["code"] == 1404
    assert error_of(await api.get(f"/bulk/{uuid.uuid4()}/messages"), 404)["code"] == 1404


async def test_jobs_belong_to_their_account(simulator: RunningSimulator, api: httpx.AsyncClient) -> None:
    job = await create(api, move())
    other = f"{simulator.base_url}/accounts/ffffffffffffffffffffffffffffffff/email-security/investigate/bulk"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        assert error_of(await http.get(f"{other}/{job['job_id']}"), 404)["code"] == 1404
        assert (await http.get(other)).json()["result"] == []


async def test_list_pages_newest_first_until_a_short_page(
    simulator: RunningSimulator, api: httpx.AsyncClient
) -> None:
    ids = await simulator.seed_jobs(25, "PENDING", hold=True)
    seen: list[str] = []
    for page, expected in ((1, 10), (2, 10), (3, 5), (4, 0)):
        response = await api.get("/bulk", params={"page": page, "per_page": 10})
        assert response.status_code == 200
        body = response.json()
        assert len(body["result"]) == expected
        # Deprecated fields are always 0: only a short page says "no more".
        assert body["result_info"] == {"count": expected, "per_page": 10, "page": 0, "total_count": 0}
        seen.extend(job["job_id"] for job in body["result"])
    assert seen == list(reversed(ids))
    default = (await api.get("/bulk")).json()
    assert default["result_info"]["per_page"] == 20 and len(default["result"]) == 20


@pytest.mark.parametrize(
    "params",
    [
        {"page": 0},
        {"page": -1},
        {"per_page": 0},
        {"per_page": 1001},
        {"per_page": "many"},
        {"status": "RUNNING"},
        {"action_type": "PURGE"},
    ],
)
async def test_invalid_list_parameters_are_400(api: httpx.AsyncClient, params: dict[str, Any]) -> None:
    assert error_of(await api.get("/bulk", params=params), 400)["code"] in {1002, 1006}


async def test_list_filters_by_status_and_action(simulator: RunningSimulator, api: httpx.AsyncClient) -> None:
    processing = await simulator.seed_jobs(4, "PROCESSING", hold=True)
    await simulator.seed_jobs(3, "COMPLETED")
    listed = (await api.get("/bulk", params={"status": "PROCESSING", "per_page": 1000})).json()["result"]
    assert {job["job_id"] for job in listed} == set(processing)
    assert all(job["status"] == "PROCESSING" for job in listed)
    releases = (await api.get("/bulk", params={"action_type": "RELEASE", "per_page": 1000})).json()["result"]
    assert releases and all(job["action_type"] == "RELEASE" for job in releases)
    both = await api.get("/bulk", params={"action_type": "MOVE", "status": "COMPLETED", "per_page": 1000})
    assert all(j["action_type"] == "MOVE" and j["status"] == "COMPLETED" for j in both.json()["result"])


async def test_ten_thousand_active_jobs_list_in_eleven_calls(
    simulator: RunningSimulator, api: httpx.AsyncClient
) -> None:
    await simulator.seed_jobs(10_000, "PROCESSING", hold=True)
    await simulator.reset_stats()
    seen: set[str] = set()
    page = 1
    while True:
        response = await api.get("/bulk", params={"status": "PROCESSING", "per_page": 1000, "page": page})
        batch = response.json()["result"]
        seen.update(job["job_id"] for job in batch)
        if len(batch) < 1000:
            break
        page += 1
    assert len(seen) == 10_000
    stats = await simulator.stats()
    assert stats["requests"] == {"GET /accounts/{account_id}/email-security/investigate/bulk": 11}


# ---------------------------------------------------------------------------- job life


async def test_job_goes_through_every_status_with_counters_that_add_up(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    job = await create(api, move(final_disposition="MALICIOUS"))
    job_id = job["job_id"]
    clock.advance(0.1)  # job_seconds = 2.0: PENDING until 0.2 s
    assert (await get(api, job_id))["status"] == "PENDING"
    clock.advance(0.25)
    discovering = await get(api, job_id)
    assert discovering["status"] == "DISCOVERING"
    assert discovering["started_at"] is not None
    assert discovering["messages_successful"] == 0
    clock.advance(0.65)
    processing = await get(api, job_id)
    assert processing["status"] == "PROCESSING"
    total = processing["total_messages_discovered"]
    assert total > discovering["total_messages_discovered"] > 0
    assert processing["messages_successful"] > 0 and processing["messages_pending"] > 0
    clock.advance(1.0)
    done = await get(api, job_id)
    assert done["status"] == "COMPLETED"
    assert done["total_messages_discovered"] == total
    assert done["messages_pending"] == 0 and done["messages_cancelled"] == 0
    assert done["completed_at"] is not None and done["status_message"]
    assert done["messages_failed"] < done["messages_successful"]
    # One record per discovered message, statuses consistent with the counters.
    records = await all_messages(api, job_id)
    assert len(records) == total
    by_status = {s: sum(r["status"] == s for r in records) for s in ("COMPLETED", "FAILED", "SKIPPED")}
    assert by_status == {
        "COMPLETED": done["messages_successful"],
        "FAILED": done["messages_failed"],
        "SKIPPED": done["messages_skipped"],
    }
    record = records[0]
    uuid.UUID(record["message_id"])
    assert record["action_params"]["destination"] == "JunkEmail"
    assert record["action_params"]["client_recipient"].endswith("@acme-corp.example")
    assert record["message"]["final_disposition"] == "MALICIOUS"
    failed = [r for r in records if r["status"] == "FAILED"]
    assert all(r["retry_count"] == 3 and r["status_message"] for r in failed)


async def test_jobs_progress_on_the_real_clock(api: httpx.AsyncClient) -> None:
    job = await create(api, move(final_disposition="SPAM"))
    statuses: list[str] = [job["status"]]  # the create's answer, at elapsed 0

    async def finished() -> dict[str, Any] | None:
        current = await get(api, job["job_id"])
        if statuses[-1] != current["status"]:
            statuses.append(current["status"])
        return current if current["status"] == "COMPLETED" else None

    await wait_until(finished)
    order = ["PENDING", "DISCOVERING", "PROCESSING", "COMPLETED"]
    # At least two statuses seen (PENDING first, COMPLETED last), each once and in the life's order.
    assert statuses[0] == "PENDING" and statuses[-1] == "COMPLETED"
    assert statuses == sorted(set(statuses), key=order.index)


async def test_messages_list_pages_and_filters(api: httpx.AsyncClient, clock: FakeClock) -> None:
    job = await create(api, move(final_disposition="SPAM"))
    clock.advance(1.2)
    current = await get(api, job["job_id"])
    assert current["status"] == "PROCESSING"
    pending = await all_messages(api, job["job_id"], status="PENDING")
    assert len(pending) == current["messages_pending"]
    assert all(r["processed_at"] is None for r in pending)
    response = await api.get(f"/bulk/{job['job_id']}/messages", params={"per_page": 7})
    body = response.json()
    assert len(body["result"]) == 7
    assert body["result_info"] == {"count": 7, "per_page": 7, "page": 0, "total_count": 0}
    far = await api.get(f"/bulk/{job['job_id']}/messages", params={"page": 1000, "per_page": 7})
    assert far.json()["result"] == []
    assert error_of(await api.get(f"/bulk/{job['job_id']}/messages", params={"status": "NOPE"}), 400)
    assert error_of(await api.get(f"/bulk/{job['job_id']}/messages", params={"per_page": 5000}), 400)


async def test_a_search_that_finds_nothing_ends_skipped(api: httpx.AsyncClient, clock: FakeClock) -> None:
    job = await create(api, move(subject="no-such-subject-anywhere"))
    clock.advance(0.5)  # end of discovery (25 % of 2 s)
    skipped = await get(api, job["job_id"])
    assert skipped["status"] == "SKIPPED"
    assert skipped["total_messages_discovered"] == 0
    assert skipped["status_message"] == "No messages matched the search"
    assert skipped["completed_at"] is not None
    assert await all_messages(api, job["job_id"]) == []


async def test_a_departed_mailbox_fails_every_message(api: httpx.AsyncClient, clock: FakeClock) -> None:
    job = await create(
        api,
        {"action": "RELEASE", "search_params": {"detections_only": False, "recipient": "former.employee"}},
    )
    clock.advance(2.0)
    failed = await get(api, job["job_id"])
    assert failed["status"] == "FAILED"
    assert failed["messages_failed"] > 0 and failed["messages_successful"] == 0
    assert failed["status_message"].startswith("All ")
    records = await all_messages(api, job["job_id"], status="FAILED")
    assert len(records) == failed["messages_failed"]
    assert all("Mailbox not found" in r["status_message"] for r in records)


async def test_the_comment_trigger_fails_a_job(api: httpx.AsyncClient, clock: FakeClock) -> None:
    body = move(final_disposition="SPAM")
    body["comment"] = "please #sim-fail"
    job = await create(api, body)
    clock.advance(2.0)
    assert (await get(api, job["job_id"]))["status"] == "FAILED"


async def test_cancel_stops_pending_work_and_keeps_the_record(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    job = await create(api, move(detections_only=False, subject="invoice"))
    clock.advance(1.0)
    before = await get(api, job["job_id"])
    assert before["status"] == "PROCESSING" and before["messages_pending"] > 0
    response = await api.post(f"/bulk/{job['job_id']}/cancel")
    assert response.status_code == 200
    cancelled = response.json()["result"]
    assert_counters(cancelled)
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["messages_pending"] == 0
    assert cancelled["messages_cancelled"] == before["messages_pending"]
    assert cancelled["messages_successful"] == before["messages_successful"]
    assert cancelled["completed_at"] is not None
    clock.advance(10)  # nothing moves any more
    assert await get(api, job["job_id"]) == cancelled
    records = await all_messages(api, job["job_id"], status="CANCELLED")
    assert len(records) == cancelled["messages_cancelled"]
    listed = (await api.get("/bulk", params={"status": "CANCELLED"})).json()["result"]
    assert [j["job_id"] for j in listed] == [job["job_id"]]


async def test_cancel_before_discovery_cancels_nothing_but_the_job(api: httpx.AsyncClient) -> None:
    job = await create(api, move())
    cancelled = (await api.post(f"/bulk/{job['job_id']}/cancel")).json()["result"]
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["total_messages_discovered"] == 0 and cancelled["started_at"] is None


async def test_cancel_of_a_terminal_job_is_409_and_delete_needs_a_terminal_job(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    job = await create(api, move(final_disposition="BULK"))
    error = error_of(await api.delete(f"/bulk/{job['job_id']}"), 409)
    assert error["code"] == 1409 and "cancel it first" in error["message"]
    clock.advance(2.0)
    assert (await get(api, job["job_id"]))["status"] == "COMPLETED"
    error = error_of(await api.post(f"/bulk/{job['job_id']}/cancel"), 409)
    assert error["code"] == 1409 and "COMPLETED" in error["message"]
    response = await api.delete(f"/bulk/{job['job_id']}")
    assert response.status_code == 200
    assert response.json()["result"] == {"id": job["job_id"]}
    assert error_of(await api.get(f"/bulk/{job['job_id']}"), 404)["code"] == 1404
    assert (await api.get("/bulk")).json()["result"] == []


# ---------------------------------------------------------------------------- search


async def search_all(api: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await api.get("", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        results.extend(body["result"])
        assert body["result_info"]["count"] == len(body["result"])
        assert body["result_info"]["total_count"] == 0
        cursor = body["result_info"]["next"]
        if cursor is None:
            return results


async def test_search_shapes_and_cursor_paging(api: httpx.AsyncClient) -> None:
    everything = await search_all(api, detections_only="false", per_page=1000)
    assert 2900 <= len(everything) <= 3000  # the 30-day window, a few minutes after generation
    paged = await search_all(api, detections_only="false", per_page=250)
    assert [m["id"] for m in paged] == [m["id"] for m in everything]
    assert len({m["id"] for m in paged}) == len(paged)
    scanned = [m["scanned_at"] for m in everything]
    assert scanned == sorted(scanned, reverse=True)
    message = everything[0]
    for required in ("id", "ts", "client_recipients", "postfix_id", "detection_reasons", "action_log"):
        assert required in message
    assert message["action_log"] == [] and message["properties"] == {}
    assert isinstance(message["is_quarantined"], bool) and isinstance(message["is_phish_submission"], bool)
    for field in ("from", "to", "subject", "sent_at", "scanned_at", "final_disposition", "delivery_status"):
        assert message[field] is not None
    # The deprecated page parameter still works (the SDK pages this way).
    page2 = (await api.get("", params={"detections_only": "false", "per_page": 250, "page": 2})).json()
    assert [m["id"] for m in page2["result"]] == [m["id"] for m in everything[250:500]]


async def test_search_filters(api: httpx.AsyncClient) -> None:
    detections = await search_all(api, per_page=1000)
    assert detections and all(m["final_disposition"] != "NONE" for m in detections)
    malicious = await search_all(api, final_disposition="MALICIOUS", per_page=1000)
    assert malicious and all(m["final_disposition"] == "MALICIOUS" for m in malicious)
    paypal = await search_all(api, sender="PAYPA1-secure", per_page=1000)
    assert paypal and all("paypa1-secure.net" in m["from"] for m in paypal)
    domain = await search_all(api, detections_only="false", domain="github.com", per_page=1000)
    assert domain and all("github.com" in m["from"] for m in domain)
    words = await search_all(api, detections_only="false", subject="OVERDUE invoice", per_page=1000)
    assert words and all("invoice overdue" in m["subject"].lower() for m in words)
    query = await search_all(api, detections_only="false", query="newsletter tech", per_page=1000)
    assert query and all("newsletter" in m["subject"].lower() for m in query)
    target = malicious[0]
    by_alert = await search_all(api, alert_id=target["alert_id"])
    assert [m["id"] for m in by_alert] == [target["id"]]
    by_message_id = await search_all(api, message_id=target["message_id"].strip("<>"))
    assert [m["id"] for m in by_message_id] == [target["id"]]
    recipient = target["client_recipients"][0]
    assert all(
        recipient in m["client_recipients"] for m in await search_all(api, recipient=recipient, per_page=1000)
    )
    quarantined = await search_all(api, delivery_status="quarantined", per_page=1000)
    assert quarantined and all(m["is_quarantined"] for m in quarantined)
    previewed = await search_all(api, message_action="PREVIEW", per_page=1000)
    assert all("PREVIEW" in m["post_delivery_operations"] for m in previewed)
    scanned = datetime.fromisoformat(target["scanned_at"].replace("Z", "+00:00"))
    window = await search_all(
        api,
        final_disposition="MALICIOUS",
        start=(scanned - timedelta(seconds=1)).isoformat(),
        end=(scanned + timedelta(seconds=1)).isoformat(),
    )
    assert target["id"] in {m["id"] for m in window}
    assert len(window) < len(malicious)
    none_detected = await search_all(api, final_disposition="NONE")  # detections_only=true wins
    assert none_detected == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"final_disposition": "MALICIOUS-BEC"}, 1002),  # valid for jobs, not for the search
        ({"detections_only": "maybe"}, 1002),
        ({"delivery_status": "lost"}, 1002),
        ({"start": "last tuesday"}, 1002),
        ({"start": "2026-02-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, 1005),
        ({"per_page": 1001}, 1006),
        ({"per_page": 0}, 1006),
        ({"cursor": "garbage!"}, 1006),
    ],
)
async def test_invalid_search_parameters_are_400(
    api: httpx.AsyncClient, params: dict[str, Any], code: int
) -> None:
    assert error_of(await api.get("", params=params), 400)["code"] == code


async def test_a_cursor_belongs_to_its_search(api: httpx.AsyncClient) -> None:
    first = (await api.get("", params={"final_disposition": "SPAM", "per_page": 5})).json()
    cursor = first["result_info"]["next"]
    assert cursor
    other = await api.get("", params={"final_disposition": "BULK", "per_page": 5, "cursor": cursor})
    assert error_of(other, 400)["code"] == 1006


async def test_slow_search_answers_202_with_a_location_to_poll(
    simulator: RunningSimulator, api: httpx.AsyncClient
) -> None:
    await simulator.set_faults({"search_accepted_first": True})
    first = await api.get("", params={"final_disposition": "SPAM", "per_page": 10})
    assert first.status_code == 202
    assert first.json()["result"] == [] and first.json()["success"] is True
    location = first.headers["Location"]
    polled = await api.get(location)
    assert polled.status_code == 200
    assert len(polled.json()["result"]) == 10
    # Following pages (with a cursor) are answered at once.
    cursor = polled.json()["result_info"]["next"]
    more = await api.get("", params={"final_disposition": "SPAM", "per_page": 10, "cursor": cursor})
    assert more.status_code == 200 and len(more.json()["result"]) == 10
    assert error_of(await api.get("", params={"search_ticket": "forged"}), 404)["code"] == 1404


async def test_a_202_fault_rule_applies_only_to_the_first_search_request(
    control: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    response = await control.post(
        "/__sim/faults", json={"status": 202, "count": 1, "path": "/email-security/investigate"}
    )
    assert response.status_code == 200
    assert (await api.get("/bulk")).status_code == 200  # not a search: the rule waits
    accepted = await api.get("", params={"per_page": 3})
    assert accepted.status_code == 202
    assert (await api.get("", params={"per_page": 3})).status_code == 200


# ---------------------------------------------------------------------------- faults


async def test_rate_limit_answers_429_with_retry_after_then_recovers(
    control: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    await control.post("/__sim/faults", json={"status": 429, "count": 2, "retry_after": 7})
    for _ in range(2):
        response = await api.get("/bulk")
        assert error_of(response, 429)["code"] == 10429
        assert response.headers["Retry-After"] == "7"
    assert (await api.get("/bulk")).status_code == 200


async def test_server_errors_then_recovery_and_method_restriction(
    simulator: RunningSimulator, api: httpx.AsyncClient
) -> None:
    await simulator.set_faults({"server_error": {"count": 2, "status": 502, "method": "POST"}})
    assert (await api.get("/bulk")).status_code == 200  # GET is not affected
    assert error_of(await api.post("/bulk", json=move()), 502)["code"] == 10002
    assert error_of(await api.post("/bulk", json=move()), 502)["code"] == 10002
    assert (await api.get("/bulk")).json()["result"] == []  # the failed creates made nothing
    await create(api, move())


async def test_an_after_fault_does_the_work_then_fails(
    simulator: RunningSimulator, api: httpx.AsyncClient
) -> None:
    await simulator.set_faults({"status": 503, "count": 1, "method": "POST", "after": True})
    assert error_of(await api.post("/bulk", json=move()), 503)
    assert len((await api.get("/bulk")).json()["result"]) == 1  # an ambiguous failure: the job exists


async def test_latency_delays_answers(
    simulator: RunningSimulator, api: httpx.AsyncClient, account_id: str
) -> None:
    await simulator.set_faults({"latency": {"seconds": 0.5, "count": 1}})
    url = f"{simulator.base_url}/accounts/{account_id}/email-security/investigate/bulk"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=0.1) as impatient:
        with pytest.raises(httpx.TimeoutException):
            await impatient.get(url)
        assert (await impatient.get(url)).status_code == 200  # the count is used up


async def test_fault_control_shapes_and_errors(control: httpx.AsyncClient) -> None:
    response = await control.post("/__sim/faults", json={"rate_limit": {"count": 1, "retry_after": 3}})
    assert response.json()["faults"]["rules"][0]["status"] == 429
    assert (await control.get("/__sim/faults")).json()["faults"]["rules"][0]["retry_after"] == 3
    assert (await control.delete("/__sim/faults")).json()["faults"]["rules"] == []
    assert (await control.post("/__sim/faults", json={"status": 418})).status_code == 400
    assert (await control.post("/__sim/faults", json={"explode": True})).status_code == 400
    assert (await control.post("/__sim/faults", content="nope")).status_code == 400
    assert parse_fault_spec({}).rules == []
    assert parse_fault_spec({"rate_limit": 4}).rules[0].count == 4


# ---------------------------------------------------------------------------- control routes and stats


async def test_seed_hold_release_and_force_status_over_http(
    control: httpx.AsyncClient, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    response = await control.post("/__sim/seed-jobs", json={"count": 3, "status": "PROCESSING", "hold": True})
    assert response.status_code == 200
    ids = response.json()["job_ids"]
    assert response.json()["count"] == 3
    clock.advance(60)
    held = [await get(api, job_id) for job_id in ids]
    assert all(job["status"] == "PROCESSING" for job in held)
    assert all(job["messages_successful"] > 0 and job["messages_pending"] > 0 for job in held)
    assert (await control.post("/__sim/release", json={"job_ids": ids[:1]})).json() == {"released": 1}
    clock.advance(2.0)
    assert (await get(api, ids[0]))["status"] == "COMPLETED"
    assert (await get(api, ids[1]))["status"] == "PROCESSING"
    forced = await control.post(
        f"/__sim/jobs/{ids[1]}/status", json={"status": "FAILED", "status_message": "boom"}
    )
    assert forced.status_code == 200
    failed = await get(api, ids[1])
    assert (
        failed["status"] == "FAILED"
        and failed["status_message"] == "boom"
        and failed["messages_pending"] == 0
    )
    skipped = (await control.post(f"/__sim/jobs/{ids[2]}/status", json={"status": "SKIPPED"})).json()
    assert skipped["status"] == "SKIPPED"
    assert skipped["messages_pending"] == 0 and skipped["messages_skipped"] > 0
    assert (await control.post(f"/__sim/jobs/{ids[2]}/status", json={"status": "DONE"})).status_code == 400
    assert (
        await control.post(f"/__sim/jobs/{uuid.uuid4()}/status", json={"status": "FAILED"})
    ).status_code == 404
    assert (await control.get(f"/__sim/jobs/{ids[2]}")).json()["status"] == "SKIPPED"
    assert (await control.post("/__sim/seed-jobs", json={"count": -1})).status_code == 400
    assert (await control.post("/__sim/seed-jobs", json={"status": "DONE"})).status_code == 400


async def test_hold_freezes_a_live_job_and_forcing_an_active_status_resumes_from_there(
    simulator: RunningSimulator, api: httpx.AsyncClient, clock: FakeClock
) -> None:
    job = await create(api, move(final_disposition="SPAM"))
    clock.advance(0.3)
    assert await simulator.hold() == 1
    clock.advance(60)
    assert (await get(api, job["job_id"]))["status"] == "DISCOVERING"
    assert await simulator.release() == 1
    await simulator.force_status(job["job_id"], "PENDING")
    assert (await get(api, job["job_id"]))["status"] == "PENDING"
    clock.advance(2.0)
    assert (await get(api, job["job_id"]))["status"] == "COMPLETED"
    forced = await simulator.force_status(job["job_id"], "CANCELLED", status_message="by the test")
    assert forced["status"] == "CANCELLED" and forced["status_message"] == "by the test"


@pytest.mark.parametrize(
    "status", ["PENDING", "DISCOVERING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED"]
)
async def test_seeded_jobs_in_every_status_have_consistent_counters(
    simulator: RunningSimulator, api: httpx.AsyncClient, status: str
) -> None:
    ids = await simulator.seed_jobs(5, status, hold=True)
    for job_id in ids:
        job = await get(api, job_id)
        assert job["status"] == status
        records = await all_messages(api, job_id)
        assert len(records) == job["total_messages_discovered"]


async def test_stats_count_api_calls_per_route_but_not_control_calls(
    control: httpx.AsyncClient, api: httpx.AsyncClient, simulator: RunningSimulator
) -> None:
    job = await create(api, move())
    await api.get(f"/bulk/{job['job_id']}")
    await api.get(f"/bulk/{job['job_id']}")
    await api.get("", params={"per_page": 1})
    await control.post("/__sim/seed-jobs", json={"count": 2})
    stats = (await control.get("/__sim/stats")).json()
    assert stats == await simulator.stats()
    assert stats["total"] == 4
    assert stats["requests"] == {
        "POST /accounts/{account_id}/email-security/investigate/bulk": 1,
        "GET /accounts/{account_id}/email-security/investigate/bulk/{job_id}": 2,
        "GET /accounts/{account_id}/email-security/investigate": 1,
    }
    assert stats["statuses"] == {"200": 3, "201": 1}
    assert stats["jobs_created"] == 1 and stats["jobs_seeded"] == 2 and stats["jobs"] == 3
    reset = (await control.post("/__sim/stats/reset")).json()
    assert reset["total"] == 0 and reset["requests"] == {} and reset["jobs_created"] == 0
    assert (await control.get("/__sim/info")).json()["default_account_id"] == simulator.account_id


# ---------------------------------------------------------------------------- mailbox, server


def test_the_mailbox_is_deterministic_per_seed_and_realistic() -> None:
    now = time.time()
    first = _generate(seed=7, size=500, now=now, account_id="a")
    again = _generate(seed=7, size=500, now=now, account_id="a")
    other = _generate(seed=8, size=500, now=now, account_id="a")
    assert [m.id for m in first.messages] == [m.id for m in again.messages]
    assert [m.id for m in first.messages] != [m.id for m in other.messages]
    dispositions = {m.disposition for m in first.messages}
    assert {"NONE", "MALICIOUS", "SPAM", "BULK"} <= dispositions
    assert sum(m.disposition == "NONE" for m in first.messages) > len(first.messages) / 2
    assert all(now - 30 * 86400 <= m.scanned_at <= now for m in first.messages)


async def test_serve_prints_how_to_connect_and_stops_when_cancelled(
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = asyncio.create_task(serve(SimulatorConfig(token="sweep-dev-token", job_seconds=1), "127.0.0.1", 0))

    async def printed() -> str | None:
        out = capsys.readouterr().out
        return out or None

    out = await wait_until(printed)
    assert "http://127.0.0.1:" in out and "sweep-dev-token" in out and "0123456789abcdef" in out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("args", "environment", "shown", "accepted"),
    [
        (
            ["--token", "s3cret-option"],
            {"CLOUDFLARE_API_TOKEN": "s3cret-env"},
            "(from --token)",
            "s3cret-option",
        ),
        ([], {"CLOUDFLARE_API_TOKEN": "s3cret-env"}, "(from CLOUDFLARE_API_TOKEN)", "s3cret-env"),
        ([], {}, "sweep-dev-token", "sweep-dev-token"),
    ],
)
async def test_the_banner_says_where_the_token_came_from_and_never_prints_a_real_one(
    args: list[str], environment: dict[str, str], shown: str, accepted: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CLOUDFLARE_API_TOKEN"} | environment
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.simulator", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(30):
            while not lines or not lines[-1].startswith("  jobs take"):
                line = (await process.stdout.readline()).decode()
                assert line, f"the simulator exited: {lines}"
                lines.append(line)
        base = next(line.split()[-1] for line in lines if "base URL:" in line)
        url = f"{base}/accounts/{'0' * 32}/email-security/investigate/bulk"
        async with httpx.AsyncClient() as http:
            assert (await http.get(url, headers={"Authorization": f"Bearer {accepted}"})).status_code == 200
            assert (await http.get(url, headers={"Authorization": "Bearer s3cret-env"})).status_code == (
                200 if accepted == "s3cret-env" else 403
            )
    finally:
        process.terminate()
        await process.wait()
    assert [line for line in lines if "token:" in line] == [f"  token:      {shown}\n"]
    assert "s3cret" not in "".join(lines)


def test_command_line_rejects_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        simulator_main(["--port", "not-a-port"])
    assert simulator_main(["--job-seconds", "-1"]) == 2


async def test_two_simulators_run_side_by_side() -> None:
    async with (
        running_simulator(SimulatorConfig(token="a"), port=0) as one,
        running_simulator(SimulatorConfig(token="b"), port=0) as two,
    ):
        assert one.port != two.port
        assert one.base_url.endswith("/client/v4")


# ---------------------------------------------------------------------------- OpenAPI conformance


def load_spec(name: str) -> OpenAPI:
    return load_openapi(SPEC_PATH.parent / name)


@pytest.mark.parametrize(
    "spec_name",
    ["email-security-investigate.openapi.json", "email-security-investigate.sdk-5.9.0-overlay.openapi.json"],
)
async def test_answers_match_the_openapi_documents(
    simulator: RunningSimulator, account_id: str, clock: FakeClock, spec_name: str
) -> None:
    spec = load_spec(spec_name)
    recorder = RecordingTransport()
    base = f"{simulator.base_url}/accounts/{account_id}/email-security/investigate"
    async with httpx.AsyncClient(
        base_url=base, transport=recorder, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        job = (
            await http.post("/bulk", json=move(final_disposition="MALICIOUS", delivery_status="quarantined"))
        ).json()["result"]
        release = (
            await http.post("/bulk", json={"action": "RELEASE", "search_params": {"detections_only": False}})
        ).json()["result"]
        await http.get("/bulk", params={"per_page": 1000, "status": "PENDING", "action_type": "MOVE"})
        clock.advance(1.0)
        await http.get(f"/bulk/{job['job_id']}")
        await http.get(f"/bulk/{job['job_id']}/messages", params={"per_page": 50})
        await http.post(f"/bulk/{release['job_id']}/cancel")
        await http.post(f"/bulk/{release['job_id']}/cancel")  # 409
        await http.delete(f"/bulk/{release['job_id']}")
        await http.get(f"/bulk/{uuid.uuid4()}")  # 404
        await http.post("/bulk", json={"action": "MOVE", "search_params": {}})  # 400
        await http.get("", params={"detections_only": "false", "per_page": 20})
        await simulator.set_faults({"search_accepted_first": True})
        await http.get("", params={"final_disposition": "SPAM"})  # 202
    assert len(recorder.exchanges) == 12
    statuses = [response.status_code for _, response in recorder.exchanges]
    assert statuses == [201, 201, 200, 200, 200, 200, 409, 200, 404, 400, 200, 202]
    base_path = httpx.URL(simulator.base_url).path
    for request, response in recorder.exchanges:
        mock = MockRequest(
            "https://api.cloudflare.com",
            request.method.lower(),
            "/client/v4" + request.url.path.removeprefix(base_path).rstrip("/"),
            args=dict(request.url.params.multi_items()),
            headers=dict(request.headers),
            data=request.content or None,
            content_type=request.headers.get("content-type", "application/json"),
        )
        spec.validate_request(mock)
        spec.validate_response(
            mock,
            MockResponse(
                response.content,
                response.status_code,
                headers=dict(response.headers),
                content_type="application/json",
            ),
        )


# ---------------------------------------------------------------------------- Cloudflare's official SDK


async def test_the_official_python_sdk_works_against_the_simulator(
    simulator: RunningSimulator, account_id: str, clock: FakeClock
) -> None:
    cloudflare = pytest.importorskip("cloudflare")
    async with cloudflare.AsyncCloudflare(
        api_token=TOKEN, base_url=simulator.base_url, max_retries=0
    ) as client:
        bulk = client.email_security.investigate.bulk
        created = await bulk.create(
            account_id=account_id,
            action="MOVE",
            destination="JunkEmail",
            search_params={"detections_only": True, "final_disposition": "SPAM"},
            comment="from the SDK",
        )
        assert created.status == "PENDING" and created.action_params.type == "MOVE"
        assert created.messages_cancelled == 0 and created.messages_skipped == 0
        released = await bulk.create(
            account_id=account_id, action="RELEASE", search_params={"detections_only": False}
        )
        listed = [job.job_id async for job in bulk.list(account_id=account_id, per_page=1)]
        assert listed == [released.job_id, created.job_id]
        clock.advance(1.0)
        fetched = await bulk.get(created.job_id, account_id=account_id)
        assert fetched.status == "PROCESSING" and fetched.total_messages_discovered > 0
        messages = [m async for m in bulk.messages.list(created.job_id, account_id=account_id, per_page=40)]
        assert len(messages) == fetched.total_messages_discovered
        assert messages[0].message is not None and messages[0].message.final_disposition == "SPAM"
        cancelled = await bulk.cancel.create(created.job_id, account_id=account_id)
        assert cancelled.status == "CANCELLED"
        assert cancelled.messages_cancelled == fetched.messages_pending
        deleted = await bulk.delete(created.job_id, account_id=account_id)
        assert deleted.id == created.job_id
        with pytest.raises(cloudflare.NotFoundError):
            await bulk.get(created.job_id, account_id=account_id)
        with pytest.raises(cloudflare.ConflictError):
            await bulk.delete(released.job_id, account_id=account_id)
        # The SDK's job status enum has no SKIPPED, but its models do not reject one.
        await simulator.force_status(released.job_id, "SKIPPED")
        assert (await bulk.get(released.job_id, account_id=account_id)).status == "SKIPPED"
        # The SDK pages the search with the deprecated `page` parameter, not the cursor.
        found = [
            m
            async for m in client.email_security.investigate.list(
                account_id=account_id, final_disposition="MALICIOUS", per_page=50
            )
        ]
        assert found and all(m.final_disposition == "MALICIOUS" for m in found)
        assert len({m.id for m in found}) == len(found)
    async with cloudflare.AsyncCloudflare(
        api_token="wrong", base_url=simulator.base_url, max_retries=0
    ) as bad:
        with pytest.raises(cloudflare.PermissionDeniedError):
            await bad.email_security.investigate.bulk.get(created.job_id, account_id=account_id)
