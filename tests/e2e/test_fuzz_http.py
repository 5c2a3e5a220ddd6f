"""Hypothesis through the bot's HTTP endpoint: random `/sweep` text, create-form submissions and requests.

An operator in an allowed channel sends them, signed exactly as Slack does, so the whole parse path
runs (grammar or form, policy, preview search against the simulator, block builders). For every
example: HTTP 200 (never 500), every reply the bot sends (ack bodies, response_url messages, opened and
updated views) passes `validate_message` / `validate_view`, and no user-supplied `<!channel>`, `<@U…>`
or `<http…|…>` reaches a mrkdwn text unescaped. Nothing is ever confirmed: inline creates only preview,
so no job is created.

Then requests Slack would never send: any timestamp that is not Slack's (correctly signed over it)
is 401 and sends nothing anywhere; any payload shape, signed, is answered (400 when Sweep cannot use
it), never 500; unsigned, it is 401.

Functional examples check answers, not time; Slack's 3 s deadline is checked by the dedicated
`test_*_acknowledged_within_3_s` tests (the largest inputs, one at a time).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import string
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from blocks.validate import validate_message, validate_view
from bot.devslack.driver import DriverResponse
from bot.ids import ActionId, BlockId, CallbackId
from tests.e2e.conftest import CHANNEL, OPERATOR, SIGNING_SECRET, Stack, wait_until
from tests.support import mrkdwn_texts

pytestmark = pytest.mark.asyncio(loop_scope="module")

ACK_DEADLINE = 3.0
FORM = "application/x-www-form-urlencoded"
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
    """Check the HTTP answer itself: 200 and a valid body; return the body (time: see the ack tests)."""
    assert response.status == 200, f"{where}: HTTP {response.status}: {response.body[:500]}"
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


# ---------------------------------------------------------------------------- requests Slack never sends


def _signed_headers(body: bytes, timestamp: str, content_type: str = FORM) -> dict[str, str]:
    base = b"v0:" + timestamp.encode() + b":" + body
    digest = hmac.new(SIGNING_SECRET.encode(), base, hashlib.sha256).hexdigest()
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
    }


def _is_slacks_timestamp(text: str) -> bool:
    return re.fullmatch(r"[0-9]{1,12}", text) is not None and abs(int(text) - time.time()) <= 300


_header_text = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=40
) | st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12).map(
    lambda t: t.strip()
)
malformed_timestamp = st.one_of(
    _header_text,
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    # Well past Slack's 5-minute window: the example is generated before it is sent, and on a loaded
    # machine the gap between the two must not bring a "stale" timestamp back inside the window.
    st.integers(min_value=400, max_value=10**9).map(lambda d: str(int(time.time()) + d)),
    st.integers(min_value=400, max_value=10**9).map(lambda d: str(int(time.time()) - d)),
    st.builds(
        lambda prefix, suffix: f"{prefix}{int(time.time())}{suffix}",
        st.sampled_from(["", "+", "-", "0" * 3, "0x", "v"]),
        st.sampled_from(["", ".0", ".5", "e0", "_0", "0", "L", " 1"]),
    ),
    st.integers(min_value=13, max_value=600).map(lambda n: "9" * n),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
).filter(lambda t: not _is_slacks_timestamp(t))


def _answered_at(stack: Stack, response_url: str) -> list[Any]:
    """Return what the bot posted to this response_url (tokens are unique per request)."""
    token = response_url.rsplit("/", 1)[-1]
    return [r for r in stack.slack.state.responses() if r.token == token]


@settings(FUZZ_SETTINGS, max_examples=60)
@given(timestamp=malformed_timestamp, interaction=st.booleans())
async def test_any_timestamp_that_is_not_slacks_is_401_and_sends_nothing(
    stack: Stack, timestamp: str, interaction: bool
) -> None:
    state = stack.slack.state
    response_url = state.new_response_url(source="commands", channel_id=CHANNEL, user_id=OPERATOR)
    if interaction:
        payload = {
            "type": "block_actions",
            "user": {"id": OPERATOR},
            "channel": {"id": CHANNEL},
            "response_url": response_url,
            "actions": [{"action_id": ActionId.LIST_PAGE, "value": "{}", "type": "button", "block_id": "b"}],
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
    else:
        fields = state.slash_command_payload(
            "list", user_id=OPERATOR, channel_id=CHANNEL, channel_name="incident"
        )
        body = urlencode({**fields, "response_url": response_url}).encode()
    response = await stack.driver.raw(body, _signed_headers(body, timestamp))
    assert response.status == 401, f"timestamp {timestamp!r}: HTTP {response.status}"
    # (A refusal is answered before anything could be sent: this request's response_url is proof
    # enough here; test_verification also checks the Web API with nothing else in flight.)
    assert _answered_at(stack, response_url) == [], f"timestamp {timestamp!r}: the bot answered"


_ids = st.sampled_from([OPERATOR, CHANNEL, "", "U", None, 0, [], {}]) | st.text(max_size=8)
interaction_shape = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["block_actions", "view_submission", "view_closed", "shortcut", "x", ""])
        | garbage,
        "user": st.fixed_dictionaries({}, optional={"id": _ids}) | garbage,
        "channel": st.fixed_dictionaries({}, optional={"id": _ids}) | garbage,
        "actions": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "action_id": st.sampled_from([a.value for a in ActionId]) | _ids,
                    "value": garbage.map(json.dumps) | st.text(max_size=20),
                    "type": st.just("button"),
                },
            )
            | garbage,
            max_size=2,
        )
        | garbage,
        "view": st.fixed_dictionaries(
            {},
            optional={
                "id": _ids,
                "type": st.sampled_from(["modal", "home"]) | _ids,
                "callback_id": st.sampled_from([c.value for c in CallbackId]) | _ids,
                "state": garbage,
                "private_metadata": garbage.map(json.dumps) | st.text(max_size=20),
            },
        )
        | garbage,
    },
)
payload_text = st.one_of(
    interaction_shape.map(json.dumps),
    garbage.map(json.dumps),
    st.text(max_size=60),
    st.sampled_from(["null", "[1,2]", '"x"', "{not-json", "{}", "true", "1e999"]),
)
raw_body = st.one_of(
    payload_text.map(lambda text: urlencode({"payload": text}).encode()),
    st.binary(max_size=200),
    st.dictionaries(
        st.sampled_from(["command", "user_id", "channel_id", "text", "payload", "ssl_check", "x"]),
        st.sampled_from(["", "/sweep", OPERATOR, CHANNEL, "help", "1"]) | st.text(max_size=10),
        max_size=5,
    ).map(lambda fields: urlencode(fields).encode()),
    garbage.map(lambda value: json.dumps(value).encode()),
)


# Shaped like what Slack sends, so Bolt and the listeners run, with garbage in every value they read.
well_formed_interaction = st.one_of(
    st.builds(
        lambda action_id, value, channel: {
            "type": "block_actions",
            "user": {"id": OPERATOR},
            "channel": {"id": channel},
            "container": {
                "type": "message",
                "message_ts": "1.2",
                "channel_id": channel,
                "is_ephemeral": True,
            },
            "trigger_id": "1.2.3",
            "actions": [{"action_id": action_id, "value": value, "type": "button", "block_id": "b"}],
        },
        st.sampled_from([a.value for a in ActionId]),
        garbage.map(json.dumps) | st.text(max_size=30),
        st.sampled_from([CHANNEL, "C0RANDOM", "D0DM"]),
    ),
    st.builds(
        lambda callback_id, values, metadata: {
            "type": "view_submission",
            "user": {"id": OPERATOR},
            "trigger_id": "1.2.3",
            "view": {
                "id": "V0FUZZ",
                "type": "modal",
                "callback_id": callback_id,
                "state": {"values": values},
                "private_metadata": metadata,
            },
        },
        st.sampled_from([c.value for c in CallbackId]),
        garbage,
        garbage.map(json.dumps) | st.text(max_size=30),
    ),
)
request = st.one_of(
    well_formed_interaction,
    st.tuples(raw_body, st.sampled_from([FORM, FORM, "application/json", "text/plain", ""])),
)


@settings(FUZZ_SETTINGS, max_examples=80)
@given(request=request)
async def test_any_body_signed_is_answered_never_500_and_unsigned_is_401(
    stack: Stack, request: dict[str, Any] | tuple[bytes, str]
) -> None:
    response_url = None
    if isinstance(request, dict):  # Slack's shape: give it a response_url of its own, as Slack does
        response_url = stack.slack.state.new_response_url(
            source="actions", channel_id=CHANNEL, user_id=OPERATOR
        )
        if request["type"] == "block_actions":
            request["response_url"] = response_url
        body, content_type = urlencode({"payload": json.dumps(request)}).encode(), FORM
    else:
        body, content_type = request
    unsigned = await stack.driver.raw(
        body, {"Content-Type": content_type, "X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00"}
    )
    assert unsigned.status == 401, f"unsigned {body[:120]!r}: HTTP {unsigned.status}"
    if response_url is not None:
        assert _answered_at(stack, response_url) == [], "the bot answered an unsigned request"
    headers = _signed_headers(body, str(int(time.time())), content_type)
    if not content_type:
        del headers["Content-Type"]
    signed = await stack.driver.raw(body, headers)
    event(f"signed: HTTP {signed.status}")
    # 400: not a request Sweep can use; 404: well formed, but no listener (Bolt); 200: a listener answered.
    assert signed.status in {200, 400, 404}, (
        f"signed {body[:200]!r}: HTTP {signed.status}: {signed.body[:300]}"
    )


# ---------------------------------------------------------------------------- Slack's 3 s deadline


@pytest.mark.parametrize(
    "text",
    [
        "help",
        "list",
        "move subject:" + "<!channel>" * 1000 + " to:junk",
        "release query:" + "é" * 10_000,
        "status " + "x" * 10_000,
        "frob " + "💣" * 5_000,
    ],
    ids=["help", "list", "10,000 chars of markup", "10,000 accented", "long status", "5,000 emoji"],
)
async def test_slash_commands_are_acknowledged_within_3_s(stack: Stack, text: str) -> None:
    response = await stack.driver.slash(text)
    assert response.status == 200
    assert response.elapsed < ACK_DEADLINE, f"ack took {response.elapsed:.2f} s"


async def test_a_large_form_submission_is_acknowledged_within_3_s(stack: Stack) -> None:
    _, view = await create_form(stack)
    values = {
        block_id: {action_id: {"type": "plain_text_input", "value": "<!channel>é" * 300}}
        for block_id, action_id in TEXT_ACTIONS.items()
    }
    response = await submit(stack, view, values)
    assert response.status == 200
    assert response.elapsed < ACK_DEADLINE, f"ack took {response.elapsed:.2f} s"


# ---------------------------------------------------------------------------- afterwards


async def test_nothing_random_created_a_job_and_the_bot_is_alive(stack: Stack) -> None:
    stats = await stack.sim.stats()
    assert stats["jobs_created"] == 0, stats
    assert not stack.slack.state.calls("chat.postMessage"), "no card was posted"
    assert stack.bot.process is not None and stack.bot.process.poll() is None
    response = await stack.driver.slash("help")
    assert response.status == 200
    logs = stack.bot.logs()
    assert "unexpected error on an unverified request" not in logs
    assert " ERROR " not in logs, [line for line in logs.splitlines() if " ERROR " in line][:5]
