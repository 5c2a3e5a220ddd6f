"""The listeners nothing else drives, end to end: signed HTTP to the bot, the simulator and the local Slack.

Dismissing an inline preview, paging the job list, the modal's action radio and its "Edit search"
button, `/sweep cancel <id>` and `list status:… action:…` as commands, the `/healthz` follow-up
counters, the audit log rows of refusals, cancels and watches (read from the bot's SQLite file), and
the reference id an unexpected error shows the user, found again in the bot's log.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.devslack.modal import fill
from bot.ids import DISMISS_VALUE, ActionId, BlockId, CallbackId
from tests.e2e.conftest import (
    ACCOUNT_ID,
    CF_TOKEN,
    CHANNEL,
    OPERATOR,
    STRANGER,
    Stack,
    lift_cloudflare_pause,
    wait_until,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# README "Using it in Slack": `/sweep list` shows recent jobs, ten to a page (Previous / Next).
PAGE_SIZE = 10


def everything(message: Any) -> str:
    """Return a message's (or view's) text and blocks as one searchable string."""
    text = getattr(message, "text", "") or ""
    blocks = getattr(message, "blocks", []) or []
    return text + "\n" + json.dumps(blocks, ensure_ascii=False)


def elements(blocks: list[dict[str, Any]]) -> list[tuple[str | None, dict[str, Any]]]:
    """Return (block_id, element) of every interactive element in some blocks."""
    found: list[tuple[str | None, dict[str, Any]]] = []
    for block in blocks:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            found.append((block.get("block_id"), element))
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict) and "action_id" in block[key]:
                found.append((block.get("block_id"), block[key]))
    return found


def element_in(blocks: list[dict[str, Any]], block_id: str) -> dict[str, Any] | None:
    """Return the interactive element of the block `block_id`, or None."""
    return next((element for bid, element in elements(blocks) if bid == block_id), None)


def input_ids(view: dict[str, Any]) -> set[str]:
    """Return the block ids of a modal's input blocks."""
    return {b["block_id"] for b in view.get("blocks", []) if b.get("type") == "input"}


def jobs_listed(message: Any) -> list[str]:
    """Return the job ids a list message shows, in order."""
    return UUID.findall(everything(message))


async def api(stack: Stack, method: str, path: str = "", **kwargs: Any) -> Any:
    """Call the simulator's bulk-job API as a dashboard would (not through Sweep)."""
    url = f"{stack.sim.base_url}/accounts/{ACCOUNT_ID}/email-security/investigate/bulk{path}"
    async with httpx.AsyncClient() as http:
        response = await http.request(method, url, headers={"Authorization": f"Bearer {CF_TOKEN}"}, **kwargs)
    response.raise_for_status()
    return response.json()["result"]


async def job_at_cloudflare(stack: Stack, job_id: str) -> dict[str, Any]:
    """Return one job as the API shows it."""
    result: dict[str, Any] = await api(stack, "GET", f"/{job_id}")
    return result


async def create_elsewhere(stack: Stack, *, hold: bool = False) -> str:
    """Create a RELEASE job straight at the API; with `hold`, keep it running until told otherwise."""
    body = {"action": "RELEASE", "search_params": {"subject": "invoice", "detections_only": False}}
    job_id = str((await api(stack, "POST", json=body))["job_id"])
    if hold:
        await stack.sim.hold([job_id])
    return job_id


async def job_count(stack: Stack) -> int:
    """Return how many jobs the simulator's account holds."""
    return len(await api(stack, "GET", params={"per_page": 1000}))


async def reply_to(stack: Stack, user: str, text: str, **kwargs: Any) -> Any:
    """Run `/sweep <text>` as `user` and return the newest message it got back (ack or response_url)."""
    state = stack.slack.state
    before = len(state.responses(user))
    response = await stack.driver.slash(text, user_id=user, **kwargs)
    assert response.status == 200, response.body
    replies = await wait_until(lambda: state.responses(user)[before:], what=f"the answer to /sweep {text}")
    return replies[-1]


async def press(stack: Stack, action_id: str, user: str, **kwargs: Any) -> Any:
    """Press a button in an ephemeral message as `user`; return the response_url answer it got."""
    state = stack.slack.state
    before = len(state.responses(user))
    response = await stack.driver.block_action(action_id, user_id=user, **kwargs)
    assert response.status == 200, response.body
    replies = await wait_until(lambda: state.responses(user)[before:], what=f"the answer to {action_id}")
    return replies[-1]


def audit_rows(database: Path) -> list[dict[str, Any]]:
    """Return the bot's audit log, oldest first, read from its SQLite file."""
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM audit_log ORDER BY id")]


