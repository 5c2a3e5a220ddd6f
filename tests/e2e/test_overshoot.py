"""Issue 12, auto-cancel and the active-jobs cap, over signed HTTP against the bot process.

- a job previewed at N that grows past N + margin while it discovers is cancelled automatically:
  the card says so, one thread reply says so, the audit log has it (actor `sweep`);
- a job that grows within the margin is not cancelled;
- with `SWEEP_MAX_ACTIVE_JOBS` jobs created by Sweep still active, one more Confirm is refused,
  naming the active jobs, and creates nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bot.ids import ActionId
from tests.e2e.conftest import CHANNEL, OPERATOR, Stack, open_stack, wait_until
from tests.e2e.test_slack_flows import (
    buttons,
    card_status,
    everything,
    inline_create,
    last_response,
    sim_jobs,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

MAX_ACTIVE = 2


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    workdir = tmp_path_factory.mktemp("overshoot")
    extra = {"SWEEP_MAX_ACTIVE_JOBS": str(MAX_ACTIVE), "SWEEP_APPROVAL_MARGIN": "10%"}
    # Jobs discover for 2 s (a quarter of 8 s): time to add mail while they do.
    async with open_stack(workdir, job_seconds=8.0, extra_env=extra) as opened:
        yield opened


def query(database: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def agreed_max(stack: Stack, job_id: str) -> int:
    rows = query(stack.database, "SELECT agreed_max FROM tracked_jobs WHERE job_id = ?", job_id)
    assert rows and rows[0][0] is not None, f"job {job_id} has no agreed maximum"
    intents = query(stack.database, "SELECT agreed_max FROM create_intents WHERE job_id = ?", job_id)
    assert intents == [(rows[0][0],)], "the intent and the job carry the same agreed maximum"
    return int(rows[0][0])


async def sim_job(stack: Stack, job_id: str) -> dict[str, Any]:
    return next(j for j in await sim_jobs(stack) if j["job_id"] == job_id)


def auto_cancel_replies(stack: Stack, card_ts: str) -> list[Any]:
    return [
        r
        for r in stack.slack.state.thread(CHANNEL, card_ts)[1:]
        if "cancelled automatically" in everything(r)
    ]


async def test_a_job_that_grows_past_its_agreed_maximum_is_cancelled_and_told_once(stack: Stack) -> None:
    created = await inline_create(stack, "move subject:newsletter since:30d to:junk")
    job_id, card = created["job"]["job_id"], created["card"]
    maximum = agreed_max(stack, job_id)
    previewed = query(
        stack.database,
        "SELECT p.matched FROM previews p JOIN create_intents i ON i.preview_id = p.id WHERE i.job_id = ?",
        job_id,
    )[0][0]
    assert maximum == previewed + max(-(-previewed // 10), 5)
    # While it discovers, more matching mail arrives than the margin allows.
    assert await stack.sim.add_matching_mail(job_id, maximum) == maximum
    cancelled = await wait_until(
        lambda: _status_is(stack, job_id, "CANCELLED"), timeout=20, what="Sweep to cancel the job"
    )
    assert cancelled["total_messages_discovered"] > maximum
    await wait_until(lambda: auto_cancel_replies(stack, card.ts), what="the thread reply")
    state = stack.slack.state
    await wait_until(
        lambda: "cancelled automatically" in everything(state.message(CHANNEL, card.ts)),
        what="the card to say it was cancelled automatically",
    )
    final = state.message(CHANNEL, card.ts)
    assert final is not None
    shown = everything(final)
    assert f"agreed at most {maximum:,}" in shown and "moved stay moved" in shown
    assert card_status(final) == "cancelled" and ActionId.CANCEL_JOB not in buttons(final.blocks)
    overshoot = query(stack.database, "SELECT overshoot FROM tracked_jobs WHERE job_id = ?", job_id)[0][0]
    assert overshoot > maximum
    audit = query(
        stack.database, "SELECT actor, action, outcome, detail FROM audit_log WHERE job_id = ?", job_id
    )
    assert ("sweep", "auto_cancel", "ok", f"discovered {overshoot}, agreed at most {maximum}") in audit
    # Told once, also after the bot restarts on the same database.
    stack.bot.stop()
    await stack.bot.start()
    await wait_until(lambda: _queue_idle(stack), what="the outbox to drain")
    assert len(auto_cancel_replies(stack, card.ts)) == 1
    assert sum(1 for row in audit if row[1] == "auto_cancel") == 1


async def test_a_job_that_grows_within_the_margin_is_not_cancelled(stack: Stack) -> None:
    created = await inline_create(stack, "move subject:Meeting since:30d to:junk")
    job_id, card = created["job"]["job_id"], created["card"]
    maximum = agreed_max(stack, job_id)
    assert await stack.sim.add_matching_mail(job_id, 2) == 2  # the margin is at least 5
    done = await wait_until(
        lambda: _status_is(stack, job_id, "COMPLETED"), timeout=30, what="the job to complete"
    )
    assert done["total_messages_discovered"] <= maximum
    await wait_until(
        lambda: card_status(stack.slack.state.message(CHANNEL, card.ts)) == "completed",
        what="the card to show Completed",
    )
    assert not auto_cancel_replies(stack, card.ts)
    assert not query(
        stack.database, "SELECT 1 FROM audit_log WHERE action = 'auto_cancel' AND job_id = ?", job_id
    )


async def test_one_more_job_than_the_active_maximum_is_refused_naming_the_active_ones(stack: Stack) -> None:
    running = []
    for subject in ("Lunch", "pull request"):
        created = await inline_create(stack, f'move subject:"{subject}" since:30d to:junk')
        running.append(created["job"]["job_id"])
        await stack.sim.hold([running[-1]])  # keep it active however slow this machine is
    try:
        state = stack.slack.state
        before_jobs = len(await sim_jobs(stack))
        before = len(state.responses(OPERATOR))
        await stack.driver.slash('move subject:"Quarterly report" since:30d to:junk')
        preview = await last_response(stack, OPERATOR, before)
        assert ActionId.CONFIRM_CREATE in buttons(preview.blocks), everything(preview)
        before = len(state.responses(OPERATOR))
        await stack.driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=preview.blocks)
        refusal = await wait_until(
            lambda: [
                r for r in state.responses(OPERATOR)[before:] if "SWEEP_MAX_ACTIVE_JOBS" in everything(r)
            ],
            what="the refusal",
        )
        text = everything(refusal[-1])
        assert f"{MAX_ACTIVE} jobs created by Sweep are still active" in text
        assert all(job_id in text for job_id in running)
        assert len(await sim_jobs(stack)) == before_jobs, "nothing was created"
        refused = query(
            stack.database,
            "SELECT outcome FROM audit_log WHERE action = 'denied' AND detail = 'create' "
            "AND outcome LIKE '%SWEEP_MAX_ACTIVE_JOBS%'",
        )
        assert len(refused) == 1
    finally:
        await stack.sim.release(running)


async def _status_is(stack: Stack, job_id: str, status: str) -> dict[str, Any] | None:
    job = await sim_job(stack, job_id)
    return job if job["status"] == status else None


def _queue_idle(stack: Stack) -> bool:
    rows = query(stack.database, "SELECT COUNT(*) FROM outbox WHERE state IN ('pending', 'attempting')")
    return rows[0][0] == 0
