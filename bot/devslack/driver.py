"""Send requests to the bot exactly as Slack does: signed slash commands, block actions, view submissions.

Payload shapes follow what Slack sends (checked against slack-bolt 1.30's parsers): a slash command is
a form body; interactions are a form body with one `payload=<json>` field. Trigger ids and response URLs
come from the fake Slack, so `views.open` and `respond()` land there. With `apply_slack_side=True`
(default) the driver also does what Slack does with the bot's answer: a slash command's ack body is
shown to the user, a view submission's `response_action` updates, pushes, clears or flags the modal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlencode

import httpx

from bot.devslack.server import RunningFakeSlack
from bot.devslack.state import FakeSlack, JsonDict

__all__ = ["ACK_DEADLINE", "DriverResponse", "SlackDriver", "bolt_ack_body", "sign"]

#: Slack shows the user an error when the app does not answer within 3 seconds.
ACK_DEADLINE = 3.0
FORM = "application/x-www-form-urlencoded"
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


def sign(secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """Return Slack's signature headers for `body` sent at `timestamp` (unix seconds)."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": f"v0={digest}"}


@dataclass(frozen=True)
class DriverResponse:
    """The bot's HTTP answer to one request, and how long it took."""

    status: int
    body: str
    elapsed: float
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def too_slow(self) -> bool:
        """Return True when Slack would have given up waiting (more than 3 s)."""
        return self.elapsed > ACK_DEADLINE

    def json(self) -> Any:
        """Return the body parsed as JSON ({} when empty)."""
        return json.loads(self.body) if self.body.strip() else {}


def bolt_ack_body(resp: DriverResponse) -> JsonDict:
    """Return the ack body Bolt sent (e.g. `{"response_action": "errors", "errors": {…}}`), {} when empty."""
    if not resp.body.strip():
        return {}
    try:
        parsed = json.loads(resp.body)
    except json.JSONDecodeError:
        return {"text": resp.body}
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def _find_element(blocks: Any, action_id: str) -> tuple[str | None, JsonDict | None]:
    """Return (block_id, element) of the interactive element with `action_id` in `blocks`."""
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        candidates: list[Any] = []
        if isinstance(block.get("elements"), list):
            candidates.extend(block["elements"])
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                candidates.append(block[key])
        for element in candidates:
            if isinstance(element, dict) and element.get("action_id") == action_id:
                return block.get("block_id"), element
    return None, None


def _action(
    element: JsonDict | None, action_id: str, block_id: str, value: str | None, action_ts: str
) -> JsonDict:
    """Build one `actions[]` entry the way Slack reports the element that was used."""
    kind = str((element or {}).get("type") or "button")
    action: JsonDict = {"action_id": action_id, "block_id": block_id, "type": kind, "action_ts": action_ts}
    if element is None or kind == "button":
        text = (element or {}).get("text") or {"type": "plain_text", "text": action_id, "emoji": True}
        action["text"] = text
        chosen = value if value is not None else (element or {}).get("value")
        if chosen is not None:
            action["value"] = chosen
        if element is not None and element.get("style"):
            action["style"] = element["style"]
        return action
    options = [o for o in element.get("options") or [] if isinstance(o, dict)]
    for group in element.get("option_groups") or []:
        options.extend(o for o in group.get("options") or [] if isinstance(o, dict))
    if kind in ("static_select", "radio_buttons", "external_select"):
        match = next((o for o in options if o.get("value") == value), None)
        action["selected_option"] = match or {"text": {"type": "plain_text", "text": value}, "value": value}
    elif kind in ("checkboxes", "multi_static_select"):
        wanted = set((value or "").split(",")) if value else set()
        action["selected_options"] = [o for o in options if o.get("value") in wanted]
    elif kind == "datepicker":
        action["selected_date"] = value
    elif kind == "users_select":
        action["selected_user"] = value
    elif kind == "conversations_select":
        action["selected_conversation"] = value
    else:  # plain_text_input with dispatch_action, and anything newer
        action["value"] = value
    return action


