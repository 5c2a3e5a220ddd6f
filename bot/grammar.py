"""`/sweep …` text → a typed command, or a `UsageError` that says exactly what is wrong and the right form.

Syntax decisions (also in `USAGE`):
- Subcommands and keys are case-insensitive; keys accept `-` for `_` (`exact-subject:`).
- A value with spaces is quoted: `subject:"Invoice overdue"`. Straight quotes and the curly ones Slack
  clients insert (“ ” „) all work; `\\"` is a literal quote inside a quoted value. `key: value` (a space
  after the colon) is accepted too.
- Slack's entity escaping (`&amp;`, `&lt;`, `&gt;`) is undone, and auto-links such as
  `<mailto:a@b.example|a@b.example>` become their plain text.
- Dates are ISO-8601 (`2026-11-20`, `2026-11-20T08:00`, `…Z`, `…+02:00`); without an offset they are UTC.
  A date alone means the start of that day for `start:` and the end of that day for `end:` (capped at now).
  With no dates the range is the last 7 days (as in the modal); `start:` alone runs to now.
- `detections_only` is always set explicitly and defaults to **false** (the API's default is true).
- A date range alone is not a filter: a job over all mail is refused.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeAlias

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.cloudflare.models import (
    ActionType,
    DeliveryStatus,
    Destination,
    Disposition,
    JobStatus,
    SearchParams,
    is_job_id,
)
from bot.draft import (
    CLOCK_SKEW,
    DEFAULT_RANGE,
    DRAFT_JSON_MAX,
    EARLIEST,
    FIELD_MAX,
    FILTER_KEYS,
    MAX_RANGE,
    NO_FILTER_REASON,
    TEXT_FILTER_KEYS,
    VALUE_MAX,
    JobDraft,
    clip,
    display_time,
    draft_size,
    first_problem,
    has_filter,
    hidden_character_problem,
    is_message_id,
)

__all__ = [
    "FOLDER_ALIASES",
    "HELP_EXAMPLES",
    "KEY_ALIASES",
    "SUBCOMMANDS",
    "TEXT_MAX",
    "USAGE",
    "USAGE_BY_COMMAND",
    "CancelCommand",
    "Command",
    "CreateCommand",
    "HelpCommand",
    "ListCommand",
    "NewCommand",
    "StatusCommand",
    "UsageError",
    "WatchCommand",
    "parse_command",
]

TEXT_MAX = 4000
"""The longest command text accepted."""
_CREATE_KEYS: tuple[str, ...] = (*FILTER_KEYS, "start", "end", "since", "detections_only", "comment", "to")
KEY_ALIASES: dict[str, str] = {
    "from": "sender",
    "disposition": "final_disposition",
    "folder": "to",
    "destination": "to",
}
_LIST_KEYS: tuple[str, ...] = ("status", "action")
_LIST_ALIASES: dict[str, str] = {"type": "action", "action_type": "action"}

FOLDER_ALIASES: dict[str, Destination] = {
    "inbox": Destination.INBOX,
    "junkemail": Destination.JUNK_EMAIL,
    "junk": Destination.JUNK_EMAIL,
    "spam": Destination.JUNK_EMAIL,
    "deleteditems": Destination.DELETED_ITEMS,
    "deleted": Destination.DELETED_ITEMS,
    "trash": Destination.DELETED_ITEMS,
    "recoverableitemsdeletions": Destination.RECOVERABLE_ITEMS_DELETIONS,
    "recoverable": Destination.RECOVERABLE_ITEMS_DELETIONS,
    "softdelete": Destination.RECOVERABLE_ITEMS_DELETIONS,
    "recoverableitemspurges": Destination.RECOVERABLE_ITEMS_PURGES,
    "purge": Destination.RECOVERABLE_ITEMS_PURGES,
    "purges": Destination.RECOVERABLE_ITEMS_PURGES,
    "harddelete": Destination.RECOVERABLE_ITEMS_PURGES,
}
"""Folder names accepted by `to:` (case, `-`, `_` and spaces ignored) → the API's destination."""

