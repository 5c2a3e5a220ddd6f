"""Faults on both sides, over the real HTTP path: the bot is a process, Cloudflare and Slack misbehave.

Cloudflare faults come from the simulator's fault injection (429 with Retry-After, 5xx bursts,
latency beyond the client timeout, an ambiguous 5xx after a create did its work); Slack faults from
the fake Web API (429 on chat.postMessage, `message_not_found` on chat.update, `channel_not_found`
on a card post, 5xx on chat.update). Whatever happens, Slack is acknowledged within 3 s, the user is
told the truth, nothing is done twice, and the process keeps serving.

The module runs its own bot with a short Cloudflare timeout (`SWEEP_CLOUDFLARE_TIMEOUT`), so a slow
Cloudflare is detected in about a second per attempt instead of ten.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio

from bot.devslack.modal import fill
from bot.ids import ActionId, BlockId, CallbackId
from bot.payloads import ListPageValue, encode
from tests.e2e.conftest import (
    ACCOUNT_ID,
    CF_TOKEN,
    CHANNEL,
    OPERATOR,
    Stack,
    lift_cloudflare_pause,
    open_stack,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECOND_CHANNEL = "C0SECOND"  # also allowed by bot_env's SWEEP_CHANNELS
CLOUDFLARE_TIMEOUT = 1.0
FILTER = "subject:invoice"
ACK_DEADLINE = 3.0


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """Like conftest's stack, but jobs run in 2 s and Cloudflare answers time out after 1 s."""
    extra = {"SWEEP_CLOUDFLARE_TIMEOUT": str(CLOUDFLARE_TIMEOUT)}
    async with open_stack(
        tmp_path_factory.mktemp("e2e-faults"), job_seconds=2.0, seed=23, extra_env=extra
    ) as opened:
        yield opened


@pytest_asyncio.fixture(loop_scope="module", autouse=True)
async def no_faults_left(stack: Stack) -> AsyncIterator[None]:
    """Every test starts and ends with both fakes healthy (and no pause a 429 started left in force)."""
    await stack.sim.clear_faults()
    stack.slack.clear_faults()
    yield
    await stack.sim.clear_faults()
    lift_cloudflare_pause(stack.database)
    stack.slack.clear_faults()
    stack.slack.state.missing_channels.clear()


# ---------------------------------------------------------------------------- helpers


def everything(message: Any) -> str:
    """Return a message's fallback text and blocks as one searchable string."""
    return (getattr(message, "text", "") or "") + "\n" + json.dumps(getattr(message, "blocks", []) or [])


def card_status(message: Any) -> str:
    """Return the status word of a card's fallback text (`Move to X: Completed, …` → `completed`)."""
    if message is None or ":" not in message.text:
        return ""
    return str(message.text.split(":", 1)[1].split(",")[0]).strip().lower()


def action_ids(blocks: list[dict[str, Any]]) -> set[str]:
    """Return the action_ids of the buttons in some blocks."""
    return {
        element.get("action_id", "")
        for block in blocks
        if block.get("type") == "actions"
        for element in block.get("elements", [])
    }


async def sim_jobs(stack: Stack) -> list[dict[str, Any]]:
    """Return every job the simulator holds, straight from its API (newest first)."""
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{stack.sim.base_url}/accounts/{ACCOUNT_ID}/email-security/investigate/bulk",
            params={"per_page": 1000},
            headers={"Authorization": f"Bearer {CF_TOKEN}"},
        )
    assert response.status_code == 200, response.text
    return list(response.json()["result"])


async def reply_after(stack: Stack, count_before: int, *, user: str = OPERATOR, timeout: float = 20) -> Any:
    """Wait for a new response_url/ack message to `user` and return the newest."""
    found = await wait_until(
        lambda: stack.slack.state.responses(user)[count_before:], timeout=timeout, what="a reply"
    )
    return found[-1]


