"""Logging setup with a last line of defence: anything shaped like a credential is redacted."""

from __future__ import annotations

import logging
import re
import sys

from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped, warning_token_skipped

_SECRET_PATTERNS = (
    re.compile(r"xox[abposr]-[A-Za-z0-9-]+"),
    re.compile(r"xapp-[A-Za-z0-9-]+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
    re.compile(r"(?i)(x-auth-key['\"]?\s*[:=]\s*['\"]?)[A-Za-z0-9]+"),
    # Slack's deprecated verification token travels in request bodies (Bolt logs bodies it rejects).
    re.compile(r"(\btoken=)[^&\s]+"),
)


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


class _DropMessage(logging.Filter):
    """Drops records whose message is exactly one of `messages`."""

    def __init__(self, *messages: str) -> None:
        super().__init__()
        self._messages = frozenset(messages)

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False for the messages to drop."""
        return record.getMessage() not in self._messages


def configure_logging(level: str = "INFO") -> None:
    """Send logs to stderr, redacted; a library's traceback in full only at DEBUG."""
    handler = logging.StreamHandler(sys.stderr)
    debug = level.upper() == "DEBUG"
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", library_tracebacks=debug)
    )
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
