"""Logging setup with a last line of defence: anything shaped like a credential is redacted."""

from __future__ import annotations

import logging
import re
import sys

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
    """A formatter whose output never carries a token, even one a library put in a message."""

    def format(self, record: logging.LogRecord) -> str:
        """Format the record, then redact credentials."""
        return redact(super().format(record))


def configure_logging(level: str = "INFO") -> None:
    """Send logs to stderr, one line each, redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; Sweep's client logs its own calls (without filters).
    logging.getLogger("httpx").setLevel(max(logging.WARNING, root.level))
