"""Two-person approval (issue 12), end to end: signed requests to the bot, the simulator, the local Slack.

One bot serves the module (its requests expire in an hour): a purge always needs a second person.
Its users: the requester (an operator and an approver), two other approvers (a listed one and a
member of an approver group), an operator who is not an approver, and a stranger.

- Confirm posts one approval request (a double click and a replay too) and creates nothing; a
  Confirm with no justification changes nothing; the modal asks for it inline.
- Another approver's Approve creates one job: the request message links to its card, the card is
  posted, the Cloudflare comment names requester, approver and channel, the job carries the agreed
  maximum; a second click creates nothing.
- Self-approval, a non-approver, approve after reject, a tampered button value or reject-modal
  metadata: refused, audited, nothing created. Two approvers clicking at once on two requests make
  one job each.
- A crash between the approve and the create leaves one job (the create reached Cloudflare) or one
  notice (it did not), and the request message says which.

A request nobody decides expires and is shown expired once (a bot of its own, with a short TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio

from bot.devslack.driver import SlackDriver
from bot.devslack.modal import fill
from bot.devslack.state import Message
from bot.ids import ActionId, BlockId, CallbackId, EventType
from tests.e2e.conftest import (
    CHANNEL,
    GROUP_MEMBER,
    OPERATOR,
    OTHER_CHANNEL,
    SIGNING_SECRET,
    STRANGER,
    Stack,
    lift_cloudflare_pause,
    open_stack,
    wait_until,
)
from tests.e2e.test_slack_flows import buttons, sim_jobs

pytestmark = pytest.mark.asyncio(loop_scope="module")

REQUESTER = OPERATOR  # an operator and an approver: may ask, never approve their own
APPROVER = "U0CAROL"  # a listed approver
GROUPIE = GROUP_MEMBER  # an approver through the user group S0SOC
OPS_ONLY = "U0OPSONLY"  # an operator who is not an approver
PURGE = "subject:invoice since:30d to:purge"

APPROVAL_ENV = {
    "SWEEP_OPERATORS": f"{OPERATOR},{OPS_ONLY},S0SOC",
    "SWEEP_APPROVERS": f"{OPERATOR},{APPROVER},S0SOC",
    "SWEEP_APPROVAL_ALWAYS": "purge",
    "SWEEP_APPROVAL_ABOVE": "off",
    "SWEEP_APPROVAL_TTL": "1h",
    "SWEEP_CLOUDFLARE_TIMEOUT": "2",  # an unknown create is proven absent within the test's patience
    "SWEEP_WRITES_PER_USER": "100",  # the approvers click a lot within a minute here
}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with open_stack(tmp_path_factory.mktemp("approval"), extra_env=APPROVAL_ENV) as opened:
        yield opened


# ---------------------------------------------------------------- helpers


def query(database: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the bot's database (read-only, while the bot may be writing it)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def requests_in(stack: Stack) -> list[Message]:
    """Return the approval request messages in the channel, oldest first."""
    return [
        m
        for m in stack.slack.state.top_level(CHANNEL)
        if (m.metadata or {}).get("event_type") == EventType.APPROVAL.value
    ]


def approval_id(message: Message) -> str:
    return str((message.metadata or {})["event_payload"]["approval_id"])


def shown(message: Message | None) -> str:
    """Return a message's fallback text and blocks as one searchable string."""
    if message is None:
        return ""
    return message.text + "\n" + json.dumps(message.blocks, ensure_ascii=False)


def said(stack: Stack, user: str, since: int = 0) -> list[str]:
    return [r.text for r in stack.slack.state.responses(user)[since:]]


async def jobs_with(stack: Stack, marker: str) -> list[dict[str, Any]]:
    return [j for j in await sim_jobs(stack) if marker in (j.get("comment") or "")]


async def settle(stack: Stack) -> None:
    """Wait until the bot has no follow-up running or waiting."""

    async def idle() -> bool:
        async with httpx.AsyncClient() as http:
            body = (await http.get(stack.bot.events_url.replace("/slack/events", "/healthz"))).json()
        return body["follow_ups"]["waiting"] == 0 and body["follow_ups"]["running"] == 0

    await wait_until(idle, what="the bot's follow-ups to finish")