SUBCOMMANDS: tuple[str, ...] = ("help", "new", "move", "release", "list", "status", "cancel", "watch")
_SUBCOMMAND_ALIASES: dict[str, str] = {
    "?": "help",
    "--help": "help",
    "-h": "help",
    "ls": "list",
    "show": "status",
}
_VERB_HINTS: dict[str, str] = {
    "delete": "to delete mail, move it: `/sweep move <filters> to:deleted` (or `to:purge`, permanent)",
    "remove": "to remove mail, move it: `/sweep move <filters> to:deleted`",
    "purge": "to purge mail, move it: `/sweep move <filters> to:purge` (permanent)",
    "trash": "`/sweep move <filters> to:deleted`",
    "junk": "`/sweep move <filters> to:junk`",
    "spam": "`/sweep move <filters> to:junk`",
    "quarantine": "Sweep moves or releases mail; to hide it, `/sweep move <filters> to:junk` or `to:deleted`",
}

_FILTERS_HELP = (
    "sender: recipient: domain: subject: exact_subject: message_id: alert_id: query:\n"
    "  final_disposition:<" + "|".join(d.value.lower() for d in Disposition) + ">\n"
    "  delivery_status:<" + "|".join(d.value for d in DeliveryStatus) + ">"
)
_FOLDERS_HELP = "inbox, junk, deleted, recoverable (soft delete), purge (permanent)"
USAGE_BY_COMMAND: dict[str, str] = {
    "new": "/sweep  or  /sweep new                 open the form",
    "move": '/sweep move <filters> to:<folder> [since:24h] [comment:"…"]',
    "release": '/sweep release <filters> [since:24h] [comment:"…"]',
    "list": "/sweep list [status:<status>] [action:move|release]",
    "status": "/sweep status <job_id>",
    "cancel": "/sweep cancel <job_id>",
    "watch": "/sweep watch <job_id>",
    "help": "/sweep help",
}
_CREATE_DETAILS = (
    "Filters (at least one): " + _FILTERS_HELP + "\n"
    "Dates: since:90m | since:24h | since:7d, or start:2026-11-20 end:2026-11-21T08:00Z\n"
    "  (UTC unless an offset is given; default: the last 7 days)\n"
    "detections_only:yes|no (default no)   Folders: " + _FOLDERS_HELP + "\n"
    'Quote values with spaces: subject:"Invoice overdue"'
)
USAGE = "\n".join(
    [
        USAGE_BY_COMMAND["new"],
        USAGE_BY_COMMAND["move"],
        USAGE_BY_COMMAND["release"],
        USAGE_BY_COMMAND["list"],
        USAGE_BY_COMMAND["status"],
        USAGE_BY_COMMAND["cancel"],
        USAGE_BY_COMMAND["watch"] + "           track a job created elsewhere",
        USAGE_BY_COMMAND["help"],
        "",
        _CREATE_DETAILS,
    ]
)
"""The full usage text shown by `/sweep help`."""
_MOVE_USAGE = USAGE_BY_COMMAND["move"] + "\n" + _CREATE_DETAILS
_RELEASE_USAGE = USAGE_BY_COMMAND["release"] + "\n" + _CREATE_DETAILS

HELP_EXAMPLES: tuple[tuple[str, str], ...] = (
    (
        '/sweep move sender:bad@phish.example since:24h to:deleted comment:"INC-1234"',
        "Preview, then move yesterday's mail from that sender to Deleted Items.",
    ),
    (
        '/sweep move subject:"Invoice overdue" final_disposition:malicious since:7d to:purge',
        "Permanently delete malicious mail with that subject from the last week (asks twice).",
    ),
    (
        "/sweep release message_id:<abc123@mail.example.com>",
        "Release one quarantined message (asks twice).",
    ),
    ("/sweep list status:processing", "Show jobs that are running now."),
    ("/sweep status 0b8c2a4e-6f1d-4c3b-9a7e-2d5f8e1c3b90", "Show a job's progress."),
    ("/sweep watch 0b8c2a4e-6f1d-4c3b-9a7e-2d5f8e1c3b90", "Post a live card for a job created elsewhere."),
)
"""(command, what it does) pairs for the help text."""

_QUOTES = frozenset('"\u201c\u201d\u201e')
_KEY_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,40}$")
_DATE_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,6})?)?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?$"
)
_SINCE_RE = re.compile(
    r"^(\d{1,6})\s*(m|mins?|minutes?|h|hrs?|hours?|d|days?|w|weeks?)$",
    re.IGNORECASE,
)
_SLACK_LINK_RE = re.compile(r"^<(?:mailto:|https?://)([^<>|]*)(?:\|([^<>]*))?>$", re.IGNORECASE)
_SLACK_MENTION_RE = re.compile(r"<[@#!][^<>]*>")
_TRUE = frozenset({"yes", "y", "true", "on", "1"})
_FALSE = frozenset({"no", "n", "false", "off", "0"})


