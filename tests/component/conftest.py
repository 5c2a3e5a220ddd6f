"""Shared component-test fixtures: a running Cloudflare simulator and its account id.

- `simulator`: a `bot.simulator.app.RunningSimulator` on 127.0.0.1 (free port) with token `test-token`,
  `job_seconds=2.0`, seed 7 and a 3000-message mailbox; fresh for every test. Useful attributes:
  `.base_url` (`http://127.0.0.1:PORT/client/v4`, the API base a client is given), `.root_url`
  (`http://127.0.0.1:PORT`, where `/__sim/...` control routes live), `.state`, and async control
  methods `set_faults`, `clear_faults`, `seed_jobs`, `force_status`, `hold`, `release`, `stats`,
  `reset_stats` (mirroring `/__sim/faults`, `/__sim/seed-jobs`, `/__sim/jobs/{id}/status`,
  `/__sim/hold`, `/__sim/release`, `/__sim/stats`, `/__sim/stats/reset`).
- `account_id`: `0123456789abcdef0123456789abcdef`, the simulator's default account (seeded jobs
  without an explicit `account_id` go there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.simulator.app import RunningSimulator, SimulatorConfig, running_simulator
from bot.simulator.state import DEFAULT_ACCOUNT_ID

SIMULATOR_TOKEN = "test-token"


@pytest.fixture
def account_id() -> str:
    """The simulator's default account id."""
    return DEFAULT_ACCOUNT_ID


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    """A fresh simulator over real HTTP on 127.0.0.1 (token `test-token`, jobs take 2 s)."""
    config = SimulatorConfig(token=SIMULATOR_TOKEN, job_seconds=2.0, seed=7)
    async with running_simulator(config, host="127.0.0.1", port=0) as sim:
        yield sim
