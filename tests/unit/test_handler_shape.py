"""The pieces every listener is made of: the command route, the operator gate, Sweep's own errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from blocks.help import build_help
from bot.cloudflare.errors import ErrorDetail, NotFoundError, RateLimitedError, ServerError
from bot.errors import CloudflareFailed, JobNotFound, SweepError, translated
from bot.grammar import Command, parse_command
from bot.models import JobPage, TrackedJob
from bot.policy import Decision, Operation, not_an_operator
from handlers._common import error_message
from handlers._listen import Request, requires
from handlers.commands import Answer, Route, route

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
JOB = "0b8c2a4e-6f1d-4c3b-9a7e-2d5f8e1c3b90"


def command(text: str) -> Command:
    return parse_command(text, now=NOW)


# ---------------------------------------------------------------- the command route


def test_help_is_answered_in_the_ack() -> None:
    assert route(command("help")) == Answer(build_help())


@pytest.mark.parametrize(
    ("text", "handler", "urgent"),
    [
        ("new", "handle_new_command", True),  # the trigger id lives 3 s
        ("move sender:bad@phish.example since:24h to:deleted", "handle_create_command", False),
        ("release message_id:<abc123@mail.example.com>", "handle_create_command", False),
        ("list status:processing", "handle_list_command", False),
        (f"status {JOB}", "handle_status_command", False),
        (f"cancel {JOB}", "handle_cancel_command", False),
        (f"watch {JOB}", "handle_watch_command", False),
    ],
)
async def test_every_subcommand_has_its_handler_and_urgency(
    text: str, handler: str, urgent: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = route(command(text))
    assert isinstance(target, Route)
    assert target.urgent is urgent
    called: list[tuple[str, Any]] = []

    class Spy:
        """Stands in for the feature modules: records which handler the route calls, with what."""

        def __getattr__(self, name: str) -> Any:
            async def handle(services: Any, request: Any, argument: Any) -> None:
                called.append((name, argument))

            return handle

    for feature in ("cancel", "create", "create_form", "jobs_list", "watch"):
        monkeypatch.setattr(f"handlers.commands.{feature}", Spy())
    await target.act(object(), object())  # type: ignore[arg-type]
    assert [name for name, _ in called] == [handler]
    assert called[0][1] == command(text)


# ---------------------------------------------------------------- the operator gate


class Recorder:
    def __init__(self) -> None:
        self.replies: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> None:
        self.replies.append(kwargs)


class Gate:
    """Services reduced to the gate: decides from `allowed` and records what it audited."""

    def __init__(self, allowed: bool) -> None:
        self.allowed = allowed
        self.asked: list[tuple[str, str | None, Operation, str]] = []

    async def authorise(
        self, user_id: str, channel_id: str | None, operation: Operation, *, what: str
    ) -> Decision:
        self.asked.append((user_id, channel_id, operation, what))
        return Decision(self.allowed, "" if self.allowed else not_an_operator(operation))


def _request(respond: Recorder) -> Request:
    return Request(user_id="U1", channel_id="C1", respond=respond, client=None)  # type: ignore[arg-type]


async def test_requires_refuses_with_the_operation_named_and_does_not_run_the_handler() -> None:
    ran: list[str] = []

    @requires(Operation.CANCEL, lambda job_id: f"cancel {job_id}")
    async def handle(services: Any, request: Request, job_id: str) -> None:
        ran.append(job_id)

    gate, respond = Gate(allowed=False), Recorder()
    await handle(gate, _request(respond), JOB)  # type: ignore[arg-type]
    assert ran == []
    assert gate.asked == [("U1", "C1", Operation.CANCEL, f"cancel {JOB}")]
    [reply] = respond.replies
    assert reply["response_type"] == "ephemeral"
    assert "only Sweep operators may cancel jobs" in reply["text"]


async def test_requires_runs_the_handler_for_an_operator() -> None:
    ran: list[str] = []

    @requires(Operation.WATCH, lambda job_id: f"watch {job_id}")
    async def handle(services: Any, request: Request, job_id: str) -> None:
        ran.append(job_id)

    gate, respond = Gate(allowed=True), Recorder()
    await handle(gate, _request(respond), JOB)  # type: ignore[arg-type]
    assert ran == [JOB]
    assert respond.replies == []


# ---------------------------------------------------------------- Sweep's own errors


def test_a_404_for_a_job_becomes_job_not_found_with_cloudflares_words() -> None:
    cause = NotFoundError("not found", status=404, errors=(ErrorDetail(1404, "job not found"),))
    with pytest.raises(JobNotFound) as caught, translated(JOB):
        raise cause
    assert caught.value.job_id == JOB
    assert caught.value.codes == (1404,)
    assert caught.value.user_message() == cause.user_message()
    assert "1404" in caught.value.user_message() and "job not found" in caught.value.user_message()
    assert caught.value.__cause__ is cause


@pytest.mark.parametrize(
    "cause",
    [
        ServerError("boom", status=502, errors=(ErrorDetail(10001, "upstream failed"),)),
        RateLimitedError("slow down", retry_after=12),
        NotFoundError("no such route", status=404),  # not about a job: no job id given
    ],
)
def test_other_cloudflare_errors_become_cloudflare_failed(cause: Exception) -> None:
    with pytest.raises(CloudflareFailed) as caught, translated():
        raise cause
    assert not isinstance(caught.value, JobNotFound)
    assert caught.value.user_message() == cause.user_message()  # type: ignore[attr-defined]


def test_what_is_not_from_cloudflare_passes_through() -> None:
    with pytest.raises(ValueError, match="mine"), translated(JOB):
        raise ValueError("mine")


def test_the_user_sees_cloudflares_code_and_message() -> None:
    failed = CloudflareFailed("Cloudflare error (HTTP 403) 10000: Authentication error", codes=(10000,))
    message = error_message(failed)
    assert "10000: Authentication error" in message["text"]
    assert isinstance(failed, SweepError)


# ---------------------------------------------------------------- Sweep's own models


def _job(index: int) -> TrackedJob:
    return TrackedJob(
        job_id=f"job-{index}",
        account_id="a",
        action_type="MOVE",
        status="COMPLETED",
        created_at=NOW,
        updated_at=NOW,
    )


def test_a_full_page_may_have_a_next_one_a_short_page_does_not() -> None:
    assert JobPage(jobs=tuple(_job(i) for i in range(10)), page=1, per_page=10).has_more
    assert not JobPage(jobs=tuple(_job(i) for i in range(9)), page=1, per_page=10).has_more
    assert not JobPage(jobs=(), page=2, per_page=10).has_more
