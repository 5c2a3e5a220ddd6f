"""Small Block Kit helpers shared by every builder: escaping, truncation, common blocks, formatting.

Every mrkdwn text object is `verbatim`: Slack then does no automatic parsing (no bare `@channel`,
no auto-linked URLs), and the only markup is what we write ourselves. User strings additionally go
through `escape`, so `<!channel>` or `<https://evil|bank>` render as literal text.

Every text Sweep shows passes through `mrkdwn`, `plain_text` or `message` (the fallback text), and
those three remove direction overrides, zero-width and other invisible characters and turn control
characters into spaces (`bot.text`), whatever the builder and wherever the string came from.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from bot.models import UNKNOWN_COUNT
from bot.slack_limits import (
    BUTTON_TEXT_MAX,
    BUTTON_VALUE_MAX,
    CONFIRM_BUTTON_MAX,
    CONFIRM_TEXT_MAX,
    CONFIRM_TITLE_MAX,
    CONTEXT_ELEMENTS_MAX,
    HEADER_TEXT_MAX,
    SECTION_FIELD_MAX,
    SECTION_TEXT_MAX,
    is_user_id,
)
from bot.text import one_line, visible

ELLIPSIS = "…"

FALLBACK_SHOWN_MAX = 3000
"""How much of a message's fallback `text` Sweep sends (Slack's own limit is far higher): notifications
and screen readers read it, and no Sweep message needs more."""

_DANGLING_ENTITY = re.compile(r"&[a-z]{0,4}$")


def escape(text: str) -> str:
    """Escape `&`, `<` and `>` so Slack renders the text literally in mrkdwn."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """Shorten text to at most `limit` characters, ending with an ellipsis when cut.

    A cut never leaves half of an `&amp;`-style entity or an unclosed `<…>` token of our own.
    """
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if limit == 1:
        return ELLIPSIS
    cut = text[: limit - 1]
    cut = _DANGLING_ENTITY.sub("", cut)
    opening = cut.rfind("<")
    if opening != -1 and ">" not in cut[opening:]:
        cut = cut[:opening]
    return cut + ELLIPSIS


def safe(text: str | None, limit: int, *, empty: str = "—") -> str:
    """Escape then truncate a user-supplied string for mrkdwn; render None or blank as `empty`."""
    if text is None or not text.strip():
        return empty
    return truncate(escape(_one_line(text)), limit)


def safe_multiline(text: str | None, limit: int, *, empty: str = "—") -> str:
    """Like `safe` but keep line breaks (for comments)."""
    if text is None or not text.strip():
        return empty
    return truncate(escape(visible(text).strip()), limit)


def plain(text: str | None, limit: int, *, empty: str = "—") -> str:
    """Truncate a string for a plain_text object (no escaping needed: plain text is never parsed)."""
    if text is None or not text.strip():
        return empty
    return truncate(_one_line(text), limit)


def _one_line(text: str) -> str:
    """Drop invisible characters; collapse control characters and line breaks to spaces."""
    return one_line(text)


def mention(user_id: str | None, *, empty: str = "—") -> str:
    """Render a Slack user id as a mention when it looks like one, else as escaped text."""
    if user_id is None or not user_id:
        return empty
    if is_user_id(user_id):
        return f"<@{user_id}>"
    return safe(user_id, 64)


def message_link(channel_id: str, ts: str) -> str:
    """Return a link to a Slack message (Slack redirects it to the workspace)."""
    return f"https://slack.com/archives/{channel_id}/p{ts.replace('.', '')}"


def mrkdwn(text: str) -> dict[str, Any]:
    """Return a verbatim mrkdwn text object (invisible characters removed)."""
    return {"type": "mrkdwn", "text": visible(text), "verbatim": True}


def plain_text(text: str, *, limit: int = SECTION_TEXT_MAX) -> dict[str, Any]:
    """Return a plain_text object (emoji shortcodes rendered), truncated to `limit`."""
    return {"type": "plain_text", "text": truncate(visible(text), limit) or " ", "emoji": True}


def section(
    text: str, *, block_id: str | None = None, accessory: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Return a section block with (already escaped) mrkdwn text, truncated to Slack's 3000 chars."""
    block: dict[str, Any] = {"type": "section", "text": mrkdwn(truncate(text, SECTION_TEXT_MAX) or " ")}
    if block_id is not None:
        block["block_id"] = block_id
    if accessory is not None:
        block["accessory"] = accessory
    return block


