"""The simulator's aiohttp application: Cloudflare's Email Security investigate API, plus control routes.

API routes (under `/client/v4/accounts/{account_id}/email-security/investigate`, v4 envelope, auth
required: `Authorization: Bearer <token>`, or `X-Auth-Email` + `X-Auth-Key` with the token as key):

- `POST /bulk` (201), `GET /bulk`, `GET /bulk/{job_id}`, `POST /bulk/{job_id}/cancel`,
  `DELETE /bulk/{job_id}`, `GET /bulk/{job_id}/messages`; `GET ` (the search, cursor paged, may
  answer 202 + `Location`).
- List `result_info` is `{count, per_page, page: 0, total_count: 0}`: the deprecated fields are always
  0 like the real API, so a client walks pages until a short one; a page past the end is empty.
- Every request is checked against Cloudflare's OpenAPI document first (`contract.py`: types, enums,
  formats, ranges, nullability), then against the rules it cannot state (`validation.py`): a MOVE
  without `destination` and a RELEASE with one are both 400. Every refusal is a v4 envelope naming
  the field; an unexpected exception is logged and answered 500 in the envelope (never expected).
- Cancelling a terminal job, or deleting an active one, is 409 with code 1409.

Control routes (no auth, never counted in stats): see `_control_routes` and the README of the package.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hmac
import json
import logging
import math
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from aiohttp import web
from pydantic import ValidationError

from bot.cloudflare.models import JobStatus
from bot.simulator.contract import RequestArgs, operation_for
from bot.simulator.faults import Decision, FaultConfig, FaultInjector, parse_fault_spec
from bot.simulator.mailbox import WINDOW
from bot.simulator.state import DEFAULT_ACCOUNT_ID, Job, SimulatorState
from bot.simulator.validation import (
    ACTIONS,
    JOB_STATUSES,
    SimError,
    page_of,
    parse_create,
    parse_job_id,
    parse_search_query,
)

API_PREFIX = "/client/v4"
BASE = API_PREFIX + "/accounts/{account_id}/email-security/investigate"
TICKET = "search_ticket"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
log = logging.getLogger(__name__)


@dataclass
class SimulatorConfig:
    """How the simulator behaves; every field has a sensible default except the token."""

    token: str
    job_seconds: float = 30.0
    seed: int = 7
    mailbox_size: int = 3000
    faults: FaultConfig = field(default_factory=FaultConfig)
    default_account_id: str = DEFAULT_ACCOUNT_ID


class Simulator:
    """Everything the handlers share: config, state, fault injector and pending searches."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.state = SimulatorState(
            job_seconds=config.job_seconds,
            seed=config.seed,
            mailbox_size=config.mailbox_size,
            default_account_id=config.default_account_id,
        )
        self.faults = FaultInjector(config.faults.model_copy(deep=True))
        self.tickets: set[str] = set()


SIMULATOR = web.AppKey("simulator", Simulator)
ACCEPT_SEARCH = web.RequestKey("accept_search", bool)
ARGS = web.RequestKey("args", RequestArgs)


# ---------------------------------------------------------------------------- envelope


def envelope(result: Any, *, status: int = 200, result_info: dict[str, Any] | None = None) -> web.Response:
    """Answer with the v4 success envelope."""
    body: dict[str, Any] = {"success": True, "errors": [], "messages": [], "result": result}
    if result_info is not None:
        body["result_info"] = result_info
    return web.json_response(body, status=status)


def error_response(error: SimError, headers: Mapping[str, str] | None = None) -> web.Response:
    """Answer with the v4 failure envelope."""
    body = {"success": False, "errors": error.entries(), "messages": [], "result": None}
    return web.json_response(body, status=error.status, headers=headers)


def page_info(count: int, per_page: int) -> dict[str, Any]:
    """Return a list `result_info`: the deprecated `page` and `total_count` are always 0."""
    return {"count": count, "per_page": per_page, "page": 0, "total_count": 0}


# ---------------------------------------------------------------------------- middleware


def _template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else "<unmatched>"
    return template.removeprefix(API_PREFIX).rstrip("/")


def _route_name(request: web.Request) -> str:
    return f"{request.method} {_template(request)}"


