"""Block Kit → plain text, as a person would read it in Slack (used by the offline demo's transcript)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["mrkdwn_to_text", "render_blocks", "render_message", "render_view"]

COLUMN = 38
DIVIDER = "─" * 40
_LINK = re.compile(r"<([^<>]+)>")


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
    """Return mrkdwn as Slack displays it: mentions and links resolved, `&lt;`-style escapes undone."""
    return html.unescape(_LINK.sub(_link, text))


def _text(obj: Any) -> str:
    """Return the display text of a text object (plain_text or mrkdwn) or a bare string."""
    if isinstance(obj, str):
        return obj
    if not isinstance(obj, Mapping):
        return ""
    text = str(obj.get("text") or "")
    return mrkdwn_to_text(text) if obj.get("type") == "mrkdwn" else text


def _option_text(option: Any) -> str:
    return _text(option.get("text")) if isinstance(option, Mapping) else ""


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


def _label_value(text: str) -> str:
    """Turn a field written as `*Label*` over its value into one line: `Label: value`."""
    head, newline, rest = text.partition("\n")
    if newline and head.startswith("*") and head.endswith("*") and len(head) > 2 and "\n" not in rest:
        return f"{head[1:-1]}: {rest}"
    return text


def _fields(fields: list[Any]) -> list[str]:
    texts = [_label_value(_text(f)) for f in fields]
    lines: list[str] = []
    for i in range(0, len(texts), 2):
        pair = texts[i : i + 2]
        if len(pair) == 2 and "\n" not in pair[0] and len(pair[0]) < COLUMN:
            lines.append(f"{pair[0]:<{COLUMN}}{pair[1]}".rstrip())
        else:
            lines.extend(t for t in pair)
    return [line for chunk in lines for line in chunk.split("\n")]


def _block(block: Mapping[str, Any], errors: Mapping[str, str]) -> list[str]:
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


def render_blocks(blocks: Any, *, errors: Mapping[str, str] | None = None) -> list[str]:
    """Return the lines a list of blocks shows (`errors` maps block_id → a field error under that block)."""
    lines: list[str] = []
    for block in blocks if isinstance(blocks, list) else []:
        if isinstance(block, Mapping):
            lines.extend(_block(block, errors or {}))
    return lines


def render_message(message: Mapping[str, Any], *, prefix: str = "") -> str:
    """Return a message (chat.postMessage / conversations.history shape) as readable text."""
    lines = render_blocks(message.get("blocks"))
    if not lines:
        lines = mrkdwn_to_text(str(message.get("text") or "")).split("\n")
    return "\n".join(f"{prefix}{line}".rstrip() for line in lines)


def render_view(view: Mapping[str, Any], *, errors: Mapping[str, str] | None = None, prefix: str = "") -> str:
    """Return a modal as readable text: title, blocks (with field errors), then its Close/Submit buttons."""
    title = _text(view.get("title"))
    lines = [f"╭─ {title} ─╮" if title else "╭─╮", *render_blocks(view.get("blocks"), errors=errors)]
    buttons = [f"[ {_text(view[key])} ]" for key in ("close", "submit") if isinstance(view.get(key), Mapping)]
    if buttons:
        lines.append("  ".join(buttons))
    return "\n".join(f"{prefix}{line}".rstrip() for line in lines)
