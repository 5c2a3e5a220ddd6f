"""The `sweep-bot` command line as a newcomer meets it: the demo, config errors, migrate, check."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.devslack.server import running_fake_slack
from bot.simulator.app import SimulatorConfig, running_simulator
from tests.e2e.conftest import ClosedPort

GOOD_ENV = {
    "SLACK_BOT_TOKEN": "xoxb-cli-test",
    "SLACK_SIGNING_SECRET": "cli-secret",
    "CLOUDFLARE_API_TOKEN": "cli-cloudflare-token",
    "CLOUDFLARE_ACCOUNT_ID": "0123456789abcdef0123456789abcdef",
    "SWEEP_OPERATORS": "U0OPERATOR",
}


def run(args: list[str], env: dict[str, str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot …` with exactly this environment (plus PATH), no stdin."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLOUDFLARE_", "SWEEP_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        ({"SWEEP_OPERATORS": None}, "SWEEP_OPERATORS"),
        ({"SLACK_BOT_TOKEN": "not-a-bot-token"}, "SLACK_BOT_TOKEN"),
        ({"SWEEP_POLL_SECONDS": "often"}, "SWEEP_POLL_SECONDS"),
        ({"CLOUDFLARE_API_TOKEN": None}, "CLOUDFLARE_API_TOKEN"),
        ({"SLACK_SIGNING_SECRET": None}, "SLACK_SIGNING_SECRET"),
        ({"SWEEP_OPERATORS": "alice"}, "SWEEP_OPERATORS"),
    ],
)
def test_bad_configuration_stops_with_one_line_naming_the_variable(
    tmp_path: Path, change: dict[str, str | None], variable: str
) -> None:
    env = {**GOOD_ENV, "SWEEP_DATABASE": str(tmp_path / "x.db")}
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    result = run(["serve", "--http", "--port", "0"], env, timeout=60)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "configuration error" in line]
    assert len(lines) == 1 and variable in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert "cli-cloudflare-token" not in result.stderr and "xoxb-cli-test" not in result.stderr


def test_migrate_then_check(tmp_path: Path) -> None:
    database = tmp_path / "sweep.db"
    result = run(["migrate"], {**GOOD_ENV, "SWEEP_DATABASE": str(database)})
    assert result.returncode == 0, result.stderr
    assert "schema at version" in result.stdout
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("select name from sqlite_master where type = 'table'")}
    assert {"tracked_jobs", "audit_log"} <= tables
    result = run(["check", "--offline"], {**GOOD_ENV, "SWEEP_DATABASE": str(database)})
    assert result.returncode == 0 and "configuration OK" in result.stdout


# ------------------------------------------------------------------ every variable, one line each

SECRETS = ("xoxb-cli-test", "cli-secret", "cli-cloudflare-token", "xoxp-user-token", "legacy-global-key")


def config_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Return the stderr lines that report a configuration problem."""
    return [
        line for line in result.stderr.splitlines() if line.startswith("sweep-bot: configuration error: ")
    ]


