"""The one async client of the Cloudflare Email Security bulk-job and investigate API.

Configured like Cloudflare's own SDK (token or email + global key, base URL, retries), but
stricter where the SDK bites: requests are validated before anything is sent, a create is never
blindly retried (the API has no idempotency key, so each create carries a request tag in its
comment and an ambiguous failure is resolved by looking the tag up), and deprecated paging
fields are never trusted. Given a `RequestBudget` (`bot.cloudflare.budget`), every request first
takes a slot from it and every 429 is reported to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import email.utils
import logging
import random
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from bot.backoff import capped_exponential
from bot.cloudflare import errors
from bot.cloudflare.budget import RequestBudget, budget_wait, request_priority, urgent
from bot.cloudflare.models import (
    JOB_COMMENT_MAX,
    SEARCHABLE_DISPOSITIONS,
    BulkJob,
    CreateJobRequest,
    JobMessage,
    MessageSummary,
    Page,
    ResultInfo,
    SearchParams,
    SearchResult,
    format_timestamp,
    is_job_id,
    search_problem,
)
from bot.config import CloudflareSettings

__all__ = [
    "DEFAULT_BASE_URL",
    "CloudflareClient",
    "Credentials",
    "RateLimitHook",
    "RequestObserver",
    "RetryPolicy",
    "make_request_tag",
    "rate_limit_hook",
    "tag_marker",
]

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
MAX_PER_PAGE = 1000
"""The most items Cloudflare returns per page (jobs, job messages, search results)."""
USER_AGENT = "sweep/0.1 (+https://github.com/; httpx)"

logger = logging.getLogger("sweep.cloudflare")

RateLimitHook = Callable[[float], Awaitable[None]]
#: Awaited with the seconds the client is about to wait because Cloudflare answered 429, so whoever
#: is waiting on the call can be told at once. Set per task by the caller (the client sets nothing).
rate_limit_hook: contextvars.ContextVar[RateLimitHook | None] = contextvars.ContextVar(
    "cloudflare_rate_limit_hook", default=None
)

#: Called after every request with its endpoint (a route template, no ids), its HTTP status (or
#: "timeout" / "error" when no answer came) and, for a 429, the Retry-After in seconds (if given).
RequestObserver = Callable[[str, str, float | None], None]
#: Path segments kept as they are in a route template; any other segment is an id.
_ROUTE_WORDS = frozenset({"accounts", "email-security", "investigate", "bulk", "messages", "cancel", "move"})

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

ModelT = TypeVar("ModelT", bound=BaseModel)
#: The shortest wait before asking a budget that said no again (a slot due "now" at a boundary).
_MIN_BUDGET_WAIT = 0.05


def route_template(method: str, path: str) -> str:
    """Return `METHOD /path` with every id replaced by a placeholder (a low-cardinality metric label)."""
    parts = path.strip("/").split("/")
    for index, part in enumerate(parts):
        if part not in _ROUTE_WORDS:
            before = parts[index - 1] if index else ""
            parts[index] = (
                "{account_id}" if before == "accounts" else "{job_id}" if before == "bulk" else "{id}"
            )
    return f"{method} /{'/'.join(parts)}"


def make_request_tag() -> str:
    """Return a short random tag that identifies one create request."""
    return secrets.token_hex(6)


def tag_marker(tag: str) -> str:
    """Return the marker stamped into a job's comment for this request tag."""
    return f"[sweep:{tag}]"