def _check_auth(request: web.Request, token: str) -> None:
    header = request.headers.get("Authorization")
    key = request.headers.get("X-Auth-Key")
    email = request.headers.get("X-Auth-Email")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise SimError(403, 9109, "Invalid access token")
        return
    if key and email:
        if not hmac.compare_digest(key.encode(), token.encode()):
            raise SimError(403, 9109, "Invalid API key")
        return
    raise SimError(401, 9106, "Missing X-Auth-Key, X-Auth-Email or Authorization headers")


@web.middleware
async def last_resort_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer any unexpected exception with a logged 500 in the v4 envelope (a bug: never expected)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        return _internal_error(request)


def _internal_error(request: web.Request) -> web.Response:
    """Log the exception being handled (with a reference) and answer 500 in the envelope."""
    reference = uuid.uuid4().hex[:12]
    log.exception("simulator bug (reference %s) answering %s %s", reference, request.method, request.path)
    return error_response(SimError(500, 10002, f"Internal server error (reference {reference})"))


@web.middleware
async def api_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Faults, auth, error envelopes and stats for every `/client/v4` request."""
    if not request.path.startswith(API_PREFIX + "/"):
        return await handler(request)
    sim = request.app[SIMULATOR]
    route = _route_name(request)
    first_search = route == "GET /accounts/{account_id}/email-security/investigate" and not (
        request.query.get("cursor") or request.query.get(TICKET)
    )
    decision = sim.faults.decide(request.method, request.path, first_search=first_search)
    request[ACCEPT_SEARCH] = decision.accept_search
    response = await _answer(request, handler, sim, decision)
    if decision.latency > 0:
        await asyncio.sleep(decision.latency)
    sim.state.stats.record(route, response.status)
    return response


async def _answer(
    request: web.Request, handler: Handler, sim: Simulator, decision: Decision
) -> web.StreamResponse:
    rule = decision.error
    if rule is not None and not rule.after:
        return _fault_response(rule.status or 503, rule.retry_after)
    try:
        if request.match_info.route.resource is not None:
            _check_auth(request, sim.config.token)
            operation = operation_for(request.method, _template(request))
            if operation is not None:
                body = await _json_body(request) if operation.takes_body else None
                request[ARGS] = operation.validate(request.match_info, request.query, body)
        response = await handler(request)
    except SimError as error:
        response = error_response(error)
    except web.HTTPRequestEntityTooLarge:
        response = error_response(SimError(413, 1001, "request body is too large"))
    except web.HTTPMethodNotAllowed:
        response = error_response(SimError(405, 7001, f"Method {request.method} not allowed for this route"))
    except web.HTTPNotFound:
        response = error_response(SimError(404, 7003, "No route for the URI"))
    except web.HTTPException:
        raise
    except Exception:  # a bug: answered (and counted in the stats) like any other answer
        response = _internal_error(request)
    if rule is not None:
        return _fault_response(rule.status or 503, rule.retry_after)
    return response


def _fault_response(status: int, retry_after: int) -> web.Response:
    if status == 429:
        error = SimError(429, 10429, "Rate limited: please wait and consider throttling your request speed")
        return error_response(error, headers={"Retry-After": str(retry_after)})
    return error_response(SimError(status, 10002, f"Simulated server error ({status})"))


# ---------------------------------------------------------------------------- API handlers


def _args(request: web.Request) -> RequestArgs:
    """Return the request's arguments as its contract typed them (set by the middleware)."""
    return request[ARGS]


def _account(request: web.Request) -> str:
    account_id: str = _args(request).path["account_id"]
    return account_id


def _job(request: web.Request) -> Job:
    sim = request.app[SIMULATOR]
    return sim.state.get(_account(request), parse_job_id(_args(request).path["job_id"]))


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        raise SimError(400, 1001, "request body must be a JSON object")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise SimError(400, 1001, "request body is not valid JSON") from None


async def create_job(request: web.Request) -> web.Response:
    """POST /bulk: create a job (201)."""
    sim = request.app[SIMULATOR]
    account_id = _account(request)
    parsed = parse_create(_args(request).body)
    job = sim.state.add_job(
        account_id,
        action=parsed.action,
        destination=parsed.destination,
        comment=parsed.comment,
        search=parsed.search,
        search_echo=parsed.search_echo,
        start_set=parsed.start_set,
        end_set=parsed.end_set,
    )
    return envelope(sim.state.job_json(job), status=201)


