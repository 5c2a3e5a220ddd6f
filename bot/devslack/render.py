"""Block Kit → plain text, as a person would read it in Slack (used by the offline demo's transcript)."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "display_width",
    "mrkdwn_to_display",
    "mrkdwn_to_text",
    "render_blocks",
    "render_confirm",
    "render_message",
    "render_view",
]

COLUMN = 38
DIVIDER = "─" * 40
_LINK = re.compile(r"<([^<>]+)>")
_CODE = re.compile(r"```(.*?)```|(`[^`\n]+`)", re.DOTALL)
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])")
_EMOJI_NAME = re.compile(r":([a-z0-9_+-]*[a-z][a-z0-9_+-]*):")
_QUOTE = re.compile(r"^(?:>|&gt;)", re.MULTILINE)

#: Slack emoji names as a terminal shows them (text presentation, so widths are predictable);
#: a name not listed stays `:name:`, as Slack shows an emoji it does not know.
EMOJI: dict[str, str] = {
    "white_check_mark": "✅",
    "heavy_check_mark": "✔",
    "x": "❌",
    "gear": "⚙",
    "mag": "🔍",
    "hourglass_flowing_sand": "⏳",
    "hourglass": "⌛",
    "no_entry_sign": "🚫",
    "no_entry": "⛔",
    "fast_forward": "⏩",
    "warning": "⚠",
    "wastebasket": "🗑",
    "grey_question": "❔",
    "question": "❓",
    "cloud": "☁",
    "large_blue_circle": "🔵",
    "red_circle": "🔴",
    "white_circle": "⚪",
    "information_source": "ℹ",
    "rotating_light": "🚨",
    "lock": "🔒",
    "email": "📧",
    "inbox_tray": "📥",
    "eyes": "👀",
    "tada": "🎉",
    "+1": "👍",
    "thumbsup": "👍",
}


def _link(match: re.Match[str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f"@{label or target[1:]}"
    if target.startswith("#"):
        return f"#{label or target[1:]}"
    if target.startswith("!subteam^"):
        return label if label.startswith("@") else f"@{label or target.removeprefix('!subteam^')}"
    if target.startswith("!date^"):
        return label or target
    if target.startswith("!"):
        return f"@{label or target[1:]}"
    return f"{label} ({target})" if label and label != target else target


def mrkdwn_to_text(text: str) -> str:
    """Return mrkdwn with mentions and links resolved and `&lt;`-style escapes undone (formatting kept)."""
    return html.unescape(_LINK.sub(_link, text))


def _emoji(match: re.Match[str]) -> str:
    return EMOJI.get(match.group(1), match.group(0))


def _format(text: str) -> str:
    """Apply Slack's formatting to mrkdwn outside code: bold, italic, strike, emoji, quotes, links."""
    text = _QUOTE.sub("│ ", text)
    text = _LINK.sub(_link, text)
    for pattern in (_BOLD, _ITALIC, _STRIKE):
        text = pattern.sub(r"\1", text)
    return html.unescape(_EMOJI_NAME.sub(_emoji, text))


def mrkdwn_to_display(text: str) -> str:
    """Return mrkdwn as a person reads it in Slack, in plain text.

    Bold, italic and strike marks are dropped, emoji names become emoji, `>` quotes get a bar, and
    mentions and links are resolved. Code is left as written: inline code keeps its backticks, a
    code block loses its fences.
    """
    parts: list[str] = []
    position = 0
    for match in _CODE.finditer(text):
        parts.append(_format(text[position : match.start()]))
        block, inline = match.group(1), match.group(2)
        parts.append(html.unescape(block.strip("\n")) if block is not None else html.unescape(inline))
        position = match.end()
    parts.append(_format(text[position:]))
    return "".join(parts)


def display_width(text: str) -> int:
    """Return how many terminal columns `text` takes (wide characters such as most emoji take two)."""
    return sum(
        0
        if unicodedata.combining(char) or char == "\ufe0f"
        else 2
        if unicodedata.east_asian_width(char) in ("W", "F")
        else 1
        for char in text
    )


def _pad(text: str, width: int) -> str:
    return text + " " * max(width - display_width(text), 0)


def _text(obj: Any) -> str:
    """Return the display text of a text object (plain_text or mrkdwn) or a bare string."""
    if isinstance(obj, str):
        return obj
    if not isinstance(obj, Mapping):
        return ""
    text = str(obj.get("text") or "")
    return mrkdwn_to_display(text) if obj.get("type") == "mrkdwn" else text


