"""Logging: credentials are redacted, library tracebacks are one line, Bolt's token warning is dropped."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

from bot.followups import FollowUps
from bot.logs import (
    JsonFormatter,
    LogFields,
    RedactingFormatter,
    bind_log_fields,
    configure_logging,
    log_fields,
    redact,
)


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


# ------------------------------------------------------------------ SWEEP_LOG_FORMAT=json


def _json(formatter: logging.Formatter, record: logging.LogRecord) -> dict[str, str]:
    line = formatter.format(record)
    assert "\n" not in line, "one JSON object per line"
    parsed = json.loads(line)
    assert isinstance(parsed, dict)
    return parsed


def _plain(name: str, message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_a_json_line_has_time_level_logger_message_and_the_context_known() -> None:
    token = bind_log_fields(request="block_actions:123.456", user="U0OPERATOR")
    try:
        record = _plain("sweep.jobs", "created job %s", "J1", job_id="J1")
        record.created = datetime(2026, 12, 1, 9, 30, 5, 250000, tzinfo=UTC).timestamp()
        line = _json(JsonFormatter(), record)
    finally:
        log_fields.reset(token)
    assert line == {
        "time": "2026-12-01T09:30:05.250+00:00",
        "level": "INFO",
        "logger": "sweep.jobs",
        "message": "created job J1",
        "job_id": "J1",
        "request": "block_actions:123.456",
        "user": "U0OPERATOR",
    }
    # Outside that context, and with no extra, there are no context fields at all.
    assert set(_json(JsonFormatter(), _plain("sweep", "hello"))) == {"time", "level", "logger", "message"}


def test_extra_wins_over_the_context() -> None:
    token = bind_log_fields(job_id="J-context")
    try:
        assert _json(JsonFormatter(), _plain("sweep", "x", job_id="J-extra"))["job_id"] == "J-extra"
        assert _json(JsonFormatter(), _plain("sweep", "x"))["job_id"] == "J-context"
    finally:
        log_fields.reset(token)


def test_every_json_field_is_redacted() -> None:
    token = bind_log_fields(request="token=verif123", user="xoxb-in-user-1")
    try:
        record = _plain("sweep.x", "calling with Bearer abc.def", job_id="xapp-1-A-1-b")
        line = JsonFormatter().format(record)
        parsed = _json(JsonFormatter(), record)
    finally:
        log_fields.reset(token)
    for secret in ("abc.def", "verif123", "xoxb-in-user-1", "xapp-1-A-1-b"):
        assert secret not in line
    assert parsed["message"] == "calling with Bearer [redacted]"
    assert parsed["request"] == "token=[redacted]"
    assert parsed["user"] == "[redacted]" and parsed["job_id"] == "[redacted]"
    failed = _json(JsonFormatter(), _record("sweep.app", ValueError("bad xoxb-9-9")))
    assert "xoxb" not in failed["message"] + failed["exception"]


def test_json_exceptions_are_one_field_library_ones_a_summary_unless_debug() -> None:
    library = _json(JsonFormatter(), _record("slack_bolt.AsyncApp", ConnectionError("refused\nby host")))
    assert library["exception"] == "ConnectionError: refused by host"
    own = _json(JsonFormatter(), _record("sweep.handlers", ValueError("bad")))
    assert own["exception"].startswith("Traceback (most recent call last):")
    assert own["exception"].rstrip().endswith("ValueError: bad")
    debug = _json(JsonFormatter(library_tracebacks=True), _record("slack_sdk", OSError("x")))
    assert debug["exception"].startswith("Traceback (most recent call last):")


def test_configure_logging_json_writes_json_lines(captured_root: io.StringIO) -> None:
    root = logging.getLogger()
    configure_logging("INFO", "json")
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler) and isinstance(handler.formatter, JsonFormatter)
    handler.setStream(captured_root)
    logging.getLogger("sweep.test").info("two\nlines xoxb-1-2")
    (line,) = captured_root.getvalue().splitlines()
    assert json.loads(line)["message"] == "two\nlines [redacted]"
    configure_logging("INFO")  # the default stays text
    assert isinstance(root.handlers[0].formatter, RedactingFormatter)


async def test_a_follow_up_logs_what_its_request_was_about() -> None:
    follow_ups = FollowUps(quiet_seconds=0, max_defer_seconds=0)
    seen: list[LogFields] = []

    async def work() -> None:
        seen.append(log_fields.get())

    async def on_error(error: Exception) -> None:
        raise AssertionError(error)

    async def listener() -> None:
        # As the request middleware does: set for the request's task, never reset.
        bind_log_fields(request="command:T1", user="U1")
        follow_ups.submit(work, on_error=on_error, label="deferred")
        follow_ups.submit(work, on_error=on_error, label="urgent", urgent=True)

    await asyncio.create_task(listener())
    follow_ups.submit(work, on_error=on_error, label="no request")
    assert await follow_ups.drain(timeout=5) == 0
    assert sorted(seen, key=lambda f: f.request or "") == [
        LogFields(),
        LogFields(request="command:T1", user="U1"),
        LogFields(request="command:T1", user="U1"),
    ]
