"""Hypothesis through the bot's HTTP endpoint: random `/sweep` text and random create-form submissions.

An operator in an allowed channel sends them, signed exactly as Slack does, so the whole parse path
runs (grammar or form, policy, preview search against the simulator, block builders). For every
example: HTTP 200 (never 500), acknowledged within Slack's 3 s, every reply the bot sends (ack bodies,
response_url messages, opened and updated views) passes `validate_message` / `validate_view`, and no
user-supplied `<!channel>`, `<@U…>` or `<http…|…>` reaches a mrkdwn text unescaped. Nothing is ever
confirmed: inline creates only preview, so no job is created.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from blocks.validate import validate_message, validate_view
from bot.devslack.driver import DriverResponse
from bot.ids import ActionId, BlockId, CallbackId
from tests.e2e.conftest import CHANNEL, OPERATOR, Stack, wait_until
from tests.support import mrkdwn_texts

pytestmark = pytest.mark.asyncio(loop_scope="module")

ACK_DEADLINE = 3.0
REPLY_TIMEOUT = 15.0

# Mrkdwn the bot writes itself: the requester's mention and links to allowed channels.
_OWN_TOKENS = re.compile(rf"<@{OPERATOR}>|<#{CHANNEL}>|<#C0SECOND>")
# Anything else that Slack would turn into a ping, a mention or a link.
_LIVE_MARKUP = re.compile(r"<[!@#]|<(?:https?|mailto|tel|slack):", re.IGNORECASE)

FUZZ_SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# ---------------------------------------------------------------------------- strategies

MARKUP = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U1>",
    "<@U999EVIL>",
    "<@W0ADMIN|admin>",
    "<#C0EVIL|general>",
    "<!subteam^S0SOC>",
    "<https://x|y>",
    "<https://evil.example/login|https://bank.example>",
    "<http://evil.example>",
    "<mailto:a@b.example|a@b.example>",
    "&lt;!channel&gt;",
    "&amp;lt;!here&amp;gt;",
    "*bold*",
    "_it_",
    "~strike~",
    "`code`",
    "```block```",
    ">quote",
    "\\",
    '"',
    "\u201c",
    "\u201d",
    "'",
    ":",
    "::",
    "&",
    "<",
    ">",
    "|",
]
KEYS = [
    "sender",
    "from",
    "recipient",
    "domain",
    "subject",
    "exact_subject",
    "exact-subject",
    "message_id",
    "alert_id",
    "query",
    "final_disposition",
    "disposition",
    "delivery_status",
    "start",
    "end",
    "since",
    "detections_only",
    "comment",
    "to",
    "folder",
    "status",
    "action",
    "sendr",
    "x",
]
VERBS = ["move", "release", "list", "status", "cancel", "watch", "help", "new", "MOVE", "Release", "frob"]
VALUES = [
    "invoice",
    "a@b.example",
    "evil.example",
    "junk",
    "deleted",
    "purge",
    "inbox",
    "24h",
    "7d",
    "2026-11-20",
    "2026-11-20T08:00Z",
    "yes",
    "no",
    "MALICIOUS",
    "delivered",
    "processing",
    "00000000-0000-4000-8000-000000000000",
]

unicode_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60
)  # lone surrogates cannot be form-encoded as UTF-8, so Slack never sends them
atom = st.one_of(st.sampled_from(MARKUP), st.sampled_from(VALUES), unicode_text)
value = st.lists(atom, min_size=1, max_size=4).map("".join)


@st.composite
def pair(draw: st.DrawFn) -> str:
    """One `key:value` word, sometimes quoted, sometimes with a space after the colon."""
    key = draw(st.sampled_from(KEYS))
    raw = draw(value)
    quoted = draw(st.booleans())
    if quoted:
        raw = '"' + raw.replace("\\", "\\\\").replace('"', '\\"') + '"'
    separator = draw(st.sampled_from([":", ": ", ":"]))
    return f"{key}{separator}{raw}"


structured = st.builds(
    lambda verb, words: " ".join([verb, *words]),
    st.sampled_from(VERBS),
    st.lists(st.one_of(pair(), atom), max_size=6),
)
huge = st.builds(
    lambda verb, key, chunk, repeat: f"{verb} {key}:{chunk * repeat}",
    st.sampled_from(["move", "release", "list", "status"]),
    st.sampled_from(KEYS),
    st.sampled_from(["x", "<!channel>", "é", "💣", '"', "a b ", "&lt;"]),
    st.integers(min_value=500, max_value=10_000),
)
# Printable text (no control or format characters) and mrkdwn markup: values the grammar accepts, so
# these commands get past parsing to the preview search and the preview's builders.
printable = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp")), max_size=40)
clean_value = st.lists(st.one_of(st.sampled_from(MARKUP), printable), min_size=1, max_size=4).map("".join)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def plausible_create(draw: st.DrawFn) -> str:
    """A move or release that parses: one to three text filters, maybe a comment and a folder."""
    verb = draw(st.sampled_from(["move", "release"]))
    keys = draw(
        st.lists(
            st.sampled_from(["subject", "exact_subject", "query", "alert_id", "domain"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    words = [verb, *(f"{key}:{_quote(draw(clean_value)[:90])}" for key in keys)]
    if draw(st.booleans()):
        words.append(f"comment:{_quote(draw(clean_value)[:400])}")
    if draw(st.booleans()):
        words.append(
            draw(st.sampled_from(["since:24h", "since:30d", "detections_only:yes", "disposition:SPAM"]))
        )
    if verb == "move":
        words.append(f"to:{draw(st.sampled_from(['junk', 'deleted', 'inbox', 'purge']))}")
    return " ".join(words)


slash_text = st.one_of(
    plausible_create(),
    plausible_create(),
    structured,
    unicode_text,
    huge,
    st.lists(atom, max_size=8).map(" ".join),
)

json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), unicode_text, st.sampled_from(MARKUP)
)
garbage = st.recursive(
    json_scalar,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)

# ---------------------------------------------------------------------------- reply checks


def assert_no_live_markup(texts: list[str], where: str) -> None:
    """Fail when a mrkdwn text holds a mention or link that Sweep did not write itself."""
    for text in texts:
        stripped = _OWN_TOKENS.sub("", text)
        match = _LIVE_MARKUP.search(stripped)
        assert match is None, f"{where}: unescaped markup {stripped[match.start() : match.start() + 40]!r}"


def check_message(payload: dict[str, Any], where: str) -> None:
    """Validate a message payload and check it escapes user markup (fallback text is mrkdwn too)."""
    validate_message(payload)
    assert_no_live_markup([str(payload.get("text", "")), *mrkdwn_texts(payload.get("blocks"))], where)


def check_view(view: dict[str, Any], where: str) -> None:
    """Validate a modal and check its mrkdwn."""
    validate_view(view)
    assert_no_live_markup(mrkdwn_texts(view.get("blocks")), where)


def sent_view(params: dict[str, Any]) -> dict[str, Any]:
    """Return the `view` a views.open/views.update call carried (form bodies hold it as JSON text)."""
    view = params.get("view")
    parsed = json.loads(view) if isinstance(view, str) else view
    assert isinstance(parsed, dict), params
    return parsed


def check_ack(response: DriverResponse, where: str) -> dict[str, Any]:
    """Check the HTTP answer itself: 200, in time, and a valid body; return the body."""
    assert response.status == 200, f"{where}: HTTP {response.status}: {response.body[:500]}"
    assert response.elapsed < ACK_DEADLINE, f"{where}: ack took {response.elapsed:.2f} s"
    body = response.json()
    assert isinstance(body, dict)
    return body


# ---------------------------------------------------------------------------- slash commands


@settings(FUZZ_SETTINGS, max_examples=40)
@given(text=slash_text)
async def test_random_slash_commands_never_break_the_bot_or_its_replies(stack: Stack, text: str) -> None:
    state = stack.slack.state
    responses_before = len(state.responses(OPERATOR))
    opens_before = len(state.calls("views.open"))
    response = await stack.driver.slash(text)
    where = f"/sweep {text[:80]!r}"
    body = check_ack(response, where)
    if body.get("text") or body.get("blocks"):
        event("answered in the ack")
        check_message(body, f"{where} (ack)")
        return
    # An empty ack means the bot answers later: one response_url message, or a modal for `new`.
    await wait_until(
        lambda: (
            len(state.responses(OPERATOR)) > responses_before or len(state.calls("views.open")) > opens_before
        ),
        timeout=REPLY_TIMEOUT,
        what=f"an answer to {where}",
    )
    for reply in state.responses(OPERATOR)[responses_before:]:
        event("preview" if ActionId.CONFIRM_CREATE in json.dumps(reply.blocks) else "answered later")
        check_message(reply.body, f"{where} (response_url)")
    for call in state.calls("views.open")[opens_before:]:
        assert call.ok, f"{where}: views.open failed with {call.error}"
        check_view(sent_view(call.params), f"{where} (views.open)")


# ---------------------------------------------------------------------------- the create form


class Form:
    """The create form as the bot opened it, reset before every example (so each starts from the form)."""

    view_id: str | None = None
    payload: dict[str, Any] = {}


async def create_form(stack: Stack) -> tuple[str, dict[str, Any]]:
    """Open the create form once per module; afterwards put it back on screen as first opened."""
    state = stack.slack.state
    if Form.view_id is None:
        before = len(state.calls("views.open"))
        response = await stack.driver.slash("new")
        assert response.status == 200
        await wait_until(lambda: len(state.calls("views.open")) > before, what="the create form")
        view = [v for v in state.views(OPERATOR) if v.callback_id == CallbackId.CREATE_FORM][-1]
        Form.view_id, Form.payload = view.id, dict(view.view)
        check_view(sent_view(state.calls("views.open")[before].params), "the create form")
    stored = state.replace_view(Form.view_id, Form.payload)
    stored.closed = False
    return Form.view_id, stored.view


TEXT_ACTIONS = {
    BlockId.SENDER: ActionId.SENDER,
    BlockId.RECIPIENT: ActionId.RECIPIENT,
    BlockId.DOMAIN: ActionId.DOMAIN,
    BlockId.SUBJECT: ActionId.SUBJECT,
    BlockId.EXACT_SUBJECT: ActionId.EXACT_SUBJECT,
    BlockId.MESSAGE_ID: ActionId.MESSAGE_ID,
    BlockId.ALERT_ID: ActionId.ALERT_ID,
    BlockId.QUERY: ActionId.QUERY,
    BlockId.COMMENT: ActionId.COMMENT,
}
SELECTS = {
    BlockId.ACTION: (ActionId.ACTION_SELECT, "radio_buttons", ["MOVE", "RELEASE", "SMASH", ""]),
    BlockId.DESTINATION: (
        ActionId.DESTINATION,
        "static_select",
        ["Inbox", "JunkEmail", "DeletedItems", "RecoverableItemsPurges", "Attic"],
    ),
    BlockId.FINAL_DISPOSITION: (ActionId.FINAL_DISPOSITION, "static_select", ["any", "MALICIOUS", "BOGUS"]),
    BlockId.DELIVERY_STATUS: (ActionId.DELIVERY_STATUS, "static_select", ["any", "delivered", "lost"]),
}
form_text = st.one_of(
    value, st.sampled_from(["invoice", "a@b.example", "<abc@mail.example>"]), st.text(max_size=600)
)


def _option(choice: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": choice or " ", "emoji": True}, "value": choice}


@st.composite
def plausible_form(draw: st.DrawFn) -> dict[str, Any]:
    """A submission a person could make: valid choices, one to three filters of printable text."""
    action = draw(st.sampled_from(["MOVE", "RELEASE"]))
    values: dict[str, Any] = {
        BlockId.ACTION: {
            ActionId.ACTION_SELECT: {"type": "radio_buttons", "selected_option": _option(action)}
        }
    }
    if action == "MOVE":
        folder = draw(st.sampled_from(["Inbox", "JunkEmail", "DeletedItems", "RecoverableItemsPurges"]))
        values[BlockId.DESTINATION] = {
            ActionId.DESTINATION: {"type": "static_select", "selected_option": _option(folder)}
        }
    fields = [BlockId.SUBJECT, BlockId.EXACT_SUBJECT, BlockId.QUERY, BlockId.ALERT_ID, BlockId.DOMAIN]
    for block_id in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True)):
        text = draw(clean_value)[:90]
        values[block_id] = {TEXT_ACTIONS[block_id]: {"type": "plain_text_input", "value": text}}
    if draw(st.booleans()):
        comment = draw(st.lists(clean_value, max_size=3).map("\n".join))[:450]
        values[BlockId.COMMENT] = {ActionId.COMMENT: {"type": "plain_text_input", "value": comment}}
    if draw(st.booleans()):
        ticked = [_option("detections_only")] if draw(st.booleans()) else []
        values[BlockId.DETECTIONS_ONLY] = {
            ActionId.DETECTIONS_ONLY: {"type": "checkboxes", "selected_options": ticked}
        }
    return values


@st.composite
def chaotic_form(draw: st.DrawFn) -> Any:
    """Slack-shaped `view.state.values` with odd choices and garbage anywhere, or not even a mapping."""
    if draw(st.integers(0, 9)) == 0:
        return draw(garbage)
    values: dict[str, Any] = {}

    def maybe_garbage(normal: Any) -> Any:
        return draw(garbage) if draw(st.integers(0, 9)) == 0 else normal

    for block_id, (action_id, kind, choices) in SELECTS.items():
        if draw(st.integers(0, 5)) == 0:
            continue
        choice = draw(st.sampled_from(choices))
        values[block_id] = maybe_garbage(
            {action_id: maybe_garbage({"type": kind, "selected_option": _option(choice)})}
        )
    for block_id, action_id in TEXT_ACTIONS.items():
        if draw(st.booleans()):
            continue
        values[block_id] = maybe_garbage(
            {action_id: maybe_garbage({"type": "plain_text_input", "value": draw(form_text)})}
        )
    for block_id, action_id in ((BlockId.START, ActionId.START), (BlockId.END, ActionId.END)):
        if draw(st.booleans()):
            continue
        moment = draw(
            st.one_of(
                st.integers(1_700_000_000, 1_900_000_000),
                st.integers(),
                st.sampled_from(["1763000000", "soon", None]),
            )
        )
        values[block_id] = maybe_garbage(
            {action_id: {"type": "datetimepicker", "selected_date_time": maybe_garbage(moment)}}
        )
    if draw(st.booleans()):
        ticked = [_option("detections_only")] if draw(st.booleans()) else []
        values[BlockId.DETECTIONS_ONLY] = maybe_garbage(
            {ActionId.DETECTIONS_ONLY: {"type": "checkboxes", "selected_options": maybe_garbage(ticked)}}
        )
    for _ in range(draw(st.integers(0, 2))):
        values[draw(st.text(string.ascii_lowercase, max_size=10))] = draw(garbage)
    return values


async def submit(stack: Stack, view: dict[str, Any], values: Any) -> DriverResponse:
    """Submit the form with these state values (the driver's fake only stores mapping-shaped ones)."""
    if isinstance(values, dict):
        return await stack.driver.view_submission(view, values)
    driver = stack.driver
    payload = {
        "type": "view_submission",
        "team": {"id": driver.team_id, "domain": stack.slack.state.team_domain},
        "user": {
            "id": OPERATOR,
            "username": OPERATOR.lower(),
            "name": OPERATOR.lower(),
            "team_id": driver.team_id,
        },
        "api_app_id": stack.slack.state.app_id,
        "token": "verification-token-unused",
        "trigger_id": stack.slack.state.issue_trigger_id(OPERATOR),
        "view": {**view, "state": {"values": values}},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return await driver.send_payload(payload)


@settings(FUZZ_SETTINGS, max_examples=30)
@given(values=st.one_of(plausible_form(), chaotic_form()))
async def test_random_create_form_submissions_never_break_the_bot_or_its_views(
    stack: Stack, values: Any
) -> None:
    state = stack.slack.state
    view_id, view = await create_form(stack)
    updates_before = len(state.calls("views.update"))
    response = await submit(stack, view, values)
    where = f"form {json.dumps(values, default=str)[:200]}"
    body = check_ack(response, where)
    action = body.get("response_action")
    assert action in {"errors", "update"}, f"{where}: {body}"
    event(f"response_action {action}")
    if action == "errors":
        errors = body.get("errors")
        assert isinstance(errors, dict) and errors, body
        form_blocks = {b.get("block_id") for b in view["blocks"]}
        assert set(errors) <= form_blocks, f"{where}: errors for blocks not in the form: {set(errors)}"
        assert all(isinstance(m, str) and 0 < len(m) <= 2000 for m in errors.values()), errors
        return
    check_view(body["view"], f"{where} (ack view)")
    if "Counting the messages" not in json.dumps(body["view"]):
        return  # a final answer (e.g. garbled form): nothing follows
    # The preview search runs after the ack, then the modal is updated with the preview (or an error).
    call = await wait_until(
        lambda: next(
            (c for c in state.calls("views.update")[updates_before:] if c.params.get("view_id") == view_id),
            None,
        ),
        timeout=REPLY_TIMEOUT,
        what=f"the preview of {where}",
    )
    assert call.ok, f"{where}: views.update failed with {call.error}: {call.response}"
    update = sent_view(call.params)
    event(f"then {update.get('callback_id')}")
    check_view(update, f"{where} (views.update)")
    assert update.get("callback_id") in {CallbackId.CREATE_PREVIEW, CallbackId.CREATE_STATUS}


# ---------------------------------------------------------------------------- afterwards


async def test_nothing_random_created_a_job_and_the_bot_is_alive(stack: Stack) -> None:
    stats = await stack.sim.stats()
    assert stats["jobs_created"] == 0, stats
    assert not stack.slack.state.calls("chat.postMessage"), "no card was posted"
    assert stack.bot.process is not None and stack.bot.process.poll() is None
    response = await stack.driver.slash("help")
    assert response.status == 200 and response.elapsed < ACK_DEADLINE
