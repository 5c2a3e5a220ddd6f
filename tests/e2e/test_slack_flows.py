"""Every Slack flow, end to end: signed requests to the bot process, the simulator and the local Slack."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from bot.devslack.driver import sign
from bot.devslack.modal import fill
from bot.ids import ActionId, BlockId, CallbackId
from tests.e2e.conftest import (
    CHANNEL,
    GROUP_MEMBER,
    OPERATOR,
    OTHER_CHANNEL,
    SIGNING_SECRET,
    STRANGER,
    Stack,
    lift_cloudflare_pause,
    wait_until,
)
from tests.support import buttons, card_status  # also imported from here by other e2e modules

pytestmark = pytest.mark.asyncio(loop_scope="module")

FILTER = "subject:invoice"


def everything(message: Any) -> str:
    """Return a message's fallback text and blocks as one searchable string."""
    text = getattr(message, "text", "") or ""
    blocks = getattr(message, "blocks", []) or []
    return text + "\n" + json.dumps(blocks, ensure_ascii=False)


async def sim_jobs(stack: Stack) -> list[dict[str, Any]]:
    """Return every job the simulator holds (newest first)."""
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{stack.sim.base_url}/accounts/0123456789abcdef0123456789abcdef/email-security/investigate/bulk",
            params={"per_page": 1000},
            headers={"Authorization": "Bearer e2e-cloudflare-token"},
        )
    return list(response.json()["result"])


async def last_response(stack: Stack, user: str, count_before: int) -> Any:
    """Wait for a new response_url/ack message to `user` and return the newest."""
    return (await wait_until(lambda: stack.slack.state.responses(user)[count_before:], what="a reply"))[-1]


async def inline_create(stack: Stack, text: str, *, user: str = OPERATOR) -> dict[str, Any]:
    """Run an inline create, confirm it, and return the new job's card message."""
    state = stack.slack.state
    before_jobs = {j["job_id"] for j in await sim_jobs(stack)}
    before = len(state.responses(user))
    response = await stack.driver.slash(text, user_id=user)
    assert response.status == 200
    preview = await last_response(stack, user, before)
    controls = buttons(preview.blocks)
    assert ActionId.CONFIRM_CREATE in controls, everything(preview)
    cards_before = len(state.top_level(CHANNEL))
    await stack.driver.block_action(ActionId.CONFIRM_CREATE, user_id=user, message_blocks=preview.blocks)
    jobs = await wait_until(lambda: _new_jobs(stack, before_jobs), what="the job at the simulator")
    assert len(jobs) == 1
    cards = await wait_until(lambda: state.top_level(CHANNEL)[cards_before:], what="the job card")
    card = cards[-1]
    assert card.metadata and card.metadata["event_payload"]["job_id"] == jobs[0]["job_id"]
    return {"job": jobs[0], "card": card}


async def _new_jobs(stack: Stack, before: set[str]) -> list[dict[str, Any]]:
    return [j for j in await sim_jobs(stack) if j["job_id"] not in before]


# ---------------------------------------------------------------------------- signatures


async def test_help_is_acknowledged_with_usage(stack: Stack) -> None:
    response = await stack.driver.slash("help")
    assert response.status == 200
    body = response.json()
    assert "/sweep move" in body["text"] or "/sweep move" in json.dumps(body["blocks"])
    assert body.get("response_type", "ephemeral") == "ephemeral"


