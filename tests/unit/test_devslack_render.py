"""Block Kit rendered as a person reads it in Slack."""

from __future__ import annotations

from bot.devslack.render import mrkdwn_to_text, render_message, render_view


def test_mrkdwn_is_made_readable() -> None:
    assert mrkdwn_to_text("*Move* by <@U1> in <#C1|incident>") == "*Move* by @U1 in #incident"
    assert mrkdwn_to_text("<!subteam^S1|@soc> <!here> <@U2|ann>") == "@soc @here @ann"
    assert mrkdwn_to_text("<https://x.example|dashboard> <https://y.example>") == (
        "dashboard (https://x.example) https://y.example"
    )
    # An escaped user string is shown literally, never as a mention or a link.
    assert mrkdwn_to_text("subject &lt;!channel&gt; &amp; co") == "subject <!channel> & co"
    assert mrkdwn_to_text("<!date^1700000000^{date}|Nov 14>") == "Nov 14"


def test_card_message() -> None:
    message = {
        "text": "fallback",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Move to Deleted Items"}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": ":large_blue_circle: PROCESSING · <@U9>"}],
            },
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": "*Discovered* 42"},
                    {"type": "mrkdwn", "text": "*Moved* 30"},
                    {"type": "mrkdwn", "text": "*Failed* 1"},
                ],
            },
            {"type": "divider"},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "Job 6f1c"},
                "accessory": {
                    "type": "button",
                    "action_id": "c",
                    "text": {"type": "plain_text", "text": "Cancel"},
                },
            },
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "action_id": "a", "text": {"type": "plain_text", "text": "Confirm"}},
                    {"type": "button", "action_id": "b", "text": {"type": "plain_text", "text": "Dismiss"}},
                ],
            },
        ],
    }
    lines = render_message(message, prefix="┃ ").split("\n")
    assert lines[0] == "┃ Move to Deleted Items"
    # mrkdwn is shown as Slack renders it: emoji names as emoji, bold without its stars.
    assert lines[1] == "┃ 🔵 PROCESSING · @U9"
    assert lines[2].startswith("┃ Discovered 42") and lines[2].endswith("Moved 30")
    assert lines[3] == "┃ Failed 1"
    assert lines[4] == "┃ " + "─" * 40
    assert lines[5] == "┃ Job 6f1c  [ Cancel ]"
    assert lines[6] == "┃ [ Confirm ]  [ Dismiss ]"


def test_message_without_blocks_shows_text() -> None:
    assert render_message({"text": "hello <@U1>\nsecond"}) == "hello @U1\nsecond"


def test_modal_with_inputs_and_errors() -> None:
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "New sweep"},
        "submit": {"type": "plain_text", "text": "Preview"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": "action",
                "label": {"type": "plain_text", "text": "Action"},
                "element": {
                    "type": "radio_buttons",
                    "action_id": "action",
                    "initial_option": {"text": {"type": "plain_text", "text": "Move"}, "value": "MOVE"},
                    "options": [
                        {"text": {"type": "plain_text", "text": "Move"}, "value": "MOVE"},
                        {"text": {"type": "plain_text", "text": "Release"}, "value": "RELEASE"},
                    ],
                },
            },
            {
                "type": "input",
                "block_id": "sender",
                "optional": True,
                "label": {"type": "plain_text", "text": "Sender"},
                "hint": {"type": "plain_text", "text": "an address"},
                "element": {"type": "plain_text_input", "action_id": "sender"},
            },
            {
                "type": "input",
                "block_id": "folder",
                "label": {"type": "plain_text", "text": "Folder"},
                "element": {
                    "type": "static_select",
                    "action_id": "folder",
                    "placeholder": {"type": "plain_text", "text": "Choose"},
                    "options": [{"text": {"type": "plain_text", "text": "Inbox"}, "value": "Inbox"}],
                },
            },
            {
                "type": "input",
                "block_id": "comment",
                "label": {"type": "plain_text", "text": "Comment"},
                "element": {"type": "plain_text_input", "action_id": "comment", "initial_value": "phish"},
            },
        ],
    }
    assert render_view(view, errors={"sender": "Enter an address"}).split("\n") == [
        "╭─ New sweep ─╮",
        "Action: (•) Move  ( ) Release",
        "Sender (optional): ____",
        "  an address",
        "  ⚠ Enter an address",
        "Folder: [ Choose ▾ ]",
        "Comment: phish",
        "[ Cancel ]  [ Preview ]",
    ]


def test_unknown_blocks_do_not_crash() -> None:
    blocks = [
        {"type": "video", "title": {"type": "plain_text", "text": "x"}},
        "junk",
        {"type": "image", "alt_text": "logo"},
    ]
    assert render_message({"blocks": blocks}) == "[video]\n[image: logo]"
    rich = {
        "type": "rich_text",
        "elements": [
            {
                "type": "rich_text_section",
                "elements": [{"type": "text", "text": "hi "}, {"type": "user", "user_id": "U1"}],
            }
        ],
    }
    assert render_message({"blocks": [rich]}) == "hi @U1"
