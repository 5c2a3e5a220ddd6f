"""One exception hierarchy for everything that can go wrong talking to Cloudflare.

Every message is safe to show a user: it carries Cloudflare's own error codes and messages and
never a credential.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorDetail:
    """One entry of Cloudflare's `errors[]`."""

    code: int
    message: str


class CloudflareError(Exception):
    """Base class: an operation against the Cloudflare API failed."""

    def __init__(
        self, message: str, *, status: int | None = None, errors: tuple[ErrorDetail, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors
        # Set by the client when it gave up after retrying (None: a single attempt).
        self.attempts: int | None = None

    @property
    def codes(self) -> tuple[int, ...]:
        """Return Cloudflare's error codes (may be empty)."""
        return tuple(e.code for e in self.errors)

    def user_message(self) -> str:
        """Return a one-line description for a human: Cloudflare's codes and messages."""
        if self.errors:
            detail = "; ".join(f"{e.code}: {e.message}" for e in self.errors)
            prefix = f"HTTP {self.status} " if self.status else ""
            return f"Cloudflare error ({prefix.strip() or 'API'}) {detail}{self._attempts_note()}"
        return f"Cloudflare error: {self.message}{self._attempts_note()}"

    def _attempts_note(self) -> str:
        if self.attempts is not None and self.attempts > 1:
            return f" (gave up after {self.attempts} attempts)"
        return ""

    def __str__(self) -> str:
        return self.user_message()


class APIStatusError(CloudflareError):
    """Cloudflare answered with an HTTP error status."""


class BadRequestError(APIStatusError):
    """400: the request was invalid."""


class AuthenticationError(APIStatusError):
    """401: missing or invalid credentials."""


class PermissionDeniedError(APIStatusError):
    """403: the token lacks a permission (e.g. Cloud Email Security: Write)."""


class NotFoundError(APIStatusError):
    """404: no such job (or account)."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the resource's state (e.g. cancelling a finished job)."""


class RateLimitedError(APIStatusError):
    """429: too many requests; `retry_after` says how many seconds to wait."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = 429,
        errors: tuple[ErrorDetail, ...] = (),
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, status=status, errors=errors)
        self.retry_after = retry_after

    def user_message(self) -> str:
        """Say that Cloudflare is rate limiting and when to retry."""
        base = super().user_message()
        if self.retry_after is not None:
            return f"{base} (rate limited: retry in {int(self.retry_after + 0.999)} s)"
        return f"{base} (rate limited)"


class BudgetExhaustedError(RateLimitedError):
    """Sweep did not send the request: the shared request budget has no slot for it in time.

    Either Sweep's share of the account's Cloudflare budget is spent for now, or a 429 seen by any
    replica paused them all. Nothing reached Cloudflare (`status` is None); `retry_after` says when
    a slot may be free, `reason` what happened, in words for the user.
    """

    def __init__(self, reason: str, *, retry_after: float | None) -> None:
        message = f"Sweep did not send this request to Cloudflare: {reason}"
        super().__init__(message, status=None, retry_after=retry_after)
        self.reason = reason

    def user_message(self) -> str:
        """Say that nothing was sent, why, and when to try again."""
        if self.retry_after is None:
            return self.message
        return f"{self.message}; try again in {max(math.ceil(self.retry_after), 1)} s"


class ServerError(APIStatusError):
    """5xx: Cloudflare failed."""


class TransportError(CloudflareError):
    """No usable answer: connection failed or timed out."""


class RequestTimeoutError(TransportError):
    """The request timed out (or a search was still running after every poll)."""


class ResponseFormatError(CloudflareError):
    """The answer was not the JSON Cloudflare documents."""


class CreateOutcomeUnknownError(CloudflareError):
    """A create may or may not have made a job: the answer was lost and the look-up by tag was inconclusive.

    Never retried blindly (a second POST could make a second job); resolve it by `request_tag`.
    """

    def __init__(self, message: str, *, request_tag: str, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.request_tag = request_tag

    def user_message(self) -> str:
        """Return what failed and why the outcome is unknown (naming Cloudflare's error)."""
        return self.message


class InvalidRequestError(CloudflareError):
    """The request was rejected locally before sending (e.g. MOVE without destination)."""