def assert_one_line_naming(result: subprocess.CompletedProcess[str], variable: str, *words: str) -> None:
    """Exit 2, exactly one configuration line, naming `variable` (and `words`), no traceback, no secret."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = config_lines(result)
    assert len(lines) == 1, result.stderr
    assert variable in lines[0], lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    for secret in SECRETS:
        assert secret not in result.stderr + result.stdout


def env_with(tmp_path: Path, change: dict[str, str | None]) -> dict[str, str]:
    """GOOD_ENV with a database in `tmp_path`, then `change` applied (None unsets)."""
    env = {**GOOD_ENV, "SWEEP_DATABASE": str(tmp_path / "sweep.db")}
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


# Each malformed value breaks a rule the README's Configuration table (or issue 10) states.
MALFORMED: list[tuple[dict[str, str | None], str]] = [
    ({"SLACK_BOT_TOKEN": None}, "SLACK_BOT_TOKEN"),
    ({"SLACK_BOT_TOKEN": "xoxp-user-token"}, "SLACK_BOT_TOKEN"),
    ({"SLACK_SIGNING_SECRET": None}, "SLACK_SIGNING_SECRET"),
    ({"SLACK_APP_TOKEN": "xoxb-cli-test"}, "SLACK_APP_TOKEN"),
    ({"SLACK_API_URL": "slack.com/api"}, "SLACK_API_URL"),
    ({"SLACK_CLIENT_ID": "123.456", "SLACK_CLIENT_SECRET": "abc"}, "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET"),
    ({"CLOUDFLARE_API_TOKEN": None}, "CLOUDFLARE_API_TOKEN"),
    ({"CLOUDFLARE_API_TOKEN": None, "CLOUDFLARE_EMAIL": "soc@example.com"}, "CLOUDFLARE_API_KEY"),
    ({"CLOUDFLARE_API_TOKEN": None, "CLOUDFLARE_API_KEY": "legacy-global-key"}, "CLOUDFLARE_EMAIL"),
    (
        {"CLOUDFLARE_API_TOKEN": None, "CLOUDFLARE_EMAIL": "soc", "CLOUDFLARE_API_KEY": "legacy-global-key"},
        "CLOUDFLARE_EMAIL",
    ),
    ({"CLOUDFLARE_ACCOUNT_ID": None}, "CLOUDFLARE_ACCOUNT_ID"),
    ({"CLOUDFLARE_ACCOUNT_ID": "0123456789abcdef0123456789abcdef0"}, "CLOUDFLARE_ACCOUNT_ID"),
    ({"CLOUDFLARE_ACCOUNT_ID": "../other"}, "CLOUDFLARE_ACCOUNT_ID"),
    ({"CLOUDFLARE_BASE_URL": "api.cloudflare.com/client/v4"}, "CLOUDFLARE_BASE_URL"),
    ({"SWEEP_POLL_SECONDS": "often"}, "SWEEP_POLL_SECONDS"),
    ({"SWEEP_POLL_SECONDS": "0"}, "SWEEP_POLL_SECONDS"),
    ({"SWEEP_POLL_SECONDS": "nan"}, "SWEEP_POLL_SECONDS"),
    ({"SWEEP_POLL_SECONDS": "3601"}, "SWEEP_POLL_SECONDS"),
    ({"SWEEP_CLOUDFLARE_TIMEOUT": "soon"}, "SWEEP_CLOUDFLARE_TIMEOUT"),
    ({"SWEEP_CLOUDFLARE_TIMEOUT": "-1"}, "SWEEP_CLOUDFLARE_TIMEOUT"),
    ({"SWEEP_OPERATORS": None}, "SWEEP_OPERATORS"),
    ({"SWEEP_OPERATORS": "bob"}, "SWEEP_OPERATORS"),
    ({"SWEEP_OPERATORS": " , "}, "SWEEP_OPERATORS"),
    ({"SWEEP_CHANNELS": "general"}, "SWEEP_CHANNELS"),
    ({"SWEEP_CHANNELS": "#incident"}, "SWEEP_CHANNELS"),
    ({"SWEEP_READS_PER_USER": "lots"}, "SWEEP_READS_PER_USER"),
    ({"SWEEP_WRITES_PER_USER": "0"}, "SWEEP_WRITES_PER_USER"),
    ({"SWEEP_READS_TOTAL": "1.5"}, "SWEEP_READS_TOTAL"),
    ({"SWEEP_WRITES_TOTAL": "1000001"}, "SWEEP_WRITES_TOTAL"),
    ({"SWEEP_APPROVERS": "bob"}, "SWEEP_APPROVERS"),
    ({"SWEEP_APPROVERS": "*"}, "SWEEP_APPROVERS"),
    ({"SWEEP_APPROVAL_ABOVE": "lots"}, "SWEEP_APPROVAL_ABOVE"),
    ({"SWEEP_APPROVAL_ALWAYS": "purge,nuke"}, "SWEEP_APPROVAL_ALWAYS"),
    ({"SWEEP_APPROVAL_TTL": "1.5h"}, "SWEEP_APPROVAL_TTL"),
    ({"SWEEP_APPROVAL_MARGIN": "-5%"}, "SWEEP_APPROVAL_MARGIN"),
    ({"SWEEP_INTERNAL_DOMAINS": "corp"}, "SWEEP_INTERNAL_DOMAINS"),
    ({"SWEEP_MAX_ACTIVE_JOBS": "0"}, "SWEEP_MAX_ACTIVE_JOBS"),
    ({"SWEEP_LOG_LEVEL": "LOUD"}, "SWEEP_LOG_LEVEL"),
    ({"PORT": "abc"}, "PORT"),
    ({"PORT": "70000"}, "PORT"),
    ({"HOST": "not a host!"}, "HOST"),
]


@pytest.mark.parametrize("command", [["serve", "--http"], ["check"]], ids=["serve", "check"])
@pytest.mark.parametrize(
    ("change", "variable"), MALFORMED, ids=[v + str(i) for i, (_, v) in enumerate(MALFORMED)]
)
def test_every_malformed_variable_is_one_line_naming_it(
    tmp_path: Path, command: list[str], change: dict[str, str | None], variable: str
) -> None:
    result = run(command, env_with(tmp_path, change), timeout=60)
    assert_one_line_naming(result, variable)
    assert not (tmp_path / "sweep.db").exists()  # nothing was started


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"SWEEP_DATABASE": "{tmp}/missing/sweep.db"}, ("{tmp}/missing",)),
        ({"SWEEP_DATABASE": "{tmp}"}, ("{tmp}", "directory")),
    ],
    ids=["missing-directory", "a-directory"],
)
@pytest.mark.parametrize("command", [["serve", "--http"], ["check"], ["migrate"]], ids=str)
def test_unusable_database_path_names_the_variable_and_path(
    tmp_path: Path, command: list[str], change: dict[str, str], words: tuple[str, ...]
) -> None:
    env = env_with(tmp_path, {k: v.format(tmp=tmp_path) for k, v in change.items()})
    result = run(command, env, timeout=60)
    assert_one_line_naming(result, "SWEEP_DATABASE", *(w.format(tmp=tmp_path) for w in words))


@pytest.mark.parametrize("command", [["check", "--offline"], ["migrate"]], ids=str)
def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path, command: list[str]) -> None:
    database = tmp_path / "notes.db"
    database.write_text("these are not the tables you are looking for\n" * 100)
    result = run(command, env_with(tmp_path, {"SWEEP_DATABASE": str(database)}), timeout=60)
    assert_one_line_naming(result, "SWEEP_DATABASE", str(database), "cannot be opened")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    result = run(["serve"], {}, timeout=60)
    assert result.returncode == 2
    lines = config_lines(result)
    required = ["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN"]
    for variable in [*required, "SWEEP_OPERATORS"]:
        assert sum(variable in line for line in lines) == 1, (variable, lines)
    assert len(lines) == 5, lines

    malformed = {
        **GOOD_ENV,
        "PORT": "abc",
        "HOST": "not a host!",
        "SWEEP_LOG_LEVEL": "LOUD",
        "SWEEP_DATABASE": str(tmp_path / "missing" / "x.db"),
        "SWEEP_OPERATORS": "bob",
        "SWEEP_CHANNELS": "general",
        "SWEEP_POLL_SECONDS": "often",
        "SWEEP_CLOUDFLARE_TIMEOUT": "soon",
        "SLACK_API_URL": "nope",
        "CLOUDFLARE_BASE_URL": "nope",
        "CLOUDFLARE_ACCOUNT_ID": "a/b",
        "SLACK_CLIENT_ID": "1",
        "SLACK_CLIENT_SECRET": "2",
    }
    result = run(["check"], malformed, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = config_lines(result)
    named = [v for v in malformed if malformed[v] != GOOD_ENV.get(v)]
    for variable in named:
        assert any(variable in line for line in lines), (variable, lines)
    assert len(lines) == len(named) - 1, lines  # SLACK_CLIENT_ID and _SECRET share one line


def test_port_and_host_never_break_help_demo_or_migrate(tmp_path: Path) -> None:
    env = {**env_with(tmp_path, {}), "PORT": "abc", "HOST": "not a host!"}
    for args in (["--help"], ["serve", "--help"], ["demo", "--help"], ["check", "--help"]):
        result = run(args, env, timeout=60)
        assert result.returncode == 0 and "usage:" in result.stdout, (args, result.stderr)
    result = run(["migrate"], env, timeout=60)
    assert result.returncode == 0 and "schema at version" in result.stdout, result.stderr
    # The command line wins over PORT and HOST, and its own malformed value names the flag.
    result = run(["serve", "--http", "--port", "x"], env_with(tmp_path, {}), timeout=60)
    assert_one_line_naming(result, "--port")


def test_log_level_stops_migrate_and_demo_with_one_line(tmp_path: Path) -> None:
    for args in (["migrate"], ["demo"]):
        result = run(args, env_with(tmp_path, {"SWEEP_LOG_LEVEL": "LOUD"}), timeout=60)
        assert_one_line_naming(result, "SWEEP_LOG_LEVEL", "LOUD")


# ------------------------------------------------------------------ check tries what it can


async def run_async(
    args: list[str], env: dict[str, str], *, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Like `run`, without blocking the event loop that serves the local Slack and the simulator."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLOUDFLARE_", "SWEEP_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env={**base, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return subprocess.CompletedProcess(args, process.returncode, out.decode(), err.decode())


async def test_check_tries_the_database_slack_and_cloudflare(tmp_path: Path) -> None:
    config = SimulatorConfig(token="cli-cloudflare-token")
    async with running_simulator(config) as sim, running_fake_slack(bot_token="xoxb-cli-test") as slack:
        env = env_with(tmp_path, {"SLACK_API_URL": slack.api_url, "CLOUDFLARE_BASE_URL": str(sim.base_url)})
        result = await run_async(["check"], env)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "configuration OK" in out
        assert f"database OK: {tmp_path / 'sweep.db'}" in out
        assert "Slack OK" in out and "U_SWEEPBOT" in out
        assert "Cloudflare OK" in out
        assert [c.method for c in slack.calls()] == ["auth.test"]
        assert result.stderr == ""

        refused = {**env, "SLACK_BOT_TOKEN": "xoxb-revoked", "CLOUDFLARE_API_TOKEN": "cli-revoked-token"}
        result = await run_async(["check"], refused)
        assert result.returncode == 2
        lines = config_lines(result)
        assert lines == [
            "sweep-bot: configuration error: SLACK_BOT_TOKEN was refused by Slack (invalid_auth)",
            "sweep-bot: configuration error: CLOUDFLARE_API_TOKEN was refused by Cloudflare "
            "(HTTP 403 9109: Invalid access token)",
        ], result.stderr
        assert "Traceback" not in result.stderr and "revoked" not in result.stderr + result.stdout

        # --offline opens the database and calls nobody.
        calls = len(slack.calls())
        result = await run_async(["check", "--offline"], refused)
        assert result.returncode == 0 and "database OK" in result.stdout and "--offline" in result.stdout
        assert len(slack.calls()) == calls


async def test_check_says_which_service_is_unreachable(tmp_path: Path) -> None:
    with ClosedPort() as no_slack, ClosedPort() as no_cloudflare:  # nothing listens there meanwhile
        slack_url = f"http://127.0.0.1:{no_slack.port}/api/"
        cloudflare_url = f"http://127.0.0.1:{no_cloudflare.port}/client/v4"
        env = env_with(tmp_path, {"SLACK_API_URL": slack_url, "CLOUDFLARE_BASE_URL": cloudflare_url})
        result = await run_async(["check"], env)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"sweep-bot: Slack unreachable at {slack_url} ("), lines
    assert lines[1].startswith(f"sweep-bot: Cloudflare unreachable at {cloudflare_url} ("), lines
    assert "database OK" in result.stdout


async def test_serve_names_a_port_in_use_and_a_host_it_cannot_bind(tmp_path: Path) -> None:
    config = SimulatorConfig(token="cli-cloudflare-token")
    async with running_simulator(config) as sim, running_fake_slack(bot_token="xoxb-cli-test") as slack:
        env = env_with(tmp_path, {"SLACK_API_URL": slack.api_url, "CLOUDFLARE_BASE_URL": str(sim.base_url)})
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = await run_async(["serve", "--http"], {**env, "HOST": "127.0.0.1", "PORT": str(port)})
        assert_one_line_naming(result, "PORT", str(port), "already in use")
        # 192.0.2.1 (TEST-NET-1, RFC 5737) is a well-formed address no machine here owns.
        result = await run_async(["serve", "--http", "--host", "192.0.2.1", "--port", "0"], env)
        assert_one_line_naming(result, "--host", "192.0.2.1")


# ------------------------------------------------------------------ sweep-bot devslack


async def test_devslack_serves_slack_for_serve_and_sends_typed_slash_commands(tmp_path: Path) -> None:
    from tests.e2e.conftest import BotProcess, bot_env, free_port, wait_until

    bot_port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLOUDFLARE_", "SWEEP_"))}
    devslack = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "bot", "devslack", "--port", "0"],
        *["--bot-url", f"http://127.0.0.1:{bot_port}/slack/events", "--user", "U0OPERATOR"],
        env={**base, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    assert devslack.stdin is not None and devslack.stdout is not None
    output: list[str] = []

    async def read() -> None:
        assert devslack.stdout is not None
        while line := await devslack.stdout.readline():
            output.append(line.decode())

    reader = asyncio.ensure_future(read())
    try:
        await wait_until(lambda: "Type a slash command" in "".join(output), timeout=30, what="the banner")
        banner = "".join(output)
        # The banner says how to point serve at it; follow it (with this test's simulator).
        api_url = re.search(r"SLACK_API_URL=(\S+)", banner)
        token = re.search(r"SLACK_BOT_TOKEN=(\S+)", banner)
        secret = re.search(r"SLACK_SIGNING_SECRET=(\S+)", banner)
        assert api_url and token and secret, banner
        async with running_simulator(SimulatorConfig(token="cli-cloudflare-token")) as sim:
            env = bot_env(
                sim_url=str(sim.base_url),
                slack_url=api_url.group(1),
                database=tmp_path / "sweep.db",
                extra={
                    "SLACK_BOT_TOKEN": token.group(1),
                    "SLACK_SIGNING_SECRET": secret.group(1),
                    "CLOUDFLARE_API_TOKEN": "cli-cloudflare-token",
                    "SWEEP_CHANNELS": "",
                },
            )
            bot = BotProcess(env=env, port=bot_port, log_path=tmp_path / "bot.log")
            await bot.start()
            try:
                devslack.stdin.write(b"/sweep help\n")
                await devslack.stdin.drain()
                await wait_until(lambda: "answered HTTP 200" in "".join(output), timeout=30, what="the ack")
                await wait_until(lambda: "/sweep list" in "".join(output), timeout=30, what="the help text")
            finally:
                bot.stop()
    finally:
        devslack.terminate()
        await asyncio.wait_for(devslack.wait(), 10)
        reader.cancel()
    assert "Traceback" not in "".join(output)


async def test_check_in_socket_mode_also_tries_the_app_token(tmp_path: Path) -> None:
    config = SimulatorConfig(token="cli-cloudflare-token")
    async with (
        running_simulator(config) as sim,
        running_fake_slack(bot_token="xoxb-cli-test", app_token="xapp-cli-good") as slack,
    ):
        env = env_with(tmp_path, {"SLACK_API_URL": slack.api_url, "CLOUDFLARE_BASE_URL": str(sim.base_url)})
        result = await run_async(["check"], {**env, "SLACK_APP_TOKEN": "xapp-cli-good"})
        assert result.returncode == 0, result.stderr
        assert "Socket Mode" in result.stdout and "SLACK_APP_TOKEN may open Socket Mode" in result.stdout
        result = await run_async(["check"], {**env, "SLACK_APP_TOKEN": "xapp-cli-revoked"})
        assert config_lines(result) == [
            "sweep-bot: configuration error: SLACK_APP_TOKEN was refused by Slack (invalid_auth)"
        ]
        assert result.returncode == 2 and "revoked" not in result.stderr + result.stdout