async def preview(stack: Stack, text: str, *, driver: SlackDriver | None = None) -> Any:
    """Run an inline command and return the preview (with its Confirm)."""
    driver = driver or stack.driver
    state = stack.slack.state
    before = len(state.responses(REQUESTER))
    assert (await driver.slash(text, user_id=REQUESTER)).status == 200

    def found() -> Any:
        return next(
            (r for r in state.responses(REQUESTER)[before:] if ActionId.CONFIRM_CREATE in buttons(r.blocks)),
            None,
        )

    return await wait_until(found, what="the preview")


async def request(stack: Stack, marker: str, *, driver: SlackDriver | None = None) -> Message:
    """Preview a purge commented `marker`, Confirm it, and return the approval request posted."""
    driver = driver or stack.driver
    shown_preview = await preview(stack, f'move {PURGE} comment:"{marker}"', driver=driver)
    before = len(requests_in(stack))
    await driver.block_action(ActionId.CONFIRM_CREATE, user_id=REQUESTER, message_blocks=shown_preview.blocks)
    posted = await wait_until(lambda: requests_in(stack)[before:], what="the approval request")
    assert len(posted) == 1
    return copy.deepcopy(posted[0])  # as first posted: the fake's own copy changes with every edit


async def click(
    stack: Stack,
    action: ActionId,
    message: Message,
    user: str,
    *,
    driver: SlackDriver | None = None,
    stale: bool = False,
    **extra: Any,
) -> None:
    """Press a button of the request (`stale`: as first posted, as a client not refreshed yet shows it)."""
    driver = driver or stack.driver
    where: dict[str, Any] = {"message_blocks": message.blocks} if stale else {"message_ts": message.ts}
    response = await driver.block_action(action, user_id=user, channel_id=CHANNEL, **where, **extra)
    assert response.status == 200


def current(stack: Stack, message: Message) -> Message:
    found = stack.slack.state.message(CHANNEL, message.ts)
    assert found is not None
    return found


def audit(stack: Stack, action: str) -> list[tuple[Any, ...]]:
    return query(
        stack.database, "SELECT actor, outcome, detail FROM audit_log WHERE action = ? ORDER BY id", (action,)
    )


# ---------------------------------------------------------------- requesting


async def test_confirm_posts_one_request_and_creates_nothing(stack: Stack) -> None:
    marker = "appr-request"
    shown_preview = await preview(stack, f'move {PURGE} comment:"{marker} <!channel>"')
    driver = stack.driver
    before_said = len(said(stack, REQUESTER))
    # A double click of Confirm, then the last click replayed byte for byte.
    for _ in range(2):
        await driver.block_action(
            ActionId.CONFIRM_CREATE, user_id=REQUESTER, message_blocks=shown_preview.blocks
        )
    assert driver.last_payload is not None
    assert (
        await driver.post_signed(urlencode({"payload": json.dumps(driver.last_payload)}).encode())
    ).status == 200
    [message] = await wait_until(lambda: requests_in(stack), what="the approval request")
    await settle(stack)
    assert len(requests_in(stack)) == 1
    assert await jobs_with(stack, marker) == []
    text = shown(message)
    assert "Approval needed" in text and "Permanently delete" in text and f"<@{REQUESTER}>" in text
    assert marker in text and "&lt;!channel&gt;" in text and "<!channel>" not in text
    assert "permanent purge" in text and "Expires" in text and "Received" in text
    assert set(buttons(message.blocks)) == {ActionId.APPROVE_JOB, ActionId.REJECT_JOB}
    value = buttons(message.blocks)[ActionId.APPROVE_JOB]["value"]
    assert json.loads(value) == {"approval_id": approval_id(message)}
    answers = said(stack, REQUESTER, before_said)
    assert sum("Waiting for approval" in t for t in answers) == 1, answers
    assert any("already posted" in t for t in answers), answers
    [(state, requester, channel, agreed, justification)] = query(
        stack.database,
        "SELECT state, requester, channel_id, agreed_max, justification FROM approvals WHERE id = ?",
        (approval_id(message),),
    )
    assert (state, requester, channel) == ("pending", REQUESTER, CHANNEL) and agreed >= 5
    assert justification == f"{marker} <!channel>"
    assert [row[0] for row in audit(stack, "approval_requested")] == [REQUESTER]
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(stack.bot.events_url.replace("/slack/events", "/metrics"))).text
    assert "sweep_approvals_pending 1.0" in metrics