class UsageError(Exception):
    """A command the grammar cannot accept: what is wrong, and the right form."""

    def __init__(self, message: str, usage: str = USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage

    def __str__(self) -> str:
        return self.message


# ---------------------------------------------------------------- commands


class _Command(BaseModel):
    model_config = ConfigDict(frozen=True)


class HelpCommand(_Command):
    """`/sweep help`."""


class NewCommand(_Command):
    """`/sweep` or `/sweep new`: open the create modal."""


class CreateCommand(_Command):
    """`/sweep move …` or `/sweep release …`: preview the draft, then ask for confirmation."""

    draft: JobDraft


class ListCommand(_Command):
    """`/sweep list [status:…] [action:…]` (canonical API values, or None for any)."""

    status: str | None = None
    action_type: str | None = None


class StatusCommand(_Command):
    """`/sweep status <job_id>`."""

    job_id: str


class CancelCommand(_Command):
    """`/sweep cancel <job_id>`."""

    job_id: str


class WatchCommand(_Command):
    """`/sweep watch <job_id>`: track a job created elsewhere."""

    job_id: str


Command: TypeAlias = (
    HelpCommand | NewCommand | CreateCommand | ListCommand | StatusCommand | CancelCommand | WatchCommand
)


# ---------------------------------------------------------------- tokenizing


@dataclass(frozen=True)
class _Word:
    raw: str  # as typed, for messages
    key: str | None  # the part before the first colon, when it looks like a key (as typed)
    value: str  # the rest, quotes removed
    quoted: bool


def _check_characters(text: str) -> None:
    if (problem := hidden_character_problem(text)) is not None:
        raise UsageError(f"the command {problem}; retype it without that character")


def _tokenize(text: str) -> list[_Word]:
    words: list[_Word] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        buf: list[str] = []
        key: str | None = None
        quoted = False
        while i < n and not text[i].isspace():
            ch = text[i]
            if ch in _QUOTES:
                j = i + 1
                while j < n and text[j] not in _QUOTES:
                    if text[j] == "\\" and j + 1 < n and (text[j + 1] in _QUOTES or text[j + 1] == "\\"):
                        buf.append(text[j + 1])
                        j += 2
                        continue
                    buf.append(text[j])
                    j += 1
                if j >= n:
                    raise UsageError(
                        f"unterminated quote starting at position {i + 1} ({_snippet(text[i:])}): "
                        'close it with a matching quote; a literal quote inside quotes is written \\"'
                    )
                quoted = True
                i = j + 1
                continue
            if ch == ":" and key is None and not quoted and len(buf) <= 41 and _KEY_RE.match("".join(buf)):
                key = "".join(buf)
                buf = []
                i += 1
                continue
            buf.append(ch)
            i += 1
        words.append(_Word(raw=text[start:i], key=key, value="".join(buf), quoted=quoted))
    return words


def _join_spaced_values(words: list[_Word]) -> list[_Word]:
    """Accept `key: value` (Slack users often type a space after the colon)."""
    joined: list[_Word] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.key is not None and word.value == "" and not word.quoted and i + 1 < len(words):
            following = words[i + 1]
            if following.key is None:
                joined.append(
                    _Word(
                        raw=f"{word.raw} {following.raw}",
                        key=word.key,
                        value=following.value,
                        quoted=following.quoted,
                    )
                )
                i += 2
                continue
        joined.append(word)
        i += 1
    return joined


def _snippet(text: str, limit: int = 40) -> str:
    return clip(text, limit)


def _closest(word: str, candidates: tuple[str, ...] | list[str]) -> str | None:
    matches = difflib.get_close_matches(word[:50], list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _clean_value(raw: str) -> str:
    """Undo Slack's escaping and auto-linking of a value."""
    value = raw.strip()
    link = _SLACK_LINK_RE.match(value)
    if link is not None:
        value = link.group(2) if link.group(2) else link.group(1)
    elif _SLACK_MENTION_RE.fullmatch(value):
        raise UsageError(
            f"{_snippet(value)} is a Slack mention or channel, not a filter value; "
            "type the address or text you mean instead"
        )
    return value.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


# ---------------------------------------------------------------- parsing


def parse_command(text: str, *, now: datetime) -> Command:
    """Parse the text after `/sweep` into a command, or raise `UsageError` saying what is wrong."""
    if not isinstance(text, str):
        raise UsageError("the command text could not be read")
    if len(text) > TEXT_MAX:
        raise UsageError(f"the command is too long ({len(text)} characters, at most {TEXT_MAX})")
    _check_characters(text)
    now = (now if now.tzinfo is not None else now.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)
    words = _join_spaced_values(_tokenize(text))
    if not words:
        return NewCommand()
    head, rest = words[0], words[1:]
    subcommand = _subcommand(head, rest)
    if subcommand == "help":
        return HelpCommand()
    if subcommand == "new":
        if rest:
            raise UsageError(
                "`new` takes nothing after it: it opens the form. "
                "To describe the messages inline, use `/sweep move …` or `/sweep release …`",
                USAGE_BY_COMMAND["new"],
            )
        return NewCommand()
    if subcommand == "list":
        return _parse_list(rest)
    if subcommand in ("status", "cancel", "watch"):
        job_id = _parse_job_id(subcommand, rest)
        if subcommand == "status":
            return StatusCommand(job_id=job_id)
        if subcommand == "cancel":
            return CancelCommand(job_id=job_id)
        return WatchCommand(job_id=job_id)
    action = ActionType.MOVE if subcommand == "move" else ActionType.RELEASE
    return CreateCommand(draft=_parse_create(action, rest, now=now))


def _subcommand(head: _Word, rest: list[_Word]) -> str:
    if head.key is not None:
        hint = (
            "move"
            if any(w.key is not None and _canonical_key(w.key) == "to" for w in [head, *rest])
            else None
        )
        suggestion = f"; did you mean `/sweep {hint} {_snippet(head.raw)} …`?" if hint else ""
        raise UsageError(
            f"a command starts with what to do ({', '.join(SUBCOMMANDS)}), not with a filter "
            f"like {_snippet(head.raw)}{suggestion}"
        )
    word = head.value.strip().lower()
    word = _SUBCOMMAND_ALIASES.get(word, word)
    if word in SUBCOMMANDS:
        return word
    if word in _VERB_HINTS:
        raise UsageError(f"there is no `{word}` command: {_VERB_HINTS[word]}")
    closest = _closest(word, SUBCOMMANDS)
    hint = f"; did you mean `{closest}`?" if closest else f"; the commands are {', '.join(SUBCOMMANDS)}"
    raise UsageError(f"unknown command {_snippet(head.raw)!r}{hint}")


def _canonical_key(key: str) -> str:
    lowered = key.lower().replace("-", "_")
    return KEY_ALIASES.get(lowered, lowered)


def _parse_job_id(subcommand: str, words: list[_Word]) -> str:
    usage = USAGE_BY_COMMAND[subcommand]
    if not words:
        raise UsageError(f"`{subcommand}` needs a job id", usage)
    if len(words) > 1:
        raise UsageError(
            f"`{subcommand}` takes exactly one job id, got {len(words)} words "
            f"({_snippet(' '.join(w.raw for w in words))})",
            usage,
        )
    word = words[0]
    raw = word.value if word.key is None else word.raw
    if word.key is not None and word.key.lower() in ("job", "job_id", "id"):
        raw = word.value
    candidate = _clean_value(raw).strip("`*_~").lower()
    if not is_job_id(candidate):
        raise UsageError(
            f"{_snippet(word.raw)!r} is not a job id: a job id is a UUID like "
            "0b8c2a4e-6f1d-4c3b-9a7e-2d5f8e1c3b90 (see `/sweep list`)",
            usage,
        )
    return candidate


def _collect(
    words: list[_Word], keys: tuple[str, ...], aliases: dict[str, str], usage: str, example: str
) -> dict[str, str]:
    """Return {canonical key: cleaned value}; refuse stray words, unknown and duplicate keys."""
    found: dict[str, str] = {}
    typed: dict[str, str] = {}
    for word in words:
        if word.key is None:
            raise UsageError(
                f"{_snippet(word.raw)!r} is not a key:value pair: write options as key:value "
                f"(e.g. {example}); quote values with spaces",
                usage,
            )
        lowered = word.key.lower().replace("-", "_")
        key = aliases.get(lowered, lowered)
        if key not in keys:
            closest = _closest(lowered, [*keys, *aliases])
            hint = f"; did you mean `{closest}:`?" if closest else f"; the keys are {', '.join(keys)}"
            raise UsageError(f"unknown key `{_snippet(word.key)}:`{hint}", usage)
        if key in found:
            raise UsageError(
                f"`{key}:` is given twice ({typed[key]}: and {word.key}:); give each key once", usage
            )
        value = _clean_value(word.value)
        if not value:
            raise UsageError(f"`{word.key}:` has no value; write it as {key}:<value>", usage)
        limit = FIELD_MAX.get(key, VALUE_MAX)
        if len(value) > limit:
            raise UsageError(f"`{key}:` is too long ({len(value)} characters, at most {limit})", usage)
        found[key] = value
        typed[key] = word.key
    return found


def _parse_list(words: list[_Word]) -> ListCommand:
    usage = USAGE_BY_COMMAND["list"]
    found = _collect(words, _LIST_KEYS, _LIST_ALIASES, usage, "status:processing or action:move")
    status = action = None
    if "status" in found:
        status = found["status"].upper()
        valid = [s.value for s in JobStatus]
        if status not in valid:
            raise UsageError(
                f"unknown job status {_snippet(found['status'])!r}; "
                f"use one of {', '.join(s.lower() for s in valid)}",
                usage,
            )
    if "action" in found:
        action = found["action"].upper()
        if action not in (ActionType.MOVE.value, ActionType.RELEASE.value):
            raise UsageError(f"unknown action {_snippet(found['action'])!r}; use move or release", usage)
    return ListCommand(status=status, action_type=action)


def _parse_create(action: ActionType, words: list[_Word], *, now: datetime) -> JobDraft:
    usage = _MOVE_USAGE if action is ActionType.MOVE else _RELEASE_USAGE
    found = _collect(
        words, _CREATE_KEYS, KEY_ALIASES, usage, 'sender:bad@phish.example or subject:"Invoice overdue"'
    )

    destination: Destination | None = None
    if action is ActionType.RELEASE:
        if "to" in found:
            raise UsageError(
                "a release takes no `to:` folder: released messages go back to the recipients' inboxes. "
                "To put mail in a folder, use `/sweep move … to:<folder>`",
                usage,
            )
    elif "to" not in found:
        raise UsageError(f"`move` needs a destination folder: add to:<folder> ({_FOLDERS_HELP})", usage)
    else:
        destination = _folder(found["to"], usage)

    fields: dict[str, Any] = {key: found[key] for key in TEXT_FILTER_KEYS if key in found}
    if "domain" in fields:
        fields["domain"] = fields["domain"].lstrip("@") or fields["domain"]
    if "message_id" in fields and not is_message_id(fields["message_id"]):
        raise UsageError(
            f"{_snippet(fields['message_id'])!r} is not a Message-ID: expected something like "
            "<abc123@mail.example.com>",
            usage,
        )
    if "final_disposition" in found:
        fields["final_disposition"] = _disposition(found["final_disposition"], usage)
    if "delivery_status" in found:
        fields["delivery_status"] = _delivery(found["delivery_status"], usage)
    if not has_filter(fields):
        raise UsageError(
            "give at least one filter (" + ", ".join(f"{k}:" for k in FILTER_KEYS) + "): " + NO_FILTER_REASON,
            usage,
        )

    start, end = _date_range(found, now=now, usage=usage)
    detections_only = (
        _boolean("detections_only", found["detections_only"], usage) if "detections_only" in found else False
    )
    comment = found.get("comment")
    try:
        params = SearchParams(**fields, start=start, end=end, detections_only=detections_only)
        draft = JobDraft(action=action, destination=destination, search_params=params, comment=comment)
    except (ValidationError, ValueError) as error:
        raise UsageError(
            f"these filters cannot make a job: {first_problem(error, default='invalid value')}", usage
        ) from error
    size = draft_size(draft)
    if size > DRAFT_JSON_MAX:
        raise UsageError(
            f"the filters and comment are too long together ({size} characters encoded, at most "
            f"{DRAFT_JSON_MAX}); shorten some of them or use `/sweep new`",
            usage,
        )
    return draft


def _folder(value: str, usage: str) -> Destination:
    normal = re.sub(r"[\s_-]+", "", value).lower()
    if normal in FOLDER_ALIASES:
        return FOLDER_ALIASES[normal]
    closest = _closest(normal, list(FOLDER_ALIASES))
    hint = f"did you mean `to:{closest}`? " if closest else ""
    raise UsageError(f"unknown folder {_snippet(value)!r}; {hint}the folders are {_FOLDERS_HELP}", usage)


def _disposition(value: str, usage: str) -> Disposition:
    normal = value.upper().replace("_", "-")
    try:
        return Disposition(normal)
    except ValueError:
        valid = ", ".join(d.value.lower() for d in Disposition)
        raise UsageError(
            f"unknown final_disposition {_snippet(value)!r}; use one of {valid}", usage
        ) from None


def _delivery(value: str, usage: str) -> DeliveryStatus:
    try:
        return DeliveryStatus(value.lower())
    except ValueError:
        valid = ", ".join(d.value for d in DeliveryStatus)
        raise UsageError(f"unknown delivery_status {_snippet(value)!r}; use one of {valid}", usage) from None


def _boolean(key: str, value: str, usage: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f"`{key}:` is yes or no, not {_snippet(value)!r}", usage)


def _date_range(found: dict[str, str], *, now: datetime, usage: str) -> tuple[datetime, datetime]:
    if "since" in found:
        for other in ("start", "end"):
            if other in found:
                raise UsageError(
                    f"give either since: or {other}:, not both (since: already sets the range up to now)",
                    usage,
                )
        return now - _duration(found["since"], usage), now
    start = _date("start", found["start"], now=now, usage=usage) if "start" in found else None
    end = _date("end", found["end"], now=now, usage=usage) if "end" in found else None
    if end is None:
        end = now
    if start is None:
        start = now - DEFAULT_RANGE
        if end <= start:
            raise UsageError(
                f"end:{_snippet(found['end'])} is before the default start (7 days ago, "
                f"{display_time(start)}); give start: too",
                usage,
            )
    if end <= start:
        end_text = f"end:{_snippet(found['end'])}" if "end" in found else f"now ({display_time(end)})"
        raise UsageError(f"{end_text} is not after start:{_snippet(found['start'])}", usage)
    return start, end


def _duration(value: str, usage: str) -> timedelta:
    match = _SINCE_RE.match(value.strip())
    if match is None:
        raise UsageError(
            f"`since:` is a number and a unit, like since:90m, since:24h, since:7d or since:2w; "
            f"not {_snippet(value)!r}",
            usage,
        )
    amount, unit = int(match.group(1)), match.group(2).lower()
    minutes = {"m": 1, "h": 60, "d": 1440, "w": 10080}[unit[0]] * amount
    if minutes == 0:
        raise UsageError("`since:` must be more than zero", usage)
    duration = timedelta(minutes=minutes)
    if duration > MAX_RANGE:
        raise UsageError(f"`since:` is at most {MAX_RANGE.days}d", usage)
    return duration


def _date(key: str, value: str, *, now: datetime, usage: str) -> datetime:
    text = value.strip().upper()
    example = "2026-11-20, 2026-11-20T08:00 or 2026-11-20T08:00:00Z (UTC unless an offset is given)"
    if not _DATE_RE.match(text):
        raise UsageError(f"`{key}:` {_snippet(value)!r} is not a date; use {example}", usage)
    date_only = len(text) == 10
    try:
        if date_only:
            day = date.fromisoformat(text)
            parsed = datetime.combine(day, time(), tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(text.replace(",", "."))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            parsed = parsed.astimezone(UTC).replace(microsecond=0)
    except (ValueError, OverflowError):
        raise UsageError(f"`{key}:` {_snippet(value)!r} is not a real date; use {example}", usage) from None
    if parsed < EARLIEST:
        raise UsageError(f"`{key}:` {_snippet(value)!r} is too far in the past", usage)
    if parsed > now + CLOCK_SKEW:
        hint = "leave end: out to mean now" if key == "end" else "a search can only look back"
        raise UsageError(f"`{key}:` {_snippet(value)!r} is in the future; {hint}", usage)
    if date_only and key == "end":
        # A date alone as the end means "through that day", but never past now.
        parsed = min(parsed + timedelta(days=1), now)
    return parsed
