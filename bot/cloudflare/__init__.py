"""Cloudflare Email Security API: models, errors and the one async client."""

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