def _option_text(option: Any) -> str:
    return _text(option.get("text")) if isinstance(option, Mapping) else ""


def _date_time(epoch: Any) -> str:
    """Return a datetimepicker's unix time as a date and time (UTC: the demo's shared clock)."""
    try:
        return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(epoch)


def _with_state(element: Mapping[str, Any], value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """Return the element showing what the person entered (`view.state.values` entry), if anything."""
    if not value:
        return element
    changed = dict(element)
    for key, initial in (
        ("value", "initial_value"),
        ("selected_option", "initial_option"),
        ("selected_options", "initial_options"),
        ("selected_date", "initial_date"),
        ("selected_time", "initial_time"),
        ("selected_date_time", "initial_date_time"),
    ):
        if key in value:
            changed[initial] = value[key]
    return changed


def _element(element: Mapping[str, Any]) -> str:
    """Return an interactive element as a person sees it: `[ Cancel ]`, `[ Choose ▾ ]`, `(•) Move`…"""
    kind = element.get("type")
    if kind == "button":
        return f"[ {_text(element.get('text'))} ]"
    if kind in (
        "static_select",
        "external_select",
        "users_select",
        "conversations_select",
        "channels_select",
    ):
        chosen = element.get("initial_option")
        label = _option_text(chosen) if chosen else _text(element.get("placeholder")) or "Select"
        return f"[ {label} ▾ ]"
    if kind in ("multi_static_select", "multi_users_select"):
        chosen = [_option_text(o) for o in element.get("initial_options") or []]
        return f"[ {', '.join(chosen) or _text(element.get('placeholder')) or 'Select'} ▾ ]"
    if kind == "overflow":
        return "[ … ]"
    if kind in ("radio_buttons", "checkboxes"):
        initial = element.get("initial_options") or (
            [element["initial_option"]] if element.get("initial_option") else []
        )
        chosen = {o.get("value") for o in initial if isinstance(o, Mapping)}
        on, off = ("(•)", "( )") if kind == "radio_buttons" else ("[x]", "[ ]")
        return "  ".join(
            f"{on if o.get('value') in chosen else off} {_option_text(o)}"
            for o in element.get("options") or []
            if isinstance(o, Mapping)
        )
    if kind in ("datepicker", "timepicker", "datetimepicker"):
        initial = (
            element.get("initial_date") or element.get("initial_time") or element.get("initial_date_time")
        )
        if kind == "datetimepicker" and initial is not None:
            initial = _date_time(initial)
        return f"[ {initial or _text(element.get('placeholder')) or kind} ]"
    if kind in ("plain_text_input", "email_text_input", "url_text_input", "number_input"):
        return str(element.get("initial_value") or "") or "____"
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    if kind in ("mrkdwn", "plain_text"):
        return _text(element)
    return f"[{kind}]"


def _rich_text(elements: Any) -> str:
    parts: list[str] = []
    for element in elements if isinstance(elements, list) else []:
        if not isinstance(element, Mapping):
            continue
        kind = element.get("type")
        if kind == "text":
            parts.append(str(element.get("text", "")))
        elif kind == "link":
            parts.append(str(element.get("text") or element.get("url", "")))
        elif kind == "user":
            parts.append(f"@{element.get('user_id', '')}")
        elif kind == "channel":
            parts.append(f"#{element.get('channel_id', '')}")
        elif kind == "emoji":
            parts.append(f":{element.get('name', '')}:")
        elif "elements" in element:
            separator = "\n" if kind in ("rich_text_list",) else ""
            inner = _rich_text(element["elements"])
            parts.append(separator + inner if separator else inner)
    return "".join(parts)


def _label_value(field: Any) -> str:
    """Turn a field written as `*Label*` over its value into one line: `Label: value`."""
    raw = field.get("text") if isinstance(field, Mapping) and field.get("type") == "mrkdwn" else None
    if isinstance(raw, str):
        head, newline, rest = raw.partition("\n")
        if newline and head.startswith("*") and head.endswith("*") and len(head) > 2 and "\n" not in rest:
            return f"{mrkdwn_to_display(head[1:-1])}: {mrkdwn_to_display(rest)}"
    return _text(field)


def _fields(fields: list[Any]) -> list[str]:
    texts = [_label_value(f) for f in fields]
    lines: list[str] = []
    for i in range(0, len(texts), 2):
        pair = texts[i : i + 2]
        if len(pair) == 2 and "\n" not in pair[0] and display_width(pair[0]) < COLUMN:
            lines.append(f"{_pad(pair[0], COLUMN)}{pair[1]}".rstrip())
        else:
            lines.extend(t for t in pair)
    return [line for chunk in lines for line in chunk.split("\n")]


def _block(
    block: Mapping[str, Any], errors: Mapping[str, str], state: Mapping[str, Any] | None = None
) -> list[str]:
    kind = block.get("type")
    lines: list[str] = []
    if kind == "header":
        lines.append(_text(block.get("text")))
    elif kind == "section":
        text = _text(block.get("text"))
        accessory = block.get("accessory")
        if isinstance(accessory, Mapping) and accessory.get("type") != "image":
            text = f"{text}  {_element(accessory)}" if text else _element(accessory)
        if text:
            lines.extend(text.split("\n"))
        if isinstance(block.get("fields"), list):
            lines.extend(_fields(block["fields"]))
    elif kind == "context":
        parts = [
            _element(e)
            for e in block.get("elements") or []
            if isinstance(e, Mapping) and e.get("type") != "image"
        ]
        lines.extend("  ".join(p for p in parts if p).split("\n"))
    elif kind == "divider":
        lines.append(DIVIDER)
    elif kind == "actions":
        lines.append("  ".join(_element(e) for e in block.get("elements") or [] if isinstance(e, Mapping)))
    elif kind == "input":
        label = _text(block.get("label"))
        if block.get("optional"):
            label += " (optional)"
        element = block.get("element")
        if isinstance(element, Mapping):
            entered = ((state or {}).get(str(block.get("block_id", ""))) or {}).get(element.get("action_id"))
            element = _with_state(element, entered if isinstance(entered, Mapping) else None)
        lines.append(f"{label}: {_element(element) if isinstance(element, Mapping) else '____'}")
        if block.get("hint"):
            lines.append(f"  {_text(block.get('hint'))}")
    elif kind == "image":
        lines.append(f"[image: {block.get('alt_text', '')}]")
    elif kind == "rich_text":
        lines.extend(_rich_text(block.get("elements")).split("\n"))
    else:
        lines.append(f"[{kind}]")
    error = errors.get(str(block.get("block_id", "")))
    if error:
        lines.append(f"  ⚠ {error}")
    return lines


def render_blocks(
    blocks: Any, *, errors: Mapping[str, str] | None = None, state: Mapping[str, Any] | None = None
) -> list[str]:
    """Return the lines a list of blocks shows.

    `errors` maps block_id → a field error under that block; `state` is a modal's `state.values`
    (what the person typed or picked), shown instead of the inputs' initial values.
    """
    lines: list[str] = []
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, Mapping):
            lines.extend(_block(block, errors or {}, state))
    return lines


