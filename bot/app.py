"""Build the Bolt app and own the process's long-lived parts (HTTP clients, store, tracker, notifier).

`create_app` is the one factory: no import-time side effects anywhere. `Runtime` opens and closes
everything `sweep-bot serve` needs, in order, with `async with`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook import WebhookResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

import handlers
from bot.approvals import ApprovalService
from bot.budget import BudgetLimits, SharedBudget
from bot.clock import utc_now
from bot.cloudflare.client import CloudflareClient, RetryPolicy
from bot.config import (
    OAUTH_CONFLICT,
    CloudflareSettings,
    ConfigError,
    Settings,
    UnavailableError,
    oauth_conflict,
)
from bot.creates import CreateResolver
from bot.dedupe import current_request_key, request_key
from bot.followups import FollowUps
from bot.guard import OvershootGuard
from bot.inbound import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    VERIFIED_KEY,
    Refusal,
    read_body,
    verify_signature,
)
from bot.jobs import JobService
from bot.logs import bind_log_fields
from bot.metrics import CONTENT_TYPE, SweepMetrics, surface_of
from bot.outbox import Notifier
from bot.policy import GroupMembershipCache, Policy
from bot.slack_port import WebClientSlackPort
from bot.store import SqlStore, StoreError, display_url
from bot.throttle import RequestBudgets, budget_windows
from bot.tracker import Tracker
from handlers._common import Services, error_message

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

log = logging.getLogger("sweep.app")

CLOUDFLARE_CONNECT_TIMEOUT = 5.0
CLOUDFLARE_CONNECTIONS = 10
#: On shutdown, how long acknowledged requests may take to get their answers.
FOLLOW_UP_DRAIN_SECONDS = 20.0
#: How long /healthz waits for the database's answer before calling it unreachable.
HEALTH_DATABASE_SECONDS = 2.0
#: At start, how long to keep trying to reach Slack (auth.test) before giving up with one line.
STARTUP_SLACK_SECONDS = 60.0
STARTUP_SLACK_MAX_DELAY = 15.0

#: Slack errors that mean the token itself is refused: retrying cannot help.
SLACK_TOKEN_REFUSED = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "not_allowed_token_type",
        "no_permission",
        "team_access_not_granted",
        "ekm_access_denied",
    }
)
#: Slack errors that say Slack is having trouble, not that the request is wrong.
_SLACK_TRANSIENT = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "ratelimited"}
)


class SlackUnavailableError(UnavailableError):
    """Slack's Web API gave no usable answer (unreachable, timed out, a server error): it may pass."""


def slack_problem(
    error: SlackApiError, api_url: str, variable: str, *, method: str = "auth.test"
) -> Exception:
    """Return what a failed Slack call means, as one line: a refused token names `variable`."""
    response = error.response
    code = response.get("error") if isinstance(response.data, dict) else None
    status = int(response.status_code)
    if code in SLACK_TOKEN_REFUSED:
        return ConfigError(f"{variable} was refused by Slack ({code})")
    answer = code or f"HTTP {status}"
    if status == 429 or status >= 500 or code in _SLACK_TRANSIENT:
        return SlackUnavailableError(f"Slack at {api_url} is failing ({answer})")
    return ConfigError(f"SLACK_API_URL: {api_url} answered {method} with {answer}; is it Slack's Web API?")


async def fetch_identity(client: AsyncWebClient) -> AsyncSlackResponse:
    """Call auth.test once; return the identity or raise one line (ConfigError, SlackUnavailableError)."""
    try:
        return await client.auth_test()
    except SlackApiError as error:
        raise slack_problem(error, client.base_url, "SLACK_BOT_TOKEN") from None
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        raise SlackUnavailableError(
            f"Slack unreachable at {client.base_url} ({type(error).__name__})"
        ) from None


