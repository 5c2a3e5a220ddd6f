"""The one backoff rule: capped exponential, `base × 2**attempt`, never above `cap`.

Used by the tracker, the notifier, the create resolver and the Cloudflare client (which adds its own
jitter). Dependency-free on purpose: `bot/cloudflare/` imports nothing of the bot but `bot.config` and
this module, so keep it that way (no import of anything else here).
"""

from __future__ import annotations


def capped_exponential(base: float, attempt: int, *, cap: float) -> float:
    """Return the delay before try number `attempt + 1` (attempt 0 waits `base`)."""
    return float(min(base * 2.0 ** min(max(attempt, 0), 32), cap))
