"""Track a job created elsewhere: `/sweep watch <id>` (its card is posted by the notifier)."""

from __future__ import annotations

from blocks.notice import build_notice
from bot.errors import JobNotFound
from bot.grammar import WatchCommand
from bot.policy import Operation
from handlers._common import Services, reply_ephemeral
from handlers._listen import Request, requires


def _watching(command: WatchCommand) -> str:
    return f"watch {command.job_id}"


@requires(Operation.WATCH, _watching)
async def handle_watch_command(services: Services, request: Request, command: WatchCommand) -> None:
    """`/sweep watch <id>`: start tracking the job and post its card in this channel."""
    if request.channel_id is None:  # a slash command always has one
        return
    try:
        tracked, is_new = await services.jobs.watch(
            command.job_id, requester=request.user_id, channel_id=request.channel_id
        )
    except JobNotFound:
        await reply_ephemeral(
            request.respond, build_notice(f"No job `{command.job_id}` exists in this account.")
        )
        return
    if is_new:
        text = f"Watching job `{tracked.job_id}`: its card is being posted in this channel."
    else:
        text = f"Job `{tracked.job_id}` is already tracked; its card is in <#{tracked.channel_id}>."
    await reply_ephemeral(request.respond, build_notice(text))
