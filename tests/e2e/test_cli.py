"""The `sweep-bot` command line as a newcomer meets it: the demo, config errors, migrate, check."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_demo_plays_the_whole_incident_offline(tmp_path: Path) -> None:
    result = run(["demo", "--keep"], {"TMPDIR": str(tmp_path)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "/sweep help" in out and "/sweep list" in out
    assert "thread reply" in out
    assert "Completed" in out and "Cancelled" in out
    # Both confirmation dialogs (the release's Confirm, the card's Cancel) are shown and answered.
    assert "Release these messages?" in out and "answers [ Yes, release ]" in out
    assert "Cancel this job?" in out and "answers [ Cancel job ]" in out
    match = re.search(r"Kept (\S+sweep\.db)", out)
    assert match, out[-2000:]
    database = Path(match.group(1))
    with sqlite3.connect(database) as db:
        (jobs,) = db.execute("select count(*) from tracked_jobs").fetchone()
    assert jobs == 2
    assert "Traceback" not in result.stderr
    assert "INFO sweep" not in result.stderr + out, "the bot's log interleaved with the conversation"


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
    result = run(["check"], {**GOOD_ENV, "SWEEP_DATABASE": str(database)})
    assert result.returncode == 0 and "configuration OK" in result.stdout
