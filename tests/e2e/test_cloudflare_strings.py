"""What Cloudflare says reaches Slack safely, end to end: hidden characters and impossible counts.

A job made straight at the API (as another tool would) carries a comment with a right-to-left override
and zero-width characters; `/sweep watch` tracks it and posts its card. Slack must see the comment's
text without those characters. Another job reports 2**63 messages: watching it works (the card says the
count is unknown), and the first job's card keeps updating through the same poll cycles.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from bot.text import INVISIBLE
from tests.e2e.conftest import ACCOUNT_ID, CF_TOKEN, CHANNEL, OPERATOR, Stack, wait_until

pytestmark = pytest.mark.asyncio(loop_scope="module")

COMMENT = "phish wave \u202efdp.exe\u202c INC-\u200b4711 \u2066ticket\u2069 \ufeffend"


def everything(message: Any) -> str:
    """Return a message's fallback text and blocks as one string."""
    return message.text + "\n" + json.dumps(message.blocks, ensure_ascii=False)


async def create_outside(stack: Stack, comment: str) -> str:
    """Create a job at the simulator's API directly (not through Sweep) and hold it there."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{stack.sim.base_url}/accounts/{ACCOUNT_ID}/email-security/investigate/bulk",
            json={
                "action": "MOVE",
                "destination": "JunkEmail",
                "search_params": {"subject": "invoice", "detections_only": False},
                "comment": comment,
            },
            headers={"Authorization": f"Bearer {CF_TOKEN}"},
        )
        assert response.status_code == 201, response.text
        job_id = str(response.json()["result"]["job_id"])
        held = await http.post(f"{stack.sim.root_url}/__sim/hold", json={"job_ids": [job_id]})
        held.raise_for_status()
    return job_id


async def watch(stack: Stack, job_id: str) -> Any:
    """Run `/sweep watch <job_id>` and return the card posted in the channel."""
    state = stack.slack.state
    responses_before = len(state.responses(OPERATOR))
    response = await stack.driver.slash(f"watch {job_id}")
    assert response.status == 200, response.body

    def card() -> Any:
        return next(
            (
                m
                for m in state.top_level(CHANNEL)
                if (m.metadata or {}).get("event_payload", {}).get("job_id") == job_id
            ),
            None,
        )

    found = await wait_until(card, what=f"the card of {job_id}")
    await wait_until(lambda: len(state.responses(OPERATOR)) > responses_before, what="the watch answer")
    answers = " ".join(everything(r) for r in state.responses(OPERATOR)[responses_before:])
    assert "Something went wrong" not in answers, answers
    return found


async def test_a_watched_jobs_comment_reaches_slack_without_hidden_characters(stack: Stack) -> None:
    job_id = await create_outside(stack, COMMENT)
    card = await watch(stack, job_id)
    shown = everything(card)
    hidden = sorted({f"U+{ord(ch):04X}" for ch in shown if ch in INVISIBLE})
    assert not hidden, f"{hidden} reached Slack in the card"
    assert "\u202e" not in shown
    assert "phish wave fdp.exe INC-4711 ticket end" in shown


async def test_watching_a_job_with_an_impossible_count_works_and_other_cards_keep_updating(
    stack: Stack,
) -> None:
    normal = await create_outside(stack, "normal job")
    absurd = await create_outside(stack, "absurd job")
    normal_card = await watch(stack, normal)
    async with httpx.AsyncClient(timeout=10) as http:
        counted = await http.post(
            f"{stack.sim.root_url}/__sim/jobs/{absurd}/counts",
            json={"total_messages_discovered": 2**63, "messages_pending": -5},
        )
        counted.raise_for_status()
    absurd_card = await watch(stack, absurd)
    shown = everything(absurd_card)
    assert "Cloudflare reported an impossible count (Discovered, Pending); shown as unknown" in shown
    # (the job id is random and may itself contain "-5": look at the text without it)
    assert "9223372036854775808" not in shown and "-5" not in absurd_card.text.replace(absurd, "")

    # Both jobs finish at Cloudflare: each card completes and each thread gets its reply.
    async with httpx.AsyncClient(timeout=10) as http:
        for job_id in (normal, absurd):
            forced = await http.post(
                f"{stack.sim.root_url}/__sim/jobs/{job_id}/status", json={"status": "COMPLETED"}
            )
            forced.raise_for_status()
    state = stack.slack.state
    for card in (normal_card, absurd_card):
        await wait_until(
            lambda card=card: "Completed" in state.message(CHANNEL, card.ts).text,
            what=f"the card {card.ts} to complete",
        )
        await wait_until(
            lambda card=card: any("Completed" in r.text for r in state.thread(CHANNEL, card.ts)),
            what=f"the completion reply under {card.ts}",
        )
    logs = stack.bot.logs()
    assert "OverflowError" not in logs and "tracker cycle failed" not in logs
