"""Slack's documented limits on what Sweep sends, in one place.

The payload models (`bot.payloads`), the draft's size budget (`bot.draft`), the block builders
(`blocks._kit`) and the checker of built payloads (`blocks.validate`) all read them from here, so a
limit cannot be written twice with two values. Dependency-free: anything may import it.
"""

from __future__ import annotations

import re

__all__ = [
    "BUTTON_TEXT_MAX",
    "BUTTON_VALUE_MAX",
    "CONFIRM_BUTTON_MAX",
    "CONFIRM_TEXT_MAX",
    "CONFIRM_TITLE_MAX",
    "CONTEXT_ELEMENTS_MAX",
    "HEADER_TEXT_MAX",
    "HINT_TEXT_MAX",
    "INPUT_LABEL_MAX",
    "MESSAGE_BLOCKS_MAX",
    "MESSAGE_TEXT_MAX",
    "MODAL_BLOCKS_MAX",
    "OPTION_TEXT_MAX",
    "PLACEHOLDER_MAX",
    "PRIVATE_METADATA_MAX",
    "SECTION_FIELDS_MAX",
    "SECTION_FIELD_MAX",
    "SECTION_TEXT_MAX",
    "TEXT_INPUT_MAX",
    "TEXT_OBJECT_MAX",
    "VIEW_TITLE_MAX",
    "is_user_id",
]

#: A button's `value`, where Sweep's small payloads travel.
BUTTON_VALUE_MAX = 2000
#: A modal's `private_metadata`.
PRIVATE_METADATA_MAX = 3000
#: Blocks in one message, and in one modal view.
MESSAGE_BLOCKS_MAX = 50
MODAL_BLOCKS_MAX = 100
#: A section's text; each of its fields (at most SECTION_FIELDS_MAX of them).
SECTION_TEXT_MAX = 3000
SECTION_FIELD_MAX = 2000
SECTION_FIELDS_MAX = 10
#: Any text object.
TEXT_OBJECT_MAX = 3000
#: A header block's text; a button's text; elements of a context block.
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
CONTEXT_ELEMENTS_MAX = 10
#: A confirmation dialog's title, text and buttons.
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
CONFIRM_BUTTON_MAX = 30
#: An input block's label and hint; an option's text (and description); an element's placeholder.
INPUT_LABEL_MAX = 2000
HINT_TEXT_MAX = 2000
OPTION_TEXT_MAX = 75
PLACEHOLDER_MAX = 150
#: A plain-text input's `max_length` and `initial_value`.
TEXT_INPUT_MAX = 3000
#: A modal's title (and its submit and close buttons).
VIEW_TITLE_MAX = 24
#: A message's top-level `text` (Slack truncates longer ones).
MESSAGE_TEXT_MAX = 40000

# A user id: U… in most workspaces, W… in Enterprise Grid.
_USER_ID = re.compile(r"^[UW][A-Z0-9]+$")


def is_user_id(text: str) -> bool:
    """Return True when `text` has the shape of a Slack user id (safe to render as `<@…>`)."""
    return bool(_USER_ID.match(text))
