"""Check built payloads against Slack's limits before sending them (used by tests and, cheaply, at runtime).

slack_sdk's models validate only through `to_dict()`, and do not check some limits Slack enforces
(50 blocks per message, 2000 characters per section field, a fallback `text`): those are checked here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.slack_limits import (
    BUTTON_VALUE_MAX,
    MESSAGE_BLOCKS_MAX,
    MESSAGE_TEXT_MAX,
    MODAL_BLOCKS_MAX,
    PRIVATE_METADATA_MAX,
    SECTION_FIELD_MAX,
    SECTION_FIELDS_MAX,
    SECTION_TEXT_MAX,
    TEXT_OBJECT_MAX,
)


class BlockLimitError(ValueError):
    """A payload breaks a Block Kit rule or limit; the message says which and where."""


def _check_block(block: Any, where: str) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise BlockLimitError(f"{where}: not a block dict with a type")
    try:
        parsed = Block.parse(block)
        if parsed is None or type(parsed) is Block:
            raise BlockLimitError(f"{where}: unknown block type {block['type']!r}")
        normalised = parsed.to_dict()
    except SlackObjectFormationError as error:
        raise BlockLimitError(f"{where}: {error}") from error
    if normalised != block:
        # slack_sdk drops keys it does not know: a difference means a misspelt or misplaced key.
        raise BlockLimitError(f"{where}: unknown or misplaced keys (slack_sdk reads it as {normalised})")
    if block["type"] == "section":
        text = block.get("text")
        if text is not None and len(str(text.get("text", ""))) > SECTION_TEXT_MAX:
            raise BlockLimitError(f"{where}: section text over {SECTION_TEXT_MAX} characters")
        fields = block.get("fields") or []
        if len(fields) > SECTION_FIELDS_MAX:
            raise BlockLimitError(f"{where}: more than {SECTION_FIELDS_MAX} fields")
        for index, field in enumerate(fields):
            if len(str(field.get("text", ""))) > SECTION_FIELD_MAX:
                raise BlockLimitError(f"{where}.fields[{index}]: over {SECTION_FIELD_MAX} characters")
        if text is None and not fields:
            raise BlockLimitError(f"{where}: section without text or fields")
    for path, node in _walk(block, where):
        _check_node(node, path)


def _walk(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def _check_node(node: dict[str, Any], path: str) -> None:
    kind = node.get("type")
    if kind in {"plain_text", "mrkdwn"}:
        text = node.get("text")
        if not isinstance(text, str) or not text:
            raise BlockLimitError(f"{path}: empty text object")
        if len(text) > TEXT_OBJECT_MAX:
            raise BlockLimitError(f"{path}: text over {TEXT_OBJECT_MAX} characters")
    if kind == "button":
        value = node.get("value")
        if value is not None and len(str(value)) > BUTTON_VALUE_MAX:
            raise BlockLimitError(f"{path}: button value over {BUTTON_VALUE_MAX} characters")


def _check_action_ids(blocks: list[Any], where: str) -> None:
    seen_blocks: set[str] = set()
    for index, block in enumerate(blocks):
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in seen_blocks:
                raise BlockLimitError(f"{where}[{index}]: duplicate block_id {block_id!r}")
            seen_blocks.add(block_id)
        # Slack rejects two elements with the same action_id in one block.
        elements = list(block.get("elements") or [])
        for key in ("accessory", "element"):
            if isinstance(block.get(key), dict):
                elements.append(block[key])
        ids = [e.get("action_id") for e in elements if isinstance(e, dict) and e.get("action_id")]
        if len(ids) != len(set(ids)):
            raise BlockLimitError(f"{where}[{index}]: duplicate action_id in one block")


def _check_blocks(blocks: Any, limit: int, where: str) -> None:
    if not isinstance(blocks, list):
        raise BlockLimitError(f"{where}: blocks must be a list")
    if len(blocks) > limit:
        raise BlockLimitError(f"{where}: {len(blocks)} blocks, Slack allows {limit}")
    for index, block in enumerate(blocks):
        _check_block(block, f"{where}[{index}]")
    _check_action_ids(blocks, where)


def validate_message(payload: dict[str, Any]) -> None:
    """Raise BlockLimitError unless this `{"text", "blocks"}` message is one Slack accepts."""
    text = payload.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BlockLimitError("message: a plain-text fallback `text` is required")
    if len(text) > MESSAGE_TEXT_MAX:
        raise BlockLimitError(f"message: text over {MESSAGE_TEXT_MAX} characters")
    blocks = payload.get("blocks")
    if blocks is not None:
        _check_blocks(blocks, MESSAGE_BLOCKS_MAX, "blocks")


def validate_view(view: dict[str, Any]) -> None:
    """Raise BlockLimitError unless this modal view is one Slack accepts."""
    if view.get("type") != "modal":
        raise BlockLimitError("view: type must be 'modal'")
    blocks = view.get("blocks")
    if not blocks:
        raise BlockLimitError("view: at least one block is required")
    _check_blocks(blocks, MODAL_BLOCKS_MAX, "view.blocks")
    metadata = view.get("private_metadata")
    if metadata is not None and len(metadata) > PRIVATE_METADATA_MAX:
        raise BlockLimitError(f"view: private_metadata over {PRIVATE_METADATA_MAX} characters")
    has_input = any(isinstance(b, dict) and b.get("type") == "input" for b in blocks)
    if has_input and view.get("submit") is None:
        raise BlockLimitError("view: a modal with input blocks needs a submit button")
    try:
        View(**view).to_dict()
    except (SlackObjectFormationError, TypeError) as error:
        raise BlockLimitError(f"view: {error}") from error