@dataclass(frozen=True)
class Credentials:
    """How to authenticate: an API token (preferred) or an email plus global API key."""

    api_token: SecretStr | None = None
    email: str | None = None
    api_key: SecretStr | None = None

    def __post_init__(self) -> None:
        if self.api_token is None and not (self.email and self.api_key is not None):
            raise ValueError("Credentials need an api_token, or both email and api_key")

    @classmethod
    def from_settings(cls, settings: CloudflareSettings) -> Credentials:
        """Build credentials from the CLOUDFLARE_* settings."""
        return cls(api_token=settings.api_token, email=settings.email, api_key=settings.api_key)

    def headers(self) -> dict[str, str]:
        """Return the authentication headers (a token wins over email + key)."""
        if self.api_token is not None:
            return {"Authorization": f"Bearer {self.api_token.get_secret_value()}"}
        assert self.email is not None and self.api_key is not None  # noqa: S101 - checked in __post_init__
        return {"X-Auth-Email": self.email, "X-Auth-Key": self.api_key.get_secret_value()}


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    `max_attempts` counts every try (first one included). A 429 asking to wait longer than
    `max_retry_after` seconds is not waited for: the error is raised at once with `retry_after`;
    nor is a request budget slot further off than that (over one call's tries together).
    `jitter` is the fraction of a backoff delay that may be randomly shaved off (0 = none).
    `max_polls` bounds how often a 202 search answer is polled.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    jitter: float = 0.25
    max_polls: int = 10

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        if self.max_polls < 1:
            raise ValueError("max_polls must be at least 1")

    def backoff(self, attempt: int) -> float:
        """Return the delay after failed try number `attempt` (1-based): capped exponential with jitter."""
        delay = capped_exponential(self.base_delay, attempt - 1, cap=self.max_delay)
        return delay * (1 - self.jitter * random.random())  # noqa: S311 - jitter, not cryptography


@dataclass
class _CallState:
    """What happened during one retried call (lets cancel/delete reconcile a retried success)."""

    attempts: int = 0
    ambiguous_failures: int = 0
    budget_waited: float = 0.0  # seconds spent waiting for budget slots, over every try


class _JobListBody(BaseModel):
    """A bulk-job list answer parsed straight from its JSON bytes: the hot path of every tracker cycle.

    Anything this does not accept (a failure envelope, an odd item) goes through the general
    `_unwrap`, which raises exactly the error it always did.
    """

    model_config = ConfigDict(extra="ignore")

    success: Any = None
    result: list[BulkJob] | None = None
    result_info: Any = None


@dataclass
class _Envelope:
    """A successful, unwrapped v4 answer."""

    status: int
    result: Any
    result_info: ResultInfo
    headers: httpx.Headers = field(repr=False)
    parsed: bool = False  # `result` already holds validated models


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Return the seconds a `Retry-After` header asks for (delta-seconds or HTTP date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(float(text), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max((when - current).total_seconds(), 0.0)


def _error_details(body: Any) -> tuple[errors.ErrorDetail, ...]:
    if not isinstance(body, dict):
        return ()
    details = []
    for item in body.get("errors") or ():
        if not isinstance(item, dict):
            continue
        try:
            code = int(item.get("code", 0))
        except (TypeError, ValueError):
            code = 0
        details.append(errors.ErrorDetail(code=code, message=str(item.get("message", ""))))
    return tuple(details)


_STATUS_ERRORS: Mapping[int, type[errors.APIStatusError]] = {
    400: errors.BadRequestError,
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
}


def _status_error(
    status: int, details: tuple[errors.ErrorDetail, ...], what: str, headers: httpx.Headers
) -> errors.APIStatusError:
    message = f"HTTP {status} for {what}"
    if status == 429:
        retry_after = parse_retry_after(headers.get("retry-after"))
        return errors.RateLimitedError(message, status=status, errors=details, retry_after=retry_after)
    if status >= 500:
        return errors.ServerError(message, status=status, errors=details)
    return _STATUS_ERRORS.get(status, errors.APIStatusError)(message, status=status, errors=details)


def _validate_per_page(per_page: int) -> None:
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise errors.InvalidRequestError(f"per_page must be between 1 and {MAX_PER_PAGE}, not {per_page}")


def _validate_job_id(job_id: str) -> str:
    if not is_job_id(job_id):
        raise errors.InvalidRequestError(f"not a job id (expected a UUID): {str(job_id)[:64]!r}")
    return job_id.lower()


def _flag(value: bool) -> str:
    return "true" if value else "false"


class CloudflareClient:
    """Async client of the bulk-job and investigate endpoints of one Cloudflare account."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        account_id: str,
        credentials: Credentials,
        base_url: str = DEFAULT_BASE_URL,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_in_flight: int | None = None,
        observer: RequestObserver | None = None,
        budget: RequestBudget | None = None,
    ) -> None:
        if not account_id or len(account_id) > 32:
            raise ValueError("account_id must be 1 to 32 characters")
        # Requests beyond the connection pool's size wait here rather than in httpcore's pool,
        # whose bookkeeping rescans every queued request on each change (quadratic in the queue).
        self._in_flight = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._http = http
        self._account_id = account_id
        self._credentials = credentials
        self._base_url = httpx.URL(base_url.rstrip("/") + "/")
        self._base = str(self._base_url)
        self._request_headers = {
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **credentials.headers(),
        }
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._observer = observer
        self._budget = budget
        self.api_calls = 0

    @classmethod
    def from_settings(
        cls, http: httpx.AsyncClient, settings: CloudflareSettings, **kw: Any
    ) -> CloudflareClient:
        """Build a client from the CLOUDFLARE_* settings (keyword overrides win)."""
        kw.setdefault("account_id", settings.account_id)
        kw.setdefault("credentials", Credentials.from_settings(settings))
        kw.setdefault("base_url", settings.base_url)
        return cls(http, **kw)

    def __repr__(self) -> str:
        return f"CloudflareClient(account_id={self._account_id!r}, base_url={str(self._base_url)!r})"

    @property
    def account_id(self) -> str:
        """Return the account this client acts on."""
        return self._account_id

    @property
    def retry_policy(self) -> RetryPolicy:
        """Return the retry policy in use."""
        return self._retry

    # ---------------------------------------------------------------- bulk jobs

    async def create_job(self, request: CreateJobRequest, *, request_tag: str | None = None) -> BulkJob:
        """Create a bulk job at most once, stamping a request tag into its comment.

        Retried only when Cloudflare cannot have acted: a 429 (honouring Retry-After) or a request
        that never left (connection refused). Any other failure after sending (timeout, 5xx, an
        unreadable 2xx) is ambiguous: the recent jobs are searched once for the tag, and if that is
        inconclusive `CreateOutcomeUnknownError` is raised, never a second POST (the API has no
        idempotency key). A 4xx is a definite failure.
        """
        tag = request_tag if request_tag is not None else make_request_tag()
        if not _TAG_RE.match(tag):
            raise errors.InvalidRequestError("request_tag must be 1-64 letters, digits, '-' or '_'")
        body = request.to_api(comment=self._stamp(request.comment, tag))
        if body.get("search_params", {}).get("detections_only") is None:
            raise errors.InvalidRequestError("search_params.detections_only must be chosen explicitly")
        with urgent():
            return await self._create(body, tag)

    async def _create(self, body: dict[str, Any], tag: str) -> BulkJob:
        path = self._bulk_path()
        try:
            # The one retry loop, told that a try Cloudflare may have acted on must not be repeated:
            # it still waits out a 429 and resends what never left, and raises anything else.
            envelope = await self._call("POST", path, json=body, retry_ambiguous=False)
            return self._model(BulkJob, envelope.result, "job")
        except (errors.ServerError, errors.TransportError, errors.ResponseFormatError) as exc:
            if self._nothing_sent(exc):
                raise  # never reached Cloudflare, on any try: definitely no job
            return await self._resolve_ambiguous_create(tag, exc, path)

    async def _resolve_ambiguous_create(self, tag: str, exc: errors.CloudflareError, path: str) -> BulkJob:
        """Look for the tag once after an ambiguous create; raise CreateOutcomeUnknownError if not found."""
        logger.warning("create %s failed ambiguously (%s); looking for its tag", path, exc.message)
        # Give the server a moment to finish what it may have started.
        await self._sleep(self._retry.backoff(1))
        try:
            found = await self.find_job_by_tag(tag)
        except errors.CloudflareError as lookup_error:
            raise errors.CreateOutcomeUnknownError(
                f"{exc.user_message()}; looking the job up failed too ({lookup_error.user_message()})",
                request_tag=tag,
                status=exc.status,
            ) from exc
        if found is not None:
            logger.info("create tag %s found as job %s after an ambiguous failure", tag, found.job_id)
            return found
        raise errors.CreateOutcomeUnknownError(
            f"{exc.user_message()}; the job is not in Cloudflare's list yet",
            request_tag=tag,
            status=exc.status,
        ) from exc

    async def list_jobs(
        self,
        *,
        status: str | None = None,
        action_type: str | None = None,
        page: int = 1,
        per_page: int = 100,
    ) -> Page[BulkJob]:
        """Return one page of bulk jobs (newest first), optionally filtered."""
        _validate_per_page(per_page)
        if page < 1:
            raise errors.InvalidRequestError(f"page must be at least 1, not {page}")
        params: dict[str, str | int] = {"page": page, "per_page": per_page}
        if status is not None:
            params["status"] = str(status)
        if action_type is not None:
            params["action_type"] = str(action_type)
        envelope = await self._call("GET", self._bulk_path(), params=params, job_list=True)
        items = envelope.result if envelope.parsed else self._models(BulkJob, envelope.result, "job")
        return Page[BulkJob](items=items, result_info=envelope.result_info)

    async def iter_jobs(
        self, *, status: str | None = None, action_type: str | None = None, per_page: int = MAX_PER_PAGE
    ) -> AsyncIterator[BulkJob]:
        """Yield every matching job, walking pages until a short or empty one."""
        _validate_per_page(per_page)
        page = 1
        while True:
            batch = await self.list_jobs(status=status, action_type=action_type, page=page, per_page=per_page)
            for job in batch.items:
                yield job
            # total_count and page in result_info are deprecated and always 0: a short page ends the walk.
            if len(batch.items) < per_page:
                return
            page += 1

    async def get_job(self, job_id: str) -> BulkJob:
        """Return one job."""
        path = f"{self._bulk_path()}/{_validate_job_id(job_id)}"
        return self._model(BulkJob, (await self._call("GET", path)).result, "job")

    async def cancel_job(self, job_id: str) -> BulkJob:
        """Cancel a job and return it; a retried cancel that already took effect is a success."""
        job_id = _validate_job_id(job_id)
        state = _CallState()
        with urgent():
            try:
                envelope = await self._call("POST", f"{self._bulk_path()}/{job_id}/cancel", state=state)
            except errors.ConflictError:
                if not state.ambiguous_failures:
                    raise
                # An earlier try may have cancelled it before failing: then the 409 is our own doing.
                job = await self.get_job(job_id)
                if job.status == "CANCELLED":
                    return job
                raise
        return self._model(BulkJob, envelope.result, "job")

    async def delete_job(self, job_id: str) -> None:
        """Delete a finished job; a retried delete that already took effect is a success."""
        job_id = _validate_job_id(job_id)
        state = _CallState()
        try:
            with urgent():
                await self._call("DELETE", f"{self._bulk_path()}/{job_id}", state=state)
        except errors.NotFoundError:
            if not state.ambiguous_failures:
                raise

    async def iter_job_messages(
        self, job_id: str, *, status: str | None = None, per_page: int = MAX_PER_PAGE
    ) -> AsyncIterator[JobMessage]:
        """Yield every message of a job, walking pages until a short or empty one."""
        job_id = _validate_job_id(job_id)
        _validate_per_page(per_page)
        path = f"{self._bulk_path()}/{job_id}/messages"
        page = 1
        while True:
            params: dict[str, str | int] = {"page": page, "per_page": per_page}
            if status is not None:
                params["status"] = str(status)
            envelope = await self._call("GET", path, params=params)
            items = self._models(JobMessage, envelope.result, "job message")
            for item in items:
                yield item
            if len(items) < per_page:
                return
            page += 1

    async def list_job_messages(self, job_id: str, *, status: str | None = None) -> list[JobMessage]:
        """Return every message of a job."""
        return [message async for message in self.iter_job_messages(job_id, status=status)]

    async def find_job_by_tag(
        self, request_tag: str, *, pages: int = 3, per_page: int = MAX_PER_PAGE
    ) -> BulkJob | None:
        """Return the job whose comment carries this request tag, searching the newest pages."""
        if pages < 1:
            raise errors.InvalidRequestError("pages must be at least 1")
        marker = tag_marker(request_tag)
        with urgent():  # it settles whether a create happened
            for page in range(1, pages + 1):
                batch = await self.list_jobs(page=page, per_page=per_page)
                for job in batch.items:
                    if job.comment and marker in job.comment:
                        return job
                if len(batch.items) < per_page:
                    break
        return None

    # ---------------------------------------------------------------- investigate search

    async def search_messages(
        self, params: SearchParams, *, limit: int = 1000, per_page: int = 100
    ) -> SearchResult:
        """Return up to `limit` messages matching a search (for previews), following cursors.

        The search endpoint cannot filter on `exact_subject`: it is sent as `subject` and the
        results are filtered exactly here. `submissions=True` and dispositions the search does not
        accept are refused rather than silently widened.
        """
        _validate_per_page(per_page)
        if limit < 1:
            raise errors.InvalidRequestError(f"limit must be at least 1, not {limit}")
        query = self._search_query(params)
        query["per_page"] = per_page
        exact = params.exact_subject
        path = self._account_path("email-security/investigate")
        found: list[MessageSummary] = []
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page_query = dict(query)
            if cursor:
                page_query["cursor"] = cursor
            envelope = await self._search_page(path, page_query)
            items = self._models(MessageSummary, envelope.result, "message")
            if exact is not None:
                items = [m for m in items if m.subject == exact]
            room = limit - len(found)
            found.extend(items[:room])
            cursor = envelope.result_info.next or None
            if len(items) > room:
                return SearchResult(messages=found, capped=True)
            if len(found) >= limit:
                return SearchResult(messages=found, capped=cursor is not None)
            if cursor is None or not envelope.result:
                return SearchResult(messages=found, capped=False)
            if cursor in seen:
                raise errors.ResponseFormatError("search returned the same cursor twice; stopping")
            seen.add(cursor)

    def _search_query(self, params: SearchParams) -> dict[str, str | int]:
        if (problem := search_problem(params)) is not None:
            raise errors.InvalidRequestError(problem)
        assert params.detections_only is not None  # noqa: S101 - search_problem checked it
        if params.submissions:
            raise errors.InvalidRequestError("the investigate search cannot search submissions")
        if (
            params.final_disposition is not None
            and str(params.final_disposition) not in SEARCHABLE_DISPOSITIONS
        ):
            raise errors.InvalidRequestError(
                f"the investigate search cannot filter on disposition {params.final_disposition}"
            )
        query: dict[str, str | int] = {"detections_only": _flag(params.detections_only)}
        if params.start is not None:
            query["start"] = format_timestamp(params.start)
        if params.end is not None:
            query["end"] = format_timestamp(params.end)
        for name in (
            "query",
            "metric",
            "recipient",
            "sender",
            "alert_id",
            "domain",
            "message_id",
            "subject",
            "final_disposition",
            "message_action",
            "delivery_status",
        ):
            value = getattr(params, name)
            if value is not None:
                query[name] = str(value)
        if params.exact_subject is not None and "subject" not in query:
            query["subject"] = params.exact_subject
        return query

    async def _search_page(self, path: str, query: dict[str, str | int]) -> _Envelope:
        """Fetch one search page, polling the `Location` of a 202 until the results are ready."""
        envelope = await self._call("GET", path, params=query)
        polls = 0
        while envelope.status == 202:
            location = envelope.headers.get("location")
            if not location:
                raise errors.ResponseFormatError("search answered 202 without a Location to poll", status=202)
            url = self._poll_url(path, query, location)
            polls += 1
            if polls > self._retry.max_polls:
                error = errors.RequestTimeoutError(
                    f"search still running after {self._retry.max_polls} polls"
                )
                error.attempts = polls
                raise error
            wait = parse_retry_after(envelope.headers.get("retry-after"))
            delay = min(wait, self._retry.max_delay) if wait is not None else self._retry.backoff(polls)
            await self._sleep(delay)
            envelope = await self._call("GET", url)
        return envelope

    def _poll_url(self, path: str, query: dict[str, str | int], location: str) -> httpx.URL:
        request_url = self._url(path).copy_merge_params(query)
        url = request_url.join(location)
        # Never send credentials to another origin.
        if (url.scheme, url.host, url.port) != (
            self._base_url.scheme,
            self._base_url.host,
            self._base_url.port,
        ):
            raise errors.ResponseFormatError("search asked to poll a different host; refusing", status=202)
        return url

    # ---------------------------------------------------------------- plumbing

    def _account_path(self, rest: str) -> str:
        return f"accounts/{quote(self._account_id, safe='')}/{rest}"

    def _bulk_path(self) -> str:
        return self._account_path("email-security/investigate/bulk")

    def _url(self, path: str) -> httpx.URL:
        # Concatenation parses once; URL.join parses twice plus urljoin (~0.4 ms a call). httpx.URL
        # removes dot segments itself, so for our relative paths the result is the same URL.
        return httpx.URL(self._base + path)

    @staticmethod
    def _stamp(comment: str | None, tag: str) -> str:
        marker = tag_marker(tag)
        if comment and marker in comment:
            return comment
        stamped = f"{comment} {marker}" if comment else marker
        if len(stamped) > JOB_COMMENT_MAX:
            raise errors.InvalidRequestError(
                f"comment too long: at most {JOB_COMMENT_MAX - len(marker) - 1} characters"
            )
        return stamped

    def _headers(self) -> dict[str, str]:
        return self._request_headers

    @staticmethod
    def _nothing_sent(exc: errors.CloudflareError) -> bool:
        """Return True when a transport failure happened before the request could reach the server."""
        return isinstance(exc, errors.TransportError) and isinstance(
            exc.__cause__, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
        )

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        attempt: int,
    ) -> httpx.Response:
        """Send one request; map httpx failures to the client's errors."""
        if params:
            url = url.copy_merge_params(dict(params))
        what = f"{method} /{url.path.removeprefix(self._base_url.path)}"
        try:
            async with self._slot(what):
                self.api_calls += 1
                response = await self._http.request(method, url, json=json, headers=self._headers())
        except httpx.TimeoutException as exc:
            self._observe(method, url, "timeout", None)
            logger.warning("%s timed out (attempt %d)", what, attempt)
            raise errors.RequestTimeoutError(f"{what} timed out ({type(exc).__name__})") from exc
        except httpx.TransportError as exc:
            self._observe(method, url, "error", None)
            logger.warning("%s failed: %s (attempt %d)", what, type(exc).__name__, attempt)
            raise errors.TransportError(f"{what} could not reach Cloudflare ({type(exc).__name__})") from exc
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after")) if status == 429 else None
        self._observe(method, url, str(status), retry_after)
        logger.debug("%s -> %d (attempt %d)", what, status, attempt)
        return response

    def _observe(self, method: str, url: httpx.URL, status: str, retry_after: float | None) -> None:
        if self._observer is None:
            return
        try:
            self._observer(
                route_template(method, url.path.removeprefix(self._base_url.path)), status, retry_after
            )
        except Exception:  # noqa: BLE001 - counting must never break the call itself
            logger.warning("the request observer failed", exc_info=True)

    @contextlib.asynccontextmanager
    async def _slot(self, what: str) -> AsyncIterator[None]:
        """Hold one of the `max_in_flight` request slots; waiting counts as the pool timeout."""
        if self._in_flight is None:
            yield
            return
        try:
            await asyncio.wait_for(self._in_flight.acquire(), self._http.timeout.pool)
        except TimeoutError:
            raise httpx.PoolTimeout(f"{what}: waited too long for a free connection") from None
        try:
            yield
        finally:
            self._in_flight.release()

    def _unwrap(self, response: httpx.Response, what: str, *, job_list: bool = False) -> _Envelope:
        """Check the status and the v4 envelope; return the result or raise the matching error."""
        status = response.status_code
        if job_list and 200 <= status < 300:
            fast = self._unwrap_job_list(response, status)
            if fast is not None:
                return fast
        try:
            body = response.json()
        except ValueError:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
            body = None
        if status >= 400:
            raise _status_error(status, _error_details(body), what, response.headers)
        if not isinstance(body, dict):
            kind = response.headers.get("content-type", "no content type")
            raise errors.ResponseFormatError(
                f"HTTP {status} for {what} is not a JSON object ({kind})", status=status
            )
        if body.get("success") is not True:
            raise errors.APIStatusError(
                f"HTTP {status} for {what} reported success={body.get('success')!r}",
                status=status,
                errors=_error_details(body),
            )
        return _Envelope(
            status=status,
            result=body.get("result"),
            result_info=_result_info(body.get("result_info")),
            headers=response.headers,
        )

    def _unwrap_job_list(self, response: httpx.Response, status: int) -> _Envelope | None:
        """Validate a successful job list from the raw bytes in one pass; None to take the general path.

        json.loads followed by 1,000 model_validate calls costs about twice as much per page.
        """
        try:
            body = _JobListBody.model_validate_json(response.content)
        except ValidationError:
            return None
        if body.success is not True:
            return None
        return _Envelope(
            status=status,
            result=body.result or [],
            result_info=_result_info(body.result_info),
            headers=response.headers,
            parsed=True,
        )

    def _rate_limit_delay(self, exc: errors.RateLimitedError, attempt: int) -> float:
        """Return how long to wait after a 429, or raise it when waiting is pointless."""
        wait = exc.retry_after
        if wait is not None and wait > self._retry.max_retry_after:
            logger.warning(
                "rate limited for %.0f s (more than %.0f s): giving up", wait, self._retry.max_retry_after
            )
            exc.attempts = attempt
            raise exc
        if attempt >= self._retry.max_attempts:
            exc.attempts = attempt
            raise exc
        delay = wait if wait is not None else self._retry.backoff(attempt)
        logger.info("rate limited; retrying in %.1f s (attempt %d)", delay, attempt)
        return delay

    async def _wait_rate_limit(self, exc: errors.RateLimitedError, attempt: int) -> None:
        """Wait out a 429 (or raise it), telling `rate_limit_hook` first how long the wait is."""
        delay = self._rate_limit_delay(exc, attempt)
        await self._tell_wait(delay)
        await self._sleep(delay)

    @staticmethod
    async def _tell_wait(delay: float) -> None:
        hook = rate_limit_hook.get()
        if hook is not None:
            try:
                await hook(delay)
            except Exception:  # noqa: BLE001 - telling someone must never break the call itself
                logger.warning("the rate-limit hook failed", exc_info=True)

    async def _report_rate_limit(self, exc: errors.RateLimitedError) -> None:
        """Tell the budget about a 429 so every sender pauses; without Retry-After, wait its pause."""
        if self._budget is None:
            return
        try:
            pause = await self._budget.rate_limited(exc.retry_after)
        except Exception:  # noqa: BLE001 - the budget's trouble must never hide Cloudflare's answer
            logger.warning("could not record the rate limit in the request budget", exc_info=True)
            return
        if exc.retry_after is None:
            exc.retry_after = pause

    async def _take_slot(self, what: str, state: _CallState) -> None:
        """Reserve one request in the budget, waiting up to the call's bound; raise when none comes."""
        if self._budget is None:
            return
        priority = request_priority.get()
        bound = budget_wait.get()
        bound = self._retry.max_retry_after if bound is None else bound
        while True:
            reservation = await self._budget.reserve(priority)
            if reservation.granted:
                return
            wait = max(reservation.wait, _MIN_BUDGET_WAIT)
            if state.budget_waited + wait > bound:
                logger.debug("%s not sent (%s request): %s", what, priority, reservation.reason)
                raise errors.BudgetExhaustedError(reservation.reason, retry_after=reservation.wait)
            logger.info("%s waits %.1f s for a %s budget slot: %s", what, wait, priority, reservation.reason)
            await self._tell_wait(wait)
            await self._sleep(wait)
            state.budget_waited += wait

    async def _call(
        self,
        method: str,
        path_or_url: str | httpx.URL,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        state: _CallState | None = None,
        job_list: bool = False,
        retry_ambiguous: bool = True,
    ) -> _Envelope:
        """Send a request, retrying 429 (honouring Retry-After), 5xx and transport failures.

        With `retry_ambiguous=False` (a create) only what Cloudflare cannot have acted on is retried:
        a 429, or a request that never left; a failure after sending is raised at once for the caller
        to resolve.
        """
        state = state or _CallState()
        url = path_or_url if isinstance(path_or_url, httpx.URL) else self._url(path_or_url)
        what = f"{method} /{url.path.removeprefix(self._base_url.path)}"
        while True:
            await self._take_slot(what, state)
            state.attempts += 1
            attempt = state.attempts
            try:
                response = await self._send(method, url, params=params, json=json, attempt=attempt)
                return self._unwrap(response, what, job_list=job_list)
            except errors.RateLimitedError as exc:
                await self._report_rate_limit(exc)
                await self._wait_rate_limit(exc, attempt)
            except (errors.ServerError, errors.TransportError) as exc:
                if not self._nothing_sent(exc):
                    state.ambiguous_failures += 1
                    if not retry_ambiguous:
                        raise
                if attempt >= self._retry.max_attempts:
                    exc.attempts = attempt
                    raise
                delay = self._retry.backoff(attempt)
                logger.info(
                    "%s failed (%s); retrying in %.1f s (attempt %d)", what, exc.message, delay, attempt
                )
                await self._sleep(delay)

    def _model(self, model: type[ModelT], data: Any, kind: str) -> ModelT:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise errors.ResponseFormatError(
                f"unexpected {kind} in Cloudflare's answer: {_summary(exc)}"
            ) from None

    def _models(self, model: type[ModelT], data: Any, kind: str) -> list[ModelT]:
        if data is None:
            return []
        if not isinstance(data, list):
            raise errors.ResponseFormatError(f"expected a list of {kind}s in Cloudflare's answer")
        return [self._model(model, item, kind) for item in data]


def _result_info(info: Any) -> ResultInfo:
    try:
        return ResultInfo.model_validate(info) if isinstance(info, dict) else ResultInfo()
    except ValidationError:
        return ResultInfo()


def _summary(exc: ValidationError) -> str:
    problems = exc.errors()
    if not problems:
        return "invalid"
    location = ".".join(str(part) for part in problems[0]["loc"])
    return f"{location or 'value'}: {problems[0]['msg']}"
