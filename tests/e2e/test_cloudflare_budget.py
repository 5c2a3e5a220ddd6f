"""The shared Cloudflare budget end to end: the real `sweep-bot serve --http`, the simulator, the local Slack.

The bot runs with `SWEEP_CLOUDFLARE_BUDGET=20` (Cloudflare's 1,200 scaled down): Sweep keeps to 16
requests per 5 minutes, polls, lists and previews to 12. The test spends the routine share with
`/sweep list`, then shows a create and a cancel still going through, the user told in words when a
request is held back, and a 429 pausing everything Sweep sends (the metrics say so too).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from bot.ids import ActionId
from tests.e2e.conftest import CHANNEL, OPERATOR, Stack, open_stack, wait_until
from tests.e2e.test_metrics import scrape, value

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIST = "GET /accounts/{account_id}/email-security/investigate/bulk"
CREATE = "POST /accounts/{account_id}/email-security/investigate/bulk"
CANCEL = "POST /accounts/{account_id}/email-security/investigate/bulk/{job_id}/cancel"
HELD_BACK = "Not sent to Cloudflare yet"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """The HTTP-mode stack with a budget of 20 requests per 5 minutes."""
    extra = {"SWEEP_CLOUDFLARE_BUDGET": "20"}
    async with open_stack(tmp_path_factory.mktemp("e2e-budget"), extra_env=extra) as opened:
        yield opened


def everything(message: Any) -> str:
    """Return a message's fallback text and blocks as one searchable string."""
    return (getattr(message, "text", "") or "") + "\n" + json.dumps(getattr(message, "blocks", []) or [])


async def reply_to(stack: Stack, text: str) -> Any:
    """Run `/sweep <text>` as the operator and return the answer."""
    state = stack.slack.state
    before = len(state.responses(OPERATOR))
    assert (await stack.driver.slash(text)).status == 200
    replies = await wait_until(lambda: state.responses(OPERATOR)[before:], what=f"the answer to {text}")
    return replies[-1]


async def sent(stack: Stack, route: str) -> int:
    """Return how many requests the simulator answered on a route."""
    return int((await stack.sim.stats())["requests"].get(route, 0))


async def test_creates_and_cancels_go_through_when_lists_have_spent_their_share(stack: Stack) -> None:
    state = stack.slack.state
    before = len(state.responses(OPERATOR))
    await stack.driver.slash("move subject:invoice to:junk")
    preview = (await wait_until(lambda: state.responses(OPERATOR)[before:], what="the preview"))[-1]
    assert ActionId.CONFIRM_CREATE in everything(preview), everything(preview)

    # Lists until Sweep holds one back: the routine share (12, the preview's search included) is spent.
    for _ in range(13):
        answer = await reply_to(stack, "list")
        if HELD_BACK in everything(answer):
            break
    else:
        pytest.fail("no list was held back within the routine share")
    shown = everything(answer)
    assert "used up" in shown and "16 of Cloudflare's 20" in shown and "try again in" in shown, shown
    lists_sent = await sent(stack, LIST)
    samples = await scrape(stack.bot.port)
    assert value(samples, "sweep_cloudflare_requests_left", priority="routine") == 0
    assert value(samples, "sweep_cloudflare_requests_left", priority="urgent") == 4
    refused = "sweep_cloudflare_budget_reservations_total"
    assert value(samples, refused, priority="routine", outcome="refused") >= 1

    # The create is urgent: it is served from the four kept for creates and cancels...
    cards = len(state.top_level(CHANNEL))
    await stack.driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=preview.blocks)
    card = (await wait_until(lambda: state.top_level(CHANNEL)[cards:], what="the job card"))[-1]
    [job_id] = set(UUID.findall(everything(card)))
    assert await sent(stack, CREATE) == 1
    # ...and so is its cancel.
    answer = await reply_to(stack, f"cancel {job_id}")
    assert f"Cancelled job `{job_id}`" in everything(answer), everything(answer)
    assert await sent(stack, CANCEL) == 1
    # The poller's lists are routine: deferred, never sent, while the share is spent.
    assert await sent(stack, LIST) == lists_sent


async def test_a_429_pauses_everything_sweep_sends_and_the_user_is_told(stack: Stack) -> None:
    [job_id] = await stack.sim.seed_jobs(1, "PROCESSING", hold=True)
    await stack.sim.set_faults(
        {"rules": [{"status": 429, "retry_after": 600, "count": 1, "method": "POST", "path": "/cancel"}]}
    )
    cancels = await sent(stack, CANCEL)
    answer = await reply_to(stack, f"cancel {job_id}")
    shown = everything(answer)
    assert "10429" in shown and "retry in 600 s" in shown, shown  # Cloudflare's own answer, as always
    # Every replica now waits: the next cancel is held back, and says why and until when.
    answer = await reply_to(stack, f"cancel {job_id}")
    shown = everything(answer)
    assert HELD_BACK in shown and "HTTP 429" in shown and "every Sweep replica waits until" in shown, shown
    assert await sent(stack, CANCEL) == cancels + 1, "the held-back cancel never reached Cloudflare"
    samples = await scrape(stack.bot.port)
    assert 590 < value(samples, "sweep_cloudflare_rate_limit_pause_seconds") <= 600
