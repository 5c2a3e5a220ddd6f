"""The bot resolves its Slack identity at start, so no request waits on Slack to authorize (issue 10).

With a bare token Bolt calls `auth.test` lazily, on the first request and before its ack: a slow or
unreachable Slack then turned the first slash command into an HTTP 500. These tests run the real
`sweep-bot serve --http` process against the local Slack (bot/devslack) and the simulator.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import SlackUnavailableError, resolve_identity
from bot.devslack.driver import ACK_DEADLINE, SlackDriver
from bot.devslack.server import running_fake_slack
from bot.simulator.app import SimulatorConfig, running_simulator
from tests.e2e.conftest import (
    BOT_TOKEN,
    CF_TOKEN,
    CHANNEL,
    OPERATOR,
    SIGNING_SECRET,
    START_TIMEOUT,
    BotProcess,
    ClosedPort,
    bot_env,
    wait_until,
)

#: Longer than Slack waits for an ack: a request path that called auth.test could not ack in time.
SLOW_AUTH_TEST = 30.0


async def test_first_command_acks_without_calling_auth_test(tmp_path: Path) -> None:
    async with (
        running_simulator(SimulatorConfig(token=CF_TOKEN), host="127.0.0.1", port=0) as sim,
        running_fake_slack(bot_token=BOT_TOKEN) as slack,
    ):
        slack.slow_down("auth.test", 1.0, times=1)  # the start-up call: slow, but answered
        bot = BotProcess(
            env=bot_env(sim_url=sim.base_url, slack_url=slack.api_url, database=tmp_path / "sweep.db"),
            log_path=tmp_path / "bot.log",
        )
        await bot.start()
        try:
            assert len(slack.calls("auth.test")) == 1
            slack.slow_down("auth.test", SLOW_AUTH_TEST)  # from now on, auth.test would miss the ack
            async with SlackDriver(
                bot.events_url, SIGNING_SECRET, slack.state, user_id=OPERATOR, channel_id=CHANNEL
            ) as driver:
                first = await driver.slash("help")
                assert first.status == 200, first.body
                assert not first.too_slow, (
                    f"first ack took {first.elapsed:.2f} s (Slack waits {ACK_DEADLINE} s)"
                )
                assert "/sweep" in first.body
                # A command with after-ack work (Cloudflare, then response_url): its answer arrives too.
                listing = await driver.slash("list")
                assert listing.status == 200 and not listing.too_slow
                await wait_until(lambda: slack.responses(OPERATOR), what="the list reply")
            assert len(slack.calls("auth.test")) == 1, [c.method for c in slack.calls()]
            assert "Traceback" not in bot.logs()
            assert "will be ignored" not in bot.logs()  # Bolt's warning about `authorize` is noise
        finally:
            bot.stop()


async def test_a_refused_bot_token_stops_serve_at_start_with_one_line(tmp_path: Path) -> None:
    async with (
        running_simulator(SimulatorConfig(token=CF_TOKEN), host="127.0.0.1", port=0) as sim,
        running_fake_slack(bot_token="xoxb-the-real-one") as slack,
    ):
        env = bot_env(sim_url=sim.base_url, slack_url=slack.api_url, database=tmp_path / "sweep.db")
        # Not subprocess.run: the local Slack answers from this test's event loop.
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "bot", "serve", "--http", "--host", "127.0.0.1", "--port", "0"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
        stderr = err.decode()
    assert process.returncode == 2, stderr
    lines = [line for line in stderr.splitlines() if "configuration error" in line]
    assert lines == ["sweep-bot: configuration error: SLACK_BOT_TOKEN was refused by Slack (invalid_auth)"]
    assert "Traceback" not in stderr and BOT_TOKEN not in stderr
    assert [c.method for c in slack.calls()] == ["auth.test"]


async def test_an_unreachable_slack_is_retried_until_it_answers(tmp_path: Path) -> None:
    refusing = ClosedPort()
    slack_port = refusing.port
    async with running_simulator(SimulatorConfig(token=CF_TOKEN), host="127.0.0.1", port=0) as sim:
        bot = BotProcess(
            env=bot_env(
                sim_url=sim.base_url,
                slack_url=f"http://127.0.0.1:{slack_port}/api/",
                database=tmp_path / "sweep.db",
            ),
            log_path=tmp_path / "bot.log",
        )
        start = asyncio.ensure_future(bot.start())
        try:
            await wait_until(
                lambda: "Slack unreachable at" in bot.logs(), timeout=START_TIMEOUT, what="a retry warning"
            )
            assert not start.done()  # not serving while it cannot know who it is
            refusing.release()  # Slack comes up on that port
            async with running_fake_slack(bot_token=BOT_TOKEN, port=slack_port) as slack:
                await start
                assert len(slack.calls("auth.test")) == 1
            warnings = [line for line in bot.logs().splitlines() if "Slack unreachable at" in line]
            assert warnings and all("retrying in" in line for line in warnings)
            assert "Traceback" not in bot.logs()
        finally:
            refusing.release()
            start.cancel()
            bot.stop()


async def test_sigterm_while_waiting_for_slack_stops_at_once(tmp_path: Path) -> None:
    async with running_simulator(SimulatorConfig(token=CF_TOKEN), host="127.0.0.1", port=0) as sim:
        refusing = ClosedPort()
        env = bot_env(
            sim_url=sim.base_url,
            slack_url=f"http://127.0.0.1:{refusing.port}/api/",
            database=tmp_path / "x.db",
        )
        log = (tmp_path / "bot.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", "--http", "--port", "0"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            await wait_until(
                lambda: "Slack unreachable at" in (tmp_path / "bot.log").read_text(),
                timeout=START_TIMEOUT,
                what="a retry",
            )
            process.send_signal(signal.SIGTERM)
            await wait_until(lambda: process.poll() is not None, timeout=10, what="the bot to exit")
            assert process.returncode == 0
            assert "Traceback" not in (tmp_path / "bot.log").read_text()
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
            refusing.release()


async def test_resolve_identity_gives_up_with_one_line() -> None:
    with ClosedPort() as refusing, pytest.raises(SlackUnavailableError) as raised:
        url = f"http://127.0.0.1:{refusing.port}/api/"
        await resolve_identity(AsyncWebClient(token=BOT_TOKEN, base_url=url), give_up_after=0.3)
    message = str(raised.value)
    assert message.startswith(f"Slack unreachable at {url} (") and "gave up after" in message
    assert "\n" not in message
