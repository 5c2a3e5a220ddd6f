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
