"""The `sweep-bot` command line: serve | simulator | demo | check | migrate."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from bot.config import ConfigError, load_settings

log = logging.getLogger("sweep")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sweep-bot", description="Cloudflare Email Security bulk jobs from Slack."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the bot (Socket Mode if SLACK_APP_TOKEN is set, else HTTP)"
    )
    mode = serve.add_mutually_exclusive_group()
    mode.add_argument("--http", action="store_true", help="force HTTP mode (/slack/events)")
    mode.add_argument("--socket", action="store_true", help="force Socket Mode")
    serve.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"), help="HTTP bind address")  # noqa: S104
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "3000")), help="HTTP port")
    commands.add_parser("simulator", help="run the local Cloudflare Email Security simulator", add_help=False)
    demo = commands.add_parser(
        "demo", help="play an incident offline: simulator + local Slack + the real bot"
    )
    demo.add_argument("--interactive", action="store_true", help="type /sweep lines yourself")
    demo.add_argument("--keep", action="store_true", help="keep the temporary database and the bot's log")
    demo.add_argument("--verbose", action="store_true", help="show the bot's log on stderr")
    commands.add_parser("check", help="validate the configuration and exit")
    commands.add_parser("migrate", help="apply database migrations and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["simulator"]:
        from bot.simulator.server import main as simulator_main

        return simulator_main(args_list[1:])
    args = _parser().parse_args(args_list)
    from bot.logs import configure_logging

    configure_logging(os.environ.get("SWEEP_LOG_LEVEL", "INFO"))
    try:
        if args.command == "serve":
            socket_mode = True if args.socket else False if args.http else None
            return asyncio.run(_serve(socket_mode=socket_mode, host=args.host, port=args.port))
        if args.command == "check":
            settings, cloudflare = load_settings()
            print(
                f"configuration OK: account {cloudflare.account_id}, database {settings.sweep_database}, "
                f"poll every {settings.sweep_poll_seconds:g} s, {len(settings.operators)} operator entries"
            )
            return 0
        if args.command == "migrate":
            from bot.store import migrate

            path = os.environ.get("SWEEP_DATABASE", "sweep.db")
            version = asyncio.run(migrate(path))
            print(f"{path}: schema at version {version}")
            return 0
        if args.command == "demo":
            from bot.demo import run_demo

            return asyncio.run(
                run_demo(interactive_mode=args.interactive, keep=args.keep, verbose=args.verbose)
            )
    except ConfigError as error:
        print(f"sweep-bot: configuration error: {error}", file=sys.stderr)
        return 2
    return 1


async def _serve(*, socket_mode: bool | None, host: str, port: int) -> int:
    from bot.app import background_loops, http_application, open_runtime

    settings, cloudflare = load_settings(socket_mode=socket_mode)
    use_socket = socket_mode if socket_mode is not None else settings.slack_app_token is not None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_runtime(settings, cloudflare) as runtime, background_loops(runtime):
        # Everything allocated so far lives as long as the process: keep it out of the collector's
        # full passes, whose pauses would otherwise land on whichever ack is waiting.
        gc.freeze()
        if use_socket:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else ""
            await _check_app_token(app_token, settings.slack_api_url)
            handler = AsyncSocketModeHandler(runtime.app, app_token)
            # connect_async() retries forever (e.g. a revoked app token, Slack unreachable), so a
            # SIGTERM meanwhile must cancel it rather than wait for a connection that never comes.
            connecting = asyncio.ensure_future(handler.connect_async())  # type: ignore[no-untyped-call]
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if connecting.done():
                connecting.result()
                log.info("Sweep is running in Socket Mode")
                await stopping
            else:
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connecting
            await handler.close_async()  # type: ignore[no-untyped-call]
        else:
            runner = web.AppRunner(http_application(runtime), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, host, port)
            await site.start()
            log.info("Sweep is listening on http://%s:%d/slack/events", host, port)
            await stop.wait()
            await runner.cleanup()
    log.info("Sweep stopped")
    return 0


async def _check_app_token(app_token: str, api_url: str) -> None:
    """Fail at start, with one line, when Slack refuses the app token (it would otherwise retry forever)."""
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    try:
        await AsyncWebClient(base_url=api_url).apps_connections_open(app_token=app_token)
    except SlackApiError as error:
        code = error.response.get("error") if isinstance(error.response.data, dict) else None
        if code in {
            "invalid_auth",
            "not_authed",
            "not_allowed_token_type",
            "account_inactive",
            "token_revoked",
        }:
            raise ConfigError(f"SLACK_APP_TOKEN was refused by Slack ({code})") from None
        log.warning("could not check the app token yet (%s); connecting anyway", code or "error")
    except Exception as error:  # noqa: BLE001 - Slack unreachable: the handler keeps retrying
        log.warning(
            "could not reach Slack to check the app token (%s); connecting anyway", type(error).__name__
        )


if __name__ == "__main__":
    sys.exit(main())