@pytest.mark.parametrize("case", ["unsigned", "forged", "stale"])
async def test_requests_not_from_slack_are_refused(stack: Stack, case: str) -> None:
    body = "command=%2Fsweep&text=help&user_id=U0OPERATOR&channel_id=C0INCIDENT&team_id=T1"
    now = int(time.time())
    if case == "unsigned":
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    elif case == "forged":
        headers = sign("not-the-secret", body.encode(), now)
    else:
        headers = sign(SIGNING_SECRET, body.encode(), now - 600)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    response = await stack.driver.raw(body, headers)
    assert response.status == 401


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frobnicate", "frobnicate"),
        ("move sender:a@b.example", "to:"),
        ("move sendr:a@b.example to:junk", "sendr"),
        ("move sender:a@b.example to:attic", "attic"),
        ("move sender:a@b.example start:yesterday to:junk", "start"),
        ("move sender:a@b.example start:2026-11-20 end:2026-11-10 to:junk", "end"),
        ("move since:7d to:junk", "filter"),
        ("cancel not-a-uuid", "not-a-uuid"),
    ],
)
async def test_mistakes_get_an_ephemeral_usage_message_and_reach_no_one(
    stack: Stack, text: str, expected: str
) -> None:
    created_before = len(await sim_jobs(stack))
    response = await stack.driver.slash(text)
    assert response.status == 200
    body = response.json()
    assert body.get("response_type", "ephemeral") == "ephemeral"
    assert expected.lower() in everything(_Obj(body)).lower()
    assert len(await sim_jobs(stack)) == created_before


class _Obj:
    def __init__(self, body: dict[str, Any]) -> None:
        self.text = body.get("text", "")
        self.blocks = body.get("blocks", [])


async def test_query_containing_the_word_payload_still_reaches_the_command(stack: Stack) -> None:
    # Bolt would read this form body as an interactive payload and answer nothing; the folder error
    # proves the command reached the grammar.
    response = await stack.driver.slash("move query:payload to:attic")
    assert response.status == 200
    body = response.json()
    assert body.get("response_type", "ephemeral") == "ephemeral"
    assert "attic" in everything(_Obj(body))


# ---------------------------------------------------------------------------- authorisation


async def test_a_stranger_may_not_create_and_is_told_why(stack: Stack) -> None:
    created_before = len(await sim_jobs(stack))
    before = len(stack.slack.state.responses(STRANGER))
    await stack.driver.slash(f"move {FILTER} to:junk", user_id=STRANGER)
    reply = await last_response(stack, STRANGER, before)
    assert "operator" in everything(reply).lower()
    assert len(await sim_jobs(stack)) == created_before


async def test_a_channel_outside_the_allow_list_is_refused(stack: Stack) -> None:
    response = await stack.driver.slash("list", channel_id=OTHER_CHANNEL)
    assert "not enabled" in everything(_Obj(response.json())).lower()


# ---------------------------------------------------------------------------- create, track, cancel


async def test_inline_move_previews_then_creates_one_job_with_a_tracked_card(stack: Stack) -> None:
    created = await inline_create(stack, f'move {FILTER} since:30d to:deleted comment:"phish wave"')
    job, card = created["job"], created["card"]
    assert job["action_params"]["destination"] == "DeletedItems"
    assert job["search_params"]["detections_only"] is False
    assert OPERATOR in job["comment"] and CHANNEL in job["comment"] and "phish wave" in job["comment"]
    state = stack.slack.state

    def finished() -> bool:
        message = state.message(CHANNEL, card.ts)
        return card_status(message) == "completed"

    def transitions_replied() -> list[str]:
        replies = state.thread(CHANNEL, card.ts)[1:]
        return [r.metadata["event_payload"]["transition"] for r in replies if r.metadata]

    await wait_until(finished, timeout=30, what="the card to show COMPLETED")
    final = state.message(CHANNEL, card.ts)
    assert final is not None
    assert ActionId.CANCEL_JOB not in buttons(final.blocks), "no Cancel button on a finished job"
    # The card's edit and the thread reply are separate deliveries: either may arrive first.
    await wait_until(
        lambda: any(t.endswith("COMPLETED") for t in transitions_replied()), what="the COMPLETED reply"
    )
    transitions = transitions_replied()
    assert len(transitions) == len(set(transitions)), f"a transition was posted twice: {transitions}"
    assert any(t.endswith("COMPLETED") for t in transitions)


