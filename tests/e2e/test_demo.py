"""`sweep-bot demo`: the scripted incident as printed, and `--interactive` driven through its stdin, as a
person at a terminal would use it."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.demo import ANALYST, BIG_MOVE, CAMPAIGN_SENDER, CAMPAIGN_SIZE, CHANNEL, LEAD

#: Generous: the demo's jobs take about 8 s, and this machine may be busy.
TIMEOUT = 60.0


def run(args: list[str], env: dict[str, str], *, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot …` with exactly this environment (plus PATH), no stdin."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "CLOUDFLARE_", "SWEEP_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def printed(out: str, header: str) -> list[tuple[int, str]]:
    """Return where each channel message printed under `header` (a regex) starts, and its text."""
    pattern = rf"^#{CHANNEL} · Sweep{header}:\n(?:  ┃.*\n?)+"
    return [(m.start(), m.group(0)) for m in re.finditer(pattern, out, re.M)]


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

    # A big move: asked for by the analyst, refused to them, approved by the lead, one job card.
    asked = out.index(f"@{ANALYST} ▸ /sweep {BIG_MOVE}")
    preview = out[asked : out.index("[ Confirm ]", asked)]
    assert "A second person must approve this job" in preview
    assert f"It matches {CAMPAIGN_SIZE} messages, and more than 300 needs a second person here." in preview
    [(requested, request)] = printed(out, " — approval request")
    assert asked < requested
    assert "Approval needed: Move to Deleted Items" in request and "[ Approve ]  [ Reject ]" in request
    assert "more than 300 needs a second person here" in request and "Justification" in request
    assert f"Requested by: @{ANALYST}" in request and CAMPAIGN_SENDER in request
    refused = out.index("Not done: you asked for this job, so someone else must approve it")
    pressed = out.index(f"@{LEAD} ▸ clicks [ Approve ] on the approval request")
    assert requested < refused < pressed
    assert "Waiting for approval" in out[asked:refused]
    assert f"@{LEAD} ▸ answers [ Approve ]" in out[pressed:]
    # Only the lead sees what their click did.
    told = re.search(rf"^\(only @{LEAD} can see this[^)\n]*\) Sweep:\n  │ Approved\. Created job", out, re.M)
    assert told is not None and pressed < told.start()
    updates = printed(out, r" \(approval request updated\)")
    assert updates and all(pressed < at and f"Approved by @{LEAD}" in text for at, text in updates)
    assert "→ job card" in updates[-1][1]
    cards = [(at, text) for at, text in printed(out, r" — job card #\d+") if CAMPAIGN_SENDER in text]
    assert len(cards) == 1, cards
    [(at, card)] = cards
    assert pressed < at and f"approved by @{LEAD}" in card
    number = card.split("job card #", 1)[1].split(":", 1)[0]
    replies = re.findall(rf"^  ↳ thread reply on job card #{number}:\n(  ┃.*)", out[at:], re.M)
    assert replies and "Completed" in replies[-1], replies

    match = re.search(r"Kept (\S+sweep\.db)", out)
    assert match, out[-2000:]
    database = Path(match.group(1))
    with sqlite3.connect(database) as db:
        (jobs,) = db.execute("select count(*) from tracked_jobs").fetchone()
        approvals = db.execute("select requester, decided_by, state, matched from approvals").fetchall()
        (approved_jobs,) = db.execute(
            "select count(*) from tracked_jobs where comment like ?", (f"%approved by @{LEAD}%",)
        ).fetchone()
    # The move, the approved big move and the cancelled release.
    assert jobs == 3
    assert approvals == [(ANALYST, LEAD, "approved", CAMPAIGN_SIZE)] and approved_jobs == 1
    assert "Traceback" not in result.stderr
    assert "INFO sweep" not in result.stderr + out, "the bot's log interleaved with the conversation"


class Terminal:
    """The demo in a subprocess: everything it prints is collected as it arrives."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self._chunks: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        while chunk := self.process.stdout.read(1):
            with self._lock:
                self._chunks.append(chunk)

    @property
    def output(self) -> str:
        """Return everything printed so far."""
        with self._lock:
            return "".join(self._chunks)

    def mark(self) -> int:
        """Return a position in the output (to look only at what comes after it)."""
        return len(self.output)

    def expect(self, pattern: str, *, since: int = 0, timeout: float = TIMEOUT) -> str:
        """Wait until `pattern` (a regex) appears after `since`; return the output after `since`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            tail = self.output[since:]
            if re.search(pattern, tail):
                return tail
            if self.process.poll() is not None and not re.search(pattern, self.output[since:]):
                break
            time.sleep(0.05)
        raise AssertionError(f"the demo never printed {pattern!r}; it printed:\n{self.output[-4000:]}")

    def type(self, line: str, *, then: str = r"sweep> $") -> str:
        """Type a line, wait until the demo prints `then` after it; return what it printed."""
        since = self.mark()
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.expect(then, since=since)


@pytest.fixture
def temp_dir(tmp_path: Path) -> Path:
    """A directory the demo uses as its TMPDIR, to check it leaves nothing behind."""
    path = tmp_path / "tmp"
    path.mkdir()
    return path


@pytest.fixture
def demo(temp_dir: Path) -> Iterator[Terminal]:
    env = {**os.environ, "TMPDIR": str(temp_dir), "SWEEP_LOG_LEVEL": "INFO"}
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "demo", "--interactive"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env=env,
    )
    terminal = Terminal(process)
    try:
        yield terminal
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_an_interactive_session_shows_what_slack_shows(demo: Terminal, temp_dir: Path) -> None:
    demo.expect(r"sweep> $")

    # The create form: its date pickers show dates, and it can be filled in and previewed.
    form = demo.type("/sweep new")
    assert "New bulk action" in form
    assert re.search(r"Received from \(optional\): \[ \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC \]", form), form
    assert not re.search(r"\[ 1\d{9} \]", form), "a date picker printed as a unix time"
    # Previewed with no filter: Sweep's field errors are shown under the fields, the form stays open.
    refused = demo.type("press preview", then=r"with Sweep's errors[\s\S]*sweep> $")
    assert "⚠" in refused and "Review bulk action" not in refused
    demo.type("set subject invoice")
    demo.type("set folder junk")
    shown = demo.type("show")
    assert "Subject contains (optional): invoice" in shown and "[ Junk Email ▾ ]" in shown
    review = demo.type("press preview", then=r"Review bulk action[\s\S]*sweep> $")
    assert "The search matches" in review and "[ Create job ]" in review
    created = demo.type("press create", then=r"Created job[\s\S]*job card #1")
    assert "Move to Junk Email" in created

    # An inline purge: Confirm carries Slack's confirmation dialog, which must be answered. A purge
    # always needs a second person (the default policy): its comment is the request's justification.
    preview = demo.type('/sweep move subject:"invoice" since:7d to:purge comment:"phish wave INC-4711"')
    assert "Permanently delete" in preview and "[ Confirm ]" in preview
    assert "A second person must approve this job" in preview
    asked = demo.type("press confirm", then=r"\(y/N\)\? $")
    assert "Delete permanently?" in asked and "[ Yes, delete permanently ]" in asked
    declined = demo.type("n")
    assert "nothing was sent to Sweep" in declined and "Created job" not in declined
    assert "Waiting for approval" not in declined
    demo.type("press confirm", then=r"\(y/N\)\? $")
    requested = demo.type("y", then=rf"#{CHANNEL} · Sweep — approval request:[\s\S]*sweep> $")
    assert "Waiting for approval" in requested and "[ Approve ]  [ Reject ]" in requested
    assert "Created job" not in requested

    # The analyst cannot approve their own request; the lead can (`as <user> <line>`).
    asked = demo.type("press approve", then=r"\(y/N\)\? $")
    assert "Approve this job?" in asked
    refused = demo.type("y", then=r"Not done[\s\S]*sweep> $")
    assert "someone else must approve it" in refused and "Created job" not in refused
    assert "Say who and what" in demo.type("as nobody press approve")
    asked = demo.type(f"as {LEAD} press approve", then=r"\(y/N\)\? $")
    assert f"@{LEAD} ▸ clicks [ Approve ] on the approval request" in asked
    since = demo.mark()
    demo.type("y", then=rf"only @{LEAD} can see this[\s\S]*Created job")
    demo.expect(
        rf"approval request updated\):\n(?:  ┃.*\n)*?  ┃.*Approved by @{LEAD}.*→ job card", since=since
    )

    # Idle at the prompt: the card and its thread replies are printed as they arrive.
    arrived = demo.expect(r"↳ thread reply on job card #2:[\s\S]*sweep> $", since=since)
    assert "job card #2" in arrived and "Permanently delete" in arrived

    # Cancel the purge from its card: again Slack asks first.
    asked = demo.type("press cancel 2", then=r"\(y/N\)\? $")
    assert "Cancel this job?" in asked
    demo.type("y", then=r"Cancelled job")

    demo.type("quit", then=r"removed its temporary files")
    assert demo.process.wait(30) == 0
    assert demo.process.stderr is not None
    errors = demo.process.stderr.read()
    assert errors == "", f"the bot's log reached the terminal:\n{errors[:2000]}"
    assert re.search(r"^\d{4}-\d{2}-\d{2} \d\d:\d\d:\d\d,\d+ (INFO|WARNING)", demo.output, re.M) is None
    assert list(temp_dir.iterdir()) == [], "the demo left files in the temp directory"


def test_keep_keeps_the_database_and_the_log(temp_dir: Path) -> None:
    env = {**os.environ, "TMPDIR": str(temp_dir)}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--interactive", "--keep"],
        input="/sweep help\nquit\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    kept = list(temp_dir.iterdir())
    assert len(kept) == 1 and kept[0].name.startswith("sweep-demo-")
    assert (kept[0] / "sweep.db").is_file()
    log = (kept[0] / "sweep.log").read_text()
    assert "database migrated" in log
    assert str(kept[0] / "sweep.db") in result.stdout and "sweep.log" in result.stdout
    assert "Usage" in result.stdout
