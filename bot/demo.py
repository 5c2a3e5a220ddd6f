"""`sweep-bot demo`: the whole product on one machine, no accounts, no network.

Starts the Cloudflare simulator, the local stand-in for Slack's Web API and the real bot (the same
runtime as `serve`, in HTTP mode, on a temporary SQLite file), then plays an incident through signed
HTTP requests exactly as Slack sends them, printing the conversation as a person reads it in Slack.
What the demo shows is what Slack does: a button that carries a confirmation dialog shows the dialog
and waits for its answer before anything is sent to the bot.

The bot's log goes to a file in the demo's temporary directory (or to stderr with `--verbose`), so it
never interleaves with the conversation; the directory is removed at the end unless `--keep` is given
(or the demo failed, so its log can be read).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shlex
import shutil
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from aiohttp import web
from pydantic import SecretStr

from bot.app import Runtime, background_loops, http_application, open_runtime
from bot.config import CloudflareSettings, Settings
from bot.devslack.driver import SlackDriver, bolt_ack_body
from bot.devslack.modal import state_from_view
from bot.devslack.render import render_confirm, render_message, render_view
from bot.devslack.server import RunningFakeSlack, running_fake_slack
from bot.devslack.state import Event, FakeSlack, JsonDict, Message, View
from bot.ids import ActionId, EventType
from bot.logs import RedactingFormatter
from bot.simulator.app import SimulatorConfig, running_simulator
from bot.simulator.mailbox import campaign

DEMO_TOKEN = "sweep-demo-cloudflare-token"  # noqa: S105 - the local simulator's own token
DEMO_BOT_TOKEN = "xoxb-sweep-demo"  # noqa: S105 - the local Slack's own token
DEMO_SECRET = "sweep-demo-signing-secret"  # noqa: S105 - signs requests to the local bot only
DEMO_ACCOUNT = "d3m0000000000000000000000000acc7"
ANALYST = "U0ANALYST"
#: The second analyst (the incident lead): an operator too, so (by default) an approver.
LEAD = "U0LEAD"
CHANNEL = "C0INCIDENT"
TERMINAL_WORDS = ("COMPLETED", "FAILED", "CANCELLED", "SKIPPED")
PROMPT = "sweep> "
LOG_NAME = "sweep.log"
DATABASE_NAME = "sweep.db"
#: After a typed line, how long to wait for Slack's first answer before prompting again.
SETTLE_SECONDS = 5.0
#: A phishing campaign the demo's mailbox received: big enough that moving it needs a second person
#: under the default policy (more than SWEEP_APPROVAL_ABOVE=300 messages).
CAMPAIGN_SENDER = "servicedesk@acme-corp-support.com"
CAMPAIGN_SUBJECT = "Action required: your mailbox is over its storage limit"
CAMPAIGN_SIZE = 412
CAMPAIGN_DAYS = 12
BIG_MOVE = f'move sender:{CAMPAIGN_SENDER} since:14d to:deleted comment:"mailbox-full phish, INC-4711"'
_USER_RE = re.compile(r"[UW][A-Z0-9]{2,20}")

INTRO = f"""\
Type what you would do in Slack:
  /sweep …                   a slash command (/sweep help, /sweep new, /sweep move subject:invoice to:junk)
  press <button> [card #]    a button: press confirm, press preview, press cancel 1 (job card #1), press next
  set <field> <value>        fill in the open form: set sender evil@x.example, set folder junk,
                             set start 2026-11-20 08:00, set detections yes, set confirm PURGE
  show                       the open form as filled in so far
  as <user> <line>           one line as someone else, e.g. the lead deciding your approval request:
                             as {LEAD} press approve, as {LEAD} press reject, as {LEAD} set reason too broad
  quit                       end the demo
A purge, or a job matching more than 300 messages, needs a second person: its Confirm posts an
approval request (the job's comment is its justification), which @{LEAD} may approve. Try:
  /sweep {BIG_MOVE}"""


def _posted_as(data: JsonDict, kind: EventType) -> bool:
    metadata = data.get("metadata")
    return isinstance(metadata, dict) and metadata.get("event_type") == kind.value


def _card_of(data: JsonDict) -> bool:
    return _posted_as(data, EventType.CARD)


def _request_of(data: JsonDict) -> bool:
    """Return True for an approval request (Approve / Reject), pending or decided."""
    return _posted_as(data, EventType.APPROVAL)


def _whose(user: str | None) -> str:
    """Say whose a modal is when it is not the analyst's (`` · @U0LEAD``)."""
    return "" if user in (None, "", ANALYST) else f" · @{user}"


@dataclass(eq=False)  # identity: two ephemerals with the same text are still two messages
class Ephemeral:
    """An ephemeral message its user can still see (and press buttons on)."""

    data: JsonDict
    token: str
    user: str = ANALYST


@dataclass
class Conversation:
    """Prints what a person in the channel would see, as it happens."""

    state: FakeSlack
    out: TextIO
    seen: int = 0
    #: Card ts → its number in this conversation (`press cancel 2` presses card #2's button).
    cards: dict[str, int] = field(default_factory=dict)
    #: Ephemeral messages still on screen, oldest first (a reply with replace_original replaces one).
    ephemerals: list[Ephemeral] = field(default_factory=list)
    #: response_url token of a button press → the ephemeral message the button was on.
    pressed_from: dict[str, Ephemeral] = field(default_factory=dict)
    #: What the analyst typed into each modal (view id → `state.values`).
    typed: dict[str, dict[str, dict[str, JsonDict]]] = field(default_factory=dict)
    at_prompt: bool = False
    prompt_text: str = PROMPT

    def say(self, line: str) -> None:
        """Print a narrator line."""
        self._finish_prompt()
        print(line, file=self.out, flush=True)

    def user(self, user: str, text: str) -> None:
        """Print something a person did."""
        self.say(f"\n@{user} ▸ {text}")

    def prompt(self, text: str | None = None) -> None:
        """Show the prompt; events that arrive before the next line are printed, then the prompt again."""
        self.prompt_text = text if text is not None else self.prompt_text
        self.out.write(self.prompt_text)
        self.out.flush()
        self.at_prompt = True

    def _finish_prompt(self) -> None:
        if self.at_prompt:
            self.out.write("\n")
            self.at_prompt = False

    def pump(self) -> None:
        """Print every Slack event that happened since the last call."""
        events = self.state.events[self.seen :]
        if not events:
            return
        self.seen += len(events)
        was_at_prompt = self.at_prompt
        for event in events:
            self._print(event)
        if was_at_prompt:
            self.prompt()

    def card_number(self, ts: str) -> int:
        """Return the card's number, numbering cards in the order they were posted."""
        return self.cards.setdefault(ts, len(self.cards) + 1)

    def _print(self, event: Event) -> None:
        data = event.data
        if event.kind == "message":
            thread = data.get("thread_ts")
            if thread:
                number = self.cards.get(str(thread))
                where = f"  ↳ thread reply on job card #{number}" if number else "  ↳ thread reply"
            elif _card_of(data):
                where = f"#{event.channel} · Sweep — job card #{self.card_number(str(data.get('ts')))}"
            elif _request_of(data):
                where = f"#{event.channel} · Sweep — approval request"
            else:
                where = f"#{event.channel} · Sweep"
            self.say(f"\n{where}:\n{render_message(data, prefix='  ┃ ')}")
        elif event.kind == "update":
            ts = str(data.get("ts"))
            if _card_of(data) or ts in self.cards:
                what = f"job card #{self.card_number(ts)}"
            else:
                what = "approval request" if _request_of(data) else "message"
            self.say(f"\n#{event.channel} · Sweep ({what} updated):\n{render_message(data, prefix='  ┃ ')}")
        elif event.kind in {"ephemeral", "response"}:
            self._print_ephemeral(data, event.user or ANALYST)
        elif event.kind in {"view_open", "view_update", "view_push"}:
            state = self.typed.get(str(data.get("id")))
            self.say(f"\n[form{_whose(event.user)}]\n{render_view(data, prefix='  ', state=state)}")
        elif event.kind == "view_close":
            self.say(f"\n[form{_whose(event.user)} closed]")
        elif event.kind == "delete":
            self.say("\n(a message was deleted)")

    def _print_ephemeral(self, data: JsonDict, user: str) -> None:
        token = str(data.get("token") or "")
        shown = Ephemeral(data, token, user)
        replaced: Ephemeral | None = None
        if data.get("replace_original"):
            # Slack replaces the message the button was on, or the earlier answer to the same command.
            replaced = self.pressed_from.get(token) or next(
                (e for e in reversed(self.ephemerals) if e.token == token and e.user == user), None
            )
        who = "you" if user == ANALYST else f"@{user}"
        if replaced is not None and replaced in self.ephemerals:
            self.ephemerals[self.ephemerals.index(replaced)] = shown
            if self.pressed_from.get(token) is replaced:
                self.pressed_from[token] = shown
            header = f"(only {who} can see this; it replaces Sweep's previous message)"
        else:
            self.ephemerals.append(shown)
            header = f"(only {who} can see this)"
        self.say(f"\n{header} Sweep:\n{render_message(data, prefix='  │ ')}")


# ---------------------------------------------------------------------------- buttons and forms


def _buttons(blocks: Any) -> Iterator[JsonDict]:
    """Yield every button in `blocks` (actions elements and section accessories)."""
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        yield from (e for e in elements if isinstance(e, dict) and e.get("type") == "button")


def _label(element: JsonDict) -> str:
    text = element.get("text")
    return str(text.get("text", "")) if isinstance(text, dict) else str(text or "")


def _words(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _matches(label: str, wanted: str) -> bool:
    """Return True when `wanted` names this button: its label, or the start of it (`cancel` → Cancel job)."""
    return bool(wanted) and (_words(label) == wanted or _words(label).startswith(wanted + " "))


def _parse_when(text: str) -> int:
    """Return unix seconds for `2026-11-20`, `2026-11-20 08:00` or `2026-11-20T08:00Z` (UTC)."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp())


def _entry(element: JsonDict, raw: str) -> tuple[JsonDict, str | None]:
    """Return the `state.values` entry for typing `raw` into `element`, and the value a select sends."""
    kind = str(element.get("type"))
    entry: JsonDict = {"type": kind}
    if kind in ("static_select", "radio_buttons"):
        options = list(element.get("options") or [])
        options += [o for g in element.get("option_groups") or [] for o in g.get("options") or []]
        wanted = _words(raw)
        chosen = (
            next((o for o in options if _words(str(o.get("value"))) == wanted), None)
            or next((o for o in options if _words(_label(o)).startswith(wanted)), None)
            or next(
                (o for o in options if any(w.startswith(wanted) for w in _words(_label(o)).split())), None
            )
        )
        if chosen is None:
            names = ", ".join(str(o.get("value")) for o in options)
            raise ValueError(f"pick one of: {names}")
        entry["selected_option"] = chosen
        return entry, str(chosen.get("value"))
    if kind == "checkboxes":
        on = _words(raw) in {"yes", "y", "true", "on", "1", "x"}
        if not on and _words(raw) not in {"no", "n", "false", "off", "0", ""}:
            raise ValueError("say yes or no")
        entry["selected_options"] = list(element.get("options") or []) if on else []
        return entry, None
    if kind == "datetimepicker":
        try:
            entry["selected_date_time"] = _parse_when(raw)
        except ValueError:
            raise ValueError("give a date and time, e.g. 2026-11-20 08:00 (UTC)") from None
        return entry, None
    if kind == "datepicker":
        entry["selected_date"] = raw.strip()
        return entry, None
    entry["value"] = raw or None
    return entry, None


@dataclass
class Player:
    """Plays the analysts: slash commands, button presses (with their confirmation dialogs), forms."""

    driver: SlackDriver
    conversation: Conversation
    #: Answers a confirmation dialog (after it is shown): the scripted demo says yes, a person types.
    answer: Callable[[JsonDict], Any]
    #: How many requests were sent to the bot (a typed line that sent none has no answer to wait for).
    sent: int = 0
    #: Who is acting now: the analyst, or (`acting_as`) someone else, e.g. the lead approving.
    user: str = ANALYST

    @property
    def state(self) -> FakeSlack:
        """Return the local Slack's state."""
        return self.conversation.state

    @contextlib.contextmanager
    def acting_as(self, user: str) -> Iterator[None]:
        """Act as `user` inside the block (what they type, press and see), then as before."""
        saved, self.user = self.user, user
        try:
            yield
        finally:
            self.user = saved

    def open_view(self) -> View | None:
        """Return the acting user's open modal, if any."""
        views = self.state.views(self.user)
        return views[-1] if views else None

    def view_state(self, view: View) -> dict[str, dict[str, JsonDict]]:
        """Return what the form holds now: its initial values overlaid with what was typed."""
        values = state_from_view(view.view)
        for block_id, entries in self.conversation.typed.get(view.id, {}).items():
            if block_id in values:
                values[block_id] = entries
        return values

    async def slash(self, text: str) -> None:
        """Run `/sweep text`."""
        self.conversation.user(self.user, f"/sweep {text}".rstrip())
        self.sent += 1
        await self.driver.slash(text, user_id=self.user)

    async def press(self, element: JsonDict, *, where: str, **target: Any) -> bool:
        """Press a button: show its confirmation dialog first, as Slack does; return whether it was sent."""
        self.conversation.user(self.user, f"clicks [ {_label(element)} ]{where}")
        dialog = element.get("confirm")
        if isinstance(dialog, dict):
            self.conversation.say(f"\n[Slack asks first]\n{render_confirm(dialog, prefix='  ')}")
            if not await self.answer(dialog):
                self.conversation.user(
                    self.user, f"answers [ {_label({'text': dialog.get('deny')}) or 'Cancel'} ]"
                )
                self.conversation.say("(nothing was sent to Sweep)")
                return False
            self.conversation.user(
                self.user, f"answers [ {_label({'text': dialog.get('confirm')}) or 'Yes'} ]"
            )
        self.sent += 1
        await self.driver.block_action(str(element.get("action_id")), user_id=self.user, **target)
        return True

    async def press_on_ephemeral(self, shown: Ephemeral, element: JsonDict) -> bool:
        """Press a button on an ephemeral message; a reply replacing it replaces that message."""
        blocks = shown.data.get("blocks") or []
        sent = await self.press(element, where="", message_blocks=blocks)
        if sent and self.driver.last_response_url:
            token = self.driver.last_response_url.rsplit("/", 1)[-1]
            self.conversation.pressed_from[token] = shown
        return sent

    async def press_on_card(self, ts: str, element: JsonDict) -> bool:
        """Press a button on a job card."""
        number = self.conversation.card_number(ts)
        return await self.press(element, where=f" on job card #{number}", message_ts=ts)

    async def press_on_message(self, message: Message, element: JsonDict) -> bool:
        """Press a button on a message in the channel: a job card, an approval request."""
        if _card_of({"metadata": message.metadata}) or message.ts in self.conversation.cards:
            return await self.press_on_card(message.ts, element)
        where = " on the approval request" if _request_of({"metadata": message.metadata}) else ""
        return await self.press(element, where=where, message_ts=message.ts)

    async def press_named(self, words: list[str]) -> str | None:
        """Press the button named by `words` (`confirm`, `cancel 2`); return a problem, or None."""
        number = int(words[-1]) if len(words) > 1 and words[-1].isdigit() else None
        wanted = _words(" ".join(words[:-1] if number is not None else words))
        if number is not None:
            ts = next((t for t, n in self.conversation.cards.items() if n == number), None)
            message = self.state.message(CHANNEL, ts) if ts else None
            if message is None:
                return f"There is no job card #{number}."
            button = next((b for b in _buttons(message.blocks) if _matches(_label(b), wanted)), None)
            if button is None:
                return f"Job card #{number} has no [{wanted}] button now."
            await self.press_on_card(message.ts, button)
            return None
        view = self.open_view()
        if view is not None and await self._press_in_view(view, wanted):
            return None
        for shown in reversed(self.conversation.ephemerals):
            if shown.user != self.user:
                continue  # only its user sees an ephemeral message
            button = next(
                (b for b in _buttons(shown.data.get("blocks")) if _matches(_label(b), wanted)), None
            )
            if button is not None:
                await self.press_on_ephemeral(shown, button)
                return None
        # Then the channel, newest message first: job cards, approval requests.
        for message in reversed(self.state.top_level(CHANNEL)):
            button = next((b for b in _buttons(message.blocks) if _matches(_label(b), wanted)), None)
            if button is not None:
                await self.press_on_message(message, button)
                return None
        return f"There is no [{wanted}] button to press."

    async def _press_in_view(self, view: View, wanted: str) -> bool:
        for button in _buttons(view.view.get("blocks")):
            if _matches(_label(button), wanted):
                await self.press(
                    button, where=" in the form", view=view.view, state_values=self.view_state(view)
                )
                return True
        submit, close = view.view.get("submit"), view.view.get("close")
        if isinstance(submit, dict) and _matches(_label({"text": submit}), wanted):
            self.conversation.user(self.user, f"clicks [ {_label({'text': submit})} ] in the form")
            self.sent += 1
            values = self.view_state(view)
            answer = bolt_ack_body(await self.driver.view_submission(view.view, values, user_id=self.user))
            if answer.get("response_action") == "errors" and isinstance(answer.get("errors"), dict):
                # Slack shows the errors under the fields and keeps the form open.
                errors = {str(k): str(v) for k, v in answer["errors"].items()}
                form = render_view(view.view, prefix="  ", state=values, errors=errors)
                self.conversation.say(f"\n[form, with Sweep's errors]\n{form}")
            return True
        if isinstance(close, dict) and _matches(_label({"text": close}), wanted):
            self.conversation.user(self.user, f"clicks [ {_label({'text': close})} ] in the form")
            if view.view.get("notify_on_close"):
                self.sent += 1
                await self.driver.view_closed(view.view, user_id=self.user)
            else:
                self.state.close_view(view.id)
            return True
        return False

    async def set_field(self, name: str, raw: str) -> str | None:
        """Type or pick `raw` in the open form's field `name`; return a problem, or None."""
        view = self.open_view()
        if view is None:
            return "No form is open: /sweep new opens one."
        wanted = _words(name)
        inputs = [b for b in view.view.get("blocks") or [] if b.get("type") == "input"]
        block = next(
            (b for b in inputs if _words(str(b.get("block_id")).removeprefix("sweep_")) == wanted), None
        )
        block = block or next(
            (b for b in inputs if _words(str(b.get("block_id")).removeprefix("sweep_")).startswith(wanted)),
            None,
        )
        block = block or next((b for b in inputs if wanted in _words(_label({"text": b.get("label")}))), None)
        if block is None:
            names = ", ".join(_words(str(b.get("block_id")).removeprefix("sweep_")) for b in inputs)
            return f"This form has no field {name!r}; its fields: {names}."
        element = block["element"]
        try:
            entry, chosen = _entry(element, raw)
        except ValueError as error:
            return f"{_label({'text': block.get('label')})}: {error}."
        self.conversation.typed.setdefault(view.id, {})[str(block["block_id"])] = {
            str(element["action_id"]): entry
        }
        self.conversation.user(self.user, f"sets {_label({'text': block.get('label')})} to {raw!r}")
        if block.get("dispatch_action") and chosen is not None:
            # Slack sends a block action for an input with dispatch_action (the form redraws itself).
            self.sent += 1
            await self.driver.block_action(
                str(element["action_id"]),
                chosen,
                user_id=self.user,
                view=view.view,
                state_values=self.view_state(view),
            )
        return None


# ---------------------------------------------------------------------------- the stack


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
        wave = campaign(
            seed=config.seed,
            count=CAMPAIGN_SIZE,
            now=sim.state.clock(),
            days=CAMPAIGN_DAYS,
            sender=CAMPAIGN_SENDER,
            sender_name="IT Service Desk",
            subject=CAMPAIGN_SUBJECT,
        )
        sim.state.add_mail(DEMO_ACCOUNT, wave)
        # The approval policy is the shipped default (a purge, or more than 300 messages, needs a
        # second person): the demo shows the product as it is. Both analysts are operators, and so
        # (SWEEP_APPROVERS unset) approvers; neither may approve their own request.
        settings = Settings(
            slack_bot_token=SecretStr(DEMO_BOT_TOKEN),
            slack_signing_secret=SecretStr(DEMO_SECRET),
            slack_app_token=None,
            slack_api_url=slack.api_url,
            sweep_database=workdir / DATABASE_NAME,
            sweep_poll_seconds=1.0,
            # Polling every second would spend Cloudflare's real budget in four minutes; the simulator
            # has none, so the demo's never binds.
            sweep_cloudflare_budget=1_000_000,
            sweep_operators=f"{ANALYST},{LEAD}",
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


# ---------------------------------------------------------------------------- the scripted incident


async def _accept(dialog: JsonDict) -> bool:
    """The scripted analyst reads the dialog and confirms."""
    return True


def _said(state: FakeSlack, user: str, since: int, words: str) -> bool:
    """Return True when Sweep told `user` (only them) something containing `words`, after `since`."""
    return any(words in r.text for r in state.responses(user)[since:])


def _button(blocks: Any, action_id: str) -> JsonDict:
    return next(b for b in _buttons(blocks) if b.get("action_id") == action_id)


async def _confirm_inline(player: Player, text: str) -> Message:
    """Run an inline command, press Confirm (answering its dialog, if any); return what it posted."""
    conversation, state = player.conversation, player.state
    responses = len(state.responses(player.user))
    await player.slash(text)
    await _wait(lambda: state.responses(player.user)[responses:], conversation)
    preview = next(
        e
        for e in reversed(conversation.ephemerals)
        if e.user == player.user and _has_button(e.data.get("blocks") or [], ActionId.CONFIRM_CREATE)
    )
    posted = len(state.top_level(CHANNEL))
    await player.press_on_ephemeral(preview, _button(preview.data.get("blocks"), ActionId.CONFIRM_CREATE))
    found: list[Message] = await _wait(lambda: state.top_level(CHANNEL)[posted:], conversation)
    return found[-1]


async def _create_inline(player: Player, text: str) -> str:
    """Run an inline create, press Confirm (answering its dialog, if any), return the new card's ts."""
    return (await _confirm_inline(player, text)).ts


def _approved_with_card(state: FakeSlack, request_ts: str) -> bool:
    """Return True once the approval request says who approved it and links to the job's card."""
    message = state.message(CHANNEL, request_ts)
    shown = json.dumps(message.blocks, ensure_ascii=False) if message is not None else ""
    return "Approved by" in shown and "|job card>" in shown


async def _approve_big_move(player: Player) -> None:
    """One analyst asks for a move too big for one person; the lead approves it; the job runs."""
    conversation, state = player.conversation, player.state
    conversation.say(
        f"\n— The same crew has sent a fake IT-desk mail for {CAMPAIGN_DAYS} days: hundreds of "
        "messages. Moving that many needs a second person. —"
    )
    since = len(state.responses(ANALYST))
    request = await _confirm_inline(player, BIG_MOVE)
    await _wait(lambda: _said(state, ANALYST, since, "Waiting for approval"), conversation)
    conversation.say("\n— The analyst cannot approve their own request: —")
    since = len(state.responses(ANALYST))
    await player.press_on_message(request, _button(request.blocks, ActionId.APPROVE_JOB))
    await _wait(lambda: _said(state, ANALYST, since, "Not done"), conversation)
    conversation.say(f"\n— @{LEAD}, the incident lead, reads the request and approves it. —")
    posted = len(state.top_level(CHANNEL))
    with player.acting_as(LEAD):
        await player.press_on_message(request, _button(request.blocks, ActionId.APPROVE_JOB))

    def card() -> Message | None:
        return next(
            (m for m in state.top_level(CHANNEL)[posted:] if _card_of({"metadata": m.metadata})), None
        )

    job_card = await _wait(card, conversation)
    await _wait(lambda: _approved_with_card(state, request.ts), conversation)
    await _wait(lambda: _card_finished(state, job_card.ts), conversation, timeout=90)


async def play_incident(player: Player) -> None:
    """The scripted incident: help, a confirmed move, a big move approved by a second analyst, a release
    confirmed then cancelled, the job list."""
    conversation, state = player.conversation, player.state
    conversation.say("— A phishing wave hits #incident. The analyst asks Sweep for help. —")
    await player.slash("help")
    await _wait(lambda: state.responses(ANALYST), conversation)
    conversation.say("\n— They sweep the phish into Deleted Items. —")
    move_ts = await _create_inline(
        player, 'move subject:"invoice" since:7d to:deleted comment:"phish wave INC-4711"'
    )
    await _wait(lambda: _card_finished(state, move_ts), conversation, timeout=90)
    await _approve_big_move(player)
    conversation.say(
        "\n— A release goes out by mistake (Slack asks to confirm it first); the analyst cancels it. —"
    )
    release_ts = await _create_inline(player, "release subject:newsletter since:3d")
    message = state.message(CHANNEL, release_ts)
    cancel = next(
        b for b in _buttons(message.blocks if message else []) if b.get("action_id") == ActionId.CANCEL_JOB
    )
    await player.press_on_card(release_ts, cancel)
    await _wait(lambda: _card_finished(state, release_ts), conversation, timeout=60)
    conversation.say("\n— Finally, what has Sweep done today? —")
    responses = len(state.responses(ANALYST))
    await player.slash("list")
    await _wait(lambda: state.responses(ANALYST)[responses:], conversation)


# ---------------------------------------------------------------------------- the interactive demo


@dataclass
class Terminal:
    """Reads the person's lines without blocking the loop, so Slack's events print as they arrive."""

    conversation: Conversation
    stdin: TextIO
    _lines: asyncio.Queue[str | None] | None = None

    def _start(self) -> asyncio.Queue[str | None]:
        # A daemon thread, not the loop's executor: a read blocked on the terminal must not keep
        # the process alive after Ctrl-C.
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()

        def pump() -> None:
            for line in iter(self.stdin.readline, ""):
                loop.call_soon_threadsafe(lines.put_nowait, line)
            loop.call_soon_threadsafe(lines.put_nowait, None)

        threading.Thread(target=pump, name="demo stdin", daemon=True).start()
        return lines

    async def read(self, prompt: str = PROMPT) -> str | None:
        """Return the next line (None at end of input), showing `prompt`; events print meanwhile."""
        if self._lines is None:
            self._lines = self._start()
        self.conversation.prompt(prompt)
        line = await self._lines.get()
        self.conversation.at_prompt = False
        if line is None:
            self._lines.put_nowait(None)  # every later read sees the end of input too
        return line.strip() if line is not None else None

    async def confirm(self, dialog: JsonDict) -> bool:
        """Ask the person to answer a confirmation dialog (y/N)."""
        confirm = _label({"text": dialog.get("confirm")}) or "Yes"
        deny = _label({"text": dialog.get("deny")}) or "No"
        answer = await self.read(f"y = [ {confirm} ], n = [ {deny} ] (y/N)? ")
        return (answer or "").lower() in {"y", "yes"}


async def _printer(conversation: Conversation) -> None:
    while True:
        conversation.pump()
        await asyncio.sleep(0.1)


async def _settle(conversation: Conversation, before: int) -> None:
    """Wait (briefly) for Slack's answer to what was just typed, so the prompt comes after it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while len(conversation.state.events) == before and loop.time() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)
    conversation.pump()


async def interactive(player: Player, terminal: Terminal) -> None:
    """Let the person type `/sweep …` lines, press buttons and fill in forms, until `quit` or end of input."""
    conversation = player.conversation
    conversation.say(INTRO)
    printer = asyncio.create_task(_printer(conversation), name="demo printer")
    try:
        while True:
            line = await terminal.read()
            if line is None or line in {"quit", "exit"}:
                return
            before, sent = len(conversation.state.events), player.sent
            problem = await _handle(player, line)
            if problem:
                conversation.say(problem)
            elif player.sent > sent:
                await _settle(conversation, before)
    finally:
        printer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await printer
        conversation.pump()


async def _handle(player: Player, line: str) -> str | None:
    """Act on one typed line; return what was wrong with it, or None."""
    if not line:
        return None
    if line.startswith("/sweep"):
        await player.slash(line[len("/sweep") :].strip())
        return None
    try:
        words = shlex.split(line)
    except ValueError as error:
        return f"Could not read that line ({error})."
    if words[0] == "as":
        parts = line.split(None, 2)
        who = parts[1].upper() if len(parts) > 1 else ""
        if len(parts) < 3 or not _USER_RE.fullmatch(who):
            return f"Say who and what: as {LEAD} press approve (a Slack user id, then a line)."
        with player.acting_as(who):
            return await _handle(player, parts[2])
    if words[0] == "press" and len(words) > 1:
        return await player.press_named(words[1:])
    if words[0] == "set" and len(words) > 1:
        name, _, raw = line.split(None, 1)[1].partition(" ")
        return await player.set_field(name, raw.strip().strip('"'))
    if words[0] == "show":
        view = player.open_view()
        if view is None:
            return "No form is open: /sweep new opens one."
        player.conversation.say(
            f"\n[form]\n{render_view(view.view, prefix='  ', state=player.view_state(view))}"
        )
        return None
    return (
        "Commands start with /sweep; also: press <button> [card #], set <field> <value>, show, "
        "as <user> <line>, quit."
    )


# ---------------------------------------------------------------------------- entry point


@contextlib.contextmanager
def _bot_log(workdir: Path, *, verbose: bool) -> Iterator[Path | None]:
    """Send the bot's log to a file in `workdir` (or leave it on stderr when `verbose`)."""
    if verbose:
        yield None
        return
    root = logging.getLogger()
    saved = root.handlers[:]
    path = workdir / LOG_NAME
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    try:
        yield path
    finally:
        root.handlers[:] = saved
        handler.close()


async def run_demo(
    *,
    interactive_mode: bool = False,
    keep: bool = False,
    verbose: bool = False,
    out: TextIO = sys.stdout,
    stdin: TextIO = sys.stdin,
) -> int:
    """Play the demo; return the exit code. Its temporary files go unless `keep` (or the demo failed)."""
    workdir = Path(tempfile.mkdtemp(prefix="sweep-demo-"))
    failed, code = True, 0
    try:
        with _bot_log(workdir, verbose=verbose):
            await _play(workdir, interactive_mode=interactive_mode, out=out, stdin=stdin)
        failed = False
    except asyncio.CancelledError:
        # Ctrl-C (asyncio.run cancels this task): a way to end the demo, not a failure to report.
        failed, code = False, 130
    finally:
        if failed:
            print(
                f"\nThe demo failed; its files are kept in {workdir} (the bot's log: {LOG_NAME}).", file=out
            )
        elif keep:
            log = f" and {workdir / LOG_NAME} (the bot's log)" if not verbose else ""
            print(f"\nKept {workdir / DATABASE_NAME} (jobs, audit log, outbox){log}.", file=out)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            print(
                "\nThe demo removed its temporary files (--keep keeps the database and the bot's log).",
                file=out,
            )
    return code


async def _play(workdir: Path, *, interactive_mode: bool, out: TextIO, stdin: TextIO) -> None:
    async with demo_stack(workdir) as (sim, slack, _runtime, events_url):
        conversation = Conversation(slack.state, out)
        conversation.say(
            f"Sweep demo — offline. Cloudflare simulator: {sim.base_url}\n"
            f"Local Slack Web API: {slack.api_url}\nSweep (HTTP mode): {events_url}\n"
            f"You are @{ANALYST}, an operator, in #{CHANNEL}; so is @{LEAD}, the incident lead,\n"
            "who approves what needs a second person."
        )
        async with SlackDriver(
            events_url, DEMO_SECRET, slack.state, user_id=ANALYST, channel_id=CHANNEL
        ) as driver:
            if interactive_mode:
                terminal = Terminal(conversation, stdin)
                await interactive(Player(driver, conversation, terminal.confirm), terminal)
            else:
                await play_incident(Player(driver, conversation, _accept))
            conversation.pump()
