"""Helpers shared by several test modules: the API documents, a recording transport, block walkers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from openapi_core import OpenAPI

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
