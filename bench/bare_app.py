"""The framework's ceiling: a bare Bolt AsyncApp that only acknowledges, served like Sweep (aiohttp).

Run: python bench/bare_app.py PORT SIGNING_SECRET SLACK_API_URL [--stock]

By default it runs as Sweep does, with `process_before_response=True`: the response goes out when
the listener returns. `--stock` keeps Bolt's default, where the response waits for Bolt's next
10 ms poll for ack(), which puts a 10 ms floor under every answer.
"""

from __future__ import annotations

import asyncio
import re
import sys
from typing import Any

from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


def build_bare_app(signing_secret: str, api_url: str, *, stock: bool = False) -> AsyncApp:
    """Return an app that acks every command, action and view submission and does nothing else."""
    app = AsyncApp(
        client=AsyncWebClient(token="xoxb-bench", base_url=api_url),
        signing_secret=signing_secret,
        process_before_response=not stock,
    )

    async def ack_only(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()

    anything = re.compile(".*")
    app.command("/sweep")(ack_only)
    app.action(anything)(ack_only)  # every action_id of a block_actions payload
    app.view(anything)(ack_only)  # every callback_id of a view_submission
    return app


async def serve(port: int, signing_secret: str, api_url: str, *, stock: bool = False) -> None:
    """Serve the bare app until killed."""
    runner = web.AppRunner(
        build_bare_app(signing_secret, api_url, stock=stock).web_app(path="/slack/events"), access_log=None
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2], sys.argv[3], stock="--stock" in sys.argv[4:]))
