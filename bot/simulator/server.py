"""The `sweep-bot simulator` command: serve the simulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from bot.simulator.app import SimulatorConfig, running_simulator

DEV_TOKEN = "sweep-dev-token"  # noqa: S105 - the local simulator's well-known development token


async def serve(config: SimulatorConfig, host: str, port: int, *, token_source: str | None = None) -> None:
    """Run the simulator on host:port until cancelled, after printing how to reach it.

    With a `token_source` (`--token`, `CLOUDFLARE_API_TOKEN`) the banner names where the token came
    from and never prints it; without one the token is the well-known development token and is shown.
    """
    async with running_simulator(config, host=host, port=port) as sim:
        token = config.token if token_source is None else f"(from {token_source})"
        print(
            "Cloudflare Email Security simulator\n"
            f"  base URL:   {sim.base_url}\n"
            f"  token:      {token}\n"
            f"  account id: {config.default_account_id} (any id up to 32 characters works)\n"
            f"  example:    curl -H 'Authorization: Bearer <token>' "
            f"{sim.base_url}/accounts/{config.default_account_id}/email-security/investigate/bulk\n"
            f"  control:    {sim.root_url}/__sim/stats, /__sim/faults, /__sim/seed-jobs, /__sim/release\n"
            f"  jobs take {config.job_seconds:g} s; "
            f"mailbox of {config.mailbox_size} messages (seed {config.seed})",
            flush=True,
        )
        await asyncio.Event().wait()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sweep-bot simulator", description="Run the local Cloudflare Email Security API simulator."
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port (default 8787; 0 picks a free one)")
    parser.add_argument(
        "--token", default=None, help=f"API token to accept (default $CLOUDFLARE_API_TOKEN, else {DEV_TOKEN})"
    )
    parser.add_argument("--job-seconds", type=float, default=30.0, help="how long a job takes (default 30)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic mailbox (default 7)")
    parser.add_argument("--mailbox-size", type=int, default=3000, help="messages per account (default 3000)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and serve until Ctrl-C; return the exit code."""
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.job_seconds < 0 or args.mailbox_size < 0:
        print("sweep-bot simulator: --job-seconds and --mailbox-size must not be negative", file=sys.stderr)
        return 2
    token, source = token_and_source(args.token, os.environ.get("CLOUDFLARE_API_TOKEN"))
    config = SimulatorConfig(
        token=token, job_seconds=args.job_seconds, seed=args.seed, mailbox_size=args.mailbox_size
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, args.host, args.port, token_source=source))
    return 0


def token_and_source(option: str | None, environment: str | None) -> tuple[str, str | None]:
    """Return the token to accept and where it came from (None: the development token, shown as is).

    `--token` wins over `CLOUDFLARE_API_TOKEN`; a real token is never echoed, the dev token is.
    """
    if option:
        return option, None if option == DEV_TOKEN else "--token"
    if environment:
        return environment, None if environment == DEV_TOKEN else "CLOUDFLARE_API_TOKEN"
    return DEV_TOKEN, None
