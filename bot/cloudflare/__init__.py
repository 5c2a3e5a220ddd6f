"""Cloudflare Email Security API: models, errors and the one async client.

Imports nothing of the bot but `bot.config` (its settings) and `bot.backoff` (the shared,
dependency-free backoff formula), so it can be lifted out as it is.
"""

from bot.cloudflare.client import (
    DEFAULT_BASE_URL,
    CloudflareClient,
    Credentials,
    RetryPolicy,
    make_request_tag,
    tag_marker,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "CloudflareClient",
    "Credentials",
    "RetryPolicy",
    "make_request_tag",
    "tag_marker",
]
