"""Helpers shared by several test modules: the API documents, a recording transport, block walkers, the
production Slack port pointed at the local Slack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from openapi_core import OpenAPI
from slack_sdk.web.async_client import AsyncWebClient

from bot.devslack.state import FakeSlack, Message
from bot.slack_port import WebClientSlackPort

ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = ROOT / "spec" / "email-security-investigate.openapi.json"
SDK_OVERLAY_PATH = ROOT / "spec" / "email-security-investigate.sdk-5.9.0-overlay.openapi.json"


def strip_discriminators(node: Any) -> Any:
    """Drop `discriminator`: the document puts it on inline oneOf members without a mapping, which
    openapi-core resolves to a missing schema. Each member's `type` enum keeps the oneOf unambiguous,
    so validation is otherwise unchanged."""
    if isinstance(node, dict):
        return {k: strip_discriminators(v) for k, v in node.items() if k != "discriminator"}
    if isinstance(node, list):
        return [strip_discriminators(v) for v in node]
    return node


def load_openapi(path: Path = SPEC_PATH) -> OpenAPI:
    """Return an OpenAPI document ready for openapi-core validation."""
    return OpenAPI.from_dict(strip_discriminators(json.loads(path.read_text())))


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests to a real transport and keeps every (request, response) exchange."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await response.aread()
        self.exchanges.append((request, response))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def mrkdwn_texts(node: Any) -> list[str]:
    """Return every mrkdwn text in a block tree (plain_text is never parsed by Slack)."""
    found: list[str] = []
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            found.append(node["text"])
        for child in node.values():
            found.extend(mrkdwn_texts(child))
    elif isinstance(node, list):
        for child in node:
            found.extend(mrkdwn_texts(child))
    return found


# The port's methods and the Web API methods they call.
API_METHODS = {
    "post_message": ("chat.postMessage",),
    "update_message": ("chat.update",),
    "find_message_with_metadata": ("conversations.history", "conversations.replies"),
    "open_dm": ("conversations.open",),
}


class LocalSlack(WebClientSlackPort):
    """The production Slack port over HTTP to the local Slack, with what the tests read back from it."""

    def __init__(self, state: FakeSlack, client: AsyncWebClient) -> None:
        super().__init__(client)
        self.state = state
        self.client = client

    @property
    def calls(self) -> list[Any]:
        """Every Web API call the local Slack answered."""
        return list(self.state.recorded)

    def count(self, method: str) -> int:
        """Return how many Web API calls a port method made (failed ones included)."""
        return sum(len(self.state.calls(api)) for api in API_METHODS[method])

    def top_level(self, channel: str | None = None) -> list[Message]:
        """Return the channel messages (the cards), oldest first."""
        return self.state.top_level(channel)

    def replies(self, thread_ts: str) -> list[Message]:
        """Return a thread's replies, oldest first."""
        return [m for m in self.state.messages() if m.is_reply and m.thread_ts == thread_ts]

    async def delete_message(self, channel: str, ts: str) -> None:
        """Delete a message (later edits get `message_not_found` from Slack)."""
        await self.client.chat_delete(channel=channel, ts=ts)


def watching(store: Any, client: Any, notifier: Any) -> Any:
    """Return the use cases over a component test's store, client and notifier, with no request budget.

    `watch` is a use case (the tracker only tracks), so tracker tests start tracking through it.
    """
    from bot.jobs import JobService
    from bot.throttle import RequestBudgets

    return JobService(
        client=client,
        store=store,
        account_id=client.account_id,
        wake_notifier=notifier.wake,
        budgets=RequestBudgets({}),
    )
