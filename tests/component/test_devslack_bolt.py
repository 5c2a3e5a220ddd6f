"""The driver against a real Bolt AsyncApp (HTTP mode) talking to the fake Slack: shapes Bolt accepts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.devslack import (
    RunningFakeSlack,
    SlackDriver,
    bolt_ack_body,
    render_message,
    running_fake_slack,
    sign,
)

SECRET = "test-signing-secret"
MODAL = {
    "type": "modal",
    "callback_id": "create",
    "title": {"type": "plain_text", "text": "New sweep"},
    "submit": {"type": "plain_text", "text": "Create"},
    "blocks": [
        {
            "type": "input",
            "block_id": "sender",
            "label": {"type": "plain_text", "text": "Sender"},
            "element": {"type": "plain_text_input", "action_id": "sender"},
        }
    ],
}


def build_app(api_url: str) -> AsyncApp:
    """Return a small Bolt app using the same Slack surfaces as Sweep."""
    app = AsyncApp(client=AsyncWebClient(token="xoxb-test", base_url=api_url), signing_secret=SECRET)

    @app.command("/sweep")
    async def command(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, respond: AsyncRespond
    ) -> None:
        if body["text"] == "new":
            await ack()
            await client.views_open(trigger_id=body["trigger_id"], view=MODAL)
        elif body["text"] == "help":
            await ack(text="Usage: /sweep help | new")
        else:
            await ack()
            await respond(text=f"working on {body['text']}")

    @app.view("create")
    async def create(
        ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], client: AsyncWebClient
    ) -> None:
        sender = view["state"]["values"]["sender"]["sender"]["value"]
        if "@" not in sender:
            await ack(response_action="errors", errors={"sender": "Enter an address"})
            return
        await ack()
        button = {
            "type": "button",
            "action_id": "cancel",
            "value": "job-1",
            "style": "danger",
            "text": {"type": "plain_text", "text": "Cancel"},
        }
        await client.chat_postMessage(
            channel="C_INCIDENT",
            text=f"Job for {sender}",
            blocks=[
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*Move* mail from {sender}"}},
                {"type": "actions", "block_id": "card_actions", "elements": [button]},
            ],
            metadata={"event_type": "sweep_card", "event_payload": {"job_id": "job-1"}},
        )

    @app.action("cancel")
    async def cancel(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await client.chat_update(
            channel=body["channel"]["id"],
            ts=body["message"]["ts"],
            text="Cancelled",
            blocks=[
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"Cancelled by <@{body['user']['id']}>"},
                }
            ],
        )

    return app


@pytest.fixture
async def setup(unused_tcp_port: int) -> AsyncIterator[tuple[RunningFakeSlack, SlackDriver]]:
    async with running_fake_slack() as slack:
        runner = web.AppRunner(build_app(slack.api_url).web_app(path="/slack/events"))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
        url = f"http://127.0.0.1:{unused_tcp_port}/slack/events"
        async with SlackDriver(url, SECRET, slack) as driver:
            yield slack, driver
        await runner.cleanup()


async def test_a_whole_conversation(setup: tuple[RunningFakeSlack, SlackDriver]) -> None:
    slack, driver = setup
    help_resp = await driver.slash("help")
    assert help_resp.status == 200 and bolt_ack_body(help_resp)["text"].startswith("Usage")

    assert (await driver.slash("list")).status == 200
    await slack.wait_for(lambda: any(r.text == "working on list" for r in slack.responses()))

    assert (await driver.slash("new")).status == 200
    view = (await slack.wait_for(lambda: slack.views()))[0]
    assert view.callback_id == "create" and view.user_id == "U_OPERATOR"

    bad = await driver.view_submission(
        view.view, {"sender": {"sender": {"type": "plain_text_input", "value": "x"}}}
    )
    assert bad.status == 200 and bolt_ack_body(bad)["errors"] == {"sender": "Enter an address"}
    assert slack.views()[0].errors == {"sender": "Enter an address"}

    good = {"sender": {"sender": {"type": "plain_text_input", "value": "bad@evil.example"}}}
    assert (await driver.view_submission(view.view, good)).status == 200
    assert slack.views() == []
    card = (await slack.wait_for(lambda: slack.top_level("C_INCIDENT")))[0]
    assert card.metadata == {"event_type": "sweep_card", "event_payload": {"job_id": "job-1"}}

    assert (await driver.block_action("cancel", message_ts=card.ts)).status == 200
    await slack.wait_for(lambda: slack.messages("C_INCIDENT")[0].edits == 1)
    assert render_message(slack.messages("C_INCIDENT")[0].to_api(team_id="T")) == "Cancelled by @U_OPERATOR"
    assert len(slack.calls("auth.test")) == 1  # Bolt's single-workspace authorization, cached


async def test_bolt_rejects_forged_stale_and_unsigned(setup: tuple[RunningFakeSlack, SlackDriver]) -> None:
    _, driver = setup
    body = b"command=%2Fsweep&text=help&user_id=U1&team_id=T_SWEEP"
    assert (await driver.raw(body, sign("wrong-secret", body, int(time.time())))).status == 401
    assert (await driver.raw(body, sign(SECRET, body, int(time.time()) - 600))).status == 401
    assert (await driver.raw(body, {"Content-Type": "application/x-www-form-urlencoded"})).status == 401
    assert (await driver.post_signed(body)).status == 200