async def slash_reply(stack: Stack, text: str, *, timeout: float = 20) -> tuple[float, Any]:
    """Run `/sweep text`; return how long the ack took and the first message the user then sees."""
    before = len(stack.slack.state.responses(OPERATOR))
    response = await stack.driver.slash(text)
    assert response.status == 200, response.body
    return response.elapsed, await reply_after(stack, before, timeout=timeout)


def cards_of(stack: Stack, channel: str, job_id: str) -> list[Any]:
    """Return the top-level messages in `channel` that are the card of `job_id`."""
    return [
        m
        for m in stack.slack.state.top_level(channel)
        if m.metadata and m.metadata.get("event_payload", {}).get("job_id") == job_id
    ]


async def create_job(stack: Stack, *, channel: str = CHANNEL) -> dict[str, Any]:
    """Preview then confirm an inline move in `channel`; return the one new job at the simulator."""
    before_ids = {job["job_id"] for job in await sim_jobs(stack)}
    before = len(stack.slack.state.responses(OPERATOR))
    response = await stack.driver.slash(f"move {FILTER} to:junk", channel_id=channel)
    assert response.status == 200, response.body
    preview = await reply_after(stack, before)
    assert ActionId.CONFIRM_CREATE in action_ids(preview.blocks), everything(preview)
    before = len(stack.slack.state.responses(OPERATOR))
    clicked = await stack.driver.block_action(
        ActionId.CONFIRM_CREATE, channel_id=channel, message_blocks=preview.blocks
    )
    assert clicked.status == 200, clicked.body

    async def created() -> bool:
        return any("Created job" in r.text for r in stack.slack.state.responses(OPERATOR)[before:])

    await wait_until(created, timeout=20, what="the 'Created job' answer")

    async def new_jobs() -> list[dict[str, Any]]:
        return [job for job in await sim_jobs(stack) if job["job_id"] not in before_ids]

    jobs = await wait_until(new_jobs, what="the job at the simulator")
    assert len(jobs) == 1, f"expected exactly one new job, got {len(jobs)}"
    return jobs[0]


def tracked_row(stack: Stack, job_id: str) -> dict[str, Any] | None:
    """Return the bot's stored row for a job (read-only, straight from its SQLite file)."""
    connection = sqlite3.connect(f"file:{stack.database}?mode=ro", uri=True, timeout=5)
    try:
        connection.row_factory = sqlite3.Row
        row = connection.execute("SELECT * FROM tracked_jobs WHERE job_id = ?", (job_id,)).fetchone()
        return dict(row) if row is not None else None
    finally:
        connection.close()


def slack_calls(stack: Stack, method: str, **params: str) -> list[Any]:
    """Return the recorded calls to `method` whose parameters include `params`."""
    return [
        call
        for call in stack.slack.calls(method)
        if all(str(call.params.get(key)) == value for key, value in params.items())
    ]


async def holds_for(condition: Callable[[], bool], *, seconds: float, what: str) -> None:
    """Check that `condition` stays true for `seconds` (several tracker and notifier cycles)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        assert condition(), f"no longer true: {what}"
        await asyncio.sleep(0.05)
    assert condition(), f"no longer true: {what}"


async def wait_final_card(stack: Stack, channel: str, job_id: str, *, timeout: float = 30) -> Any:
    """Wait until the job's (single) card shows a finished job without a Cancel button."""

    def finished() -> Any:
        cards = cards_of(stack, channel, job_id)
        if len(cards) == 1 and card_status(cards[0]) == "completed":
            return cards[0]
        return None

    card = await wait_until(finished, timeout=timeout, what=f"the card of {job_id} to show Completed")
    assert ActionId.CANCEL_JOB not in action_ids(card.blocks)
    return card


# ---------------------------------------------------------------------------- Cloudflare faults


