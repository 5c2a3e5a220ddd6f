"""Blast-radius rules (issue 12): the breadth guard, the count and kind rules, the agreed maximum, parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.approval import (
    ApprovalPolicy,
    Reason,
    ReasonCode,
    agreed_maximum,
    approval_reasons,
    breadth_reasons,
    parse_above,
    parse_always,
    parse_domains,
    parse_duration,
    parse_margin,
)
from bot.cloudflare.models import ActionType, Destination, SearchParams
from bot.draft import JobDraft

END = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
INTERNAL = frozenset({"corp.example"})


def draft(
    *,
    action: ActionType = ActionType.MOVE,
    destination: Destination | None = Destination.JUNK_EMAIL,
    days: int = 7,
    **filters: object,
) -> JobDraft:
    params = SearchParams.model_validate(
        {"start": END - timedelta(days=days), "end": END, "detections_only": False, **filters}
    )
    return JobDraft(action=action, destination=destination, search_params=params)


def codes(reasons: list[object]) -> set[ReasonCode]:
    return {r.code for r in reasons}  # type: ignore[attr-defined]


# ---------------------------------------------------------------- the breadth guard


def test_a_narrow_search_is_not_broad() -> None:
    assert (
        breadth_reasons(
            draft(subject="invoice"), capped=False, counted_up_to=10_000, internal_domains=INTERNAL
        )
        == []
    )


def test_only_a_disposition_is_broad_and_says_what_would_narrow_it() -> None:
    [reason] = breadth_reasons(
        draft(final_disposition="MALICIOUS"), capped=False, counted_up_to=10_000, internal_domains=INTERNAL
    )
    assert reason.code is ReasonCode.NO_NARROWING_FILTER and reason.broad
    assert reason.narrow is not None and "sender" in reason.narrow


@pytest.mark.parametrize(
    "filters",
    [
        {"sender": "ceo@corp.example"},
        {"sender": "<payroll@Mail.Corp.Example>"},
        {"domain": "corp.example"},
        {"domain": "hr.corp.example", "subject": "bonus"},
    ],
)
def test_mail_from_an_internal_domain_is_broad(filters: dict[str, str]) -> None:
    reasons = breadth_reasons(draft(**filters), capped=False, counted_up_to=10_000, internal_domains=INTERNAL)
    assert codes(reasons) == {ReasonCode.INTERNAL_SENDER}
    assert "corp.example" in reasons[0].text


def test_a_lookalike_domain_is_not_internal() -> None:
    reasons = breadth_reasons(
        draft(domain="corp.example.evil", sender="x@notcorp.example"),
        capped=False,
        counted_up_to=10_000,
        internal_domains=INTERNAL,
    )
    assert reasons == []


def test_a_window_over_30_days_is_broad_and_30_is_not() -> None:
    assert (
        breadth_reasons(draft(days=30, subject="x"), capped=False, counted_up_to=1, internal_domains=INTERNAL)
        == []
    )
    [reason] = breadth_reasons(
        draft(days=31, subject="x"), capped=False, counted_up_to=1, internal_domains=INTERNAL
    )
    assert reason.code is ReasonCode.LONG_WINDOW and "31 days" in reason.text


def test_an_uncounted_preview_is_broad() -> None:
    [reason] = breadth_reasons(
        draft(subject="x"), capped=True, counted_up_to=10_000, internal_domains=INTERNAL
    )
    assert reason.code is ReasonCode.UNCOUNTED and "more than 10,000" in reason.text


def test_a_window_of_30_days_and_an_hour_says_more_than_30_days() -> None:
    params = SearchParams.model_validate(
        {"start": END - timedelta(days=30, hours=1), "end": END, "detections_only": False, "subject": "x"}
    )
    part_day = JobDraft(action=ActionType.MOVE, destination=Destination.JUNK_EMAIL, search_params=params)
    [reason] = breadth_reasons(part_day, capped=False, counted_up_to=1, internal_domains=INTERNAL)
    assert reason.code is ReasonCode.LONG_WINDOW
    assert "more than 30 days" in reason.text and "30 days, more than 30" not in reason.text


def every_reason() -> list[Reason]:
    """Return one of every reason the rules can give (all four breadth reasons, every kind, the count)."""
    policy = ApprovalPolicy(internal_domains=INTERNAL, always=frozenset({"purge", "release", "move"}))
    broad = draft(days=45, final_disposition="MALICIOUS")
    found = approval_reasons(policy, broad, matched=5, capped=True, counted_up_to=10_000)
    found += approval_reasons(
        policy, draft(sender="ceo@corp.example"), matched=5, capped=False, counted_up_to=1
    )
    for action, destination in (
        (ActionType.RELEASE, None),
        (ActionType.MOVE, Destination.RECOVERABLE_ITEMS_PURGES),
    ):
        kind = draft(subject="x", action=action, destination=destination)
        found += approval_reasons(policy, kind, matched=301, capped=False, counted_up_to=1)
    found += approval_reasons(
        ApprovalPolicy(above=0), draft(subject="x"), matched=0, capped=False, counted_up_to=1
    )
    return found


def test_every_reason_is_a_plain_clause_and_every_breadth_reason_says_what_would_narrow_it() -> None:
    reasons = every_reason()
    assert {r.code for r in reasons} == set(ReasonCode)
    assert {r.text for r in reasons if r.code is ReasonCode.ALWAYS} >= {
        "it deletes permanently, and every permanent purge needs a second person here",
        "it releases mail from quarantine, and every release needs a second person here",
        "it moves mail, and every move needs a second person here",
    }
    for reason in reasons:
        # Shown to people as is (a surface capitalises and ends them): no markup, no final stop.
        for part in (reason.text, reason.narrow or "x"):
            assert part[:1].islower() and not part.endswith("."), part
            assert not set(part) & set("*_`<>&~"), part
            assert len(part) <= 200, part
        assert (reason.narrow is not None) is reason.broad, reason


def test_an_uncounted_search_is_not_also_said_to_be_over_the_threshold() -> None:
    reasons = approval_reasons(
        ApprovalPolicy(), draft(subject="x"), matched=10_000, capped=True, counted_up_to=10_000
    )
    assert [r.code for r in reasons] == [ReasonCode.UNCOUNTED]
    every = approval_reasons(
        ApprovalPolicy(above=0), draft(subject="x"), matched=10_000, capped=True, counted_up_to=10_000
    )
    assert [r.code for r in every] == [ReasonCode.UNCOUNTED, ReasonCode.ABOVE]


def test_breadth_reasons_come_first() -> None:
    policy = ApprovalPolicy(internal_domains=INTERNAL)
    purge = draft(days=60, sender="ceo@corp.example", destination=Destination.RECOVERABLE_ITEMS_PURGES)
    reasons = approval_reasons(policy, purge, matched=301, capped=False, counted_up_to=10_000)
    assert [r.code for r in reasons] == [
        ReasonCode.INTERNAL_SENDER,
        ReasonCode.LONG_WINDOW,
        ReasonCode.ALWAYS,
        ReasonCode.ABOVE,
    ]


# ---------------------------------------------------------------- the policy


def test_defaults_a_small_narrow_move_needs_no_one() -> None:
    assert (
        approval_reasons(
            ApprovalPolicy(), draft(subject="x"), matched=300, capped=False, counted_up_to=10_000
        )
        == []
    )


def test_defaults_more_than_300_needs_a_second_person() -> None:
    reasons = approval_reasons(
        ApprovalPolicy(), draft(subject="x"), matched=301, capped=False, counted_up_to=10_000
    )
    assert codes(reasons) == {ReasonCode.ABOVE}
    assert "301" in reasons[0].text and "300" in reasons[0].text


def test_defaults_a_purge_always_needs_a_second_person() -> None:
    purge = draft(subject="x", destination=Destination.RECOVERABLE_ITEMS_PURGES)
    reasons = approval_reasons(ApprovalPolicy(), purge, matched=1, capped=False, counted_up_to=10_000)
    assert codes(reasons) == {ReasonCode.ALWAYS} and "purge" in reasons[0].text


def test_zero_means_every_job_and_off_turns_the_count_rule_off() -> None:
    every = ApprovalPolicy(above=0)
    assert codes(approval_reasons(every, draft(subject="x"), matched=0, capped=False, counted_up_to=1)) == {
        ReasonCode.ABOVE
    }
    off = ApprovalPolicy(above=None)
    assert approval_reasons(off, draft(subject="x"), matched=10**6, capped=False, counted_up_to=1) == []


def test_a_broad_search_needs_a_second_person_whatever_the_count_rules_say() -> None:
    off = ApprovalPolicy(above=None, always=frozenset())
    reasons = approval_reasons(
        off, draft(days=60, subject="x"), matched=3, capped=False, counted_up_to=10_000
    )
    assert codes(reasons) == {ReasonCode.LONG_WINDOW}


def test_release_and_move_can_always_need_approval() -> None:
    policy = ApprovalPolicy(always=frozenset({"release", "move"}))
    release = draft(subject="x", action=ActionType.RELEASE, destination=None)
    assert codes(approval_reasons(policy, release, matched=1, capped=False, counted_up_to=1)) == {
        ReasonCode.ALWAYS
    }
    assert codes(approval_reasons(policy, draft(subject="x"), matched=1, capped=False, counted_up_to=1)) == {
        ReasonCode.ALWAYS
    }


# ---------------------------------------------------------------- the agreed maximum


@pytest.mark.parametrize(
    ("matched", "margin", "expected"),
    [(0, 10.0, 5), (10, 10.0, 15), (49, 10.0, 54), (100, 10.0, 110), (1000, 10.0, 1100), (65, 0.0, 70)],
)
def test_agreed_maximum_is_the_count_plus_the_margin_and_at_least_5_more(
    matched: int, margin: float, expected: int
) -> None:
    assert agreed_maximum(matched, margin) == expected


# ---------------------------------------------------------------- parsing (README's accepted forms)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("2h", 7200), ("1h", 3600), ("1d", 86400)]
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "0s", "1.5h", "h", "10", "5w", "-1h"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="90s, 30m or 2h"):
        parse_duration(text)


def test_margins_thresholds_kinds_and_domains() -> None:
    assert parse_margin("10%") == 10.0 and parse_margin("25") == 25.0
    assert parse_above("300") == 300 and parse_above("0") == 0 and parse_above("OFF") is None
    assert (
        parse_always("purge, release") == frozenset({"purge", "release"}) and parse_always("") == frozenset()
    )
    assert parse_always("none") == parse_always(" OFF ") == frozenset()
    assert parse_domains("Corp.Example, mail.example.org.") == frozenset({"corp.example", "mail.example.org"})
    for bad, call in (("ten", parse_margin), ("-5%", parse_margin), ("nan", parse_margin)):
        with pytest.raises(ValueError):
            call(bad)
    with pytest.raises(ValueError, match="whole number"):
        parse_above("3.5")
    with pytest.raises(ValueError, match="purge, release, move"):
        parse_always("purge,delete")
    with pytest.raises(ValueError, match="example.com"):
        parse_domains("corp,@x.example")


def test_the_agreed_maximum_is_the_count_plus_the_margin_and_at_least_five_more() -> None:
    assert agreed_maximum(1000, 10.0) == 1100
    assert agreed_maximum(1001, 10.0) == 1102  # the margin rounds up
    assert agreed_maximum(20, 10.0) == 25  # at least 5 more
    assert agreed_maximum(0, 10.0) == 5
    assert agreed_maximum(10_000, 0.0) == 10_005
