"""Characters that make a text read differently from what it is: one definition for input and output.

Direction overrides and isolates can make `invoice\u202efdp.exe` read as `invoiceexe.pdf`; zero-width
characters hide inside a word (`pay\u200bpal` looks like `paypal` but is not the same search); tag
characters carry invisible ASCII. The grammar and the create form refuse them when typed (a search for
what the user cannot see would surprise them), and every string Sweep shows in Slack has them removed
and control characters turned into spaces (Cloudflare's comments, subjects, senders and messages are
whatever the mail or another tool put there).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["BIDI_CONTROLS", "INVISIBLE", "ZERO_WIDTH", "is_control", "one_line", "visible"]

#: Bidirectional formatting characters: marks, embeddings, overrides and isolates.
BIDI_CONTROLS = frozenset(
    "\u061c"  # ARABIC LETTER MARK
    "\u200e\u200f"  # LEFT-TO-RIGHT / RIGHT-TO-LEFT MARK
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings, POP DIRECTIONAL FORMATTING, overrides
    "\u2066\u2067\u2068\u2069"  # isolates
)
#: Characters with no width (or no glyph) that split or join what the reader sees as one word.
ZERO_WIDTH = frozenset(
    "\u00ad"  # SOFT HYPHEN
    "\u180e"  # MONGOLIAN VOWEL SEPARATOR
    "\u200b\u200c\u200d"  # ZERO WIDTH SPACE / NON-JOINER / JOINER
    "\u2060\u2061\u2062\u2063\u2064"  # WORD JOINER and the invisible math operators
    "\ufeff"  # ZERO WIDTH NO-BREAK SPACE (byte order mark)
    "\ufff9\ufffa\ufffb"  # interlinear annotation
)
_TAGS = frozenset(chr(code) for code in (0xE0001, *range(0xE0020, 0xE0080)))
#: Everything Sweep refuses in typed input and removes from what it shows (controls are separate).
INVISIBLE: frozenset[str] = BIDI_CONTROLS | ZERO_WIDTH | _TAGS

_LINE_BREAKS = "\n\u2028\u2029\u0085"


def is_control(ch: str) -> bool:
    """Return True for a control character (C0, DEL, C1; tab and line breaks included)."""
    return unicodedata.category(ch) == "Cc"


def _table(*, keep_newlines: bool) -> dict[int, str | None]:
    table: dict[int, str | None] = {ord(ch): None for ch in INVISIBLE}
    for code in (*range(0x20), *range(0x7F, 0xA0)):
        table[code] = " "
    for ch in _LINE_BREAKS:
        table[ord(ch)] = "\n" if keep_newlines else " "
    table[ord("\r")] = "\n" if keep_newlines else " "
    for code in range(0xD800, 0xE000):  # a lone surrogate cannot be sent as UTF-8
        table[code] = "\ufffd"
    return table


def _changes(table: dict[int, str | None]) -> re.Pattern[str]:
    """Return a pattern matching any character that `table` changes (as ranges of code points).

    `str.translate` with a dict costs a lookup per character (~80 ns: a 1,000-character help text
    takes 80 µs); a regex search for a character class runs in C at a few ns per character, and
    almost every text has nothing to change.
    """
    ranges: list[list[int]] = []
    for code in sorted(code for code, to in table.items() if to != chr(code)):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    parts = (re.escape(chr(a)) + (f"-{re.escape(chr(b))}" if b > a else "") for a, b in ranges)
    return re.compile(f"[{''.join(parts)}]")


_MULTILINE = _table(keep_newlines=True)
_ONE_LINE = _table(keep_newlines=False)
_MULTILINE_CHANGES = _changes(_MULTILINE)
_ONE_LINE_CHANGES = _changes(_ONE_LINE)


def visible(text: str) -> str:
    """Return `text` without invisible characters, controls as spaces, line breaks kept as `\\n`."""
    if _MULTILINE_CHANGES.search(text) is None:
        return text  # nothing to translate (`\r` is one of the characters searched for)
    return text.replace("\r\n", "\n").translate(_MULTILINE)


def one_line(text: str) -> str:
    """Return `text` without invisible characters, controls and line breaks as spaces, stripped."""
    if _ONE_LINE_CHANGES.search(text) is None:
        return text.strip()
    return text.replace("\r\n", "\n").translate(_ONE_LINE).strip()
