"""Issue 9, items 2–5, over signed HTTP against the bot process, the simulator and the local Slack.

- an ambiguous create (Cloudflare made the job, the answer and the look-up were lost) is told as
  unknown, then found and carded; the analyst's retry makes nothing new;
- replays, Slack retries (`X-Slack-Retry-Num`) and double clicks of one Confirm make one job; so does
  replaying the modal's final submission;
- a forged Confirm value or private_metadata cannot steer what is created, and the channel is the one
  Slack says the click came from;
- Cloudflare-calling requests are throttled per user with a clear "slow down, try again in N s".
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import pytest_asyncio

from bot.devslack.driver import FORM, USER_AGENT, sign
from bot.ids import ActionId, BlockId, CallbackId, EventType
from tests.e2e.conftest import CHANNEL, OPERATOR, OTHER_CHANNEL, SIGNING_SECRET, Stack, open_stack, wait_until
from tests.e2e.test_slack_flows import buttons, fill, sim_jobs

pytestmark = pytest.mark.asyncio(loop_scope="module")

FILTER = "subject:invoice since:30d"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    workdir = tmp_path_factory.mktemp("hardening")
    # A short Cloudflare timeout so an unknown create is proven or found within the test's patience.
    async with open_stack(workdir, extra_env={"SWEEP_CLOUDFLARE_TIMEOUT": "2"}) as opened:
        yield opened


async def preview_blocks(stack: Stack, text: str, *, user: str = OPERATOR, channel: str = CHANNEL) -> Any:
    state = stack.slack.state
    before = len(state.responses(user))
    response = await stack.driver.slash(text, user_id=user, channel_id=channel)
    assert response.status == 200

    def shown() -> Any:
        for reply in state.responses(user)[before:]:
            if ActionId.CONFIRM_CREATE in buttons(reply.blocks):
                return reply
        return None

    return (await wait_until(shown, what="the preview")).blocks


def tagged(jobs: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    return [j for j in jobs if marker in (j.get("comment") or "")]


async def jobs_with(stack: Stack, marker: str) -> list[dict[str, Any]]:
    return tagged(await sim_jobs(stack), marker)


async def settle(stack: Stack) -> None:
    """Wait until the bot has no follow-up running or waiting (its work for our requests is done)."""
    import httpx

    async def idle() -> bool:
        async with httpx.AsyncClient() as http:
            body = (await http.get(stack.bot.events_url.replace("/slack/events", "/healthz"))).json()
        return body["follow_ups"]["waiting"] == 0 and body["follow_ups"]["running"] == 0

    await wait_until(idle, what="the bot's follow-ups to finish")


def responses_text(stack: Stack, user: str = OPERATOR) -> list[str]:
    return [r.text for r in stack.slack.state.responses(user)]


# ---------------------------------------------------------------- item 3: one confirm is one job


async def test_double_click_replay_and_slack_retry_of_confirm_make_one_job(stack: Stack) -> None:
    blocks = await preview_blocks(stack, f'move {FILTER} to:junk comment:"dbl-click"')
    driver = stack.driver
    # Two clicks of the same preview's Confirm (two interactions, two trigger ids).
    first = await driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=blocks)
    second = await driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=blocks)
    assert first.status == second.status == 200
    await wait_until(lambda: jobs_with(stack, "dbl-click"), what="the job")
    await settle(stack)
    said = len(responses_text(stack))
    # The last click replayed byte for byte, then as Slack retries it.
    body = urlencode({"payload": json.dumps(_last_payload(stack))}).encode()
    replay = await driver.post_signed(body)
    headers = {"Content-Type": FORM, "User-Agent": USER_AGENT, "X-Slack-Retry-Num": "1"}
    retry = await driver.raw(body, {**headers, **sign(SIGNING_SECRET, body, _now())})
    assert replay.status == retry.status == 200
    await settle(stack)
    assert len(await jobs_with(stack, "dbl-click")) == 1
    # The replay and the retry carry the click's trigger id: acknowledged, and nothing more is said.
    answered = len(responses_text(stack))
    assert answered == said, responses_text(stack)[said:]
    # Once the job exists, one more click on the same preview says where it is and creates nothing.
    await driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=blocks)
    await settle(stack)
    assert len(await jobs_with(stack, "dbl-click")) == 1
    later = responses_text(stack)[answered:]
    assert any("Already created" in text for text in later), later


def _now() -> int:
    import time

    return int(time.time())


def _last_payload(stack: Stack) -> dict[str, Any]:
    """Rebuild the last Confirm click the driver sent (same trigger id, same value) for a replay."""
    driver = stack.driver
    payload = driver.last_payload
    assert payload is not None
    return payload


async def test_replaying_the_modal_final_submission_makes_one_job(stack: Stack) -> None:
    state = stack.slack.state
    opened = len(state.views(OPERATOR, include_closed=True))
    await stack.driver.slash("new")
    view = (
        await wait_until(lambda: state.views(OPERATOR, include_closed=True)[opened:], what="the create modal")
    )[-1]
    values = fill(
        view.view,
        {BlockId.DESTINATION: "JunkEmail", BlockId.SUBJECT: "invoice", BlockId.COMMENT: "modal-replay"},
    )
    await stack.driver.view_submission(view.view, values)
    preview = await wait_until(
        lambda: (v := state.view(view.id)) is not None and v.callback_id == CallbackId.CREATE_PREVIEW and v,
        what="the preview view",
    )
    final = fill(preview.view, {})
    await stack.driver.view_submission(preview.view, final)
    await stack.driver.view_submission(preview.view, final)  # a second submission of the same preview
    await settle(stack)
    jobs = [j for j in await sim_jobs(stack) if "modal-replay" in (j.get("comment") or "")]
    assert len(jobs) == 1, jobs


async def test_a_replayed_or_retried_slash_command_is_acknowledged_and_acted_on_once(stack: Stack) -> None:
    # Same trigger id (a byte-for-byte replay, then Slack's retry of it): one Cloudflare call, one answer.
    driver, state = stack.driver, stack.slack.state
    fields = state.slash_command_payload(
        "list", user_id=OPERATOR, channel_id=CHANNEL, channel_name="incident", command="/sweep", team_id="T1"
    )
    body = urlencode(fields).encode()
    await settle(stack)

    def nothing_to_poll() -> bool:  # the tracker's own calls would count too: wait until it tracks nothing
        connection = sqlite3.connect(f"file:{stack.database}?mode=ro", uri=True, timeout=5)
        try:
            active = connection.execute("SELECT COUNT(*) FROM tracked_jobs WHERE terminal = 0").fetchone()
            unresolved = connection.execute(
                "SELECT COUNT(*) FROM create_intents WHERE state IN ('open', 'ambiguous')"
            ).fetchone()
        finally:
            connection.close()
        return active == (0,) and unresolved == (0,)

    await wait_until(nothing_to_poll, timeout=30, what="earlier jobs to finish")
    await settle(stack)
    before_calls = (await stack.sim.stats())["total"]
    before_answers = len(state.responses(OPERATOR))
    first = await driver.post_signed(body)
    replay = await driver.post_signed(body)
    headers = {"Content-Type": FORM, "User-Agent": USER_AGENT, "X-Slack-Retry-Num": "1"}
    retry = await driver.raw(body, {**headers, **sign(SIGNING_SECRET, body, _now())})
    assert first.status == replay.status == retry.status == 200
    await settle(stack)
    answers = [r for r in state.responses(OPERATOR)[before_answers:] if "bulk jobs" in r.text.lower()]
    assert len(answers) == 1, [r.text for r in state.responses(OPERATOR)[before_answers:]]
    assert (await stack.sim.stats())["total"] - before_calls == 1


# ---------------------------------------------------------------- item 4: the stored preview is what runs


async def test_a_forged_confirm_value_creates_nothing(stack: Stack) -> None:
    blocks = await preview_blocks(stack, f'move {FILTER} to:junk comment:"forged-value"')
    before = len(await sim_jobs(stack))
    forged = json.dumps(
        {
            "draft": {
                "action": "MOVE",
                "destination": "Inbox",
                "search_params": {"domain": "", "detections_only": False},
            }
        }
    )
    response = await stack.driver.block_action(ActionId.CONFIRM_CREATE, value=forged, message_blocks=blocks)
    assert response.status == 200
    made_up = json.dumps({"preview_id": "A" * 22})
    await stack.driver.block_action(ActionId.CONFIRM_CREATE, value=made_up, message_blocks=blocks)
    await settle(stack)
    assert len(await sim_jobs(stack)) == before
    texts = responses_text(stack)
    assert any("could not be read" in t for t in texts)
    assert any("not known to Sweep" in t for t in texts)


async def test_the_channel_is_the_one_slack_says_the_click_came_from(stack: Stack) -> None:
    blocks = await preview_blocks(stack, f'move {FILTER} to:junk comment:"wrong-channel"')
    # The same preview's Confirm, clicked (so Slack says) in another channel — allowed or not.
    for channel in ("C0SECOND", OTHER_CHANNEL):
        await stack.driver.block_action(ActionId.CONFIRM_CREATE, channel_id=channel, message_blocks=blocks)
    await settle(stack)
    assert await jobs_with(stack, "wrong-channel") == []
    texts = responses_text(stack)
    assert any("another channel" in t for t in texts)
    assert any("not enabled in this channel" in t for t in texts), texts[-4:]


async def test_edited_private_metadata_is_refused_never_acted_on(stack: Stack) -> None:
    state = stack.slack.state
    opened = len(state.views(OPERATOR, include_closed=True))
    await stack.driver.slash("new")
    view = (
        await wait_until(lambda: state.views(OPERATOR, include_closed=True)[opened:], what="the create modal")
    )[-1]
    values = fill(
        view.view,
        {BlockId.DESTINATION: "JunkEmail", BlockId.SUBJECT: "invoice", BlockId.COMMENT: "meta-edit"},
    )
    await stack.driver.view_submission(view.view, values)
    preview = await wait_until(
        lambda: (v := state.view(view.id)) is not None and v.callback_id == CallbackId.CREATE_PREVIEW and v,
        what="the preview view",
    )
    metadata = json.loads(preview.view["private_metadata"])
    metadata["draft"]["search_params"] = {
        "domain": "",
        "start": "1970-01-01T00:00:00Z",
        "detections_only": False,
    }
    unedited = dict(preview.view)
    forged = dict(preview.view, private_metadata=json.dumps(metadata))
    # The submission carries the view Slack holds: make it hold the edited one (as a forger would send).
    state.replace_view(view.id, forged)
    await stack.driver.view_submission(forged, fill(preview.view, {}))
    await settle(stack)
    # What is created is exactly what was previewed: a payload edited in between creates nothing.
    assert await jobs_with(stack, "meta-edit") == []
    shown = state.view(view.id)
    assert shown is not None and "not what was previewed" in json.dumps(shown.view["blocks"])
    # The stored preview was not used by the refusal: the unedited submission still creates it.
    state.replace_view(view.id, unedited)
    await stack.driver.view_submission(unedited, fill(preview.view, {}))
    [job] = await wait_until(lambda: jobs_with(stack, "meta-edit"), what="the job of the unedited form")
    assert job["search_params"].get("subject") == "invoice"
    assert "domain" not in job["search_params"]
    assert job["search_params"]["start"] != "1970-01-01T00:00:00Z"


# ---------------------------------------------------------------- item 2: an unknown outcome is told


async def test_a_create_whose_answer_is_lost_is_told_unknown_then_carded(stack: Stack) -> None:
    blocks = await preview_blocks(stack, f'move {FILTER} to:junk comment:"answer-lost"')
    await stack.sim.set_faults(
        {
            "rules": [
                {"method": "POST", "path": "/bulk", "status": 503, "after": True, "count": 1},
                # Every look-up fails until the analyst has been told (then the faults are cleared).
                {"method": "GET", "path": "/bulk", "status": 503},
            ]
        }
    )
    try:
        await stack.driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=blocks)
        unknown = await wait_until(
            lambda: [t for t in responses_text(stack) if "outcome of this create is unknown" in t],
            what="the 'unknown' answer",
        )
    finally:
        await stack.sim.clear_faults()
    assert "Do not retry" in unknown[-1] and "503" in unknown[-1]
    [job] = await wait_until(lambda: jobs_with(stack, "answer-lost"), what="the job at Cloudflare")

    def carded() -> bool:
        return any(
            (m.metadata or {}).get("event_type") == EventType.CARD.value
            and m.metadata["event_payload"]["job_id"] == job["job_id"]
            for m in stack.slack.state.top_level(CHANNEL)
        )

    await wait_until(carded, timeout=30, what="the job's card, once the resolver found it by tag")
    # Confirming the same preview again (the analyst's retry) makes nothing new.
    await stack.driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=blocks)
    await settle(stack)
    assert len(await jobs_with(stack, "answer-lost")) == 1
    audit = _audit(stack.database)
    assert any(outcome.startswith("unknown:") for _, outcome in audit)


def _audit(database: Path) -> list[tuple[str, str]]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        return connection.execute("SELECT action, outcome FROM audit_log ORDER BY id").fetchall()
    finally:
        connection.close()


# ---------------------------------------------------------------- item 5: budgets


async def test_cloudflare_calling_requests_are_throttled_per_user(tmp_path: Path) -> None:
    env = {"SWEEP_READS_PER_USER": "5", "SWEEP_READS_TOTAL": "1000"}
    async with open_stack(tmp_path, extra_env=env) as small:
        stats_before = (await small.sim.stats())["total"]
        for _ in range(8):
            response = await small.driver.slash("list", user_id="U0STRANGER")
            assert response.status == 200
        await wait_until(
            lambda: len(small.slack.state.responses("U0STRANGER")) >= 8, what="an answer to every list"
        )
        texts = [r.text for r in small.slack.state.responses("U0STRANGER")]
        slow = [t for t in texts if t.startswith("Slow down")]
        assert len(slow) == 3, texts
        assert "Try again in" in slow[0]
        # Someone else is not held back by the stranger's budget.
        await small.driver.slash("list", user_id=OPERATOR)
        await wait_until(lambda: small.slack.state.responses(OPERATOR), what="the operator's list")
        assert not small.slack.state.responses(OPERATOR)[-1].text.startswith("Slow down")
        assert (await small.sim.stats())["total"] - stats_before <= 6  # 5 lists and the operator's
        refusals = [o for a, o in _audit(small.database) if o == "refused: throttled"]
        assert len(refusals) == 1  # audited once a minute per user, not once per request
