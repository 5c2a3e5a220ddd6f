"""Look at jobs: `/sweep list` (and its Previous/Next buttons) and `/sweep status <id>`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from blocks.job_card import build_status_card
from blocks.job_list import build_job_list
from blocks.notice import build_notice
from bot.errors import JobNotFound
from bot.grammar import ListCommand, StatusCommand
from bot.ids import ActionId
from bot.payloads import ListPageValue
from handlers._common import Services, reply_ephemeral
from handlers._listen import Request, on_button

LIST_PAGE_SIZE = 10


async def show_jobs(
    services: Services,
    request: Request,
    *,
    status: str | None,
    action_type: str | None,
    page: int,
    replace_original: bool,
) -> None:
    """Answer with one page of the account's recent jobs."""
    found = await services.jobs.list_jobs(
        actor=request.user_id,
        channel_id=request.channel_id,
        status=status,
        action_type=action_type,
        page=page,
        per_page=LIST_PAGE_SIZE,
    )
    message = build_job_list(
        found.jobs,
        page=page,
        has_more=found.has_more,
        status=status,
        action_type=action_type,
        now=services.clock(),
    )
    await reply_ephemeral(request.respond, message, replace_original=replace_original)


async def handle_list_command(services: Services, request: Request, command: ListCommand) -> None:
    """`/sweep list [status] [action]`."""
    await show_jobs(
        services,
        request,
        status=command.status,
        action_type=command.action_type,
        page=1,
        replace_original=False,
    )


async def handle_list_page_button(services: Services, request: Request, value: ListPageValue) -> None:
    """The list's Previous/Next buttons: redraw the list in place (silently nothing in a closed channel)."""
    if not services.may_view(request.channel_id).allowed:
        return
    await show_jobs(
        services,
        request,
        status=value.status,
        action_type=value.action_type,
        page=value.page,
        replace_original=True,
    )


async def handle_status_command(services: Services, request: Request, command: StatusCommand) -> None:
    """`/sweep status <id>`: the job's card, also for a job Sweep does not track."""
    try:
        found = await services.jobs.status(
            command.job_id, actor=request.user_id, channel_id=request.channel_id
        )
    except JobNotFound:
        await reply_ephemeral(
            request.respond, build_notice(f"No job `{command.job_id}` exists in this account.")
        )
        return
    card = build_status_card(found.job, tracked=found.tracked, now=services.clock())
    await reply_ephemeral(request.respond, card)


def register(app: AsyncApp, services: Services) -> None:
    """Attach the list's paging buttons."""
    app.action(ActionId.LIST_PAGE.value)(
        on_button(
            services,
            ListPageValue,
            handle_list_page_button,
            label="list page",
            replace="always",
        )
    )