async def test_a_short_cloudflare_rate_limit_is_waited_out_and_the_user_gets_the_answer(stack: Stack) -> None:
    config = await stack.sim.set_faults(
        {"rules": [{"status": 429, "retry_after": 1, "count": 2, "method": "GET", "path": "/bulk"}]}
    )
    before = len(stack.slack.state.responses(OPERATOR))
    _, notice = await slash_reply(stack, "list")
    # The user hears at once that Cloudflare is rate limiting and when Sweep retries...
    assert "Cloudflare is rate limiting" in everything(notice), everything(notice)
    assert "retry in 1 s" in everything(notice)

    def answered() -> list[Any]:
        replies = stack.slack.state.responses(OPERATOR)[before:]
        return [r for r in replies if "Recent bulk jobs" in r.text or "No bulk jobs match" in r.text]

    # ...then gets the answer, without an error.
    reply = (await wait_until(answered, timeout=20, what="the list after the rate limit"))[-1]
    assert "rate limited" not in everything(reply).lower()
    assert config.rules[0].count == 0, "both 429s were served (and waited out)"
    replies = stack.slack.state.responses(OPERATOR)[before:]
    notices = [r for r in replies if "Cloudflare is rate limiting" in r.text]
    assert len(notices) == 2 and notices[1].replace_original, "a second wait updates the first notice"


async def test_a_rate_limited_preview_in_the_form_says_so_in_the_form_then_shows_the_preview(
    stack: Stack,
) -> None:
    # No job is active yet in this module, so the only Cloudflare call is the preview's search.
    config = await stack.sim.set_faults(
        {"rules": [{"status": 429, "retry_after": 1, "count": 1, "method": "GET", "path": "/investigate"}]}
    )
    state = stack.slack.state
    before = len(state.views(OPERATOR, include_closed=True))
    await stack.driver.slash("new")
    opened = await wait_until(lambda: state.views(OPERATOR, include_closed=True)[before:], what="the form")
    view = opened[-1]
    values = fill(view.view, {BlockId.DESTINATION: "JunkEmail", BlockId.SUBJECT: "invoice"})
    response = await stack.driver.view_submission(view.view, values)
    assert response.status == 200 and response.elapsed < ACK_DEADLINE

    def previewed() -> Any:
        current = state.view(view.id)
        return current if current is not None and current.callback_id == CallbackId.CREATE_PREVIEW else None

    preview = await wait_until(previewed, timeout=20, what="the preview after the rate limit")
    shown = [json.dumps(version.get("blocks"), ensure_ascii=False) for version in preview.versions]
    notices = [text for text in shown if "Cloudflare is rate limiting" in text]
    assert notices and "retry in 1 s" in notices[0], shown
    assert config.rules[0].count == 0, "the 429 was served (and waited out)"


async def test_a_long_cloudflare_rate_limit_is_reported_with_the_code_and_when_to_retry(stack: Stack) -> None:
    await stack.sim.set_faults({"rate_limit": {"count": 50, "retry_after": 600}})
    _, reply = await slash_reply(stack, "list")
    text = everything(reply)
    assert "rate limited" in text.lower(), text
    assert "retry in 600 s" in text, text
    assert "10429" in text, "Cloudflare's error code is shown"
    assert reply.response_type == "ephemeral"


async def test_a_burst_of_cloudflare_5xx_is_retried_until_it_succeeds(stack: Stack) -> None:
    config = await stack.sim.set_faults({"server_error": {"count": 2, "status": 502}})
    _, reply = await slash_reply(stack, "list")
    text = everything(reply)
    assert "Recent bulk jobs" in text or "No bulk jobs match" in text, text
    assert "10002" not in text and "502" not in text
    assert config.rules[0].count == 0, "both 502s were served"


async def test_a_cloudflare_slower_than_the_timeout_is_reported_as_a_timeout_and_slack_is_acked_at_once(
    stack: Stack,
) -> None:
    (job_id,) = await stack.sim.seed_jobs(1, "COMPLETED")
    await stack.sim.set_faults({"rules": [{"latency": 3.0, "method": "GET", "path": f"/bulk/{job_id}"}]})
    elapsed, reply = await slash_reply(stack, f"status {job_id}", timeout=30)
    assert elapsed < ACK_DEADLINE, f"the ack took {elapsed:.2f} s"
    text = everything(reply)
    assert "timed out" in text, text
    assert "gave up after 4 attempts" in text, text
    # Once Cloudflare is quick again the same command works.
    await stack.sim.clear_faults()
    _, reply = await slash_reply(stack, f"status {job_id}")
    assert job_id in everything(reply) and "timed out" not in everything(reply)