def render_message(message: Mapping[str, Any], *, prefix: str = "") -> str:
    """Return a message (chat.postMessage / conversations.history shape) as readable text."""
    lines = render_blocks(message.get("blocks"))
    if not lines:
        lines = mrkdwn_to_display(str(message.get("text") or "")).split("\n")
    return "\n".join(f"{prefix}{line}".rstrip() for line in lines)


def render_confirm(dialog: Mapping[str, Any], *, prefix: str = "") -> str:
    """Return a button's confirmation dialog as Slack shows it: title, text, then Deny and Confirm."""
    title = _text(dialog.get("title")) or "Are you sure?"
    deny = _text(dialog.get("deny")) or "Cancel"
    confirm = _text(dialog.get("confirm")) or "Yes"
    lines = [f"╭─ {title} ─╮", *_text(dialog.get("text")).split("\n"), f"[ {deny} ]  [ {confirm} ]"]
    return "\n".join(f"{prefix}{line}".rstrip() for line in lines)


def render_view(
    view: Mapping[str, Any],
    *,
    errors: Mapping[str, str] | None = None,
    prefix: str = "",
    state: Mapping[str, Any] | None = None,
) -> str:
    """Return a modal as readable text: title, blocks (with field errors), then its Close/Submit buttons.

    `state` (default: the view's own `state.values`) shows what the person has entered so far.
    """
    title = _text(view.get("title"))
    if state is None and isinstance(view.get("state"), Mapping):
        state = view["state"].get("values")
    lines = [
        f"╭─ {title} ─╮" if title else "╭─╮",
        *render_blocks(view.get("blocks"), errors=errors, state=state),
    ]
    buttons = [f"[ {_text(view[key])} ]" for key in ("close", "submit") if isinstance(view.get(key), Mapping)]
    if buttons:
        lines.append("  ".join(buttons))
    return "\n".join(f"{prefix}{line}".rstrip() for line in lines)