def fields_section(pairs: list[tuple[str, str]], *, text: str | None = None) -> dict[str, Any]:
    """Return a section of up to 10 `*label*\\nvalue` fields (values already escaped), each ≤ 2000 chars."""
    fields = [mrkdwn(truncate(f"*{label}*\n{value}", SECTION_FIELD_MAX)) for label, value in pairs[:10]]
    block: dict[str, Any] = {"type": "section", "fields": fields}
    if text is not None:
        block["text"] = mrkdwn(truncate(text, SECTION_TEXT_MAX))
    return block


def context(*texts: str) -> dict[str, Any]:
    """Return a context block of up to 10 (already escaped) mrkdwn elements."""
    elements = [mrkdwn(truncate(t, SECTION_TEXT_MAX)) for t in texts if t][:CONTEXT_ELEMENTS_MAX]
    return {"type": "context", "elements": elements or [mrkdwn(" ")]}


def header(text: str) -> dict[str, Any]:
    """Return a header block (plain text, ≤ 150 chars)."""
    return {"type": "header", "text": plain_text(text, limit=HEADER_TEXT_MAX)}


def divider() -> dict[str, Any]:
    """Return a divider block."""
    return {"type": "divider"}


def confirm_dialog(*, title: str, text: str, confirm: str, deny: str, danger: bool = False) -> dict[str, Any]:
    """Return a confirmation dialog object (plain text, within Slack's 100/300/30/30 limits)."""
    dialog: dict[str, Any] = {
        "title": plain_text(title, limit=CONFIRM_TITLE_MAX),
        "text": plain_text(text, limit=CONFIRM_TEXT_MAX),
        "confirm": plain_text(confirm, limit=CONFIRM_BUTTON_MAX),
        "deny": plain_text(deny, limit=CONFIRM_BUTTON_MAX),
    }
    if danger:
        dialog["style"] = "danger"
    return dialog


def button(
    text: str,
    *,
    action_id: str,
    value: str,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a button element; text ≤ 75 chars, value ≤ 2000 (a longer value is a bug: it raises)."""
    if len(value) > BUTTON_VALUE_MAX:
        raise ValueError(f"button value is {len(value)} chars; Slack allows {BUTTON_VALUE_MAX}")
    element: dict[str, Any] = {
        "type": "button",
        "text": plain_text(text, limit=BUTTON_TEXT_MAX),
        "action_id": action_id,
        "value": value,
    }
    if style is not None:
        element["style"] = style
    if confirm is not None:
        element["confirm"] = confirm
    return element


def actions(*elements: dict[str, Any], block_id: str | None = None) -> dict[str, Any]:
    """Return an actions block."""
    block: dict[str, Any] = {"type": "actions", "elements": list(elements)}
    if block_id is not None:
        block["block_id"] = block_id
    return block


def message(text: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Return a message payload: a plain fallback `text` (never empty) and its blocks."""
    return {"text": truncate(visible(text), FALLBACK_SHOWN_MAX) or "Sweep", "blocks": blocks}


def progress_bar(done: int, total: int, width: int = 20) -> str:
    """Return a text progress bar like `▓▓▓▓▓░░░░░ 50%` (floored, so 100% means really done)."""
    width = max(width, 1)
    if total <= 0:
        return "░" * width + " 0%"
    done = min(max(done, 0), total)
    filled = done * width // total
    percent = done * 100 // total
    return "▓" * filled + "░" * (width - filled) + f" {percent}%"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def format_age(created: datetime, now: datetime) -> str:
    """Return how long ago `created` was, e.g. `just now`, `5 min ago`, `3 h ago`, `2 d ago`."""
    seconds = int((_aware(now) - _aware(created)).total_seconds())
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        hours, rest = divmod(seconds, 3600)
        minutes = rest // 60
        return f"{hours} h {minutes} min ago" if hours < 3 and minutes else f"{hours} h ago"
    return f"{seconds // 86400} d ago"


def format_time(value: datetime | None) -> str:
    """Return a datetime as `2026-11-23 07:00 UTC` (a SOC's shared clock), or `—`."""
    if value is None:
        return "—"
    return _aware(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_count(value: int | None) -> str:
    """Return a count with thousands separators (`1,234`); `—` if not reported, `unknown` if impossible."""
    if value is None:
        return "—"
    if value == UNKNOWN_COUNT:
        return "unknown"
    return f"{value:,}"


def plural(count: int, word: str, plural_word: str | None = None) -> str:
    """Return `1 message` / `2 messages` with thousands separators."""
    return f"{format_count(count)} {word if count == 1 else (plural_word or word + 's')}"