async def test_every_kind_of_request_is_acked_within_3_s_while_cloudflare_hangs(stack: Stack) -> None:
    # The ack promise itself (README "Operating it"): acknowledged from the listener, no network call on
    # the way. The load it claims: every Cloudflare answer takes 4 s, longer than Slack waits, so an ack
    # that waited for Cloudflare would miss the deadline whatever the machine's speed.
    await stack.sim.set_faults({"rules": [{"latency": 4.0}]})
    state = stack.slack.state
    acks: dict[str, float] = {}
    for text in (
        "list",
        "move subject:invoice to:junk",
        f"status {(await stack.sim.seed_jobs(1, 'COMPLETED'))[0]}",
    ):
        response = await stack.driver.slash(text)
        assert response.status == 200, response.body
        acks[f"/sweep {text.split()[0]}"] = response.elapsed
    page = encode(ListPageValue(status=None, action_type=None, page=2))
    response = await stack.driver.block_action(ActionId.LIST_PAGE, page, block_id=BlockId.LIST_PAGE_NEXT)
    assert response.status == 200, response.body
    acks["list page button"] = response.elapsed
    views_before = {v.id for v in state.views(OPERATOR)}
    await stack.driver.slash("new")
    view = (
        await wait_until(
            lambda: [v for v in state.views(OPERATOR) if v.id not in views_before], what="the create modal"
        )
    )[-1]
    values = fill(view.view, {BlockId.DESTINATION: "JunkEmail", BlockId.SUBJECT: "invoice"})
    response = await stack.driver.view_submission(view.view, values)
    assert response.status == 200 and response.json().get("response_action") == "update"
    acks["create form submission"] = response.elapsed
    slow = {what: round(elapsed, 2) for what, elapsed in acks.items() if elapsed >= ACK_DEADLINE}
    assert not slow, f"acks slower than Slack's 3 s: {slow}"
    # Let the hanging follow-ups finish (they time out), so no late reply reaches the next test.
    await stack.sim.clear_faults()
    await wait_until(lambda: _follow_ups_idle(stack), timeout=60, what="the follow-ups to finish")


async def _follow_ups_idle(stack: Stack) -> bool:
    async with httpx.AsyncClient() as http:
        counters = (await http.get(f"http://127.0.0.1:{stack.bot.port}/healthz")).json()["follow_ups"]
    return bool(counters["waiting"] == 0 and counters["running"] == 0)


async def test_an_ambiguous_create_failure_makes_exactly_one_job_and_one_card(stack: Stack) -> None:
    # The simulator creates the job, then answers 503: the bot must find it by its tag, not create again.
    jobs_before = len(await sim_jobs(stack))
    created_before = (await stack.sim.stats())["jobs_created"]
    config = await stack.sim.set_faults(
        {"rules": [{"status": 503, "method": "POST", "path": "/investigate/bulk", "after": True, "count": 1}]}
    )
    job = await create_job(stack)
    assert config.rules[0].count == 0, "the ambiguous 503 was served"
    card = await wait_final_card(stack, CHANNEL, job["job_id"])
    assert job["job_id"] in everything(card)
    assert len(cards_of(stack, CHANNEL, job["job_id"])) == 1
    # Still one job once everything settled: the create was never sent a second time.
    assert len(await sim_jobs(stack)) == jobs_before + 1
    assert (await stack.sim.stats())["jobs_created"] == created_before + 1


# ---------------------------------------------------------------------------- Slack faults


async def test_a_slack_429_on_the_card_post_still_delivers_the_card_exactly_once(stack: Stack) -> None:
    stack.slack.rate_limit("chat.postMessage", retry_after=1, times=1)
    job = await create_job(stack)
    await wait_final_card(stack, CHANNEL, job["job_id"])
    limited = [c for c in stack.slack.calls("chat.postMessage") if c.status == 429]
    assert limited, "the 429 was served"
    assert len(cards_of(stack, CHANNEL, job["job_id"])) == 1


