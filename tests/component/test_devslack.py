"""The fake Slack over real HTTP, driven by slack_sdk's AsyncWebClient; the signer vs SignatureVerifier."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.devslack import RunningFakeSlack, SlackDriver, bolt_ack_body, running_fake_slack, sign
from bot.devslack.driver import DriverResponse

TOKEN = "xoxb-test"
CHANNEL = "C_INCIDENT"
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "*Move* to Junk"}}
CARD_META = {"event_type": "sweep_card", "event_payload": {"job_id": "job-1"}}


@pytest.fixture
async def slack() -> AsyncIterator[RunningFakeSlack]:
    async with running_fake_slack(
        bot_token=TOKEN, usergroups={"S_SOC": ["U1", "U2"]}, missing_channels={"C_GONE"}
    ) as fake:
        yield fake


@pytest.fixture
async def client(slack: RunningFakeSlack) -> AsyncIterator[AsyncWebClient]:
    web_client = AsyncWebClient(token=TOKEN, base_url=slack.api_url)
    yield web_client
    if web_client.session is not None:
        await web_client.session.close()


async def test_auth_test_and_auth_errors(slack: RunningFakeSlack, client: AsyncWebClient) -> None:
    me = await client.auth_test()
    assert (me["user_id"], me["bot_id"], me["team_id"]) == ("U_SWEEPBOT", "B_SWEEP", "T_SWEEP")
    with pytest.raises(SlackApiError) as bad:
        await AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test()
    assert bad.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as missing:
        await AsyncWebClient(base_url=slack.api_url).auth_test()
    assert missing.value.response["error"] == "not_authed"
    with pytest.raises(SlackApiError) as unknown:
        await client.api_call("chat.frobnicate")
    assert unknown.value.response["error"] == "unknown_method"


async def test_post_update_and_inspect(slack: RunningFakeSlack, client: AsyncWebClient) -> None:
    first = await client.chat_postMessage(channel=CHANNEL, text="card", blocks=[SECTION], metadata=CARD_META)
    second = await client.chat_postMessage(channel=CHANNEL, text="another")
    assert first["ok"] and first["channel"] == CHANNEL and first["message"]["metadata"] == CARD_META
    assert float(second["ts"]) > float(first["ts"])
    assert first["ts"].count(".") == 1 and len(first["ts"].split(".")[1]) == 6

    updated = await client.chat_update(channel=CHANNEL, ts=first["ts"], text="card v2")
    assert updated["message"]["blocks"] == [SECTION]  # blocks kept when none are sent, like Slack
    message = slack.messages(CHANNEL)[0]
    assert (message.text, message.edits, message.metadata) == ("card v2", 1, CARD_META)
    assert message.versions[0]["text"] == "card"

    call = slack.calls("chat.postMessage")[0]
    assert call.body_kind == "json" and call.params["blocks"] == [SECTION]
    assert slack.calls("auth.test") == []


async def test_form_encoded_calls_are_understood(slack: RunningFakeSlack) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{slack.api_url}chat.postMessage",
            data={
                "token": TOKEN,
                "channel": CHANNEL,
                "blocks": json.dumps([SECTION]),
                "metadata": json.dumps(CARD_META),
            },
        )
    body = response.json()
    assert response.status_code == 200 and body["ok"], body
    assert slack.messages(CHANNEL)[0].metadata == CARD_META
    assert slack.calls()[0].body_kind == "form"


async def test_errors_like_slack(slack: RunningFakeSlack, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as not_found:
        await client.chat_update(channel=CHANNEL, ts="1.000001", text="x")
    assert not_found.value.response["error"] == "message_not_found"
    assert not_found.value.response.status_code == 200
    with pytest.raises(SlackApiError) as gone:
        await client.chat_postMessage(channel="C_GONE", text="x")
    assert gone.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as no_thread:
        await client.chat_postMessage(channel=CHANNEL, text="x", thread_ts="1.000002")
    assert no_thread.value.response["error"] == "thread_not_found"
    with pytest.raises(SlackApiError) as too_many:
        await client.chat_postMessage(channel=CHANNEL, text="x", blocks=[SECTION] * 51)
    assert too_many.value.response["error"] == "invalid_blocks"
    long_section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    with pytest.raises(SlackApiError) as too_long:
        await client.chat_postMessage(channel=CHANNEL, text="x", blocks=[long_section])
    assert too_long.value.response["error"] == "invalid_blocks"

    posted = await client.chat_postMessage(channel=CHANNEL, text="bye")
    await client.chat_delete(channel=CHANNEL, ts=posted["ts"])
    assert slack.messages(CHANNEL) == []
    with pytest.raises(SlackApiError):
        await client.chat_update(channel=CHANNEL, ts=posted["ts"], text="x")


async def test_threads_and_history_with_metadata(slack: RunningFakeSlack, client: AsyncWebClient) -> None:
    card = await client.chat_postMessage(channel=CHANNEL, text="card", metadata=CARD_META)
    reply_meta = {
        "event_type": "sweep_transition",
        "event_payload": {"job_id": "job-1", "transition": "DONE"},
    }
    reply = await client.chat_postMessage(
        channel=CHANNEL, text="done", thread_ts=card["ts"], metadata=reply_meta
    )

    replies = await client.conversations_replies(channel=CHANNEL, ts=card["ts"], include_all_metadata=True)
    assert [m["ts"] for m in replies["messages"]] == [card["ts"], reply["ts"]]
    assert replies["messages"][1]["metadata"] == reply_meta
    assert replies["messages"][0]["reply_count"] == 1
    plain = await client.conversations_replies(channel=CHANNEL, ts=card["ts"])
    assert "metadata" not in plain["messages"][1]

    history = await client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    assert [m["ts"] for m in history["messages"]] == [card["ts"]]  # replies are not in history
    assert history["messages"][0]["metadata"] == CARD_META
    assert [m.ts for m in slack.thread(CHANNEL, card["ts"])] == [card["ts"], reply["ts"]]
    with pytest.raises(SlackApiError) as missing:
        await client.conversations_replies(channel=CHANNEL, ts="1.000003")
    assert missing.value.response["error"] == "thread_not_found"


async def test_history_pagination(client: AsyncWebClient) -> None:
    posted = [(await client.chat_postMessage(channel=CHANNEL, text=str(i)))["ts"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        page = await client.conversations_history(channel=CHANNEL, limit=2, cursor=cursor)
        seen.extend(m["ts"] for m in page["messages"])
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(posted))


async def test_usergroups_users_and_ephemerals(slack: RunningFakeSlack, client: AsyncWebClient) -> None:
    assert (await client.usergroups_users_list(usergroup="S_SOC"))["users"] == ["U1", "U2"]
    with pytest.raises(SlackApiError) as unknown:
        await client.usergroups_users_list(usergroup="S_NOPE")
    assert unknown.value.response["error"] == "no_such_subteam"
    assert (await client.users_info(user="U1"))["user"]["id"] == "U1"
    await client.chat_postEphemeral(channel=CHANNEL, user="U1", text="only you")
    assert [e.text for e in slack.ephemerals("U1")] == ["only you"]
    assert slack.ephemerals("U2") == []


async def test_views_open_update_hash_conflict(slack: RunningFakeSlack, client: AsyncWebClient) -> None:
    modal = {"type": "modal", "callback_id": "create", "title": {"type": "plain_text", "text": "New sweep"}}
    with pytest.raises(SlackApiError) as invalid:
        await client.views_open(trigger_id="made-up", view=modal)
    assert invalid.value.response["error"] == "invalid_trigger_id"

    trigger = slack.state.issue_trigger_id("U1")
    opened = (await client.views_open(trigger_id=trigger, view=modal))["view"]
    assert opened["id"].startswith("V") and opened["hash"] and opened["type"] == "modal"
    with pytest.raises(SlackApiError) as reused:
        await client.views_open(trigger_id=trigger, view=modal)
    assert reused.value.response["error"] == "expired_trigger_id"

    changed = {**modal, "blocks": [SECTION]}
    updated = (await client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed))["view"]
    assert updated["blocks"] == [SECTION] and updated["hash"] != opened["hash"]
    with pytest.raises(SlackApiError) as stale:
        await client.views_update(view_id=opened["id"], hash=opened["hash"], view=modal)
    assert stale.value.response["error"] == "hash_conflict"
    assert [v.id for v in slack.views("U1")] == [opened["id"]]


async def test_expired_trigger(slack: RunningFakeSlack, client: AsyncWebClient) -> None:
    now = [1000.0]
    slack.state.clock = lambda: now[0]
    trigger = slack.state.issue_trigger_id("U1")
    now[0] += 3.5  # a trigger_id lives 3 s
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Late"}}
    with pytest.raises(SlackApiError) as late:
        await client.views_open(trigger_id=trigger, view=modal)
    assert late.value.response["error"] == "expired_trigger_id"


async def test_rate_limit_honoured_by_retry_handler(slack: RunningFakeSlack) -> None:
    client = AsyncWebClient(
        token=TOKEN, base_url=slack.api_url, retry_handlers=[AsyncRateLimitErrorRetryHandler()]
    )
    slack.rate_limit("chat.postMessage", retry_after=1)
    started = time.monotonic()
    response = await client.chat_postMessage(channel=CHANNEL, text="eventually")
    assert response["ok"]
    assert time.monotonic() - started >= 1.0  # the handler waited Retry-After seconds
    calls = slack.calls("chat.postMessage")
    assert [(c.status, c.error) for c in calls] == [(429, "ratelimited"), (200, None)]
    assert len(slack.messages(CHANNEL)) == 1


async def test_faults_without_retry(slack: RunningFakeSlack, client: AsyncWebClient) -> None:
    slack.rate_limit("chat.update", retry_after=7)
    with pytest.raises(SlackApiError) as limited:
        await client.chat_update(channel=CHANNEL, ts="1.0", text="x")
    assert limited.value.response.status_code == 429
    assert limited.value.response.headers["Retry-After"] == "7"
    slack.fail("chat.postMessage", "channel_not_found", times=2)
    for _ in range(2):
        with pytest.raises(SlackApiError):
            await client.chat_postMessage(channel=CHANNEL, text="x")
    assert (await client.chat_postMessage(channel=CHANNEL, text="x"))["ok"]
    slack.http_error("auth.test", 503)
    with pytest.raises(SlackApiError) as server_error:
        await client.auth_test()
    assert server_error.value.response.status_code == 503

    async with httpx.AsyncClient() as http:
        fault = {"method": "chat.postMessage", "kind": "error", "error": "is_archived"}
        assert (await http.post(f"{slack.base_url}__fake/faults", json=fault)).json()["ok"]
        with pytest.raises(SlackApiError) as archived:
            await client.chat_postMessage(channel=CHANNEL, text="x")
        assert archived.value.response["error"] == "is_archived"
        calls = (
            await http.get(f"{slack.base_url}__fake/calls", params={"method": "chat.postMessage"})
        ).json()
    assert [c["error"] for c in calls][-1] == "is_archived"


async def test_latency_fault_and_wait_for(slack: RunningFakeSlack, client: AsyncWebClient) -> None:
    slack.slow_down("auth.test", 0.2, times=1)
    started = time.monotonic()
    await client.auth_test()
    assert time.monotonic() - started >= 0.2
    with pytest.raises(TimeoutError):
        await slack.wait_for(lambda: slack.messages(CHANNEL), timeout=0.1)


async def test_response_urls(slack: RunningFakeSlack, client: AsyncWebClient) -> None:
    card = await client.chat_postMessage(channel=CHANNEL, text="preview", blocks=[SECTION])
    url = slack.new_response_url(source="actions", channel_id=CHANNEL, user_id="U1", message_ts=card["ts"])
    webhook = AsyncWebhookClient(url)
    assert (await webhook.send(text="just you", response_type="ephemeral")).status_code == 200
    assert (await webhook.send(text="replaced", replace_original=True)).status_code == 200
    assert slack.messages(CHANNEL)[0].text == "replaced"
    assert (await webhook.send(text="for all", response_type="in_channel")).status_code == 200
    assert (await webhook.send(delete_original=True)).status_code == 200
    assert [r.text for r in slack.responses("U1")] == ["just you", "replaced", "for all", ""]
    assert [m.text for m in slack.messages(CHANNEL)] == ["for all"]
    assert (await webhook.send(text="fifth")).status_code == 200
    used = await webhook.send(text="sixth")  # a response_url works 5 times
    assert used.status_code == 404 and used.body == "used_url"


# --------------------------------------------------------------------------- signing and the driver


def test_sign_matches_slack_sdk_verifier() -> None:
    body = b"token=x&team_id=T1&command=%2Fsweep&text=list"
    now = int(time.time())
    headers = sign("s3cret", body, now)
    verifier = SignatureVerifier("s3cret")
    assert verifier.is_valid_request(body, headers)
    assert not SignatureVerifier("other").is_valid_request(body, headers)
    assert not verifier.is_valid_request(body + b"&x=1", headers)
    forged = {**headers, "X-Slack-Signature": "v0=" + "0" * 64}
    assert not verifier.is_valid_request(body, forged)
    assert not verifier.is_valid_request(body, sign("s3cret", body, now - 600))  # stale


class _Echo:
    """A tiny app standing in for the bot: verifies signatures and answers like Bolt would."""

    def __init__(self, secret: str, answer: dict[str, Any]) -> None:
        self.verifier = SignatureVerifier(secret)
        self.answer = answer
        self.seen: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if not self.verifier.is_valid_request(raw, dict(request.headers)):
            return web.json_response({"error": "invalid request"}, status=401)
        form = dict((await request.post()).items())
        body: dict[str, Any] = json.loads(str(form["payload"])) if "payload" in form else form
        self.seen.append(body)
        return web.json_response(self.answer) if self.answer else web.Response(status=200)


@pytest.fixture
async def echo_url(unused_tcp_port: int) -> AsyncIterator[tuple[str, _Echo]]:
    echo = _Echo("s3cret", {})
    app = web.Application()
    app.router.add_post("/slack/events", echo.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    yield f"http://127.0.0.1:{unused_tcp_port}/slack/events", echo
    await runner.cleanup()


async def test_driver_shapes(
    slack: RunningFakeSlack, client: AsyncWebClient, echo_url: tuple[str, _Echo]
) -> None:
    url, echo = echo_url
    async with SlackDriver(url, "s3cret", slack) as driver:
        echo.answer = {"text": "Usage: /sweep help"}
        resp = await driver.slash("help")
        assert resp.status == 200 and not resp.too_slow
        command = echo.seen[-1]
        assert command["command"] == "/sweep" and command["text"] == "help"
        assert command["user_id"] == "U_OPERATOR" and command["channel_id"] == "C_INCIDENT"
        assert command["response_url"].startswith(slack.base_url) and command["trigger_id"]
        assert [r.text for r in slack.responses("U_OPERATOR")] == [
            "Usage: /sweep help"
        ]  # ack shown to the user

        button = {
            "type": "button",
            "action_id": "cancel",
            "value": "job-1",
            "text": {"type": "plain_text", "text": "Cancel"},
        }
        card = await client.chat_postMessage(
            channel=CHANNEL, text="card", blocks=[{"type": "actions", "block_id": "b1", "elements": [button]}]
        )
        echo.answer = {}
        await driver.block_action("cancel", message_ts=card["ts"], user_id="U2")
        action = echo.seen[-1]
        assert action["type"] == "block_actions" and action["user"]["id"] == "U2"
        assert action["container"] == {
            "type": "message",
            "message_ts": card["ts"],
            "channel_id": CHANNEL,
            "is_ephemeral": False,
        }
        assert action["message"]["ts"] == card["ts"] and action["message"]["blocks"][0]["block_id"] == "b1"
        assert action["actions"][0]["value"] == "job-1" and action["actions"][0]["block_id"] == "b1"
        assert action["actions"][0]["action_ts"] and action["response_url"]

        modal = {
            "type": "modal",
            "callback_id": "create",
            "private_metadata": '{"c":"C_INCIDENT"}',
            "title": {"type": "plain_text", "text": "New sweep"},
            "submit": {"type": "plain_text", "text": "Preview"},
            "blocks": [
                {
                    "type": "input",
                    "block_id": "sender",
                    "label": {"type": "plain_text", "text": "Sender"},
                    "element": {"type": "plain_text_input", "action_id": "sender"},
                }
            ],
        }
        view = (await client.views_open(trigger_id=driver.last_trigger_id, view=modal))["view"]
        values = {"sender": {"sender": {"type": "plain_text_input", "value": "bad@evil.example"}}}
        echo.answer = {"response_action": "errors", "errors": {"sender": "not an address"}}
        resp = await driver.view_submission(view, values)
        assert bolt_ack_body(resp)["response_action"] == "errors"
        submission = echo.seen[-1]
        assert submission["type"] == "view_submission" and submission["view"]["type"] == "modal"
        assert submission["view"]["state"]["values"] == values
        assert submission["view"]["hash"] == view["hash"] and submission["view"]["private_metadata"]
        assert slack.views()[0].errors == {"sender": "not an address"}

        echo.answer = {"response_action": "update", "view": {**modal, "callback_id": "preview"}}
        await driver.view_submission(view, values)
        assert slack.views()[0].callback_id == "preview"
        echo.answer = {}
        await driver.view_submission(slack.views()[0].view, values)
        assert slack.views() == []  # a plain ack closes the modal
        await driver.view_closed(view, is_cleared=True)
        assert echo.seen[-1]["type"] == "view_closed" and echo.seen[-1]["view"]["id"] == view["id"]

        forged = await driver.raw(
            b"command=%2Fsweep", {"X-Slack-Signature": "v0=00", "X-Slack-Request-Timestamp": "1"}
        )
        assert forged.status == 401


def test_bolt_ack_body() -> None:
    assert bolt_ack_body(DriverResponse(200, "", 0.01)) == {}
    assert bolt_ack_body(DriverResponse(200, '{"response_action": "clear"}', 0.01)) == {
        "response_action": "clear"
    }


async def test_server_runs_on_a_chosen_port(unused_tcp_port: int) -> None:
    async with running_fake_slack(port=unused_tcp_port) as fake:
        assert fake.api_url == f"http://127.0.0.1:{unused_tcp_port}/api/"
        async with aiohttp.ClientSession() as session, session.get(f"{fake.base_url}__fake/calls") as resp:
            assert await resp.json() == []