async def audited(stack: Stack, **match: Any) -> dict[str, Any]:
    """Wait for the audit row whose columns equal `match`; return it."""

    def find() -> dict[str, Any] | None:
        rows = [r for r in audit_rows(stack.database) if all(r.get(k) == v for k, v in match.items())]
        return rows[-1] if rows else None

    row: dict[str, Any] = await wait_until(find, what=f"an audit row {match}")
    return row


async def healthz(stack: Stack) -> dict[str, Any]:
    """Return the bot's /healthz body."""
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://127.0.0.1:{stack.bot.port}/healthz")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# ---------------------------------------------------------------------------- inline preview


async def test_dismissing_an_inline_preview_replaces_it_and_creates_nothing(stack: Stack) -> None:
    created_before = await job_count(stack)
    preview = await reply_to(stack, OPERATOR, "move subject:invoice to:junk")
    actions = {
        e["action_id"]: e for bid, e in elements(preview.blocks) if bid == BlockId.INLINE_PREVIEW_ACTIONS
    }
    assert set(actions) == {ActionId.CONFIRM_CREATE, ActionId.DISMISS_PREVIEW}, everything(preview)
    assert actions[ActionId.DISMISS_PREVIEW]["value"] == DISMISS_VALUE
    answer = await press(stack, ActionId.DISMISS_PREVIEW, OPERATOR, message_blocks=preview.blocks)
    assert answer.replace_original and answer.response_type == "ephemeral"
    assert "Nothing was created." in everything(answer)
    assert ActionId.CONFIRM_CREATE not in everything(answer), "the confirm button must be gone"
    assert await job_count(stack) == created_before


# ---------------------------------------------------------------------------- the job list


async def test_list_pages_forward_and_back_through_the_buttons(stack: Stack) -> None:
    # Twelve SKIPPED jobs: no other test makes any, so the filtered list holds exactly these.
    seeded = {job.job_id for job in stack.sim.state.seed_jobs(12, status="SKIPPED", hold=True)}
    first = await reply_to(stack, STRANGER, "list status:skipped")  # anyone may list
    page1 = jobs_listed(first)
    assert len(page1) == PAGE_SIZE and set(page1) <= seeded
    assert "Filtered by status SKIPPED" in everything(first) and "page 1" in everything(first)
    assert element_in(first.blocks, BlockId.LIST_PAGE_PREVIOUS) is None
    forward = element_in(first.blocks, BlockId.LIST_PAGE_NEXT)
    assert forward is not None and forward["action_id"] == ActionId.LIST_PAGE

    second = await press(
        stack,
        ActionId.LIST_PAGE,
        STRANGER,
        value=forward["value"],
        block_id=BlockId.LIST_PAGE_NEXT,
        message_blocks=first.blocks,
    )
    assert second.replace_original
    page2 = jobs_listed(second)
    assert set(page1) | set(page2) == seeded and not set(page1) & set(page2)
    assert "Filtered by status SKIPPED" in everything(second) and "page 2" in everything(second)
    assert element_in(second.blocks, BlockId.LIST_PAGE_NEXT) is None, "page 2 is the last page"
    back = element_in(second.blocks, BlockId.LIST_PAGE_PREVIOUS)
    assert back is not None

    again = await press(
        stack,
        ActionId.LIST_PAGE,
        STRANGER,
        value=back["value"],
        block_id=BlockId.LIST_PAGE_PREVIOUS,
        message_blocks=second.blocks,
    )
    assert jobs_listed(again) == page1 and "page 1" in everything(again)


async def test_list_by_status_and_action_through_the_bot(stack: Stack) -> None:
    state = stack.sim.state
    wanted = {job.job_id for job in state.seed_jobs(2, status="COMPLETED", hold=True, action="RELEASE")}
    other_action = {job.job_id for job in state.seed_jobs(2, status="COMPLETED", hold=True, action="MOVE")}
    other_status = {job.job_id for job in state.seed_jobs(2, status="FAILED", hold=True, action="RELEASE")}
    listing = await reply_to(stack, OPERATOR, "list status:completed action:release")
    shown = jobs_listed(listing)
    assert wanted <= set(shown)
    assert not set(shown) & (other_action | other_status)
    for job_id in shown:  # jobs other tests made may be listed too, but only if they match
        job = await job_at_cloudflare(stack, job_id)
        assert (job["status"], job["action_type"]) == ("COMPLETED", "RELEASE"), job_id
    assert "Filtered by status COMPLETED and action RELEASE" in everything(listing)


