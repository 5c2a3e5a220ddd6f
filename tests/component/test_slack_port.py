"""The production Slack port (`WebClientSlackPort` over slack_sdk) against the local Slack over HTTP.

Moved from tests/unit/test_notifier_port.py, where the errors were hand-built `SlackApiError`s and the
answers a scripted client: here the local Slack (`bot.devslack`) serves every one of them.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.outbox import card_metadata, transition_metadata
from bot.slack_port import (
    HISTORY_PAGE,
    SlackPermanentError,
    SlackRateLimitedError,
    SlackTransientError,
    WebClientSlackPort,
)

BOT_TOKEN = "xoxb-port-test"


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """Hold a port nothing listens on for the block (bound, so no other process takes it meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture
async def slack() -> AsyncIterator[RunningFakeSlack]:
    async with running_fake_slack(bot_token=BOT_TOKEN) as fake:
        yield fake


@pytest.fixture
def port(slack: RunningFakeSlack) -> WebClientSlackPort:
    # No retry handler, as the notifier's client: every answer reaches the port as Slack gave it.
    return WebClientSlackPort(AsyncWebClient(token=BOT_TOKEN, base_url=slack.api_url))


def post(slack: RunningFakeSlack, channel: str, text: str, **params: Any) -> str:
    """Put a message in the local Slack directly (as if posted earlier); return its ts."""
    answer = slack.state.handle(
        "chat.postMessage", {"channel": channel, "text": text, **params}, token=BOT_TOKEN
    )
    assert answer.body["ok"], answer.body
    return str(answer.body["ts"])


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        ("message_not_found", 200, SlackPermanentError),
        ("channel_not_found", 200, SlackPermanentError),
        ("invalid_blocks", 200, SlackPermanentError),
        ("internal_error", 200, SlackTransientError),
        ("invalid_auth", 200, SlackTransientError),
        ("anything", 503, SlackTransientError),
    ],
)
async def test_slack_errors_are_classified(
    slack: RunningFakeSlack, port: WebClientSlackPort, error: str, status: int, kind: type[Exception]
) -> None:
    ts = post(slack, "C1", "a card")
    if status == 200:
        slack.state.fail("chat.update", error)
    else:
        slack.state.http_error("chat.update", status)
    with pytest.raises(kind) as raised:
        await port.update_message(channel="C1", ts=ts, text="t", blocks=[])
    assert not isinstance(raised.value, SlackRateLimitedError)
    assert [(c.status, c.error) for c in slack.calls("chat.update")] == [
        (status, error if status == 200 else f"http_{status}")
    ]


async def test_rate_limit_carries_retry_after_and_card_killers_are_flagged(
    slack: RunningFakeSlack, port: WebClientSlackPort
) -> None:
    slack.state.rate_limit("chat.postMessage", retry_after=7)
    slack.state.fail("chat.postMessage", "is_archived")
    with pytest.raises(SlackRateLimitedError) as limited:
        await port.post_message(channel="C1", text="t", blocks=[])
    assert limited.value.retry_after == 7
    with pytest.raises(SlackPermanentError) as archived:
        await port.post_message(channel="C1", text="t", blocks=[])
    assert archived.value.kills_card
    # A connection that fails (nothing listens there) is transient too.
    with closed_port() as nothing_there, pytest.raises(SlackTransientError) as network:
        unreachable = WebClientSlackPort(
            AsyncWebClient(token=BOT_TOKEN, base_url=f"http://127.0.0.1:{nothing_there}/api/", timeout=5)
        )
        await unreachable.post_message(channel="C1", text="t", blocks=[])
    assert network.value.code.startswith("network: ")
    assert not slack.state.top_level("C1"), "nothing was posted"


async def test_post_sends_metadata_and_returns_ts(slack: RunningFakeSlack, port: WebClientSlackPort) -> None:
    parent = post(slack, "C1", "the card")
    ts = await port.post_message(
        channel="C1", text="t", blocks=[], thread_ts=parent, metadata=card_metadata("j")
    )
    message = slack.state.message("C1", ts)
    assert message is not None and message.text == "t"
    assert message.metadata == card_metadata("j") and message.thread_ts == parent
    call = slack.calls("chat.postMessage")[-1]  # the first one put the card there
    assert call.params["thread_ts"] == parent and call.response is not None and call.response["ts"] == ts


async def test_find_walks_history_pages_and_matches_metadata(
    slack: RunningFakeSlack, port: WebClientSlackPort
) -> None:
    # The card sits below a full page of newer messages: the port must follow the cursor to find it.
    post(
        slack,
        "C1",
        "another job's card",
        metadata={"event_type": "sweep_card", "event_payload": {"job_id": "x"}},
    )
    mine = post(slack, "C1", "my card", metadata=card_metadata("j1"))
    post(slack, "C1", "someone's card", metadata=card_metadata("other"))
    for n in range(HISTORY_PAGE):
        post(slack, "C1", f"chatter {n}")
    assert (
        await port.find_message_with_metadata(channel="C1", thread_ts=None, event_type="sweep_card", key="j1")
        == mine
    )
    history = slack.calls("conversations.history")
    assert len(history) == 2
    assert "cursor" not in history[0].params or not history[0].params["cursor"]
    assert history[1].params["cursor"] == history[0].response["response_metadata"]["next_cursor"]
    assert all(str(c.params["include_all_metadata"]).lower() in {"1", "true"} for c in history)
    assert all(int(c.params["limit"]) == HISTORY_PAGE for c in history)

    reply = post(slack, "C1", "a reply", thread_ts=mine, metadata=transition_metadata("j1", "A->B"))
    found = await port.find_message_with_metadata(
        channel="C1", thread_ts=mine, event_type="sweep_transition", key="j1|A->B"
    )
    assert found == reply
    [replies] = slack.calls("conversations.replies")
    assert replies.params["channel"] == "C1" and replies.params["ts"] == mine
    assert int(replies.params["limit"]) == HISTORY_PAGE
    assert (
        await port.find_message_with_metadata(
            channel="C1", thread_ts=mine, event_type="sweep_transition", key="j1|B->C"
        )
        is None
    )
