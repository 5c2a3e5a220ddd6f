"""Issue 12, breadth guard: a broad search's preview says first why, over signed HTTP to the bot process.

- inline: `/sweep move` with only a disposition over 60 days names both breadth reasons, each with
  what would narrow it, and that Confirm sends an approval request and needs a comment, before the
  count; mail from an internal domain (`SWEEP_INTERNAL_DOMAINS`) is named too, even with the count
  rule off; a narrow search's preview says nothing of it;
- modal: the same broad search through `/sweep new` shows the reasons first, and its submit says
  Request approval.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from bot.devslack.modal import fill
from bot.ids import ActionId, BlockId, CallbackId
from tests.e2e.conftest import OPERATOR, Stack, open_stack, wait_until
from tests.e2e.test_slack_flows import buttons, everything, last_response

pytestmark = pytest.mark.asyncio(loop_scope="module")

INTERNAL = "acme-corp.example"  # the simulator's own company domain


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    # The count and kind rules off: whatever they say, a broad search needs a second person.
    extra = {
        "SWEEP_INTERNAL_DOMAINS": INTERNAL,
        "SWEEP_APPROVAL_ABOVE": "off",
        "SWEEP_APPROVAL_ALWAYS": "release",
    }
    async with open_stack(tmp_path_factory.mktemp("breadth"), extra_env=extra) as opened:
        yield opened


def block_texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Return each block's text in order ("" for blocks without one)."""
    return [(b.get("text") or {}).get("text", "") if isinstance(b.get("text"), dict) else "" for b in blocks]


def first_with(lines: list[str], needle: str) -> int:
    found = [i for i, line in enumerate(lines) if needle in line]
    assert found, f"{needle!r} not in {lines}"
    return found[0]


async def inline_preview(stack: Stack, text: str) -> Any:
    before = len(stack.slack.state.responses(OPERATOR))
    response = await stack.driver.slash(text)
    assert response.status == 200
    preview = await last_response(stack, OPERATOR, before)
    assert ActionId.CONFIRM_CREATE in buttons(preview.blocks), everything(preview)
    return preview


async def test_a_broad_inline_preview_says_why_and_what_would_narrow_it_first(stack: Stack) -> None:
    preview = await inline_preview(stack, "move final_disposition:malicious since:60d to:junk")
    lines = block_texts(preview.blocks)
    first = lines[0]
    assert first.startswith(":warning: *A second person must approve this job:*"), lines
    assert "• *Broad search:* It names no particular mail" in first
    assert "• *Broad search:* Its dates cover 60 days, more than 30" in first
    assert "_To narrow it:_ Add a sender" in first and "Shorten the dates to 30 days or fewer" in first
    request = lines[1]
    assert request.startswith("*Confirm* posts an approval request") and "does not create the job" in request
    assert '`comment:"…"`' in request  # no comment given: how to add the justification
    assert first_with(lines, "*Move to Junk Email.*") == 2
    assert first_with(lines, "right now") > 2  # the count comes after the reasons
    assert preview.text.startswith("Preview (broad search, a second person must approve it)")


async def test_mail_from_an_internal_domain_is_named_with_the_comment_as_justification(stack: Stack) -> None:
    text = f'move sender:hr@{INTERNAL} since:7d to:junk comment:"INC-77"'
    preview = await inline_preview(stack, text)
    lines = block_texts(preview.blocks)
    assert f"your own domain {INTERNAL}" in lines[0] and lines[0].count("_To narrow it:_") == 1
    assert "your comment is sent as one" in lines[1]


async def test_a_narrow_inline_preview_says_nothing_of_approval(stack: Stack) -> None:
    preview = await inline_preview(stack, "move subject:invoice since:7d to:junk")
    assert "second person" not in everything(preview) and "approval" not in everything(preview)
    assert block_texts(preview.blocks)[0].startswith("*Move to Junk Email.*")


async def test_a_broad_modal_preview_says_why_first_and_its_submit_requests_approval(stack: Stack) -> None:
    state = stack.slack.state
    views_before = len(state.views(OPERATOR))
    await stack.driver.slash("new")
    form = (await wait_until(lambda: state.views(OPERATOR)[views_before:], what="the create modal"))[-1]
    sixty_days_ago = int(time.time()) - 60 * 86400
    values = fill(
        form.view,
        {
            BlockId.DESTINATION: "JunkEmail",
            BlockId.FINAL_DISPOSITION: "MALICIOUS",
            BlockId.START: sixty_days_ago,
        },
    )
    response = await stack.driver.view_submission(form.view, values)
    assert response.json().get("response_action") == "update", response.body
    preview = await wait_until(
        lambda: (v := state.view(form.id)) is not None and v.callback_id == CallbackId.CREATE_PREVIEW and v,
        what="the preview view",
    )
    lines = block_texts(preview.view["blocks"])
    first = lines[0]
    assert first.startswith(":warning: *A second person must approve this job:*"), lines
    assert "It names no particular mail" in first
    # Sixty days back from this test's clock to the bot's: whole days only when both read the same second.
    assert re.search(r"Its dates cover (60 days, more than 30|more than (59|60) days)", first), first
    assert first.count("_To narrow it:_") == 2
    assert lines[1].startswith("*Request approval* posts an approval request")
    assert "*← Edit search*" in lines[1]  # no comment yet: go back and write one
    assert first_with(lines, "right now") > 2
    assert preview.view["submit"]["text"] == "Request approval"
