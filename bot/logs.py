"""Logging setup with a last line of defence: anything shaped like a credential is redacted.

Two formats (SWEEP_LOG_FORMAT): `text`, one human line per record, and `json`, one JSON object per
line with the job id, the Slack request and the Slack user the record is about, where known. Those
come from `extra=` on the log call or from `log_fields`, a context variable set where a request
or a job is being handled (and carried into the follow-up a request hands over).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime

from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped, warning_token_skipped

_SECRET_PATTERNS = (
    re.compile(r"xox[abposr]-[A-Za-z0-9-]+"),
    re.compile(r"xapp-[A-Za-z0-9-]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)(x-auth-key['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9]+"),
    # Slack's deprecated verification token travels in request bodies (Bolt logs bodies it rejects).
    re.compile(r"(\btoken=)[^&\s]+"),
)


LOG_FORMATS = ("text", "json")
#: The record attributes (from `extra=`) and `LogFields` names shown as fields of a JSON line.
CONTEXT_FIELDS = ("job_id", "request", "user")


@dataclass(frozen=True)
class LogFields:
    """What a log record is about, where known: a job, a Slack request (kind:trigger), a Slack user."""

    job_id: str | None = None
    request: str | None = None
    user: str | None = None


_UNKNOWN = LogFields()
log_fields: ContextVar[LogFields] = ContextVar("sweep_log_fields", default=_UNKNOWN)


def bind_log_fields(**fields: str | None) -> Token[LogFields]:
    """Add `fields` (job_id, request, user) to what this task's records are about; return the reset token."""
    return log_fields.set(dataclasses.replace(log_fields.get(), **fields))


def redact(text: str) -> str:
    """Replace anything that looks like a Slack or Cloudflare credential with a marker."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[redacted]", text)
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose output never carries a token, even one a library put in a message.

    Unless `library_tracebacks` is set, an exception logged by a library (not a `sweep` logger) is
    shown as one `[Type: message]` suffix: the Socket Mode client, for one, logs a full traceback
    on every reconnection attempt. Sweep's own errors keep their tracebacks.
    """

    def __init__(self, fmt: str, *, library_tracebacks: bool = False) -> None:
        super().__init__(fmt)
        self._library_tracebacks = library_tracebacks

    def format(self, record: logging.LogRecord) -> str:
        """Format the record, then redact credentials."""
        error = record.exc_info[1] if record.exc_info else None
        if error is None or self._library_tracebacks or record.name.partition(".")[0] == "sweep":
            return redact(super().format(record))
        plain = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        summary = " ".join(f"{type(error).__name__}: {error}".split())
        return redact(f"{super().format(plain)} [{summary}]")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (ISO-8601, UTC), level, logger, message, the context fields
    known, and `exception` (one string); every string in it is redacted.

    Library exceptions are summarised as `Type: message` unless `library_tracebacks` is set, as in
    `RedactingFormatter`.
    """

    def __init__(self, *, library_tracebacks: bool = False) -> None:
        super().__init__()
        self._library_tracebacks = library_tracebacks

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as one line of JSON."""
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = log_fields.get()
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None) or getattr(context, name)
            if value is not None:
                line[name] = str(value)
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            own = record.name.partition(".")[0] == "sweep"
            if own or self._library_tracebacks:
                line["exception"] = self.formatException(record.exc_info)  # type: ignore[arg-type]
            else:
                line["exception"] = " ".join(f"{type(error).__name__}: {error}".split())
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps({key: redact(str(value)) for key, value in line.items()})


class _DropMessage(logging.Filter):
    """Drops records whose message is exactly one of `messages`."""

    def __init__(self, *messages: str) -> None:
        super().__init__()
        self._messages = frozenset(messages)

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False for the messages to drop."""
        return record.getMessage() not in self._messages


def configure_logging(level: str = "INFO", log_format: str = "text") -> None:
    """Send logs to stderr as text lines or JSON lines, redacted; a library's traceback only at DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    debug = level.upper() == "DEBUG"
    formatter: logging.Formatter = (
        JsonFormatter(library_tracebacks=debug)
        if log_format == "json"
        else RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", library_tracebacks=debug)
    )
    handler.setFormatter(formatter)
    # Python's warnings become records too, so that with json every line of the log is JSON.
    logging.captureWarnings(log_format == "json")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Bolt reads SLACK_BOT_TOKEN from the environment even when given a client (Sweep always gives
    # one), then warns at every start that the token "will be unused": noise, not a problem. The
    # same for `authorize` (Sweep authorizes from the identity resolved at start, see bot.app).
    bolt = logging.getLogger("slack_bolt.AsyncApp")
    bolt.filters[:] = [f for f in bolt.filters if not isinstance(f, _DropMessage)]
    bolt.addFilter(_DropMessage(warning_client_prioritized_and_token_skipped(), warning_token_skipped()))
    # httpx logs every request URL at INFO; Sweep's client logs its own calls (without filters).
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
