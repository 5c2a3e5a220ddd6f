"""A one-line ephemeral notice ("Creating the job…", "Nothing was created.")."""

from __future__ import annotations

from typing import Any

from blocks._kit import message, section


def build_notice(text: str) -> dict[str, Any]:
    """Build a short message from Sweep's own mrkdwn (mentions and `<#C…>` allowed).

    The caller writes `text`: any user-supplied part must go through `blocks._kit.escape` first.
    """
    return message(text, [section(text)])