# ---------------------------------------------------------------------------- the create modal


async def open_form(stack: Stack) -> Any:
    """Run `/sweep new` as the operator and return the modal it opened."""
    state = stack.slack.state
    before = {v.id for v in state.views(OPERATOR)}
    await stack.driver.slash("new")
    opened = await wait_until(
        lambda: [v for v in state.views(OPERATOR) if v.id not in before], what="the create modal"
    )
    view = opened[-1]
    assert view.callback_id == CallbackId.CREATE_FORM
    return view


async def test_the_action_radio_shows_the_folder_only_for_a_move(stack: Stack) -> None:
    state = stack.slack.state
    view = await open_form(stack)
    assert BlockId.DESTINATION in input_ids(view.view)
    hash_before = view.hash
    response = await stack.driver.block_action(ActionId.ACTION_SELECT, "RELEASE", view=view.view)
    assert response.status == 200
    redrawn = await wait_until(
        lambda: (v := state.view(view.id)) is not None and v.hash != hash_before and v,
        what="the form redrawn for a release",
    )
    assert redrawn.callback_id == CallbackId.CREATE_FORM
    assert BlockId.DESTINATION not in input_ids(redrawn.view)
    radio = element_in(redrawn.view["blocks"], BlockId.ACTION)
    assert radio is not None and radio["initial_option"]["value"] == "RELEASE"
    # The redraw kept the modal's private_metadata (the channel), so it can still be submitted.
    assert redrawn.view["private_metadata"] == view.view["private_metadata"]

    hash_before = redrawn.hash
    await stack.driver.block_action(ActionId.ACTION_SELECT, "MOVE", view=redrawn.view)
    back = await wait_until(
        lambda: (v := state.view(view.id)) is not None and v.hash != hash_before and v,
        what="the form redrawn for a move",
    )
    assert BlockId.DESTINATION in input_ids(back.view)
    radio = element_in(back.view["blocks"], BlockId.ACTION)
    assert radio is not None and radio["initial_option"]["value"] == "MOVE"


async def test_edit_search_goes_back_from_the_preview_to_the_filled_form(stack: Stack) -> None:
    state = stack.slack.state
    created_before = await job_count(stack)
    view = await open_form(stack)
    typed = {
        BlockId.DESTINATION: "DeletedItems",
        BlockId.SUBJECT: "invoice",
        BlockId.SENDER: "bad@evil.example",
    }
    response = await stack.driver.view_submission(view.view, fill(view.view, typed))
    assert response.json().get("response_action") == "update"
    preview = await wait_until(
        lambda: (v := state.view(view.id)) is not None and v.callback_id == CallbackId.CREATE_PREVIEW and v,
        what="the preview",
    )
    first_preview = everything(_Blocks(preview.view))
    assert "invoice" in first_preview and "bad@evil.example" in first_preview
    edit = element_in(preview.view["blocks"], BlockId.PREVIEW_ACTIONS)
    assert edit is not None and edit["action_id"] == ActionId.EDIT_DRAFT

    await stack.driver.block_action(ActionId.EDIT_DRAFT, view=preview.view)
    form = await wait_until(
        lambda: (v := state.view(view.id)) is not None and v.callback_id == CallbackId.CREATE_FORM and v,
        what="the form again",
    )
    # Prefilled with what was typed: submitting it untouched previews the same search again.
    blocks = {b["block_id"]: b for b in form.view["blocks"] if b.get("type") == "input"}
    assert blocks[BlockId.SUBJECT]["element"]["initial_value"] == "invoice"
    assert blocks[BlockId.SENDER]["element"]["initial_value"] == "bad@evil.example"
    assert blocks[BlockId.DESTINATION]["element"]["initial_option"]["value"] == "DeletedItems"
    response = await stack.driver.view_submission(form.view, fill(form.view, {}))
    assert response.json().get("response_action") == "update"
    again = await wait_until(
        lambda: (v := state.view(view.id)) is not None and v.callback_id == CallbackId.CREATE_PREVIEW and v,
        what="the second preview",
    )
    assert (
        json.loads(again.view["private_metadata"])["draft"]
        == json.loads(preview.view["private_metadata"])["draft"]
    )
    assert await job_count(stack) == created_before, "going back and forth creates nothing"


class _Blocks:
    def __init__(self, view: dict[str, Any]) -> None:
        self.text = ""
        self.blocks = view.get("blocks", [])


# ---------------------------------------------------------------------------- cancel and watch commands


