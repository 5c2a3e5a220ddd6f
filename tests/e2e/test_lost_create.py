"""A create lost in a crash is told to the requester exactly once, across restarts (issue 11, item 2).

The real bot process is killed with SIGKILL between recording the create intent and sending the create:
Cloudflare (the simulator) answers the first POST with 429 and `Retry-After: 5`, so the bot sits in its
wait with the intent recorded and no job made, and dies there. Restarted, the bot cannot know whether
Cloudflare got the create; the resolver looks the request tag up until the absence is proven and then
queues one notice for the requester's channel, in the same transaction as the failure.

The notice is then crash-tested itself: the local Slack stores it and sits on the answer, and the bot is
killed again before it hears back (the outbox row stays `attempting`). The next life finds the notice in
the channel's history by its metadata (`sweep_notice`, key `create:<tag>`) instead of posting it again,
and one more restart with a new job flowing through the notifier still shows exactly one notice.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.devslack.driver import SlackDriver
from bot.ids import ActionId, EventType
from tests.e2e.conftest import CHANNEL, OPERATOR, SIGNING_SECRET, Stack, open_stack, wait_until
from tests.e2e.test_slack_flows import buttons, sim_jobs

#: The bot's Cloudflare timeout; the resolver's settle time is twice this.
CLOUDFLARE_TIMEOUT = "2"
#: How long the local Slack sits on the notice it has stored, so the kill lands before the bot hears back.
SLOW_ANSWER = 3.0
COMMENT = "lost-create-e2e"


@contextlib.asynccontextmanager
async def life(stack: Stack, *, start: bool = True) -> AsyncIterator[SlackDriver]:
    """Start the bot (unless it runs) and return a driver with a fresh connection pool for this life."""
    if start:
        await stack.bot.start()
    async with SlackDriver(
        stack.bot.events_url, SIGNING_SECRET, stack.slack.state, user_id=OPERATOR, channel_id=CHANNEL
    ) as driver:
        yield driver


def query(database: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the bot's database (read-only, while the bot may be writing it)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        return connection.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the bot has not created its schema yet
        return []
    finally:
        connection.close()


def notices(stack: Stack, tag: str) -> list[Any]:
    """Return the channel messages carrying the lost-create notice metadata of `tag`."""
    return [
        m
        for m in stack.slack.state.top_level(CHANNEL)
        if (m.metadata or {}).get("event_type") == EventType.NOTICE.value
        and (m.metadata or {}).get("event_payload", {}).get("job_id") == f"create:{tag}"
    ]


def notice_row(stack: Stack, tag: str) -> tuple[Any, ...] | None:
    """Return the notice's outbox row (kind, state, slack_ts, job_id), or None."""
    rows = query(
        stack.database, "SELECT kind, state, slack_ts, job_id FROM outbox WHERE key = ?", (f"create:{tag}",)
    )
    return rows[0] if rows else None


async def confirm(stack: Stack, driver: SlackDriver, text: str) -> None:
    """Run an inline create and click Confirm on its preview."""
    state = stack.slack.state
    before = len(state.responses(OPERATOR))
    assert (await driver.slash(text)).status == 200

    def preview() -> Any:
        return next(
            (r for r in state.responses(OPERATOR)[before:] if ActionId.CONFIRM_CREATE in buttons(r.blocks)),
            None,
        )

    shown = await wait_until(preview, what="the preview")
    assert (await driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=shown.blocks)).status == 200


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with open_stack(tmp_path, extra_env={"SWEEP_CLOUDFLARE_TIMEOUT": CLOUDFLARE_TIMEOUT}) as opened:
        yield opened


async def test_a_create_killed_before_cloudflare_got_it_is_told_once_across_restarts(stack: Stack) -> None:
    # 1. The create is refused with 429 / Retry-After 5: the bot waits with its intent recorded. Kill it.
    [refusal] = (
        await stack.sim.set_faults(
            {"rules": [{"status": 429, "retry_after": 5, "method": "POST", "path": "/bulk", "count": 1}]}
        )
    ).rules
    async with life(stack, start=False) as driver:
        await confirm(stack, driver, f'move subject:invoice since:30d to:junk comment:"{COMMENT}"')
        intents = await wait_until(
            lambda: (
                refusal.count == 0
                and query(stack.database, "SELECT tag, state, channel_id, requester FROM create_intents")
            ),
            what="the create intent and the refused POST",
        )
    stack.bot.kill()
    [(tag, state, channel, requester)] = intents
    assert (state, channel, requester) == ("open", CHANNEL, OPERATOR)
    await stack.sim.clear_faults()
    assert not [j for j in await sim_jobs(stack) if COMMENT in (j.get("comment") or "")]

    # 2. Restarted: the resolver proves the absence and queues the notice; Slack stores it and sits on
    #    the answer, and the bot dies before it hears back.
    stack.slack.slow_down("chat.postMessage", SLOW_ANSWER, times=1)
    async with life(stack):
        [first] = await wait_until(lambda: notices(stack, tag), timeout=30, what="the lost-create notice")
    stack.bot.kill()
    stack.slack.clear_faults()
    row = notice_row(stack, tag)
    assert row is not None and row[0] == "create_not_made" and row[3] is None
    assert row[1] == "attempting", f"the kill was meant to land before Slack answered: {row}"

    # The notice names who asked, what they asked for, that no job was made and how to try again.
    assert f"<@{OPERATOR}>" in first.text and "not created" in first.text
    assert "Move" in first.text and "Run the command again" in first.text
    assert "invoice" in str(first.blocks)
    [(outcome,)] = query(
        stack.database, "SELECT outcome FROM audit_log WHERE action = 'create' AND actor = ?", (OPERATOR,)
    )
    assert outcome.startswith("error:")
    assert query(stack.database, "SELECT state FROM create_intents WHERE tag = ?", (tag,)) == [("failed",)]

    # 3. The next life finds the notice by its metadata instead of posting it again.
    history_before = len(stack.slack.state.calls("conversations.history"))
    async with life(stack):
        await wait_until(lambda: (notice_row(stack, tag) or ())[1:3] == ("sent", first.ts), what="recovery")
        assert len(stack.slack.state.calls("conversations.history")) > history_before
    stack.bot.stop()
    assert [m.ts for m in notices(stack, tag)] == [first.ts]

    # 4. One more restart, with a new job whose card goes through the same notifier after the notice's
    #    row: still one notice, and no job was ever created for the lost request.
    cards_before = len(stack.slack.state.top_level(CHANNEL))
    async with life(stack) as driver:
        await confirm(stack, driver, 'move subject:invoice since:30d to:junk comment:"after-restart"')
        await wait_until(
            lambda: [
                m
                for m in stack.slack.state.top_level(CHANNEL)[cards_before:]
                if (m.metadata or {}).get("event_type") == EventType.CARD.value
            ],
            what="the new job's card",
        )
    assert [m.ts for m in notices(stack, tag)] == [first.ts]
    assert not [j for j in await sim_jobs(stack) if COMMENT in (j.get("comment") or "")]
    assert [r[1] for r in query(stack.database, "SELECT key, state FROM outbox WHERE job_id IS NULL")] == [
        "sent"
    ]