async def test_a_confirm_without_justification_changes_nothing(stack: Stack) -> None:
    shown_preview = await preview(stack, f"move {PURGE}")
    before_said, before = len(said(stack, REQUESTER)), len(requests_in(stack))
    await stack.driver.block_action(
        ActionId.CONFIRM_CREATE, user_id=REQUESTER, message_blocks=shown_preview.blocks
    )
    await wait_until(lambda: said(stack, REQUESTER, before_said), what="the answer")
    await settle(stack)
    [answer] = stack.slack.state.responses(REQUESTER)[before_said:]
    assert "needs a justification" in answer.text and answer.body.get("replace_original") is False
    assert len(requests_in(stack)) == before
    # Nothing is lost: the preview is still usable (it was not consumed).
    preview_id = json.loads(buttons(shown_preview.blocks)[ActionId.CONFIRM_CREATE]["value"])["preview_id"]
    assert query(stack.database, "SELECT state FROM previews WHERE id = ?", (preview_id,)) == [("previewed",)]


async def test_the_modal_asks_for_the_justification_inline(stack: Stack) -> None:
    state = stack.slack.state
    opened = len(state.views(REQUESTER, include_closed=True))
    await stack.driver.slash("new", user_id=REQUESTER)
    view = (await wait_until(lambda: state.views(REQUESTER, include_closed=True)[opened:], what="the modal"))[
        -1
    ]
    values = fill(view.view, {BlockId.DESTINATION: "RecoverableItemsPurges", BlockId.SUBJECT: "invoice"})
    await stack.driver.view_submission(view.view, values, user_id=REQUESTER)
    shown_view = await wait_until(
        lambda: (v := state.view(view.id)) is not None and v.callback_id == CallbackId.CREATE_PREVIEW and v,
        what="the preview view",
    )
    assert BlockId.JUSTIFICATION in json.dumps(shown_view.view["blocks"])
    before = len(requests_in(stack))
    empty = fill(shown_view.view, {BlockId.CONFIRM_WORD: "PURGE"})
    response = await stack.driver.view_submission(shown_view.view, empty, user_id=REQUESTER)
    assert response.json() == {
        "response_action": "errors",
        "errors": {BlockId.JUSTIFICATION: response.json()["errors"][BlockId.JUSTIFICATION]},
    }
    typed = fill(shown_view.view, {BlockId.CONFIRM_WORD: "PURGE", BlockId.JUSTIFICATION: "appr-modal INC-3"})
    await stack.driver.view_submission(shown_view.view, typed, user_id=REQUESTER)
    [message] = await wait_until(lambda: requests_in(stack)[before:], what="the approval request")
    assert "appr-modal INC-3" in shown(message)
    await wait_until(
        lambda: "Waiting for approval" in json.dumps((state.view(view.id) or view).view["blocks"]),
        what="the modal to say it waits for approval",
    )
    assert await jobs_with(stack, "appr-modal") == []


# ---------------------------------------------------------------- approving


async def test_another_approver_makes_one_job_and_the_request_links_to_its_card(stack: Stack) -> None:
    marker = "appr-approve"
    message = await request(stack, marker)
    cards_before = {m.ts for m in stack.slack.state.top_level(CHANNEL)}
    await click(stack, ActionId.APPROVE_JOB, message, GROUPIE)
    [job] = await wait_until(lambda: jobs_with(stack, marker), what="the approved job")
    comment = job["comment"]
    assert f"requested by @{REQUESTER} in #{CHANNEL}, approved by @{GROUPIE}" in comment and marker in comment
    assert job["action_params"]["destination"] == "RecoverableItemsPurges"
    card = await wait_until(
        lambda: next(
            (
                m
                for m in stack.slack.state.top_level(CHANNEL)
                if m.ts not in cards_before and (m.metadata or {}).get("event_type") == EventType.CARD.value
            ),
            None,
        ),
        what="the job card",
    )
    assert card.metadata is not None and card.metadata["event_payload"]["job_id"] == job["job_id"]
    link = f"https://slack.com/archives/{CHANNEL}/p{card.ts.replace('.', '')}|job card>"
    await wait_until(lambda: link in shown(current(stack, message)), what="the request to link to the card")
    updated = current(stack, message)
    assert f"Approved by <@{GROUPIE}>" in shown(updated) and not buttons(updated.blocks)
    assert updated.metadata == message.metadata  # the edit keeps what identifies it
    [(agreed,)] = query(
        stack.database, "SELECT agreed_max FROM approvals WHERE id = ?", (approval_id(message),)
    )
    assert query(
        stack.database, "SELECT agreed_max FROM tracked_jobs WHERE job_id = ?", (job["job_id"],)
    ) == [(agreed,)]
    assert any(f"Created job `{job['job_id']}`" in t for t in said(stack, GROUPIE))
    # A second click, and one by another approver: nothing more is created.
    await click(stack, ActionId.APPROVE_JOB, message, GROUPIE, stale=True)
    await click(stack, ActionId.APPROVE_JOB, message, APPROVER, stale=True)
    await settle(stack)
    assert len(await jobs_with(stack, marker)) == 1
    assert any("already approved" in t for t in said(stack, APPROVER)), [
        said(stack, u) for u in (APPROVER, GROUPIE)
    ]
    assert (GROUPIE, "ok") in [(a, o) for a, o, _ in audit(stack, "approve")]