async def test_cancel_command_cancels_a_real_job_and_every_attempt_is_audited(stack: Stack) -> None:
    job_id = await create_elsewhere(stack, hold=True)
    # A stranger is refused, told why, and the refusal is audited; the job keeps running.
    refusal = await reply_to(stack, STRANGER, f"cancel {job_id}")
    assert "operator" in everything(refusal).lower()
    denied = await audited(stack, actor=STRANGER, action="denied", detail=f"cancel {job_id}")
    assert denied["outcome"].startswith("refused: ") and denied["channel_id"] == CHANNEL
    assert (await job_at_cloudflare(stack, job_id))["status"] != "CANCELLED"

    answer = await reply_to(stack, OPERATOR, f"cancel {job_id}")
    assert f"Cancelled job `{job_id}`" in everything(answer)
    # The job made "elsewhere" is a release: what was already released stays released (issue 10 wording).
    assert "already released stay released" in everything(answer)
    assert (await job_at_cloudflare(stack, job_id))["status"] == "CANCELLED"
    row = await audited(stack, actor=OPERATOR, action="cancel", job_id=job_id, outcome="ok")
    assert row["channel_id"] == CHANNEL and row["at"]

    again = await reply_to(stack, OPERATOR, f"cancel {job_id}")
    assert "already finished" in everything(again)
    await audited(stack, actor=OPERATOR, action="cancel", job_id=job_id, outcome="noop: already finished")


async def test_watch_command_is_audited_once_per_outcome(stack: Stack) -> None:
    job_id = await create_elsewhere(stack, hold=True)
    refusal = await reply_to(stack, STRANGER, f"watch {job_id}")
    assert "operator" in everything(refusal).lower()
    await audited(stack, actor=STRANGER, action="denied", detail=f"watch {job_id}")
    assert not [r for r in audit_rows(stack.database) if r["action"] == "watch" and r["job_id"] == job_id]

    first = await reply_to(stack, OPERATOR, f"watch {job_id}")
    assert f"Watching job `{job_id}`" in everything(first)
    await audited(stack, actor=OPERATOR, action="watch", job_id=job_id, outcome="ok", channel_id=CHANNEL)
    second = await reply_to(stack, OPERATOR, f"watch {job_id}")
    assert "already tracked" in everything(second)
    await audited(stack, actor=OPERATOR, action="watch", job_id=job_id, outcome="noop: tracked")
    rows = [r for r in audit_rows(stack.database) if r["action"] == "watch" and r["job_id"] == job_id]
    assert [r["outcome"] for r in rows] == ["ok", "noop: tracked"]
    await stack.sim.release([job_id])


async def test_a_refused_create_from_the_inline_command_is_audited(stack: Stack) -> None:
    refusal = await reply_to(stack, STRANGER, "move subject:invoice to:junk")
    assert "operator" in everything(refusal).lower()
    row = await audited(stack, actor=STRANGER, action="denied", detail="create")
    assert row["job_id"] is None and row["outcome"].startswith("refused: ")


# ---------------------------------------------------------------------------- health and errors


async def test_healthz_reports_the_follow_up_counters_and_they_move(stack: Stack) -> None:
    before = await healthz(stack)
    assert before["ok"] is True
    counters = before["follow_ups"]
    assert set(counters) == {"waiting", "running", "done", "failed", "max_wait_seconds"}
    for name in ("waiting", "running", "done", "failed"):
        assert isinstance(counters[name], int) and counters[name] >= 0, name
    assert isinstance(counters["max_wait_seconds"], int | float) and counters["max_wait_seconds"] >= 0
    # README: a follow-up waits at most 1 s for Slack to be quiet before it starts.
    assert counters["max_wait_seconds"] <= 1.5

    await reply_to(stack, OPERATOR, "list")
    after = await wait_until(
        lambda: _when_idle(stack, done_above=counters["done"]), what="the list follow-up counted as done"
    )
    assert after["follow_ups"]["failed"] == counters["failed"]

    # A follow-up that fails is counted as failed (and the user is told, see the next test).
    stack.slack.state.fail("views.open", "internal_error")
    await stack.driver.slash("new")
    failed = await wait_until(
        lambda: _when_idle(stack, failed_above=counters["failed"]), what="the failed follow-up counted"
    )
    assert failed["follow_ups"]["done"] >= after["follow_ups"]["done"]


async def _when_idle(stack: Stack, *, done_above: int = -1, failed_above: int = -1) -> dict[str, Any] | None:
    body = await healthz(stack)
    counters = body["follow_ups"]
    idle = counters["waiting"] == 0 and counters["running"] == 0
    moved = counters["done"] > done_above and counters["failed"] > failed_above
    return body if idle and moved else None