async def test_group_member_may_create_and_subject_is_escaped(stack: Stack) -> None:
    created = await inline_create(
        stack, 'release subject:"<!channel> <@U999> <https://evil.example|bank>"', user=GROUP_MEMBER
    )
    card = created["card"]
    rendered = everything(card)
    assert "<!channel>" not in rendered and "<@U999>" not in rendered and "<https://evil" not in rendered
    assert "&lt;!channel&gt;" in rendered


async def test_cancel_from_the_card_button_then_a_second_click_is_polite(stack: Stack) -> None:
    created = await inline_create(stack, f"move {FILTER} to:junk")
    job_id, card = created["job"]["job_id"], created["card"]
    await stack.sim.hold([job_id])  # keep it running until cancelled, however slow this machine is
    state = stack.slack.state
    original_blocks = list(card.blocks)  # the fake updates the message object in place
    assert ActionId.CANCEL_JOB in buttons(original_blocks)
    # A stranger's click is refused and changes nothing.
    before = len(state.responses(STRANGER))
    await stack.driver.block_action(ActionId.CANCEL_JOB, user_id=STRANGER, message_ts=card.ts)
    refusal = await last_response(stack, STRANGER, before)
    assert "only Sweep operators may cancel jobs" in everything(refusal)
    assert next(j for j in await sim_jobs(stack) if j["job_id"] == job_id)["status"] != "CANCELLED"
    # The operator cancels.
    before = len(state.responses(OPERATOR))
    await stack.driver.block_action(ActionId.CANCEL_JOB, user_id=OPERATOR, message_ts=card.ts)
    answer = await last_response(stack, OPERATOR, before)
    assert "Cancelled" in everything(answer)
    await wait_until(
        lambda: card_status(state.message(CHANNEL, card.ts)) == "cancelled",
        timeout=20,
        what="the card to show Cancelled",
    )
    final = state.message(CHANNEL, card.ts)
    assert final is not None and ActionId.CANCEL_JOB not in buttons(final.blocks)
    assert OPERATOR in everything(final)
    await wait_until(
        lambda: any(OPERATOR in everything(r) for r in state.thread(CHANNEL, card.ts)[1:]),
        what="a thread reply naming who cancelled",
    )
    # A second click answers politely and does no harm.
    before = len(state.responses(OPERATOR))
    await stack.driver.block_action(
        ActionId.CANCEL_JOB, user_id=OPERATOR, message_ts=card.ts, message_blocks=original_blocks
    )
    again = await last_response(stack, OPERATOR, before)
    assert "already finished" in everything(again)


async def create_at_the_api(stack: Stack, body: dict[str, Any] | None = None) -> str:
    """Create a job straight at the simulator's API (as the dashboard would); return its id."""
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{stack.sim.base_url}/accounts/0123456789abcdef0123456789abcdef/email-security/investigate/bulk",
            json=body
            or {"action": "RELEASE", "search_params": {"subject": "invoice", "detections_only": False}},
            headers={"Authorization": "Bearer e2e-cloudflare-token"},
        )
    response.raise_for_status()
    return str(response.json()["result"]["job_id"])


async def test_list_status_and_watch(stack: Stack) -> None:
    # This test makes its own job: it must not depend on what earlier tests left behind.
    listed_job = await create_at_the_api(stack)
    before = len(stack.slack.state.responses(STRANGER))
    await stack.driver.slash("list", user_id=STRANGER)
    listing = await last_response(stack, STRANGER, before)
    assert listed_job in everything(listing)
    before = len(stack.slack.state.responses(STRANGER))
    await stack.driver.slash(f"status {listed_job}", user_id=STRANGER)
    status = await last_response(stack, STRANGER, before)
    assert listed_job in everything(status)
    # A job created elsewhere (straight at the API) gets a card when watched.
    outside = await create_at_the_api(stack)
    # A stranger may not watch it, and is told that watching is what was refused.
    before = len(stack.slack.state.responses(STRANGER))
    await stack.driver.slash(f"watch {outside}", user_id=STRANGER)
    refusal = await last_response(stack, STRANGER, before)
    assert "only Sweep operators may watch jobs" in everything(refusal)
    cards_before = len(stack.slack.state.top_level(CHANNEL))
    await stack.driver.slash(f"watch {outside}")
    cards = await wait_until(lambda: stack.slack.state.top_level(CHANNEL)[cards_before:], what="watched card")
    card = cards[-1]
    assert outside in everything(card)


