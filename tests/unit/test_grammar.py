"""`/sweep …` text → commands, and the exact complaints for mistakes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.cloudflare.models import ActionType, DeliveryStatus, Destination, Disposition, SearchParams
from bot.draft import DRAFT_JSON_MAX, FILTER_KEYS, REQUEST_COMMENT_MAX, JobDraft
from bot.grammar import (
    FOLDER_ALIASES,
    HELP_EXAMPLES,
    TEXT_MAX,
    USAGE,
    CancelCommand,
    CreateCommand,
    HelpCommand,
    ListCommand,
    NewCommand,
    StatusCommand,
    UsageError,
    WatchCommand,
    parse_command,
)

NOW = datetime(2026, 11, 23, 7, 0, 0, tzinfo=UTC)
JOB = "0b8c2a4e-6f1d-4c3b-9a7e-2d5f8e1c3b90"


def parse(text: str) -> object:
    return parse_command(text, now=NOW)


def draft_of(text: str) -> JobDraft:
    command = parse(text)
    assert isinstance(command, CreateCommand), command
    return command.draft


def error_of(text: str) -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert caught.value.usage, "every error shows the right form"
    return caught.value


# ---------------------------------------------------------------- simple commands


@pytest.mark.parametrize("text", ["help", "HELP", "  Help  ", "?", "help move"])
def test_help(text: str) -> None:
    assert parse(text) == HelpCommand()


@pytest.mark.parametrize("text", ["", "   ", "new", "NEW", "\t"])
def test_new_opens_the_form(text: str) -> None:
    assert parse(text) == NewCommand()


def test_new_refuses_arguments() -> None:
    assert "`new` takes nothing" in error_of("new sender:x").message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("list", ListCommand(status=None, action_type=None)),
        ("LIST status:processing", ListCommand(status="PROCESSING", action_type=None)),
        ("ls action:Release status:COMPLETED", ListCommand(status="COMPLETED", action_type="RELEASE")),
        ("list type:move", ListCommand(status=None, action_type="MOVE")),
    ],
)
def test_list(text: str, expected: ListCommand) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("list status:running", "unknown job status 'running'"),
        ("list action:delete", "unknown action 'delete'"),
        ("list processing", "'processing' is not a key:value pair"),
        ("list status:pending status:failed", "`status:` is given twice"),
        ("list sender:x", "unknown key `sender:`"),
    ],
)
def test_list_mistakes(text: str, message: str) -> None:
    assert message in error_of(text).message


@pytest.mark.parametrize(
    ("verb", "cls"), [("status", StatusCommand), ("cancel", CancelCommand), ("watch", WatchCommand)]
)
def test_job_id_commands(verb: str, cls: type[StatusCommand | CancelCommand | WatchCommand]) -> None:
    assert parse(f"{verb} {JOB}") == cls(job_id=JOB)
    assert parse(f"{verb.upper()} {JOB.upper()}") == cls(job_id=JOB)
    assert parse(f"{verb} `{JOB}`") == cls(job_id=JOB)
    assert parse(f"{verb} job:{JOB}") == cls(job_id=JOB)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cancel", "`cancel` needs a job id"),
        ("status 1234", "'1234' is not a job id"),
        (f"watch {JOB} {JOB}", "takes exactly one job id"),
        (f"status {JOB[:-1]}", "is not a job id"),
    ],
)
def test_job_id_mistakes(text: str, message: str) -> None:
    assert message in error_of(text).message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mvoe sender:x to:junk", "did you mean `move`?"),
        ("relase sender:x", "did you mean `release`?"),
        ("frobnicate", "unknown command 'frobnicate'; the commands are help, new"),
        ("delete sender:x", "to:deleted"),
        ("purge sender:x", "to:purge"),
        ("sender:x to:junk", "did you mean `/sweep move sender:x …`?"),
        ("sender:x", "a command starts with what to do"),
    ],
)
def test_unknown_subcommands(text: str, message: str) -> None:
    assert message in error_of(text).message


# ---------------------------------------------------------------- create drafts


def test_move_with_defaults() -> None:
    draft = draft_of("move sender:bad@phish.example to:deleted")
    assert draft == JobDraft(
        action=ActionType.MOVE,
        destination=Destination.DELETED_ITEMS,
        search_params=SearchParams(
            sender="bad@phish.example", start=NOW - timedelta(days=7), end=NOW, detections_only=False
        ),
        comment=None,
    )
    # detections_only is always explicit, so the API's default (true) never applies.
    assert (
        draft.to_request(requester_label="@U1", channel_label="#C1").to_api()["search_params"][
            "detections_only"
        ]
        is False
    )


def test_every_key() -> None:
    draft = draft_of(
        "Move sender:a@b.example recipient:me@corp.example domain:@b.example "
        'subject:"Invoice overdue" exact_subject:"Your invoice #4411" message_id:<abc@mail.example> '
        "alert_id:4Njp3P0STMz2c02Q-2022-12-30T02:44:49 query:urgent final_disposition:malicious-bec "
        "delivery_status:Delivered detections_only:yes start:2026-11-20T08:00 end:2026-11-21T09:30:15+02:00 "
        'comment:"INC-42 see ticket" TO:JunkEmail'
    )
    params = draft.search_params
    assert draft.destination is Destination.JUNK_EMAIL
    assert (params.sender, params.recipient, params.domain) == ("a@b.example", "me@corp.example", "b.example")
    assert (params.subject, params.exact_subject) == ("Invoice overdue", "Your invoice #4411")
    assert params.message_id == "<abc@mail.example>"
    assert params.alert_id == "4Njp3P0STMz2c02Q-2022-12-30T02:44:49"
    assert params.query == "urgent"
    assert params.final_disposition is Disposition.MALICIOUS_BEC
    assert params.delivery_status is DeliveryStatus.DELIVERED
    assert params.detections_only is True
    assert params.start == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert params.end == datetime(2026, 11, 21, 7, 30, 15, tzinfo=UTC)
    assert draft.comment == "INC-42 see ticket"


def test_release() -> None:
    draft = draft_of("release message_id:&lt;abc@mail.example&gt; since:90m")
    assert draft.action is ActionType.RELEASE and draft.destination is None
    assert draft.search_params.message_id == "<abc@mail.example>"
    assert draft.search_params.start == NOW - timedelta(minutes=90)
    assert draft.needs_strong_confirmation and not draft.is_permanent


@pytest.mark.parametrize(
    ("since", "delta"),
    [
        ("24h", timedelta(hours=24)),
        ("7d", timedelta(days=7)),
        ("90m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        ("3 days", None),
        ("1H", timedelta(hours=1)),
        ("10mins", timedelta(minutes=10)),
    ],
)
def test_since(since: str, delta: timedelta | None) -> None:
    text = f'move sender:x since:"{since}" to:junk'
    params = draft_of(text).search_params
    assert params.end == NOW
    assert params.start == NOW - (delta or timedelta(days=3))


@pytest.mark.parametrize(("alias", "destination"), list(FOLDER_ALIASES.items()))
def test_folder_aliases(alias: str, destination: Destination) -> None:
    assert draft_of(f"move sender:x to:{alias.upper()}").destination is destination


@pytest.mark.parametrize(
    ("folder", "destination"),
    [
        ("Junk-Email", Destination.JUNK_EMAIL),
        ("soft_delete", Destination.RECOVERABLE_ITEMS_DELETIONS),
        ('"deleted items"', Destination.DELETED_ITEMS),
        ("RecoverableItemsPurges", Destination.RECOVERABLE_ITEMS_PURGES),
    ],
)
def test_folder_spelling_is_forgiving(folder: str, destination: Destination) -> None:
    assert draft_of(f"move sender:x to:{folder}").destination is destination


def test_every_destination_has_an_alias() -> None:
    assert set(FOLDER_ALIASES.values()) == set(Destination)
    assert all(alias == alias.lower() for alias in FOLDER_ALIASES)


@pytest.mark.parametrize(
    "text",
    [
        'move subject:"Invoice overdue" to:junk',
        "move subject:\u201cInvoice overdue\u201d to:junk",
        "move subject:\u201eInvoice overdue\u201c to:junk",
        'move subject: "Invoice overdue" to:junk',
        "move subject:\u00a0\u201cInvoice overdue\u201d to:junk",
    ],
)
def test_quotes_and_spaced_values(text: str) -> None:
    assert draft_of(text).search_params.subject == "Invoice overdue"


def test_escaped_quote_and_key_aliases() -> None:
    draft = draft_of(r'move from:x disposition:SPAM Exact-Subject:"say \"hi\"" folder:trash')
    assert draft.search_params.sender == "x"
    assert draft.search_params.final_disposition is Disposition.SPAM
    assert draft.search_params.exact_subject == 'say "hi"'
    assert draft.destination is Destination.DELETED_ITEMS


def test_slack_escaping_and_links_are_undone() -> None:
    draft = draft_of(
        "move sender:<mailto:a@b.example|a@b.example> domain:<http://b.example|b.example> "
        'subject:"Q&amp;A" to:junk'
    )
    assert draft.search_params.sender == "a@b.example"
    assert draft.search_params.domain == "b.example"
    assert draft.search_params.subject == "Q&A"


def test_value_may_contain_colons() -> None:
    assert draft_of("move query:a:b:c to:junk").search_params.query == "a:b:c"


def test_date_only_end_covers_the_whole_day() -> None:
    params = draft_of("move sender:x start:2026-11-20 end:2026-11-20 to:junk").search_params
    assert params.start == datetime(2026, 11, 20, tzinfo=UTC)
    assert params.end == datetime(2026, 11, 21, tzinfo=UTC)
    today = draft_of("move sender:x start:2026-11-20 end:2026-11-23 to:junk").search_params
    assert today.end == NOW, "a date-only end never goes past now"


def test_start_alone_runs_to_now_and_z_suffix() -> None:
    params = draft_of("move sender:x start:2026-11-22T01:02:03Z to:junk").search_params
    assert params.start == datetime(2026, 11, 22, 1, 2, 3, tzinfo=UTC)
    assert params.end == NOW


def test_now_is_truncated_to_whole_seconds() -> None:
    draft = parse_command("move sender:x to:junk", now=NOW + timedelta(microseconds=123456))
    assert isinstance(draft, CreateCommand)
    assert draft.draft.search_params.end == NOW


def test_naive_now_is_utc() -> None:
    command = parse_command("move sender:x since:1h to:junk", now=NOW.replace(tzinfo=None))
    assert isinstance(command, CreateCommand)
    assert command.draft.search_params.end == NOW


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("move sender:x", "`move` needs a destination folder: add to:<folder>"),
        ("release sender:x to:junk", "a release takes no `to:` folder"),
        ("move sender:x to:attic", "unknown folder 'attic'; the folders are inbox, junk"),
        ("move sender:x to:junkk", "did you mean `to:junk`?"),
        ("move to:junk", "give at least one filter"),
        ("move since:1d to:junk", "a date range alone would match all mail"),
        ("move start:2026-11-01 end:2026-11-02 detections_only:yes to:junk", "give at least one filter"),
        ("move sendr:x to:junk", "unknown key `sendr:`; did you mean `sender:`?"),
        ("move colour:x to:junk", "unknown key `colour:`"),
        ("move sender:x sender:y to:junk", "`sender:` is given twice"),
        ("move sender:x from:y to:junk", "`sender:` is given twice (sender: and from:)"),
        ("move sender:x to:junk to:inbox", "`to:` is given twice"),
        ("move sender:x stray to:junk", "'stray' is not a key:value pair"),
        ('move subject:"Invoice to:junk', "unterminated quote starting at position 14"),
        ("move subject:\u201cInvoice to:junk", "unterminated quote"),
        ("move sender: to:junk", "`sender:` has no value"),
        ('move sender:"" to:junk', "`sender:` has no value"),
        ("move sender:x start:yesterday to:junk", "`start:` 'yesterday' is not a date"),
        ("move sender:x start:2026-02-30 to:junk", "is not a real date"),
        ("move sender:x start:2026-11-20T25:00 to:junk", "is not a real date"),
        ("move sender:x start:1999-12-31 to:junk", "too far in the past"),
        ("move sender:x end:2026-12-01 to:junk", "`end:` '2026-12-01' is in the future; leave end: out"),
        ("move sender:x start:2026-11-24 to:junk", "`start:` '2026-11-24' is in the future"),
        (
            "move sender:x start:2026-11-22 end:2026-11-21 to:junk",
            "end:2026-11-21 is not after start:2026-11-22",
        ),
        ("move sender:x end:2026-11-01 to:junk", "is before the default start"),
        ("move sender:x since:24h start:2026-11-20 to:junk", "give either since: or start:"),
        ("move sender:x since:forever to:junk", "`since:` is a number and a unit"),
        ("move sender:x since:0h to:junk", "`since:` must be more than zero"),
        ("move sender:x since:999999d to:junk", "`since:` is at most 3650d"),
        ("move sender:x detections_only:maybe to:junk", "`detections_only:` is yes or no, not 'maybe'"),
        ("move final_disposition:evil to:junk", "unknown final_disposition 'evil'; use one of malicious"),
        ("move delivery_status:lost to:junk", "unknown delivery_status 'lost'; use one of delivered"),
        ("move message_id:nonsense to:junk", "is not a Message-ID"),
        ("move sender:<@U123> to:junk", "is a Slack mention or channel"),
        ("move sender:<!channel> to:junk", "is a Slack mention or channel"),
        ("move sender:" + "a" * 255 + " to:junk", "`sender:` is too long (255 characters, at most 254)"),
        ('move query:"' + "q" * 501 + '" to:junk', "`query:` is too long (501 characters, at most 500)"),
        ('move sender:x comment:"' + "c" * 501 + '" to:junk', "`comment:` is too long"),
        ("move sender:a\x00b to:junk", "control character (U+0000"),
        ("move sender:a\u202eb to:junk", "U+202E"),
        ("move sender:a\u200bb to:junk", "U+200B"),
        ("move sender:a\ud800 to:junk", "U+D800"),
        ("move " + "x" * TEXT_MAX, "the command is too long"),
    ],
)
def test_create_mistakes(text: str, message: str) -> None:
    error = error_of(text)
    assert message in error.message, error.message


def test_move_errors_show_the_move_usage() -> None:
    assert error_of("move sender:x").usage.startswith("/sweep move")
    assert error_of("release sender:x to:junk").usage.startswith("/sweep release")


def test_combined_values_too_long_for_a_button() -> None:
    text = (
        'move subject:"'
        + "s" * 200
        + '" exact_subject:"'
        + "e" * 200
        + '" query:"'
        + "q" * 500
        + '" recipient:"'
        + "r" * 254
        + '" sender:"'
        + "x" * 254
        + '" domain:"'
        + "d" * 253
        + '" message_id:"<'
        + "m" * 240
        + '@x>" alert_id:"'
        + "a" * 100
        + '" comment:"'
        + "c" * 500
        + '" to:junk'
    )
    assert "too long together" in error_of(text).message


def test_usage_error_str_is_the_message() -> None:
    error = UsageError("bad thing", "/sweep x")
    assert str(error) == "bad thing" and error.usage == "/sweep x"
    # Without a command-specific form, the error shows the whole usage: every command of the README's table.
    default = UsageError("x").usage
    for form in (
        "/sweep help",
        "/sweep new",
        "/sweep move <filters> to:<folder>",
        "/sweep release <filters>",
        "/sweep list [status:<status>] [action:move|release]",
        "/sweep status <job_id>",
        "/sweep cancel <job_id>",
        "/sweep watch <job_id>",
    ):
        assert form in default, form


# ---------------------------------------------------------------- the draft itself


def make(
    action: ActionType = ActionType.MOVE,
    destination: Destination | None = Destination.JUNK_EMAIL,
    comment: str | None = None,
    **params: object,
) -> JobDraft:
    search: dict[str, object] = {
        "sender": "x@y.example",
        "start": NOW - timedelta(days=1),
        "end": NOW,
        "detections_only": False,
    }
    search.update(params)
    return JobDraft(
        action=action,
        destination=destination,
        search_params=SearchParams(**search),  # type: ignore[arg-type]
        comment=comment,
    )


def test_permanence_and_strong_confirmation() -> None:
    assert not make().needs_strong_confirmation
    purge = make(destination=Destination.RECOVERABLE_ITEMS_PURGES)
    assert purge.is_permanent and purge.needs_strong_confirmation
    soft = make(destination=Destination.RECOVERABLE_ITEMS_DELETIONS)
    assert not soft.is_permanent and not soft.needs_strong_confirmation
    release = make(ActionType.RELEASE, None)
    assert release.needs_strong_confirmation and not release.is_permanent


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"destination": None}, "a move needs a destination"),
        ({"action": ActionType.RELEASE}, "a release takes no destination"),
        ({"detections_only": None}, "detections_only must be chosen"),
        ({"start": NOW, "end": NOW - timedelta(hours=1)}, "end must not be before start"),
        ({"sender": None}, "at least one filter"),
    ],
)
def test_draft_invariants(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(**kwargs)  # type: ignore[arg-type]


def test_draft_normalises_times_to_whole_utc_seconds() -> None:
    draft = make(start=datetime(2026, 11, 20, 8, 0, 0, 999), end=NOW.replace(microsecond=5))
    assert draft.search_params.start == datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert draft.search_params.start.tzinfo is UTC
    assert draft.search_params.end == NOW
    assert JobDraft.model_validate_json(draft.model_dump_json()) == draft


def test_to_request_records_who_and_where() -> None:
    request = make(comment="  INC-7  ").to_request(requester_label="@U123", channel_label="#C456")
    assert request.comment == "Sweep: requested by @U123 in #C456 \u2014 INC-7"
    assert request.action is ActionType.MOVE and request.destination is Destination.JUNK_EMAIL
    bare = make().to_request(requester_label="@U1", channel_label="#C1")
    assert bare.comment == "Sweep: requested by @U1 in #C1"


def test_to_request_keeps_the_comment_short_enough_for_the_request_tag() -> None:
    request = make(comment="c" * 5000).to_request(requester_label="@U1" * 100, channel_label="#C1")
    assert request.comment is not None and len(request.comment) == REQUEST_COMMENT_MAX
    assert request.comment.endswith("\u2026")


def test_summary_filters() -> None:
    draft = make(subject="Invoice", final_disposition="MALICIOUS", detections_only=True)
    assert draft.summary_filters() == [
        ("Sender", "x@y.example"),
        ("Subject contains", "Invoice"),
        ("Disposition", "MALICIOUS"),
        ("From", "2026-11-22 07:00:00 UTC"),
        ("Until", "2026-11-23 07:00:00 UTC"),
        ("Detections only", "yes"),
    ]


def test_help_constants() -> None:
    assert "/sweep move" in USAGE and "to:<folder>" in USAGE and "since:" in USAGE
    for command, meaning in HELP_EXAMPLES:
        assert command.startswith("/sweep ") and meaning
        parsed = parse_command(command.removeprefix("/sweep "), now=NOW)
        assert not isinstance(parsed, NewCommand), command
    for key in FILTER_KEYS:
        assert key in USAGE


def test_every_help_example_parses() -> None:
    # What each example's description promises, written out here rather than read back from the parser.
    week, day = timedelta(days=7), timedelta(hours=24)
    expected: dict[str, object] = {
        "move sender:bad@phish.example": CreateCommand(
            draft=JobDraft(
                action=ActionType.MOVE,
                destination=Destination.DELETED_ITEMS,
                search_params=SearchParams(
                    sender="bad@phish.example", start=NOW - day, end=NOW, detections_only=False
                ),
                comment="INC-1234",
            )
        ),
        "move subject:": CreateCommand(
            draft=JobDraft(
                action=ActionType.MOVE,
                destination=Destination.RECOVERABLE_ITEMS_PURGES,
                search_params=SearchParams(
                    subject="Invoice overdue",
                    final_disposition=Disposition.MALICIOUS,
                    start=NOW - week,
                    end=NOW,
                    detections_only=False,
                ),
            )
        ),
        "release message_id:": CreateCommand(
            draft=JobDraft(
                action=ActionType.RELEASE,
                search_params=SearchParams(
                    message_id="<abc123@mail.example.com>", start=NOW - week, end=NOW, detections_only=False
                ),
            )
        ),
        "list status:processing": ListCommand(status="PROCESSING"),
        "status ": StatusCommand(job_id=JOB),
        "watch ": WatchCommand(job_id=JOB),
    }
    assert len(HELP_EXAMPLES) == len(expected)
    for command, meaning in HELP_EXAMPLES:
        text = command.removeprefix("/sweep ")
        prefix = next(p for p in expected if text.startswith(p))
        parsed = parse_command(text, now=NOW)
        assert parsed == expected[prefix], (command, meaning)
        if isinstance(parsed, CreateCommand):
            assert parsed.draft.needs_strong_confirmation == ("asks twice" in meaning), command


def test_drafts_fit_the_draft_budget() -> None:
    draft = draft_of("move sender:x to:junk")
    assert len(draft.model_dump_json(exclude_none=True)) < DRAFT_JSON_MAX


# ---------------------------------------------------------------- fuzzing

_MRKDWN = st.sampled_from(
    [
        "<!channel>",
        "<!here>",
        "<@U1>",
        "<#C1|general>",
        "*",
        "_",
        "~",
        "`",
        "```",
        ":",
        '"',
        "\u201c",
        "\u201d",
        "\\",
        "&amp;",
        "&lt;",
        "&gt;",
        "to:",
        "sender:",
        "since:",
        "start:",
        "end:",
        "move",
        "release",
        " ",
        "\n",
        "<mailto:a@b|a@b>",
        "2026-11-20",
        "junk",
        JOB,
    ]
)
_TEXT = st.lists(st.one_of(_MRKDWN, st.text(max_size=20)), max_size=30).map("".join)


def _only_command_or_usage_error(text: str) -> None:
    try:
        result = parse_command(text, now=NOW)
    except UsageError as error:
        assert isinstance(error.message, str) and error.message
        assert isinstance(error.usage, str)
        return
    assert isinstance(
        result,
        HelpCommand | NewCommand | CreateCommand | ListCommand | StatusCommand | CancelCommand | WatchCommand,
    )
    if isinstance(result, CreateCommand):
        assert result.draft.search_params.detections_only is not None
        assert any(getattr(result.draft.search_params, key) is not None for key in FILTER_KEYS)
        assert len(result.draft.model_dump_json(exclude_none=True)) <= DRAFT_JSON_MAX


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_fuzz_any_text(text: str) -> None:
    _only_command_or_usage_error(text)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["move ", "release ", "list ", "status ", "cancel ", "watch ", "", "new "]), _TEXT)
def test_fuzz_command_shaped_text(prefix: str, text: str) -> None:
    _only_command_or_usage_error(prefix + text)


@settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.text(min_size=1, max_size=5).map(lambda s: s * 2000))
def test_fuzz_huge_strings(text: str) -> None:
    _only_command_or_usage_error(text)
    _only_command_or_usage_error("move sender:" + text)


def test_huge_key_value_texts_get_a_short_usage_error() -> None:
    # Speed is measured in bench/, not here: this pins what the user is told about each huge text.
    cases = {
        "move " + ":" * 3990: "is not a key:value pair",
        "move " + "a:" * 1990: "unknown key `a:`",
        '"' * 3999: "unterminated quote starting at position 3999",
        "move " + "x" * 3990 + ":y": "is not a key:value pair",
    }
    for text, complaint in cases.items():
        _only_command_or_usage_error(text)
        message = error_of(text).message
        assert complaint in message, message[:120]
        # The offending text is quoted shortened, never echoed whole back into Slack.
        assert len(message) < 400, len(message)
