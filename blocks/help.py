"""`/sweep help`: every command, examples and folder names, from the grammar itself (never out of date).

The grammar's text contains `<folder>`-style placeholders: it is escaped like user text, even in code.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from typing import Any

from blocks._describe import destination_label
from blocks._kit import context, escape, header, message, section, truncate
from bot.grammar import FOLDER_ALIASES, HELP_EXAMPLES, USAGE
from bot.slack_limits import SECTION_TEXT_MAX


def _example_lines() -> list[str]:
    lines: list[str] = []
    for example in HELP_EXAMPLES:
        if isinstance(example, tuple | list) and len(example) == 2:
            command, meaning = example
            lines.append(f"• `{escape(str(command))}`\n    {escape(str(meaning))}")
        else:
            lines.append(f"• `{escape(str(example))}`")
    return lines


def _folder_lines() -> list[str]:
    aliases: dict[str, list[str]] = defaultdict(list)
    for alias, destination in FOLDER_ALIASES.items():
        aliases[str(destination)].append(alias)
    return [
        f"• {escape(destination_label(folder))}: {', '.join(f'`{escape(a)}`' for a in sorted(names))}"
        for folder, names in aliases.items()
    ]


def build_help() -> dict[str, Any]:
    """Build the help message: usage, examples, folder names, and how confirmation works.

    It depends on the grammar alone, so it is built once (it is the ack of `/sweep help`). Each
    caller gets its own message and block list; the blocks themselves are shared: read, never change.
    """
    built = _help_message()
    return {"text": built["text"], "blocks": list(built["blocks"])}


@functools.cache
def _help_message() -> dict[str, Any]:
    blocks = [
        header("Sweep: bulk actions on email"),
        section(f"*Usage*\n```{truncate(escape(USAGE), 2900)}```"),
    ]
    examples = _example_lines()
    if examples:
        blocks.append(section(truncate("*Examples*\n" + "\n".join(examples), SECTION_TEXT_MAX)))
    folders = _folder_lines()
    if folders:
        blocks.append(section(truncate("*Folders*\n" + "\n".join(folders), SECTION_TEXT_MAX)))
    blocks.append(
        context(
            "Every create shows a preview first and does nothing until you confirm. "
            "Permanent deletes and releases ask for an extra confirmation."
        )
    )
    return message("Sweep help: " + truncate(escape(USAGE), 2000), blocks)