async def list_jobs(request: web.Request) -> web.Response:
    """GET /bulk: one page of jobs, newest first."""
    sim = request.app[SIMULATOR]
    account_id = _account(request)
    query = _args(request).query
    per_page = query["per_page"]
    rows = sim.state.list_jobs(
        account_id,
        page=query["page"],
        per_page=per_page,
        status=query.get("status"),
        action_type=query.get("action_type"),
    )
    result = [sim.state.job_json(job, view) for job, view in rows]
    return envelope(result, result_info=page_info(len(result), per_page))


async def get_job(request: web.Request) -> web.Response:
    """GET /bulk/{job_id}."""
    sim = request.app[SIMULATOR]
    return envelope(sim.state.job_json(_job(request)))


async def cancel_job(request: web.Request) -> web.Response:
    """POST /bulk/{job_id}/cancel."""
    sim = request.app[SIMULATOR]
    job = _job(request)
    view = sim.state.cancel(job)
    return envelope(sim.state.job_json(job, view))


async def delete_job(request: web.Request) -> web.Response:
    """DELETE /bulk/{job_id}: only terminal jobs."""
    sim = request.app[SIMULATOR]
    job = _job(request)
    sim.state.delete(job)
    return envelope({"id": job.job_id})


async def list_job_messages(request: web.Request) -> web.Response:
    """GET /bulk/{job_id}/messages: one record per discovered message."""
    sim = request.app[SIMULATOR]
    job = _job(request)
    query = _args(request).query
    per_page = query["per_page"]
    result = page_of(sim.state.message_records(job, query.get("status")), query["page"], per_page)
    return envelope(result, result_info=page_info(len(result), per_page))


def _encode_cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Cursor:
    """Where a search page starts: the resolved time range, the offset and the search's fingerprint."""

    start: float
    end: float
    offset: int
    fingerprint: int


def _decode_cursor(cursor: str) -> Cursor:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        data = None
    if isinstance(data, dict):
        start, end, offset, fingerprint = (data.get(key) for key in ("s", "e", "o", "f"))
        if _is_number(start) and _is_number(end) and _is_count(offset) and _is_count(fingerprint):
            return Cursor(float(start), float(end), int(offset), int(fingerprint))
    raise SimError(400, 1006, "cursor is not valid", pointer="cursor")


def _is_number(value: Any) -> TypeGuard[float]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an integer too large for a float
        return False


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _fingerprint(query: Mapping[str, str]) -> int:
    items = sorted((k, v) for k, v in query.items() if k not in {"cursor", "page", "per_page", TICKET})
    return zlib.crc32(json.dumps(items).encode())


async def search(request: web.Request) -> web.Response:
    """GET /investigate: the message search, cursor paged (deprecated `page` still honoured)."""
    sim = request.app[SIMULATOR]
    account_id = _account(request)
    query = request.query
    args = _args(request).query
    page, per_page = args["page"] or 1, args["per_page"]  # `page` may be null here (deprecated)
    criteria = parse_search_query(args)
    ticket = query.get(TICKET)
    if ticket and ticket not in sim.tickets:
        raise SimError(404, 1404, "unknown or expired search")
    if request.get(ACCEPT_SEARCH):
        new_ticket = uuid.uuid4().hex
        sim.tickets.add(new_ticket)
        location = request.url.update_query({TICKET: new_ticket})
        waiting = {"count": 0, "per_page": per_page, "page": 0, "total_count": 0, "next": None}
        response = envelope([], status=202, result_info=waiting)
        response.headers["Location"] = str(location)
        return response
    now = sim.state.clock()
    fingerprint = _fingerprint(query)
    if args.get("cursor"):
        cursor = _decode_cursor(args["cursor"])
        if cursor.fingerprint != fingerprint:
            raise SimError(400, 1006, "cursor does not belong to this search", pointer="cursor")
        start, end, offset = cursor.start, cursor.end, cursor.offset
    else:
        end = criteria.end if criteria.end is not None else now
        start = criteria.start if criteria.start is not None else now - WINDOW
        offset = (page - 1) * per_page
    mailbox = sim.state.mailbox(account_id)
    found = mailbox.search(dataclasses.replace(criteria, start=start, end=end))
    offset = min(offset, len(found.found))  # a page past the end, however far, is the empty page at the end
    messages = mailbox.messages
    chunk = found.found[offset : offset + per_page]
    result = [messages[i].details for i in chunk]
    after = offset + per_page
    info: dict[str, Any] = {
        "count": len(result),
        "per_page": per_page,
        "page": 0,
        "total_count": 0,
        "next": _encode_cursor({"s": start, "e": end, "o": after, "f": fingerprint})
        if after < len(found.found)
        else None,
        "previous": _encode_cursor({"s": start, "e": end, "o": max(0, offset - per_page), "f": fingerprint})
        if offset > 0
        else None,
    }
    return envelope(result, result_info=info)


