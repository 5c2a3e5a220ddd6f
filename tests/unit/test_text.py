"""`visible` and `one_line` skip the translation only for texts it would leave unchanged.

Both first search for any character their table changes (fast, in C) and translate only when one is
found, so the search must find exactly those characters: checked over every code point, then on
random texts against the plain translation.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot import text
from bot.text import INVISIBLE, one_line, visible

EVERY_CHARACTER = "".join(chr(code) for code in range(0x110000))


def _slow_visible(value: str) -> str:
    return value.replace("\r\n", "\n").translate(text._MULTILINE)


def _slow_one_line(value: str) -> str:
    return value.replace("\r\n", "\n").translate(text._ONE_LINE).strip()


def test_the_search_finds_exactly_the_characters_the_translation_changes() -> None:
    for table, changes in (
        (text._MULTILINE, text._MULTILINE_CHANGES),
        (text._ONE_LINE, text._ONE_LINE_CHANGES),
    ):
        changed = {ch for ch in EVERY_CHARACTER if ch.translate(table) != ch}
        assert set(changes.findall(EVERY_CHARACTER)) == changed
        assert "\r" in changed and "\u202e" in changed and "\ud800" in changed and "a" not in changed


SPECIAL = [*INVISIBLE, *"\r\n\t\x00\x1f\x7f\x85\x9f\u2028\u2029\ud800\udfff", "\r\n", " "]


@given(st.lists(st.sampled_from(SPECIAL) | st.text(max_size=5), max_size=20).map("".join))
def test_random_texts_are_cleaned_as_the_translation_cleans_them(value: str) -> None:
    assert visible(value) == _slow_visible(value)
    assert one_line(value) == _slow_one_line(value)


def test_a_clean_text_is_returned_as_it_is() -> None:
    clean = "Usage: `/sweep move from:<sender> to:junk` — naïve, 日本, 👨👩\nsecond line"
    assert visible(clean) is clean
    assert one_line("  padded  ") == "padded"
