"""Logging: credentials are redacted, library tracebacks are one line, Bolt's token warning is dropped."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

from bot.logs import RedactingFormatter, configure_logging, redact


@pytest.mark.parametrize(
    ("secret", "shown"),
    [
        ("xoxb-1234-5678-abcdef", "[redacted]"),
        ("xapp-1-A0-123-abc", "[redacted]"),
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer [redacted]"),
        ("X-Auth-Key: 0123456789abcdef", "X-Auth-Key: [redacted]"),
        ("token=verif123&team_id=T1", "token=[redacted]&team_id=T1"),
    ],
)
def test_credentials_are_redacted(secret: str, shown: str) -> None:
    assert redact(f"before {secret} after") == f"before {shown} after"


def _record(name: str, error: Exception) -> logging.LogRecord:
    try:
        raise error
    except type(error):
        return logging.LogRecord(
            name, logging.ERROR, __file__, 1, "failed: %s", ("xoxb-leak-1",), sys.exc_info()
        )


def test_a_library_exception_is_one_line_and_redacted() -> None:
    formatter = RedactingFormatter("%(name)s: %(message)s")
    line = formatter.format(_record("slack_bolt.AsyncApp", ConnectionError("refused\nby xoxb-9-9")))
    assert line == "slack_bolt.AsyncApp: failed: [redacted] [ConnectionError: refused by [redacted]]"


def test_sweeps_own_exceptions_keep_their_traceback() -> None:
    formatter = RedactingFormatter("%(name)s: %(message)s")
    text = formatter.format(_record("sweep.handlers", ValueError("bad")))
    assert text.startswith("sweep.handlers: failed: [redacted]\nTraceback (most recent call last):")
    assert text.rstrip().endswith("ValueError: bad")


def test_library_tracebacks_are_kept_when_asked_for() -> None:
    formatter = RedactingFormatter("%(name)s: %(message)s", library_tracebacks=True)
    assert "Traceback (most recent call last):" in formatter.format(_record("slack_sdk", OSError("x")))


@pytest.fixture
def captured_root() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("INFO")
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def test_bolts_unused_token_warning_is_dropped_and_its_other_warnings_are_not(
    captured_root: io.StringIO,
) -> None:
    bolt = logging.getLogger("slack_bolt.AsyncApp")
    bolt.warning(warning_client_prioritized_and_token_skipped())
    bolt.warning("something else")
    configure_logging("INFO")  # configuring twice does not stack filters
    assert len(bolt.filters) == 1
    assert "will be unused" not in captured_root.getvalue()
    assert "something else" in captured_root.getvalue()
