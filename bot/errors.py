"""Sweep's own errors: what the use cases raise, and what handlers catch and show.

The use cases turn the Cloudflare client's errors into these (see `translated`), so no handler or
block builder needs to know the client's error hierarchy. Each carries the words a user should
read: Cloudflare's code and message where Cloudflare said something.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.cloudflare.errors import BudgetExhaustedError, CloudflareError, NotFoundError

__all__ = ["CloudflareBudgetSpent", "CloudflareFailed", "JobNotFound", "SweepError", "failed", "translated"]


class SweepError(Exception):
    """Base class: a use case could not do what was asked; `user_message` says why, for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def user_message(self) -> str:
        """Return the sentence shown to the user (no secrets: built from Cloudflare's answer)."""
        return self.message


class CloudflareFailed(SweepError):
    """Cloudflare refused or could not be reached; the message carries its code and message."""

    def __init__(self, message: str, *, codes: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.codes = codes


class CloudflareBudgetSpent(CloudflareFailed):
    """Sweep sent nothing: the shared Cloudflare request budget had no slot in time (or a 429 paused it).

    `retry_after` is when a slot may be free (seconds, None if unknown).
    """

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JobNotFound(CloudflareFailed):
    """No job with this id exists in the Cloudflare account."""

    def __init__(self, job_id: str, message: str, *, codes: tuple[int, ...] = ()) -> None:
        super().__init__(message, codes=codes)
        self.job_id = job_id


def failed(error: CloudflareError, *, prefix: str = "") -> CloudflareFailed:
    """Return Sweep's error for a client error (`CloudflareBudgetSpent` when nothing was sent)."""
    if isinstance(error, BudgetExhaustedError):
        return CloudflareBudgetSpent(prefix + error.user_message(), retry_after=error.retry_after)
    return CloudflareFailed(prefix + error.user_message(), codes=error.codes)


@contextmanager
def translated(job_id: str | None = None) -> Iterator[None]:
    """Re-raise a Cloudflare client error as Sweep's own (`JobNotFound` when `job_id` names the job)."""
    try:
        yield
    except NotFoundError as error:
        if job_id is None:
            raise CloudflareFailed(error.user_message(), codes=error.codes) from error
        raise JobNotFound(job_id, error.user_message(), codes=error.codes) from error
    except CloudflareError as error:
        raise failed(error) from error