async def test_self_approval_and_non_approvers_are_refused_and_audited(stack: Stack) -> None:
    marker = "appr-refused"
    message = await request(stack, marker)
    denied_before = len(audit(stack, "denied"))
    for user in (REQUESTER, OPS_ONLY, STRANGER):
        await click(stack, ActionId.APPROVE_JOB, message, user)
    await settle(stack)
    assert await jobs_with(stack, marker) == []
    assert any("someone else must approve it" in t for t in said(stack, REQUESTER))
    for user in (OPS_ONLY, STRANGER):
        assert any("only Sweep approvers may approve jobs" in t for t in said(stack, user)), said(stack, user)
    denied = audit(stack, "denied")[denied_before:]
    assert {actor for actor, _, _ in denied} == {REQUESTER, OPS_ONLY, STRANGER}
    assert all(outcome.startswith("refused: ") for _, outcome, _ in denied)
    assert set(buttons(current(stack, message).blocks)) == {ActionId.APPROVE_JOB, ActionId.REJECT_JOB}
    # Still pending: a real approver may still approve it.
    assert query(stack.database, "SELECT state FROM approvals WHERE id = ?", (approval_id(message),)) == [
        ("pending",)
    ]


async def test_approve_after_reject_is_refused(stack: Stack) -> None:
    marker = "appr-rejected"
    message = await request(stack, marker)
    state = stack.slack.state
    opened = len(state.views(APPROVER, include_closed=True))
    await click(stack, ActionId.REJECT_JOB, message, APPROVER)
    modal = (await wait_until(lambda: state.views(APPROVER, include_closed=True)[opened:], what="the modal"))[
        -1
    ]
    assert modal.callback_id == CallbackId.REJECT_APPROVAL
    reason = fill(modal.view, {BlockId.REJECT_REASON: "not a phish <@U0ALL>"})
    await stack.driver.view_submission(modal.view, reason, user_id=APPROVER)
    await wait_until(
        lambda: "Rejected by" in shown(current(stack, message)), what="the request to say rejected"
    )
    rejected = current(stack, message)
    assert "not a phish &lt;@U0ALL&gt;" in shown(rejected) and not buttons(rejected.blocks)
    await wait_until(
        lambda: "Rejected. Nothing was created" in json.dumps((state.view(modal.id) or modal).view["blocks"]),
        what="the modal's answer",
    )
    await click(stack, ActionId.APPROVE_JOB, message, GROUPIE, stale=True)
    await settle(stack)
    assert await jobs_with(stack, marker) == []
    assert any("was rejected by" in t for t in said(stack, GROUPIE))
    assert (APPROVER, "ok") in [(a, o) for a, o, _ in audit(stack, "reject")]


