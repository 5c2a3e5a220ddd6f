"""Block Kit rendered as a person reads it in Slack."""

from __future__ import annotations

from bot.devslack.render import (
    display_width,
    mrkdwn_to_display,
    mrkdwn_to_text,
    render_confirm,
    render_message,
    render_view,
)


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


# ---------------------------------------------------------------- as the demo shows it (issue 10)


def test_mrkdwn_formatting_is_rendered_not_shown() -> None:
    assert mrkdwn_to_display("*Filters*\n• *Sender:* a@b.example") == "Filters\n• Sender: a@b.example"
    assert mrkdwn_to_display("_italic_ and ~gone~ and *bold*") == "italic and gone and bold"
    # Not formatting: stars or underscores inside words, times, snake_case names.
    assert mrkdwn_to_display("detections_only 2*3*4 09:27:44") == "detections_only 2*3*4 09:27:44"
    # Emoji names become emoji; a name Slack would not know stays as written.
    assert mrkdwn_to_display(":white_check_mark: Completed :no_such_emoji:") == "✅ Completed :no_such_emoji:"
    assert mrkdwn_to_display(":gear: :mag: :x: :warning:") == "⚙ 🔍 ❌ ⚠"
    # Quotes get a bar; mentions and escapes as before.
    assert mrkdwn_to_display(">Sweep: by <@U1>\n&gt;quoted &amp; co") == "│ Sweep: by @U1\n│ quoted & co"


def test_code_is_left_as_written() -> None:
    assert mrkdwn_to_display("Job `*not bold*` :gear:") == "Job `*not bold*` ⚙"
    assert mrkdwn_to_display("```/sweep *x* :gear:\nline &lt;2&gt;```\n*after*") == (
        "/sweep *x* :gear:\nline <2>\nafter"
    )


def test_fields_align_even_with_wide_emoji() -> None:
    fields = [
        {"type": "mrkdwn", "text": "*Status*\n:white_check_mark: Completed"},
        {"type": "mrkdwn", "text": "*Requested by*\n<@U1>"},
    ]
    (line,) = render_message({"blocks": [{"type": "section", "fields": fields}]}).split("\n")
    assert line.startswith("Status: ✅ Completed") and line.endswith("Requested by: @U1")
    assert display_width(line[: line.index("Requested")]) == 38
    assert display_width("✅ ok") == 5 and display_width("⚙ ok") == 4


def test_date_pickers_show_dates() -> None:
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "New"},
        "blocks": [
            {
                "type": "input",
                "block_id": "start",
                "label": {"type": "plain_text", "text": "Received from"},
                "element": {"type": "datetimepicker", "action_id": "s", "initial_date_time": 1795507453},
            },
            {
                "type": "input",
                "block_id": "day",
                "label": {"type": "plain_text", "text": "Day"},
                "element": {"type": "datepicker", "action_id": "d", "initial_date": "2026-11-20"},
            },
            {
                "type": "input",
                "block_id": "end",
                "label": {"type": "plain_text", "text": "Until"},
                "element": {"type": "datetimepicker", "action_id": "e"},
            },
        ],
    }
    assert render_view(view).split("\n")[1:] == [
        "Received from: [ 2026-11-24 08:04 UTC ]",
        "Day: [ 2026-11-20 ]",
        "Until: [ datetimepicker ]",
    ]
    # What the person picked wins over the initial value.
    picked = {"start": {"s": {"type": "datetimepicker", "selected_date_time": 1795507453 + 86400}}}
    assert "Received from: [ 2026-11-25 08:04 UTC ]" in render_view(view, state=picked)


def test_a_form_shows_what_was_typed_and_picked() -> None:
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "New"},
        "blocks": [
            {
                "type": "input",
                "block_id": "sender",
                "label": {"type": "plain_text", "text": "Sender"},
                "element": {"type": "plain_text_input", "action_id": "a"},
            },
            {
                "type": "input",
                "block_id": "folder",
                "label": {"type": "plain_text", "text": "Folder"},
                "element": {
                    "type": "static_select",
                    "action_id": "f",
                    "placeholder": {"type": "plain_text", "text": "Choose"},
                    "options": [{"text": {"type": "plain_text", "text": "Junk Email"}, "value": "JunkEmail"}],
                },
            },
        ],
        "state": {
            "values": {
                "sender": {"a": {"type": "plain_text_input", "value": "evil@x.example"}},
                "folder": {
                    "f": {
                        "type": "static_select",
                        "selected_option": {
                            "text": {"type": "plain_text", "text": "Junk Email"},
                            "value": "JunkEmail",
                        },
                    }
                },
            }
        },
    }
    assert render_view(view).split("\n")[1:] == ["Sender: evil@x.example", "Folder: [ Junk Email ▾ ]"]


def test_a_confirmation_dialog_is_shown_as_slack_shows_it() -> None:
    dialog = {
        "title": {"type": "plain_text", "text": "Delete permanently?"},
        "text": {"type": "plain_text", "text": "This permanently deletes 6 messages."},
        "confirm": {"type": "plain_text", "text": "Yes, delete permanently"},
        "deny": {"type": "plain_text", "text": "No, go back"},
        "style": "danger",
    }
    assert render_confirm(dialog, prefix="  ").split("\n") == [
        "  ╭─ Delete permanently? ─╮",
        "  This permanently deletes 6 messages.",
        "  [ No, go back ]  [ Yes, delete permanently ]",
    ]
    # Slack's defaults when a dialog leaves the buttons out.
    bare = render_confirm(
        {"title": {"type": "plain_text", "text": "Sure?"}, "text": {"type": "mrkdwn", "text": "*x*"}}
    )
    assert bare.split("\n") == ["╭─ Sure? ─╮", "x", "[ Cancel ]  [ Yes ]"]
