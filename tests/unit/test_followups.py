"""FollowUps: after-ack work waits for a quiet moment (bounded), runs in order, reports failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from bot.cloudflare.client import rate_limit_hook
from bot.followups import FollowUps, Work


async def _no_error(error: Exception) -> None:
    raise AssertionError(f"unexpected failure: {error!r}")


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


async def test_a_follow_up_waits_while_requests_keep_arriving_then_runs() -> None:
    # Quiet means half a second without a request: far more than the 10 ms between requests below,
    # so even a starved test loop does not make the bot look idle by accident.
    follow_ups = FollowUps(quiet_seconds=0.5, max_defer_seconds=30)
    ran: list[str] = []

    async def work() -> None:
        ran.append("work")

    follow_ups.note_request()
    follow_ups.submit(work, on_error=_no_error, label="t")
    for _ in range(20):  # a request every 10 ms: never half a second of quiet
        await asyncio.sleep(0.01)
        follow_ups.note_request()
        assert ran == []
    assert follow_ups.stats.waiting == 1
    await _until(lambda: ran == ["work"])
    assert follow_ups.stats.idle and follow_ups.stats.done == 1


async def test_a_follow_up_never_waits_longer_than_its_deadline() -> None:
    follow_ups = FollowUps(quiet_seconds=1.0, max_defer_seconds=0.2)
    ran = asyncio.Event()

    async def work() -> None:
        ran.set()

    follow_ups.submit(work, on_error=_no_error, label="t")
    for _ in range(1000):  # requests keep arriving for up to 10 s; the deadline ends the wait
        follow_ups.note_request()
        if ran.is_set():
            break
        await asyncio.sleep(0.01)
    assert ran.is_set()
    assert 0.2 <= follow_ups.stats.max_wait_seconds < 1.0


async def test_an_urgent_follow_up_starts_at_once_even_while_busy() -> None:
    follow_ups = FollowUps(quiet_seconds=10, max_defer_seconds=30)
    ran = asyncio.Event()

    async def work() -> None:
        ran.set()

    follow_ups.note_request()
    follow_ups.submit(work, on_error=_no_error, label="t", urgent=True)
    await asyncio.wait_for(ran.wait(), 5)


async def test_follow_ups_start_in_submission_order() -> None:
    follow_ups = FollowUps(quiet_seconds=0.02, max_defer_seconds=30, max_running=1)
    ran: list[int] = []

    def work(n: int) -> Work:
        async def run() -> None:
            ran.append(n)

        return run

    follow_ups.note_request()
    for n in range(10):
        follow_ups.submit(work(n), on_error=_no_error, label="t")
    await _until(lambda: len(ran) == 10)
    assert ran == list(range(10))


async def test_at_most_max_running_follow_ups_run_at_once() -> None:
    follow_ups = FollowUps(quiet_seconds=0, max_defer_seconds=0, max_running=2)
    release = asyncio.Event()
    running = 0
    peak = 0

    async def work() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    for _ in range(6):
        follow_ups.submit(work, on_error=_no_error, label="t")
    await _until(lambda: running == 2)
    await asyncio.sleep(0.05)
    assert peak == 2 and follow_ups.stats.waiting == 4
    release.set()
    await _until(lambda: follow_ups.stats.done == 6)
    assert peak == 2


async def test_a_failure_goes_to_its_reporter_and_the_next_follow_up_still_runs() -> None:
    follow_ups = FollowUps(quiet_seconds=0, max_defer_seconds=0)
    reported: list[Exception] = []
    ran = asyncio.Event()

    async def broken() -> None:
        raise RuntimeError("boom")

    async def report(error: Exception) -> None:
        reported.append(error)

    async def fine() -> None:
        ran.set()

    follow_ups.submit(broken, on_error=report, label="broken")
    follow_ups.submit(fine, on_error=_no_error, label="fine")
    await asyncio.wait_for(ran.wait(), 5)
    await _until(lambda: follow_ups.stats.idle)
    assert [str(e) for e in reported] == ["boom"]
    assert follow_ups.stats.failed == 1 and follow_ups.stats.done == 1


async def test_a_reporter_that_fails_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    follow_ups = FollowUps(quiet_seconds=0, max_defer_seconds=0)

    async def broken() -> None:
        raise RuntimeError("boom")

    async def broken_report(error: Exception) -> None:
        raise RuntimeError("slack is down")

    with caplog.at_level(logging.ERROR, logger="sweep.followups"):
        follow_ups.submit(broken, on_error=broken_report, label="doomed")
        await _until(lambda: follow_ups.stats.idle)
    assert "could not report a failed follow-up (doomed)" in caplog.text


async def test_drain_starts_waiting_follow_ups_at_once_and_waits_for_them() -> None:
    follow_ups = FollowUps(quiet_seconds=60, max_defer_seconds=60)
    ran: list[int] = []

    async def work() -> None:
        await asyncio.sleep(0.01)
        ran.append(1)

    follow_ups.note_request()
    for _ in range(3):
        follow_ups.submit(work, on_error=_no_error, label="t")
    assert await follow_ups.drain(timeout=5) == 0
    assert ran == [1, 1, 1]


async def test_drain_gives_up_after_its_timeout_and_says_how_many_were_left() -> None:
    follow_ups = FollowUps(quiet_seconds=0, max_defer_seconds=0)
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    follow_ups.submit(stuck, on_error=_no_error, label="stuck")
    await _until(lambda: follow_ups.stats.running == 1)
    assert await follow_ups.drain(timeout=0.05) == 1
    await asyncio.wait_for(cancelled.wait(), 5)


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        FollowUps(max_running=0)


async def test_each_follow_up_sees_only_its_own_rate_limit_reporter() -> None:
    follow_ups = FollowUps(quiet_seconds=0, max_defer_seconds=0)
    told: dict[str, list[float]] = {"a": [], "b": []}
    seen: dict[str, object] = {}

    def reporter(name: str) -> Callable[[float], Awaitable[None]]:
        async def report(seconds: float) -> None:
            told[name].append(seconds)

        return report

    def work(name: str, wait: float) -> Work:
        async def run() -> None:
            hook = rate_limit_hook.get()
            seen[name] = hook
            if hook is not None:
                await hook(wait)  # what the Cloudflare client does on a 429

        return run

    follow_ups.submit(work("a", 7), on_error=_no_error, label="a", on_wait=reporter("a"))
    follow_ups.submit(work("b", 3), on_error=_no_error, label="b", on_wait=reporter("b"))
    follow_ups.submit(work("none", 1), on_error=_no_error, label="none", urgent=True)
    await _until(lambda: len(seen) == 3)
    assert told == {"a": [7], "b": [3]}
    assert seen["none"] is None
    assert rate_limit_hook.get() is None, "the runner's own context is untouched"
