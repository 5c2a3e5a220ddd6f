"""The `sweep-bot` command line: serve | simulator | devslack | demo | check | migrate.

Configuration is read by `bot.config` only when a command needs it (so `--help` never fails on a
bad variable); every configuration problem is printed as one line naming its variable, exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import gc
import logging
import signal
import sys
import unicodedata
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.config import (
    Config,
    ConfigError,
    UnavailableError,
    load_database_target,
    load_log_format,
    load_log_level,
    load_settings,
)

if TYPE_CHECKING:
    from aiohttp import web  # imported where it serves: a configuration error or `--help` needs none of it

    from bot.app import Runtime

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
    # Read as text and validated with HOST/PORT by bot.config, so a bad value is one line, not a crash.
    serve.add_argument("--host", default=None, help="HTTP bind address (default $HOST, else 0.0.0.0)")
    serve.add_argument("--port", default=None, help="HTTP port (default $PORT, else 3000; 0 = any free port)")
    serve.add_argument(
        "--metrics-port",
        default=None,
        help="serve /metrics and /healthz on this port too (HTTP mode also serves them beside /slack/events)",
    )
    commands.add_parser("simulator", help="run the local Cloudflare Email Security simulator", add_help=False)
    commands.add_parser("devslack", help="run the local Slack stand-in (Web API) for `serve`", add_help=False)
    demo = commands.add_parser(
        "demo", help="play an incident offline: simulator + local Slack + the real bot"
    )
    demo.add_argument("--interactive", action="store_true", help="type /sweep lines yourself")
    demo.add_argument("--keep", action="store_true", help="keep the temporary database and the bot's log")
    demo.add_argument("--verbose", action="store_true", help="show the bot's log on stderr")
    check = commands.add_parser(
        "check", help="validate the configuration, open the database, try the Slack and Cloudflare tokens"
    )
    check.add_argument("--offline", action="store_true", help="do not call Slack or Cloudflare")
    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.add_argument(
        "--url",
        help=(
            "a database URL instead of SWEEP_DATABASE_URL or SWEEP_DATABASE "
            "(sqlite+aiosqlite:///path, postgresql://…)"
        ),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["simulator"]:
        from bot.simulator.server import main as simulator_main

        return simulator_main(args_list[1:])
    if args_list[:1] == ["devslack"]:
        from bot.devslack.server import main as devslack_main

        return devslack_main(args_list[1:])
    args = _parser().parse_args(args_list)
    from bot.logs import configure_logging

    try:
        level_problem: ConfigError | None = None
        try:
            level = load_log_level()
        except ConfigError as error:
            # serve and check report it with every other problem; the others stop on it.
            level, level_problem = "INFO", error
        try:
            log_format = load_log_format()
        except ConfigError as error:
            log_format, level_problem = "text", level_problem or error
        # check's findings are its own lines; library chatter at INFO would only bury them.
        configure_logging("WARNING" if args.command == "check" and level != "DEBUG" else level, log_format)
        if args.command == "serve":
            socket_mode = True if args.socket else False if args.http else None
            metrics_port = _metrics_port(args.metrics_port)
            config = load_settings(socket_mode=socket_mode, host=args.host, port=args.port)
            return asyncio.run(
                _serve(
                    config,
                    host_flag=args.host is not None,
                    port_flag=args.port is not None,
                    metrics_port=metrics_port,
                )
            )
        if args.command == "check":
            return asyncio.run(_check(load_settings(), offline=args.offline))
        if level_problem is not None:
            raise level_problem
        if args.command == "migrate":
            from bot.store import display_url

            target: Path | str = args.url if args.url else load_database_target()
            setting = (
                "--url"
                if args.url
                else "SWEEP_DATABASE"
                if isinstance(target, Path)
                else "SWEEP_DATABASE_URL"
            )
            version = asyncio.run(_migrate(target, setting))
            print(f"{display_url(target)}: schema at version {version}")
            return 0
        if args.command == "demo":
            from bot.demo import run_demo

            return asyncio.run(
                run_demo(interactive_mode=args.interactive, keep=args.keep, verbose=args.verbose)
            )
    except ConfigError as error:
        _print_config_error(error)
        return 2
    except UnavailableError as error:
        print(f"sweep-bot: {error}", file=sys.stderr)
        return 1
    return 1


def _metrics_port(value: str | None) -> int | None:
    """Return --metrics-port as a port number (None when not given), or raise one line naming it."""
    if value is None:
        return None
    text = value.strip()
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise ConfigError(f"--metrics-port must be a whole number from 0 to 65535, not {text[:40]!r}")
    return int(text)


def _print_config_error(error: ConfigError) -> None:
    for problem in error.problems:
        print(f"sweep-bot: configuration error: {problem}", file=sys.stderr)


async def _migrate(target: Path | str, setting: str) -> int:
    from bot.app import open_database

    async with open_database(target, setting=setting) as store:
        return await store.schema_version()


async def _serve(config: Config, *, host_flag: bool, port_flag: bool, metrics_port: int | None = None) -> int:
    from aiohttp import web

    from bot.app import background_loops, http_application, open_runtime

    settings, cloudflare = config.settings, config.cloudflare
    stop = asyncio.Event()
    main_task = asyncio.current_task()
    started = False

    def on_signal() -> None:
        # Before Sweep serves anything (opening the database, reaching Slack) a signal just
        # cancels the start-up; afterwards it stops gracefully, finishing acknowledged work.
        if started:
            stop.set()
        elif main_task is not None:
            main_task.cancel()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    try:
        if config.socket_mode:
            # A refused app token is a configuration error: say so before opening anything.
            await _check_app_token(_app_token(config), settings.slack_api_url)
        async with open_runtime(settings, cloudflare) as runtime, background_loops(runtime):
            # Everything allocated so far lives as long as the process: keep it out of the collector's
            # full passes, whose pauses would otherwise land on whichever ack is waiting.
            gc.freeze()
            async with _metrics_listener(runtime, settings.host, metrics_port):
                if config.socket_mode:
                    started = True
                    await _run_socket_mode(runtime, config, stop)
                else:
                    runner = web.AppRunner(http_application(runtime), access_log=None)
                    await runner.setup()
                    try:
                        await _listen(
                            runner, settings.host, settings.port, host_flag=host_flag, port_flag=port_flag
                        )
                        started = True
                        await stop.wait()
                    finally:
                        await runner.cleanup()
    except asyncio.CancelledError:
        if started:
            raise
        log.info("Sweep stopped before it finished starting")
        return 0
    log.info("Sweep stopped")
    return 0


async def _listen(runner: web.AppRunner, host: str, port: int, *, host_flag: bool, port_flag: bool) -> None:
    """Start listening, or raise one line naming the variable (or flag) to change."""
    from aiohttp import web

    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as error:
        port_name = "--port" if port_flag else "PORT"
        host_name = "--host" if host_flag else "HOST"
        reason = error.strerror or str(error)
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(f"{port_name} {port} is already in use on {host} ({reason})") from None
        raise ConfigError(f"{host_name} {host}: cannot listen on port {port} ({reason})") from None
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("Sweep is listening on http://%s:%d/slack/events", host, bound)


@contextlib.asynccontextmanager
async def _metrics_listener(runtime: Runtime, host: str, port: int | None) -> AsyncIterator[None]:
    """Serve /metrics and /healthz on `port` (`--metrics-port`) while the block runs; None: nothing."""
    if port is None:
        yield
        return
    from aiohttp import web

    from bot.app import metrics_application

    runner = web.AppRunner(metrics_application(runtime), access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            reason = error.strerror or str(error)
            raise ConfigError(f"--metrics-port {port}: cannot listen on {host} ({reason})") from None
        bound = runner.addresses[0][1] if runner.addresses else port
        log.info("Sweep serves metrics on http://%s:%d/metrics", host, bound)
        yield
    finally:
        await runner.cleanup()


async def _run_socket_mode(runtime: Runtime, config: Config, stop: asyncio.Event) -> None:
    from bot.app import socket_mode_handler

    handler = socket_mode_handler(runtime, _app_token(config))
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


def _app_token(config: Config) -> str:
    token = config.settings.slack_app_token
    return token.get_secret_value() if token is not None else ""


async def _check_app_token(app_token: str, api_url: str) -> None:
    """Fail at start, with one line, when Slack refuses the app token (it would otherwise retry forever)."""
    from slack_sdk.errors import SlackApiError
    from slack_sdk.web.async_client import AsyncWebClient

    from bot.app import SLACK_TOKEN_REFUSED

    try:
        await AsyncWebClient(base_url=api_url).apps_connections_open(app_token=app_token)
    except SlackApiError as error:
        code = error.response.get("error") if isinstance(error.response.data, dict) else None
        if code in SLACK_TOKEN_REFUSED:
            raise ConfigError(f"SLACK_APP_TOKEN was refused by Slack ({code})") from None
        log.warning("could not check the app token yet (%s); connecting anyway", code or "error")
    except Exception as error:  # noqa: BLE001 - Slack unreachable: the handler keeps retrying
        log.warning(
            "could not reach Slack to check the app token (%s); connecting anyway", type(error).__name__
        )


# ---------------------------------------------------------------------------------------- check


def _one_line(text: str) -> str:
    """Return `text` on one line, without control characters (a remote server's words reach a terminal)."""
    return " ".join("".join(c if unicodedata.category(c)[0] != "C" else " " for c in text).split())


class _Report:
    """Prints check's findings, one line each; remembers the exit code (2 configuration, 1 unavailable)."""

    def __init__(self) -> None:
        self.code = 0

    def ok(self, line: str) -> None:
        print(line, flush=True)

    def problem(self, error: Exception) -> None:
        if isinstance(error, ConfigError):
            _print_config_error(error)
            self.code = 2
        else:
            print(f"sweep-bot: {_one_line(str(error))}", file=sys.stderr, flush=True)
            self.code = max(self.code, 1)


async def _check(config: Config, *, offline: bool) -> int:
    """Report the configuration, then open the database and (unless offline) try both tokens."""
    from bot.store import display_url

    settings, cloudflare = config.settings, config.cloudflare
    report = _Report()
    report.ok(
        f"configuration OK: {'Socket Mode' if config.socket_mode else 'HTTP mode'}, "
        f"account {cloudflare.account_id}, database {display_url(settings.database_target)}, "
        f"poll every {settings.sweep_poll_seconds:g} s, {len(settings.operators)} operator entries"
    )
    from bot.app import open_database

    target = settings.database_target
    existed = not isinstance(target, Path) or target.exists()
    try:
        async with open_database(target, setting=settings.database_setting) as store:
            version = await store.schema_version()
        created = "" if existed else ", created"
        report.ok(f"database OK: {display_url(target)} (schema at version {version}{created})")
    except ConfigError as error:
        report.problem(error)
    if offline:
        report.ok("Slack and Cloudflare not tried (--offline)")
        return report.code
    await _check_slack(config, report)
    await _check_cloudflare(config, report)
    return report.code


async def _check_slack(config: Config, report: _Report) -> None:
    from slack_sdk.errors import SlackApiError

    from bot.app import fetch_identity, slack_problem, slack_web_client

    settings = config.settings
    client = slack_web_client(settings)
    try:
        identity = await fetch_identity(client)
        report.ok(
            f"Slack OK: SLACK_BOT_TOKEN is bot @{identity.get('user')} ({identity.get('user_id')}) "
            f"in {identity.get('team')} ({identity.get('team_id')}) at {settings.slack_api_url}"
        )
    except (ConfigError, UnavailableError) as error:
        report.problem(error)
        return
    if not config.socket_mode or settings.slack_app_token is None:
        return
    from slack_sdk.web.async_client import AsyncWebClient

    try:
        # Opening a Socket Mode connection only hands out a URL; nothing connects to it.
        await AsyncWebClient(base_url=settings.slack_api_url).apps_connections_open(
            app_token=settings.slack_app_token.get_secret_value()
        )
        report.ok("Slack OK: SLACK_APP_TOKEN may open Socket Mode connections")
    except SlackApiError as error:
        report.problem(
            slack_problem(error, settings.slack_api_url, "SLACK_APP_TOKEN", method="apps.connections.open")
        )
    except Exception as error:  # noqa: BLE001 - any transport failure is one line
        report.problem(
            UnavailableError(f"Slack unreachable at {settings.slack_api_url} ({type(error).__name__})")
        )


async def _check_cloudflare(config: Config, report: _Report) -> None:
    import httpx

    from bot.app import cloudflare_timeout
    from bot.cloudflare import errors
    from bot.cloudflare.client import CloudflareClient, RetryPolicy

    settings, cloudflare = config.settings, config.cloudflare
    variable = "CLOUDFLARE_API_TOKEN" if cloudflare.api_token is not None else "CLOUDFLARE_API_KEY"
    where = cloudflare.base_url
    cloudflare_log = logging.getLogger("sweep.cloudflare")
    quiet = cloudflare_log.getEffectiveLevel() > logging.DEBUG
    if quiet:  # the client's own warning would repeat the line below
        cloudflare_log.setLevel(logging.ERROR)
    try:
        async with httpx.AsyncClient(timeout=cloudflare_timeout(settings.sweep_cloudflare_timeout)) as http:
            client = CloudflareClient.from_settings(http, cloudflare, retry=RetryPolicy(max_attempts=1))
            await client.list_jobs(per_page=1)
        report.ok(
            f"Cloudflare OK: {variable} may list bulk jobs of account {cloudflare.account_id} at {where}"
        )
    except (errors.AuthenticationError, errors.PermissionDeniedError) as error:
        report.problem(ConfigError(f"{variable} was refused by Cloudflare ({_cloudflare_detail(error)})"))
    except errors.NotFoundError as error:
        report.problem(
            ConfigError(
                f"CLOUDFLARE_ACCOUNT_ID or CLOUDFLARE_BASE_URL is wrong: {where} answered "
                f"{_cloudflare_detail(error)} for account {cloudflare.account_id}"
            )
        )
    except errors.TransportError as error:
        cause = type(error.__cause__).__name__ if error.__cause__ is not None else type(error).__name__
        report.problem(UnavailableError(f"Cloudflare unreachable at {where} ({cause})"))
    except errors.CloudflareError as error:
        report.problem(UnavailableError(f"Cloudflare at {where} answered {_cloudflare_detail(error)}"))
    finally:
        if quiet:
            cloudflare_log.setLevel(logging.NOTSET)


def _cloudflare_detail(error: Exception) -> str:
    from bot.cloudflare import errors

    if not isinstance(error, errors.CloudflareError):
        return type(error).__name__
    status = f"HTTP {error.status}" if error.status else ""
    detail = "; ".join(f"{e.code}: {e.message}" for e in error.errors) or error.message
    return _one_line(f"{status} {detail}".strip())


if __name__ == "__main__":
    sys.exit(main())
