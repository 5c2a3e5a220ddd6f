"""Ephemeral answers when something is wrong: usage, refusals, Cloudflare errors, Sweep's own errors."""

from __future__ import annotations

from typing import Any

from blocks._kit import context, message, safe, safe_multiline, section
from bot.grammar import UsageError

MESSAGE_MAX = 1500
USAGE_MAX = 2500


def build_usage_error(error: UsageError) -> dict[str, Any]:
    """Say what is wrong with a command and show the right form."""
    problem = safe(error.message, MESSAGE_MAX)
    blocks = [section(f":warning: {problem}")]
    if error.usage:
        blocks.append(section(f"*Usage*\n```{safe_multiline(error.usage, USAGE_MAX)}```"))
    blocks.append(context("`/sweep help` lists every command with examples."))
    return message(f"{problem}. Usage: {safe(error.usage, USAGE_MAX)}" if error.usage else problem, blocks)


def build_error(text: str, *, reference: str | None = None) -> dict[str, Any]:
    """Tell the user something failed on Sweep's side, with a reference id that is also in the logs."""
    problem = safe(text, MESSAGE_MAX)
    blocks = [section(f":x: {problem}")]
    fallback = problem
    if reference:
        ref = safe(reference, 64)
        blocks.append(context(f"Reference `{ref}`: quote it when you report this."))
        fallback += f" (reference {ref})"
    return message(fallback, blocks)


def build_refusal(reason: str) -> dict[str, Any]:
    """Tell the user Sweep will not do this for them, and why."""
    why = safe(reason, MESSAGE_MAX)
    return message(f"Not allowed: {why}", [section(f":no_entry: *Not allowed.* {why}")])


def build_cloudflare_error(code_and_message: str) -> dict[str, Any]:
    """Show Cloudflare's error codes and messages as Cloudflare gave them."""
    detail = safe(code_and_message, MESSAGE_MAX)
    blocks = [
        section(f":cloud: *Cloudflare refused or failed the request.*\n{detail}"),
        context("Check the values; after a rate limit (429), wait a minute before trying again."),
    ]
    return message(detail, blocks)


def build_budget_spent(what_happened: str) -> dict[str, Any]:
    """Say that Sweep held a request back (the shared Cloudflare budget had no slot), and when to retry."""
    detail = safe(what_happened, MESSAGE_MAX)
    blocks = [
        section(f":hourglass_flowing_sand: *Not sent to Cloudflare yet.*\n{detail}"),
        context("Every Sweep replica shares one request budget for this Cloudflare account."),
    ]
    return message(detail, blocks)