class SlackDriver:
    """Play Slack's side of the conversation against the bot's events URL."""

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        fake: FakeSlack | RunningFakeSlack,
        *,
        team_id: str | None = None,
        user_id: str = "U_OPERATOR",
        channel_id: str = "C_INCIDENT",
        channel_name: str = "incident",
        command: str = "/sweep",
        apply_slack_side: bool = True,
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.fake = fake.state if isinstance(fake, RunningFakeSlack) else fake
        self.team_id = team_id or self.fake.team_id
        self.user_id = user_id
        self.channel_id = channel_id
        self.channel_name = channel_name
        self.command = command
        self.apply_slack_side = apply_slack_side
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None
        #: The trigger_id and response_url of the last request sent (to check what the bot did with them).
        self.last_trigger_id: str | None = None
        #: The last interaction payload sent (for replaying it byte for byte in tests).
        self.last_payload: JsonDict | None = None
        self.last_response_url: str | None = None

    async def __aenter__(self) -> SlackDriver:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client (if the driver created it)."""
        if self._owns_client:
            await self._client.aclose()

    # ------------------------------------------------------------------ transport

    async def raw(self, body: bytes | str, headers: Mapping[str, str]) -> DriverResponse:
        """POST `body` with exactly these headers (for forged, stale or unsigned requests)."""
        data = body.encode() if isinstance(body, str) else body
        started = time.perf_counter()
        response = await self._client.post(self.events_url, content=data, headers=dict(headers))
        elapsed = time.perf_counter() - started
        return DriverResponse(response.status_code, response.text, elapsed, dict(response.headers))

    async def post_signed(self, body: bytes, *, timestamp: int | None = None) -> DriverResponse:
        """POST a form body signed with the signing secret, as Slack does."""
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {"Content-Type": FORM, "User-Agent": USER_AGENT, **sign(self.signing_secret, body, ts)}
        return await self.raw(body, headers)

    async def send_payload(self, payload: JsonDict) -> DriverResponse:
        """POST an interaction payload (`payload=<json>`), signed."""
        self.last_payload = payload
        return await self.post_signed(urlencode({"payload": json.dumps(payload)}).encode())

    # ------------------------------------------------------------------ shapes

    def _user(self, user_id: str) -> JsonDict:
        name = user_id.lower()
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}

    def _team(self) -> JsonDict:
        return {"id": self.team_id, "domain": self.fake.team_domain}

    def _channel_name(self, channel_id: str) -> str:
        return self.channel_name if channel_id == self.channel_id else channel_id.lower()

    # ------------------------------------------------------------------ requests

    async def slash(
        self, text: str, *, user_id: str | None = None, channel_id: str | None = None
    ) -> DriverResponse:
        """Run `/sweep <text>` as `user_id` in `channel_id` (Slack's form body, signed)."""
        user = user_id or self.user_id
        channel = channel_id or self.channel_id
        fields = self.fake.slash_command_payload(
            text,
            user_id=user,
            channel_id=channel,
            channel_name=self._channel_name(channel),
            command=self.command,
            team_id=self.team_id,
        )
        self.last_trigger_id, self.last_response_url = fields["trigger_id"], fields["response_url"]
        response = await self.post_signed(urlencode(fields).encode())
        if self.apply_slack_side and response.status == 200:
            body = bolt_ack_body(response)
            if body.get("text") or body.get("blocks"):
                self.fake.record_ack(body, channel_id=channel, user_id=user)
        return response

    async def block_action(
        self,
        action_id: str,
        value: str | None = None,
        *,
        user_id: str | None = None,
        channel_id: str | None = None,
        message_ts: str | None = None,
        container: JsonDict | None = None,
        view: JsonDict | None = None,
        block_id: str | None = None,
        message_blocks: list[JsonDict] | None = None,
        state_values: JsonDict | None = None,
    ) -> DriverResponse:
        """Press a button (or pick an option) with `action_id`.

        From a message when `message_ts` is given (its blocks come from the fake), from a modal when
        `view` is given, else from an ephemeral message (pass its `message_blocks`). `value` defaults
        to the element's own value; for selects it picks the option with that value.
        """
        user = user_id or self.user_id
        channel = channel_id or self.channel_id
        action_ts = self.fake.next_ts()
        self.last_trigger_id = self.fake.issue_trigger_id(user)
        payload: JsonDict = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": self.fake.app_id,
            "token": "verification-token-unused",
            "trigger_id": self.last_trigger_id,
            "team": self._team(),
            "enterprise": None,
            "is_enterprise_install": False,
        }
        blocks: Any
        if view is not None:
            stored = self.fake.view(str(view.get("id")))
            current = dict(stored.view if stored is not None else view)
            if state_values is not None:
                current["state"] = {"values": state_values}
                if stored is not None:
                    self.fake.set_view_state(stored.id, state_values)
            blocks = current.get("blocks")
            payload["container"] = container or {"type": "view", "view_id": current.get("id")}
            payload["view"] = current
            payload["state"] = current.get("state", {"values": {}})
            self.last_response_url = None
        else:
            if message_ts is not None:
                message = self.fake.message(channel, message_ts)
                blocks = message_blocks if message_blocks is not None else (message.blocks if message else [])
                payload["container"] = container or {
                    "type": "message",
                    "message_ts": message_ts,
                    "channel_id": channel,
                    "is_ephemeral": False,
                }
                api = (
                    message.to_api(team_id=self.team_id, include_metadata=False)
                    if message is not None
                    else {"type": "message", "ts": message_ts, "text": "", "blocks": blocks}
                )
                payload["message"] = api
            else:
                blocks = message_blocks or []
                payload["container"] = container or {
                    "type": "message",
                    "message_ts": action_ts,
                    "channel_id": channel,
                    "is_ephemeral": True,
                }
            payload["channel"] = {"id": channel, "name": self._channel_name(channel)}
            payload["state"] = {"values": state_values or {}}
            self.last_response_url = self.fake.new_response_url(
                source="actions", channel_id=channel, user_id=user, message_ts=message_ts
            )
            payload["response_url"] = self.last_response_url
        found_block, element = _find_element(blocks, action_id)
        payload["actions"] = [
            _action(element, action_id, block_id or found_block or "block", value, action_ts)
        ]
        return await self.send_payload(payload)

    def _current_view(self, view: JsonDict) -> JsonDict:
        stored = self.fake.view(str(view.get("id")))
        current = dict(stored.view if stored is not None else view)
        current.setdefault("type", "modal")
        return current

    async def view_submission(
        self, view: JsonDict, state_values: JsonDict, *, user_id: str | None = None
    ) -> DriverResponse:
        """Submit a modal with these `state.values` (`{block_id: {action_id: {type, value…}}}`)."""
        user = user_id or self.user_id
        current = self._current_view(view)
        current["state"] = {"values": state_values}
        stored = self.fake.view(str(current.get("id")))
        if stored is not None:
            self.fake.set_view_state(stored.id, state_values)
        self.last_trigger_id = self.fake.issue_trigger_id(user)
        payload: JsonDict = {
            "type": "view_submission",
            "team": self._team(),
            "user": self._user(user),
            "api_app_id": self.fake.app_id,
            "token": "verification-token-unused",
            "trigger_id": self.last_trigger_id,
            "view": current,
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        hash_before = stored.hash if stored is not None else None
        response = await self.send_payload(payload)
        if self.apply_slack_side and stored is not None and response.status == 200:
            body = bolt_ack_body(response)
            # Slack applies the ack's response_action as soon as the HTTP answer arrives, always
            # before any views.update the app makes afterwards; this client only sees the answer
            # later, so an update that already landed means the ack's view came first.
            if body.get("response_action") == "update" and stored.hash != hash_before:
                return response
            self._apply_response_action(stored.id, body, user)
        return response

    def _apply_response_action(self, view_id: str, body: JsonDict, user_id: str) -> None:
        action = body.get("response_action")
        if action is None:
            self.fake.close_view(view_id)
        elif action == "update" and isinstance(body.get("view"), dict):
            self.fake.replace_view(view_id, body["view"])
        elif action == "push" and isinstance(body.get("view"), dict):
            self.fake.push_view(body["view"], user_id=user_id)
        elif action == "clear":
            self.fake.close_view(view_id, all_views=True)
        elif action == "errors" and isinstance(body.get("errors"), dict):
            stored = self.fake.view(view_id)
            if stored is not None:
                stored.errors = {str(k): str(v) for k, v in body["errors"].items()}

    async def view_closed(
        self, view: JsonDict, *, user_id: str | None = None, is_cleared: bool = False
    ) -> DriverResponse:
        """Close a modal with its Close button (Slack sends this only when `notify_on_close` is set)."""
        user = user_id or self.user_id
        current = self._current_view(view)
        payload: JsonDict = {
            "type": "view_closed",
            "team": self._team(),
            "user": self._user(user),
            "api_app_id": self.fake.app_id,
            "token": "verification-token-unused",
            "view": current,
            "is_cleared": is_cleared,
            "is_enterprise_install": False,
            "enterprise": None,
        }
        response = await self.send_payload(payload)
        stored = self.fake.view(str(current.get("id")))
        if self.apply_slack_side and stored is not None and not stored.closed:
            self.fake.close_view(stored.id, all_views=is_cleared)
        return response
