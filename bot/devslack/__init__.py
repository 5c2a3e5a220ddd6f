"""A local stand-in for Slack: a fake Web API server, a driver that sends signed requests, a renderer.

Used by the end-to-end tests, the offline demo (`sweep-bot demo`) and the benchmarks.
"""

from bot.devslack.driver import DriverResponse, SlackDriver, bolt_ack_body, sign
from bot.devslack.render import render_message, render_view
from bot.devslack.server import RunningFakeSlack, create_fake_slack_app, running_fake_slack, wait_for
from bot.devslack.socket_mode import FakeSocketMode
from bot.devslack.state import Ephemeral, Event, FakeSlack, Fault, Message, RecordedCall, Response, View

__all__ = [
    "DriverResponse",
    "Ephemeral",
    "Event",
    "FakeSlack",
    "FakeSocketMode",
    "Fault",
    "Message",
    "RecordedCall",
    "Response",
    "RunningFakeSlack",
    "SlackDriver",
    "View",
    "bolt_ack_body",
    "create_fake_slack_app",
    "render_message",
    "render_view",
    "running_fake_slack",
    "sign",
    "wait_for",
]
