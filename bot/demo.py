"""`sweep-bot demo`: the whole product on one machine, no accounts, no network.

Starts the Cloudflare simulator, the local stand-in for Slack's Web API and the real bot (the same
runtime as `serve`, in HTTP mode, on a temporary SQLite file), then plays an incident through signed
HTTP requests exactly as Slack sends them, printing the conversation as a person reads it in Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web
from pydantic import SecretStr

from bot.app import Runtime, background_loops, http_application, open_runtime
from bot.config import CloudflareSettings, Settings
from bot.devslack.driver import SlackDriver
from bot.devslack.render import render_message, render_view
from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.devslack.state import Event, FakeSlack
from bot.ids import ActionId
from bot.simulator.app import SimulatorConfig, running_simulator

DEMO_TOKEN = "sweep-demo-cloudflare-token"  # noqa: S105 - the local simulator's own token
DEMO_BOT_TOKEN = "xoxb-sweep-demo"  # noqa: S105 - the local Slack's own token
DEMO_SECRET = "sweep-demo-signing-secret"  # noqa: S105 - signs requests to the local bot only
DEMO_ACCOUNT = "d3m0000000000000000000000000acc7"
ANALYST = "U0ANALYST"
CHANNEL = "C0INCIDENT"
TERMINAL_WORDS = ("COMPLETED", "FAILED", "CANCELLED", "SKIPPED")


@dataclass
class Conversation:
    """Prints what a person in the channel would see, as it happens."""

    state: FakeSlack
    out: TextIO
    seen: int = 0

    def say(self, line: str) -> None:
        """Print a narrator line."""
        print(line, file=self.out, flush=True)

    def user(self, user: str, text: str) -> None:
        """Print something the analyst did."""
        self.say(f"\n@{user} ▸ {text}")

    def pump(self) -> None:
        """Print every Slack event that happened since the last call."""
        events = self.state.events[self.seen :]
        self.seen += len(events)
        for event in events:
            self._print(event)

    def _print(self, event: Event) -> None:
        data = event.data
        if event.kind == "message":
            where = "  ↳ thread reply" if data.get("thread_ts") else f"#{event.channel} · Sweep"
            self.say(f"\n{where}:\n{render_message(data, prefix='  ┃ ')}")
        elif event.kind == "update":
            self.say(f"\n#{event.channel} · Sweep (card updated):\n{render_message(data, prefix='  ┃ ')}")
        elif event.kind in {"ephemeral", "response"}:
            self.say(f"\n(only you can see this) Sweep:\n{render_message(data, prefix='  │ ')}")
        elif event.kind in {"view_open", "view_update", "view_push"}:
            self.say(f"\n[modal]\n{render_view(data, prefix='  ')}")


@contextlib.asynccontextmanager
async def demo_stack(
    workdir: Path, *, job_seconds: float = 8.0
) -> AsyncIterator[tuple[Any, RunningFakeSlack, Runtime, str]]:
    """Start simulator, local Slack and the bot's HTTP endpoint; yield them and the events URL."""
    config = SimulatorConfig(token=DEMO_TOKEN, job_seconds=job_seconds, seed=7)
    async with (
        running_simulator(config, host="127.0.0.1", port=0) as sim,
        running_fake_slack(bot_token=DEMO_BOT_TOKEN, trigger_ttl=30.0) as slack,
    ):
        settings = Settings(
            slack_bot_token=SecretStr(DEMO_BOT_TOKEN),
            slack_signing_secret=SecretStr(DEMO_SECRET),
            slack_app_token=None,
            slack_api_url=slack.api_url,
            sweep_database=workdir / "sweep.db",
            sweep_poll_seconds=1.0,
            sweep_operators=ANALYST,
            sweep_channels=None,
        )
        cloudflare = CloudflareSettings(
            api_token=SecretStr(DEMO_TOKEN),
            email=None,
            api_key=None,
            account_id=DEMO_ACCOUNT,
            base_url=sim.base_url,
        )
        async with open_runtime(settings, cloudflare) as runtime, background_loops(runtime):
            runner = web.AppRunner(http_application(runtime), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = int(runner.addresses[0][1])
            try:
                yield sim, slack, runtime, f"http://127.0.0.1:{port}/slack/events"
            finally:
                await runner.cleanup()


async def _wait(condition: Callable[[], Any], conversation: Conversation, *, timeout: float = 60.0) -> Any:
    """Print events while waiting for `condition` to hold; return its value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        conversation.pump()
        value = condition()
        if value:
            conversation.pump()
            return value
        if loop.time() > deadline:
            raise TimeoutError("the demo waited too long for Slack to show something")
        await asyncio.sleep(0.1)


def _has_button(blocks: list[dict[str, Any]], action_id: str) -> bool:
    return action_id in json.dumps(blocks)


def _card_finished(state: FakeSlack, ts: str) -> bool:
    message = state.message(CHANNEL, ts)
    return (
        message is not None
        and not _has_button(message.blocks, ActionId.CANCEL_JOB)
        and any(word in message.text.upper() for word in TERMINAL_WORDS)
    )


async def _slash(driver: SlackDriver, conversation: Conversation, text: str) -> None:
    conversation.user(ANALYST, f"/sweep {text}")
    await driver.slash(text)
    conversation.pump()


async def _create_inline(driver: SlackDriver, conversation: Conversation, text: str) -> str:
    """Run an inline create, press Confirm, and return the new card's ts."""
    state = conversation.state
    responses = len(state.responses(ANALYST))
    await _slash(driver, conversation, text)
    preview = (await _wait(lambda: state.responses(ANALYST)[responses:], conversation))[-1]
    cards = len(state.top_level(CHANNEL))
    conversation.user(ANALYST, "clicks [ Confirm ]")
    await driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=preview.blocks)
    card = (await _wait(lambda: state.top_level(CHANNEL)[cards:], conversation))[-1]
    return str(card.ts)