async def test_message_not_found_on_chat_update_stops_editing_that_card(stack: Stack) -> None:
    stack.slack.fail("chat.update", "message_not_found", times=None)
    job = await create_job(stack)
    job_id = job["job_id"]
    (card,) = await wait_until(lambda: cards_of(stack, CHANNEL, job_id), what="the card")

    def dead() -> bool:
        row = tracked_row(stack, job_id)
        return bool(row and row["card_dead"])

    await wait_until(dead, timeout=20, what="the card to be recorded dead")
    row = tracked_row(stack, job_id)
    assert row is not None and "message_not_found" in (row["last_error"] or "")
    # The job keeps running at Cloudflare and the tracker keeps following it…
    await wait_until(
        lambda: (r := tracked_row(stack, job_id)) is not None and r["terminal"] == 1,
        timeout=20,
        what="the tracker to see the job finish",
    )
    # …but the dead card is never edited again (the notifier would retry a transient error).
    edits = len(slack_calls(stack, "chat.update", ts=card.ts))
    assert edits == 1, f"{edits} chat.update calls to the dead card"
    await holds_for(
        lambda: len(slack_calls(stack, "chat.update", ts=card.ts)) == 1,
        seconds=3.0,
        what="a single chat.update to the dead card",
    )


async def test_channel_not_found_on_the_card_post_is_recorded_and_not_retried(stack: Stack) -> None:
    stack.slack.state.missing_channels.add(SECOND_CHANNEL)
    job = await create_job(stack, channel=SECOND_CHANNEL)
    job_id = job["job_id"]

    def dead() -> bool:
        row = tracked_row(stack, job_id)
        return bool(row and row["card_dead"])

    await wait_until(dead, timeout=20, what="the card to be recorded dead")
    row = tracked_row(stack, job_id)
    assert row is not None and "channel_not_found" in (row["last_error"] or "") and row["card_ts"] is None
    posts = len(slack_calls(stack, "chat.postMessage", channel=SECOND_CHANNEL))
    assert posts == 1, f"{posts} chat.postMessage calls to the missing channel"
    await holds_for(
        lambda: (
            len(slack_calls(stack, "chat.postMessage", channel=SECOND_CHANNEL)) == 1
            and not slack_calls(stack, "chat.update", channel=SECOND_CHANNEL)
        ),
        seconds=3.0,
        what="no more calls to the missing channel",
    )
    # The process keeps serving other requests meanwhile.
    response = await stack.driver.slash("help")
    assert response.status == 200 and "/sweep move" in response.body


async def test_a_slack_5xx_on_chat_update_is_retried_and_the_final_state_lands(stack: Stack) -> None:
    stack.slack.http_error("chat.update", 503, times=2)
    job = await create_job(stack)
    card = await wait_final_card(stack, CHANNEL, job["job_id"], timeout=40)
    updates = slack_calls(stack, "chat.update", ts=card.ts)
    assert [c.status for c in updates][:2] == [503, 503], [c.status for c in updates]
    assert updates[-1].ok
    # A 5xx with a plain-text body is a transient Slack error, not an unexpected crash of the notifier.
    logs = stack.bot.logs()
    assert "failed: http_503" in logs, logs[-3000:]
    assert "unexpected error sending outbox row" not in logs, logs[-3000:]


# ---------------------------------------------------------------------------- and still alive


async def test_the_process_survived_every_fault(stack: Stack) -> None:
    assert stack.bot.process is not None and stack.bot.process.poll() is None, stack.bot.logs()[-3000:]
    async with httpx.AsyncClient() as http:
        health = await http.get(f"http://127.0.0.1:{stack.bot.port}/healthz")
    assert health.status_code == 200 and health.json()["ok"] is True
    _, reply = await slash_reply(stack, "list")
    assert "Recent bulk jobs" in everything(reply)
    assert stack.bot.starts == 1, "the bot was never restarted"
