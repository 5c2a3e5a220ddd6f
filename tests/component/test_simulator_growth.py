"""The simulator's 'more matching mail' control (issue 12): a discovering job finds more than its preview."""

from __future__ import annotations

from typing import Any

import httpx

from bot.simulator.app import RunningSimulator


async def create(http: httpx.AsyncClient, sim: RunningSimulator, subject: str) -> dict[str, Any]:
    response = await http.post(
        f"{sim.base_url}/accounts/{sim.account_id}/email-security/investigate/bulk",
        json={
            "action": "MOVE",
            "destination": "JunkEmail",
            "search_params": {"subject": subject, "detections_only": False},
        },
        headers={"Authorization": "Bearer test-token"},
    )
    response.raise_for_status()
    return dict(response.json()["result"])


async def test_more_matching_mail_makes_a_discovering_job_find_more(simulator: Any) -> None:
    sim: RunningSimulator = simulator
    async with httpx.AsyncClient(timeout=10) as http:
        job = await create(http, sim, "invoice")
        state = sim.state
        held = state.find(job["job_id"])
        state.force_status(held, "DISCOVERING", hold=True)  # still discovering, however slow this machine is
        before = len(state.discovery(held).found)
        assert before > 0
        answer = await http.post(f"{sim.root_url}/__sim/jobs/{job['job_id']}/more-mail", json={"count": 40})
        assert answer.status_code == 200 and answer.json()["added"] == 40
        assert len(state.discovery(held).found) == before + 40
        # A search now sees the new mail too.
        search = await http.get(
            f"{sim.base_url}/accounts/{sim.account_id}/email-security/investigate",
            params={"subject": "invoice", "detections_only": "false", "per_page": 1000},
            headers={"Authorization": "Bearer test-token"},
        )
        assert len(search.json()["result"]) >= before + 40
        for bad in ({"count": 0}, {"count": "many"}, {}, {"count": True}):
            refused = await http.post(f"{sim.root_url}/__sim/jobs/{job['job_id']}/more-mail", json=bad)
            assert refused.status_code == 400


async def test_a_job_past_discovery_keeps_what_it_found(simulator: Any) -> None:
    sim: RunningSimulator = simulator
    async with httpx.AsyncClient(timeout=10) as http:
        job = await create(http, sim, "invoice")
        held = sim.state.find(job["job_id"])
        held.held_elapsed = sim.state.job_seconds * 0.9  # processing: discovery is over
        before = len(sim.state.discovery(held).found)
        assert await sim.add_matching_mail(job["job_id"], 10) == 10
        assert len(sim.state.discovery(held).found) == before


async def test_other_simulators_in_the_process_are_not_affected(simulator: Any) -> None:
    from bot.simulator.app import SimulatorConfig, running_simulator

    sim: RunningSimulator = simulator
    async with httpx.AsyncClient(timeout=10) as http:
        job = await create(http, sim, "invoice")
        async with running_simulator(SimulatorConfig(token="test-token"), host="127.0.0.1", port=0) as other:
            before = len(other.state.mailbox(other.account_id))
            await sim.add_matching_mail(job["job_id"], 25)
            assert len(other.state.mailbox(other.account_id)) == before


async def search_count(http: httpx.AsyncClient, sim: RunningSimulator, **params: str) -> int:
    """Count what a search over HTTP finds, walking its pages (the API's total_count is always 0)."""
    found, page = 0, 1
    while True:
        answer = await http.get(
            f"{sim.base_url}/accounts/{sim.account_id}/email-security/investigate",
            params={**params, "detections_only": "false", "per_page": 1000, "page": page},
            headers={"Authorization": "Bearer test-token"},
        )
        answer.raise_for_status()
        batch = answer.json()["result"]
        found += len(batch)
        if len(batch) < 1000:
            return found
        page += 1


async def test_a_delivered_campaign_is_found_by_a_search(simulator: Any) -> None:
    from bot.simulator.mailbox import DAY, campaign

    sim: RunningSimulator = simulator
    sender = "servicedesk@acme-corp-support.example"
    now = sim.state.clock()

    def wave() -> list[Any]:
        return campaign(
            seed=7, count=350, now=now, days=10, sender=sender, sender_name="IT", subject="Mailbox full"
        )

    messages = wave()
    assert [m.id for m in messages] == [m.id for m in wave()], "the same campaign every time"
    assert len({m.id for m in messages}) == 350
    assert all(now - 10 * DAY <= m.scanned_at <= now for m in messages)
    assert all(m.delivery_status == ["delivered"] and m.sender == sender for m in messages)
    async with httpx.AsyncClient(timeout=10) as http:
        assert await search_count(http, sim, sender=sender) == 0
        before = len(sim.state.mailbox(sim.account_id))
        assert sim.state.add_mail(sim.account_id, messages) == 350
        assert len(sim.state.mailbox(sim.account_id)) == before + 350
        assert await search_count(http, sim, sender=sender) == 350
        assert await search_count(http, sim, subject="mailbox full") >= 350
        assert sim.state.add_mail(sim.account_id, []) == 0