# ---------------------------------------------------------------------------- the modal


async def test_modal_flow_with_inline_errors_preview_and_strong_confirmation(stack: Stack) -> None:
    state = stack.slack.state
    await stack.driver.slash("new")
    view = (await wait_until(lambda: state.views(OPERATOR), what="the create modal"))[-1]
    assert view.callback_id == CallbackId.CREATE_FORM
    # No filter at all: an inline error, nothing created.
    created_before = len(await sim_jobs(stack))
    response = await stack.driver.view_submission(view.view, fill(view.view, {BlockId.DESTINATION: "Inbox"}))
    assert response.json().get("response_action") == "errors"
    # A permanent purge: preview first, then the typed confirmation.
    values = fill(view.view, {BlockId.DESTINATION: "RecoverableItemsPurges", BlockId.SUBJECT: "invoice"})
    response = await stack.driver.view_submission(view.view, values)
    assert response.json().get("response_action") == "update"
    preview = await wait_until(
        lambda: (v := state.view(view.id)) is not None and v.callback_id == CallbackId.CREATE_PREVIEW and v,
        what="the preview view",
    )
    wrong = fill(preview.view, {BlockId.CONFIRM_WORD: "yes"})
    response = await stack.driver.view_submission(preview.view, wrong)
    assert response.json().get("response_action") == "errors"
    assert len(await sim_jobs(stack)) == created_before
    right = fill(preview.view, {BlockId.CONFIRM_WORD: "PURGE"})
    response = await stack.driver.view_submission(preview.view, right)
    assert response.json().get("response_action") == "update"
    jobs = await wait_until(
        lambda: _count_is(stack, created_before + 1), what="the purge job at the simulator"
    )
    assert jobs[0]["action_params"]["destination"] == "RecoverableItemsPurges"


async def _count_is(stack: Stack, count: int) -> list[dict[str, Any]] | None:
    jobs = await sim_jobs(stack)
    return jobs if len(jobs) == count else None


# ---------------------------------------------------------------------------- Cloudflare errors


async def test_cloudflare_error_reaches_the_user_with_its_code(stack: Stack) -> None:
    await stack.sim.set_faults({"rate_limit": {"count": 20, "retry_after": 600}})
    try:
        before = len(stack.slack.state.responses(OPERATOR))
        await stack.driver.slash("list")
        reply = await last_response(stack, OPERATOR, before)
        assert "rate limited" in everything(reply).lower()
    finally:
        await stack.sim.set_faults({})
        lift_cloudflare_pause(stack.database)  # the 600 s every replica would now wait


async def test_a_stranger_submitting_the_form_is_refused_after_the_ack(stack: Stack) -> None:
    state = stack.slack.state
    views_before = len(state.views(OPERATOR))
    await stack.driver.slash("new")
    view = (await wait_until(lambda: state.views(OPERATOR)[views_before:], what="the create modal"))[-1]
    created_before = len(await sim_jobs(stack))
    values = fill(view.view, {BlockId.DESTINATION: "JunkEmail", BlockId.SUBJECT: "invoice"})
    response = await stack.driver.view_submission(view.view, values, user_id=STRANGER)
    assert response.status == 200
    assert response.json().get("response_action") == "update", "the form shows it is working on it"
    await wait_until(
        lambda: "operator" in json.dumps(state.view(view.id).view if state.view(view.id) else {}).lower(),
        what="the modal to say only operators may create",
    )
    assert len(await sim_jobs(stack)) == created_before