# ---------------------------------------------------------------------------- control routes


async def _control_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise web.HTTPBadRequest(text="body is not valid JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def _job_ids(body: Mapping[str, Any]) -> list[str] | None:
    ids = body.get("job_ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise web.HTTPBadRequest(text="job_ids must be a list of strings")
    return ids


def _control_error(error: SimError) -> web.Response:
    return web.json_response({"error": error.message}, status=error.status)


async def set_faults(request: web.Request) -> web.Response:
    """POST /__sim/faults: replace the fault configuration (see faults.py for the shapes)."""
    sim = request.app[SIMULATOR]
    try:
        config = parse_fault_spec(await _control_body(request))
    except (ValueError, ValidationError) as error:
        return web.json_response({"error": str(error)}, status=400)
    sim.faults.set(config)
    return web.json_response({"faults": config.model_dump()})


async def get_faults(request: web.Request) -> web.Response:
    """GET /__sim/faults: the current configuration (counts show what is left)."""
    return web.json_response({"faults": request.app[SIMULATOR].faults.config.model_dump()})


async def clear_faults(request: web.Request) -> web.Response:
    """DELETE /__sim/faults: no faults."""
    request.app[SIMULATOR].faults.set(FaultConfig())
    return web.json_response({"faults": FaultConfig().model_dump()})


async def force_status(request: web.Request) -> web.Response:
    """POST /__sim/jobs/{job_id}/status `{status, status_message?, hold?}`: put a job in a status."""
    sim = request.app[SIMULATOR]
    body = await _control_body(request)
    status = body.get("status")
    if status not in JOB_STATUSES:
        return web.json_response({"error": f"status must be one of {sorted(JOB_STATUSES)}"}, status=400)
    hold = body.get("hold")
    try:
        job = sim.state.find(request.match_info["job_id"])
        view = sim.state.force_status(
            job, status, status_message=body.get("status_message"), hold=None if hold is None else bool(hold)
        )
    except SimError as error:
        return _control_error(error)
    return web.json_response(sim.state.job_json(job, view))


#: The counters `POST /__sim/jobs/{job_id}/counts` may override.
COUNT_FIELDS = frozenset(
    {
        "total_messages_discovered",
        "messages_pending",
        "messages_successful",
        "messages_failed",
        "messages_skipped",
        "messages_cancelled",
    }
)


async def add_matching_mail(request: web.Request) -> web.Response:
    """POST /__sim/jobs/{job_id}/more-mail `{"count": N}`: N new messages the job's search matches arrive.

    A job that has not finished discovering then discovers more than its preview counted (for the
    blast-radius tests and benchmark). Answers `{"added": n, "job": <the job>}`.
    """
    sim = request.app[SIMULATOR]
    body = await _control_body(request)
    count = body.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 100_000:
        return web.json_response({"error": "count must be a whole number from 1 to 100000"}, status=400)
    try:
        job = sim.state.find(request.match_info["job_id"])
    except SimError as error:
        return _control_error(error)
    added = sim.state.add_matching_mail(job, count)
    return web.json_response({"added": added, "job": sim.state.job_json(job)})


async def set_counts(request: web.Request) -> web.Response:
    """POST /__sim/jobs/{job_id}/counts `{counter: any JSON value…}`: report these counters from now on.

    For fault injection: the values are sent as given (2**63, -5, 1.5, "many"); `{}` reports the real
    counters again.
    """
    sim = request.app[SIMULATOR]
    body = await _control_body(request)
    unknown = sorted(set(body) - COUNT_FIELDS)
    if unknown:
        return web.json_response(
            {"error": f"not a counter: {unknown}; use {sorted(COUNT_FIELDS)}"}, status=400
        )
    try:
        job = sim.state.find(request.match_info["job_id"])
    except SimError as error:
        return _control_error(error)
    job.reported_counts = dict(body) or None
    return web.json_response(sim.state.job_json(job))


async def get_job_control(request: web.Request) -> web.Response:
    """GET /__sim/jobs/{job_id}: a job as the API shows it, without auth or stats."""
    sim = request.app[SIMULATOR]
    try:
        job = sim.state.find(request.match_info["job_id"])
    except SimError as error:
        return _control_error(error)
    return web.json_response(sim.state.job_json(job))


async def seed_jobs(request: web.Request) -> web.Response:
    """POST /__sim/seed-jobs `{count, status, hold, account_id?, action?}`: create many jobs at once."""
    sim = request.app[SIMULATOR]
    body = await _control_body(request)
    count = body.get("count", 1)
    status = body.get("status", JobStatus.PENDING)
    action = body.get("action")
    if not isinstance(count, int) or not 0 <= count <= 100_000:
        return web.json_response({"error": "count must be an integer in 0..100000"}, status=400)
    if status not in JOB_STATUSES:
        return web.json_response({"error": f"status must be one of {sorted(JOB_STATUSES)}"}, status=400)
    if action is not None and action not in ACTIONS:
        return web.json_response({"error": "action must be MOVE or RELEASE"}, status=400)
    jobs = sim.state.seed_jobs(
        count,
        status=status,
        hold=bool(body.get("hold", False)),
        account_id=body.get("account_id"),
        action=action,
    )
    return web.json_response({"count": len(jobs), "job_ids": [job.job_id for job in jobs]})


async def hold_jobs(request: web.Request) -> web.Response:
    """POST /__sim/hold `{job_ids?}`: freeze active jobs where they are."""
    sim = request.app[SIMULATOR]
    try:
        held = sim.state.hold(_job_ids(await _control_body(request)))
    except SimError as error:
        return _control_error(error)
    return web.json_response({"held": held})


async def release_jobs(request: web.Request) -> web.Response:
    """POST /__sim/release `{job_ids?}`: unfreeze held jobs (all by default)."""
    sim = request.app[SIMULATOR]
    try:
        released = sim.state.release(_job_ids(await _control_body(request)))
    except SimError as error:
        return _control_error(error)
    return web.json_response({"released": released})


async def get_stats(request: web.Request) -> web.Response:
    """GET /__sim/stats: API request counts per `METHOD /route` and in total, and job counts."""
    state = request.app[SIMULATOR].state
    return web.json_response(state.stats.as_dict(state.job_count()))


async def reset_stats(request: web.Request) -> web.Response:
    """POST /__sim/stats/reset: zero the request and job-creation counters."""
    state = request.app[SIMULATOR].state
    state.stats.reset()
    return web.json_response(state.stats.as_dict(state.job_count()))


async def sim_info(request: web.Request) -> web.Response:
    """GET /__sim/info: what this simulator serves (never the token)."""
    sim = request.app[SIMULATOR]
    return web.json_response(
        {
            "api_prefix": API_PREFIX,
            "default_account_id": sim.config.default_account_id,
            "job_seconds": sim.config.job_seconds,
            "mailbox_size": sim.config.mailbox_size,
            "seed": sim.config.seed,
        }
    )


def _control_routes() -> list[web.RouteDef]:
    return [
        web.get("/__sim/info", sim_info),
        web.post("/__sim/faults", set_faults),
        web.get("/__sim/faults", get_faults),
        web.delete("/__sim/faults", clear_faults),
        web.get("/__sim/jobs/{job_id}", get_job_control),
        web.post("/__sim/jobs/{job_id}/status", force_status),
        web.post("/__sim/jobs/{job_id}/counts", set_counts),
        web.post("/__sim/jobs/{job_id}/more-mail", add_matching_mail),
        web.post("/__sim/seed-jobs", seed_jobs),
        web.post("/__sim/hold", hold_jobs),
        web.post("/__sim/release", release_jobs),
        web.get("/__sim/stats", get_stats),
        web.post("/__sim/stats/reset", reset_stats),
    ]


def create_app(config: SimulatorConfig) -> web.Application:
    """Build the simulator application (no side effects until it is run)."""
    app = web.Application(middlewares=[last_resort_middleware, api_middleware])
    app[SIMULATOR] = Simulator(config)
    app.add_routes(
        [
            web.post(BASE + "/bulk", create_job),
            web.get(BASE + "/bulk", list_jobs),
            web.get(BASE + "/bulk/{job_id}", get_job),
            web.delete(BASE + "/bulk/{job_id}", delete_job),
            web.post(BASE + "/bulk/{job_id}/cancel", cancel_job),
            web.get(BASE + "/bulk/{job_id}/messages", list_job_messages),
            web.get(BASE, search),
            web.get(BASE + "/", search),
            *_control_routes(),
        ]
    )
    return app


# ---------------------------------------------------------------------------- running


class RunningSimulator:
    """A simulator listening on a port; control methods mirror the `/__sim/` routes."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        shown = f"[{host}]" if ":" in host else host
        self.root_url = f"http://{shown}:{port}"
        self.base_url = self.root_url + API_PREFIX

    @property
    def simulator(self) -> Simulator:
        """Return the shared simulator object."""
        return self.app[SIMULATOR]

    @property
    def state(self) -> SimulatorState:
        """Return the in-memory state, for direct inspection."""
        return self.simulator.state

    @property
    def account_id(self) -> str:
        """Return the default account id (the one seeded jobs go to)."""
        return self.simulator.config.default_account_id

    async def set_faults(self, spec: Mapping[str, Any] | FaultConfig) -> FaultConfig:
        """Replace the fault configuration (same shapes as POST /__sim/faults)."""
        config = spec if isinstance(spec, FaultConfig) else parse_fault_spec(dict(spec))
        self.simulator.faults.set(config)
        return config

    async def clear_faults(self) -> None:
        """Turn every fault off."""
        self.simulator.faults.set(FaultConfig())

    async def seed_jobs(
        self, count: int, status: str = "PENDING", *, hold: bool = False, account_id: str | None = None
    ) -> list[str]:
        """Create `count` jobs in `status` (frozen there when `hold`); return their ids."""
        jobs = self.state.seed_jobs(count, status=status, hold=hold, account_id=account_id)
        return [job.job_id for job in jobs]

    async def force_status(
        self, job_id: str, status: str, *, status_message: str | None = None, hold: bool | None = None
    ) -> dict[str, Any]:
        """Put a job into `status` now; return it as the API would."""
        job = self.state.find(job_id)
        return self.state.job_json(
            job, self.state.force_status(job, status, status_message=status_message, hold=hold)
        )

    async def add_matching_mail(self, job_id: str, count: int) -> int:
        """Deliver `count` new messages the job's search matches (as POST /__sim/jobs/{job_id}/more-mail)."""
        return self.state.add_matching_mail(self.state.find(job_id), count)

    async def set_counts(self, job_id: str, counts: Mapping[str, Any]) -> dict[str, Any]:
        """Report these counters for a job from now on (as POST /__sim/jobs/{job_id}/counts)."""
        unknown = sorted(set(counts) - COUNT_FIELDS)
        if unknown:
            raise ValueError(f"not a counter: {unknown}")
        job = self.state.find(job_id)
        job.reported_counts = dict(counts) or None
        return self.state.job_json(job)

    async def hold(self, job_ids: Iterable[str] | None = None) -> int:
        """Freeze active jobs (all by default) where they are."""
        return self.state.hold(job_ids)

    async def release(self, job_ids: Iterable[str] | None = None) -> int:
        """Unfreeze held jobs (all by default)."""
        return self.state.release(job_ids)

    async def stats(self) -> dict[str, Any]:
        """Return the request statistics (as GET /__sim/stats)."""
        return self.state.stats.as_dict(self.state.job_count())

    async def reset_stats(self) -> None:
        """Zero the statistics."""
        self.state.stats.reset()


@asynccontextmanager
async def running_simulator(
    config: SimulatorConfig, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    """Run the simulator in the current event loop (port 0: a free port) until the block exits."""
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = int(runner.addresses[0][1])
        yield RunningSimulator(app, host, bound)
    finally:
        await runner.cleanup()