async def resolve_identity(
    client: AsyncWebClient,
    *,
    give_up_after: float = STARTUP_SLACK_SECONDS,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncSlackResponse:
    """Return the bot's identity from auth.test, retrying with capped backoff while Slack is unreachable.

    A refused token fails at once; Slack unreachable for `give_up_after` seconds fails with one line.
    """
    deadline = time.monotonic() + give_up_after
    delay = 0.5
    attempts = 0
    while True:
        attempts += 1
        try:
            return await fetch_identity(client)
        except SlackUnavailableError as error:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SlackUnavailableError(
                    f"{error}; gave up after {attempts} attempts in {give_up_after:g} s"
                ) from None
            wait = min(delay, remaining)
            log.warning("%s; retrying in %.1f s", error, wait)
            await sleep(wait)
            delay = min(delay * 2, STARTUP_SLACK_MAX_DELAY)


class StartupAuthorize(AsyncAuthorize):
    """Bolt's authorize step, answered from the identity resolved at start.

    With a bare token Bolt calls auth.test lazily, on the first request and before its ack; with
    this, no request path ever calls Slack to authorize.
    """

    def __init__(self, identity: AsyncSlackResponse, token: str) -> None:
        self._identity: dict[str, Any] = {
            "enterprise_id": identity.get("enterprise_id"),
            "team_id": identity.get("team_id"),
            "team": identity.get("team"),
            "url": identity.get("url"),
            "bot_id": identity.get("bot_id"),
            "bot_user_id": identity.get("user_id"),
            "bot_token": token,
            "bot_scopes": identity.headers.get("x-oauth-scopes"),
        }

    @property
    def bot_user_id(self) -> str | None:
        """Return the bot's own user id."""
        value = self._identity["bot_user_id"]
        return str(value) if value is not None else None

    async def __call__(
        self,
        *,
        context: AsyncBoltContext,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None,
        actor_enterprise_id: str | None = None,
        actor_team_id: str | None = None,
        actor_user_id: str | None = None,
    ) -> AuthorizeResult:
        """Return the start-up identity for this request's user."""
        return AuthorizeResult(**self._identity, user_id=user_id)


def cloudflare_timeout(seconds: float) -> httpx.Timeout:
    """Return the Cloudflare client's timeout: `seconds` per answer, connecting in at most 5 s."""
    return httpx.Timeout(seconds, connect=min(seconds, CLOUDFLARE_CONNECT_TIMEOUT))


class SharedSessionRespond(AsyncRespond):
    """Bolt's `respond`, sending through one shared aiohttp session instead of a new one per reply."""

    def __init__(self, *, response_url: str, session: aiohttp.ClientSession) -> None:
        super().__init__(response_url=response_url)
        self._session = session

    async def __call__(  # type: ignore[override]
        self,
        text: str = "",
        blocks: Sequence[dict[str, Any]] | None = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        **extra: Any,
    ) -> WebhookResponse:
        """Post a message to the request's response_url."""
        message: dict[str, Any] = {"text": text, **{k: v for k, v in extra.items() if v is not None}}
        optional = {
            "blocks": blocks,
            "response_type": response_type,
            "replace_original": replace_original,
            "delete_original": delete_original,
        }
        message.update({k: v for k, v in optional.items() if v is not None})
        client = AsyncWebhookClient(url=str(self.response_url), session=self._session)
        return await client.send_dict(message)


class RequestArrival(AsyncMiddleware):
    """First middleware on every request: lets waiting follow-ups yield to this request's ack, and
    makes `respond` send through the shared HTTP session (a new session per reply costs a TCP and
    TLS handshake every time). A class, not a function, to skip Bolt's per-call argument injection.
    """

    def __init__(self, follow_ups: FollowUps, session: aiohttp.ClientSession | None) -> None:
        self._follow_ups = follow_ups
        self._session = session

    async def async_process(
        self, *, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse | None:
        """Note the arrival, swap in the shared-session `respond`, and continue the chain."""
        self._follow_ups.note_request()
        response_url = req.context.response_url
        if self._session is not None and response_url:
            req.context["respond"] = SharedSessionRespond(response_url=response_url, session=self._session)
        # Bolt 1.x runs the listener only after every app middleware has returned (an app
        # middleware's `next` just records the call): the log fields are set and not reset, so
        # the listener and the follow-ups it submits see them (each request overwrites them in its
        # own task). The request's de-duplication key is set around the whole dispatch instead
        # (`SweepApp.async_dispatch`), and read here rather than worked out from the body again.
        bind_log_fields(request=current_request_key.get(), user=req.context.user_id)
        return await next()


#: What a request nobody verified gets: Bolt's own refusal, word for word.
UNVERIFIED_RESPONSE = {"error": "invalid request"}


class SweepApp(AsyncApp):
    """Bolt's app, acting only on verified requests and knowing which Slack request its listener runs for.

    Bolt's own signature check is off (`create_app`): `http_application` verifies every HTTP request
    before Bolt sees it, more strictly than Bolt does (`bot.inbound.verify_signature`: one header
    each, an ASCII-digit timestamp within five minutes, a constant-time comparison) and then marks it
    (`VERIFIED_KEY`, which no body can set). Checking the same HMAC again cost a pass over the body for
    nothing; instead every request not so marked — nor from Socket Mode — is refused here with 401,
    before Bolt's first middleware: no listener, no error handler, no outbound call, whatever route
    it came by.

    With `process_before_response` the listener runs inside `async_dispatch` (HTTP and Socket Mode
    alike), so the key set here is what `Services.after_ack` reads to do a request's work once,
    however often Slack (or anyone) sends it again (`bot.dedupe`).
    """

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        """Refuse an unverified request; dispatch a verified one with its de-duplication key set."""
        if not request_verified(req):
            log.info("refused a request that was not verified (HTTP 401)")
            return BoltResponse(status=401, body=dict(UNVERIFIED_RESPONSE))
        token = current_request_key.set(request_key(req.body))
        try:
            response: BoltResponse = await super().async_dispatch(req)
        finally:
            current_request_key.reset(token)
        return response


def create_app(
    *,
    client: AsyncWebClient,
    signing_secret: str | None,
    services: Services,
    identity: AsyncSlackResponse,
    session: aiohttp.ClientSession | None = None,
) -> AsyncApp:
    """Return the Bolt app with every listener and the one error handler registered.

    `identity` is the start-up auth.test answer: Bolt authorizes every request from it.
    """
    if oauth_conflict():
        # Bolt reads these from the environment and would switch to OAuth mode behind our back.
        raise ConfigError(OAUTH_CONFLICT)
    app = SweepApp(
        client=client,
        authorize=StartupAuthorize(identity, client.token or ""),
        signing_secret=signing_secret or "socket-mode-does-not-sign",
        # `SweepApp.async_dispatch` refuses whatever `http_application` did not verify.
        request_verification_enabled=False,
        # Listeners only ack and hand their work to `services.follow_ups`, so Slack gets its
        # answer the moment a listener returns, instead of on Bolt's next 10 ms poll for ack().
        process_before_response=True,
    )
    app.use(RequestArrival(services.follow_ups, session))
    handlers.register(app, services)

    app.error(unexpected_error_handler(client=client, session=session, policy=services.policy))
    return app


def socket_mode_handler(runtime: Runtime, app_token: str) -> AsyncSocketModeHandler:
    """Return Bolt's Socket Mode handler, timing each ack (dispatch and send) into the runtime's metrics."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_bolt.adapter.socket_mode.async_internals import run_async_bolt_app, send_async_response

    metrics = runtime.metrics

    class TimedSocketModeHandler(AsyncSocketModeHandler):
        async def handle(self, client: Any, req: Any) -> None:
            # Bolt's own `handle`, with a clock read around it: the observe comes after the ack left.
            start, started = time.time(), time.perf_counter()
            response = await run_async_bolt_app(self.app, req)
            await send_async_response(client, req, response, start)
            metrics.observe_ack(surface_of(req.payload), time.perf_counter() - started)

    return TimedSocketModeHandler(runtime.app, app_token)


def request_verified(request: AsyncBoltRequest) -> bool:
    """Return True when Slack's signature on this request was checked, or it came over Socket Mode.

    Socket Mode requests arrive over a websocket Slack opened with the app-level token, so they are
    Slack's by construction; HTTP requests are verified by `http_application` before Bolt sees them.
    """
    return request.mode == "socket_mode" or request.context.get(VERIFIED_KEY) is True


def _reply_target(body: Any) -> tuple[str | None, str | None, str | None]:
    """Return (response_url, user id, channel id) of a request body, each None when absent or odd."""
    if not isinstance(body, dict):
        return None, None, None
    response_url = body.get("response_url")
    if not isinstance(response_url, str) or not response_url:
        urls = body.get("response_urls")
        found = (r.get("response_url") for r in urls if isinstance(r, dict)) if isinstance(urls, list) else ()
        response_url = next((u for u in found if isinstance(u, str) and u), None)
    user, channel = body.get("user"), body.get("channel")
    user_id = user.get("id") if isinstance(user, dict) else body.get("user_id")
    channel_id = channel.get("id") if isinstance(channel, dict) else body.get("channel_id")
    return (
        response_url,
        user_id if isinstance(user_id, str) and user_id else None,
        channel_id if isinstance(channel_id, str) and channel_id else None,
    )


def unexpected_error_handler(
    *, client: AsyncWebClient, session: aiohttp.ClientSession | None, policy: Policy
) -> Callable[[Exception, Any, AsyncBoltRequest], Awaitable[None]]:
    """Return the app's one `@app.error` handler: tell the user where they are, with a reference id.

    Listeners answer expected failures themselves; this is the last resort. It acts only on a request
    whose signature was verified (see `request_verified`): an unverified body's `response_url`, user or
    channel are whatever the sender wrote, and answering them would let anyone make the bot post.
    """

    async def handle_unexpected_error(error: Exception, body: Any, request: AsyncBoltRequest) -> None:
        if not request_verified(request):
            log.error("unexpected error on an unverified request (nobody was answered)", exc_info=error)
            return
        message = error_message(error)
        response_url, user_id, channel_id = _reply_target(body)
        try:
            if response_url:
                await AsyncWebhookClient(response_url, session=session).send(
                    text=message["text"], blocks=message.get("blocks"), response_type="ephemeral"
                )
            elif user_id and channel_id and policy.channel_allowed(channel_id):
                await client.chat_postEphemeral(channel=channel_id, user=user_id, text=message["text"])
        except Exception:  # noqa: BLE001 - reporting must never raise out of the error handler
            log.exception("could not report an error to the user")

    return handle_unexpected_error


def slack_web_client(settings: Settings, session: aiohttp.ClientSession | None = None) -> AsyncWebClient:
    """Return the Slack Web API client (on a shared session), retrying 429s after Retry-After."""
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url, session=session
    )
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=3))
    return client


@dataclass
class Runtime:
    """Everything a running Sweep process holds, opened together and closed together."""

    app: AsyncApp
    store: SqlStore
    tracker: Tracker
    notifier: Notifier
    resolver: CreateResolver
    services: Services
    #: Slack's signing secret (HTTP mode); None in Socket Mode, where `http_application` refuses everything.
    signing_secret: str | None = None
    metrics: SweepMetrics = field(default_factory=SweepMetrics)


@contextlib.asynccontextmanager
async def open_runtime(settings: Settings, cloudflare: CloudflareSettings) -> AsyncIterator[Runtime]:
    """Open the store and clients, recover unfinished creates, and yield the wired runtime."""
    # A modest pool: httpcore checks every pooled connection on each request, so a pool grown to
    # the default 100 costs more CPU per call than the extra parallelism is worth.
    limits = httpx.Limits(
        max_connections=CLOUDFLARE_CONNECTIONS, max_keepalive_connections=CLOUDFLARE_CONNECTIONS
    )
    timeout = cloudflare_timeout(settings.sweep_cloudflare_timeout)
    metrics = SweepMetrics()
    async with (
        httpx.AsyncClient(timeout=timeout, limits=limits) as http,
        open_database(settings.database_target, setting=settings.database_setting) as store,
        aiohttp.ClientSession() as session,
    ):
        # One request budget per account, shared by every replica on this database.
        shared_budget = SharedBudget(
            store.request_budget,
            cloudflare.account_id,
            limits=BudgetLimits(settings.sweep_cloudflare_budget),
            observer=metrics.observe_reservation,
        )
        client = CloudflareClient.from_settings(
            http,
            cloudflare,
            max_in_flight=CLOUDFLARE_CONNECTIONS,
            observer=metrics.observe_cloudflare,
            budget=shared_budget,
        )
        web_client = slack_web_client(settings, session)
        identity = await resolve_identity(web_client)
        log.info(
            "Slack: bot %s (%s) in %s (%s)",
            identity.get("user"),
            identity.get("user_id"),
            identity.get("team"),
            identity.get("team_id"),
        )
        notifier = Notifier(store, WebClientSlackPort(web_client))
        lease = store.poller_lease

        async def holds_lease() -> bool:
            held = await lease.check()
            metrics.poller_lease.set(1 if held else 0)
            return held

        guard = OvershootGuard(client=client, store=store, wake_notifier=notifier.wake)
        tracker = Tracker(
            store,
            client,
            poll_seconds=settings.sweep_poll_seconds,
            notifier=notifier,
            on_cycle=metrics.observe_poll_cycle,
            lease=holds_lease,
            on_overshoot=guard,
        )
        try:
            policy = Policy(
                operators=settings.operators,
                channels=settings.channels,
                approvers=settings.approval_policy.approvers,
            )
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if policy.everyone:
            log.warning("SWEEP_OPERATORS is '*': every Slack user may create and cancel jobs")
        groups = GroupMembershipCache(_usergroup_fetcher(web_client))
        # A create Sweep stopped waiting for is proven absent only well after Cloudflare would
        # have answered it: twice the time Sweep waits for one answer.
        resolver = CreateResolver(
            store,
            client,
            settle_seconds=2 * settings.sweep_cloudflare_timeout,
            wake_notifier=notifier.wake,
            orphan_seconds=orphan_seconds(store, settings.sweep_cloudflare_timeout, client.retry_policy),
            leader=lambda: lease.held,
        )
        budgets = RequestBudgets(
            budget_windows(
                reads_per_user=settings.sweep_reads_per_user,
                writes_per_user=settings.sweep_writes_per_user,
                reads_total=settings.sweep_reads_total,
                writes_total=settings.sweep_writes_total,
            )
        )
        jobs = JobService(
            client=client,
            store=store,
            account_id=cloudflare.account_id,
            wake_notifier=notifier.wake,
            resolver=resolver,
            budgets=budgets,
            margin_percent=settings.approval_policy.margin_percent,
            max_active_jobs=settings.sweep_max_active_jobs,
            approval_policy=settings.approval_policy,
        )
        approvals = ApprovalService(
            jobs=jobs,
            store=store,
            policy=settings.approval_policy,
            account_id=cloudflare.account_id,
            wake_notifier=notifier.wake,
        )
        services = Services(
            jobs=jobs,
            approvals=approvals,
            policy=policy,
            resolve_group_members=groups.members,
            clock=utc_now,
            follow_ups=FollowUps(),
        )
        metrics.watch(
            follow_ups=lambda: services.follow_ups.stats,
            budgets=budgets,
            store=store,
            shared_budget=shared_budget,
        )
        app = create_app(
            client=web_client,
            signing_secret=(
                settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
            ),
            services=services,
            identity=identity,
            session=session,
        )
        secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
        yield Runtime(
            app=app,
            store=store,
            tracker=tracker,
            notifier=notifier,
            resolver=resolver,
            services=services,
            signing_secret=secret,
            metrics=metrics,
        )


def orphan_seconds(store: SqlStore, timeout: float, retry: RetryPolicy) -> float:
    """Return how old an `open` create intent must be before another process may adopt it.

    SQLite: 0 (one replica; intents are adopted at start, before any create of its own). PostgreSQL:
    twice the longest a live replica's create can take (every try waiting its timeout and the
    longest `Retry-After` it honours), so an intent still in flight elsewhere is never taken.
    """
    if store.db.dialect == "sqlite":
        return 0.0
    return 2 * retry.max_attempts * (timeout + retry.max_retry_after)


@contextlib.asynccontextmanager
async def open_database(path: Path | str, *, setting: str = "SWEEP_DATABASE") -> AsyncIterator[SqlStore]:
    """Open (creating and migrating) the store at a SQLite path or URL; one that cannot open is one line."""
    try:
        store = await SqlStore.open(path)
    except (sqlite3.Error, OSError, StoreError) as error:  # StoreError: unreachable, or newer than Sweep
        raise ConfigError(f"{setting} cannot be opened: {display_url(path)} ({error})") from None
    try:
        yield store
    finally:
        await store.close()


def _usergroup_fetcher(client: AsyncWebClient) -> Callable[[str], Awaitable[frozenset[str]]]:
    """Return a function listing a Slack user group's members (usergroups.users.list)."""

    async def fetch(group_id: str) -> frozenset[str]:
        response = await client.usergroups_users_list(usergroup=group_id)
        return frozenset(response.get("users") or [])

    return fetch


@contextlib.asynccontextmanager
async def background_loops(runtime: Runtime) -> AsyncIterator[None]:
    """Run the tracker, notifier, create resolver and approval expiry beside the app until the block exits."""
    stop = asyncio.Event()
    # Before any request is served: creates a stopped process left open are resolved by tag.
    await runtime.resolver.adopt_orphans()
    tasks = [
        asyncio.create_task(runtime.tracker.run(stop), name="tracker"),
        asyncio.create_task(runtime.notifier.run(stop), name="notifier"),
        asyncio.create_task(runtime.resolver.run(stop), name="create resolver"),
        # Every replica may sweep: each expiry is a conditional update of a locked row, done once.
        asyncio.create_task(runtime.services.approvals.run(stop), name="approval expiry"),
    ]
    # The tracker sets the gauge from the lease at each check; 1 from the start on SQLite.
    runtime.metrics.poller_lease.set(1 if runtime.store.poller_lease.held else 0)
    try:
        yield
    finally:
        runtime.metrics.poller_lease.set(0)
        # Requests already acknowledged still get their answer before the process stops.
        await runtime.services.follow_ups.drain(timeout=FOLLOW_UP_DRAIN_SECONDS)
        stop.set()
        runtime.notifier.wake()
        _, pending = await asyncio.wait(tasks, timeout=5)
        for task in pending:
            task.cancel()


def bolt_request_from(
    raw: str, body: dict[str, Any], *, query: str, headers: Mapping[str, str]
) -> AsyncBoltRequest:
    """Turn a verified body and what `bot.inbound.read_body` read from it into a Bolt request.

    Bolt is handed the body already parsed, so an 18 kB view submission is not URL-decoded and
    JSON-decoded a second time. That also sidesteps Bolt 1.30's parser, which treats any form body
    containing the word "payload" as an interactive payload (`/sweep move query:payload …` would
    reach no listener). The raw body is kept as `raw_body`, as Bolt's own parse would keep it.
    """
    bolt_request = AsyncBoltRequest(body="", query=query, headers=dict(headers))
    bolt_request.raw_body = raw
    bolt_request.body = body
    bolt_request.context = build_async_context(AsyncBoltContext({}), body)
    bolt_request.context[VERIFIED_KEY] = True
    return bolt_request


def _only_header(request: web.Request, name: str) -> str | None:
    """Return a header sent exactly once, else None (a repeated signature header is not Slack's)."""
    values = request.headers.getall(name, [])
    return values[0] if len(values) == 1 else None


def refuse(request: web.Request, refusal: Refusal) -> web.Response:
    """Answer a refused request (401 unverified, 400 malformed) and log one INFO line, never the body."""
    log.info("refused a request from %s (HTTP %d): %s", request.remote, refusal.status, refusal.reason)
    error = "invalid request" if refusal.status == 401 else "malformed request"
    return web.json_response({"error": error}, status=refusal.status)


def http_application(runtime: Runtime, *, path: str = "/slack/events") -> web.Application:
    """Return the aiohttp application: Slack at `path`, a health check at /healthz.

    Every request to `path` is verified (Slack's signature and timestamp) and shape-checked here, before
    Bolt sees it: whatever fails is answered 401 or 400 with no listener, no error handler and no
    outbound call. Only a request that passed is marked verified, and `SweepApp` refuses any other
    (in place of Bolt's own HMAC check), so a future route that skipped this function would still not
    act on an unsigned body.
    """
    if not runtime.signing_secret:
        log.warning("no SLACK_SIGNING_SECRET: every request to %s will be refused", path)

    async def slack_events(request: web.Request) -> web.Response:
        started = time.perf_counter()
        raw = await request.read()
        refusal = verify_signature(
            secret=runtime.signing_secret,
            body=raw,
            timestamp=_only_header(request, TIMESTAMP_HEADER),
            signature=_only_header(request, SIGNATURE_HEADER),
            now=time.time(),
        )
        if refusal is not None:
            return refuse(request, refusal)
        body = read_body(raw, request.headers.get("Content-Type"))
        if isinstance(body, Refusal):
            return refuse(request, body)
        bolt_request = bolt_request_from(
            raw.decode("utf-8"), body, query=request.query_string, headers=request.headers
        )
        bolt_response = await runtime.app.async_dispatch(bolt_request)
        runtime.metrics.observe_ack(surface_of(bolt_request.body), time.perf_counter() - started)
        return await to_aiohttp_response(bolt_response)

    application = metrics_application(runtime)
    application.router.add_post(path, slack_events)
    return application


async def database_reachable(runtime: Runtime) -> bool:
    """Return True when the database answers a trivial query within `HEALTH_DATABASE_SECONDS`."""
    try:
        await asyncio.wait_for(runtime.store.schema_version(), HEALTH_DATABASE_SECONDS)
    except Exception:  # noqa: BLE001 - any failure (locked, closed, timed out) means unreachable here
        return False
    return True


def metrics_application(runtime: Runtime) -> web.Application:
    """Return an aiohttp application serving /healthz and /metrics (Prometheus) of `runtime`.

    HTTP mode adds Slack's route to it; Socket Mode serves it alone on `--metrics-port`.
    """

    async def healthz(_: web.Request) -> web.Response:
        follow_ups = dataclasses.asdict(runtime.services.follow_ups.stats)
        follow_ups["max_wait_seconds"] = round(follow_ups["max_wait_seconds"], 3)
        if not await database_reachable(runtime):
            return web.json_response(
                {"ok": False, "database": "unreachable", "follow_ups": follow_ups}, status=503
            )
        return web.json_response({"ok": True, "database": "ok", "follow_ups": follow_ups})

    async def metrics(_: web.Request) -> web.Response:
        body = await runtime.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    application = web.Application()
    application.router.add_get("/healthz", healthz)
    application.router.add_get("/metrics", metrics)
    return application
