"""A graceful stop (SIGTERM) still answers every request Slack already got an ack for."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import OPERATOR, open_stack, wait_until

pytestmark = pytest.mark.asyncio


async def test_sigterm_right_after_an_ack_still_delivers_the_answer(tmp_path: Path) -> None:
    async with open_stack(tmp_path) as stack:
        # Cloudflare answers slowly, so the reply is still being worked on when SIGTERM arrives.
        await stack.sim.set_faults({"rules": [{"latency": 1.0, "method": "GET", "path": "/bulk"}]})
        before = len(stack.slack.state.responses(OPERATOR))
        response = await stack.driver.slash("list")
        assert response.status == 200
        assert stack.bot.process is not None
        stack.bot.process.send_signal(signal.SIGTERM)

        replies = await wait_until(
            lambda: stack.slack.state.responses(OPERATOR)[before:], timeout=20, what="the list reply"
        )
        assert len(replies) == 1
        assert replies[0].text.startswith(("Recent bulk jobs, page 1", "No bulk jobs match")), replies[0].text
        exit_code = await asyncio.to_thread(stack.bot.process.wait, 20)
        assert exit_code == 0, stack.bot.logs()[-2000:]
        assert "follow-ups unfinished" not in stack.bot.logs()