async def test_two_approvers_clicking_at_once_on_two_requests_make_one_job_each(stack: Stack) -> None:
    markers = ("appr-race-1", "appr-race-2")
    messages = [await request(stack, marker) for marker in markers]
    before = {user: len(said(stack, user)) for user in (GROUPIE, APPROVER)}
    await asyncio.gather(
        *(
            click(stack, ActionId.APPROVE_JOB, message, user, stale=True)
            for user in (GROUPIE, APPROVER, GROUPIE, APPROVER)
            for message in messages
        )
    )
    for marker in markers:
        await wait_until(lambda marker=marker: jobs_with(stack, marker), what=f"the job of {marker}")
    await settle(stack)
    for marker, message in zip(markers, messages, strict=True):
        assert len(await jobs_with(stack, marker)) == 1
        [(tag,)] = query(stack.database, "SELECT tag FROM approvals WHERE id = ?", (approval_id(message),))
        assert query(stack.database, "SELECT COUNT(*) FROM create_intents WHERE tag = ?", (tag,)) == [(1,)]
    answers = said(stack, GROUPIE, before[GROUPIE]) + said(stack, APPROVER, before[APPROVER])
    assert sum("Created job" in t for t in answers) == 2, answers
    assert sum("already approved" in t for t in answers) == 6, answers


async def test_a_tampered_button_value_or_modal_metadata_is_refused(stack: Stack) -> None:
    marker = "appr-tampered"
    message = await request(stack, marker)
    state = stack.slack.state
    before = len(said(stack, GROUPIE))
    unknown = json.dumps({"approval_id": "A" * 22})
    await click(stack, ActionId.APPROVE_JOB, message, GROUPIE, value=unknown)
    await click(stack, ActionId.APPROVE_JOB, message, GROUPIE, value='{"approval_id": "../../etc"}')
    await click(stack, ActionId.APPROVE_JOB, message, GROUPIE, value=json.dumps({"preview_id": "B" * 22}))
    # The right id, clicked (so Slack says) in another channel.
    await stack.driver.block_action(
        ActionId.APPROVE_JOB, user_id=GROUPIE, channel_id="C0SECOND", message_blocks=message.blocks
    )
    await stack.driver.block_action(
        ActionId.APPROVE_JOB, user_id=GROUPIE, channel_id=OTHER_CHANNEL, message_blocks=message.blocks
    )
    # The reject modal opened for this request, its metadata edited to another (unknown) request.
    opened = len(state.views(GROUPIE, include_closed=True))
    await click(stack, ActionId.REJECT_JOB, message, GROUPIE)
    opened_views = await wait_until(
        lambda: state.views(GROUPIE, include_closed=True)[opened:], what="the modal"
    )
    modal = opened_views[-1]
    original = copy.deepcopy(modal.view)  # the fake's own copy changes with every update
    forged = dict(original, private_metadata=json.dumps({"approval_id": "C" * 22}))
    state.replace_view(modal.id, forged)
    await stack.driver.view_submission(forged, fill(original, {}), user_id=GROUPIE)
    await wait_until(
        lambda: "not known to Sweep" in json.dumps((state.view(modal.id) or modal).view["blocks"]),
        what="the forged modal refused",
    )
    garbled = dict(original, private_metadata="{not json")
    state.replace_view(modal.id, garbled)
    answer = await stack.driver.view_submission(garbled, fill(original, {}), user_id=GROUPIE)
    assert answer.json().get("response_action") == "update", answer.json()
    await settle(stack)
    texts = said(stack, GROUPIE, before)
    assert sum("not known to Sweep" in t for t in texts) == 1, texts
    assert sum("could not be read" in t for t in texts) == 2, texts
    assert any("made in another channel" in t for t in texts), texts
    assert any("not enabled in this channel" in t for t in texts), texts
    assert "garbled" in json.dumps((state.view(modal.id) or modal).view["blocks"])
    assert await jobs_with(stack, marker) == []
    assert query(stack.database, "SELECT state FROM approvals WHERE id = ?", (approval_id(message),)) == [
        ("pending",)
    ]


# ---------------------------------------------------------------- a crash between approve and create


@contextlib.asynccontextmanager
async def life(stack: Stack) -> AsyncIterator[SlackDriver]:
    """A driver with a fresh connection pool for this life of the bot."""
    async with SlackDriver(
        stack.bot.events_url, SIGNING_SECRET, stack.slack.state, user_id=OPERATOR, channel_id=CHANNEL
    ) as driver:
        yield driver


