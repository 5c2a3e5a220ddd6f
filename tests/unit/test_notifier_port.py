"""Pure parts of the notifier and the Slack port: metadata, error mapping, history search."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.slack_response import SlackResponse

from bot.models import TrackedJob
from bot.notifier import _reply_job, card_metadata, transition_metadata
from bot.slack_port import (
    SlackPermanentError,
    SlackRateLimitedError,
    SlackTransientError,
    WebClientSlackPort,
    metadata_key,
)

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def api_error(error: str, *, status: int = 200, headers: dict[str, str] | None = None) -> SlackApiError:
    response = SlackResponse(
        client=None,
        http_verb="POST",
        api_url="https://slack.test/api/chat.postMessage",
        req_args={},
        data={"ok": False, "error": error},
        headers=headers or {},
        status_code=status,
    )
    return SlackApiError(f"The request to the Slack API failed: {error}", response)


class FakeWebClient:
    """Just enough of AsyncWebClient: answers from a script, records the arguments."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []

    async def _answer(self, name: str, kwargs: dict[str, Any]) -> Any:
        self.calls.append((name, kwargs))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def chat_postMessage(self, **kwargs: Any) -> Any:  # noqa: N802 - slack_sdk's name
        return await self._answer("chat.postMessage", kwargs)

    async def chat_update(self, **kwargs: Any) -> Any:
        return await self._answer("chat.update", kwargs)

    async def conversations_history(self, **kwargs: Any) -> Any:
        return await self._answer("conversations.history", kwargs)

    async def conversations_replies(self, **kwargs: Any) -> Any:
        return await self._answer("conversations.replies", kwargs)


def test_metadata_shapes_and_keys() -> None:
    assert card_metadata("j1") == {"event_type": "sweep_card", "event_payload": {"job_id": "j1"}}
    reply = transition_metadata("j1", "PENDING->PROCESSING")
    assert reply["event_type"] == "sweep_transition"
    assert metadata_key(reply["event_payload"]) == "j1|PENDING->PROCESSING"
    assert metadata_key(card_metadata("j1")["event_payload"]) == "j1"


def test_reply_shows_the_state_at_the_transition() -> None:
    job = TrackedJob(
        job_id="j1",
        account_id="a",
        action_type="MOVE",
        status="COMPLETED",
        messages_successful=10,
        created_at=T0,
        updated_at=T0,
        gone=True,
    )
    at_transition = _reply_job(
        job,
        {
            "previous": "PENDING",
            "status": "PROCESSING",
            "state": {"status": "PROCESSING", "messages_successful": 3},
        },
    )
    assert (at_transition.status, at_transition.messages_successful, at_transition.gone) == (
        "PROCESSING",
        3,
        False,
    )
    assert _reply_job(job, {"previous": "PROCESSING", "status": "PROCESSING", "gone": True}) is job


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
async def test_slack_errors_are_classified(error: str, status: int, kind: type[Exception]) -> None:
    port = WebClientSlackPort(FakeWebClient([api_error(error, status=status)]))  # type: ignore[arg-type]
    with pytest.raises(kind) as raised:
        await port.update_message(channel="C1", ts="1.0", text="t", blocks=[])
    assert not isinstance(raised.value, SlackRateLimitedError)


async def test_rate_limit_carries_retry_after_and_card_killers_are_flagged() -> None:
    client = FakeWebClient(
        [
            api_error("ratelimited", status=429, headers={"Retry-After": "7"}),
            api_error("is_archived"),
            aiohttp.ClientConnectionError("reset"),
        ]
    )
    port = WebClientSlackPort(client)  # type: ignore[arg-type]
    with pytest.raises(SlackRateLimitedError) as limited:
        await port.post_message(channel="C1", text="t", blocks=[])
    assert limited.value.retry_after == 7
    with pytest.raises(SlackPermanentError) as archived:
        await port.post_message(channel="C1", text="t", blocks=[])
    assert archived.value.kills_card
    with pytest.raises(SlackTransientError):
        await port.post_message(channel="C1", text="t", blocks=[])


async def test_post_sends_metadata_and_returns_ts() -> None:
    client = FakeWebClient([{"ok": True, "ts": "123.456"}])
    port = WebClientSlackPort(client)  # type: ignore[arg-type]
    ts = await port.post_message(
        channel="C1", text="t", blocks=[], thread_ts="1.0", metadata=card_metadata("j")
    )
    assert ts == "123.456"
    assert client.calls[0][1]["metadata"] == card_metadata("j") and client.calls[0][1]["thread_ts"] == "1.0"


async def test_find_walks_history_pages_and_matches_metadata() -> None:
    other = {"ts": "1.1", "metadata": {"event_type": "sweep_card", "event_payload": {"job_id": "other"}}}
    mine = {"ts": "1.2", "metadata": {"event_type": "sweep_card", "event_payload": {"job_id": "j1"}}}
    client = FakeWebClient(
        [
            {"messages": [other, {"ts": "1.0"}], "response_metadata": {"next_cursor": "c2"}},
            {"messages": [mine], "response_metadata": {"next_cursor": ""}},
        ]
    )
    port = WebClientSlackPort(client)  # type: ignore[arg-type]
    assert (
        await port.find_message_with_metadata(channel="C1", thread_ts=None, event_type="sweep_card", key="j1")
        == "1.2"
    )
    assert [c[1].get("cursor") for c in client.calls] == [None, "c2"]
    assert all(c[1]["include_all_metadata"] is True for c in client.calls)

    reply = {"ts": "2.0", "metadata": transition_metadata("j1", "A->B")}
    client = FakeWebClient([{"messages": [reply]}, {"messages": []}])
    port = WebClientSlackPort(client)  # type: ignore[arg-type]
    found = await port.find_message_with_metadata(
        channel="C1", thread_ts="1.2", event_type="sweep_transition", key="j1|A->B"
    )
    assert found == "2.0" and client.calls[0] == (
        "conversations.replies",
        {"channel": "C1", "ts": "1.2", "include_all_metadata": True, "limit": 200, "cursor": None},
    )
    assert (
        await port.find_message_with_metadata(
            channel="C1", thread_ts="1.2", event_type="sweep_transition", key="j1|B->C"
        )
        is None
    )
