"""What every listener shares: the services bundle, the authorisation gate and error replies."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from slack_sdk.web.async_client import AsyncWebClient

from blocks.create_modal import build_loading_view
from blocks.errors import build_budget_spent, build_cloudflare_error, build_error
from blocks.notice import build_notice, build_rate_limit_notice, rate_limit_text
from bot.approvals import ApprovalService
from bot.dedupe import current_request_key
from bot.errors import CloudflareBudgetSpent, CloudflareFailed, SweepError
from bot.followups import ErrorReporter, FollowUps, WaitReporter, Work
from bot.jobs import JobService, PreviewUnusableError
from bot.policy import Decision, Operation, Policy
from bot.throttle import ThrottledError

log = logging.getLogger("sweep.handlers")

Reply = Callable[..., Awaitable[Any]]
#: Shorter rate-limit waits pass without a word: the answer itself comes about as soon.
NOTICE_MIN_WAIT = 1.0


@dataclass(frozen=True)
class Services:
    """Everything a listener needs, built once in `bot.app.open_runtime`."""

    jobs: JobService
    approvals: ApprovalService
    policy: Policy
    resolve_group_members: Callable[[str], Awaitable[frozenset[str]]]
    clock: Callable[[], datetime]
    follow_ups: FollowUps

    def after_ack(
        self,
        work: Work,
        *,
        label: str,
        on_error: ErrorReporter,
        urgent: bool = False,
        on_wait: WaitReporter | None = None,
    ) -> None:
        """Run `work` once Slack has its ack (see `bot.followups`); a failure goes to `on_error`.

        `on_wait` tells the user at once when the work waits out Cloudflare's rate limit. A request
        Slack (or anyone) sends again — same trigger id — is acknowledged but its work runs once:
        the first copy to claim the request's key in the database wins.
        """
        key = current_request_key.get()
        if key is not None:
            work = self._once(key, work, label)
        self.follow_ups.submit(work, on_error=on_error, label=label, urgent=urgent, on_wait=on_wait)

    def _once(self, key: str, work: Work, label: str) -> Work:
        async def claimed() -> None:
            if not await self.jobs.claim_request(key):
                log.info("%s: a repeat of request %s, acknowledged and not acted on again", label, key)
                return
            await work()

        return claimed

    def wait_by_reply(
        self, respond: Reply, *, replace: Literal["always", "never", "after_first"]
    ) -> WaitReporter:
        """Return a reporter that tells the user, through the response_url, that Cloudflare is rate limiting.

        `replace` says whether the notice may replace the message the request came from: `always`
        for Sweep's own ephemeral (a preview, a list), `never` for a channel message (a job card),
        `after_first` for a slash command (a later notice replaces the first one).
        """
        shown = False

        async def report(seconds: float) -> None:
            nonlocal shown
            if seconds < NOTICE_MIN_WAIT:
                return
            replace_original = replace == "always" or (replace == "after_first" and shown)
            notice = build_rate_limit_notice(seconds, now=self.clock())
            await reply_ephemeral(respond, notice, replace_original=replace_original)
            shown = True

        return report

    def wait_in_view(self, client: AsyncWebClient, view_id: str, *, title: str) -> WaitReporter:
        """Return a reporter that shows, in the open modal, that Cloudflare is rate limiting."""

        async def report(seconds: float) -> None:
            if seconds >= NOTICE_MIN_WAIT:
                text = rate_limit_text(seconds, now=self.clock())
                await client.views_update(view_id=view_id, view=build_loading_view(title, text))

        return report

    def may_view(self, channel_id: str | None) -> Decision:
        """Decide whether Sweep answers in this channel at all."""
        return self.policy.channel_allowed(channel_id)

    async def authorise(
        self, user_id: str, channel_id: str | None, operation: Operation, *, what: str
    ) -> Decision:
        """Decide `operation` for this user here, auditing a refusal as `what` (every listener's gate).

        The caller shows `decision.reason` on its own surface (an ephemeral, a modal, a notice).
        """
        decision = self.may_view(channel_id)
        if decision.allowed:
            decision = await self.policy.can_operate(
                user_id, resolve_group_members=self.resolve_group_members, operation=operation
            )
        if not decision.allowed:
            await self.jobs.record_refusal(user_id, what, channel_id, decision.reason)
        return decision


def new_reference() -> str:
    """Return a short id that ties a user-facing error to its log line."""
    return secrets.token_hex(4)


def error_message(error: Exception) -> dict[str, Any]:
    """Return the message that tells a user what failed: Cloudflare's code and message, or a reference id."""
    if isinstance(error, CloudflareBudgetSpent):  # Sweep held it back: not Cloudflare's refusal
        return build_budget_spent(error.user_message())
    if isinstance(error, CloudflareFailed):
        return build_cloudflare_error(error.user_message())
    if isinstance(error, SweepError | ThrottledError | PreviewUnusableError):
        return build_notice(str(error))
    reference = new_reference()
    log.error("unexpected error (reference %s)", reference, exc_info=error)
    return build_error("Something went wrong on Sweep's side.", reference=reference)


def report_by_reply(respond: Reply) -> ErrorReporter:
    """Return an error reporter that answers the user through the request's response_url."""

    async def report(error: Exception) -> None:
        await reply_ephemeral(respond, error_message(error))

    return report


async def log_error(error: Exception) -> None:
    """Report a failure only in the log (where there is no message to answer the user in)."""
    if isinstance(error, CloudflareFailed):
        log.warning("Cloudflare refused a follow-up: %s", error.user_message())
    elif isinstance(error, SweepError | ThrottledError | PreviewUnusableError):
        log.info("a follow-up was refused: %s", error)
    else:
        error_message(error)


async def reply_ephemeral(respond: Reply, message: dict[str, Any], *, replace_original: bool = False) -> None:
    """Send an ephemeral answer through the request's response_url."""
    await respond(
        text=message["text"],
        blocks=message.get("blocks"),
        response_type="ephemeral",
        replace_original=replace_original,
    )