@pytest.mark.parametrize("reached", [False, True], ids=["create-refused", "create-in-flight"])
async def test_a_crash_between_approve_and_create_leaves_one_job_or_one_notice(
    stack: Stack, reached: bool
) -> None:
    marker = f"appr-crash-{'in' if reached else 'out'}"
    async with life(stack) as driver:
        message = await request(stack, marker, driver=driver)
        if reached:
            # Cloudflare makes the job and sits on the answer: the bot dies not knowing the job id.
            await stack.sim.set_faults({"rules": [{"method": "POST", "path": "/bulk", "latency": 3.0}]})
        else:
            # Cloudflare refuses with 429 / Retry-After: the bot waits, its intent recorded, and dies there.
            spec = {
                "rules": [{"status": 429, "retry_after": 30, "method": "POST", "path": "/bulk", "count": 1}]
            }
            [refusal] = (await stack.sim.set_faults(spec)).rules
        await click(stack, ActionId.APPROVE_JOB, message, GROUPIE, driver=driver)

        async def at_kill_point() -> bool:
            if reached:
                return bool(await jobs_with(stack, marker))
            return refusal.count == 0  # the POST was answered 429: its intent was recorded before it

        await wait_until(at_kill_point, what="the create to reach its kill point")
        stack.bot.kill()
    assert query(
        stack.database,
        "SELECT i.state FROM approvals a JOIN create_intents i ON i.tag = a.tag WHERE a.id = ?",
        (approval_id(message),),
    ) == [("open",)]
    await stack.sim.clear_faults()
    # The 429's Retry-After paused every replica through the database; as if it had passed by now.
    lift_cloudflare_pause(stack.database)
    await stack.bot.start()
    async with life(stack) as driver:
        notice_marker = "no job was made"
        if reached:
            [job] = await wait_until(lambda: jobs_with(stack, marker), what="the job")
            await wait_until(
                lambda: "|job card>" in shown(current(stack, message)), what="the link to the card"
            )
            cards = [
                m
                for m in stack.slack.state.top_level(CHANNEL)
                if (m.metadata or {}).get("event_payload", {}).get("job_id") == job["job_id"]
                and (m.metadata or {}).get("event_type") == EventType.CARD.value
            ]
            assert len(cards) == 1
        else:
            await wait_until(
                lambda: notice_marker in shown(current(stack, message)), what="the request to say so"
            )

            def notices() -> list[Message]:
                return [
                    m
                    for m in stack.slack.state.top_level(CHANNEL)
                    if (m.metadata or {}).get("event_type") == EventType.NOTICE.value and marker in shown(m)
                ]

            await wait_until(notices, what="the notice that no job was made")
        await settle(stack)
        assert len(await jobs_with(stack, marker)) == (1 if reached else 0)
        if not reached:
            assert len(notices()) == 1
        [(tag,)] = query(stack.database, "SELECT tag FROM approvals WHERE id = ?", (approval_id(message),))
        [(intent_state,)] = query(stack.database, "SELECT state FROM create_intents WHERE tag = ?", (tag,))
        assert intent_state == ("done" if reached else "failed")
        # Approving again creates nothing: the request was approved, once.
        await click(stack, ActionId.APPROVE_JOB, message, APPROVER, driver=driver, stale=True)
        await settle(stack)
        assert len(await jobs_with(stack, marker)) == (1 if reached else 0)


# ---------------------------------------------------------------- expiry


async def test_an_undecided_request_expires_once_and_cannot_be_approved(tmp_path: Path) -> None:
    env = {**APPROVAL_ENV, "SWEEP_APPROVAL_TTL": "3s"}
    async with open_stack(tmp_path, extra_env=env) as own:
        message = await request(own, "appr-expired")
        await wait_until(
            lambda: "Expired" in shown(current(own, message)), timeout=20, what="the expiry shown"
        )
        expired = current(own, message)
        assert not buttons(expired.blocks) and "Nothing was created" in shown(expired)
        await click(own, ActionId.APPROVE_JOB, message, GROUPIE, stale=True)
        await settle(own)
        assert any("expired before anyone approved it" in t for t in said(own, GROUPIE))
        assert await jobs_with(own, "appr-expired") == []
        # Shown expired once: one edit, also after a click that found it expired.
        assert current(own, message).edits == 1
        assert [row[0] for row in audit(own, "approval_expired")] == ["sweep"]
        assert query(own.database, "SELECT state FROM approvals") == [("expired",)]
