"""/healthz and /metrics when the database is gone: a real SQLite store, closed under the running app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from bot.app import Runtime, metrics_application
from bot.followups import FollowUps
from bot.metrics import SweepMetrics
from bot.store import SqliteStore


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, SqliteStore]]:
    """Serve `metrics_application` of a runtime on a real store; yield its base URL and the store."""
    store = await SqliteStore.open(tmp_path / "sweep.db")
    metrics = SweepMetrics()
    follow_ups = FollowUps()
    metrics.watch(follow_ups=lambda: follow_ups.stats, store=store)
    services = cast(Any, type("Services", (), {"follow_ups": follow_ups}))
    unused = cast(Any, None)  # the Slack app, tracker, notifier and resolver play no part here
    runtime = Runtime(
        app=unused,
        store=store,
        tracker=unused,
        notifier=unused,
        resolver=unused,
        services=services,
        metrics=metrics,
    )
    runner = web.AppRunner(metrics_application(runtime))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", store
    finally:
        await runner.cleanup()
        await store.close()


def database_up(text: str) -> float:
    """Return sweep_database_up from an exposition."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "sweep_database_up":
                return sample.value
    raise AssertionError("no sweep_database_up")


async def test_healthz_says_503_when_the_database_is_unreachable(served: tuple[str, SqliteStore]) -> None:
    url, store = served
    async with httpx.AsyncClient() as http:
        healthy = await http.get(f"{url}/healthz")
        assert healthy.status_code == 200 and healthy.json()["database"] == "ok"
        assert database_up((await http.get(f"{url}/metrics")).text) == 1
        await store.close()
        sick = await http.get(f"{url}/healthz")
        assert sick.status_code == 503
        assert sick.json()["ok"] is False and sick.json()["database"] == "unreachable"
        metrics = await http.get(f"{url}/metrics")
        assert metrics.status_code == 200  # a scrape still answers, saying the database is down
        assert database_up(metrics.text) == 0