async def test_an_unexpected_error_shows_a_reference_that_is_in_the_bot_log(stack: Stack) -> None:
    # The local Slack refuses views.open with an error Sweep has no answer for: the follow-up fails.
    stack.slack.state.fail("views.open", "internal_error")
    reply = await reply_to(stack, OPERATOR, "new")
    shown = everything(reply)
    assert "Something went wrong on Sweep's side" in shown
    match = re.search(r"Reference `([0-9a-f]{8})`", shown)
    assert match, shown
    reference = match.group(1)
    assert f"(reference {reference})" in reply.text
    log_line = await wait_until(
        lambda: [line for line in stack.bot.logs().splitlines() if f"reference {reference}" in line],
        what="the reference in the bot's log",
    )
    assert "unexpected error" in log_line[0]
    assert "internal_error" in stack.bot.logs().split(f"reference {reference}", 1)[1][:4000]


# ---------------------------------------------------------------------------- what goes wrong, end to end


async def test_a_cancel_cloudflare_refuses_reaches_the_user_and_the_audit_log(stack: Stack) -> None:
    job_id = await create_elsewhere(stack, hold=True)
    # Cloudflare's account budget is spent: the cancel is refused with 10429 and when to retry.
    await stack.sim.set_faults(
        {"rules": [{"status": 429, "retry_after": 600, "method": "POST", "path": "/cancel"}]}
    )
    try:
        answer = await reply_to(stack, OPERATOR, f"cancel {job_id}")
    finally:
        await stack.sim.set_faults({})
        lift_cloudflare_pause(stack.database)  # the 600 s every replica would now wait
    shown = everything(answer)
    assert "10429" in shown and "retry in 600 s" in shown, shown
    row = await audited(stack, actor=OPERATOR, action="cancel", job_id=job_id)
    assert row["outcome"].startswith("error: ") and "10429" in row["outcome"]
    assert (await job_at_cloudflare(stack, job_id))["status"] != "CANCELLED"

    unknown = "0b8c2a4e-6f1d-4c3b-9a7e-2d5f8e1c3b90"
    answer = await reply_to(stack, OPERATOR, f"cancel {unknown}")
    assert f"No job `{unknown}` exists" in everything(answer)
    await audited(stack, actor=OPERATOR, action="cancel", job_id=unknown, outcome="error: not found")
    await stack.sim.release([job_id])


async def test_a_create_cloudflare_refuses_is_reported_and_audited(stack: Stack) -> None:
    created_before = await job_count(stack)
    preview = await reply_to(stack, OPERATOR, "move subject:invoice to:junk")
    await stack.sim.set_faults({"rules": [{"status": 429, "retry_after": 600, "method": "POST"}]})
    try:
        state = stack.slack.state
        before = len(state.responses(OPERATOR))
        await stack.driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=preview.blocks)
        refused = await wait_until(
            lambda: [r for r in state.responses(OPERATOR)[before:] if "10429" in everything(r)],
            what="the create's Cloudflare error",
        )
    finally:
        await stack.sim.set_faults({})
        lift_cloudflare_pause(stack.database)  # the 600 s every replica would now wait
    assert refused[-1].replace_original and "retry in 600 s" in everything(refused[-1])
    row = await audited(stack, actor=OPERATOR, action="create", channel_id=CHANNEL)
    assert row["outcome"].startswith("error: ") and "10429" in row["outcome"]
    assert await job_count(stack) == created_before


async def test_status_and_watch_of_an_unknown_job_say_so(stack: Stack) -> None:
    unknown = "0b8c2a4e-6f1d-4c3b-9a7e-2d5f8e1c3b91"
    for command in ("status", "watch"):
        answer = await reply_to(stack, OPERATOR, f"{command} {unknown}")
        assert f"No job `{unknown}` exists in this account." in everything(answer), command
    assert not [r for r in audit_rows(stack.database) if r["job_id"] == unknown and r["outcome"] == "ok"]


@pytest.mark.parametrize("action_id", [ActionId.CANCEL_JOB, ActionId.LIST_PAGE, ActionId.CONFIRM_CREATE])
async def test_a_garbled_button_value_is_answered_and_nothing_is_done(stack: Stack, action_id: str) -> None:
    created_before = await job_count(stack)
    audit_before = len(audit_rows(stack.database))
    answer = await press(stack, action_id, OPERATOR, value='{"job_id": "not-a-uuid"')
    assert "That button's data could not be read" in everything(answer)
    assert await job_count(stack) == created_before
    assert len(audit_rows(stack.database)) == audit_before
