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
- `store_url`: a database URL for the store, once per backend: `sqlite` (a file in `tmp_path`) and
  `postgresql` (a database of its own on the real server at 127.0.0.1:5432, dropped afterwards, so
  nothing is left behind). `postgres_database()` makes one such database for a test that needs more.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
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


PG_SERVER = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "database": "test"}
BACKENDS = ("sqlite", "postgresql")


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """Create a PostgreSQL database of its own; yield its store URL; drop it (even if a test failed)."""
    name = f"sweep_test_{uuid.uuid4().hex[:16]}"
    try:
        admin = await asyncpg.connect(**PG_SERVER)
    except OSError as error:  # the server must run (`.ci/run` starts it): no silent skip
        pytest.fail(f"PostgreSQL is not running on 127.0.0.1:5432 ({error})")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+asyncpg://{PG_SERVER['user']}@{PG_SERVER['host']}:{PG_SERVER['port']}/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database for the store, on each backend in turn."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'sweep.db'}"
        return
    async with postgres_database() as url:
        yield url