async def play_incident(driver: SlackDriver, conversation: Conversation) -> None:
    """The scripted incident: help, a confirmed move, a cancelled release, the job list."""
    state = conversation.state
    conversation.say("— A phishing wave hits #incident. The analyst asks Sweep for help. —")
    await _slash(driver, conversation, "help")
    conversation.say("\n— They sweep the phish into Deleted Items. —")
    move_ts = await _create_inline(
        driver, conversation, 'move subject:"invoice" since:7d to:deleted comment:"phish wave INC-4711"'
    )
    await _wait(lambda: _card_finished(state, move_ts), conversation, timeout=90)
    conversation.say("\n— A release goes out by mistake; the analyst cancels it from its card. —")
    release_ts = await _create_inline(driver, conversation, "release subject:newsletter since:3d")
    conversation.user(ANALYST, "clicks [ Cancel ] on the card, and confirms")
    await driver.block_action(ActionId.CANCEL_JOB, message_ts=release_ts)
    await _wait(lambda: _card_finished(state, release_ts), conversation, timeout=60)
    conversation.say("\n— Finally, what has Sweep done today? —")
    responses = len(state.responses(ANALYST))
    await _slash(driver, conversation, "list")
    await _wait(lambda: state.responses(ANALYST)[responses:], conversation)


async def interactive(driver: SlackDriver, conversation: Conversation, stdin: TextIO) -> None:
    """Let the user type `/sweep …` lines (and `press <n>` for the buttons of the last message)."""
    conversation.say("Type /sweep commands (e.g. /sweep help), `press cancel <job card #>`, or `quit`.")
    loop = asyncio.get_running_loop()
    while True:
        conversation.pump()
        line = await loop.run_in_executor(None, stdin.readline)
        if not line or line.strip() in {"quit", "exit"}:
            return
        line = line.strip()
        if line.startswith("/sweep"):
            await driver.slash(line[len("/sweep") :].strip())
        elif line.startswith("press"):
            await _press(driver, conversation, shlex.split(line)[1:])
        elif line:
            conversation.say("Commands start with /sweep; buttons: `press confirm`, `press cancel <n>`.")
        await asyncio.sleep(1.0)


async def _press(driver: SlackDriver, conversation: Conversation, words: list[str]) -> None:
    state = conversation.state
    if words[:1] == ["confirm"]:
        previews = [r for r in state.responses(ANALYST) if _has_button(r.blocks, ActionId.CONFIRM_CREATE)]
        if previews:
            await driver.block_action(ActionId.CONFIRM_CREATE, message_blocks=previews[-1].blocks)
            return
    if words[:1] == ["cancel"]:
        cards = [m for m in state.top_level(CHANNEL) if _has_button(m.blocks, ActionId.CANCEL_JOB)]
        index = int(words[1]) - 1 if len(words) > 1 and words[1].isdigit() else len(cards) - 1
        if 0 <= index < len(cards):
            await driver.block_action(ActionId.CANCEL_JOB, message_ts=cards[index].ts)
            return
    conversation.say("Nothing to press there.")


async def run_demo(
    *, interactive_mode: bool = False, out: TextIO = sys.stdout, stdin: TextIO = sys.stdin
) -> int:
    """Play the demo; return the exit code."""
    workdir = Path(tempfile.mkdtemp(prefix="sweep-demo-"))
    async with demo_stack(workdir) as (sim, slack, _runtime, events_url):
        conversation = Conversation(slack.state, out)
        conversation.say(
            f"Sweep demo — offline. Cloudflare simulator: {sim.base_url}\n"
            f"Local Slack Web API: {slack.api_url}\nSweep (HTTP mode): {events_url}\n"
            f"Everyone here is @{ANALYST}, an operator, in #{CHANNEL}."
        )
        async with SlackDriver(
            events_url, DEMO_SECRET, slack.state, user_id=ANALYST, channel_id=CHANNEL
        ) as driver:
            if interactive_mode:
                await interactive(driver, conversation, stdin)
            else:
                await play_incident(driver, conversation)
            conversation.pump()
    print(f"\nThe demo's SQLite database (jobs, audit log, outbox): {workdir / 'sweep.db'}", file=out)
    return 0
