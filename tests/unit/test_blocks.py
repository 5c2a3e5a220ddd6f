"""Block builders: valid for Slack (slack_sdk models + our limits), escaped, with the right controls."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from blocks import _kit
from blocks.create_modal import (
    build_create_modal,
    build_loading_view,
    build_preview_view,
    build_result_view,
    confirmation_word,
)
from blocks.errors import (
    build_budget_spent,
    build_cloudflare_error,
    build_error,
    build_refusal,
    build_usage_error,
)
from blocks.help import build_help
from blocks.job_card import (
    auto_cancel_line,
    build_auto_cancel_reply,
    build_job_card,
    build_status_card,
    build_transition_reply,
)
from blocks.job_list import MAX_LISTED, build_job_list
from blocks.notice import build_notice
from blocks.preview import build_inline_preview
from blocks.validate import BlockLimitError, validate_message, validate_view
from bot.cloudflare.models import (
    UNKNOWN_COUNT,
    ActionType,
    BulkJob,
    Destination,
    JobStatus,
    MessageSummary,
    SearchParams,
    SearchResult,
)
from bot.draft import JobDraft
from bot.grammar import UsageError
from bot.ids import ActionId, BlockId, CallbackId
from bot.models import TrackedJob
from bot.payloads import CancelButtonValue, ListPageValue, decode
from bot.text import INVISIBLE, is_control, one_line, visible
from tests.support import mrkdwn_texts

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
EVIL = "<!channel> <@U123> <https://evil.example|bank> & <!here>"
HUGE = "x<&>" * 5000


# ---------------------------------------------------------------- helpers


def make_job(**changes: Any) -> TrackedJob:
    base: dict[str, Any] = {
        "job_id": "0b3c5f0e-7c1d-4a57-9d8e-2f3a4b5c6d7e",
        "account_id": "acc",
        "action_type": "MOVE",
        "destination": "DeletedItems",
        "search_params": SearchParams(sender="bad@example.com", detections_only=False),
        "requester": "U0123ABC",
        "channel_id": "C0123",
        "status": "PROCESSING",
        "total_messages_discovered": 200,
        "messages_pending": 50,
        "messages_successful": 140,
        "messages_failed": 10,
        "created_at": NOW - timedelta(minutes=12),
        "updated_at": NOW,
    }
    base.update(changes)
    return TrackedJob(**base)


def seen(job: BulkJob) -> TrackedJob:
    """Return Sweep's model of a job Cloudflare listed (what the use cases give the blocks)."""
    return TrackedJob.from_job(job, account_id="acct", now=NOW)


def seen_all(jobs: list[BulkJob]) -> list[TrackedJob]:
    return [seen(job) for job in jobs]


def make_bulk(index: int = 0, **changes: Any) -> BulkJob:
    raw: dict[str, Any] = {
        "job_id": f"00000000-0000-4000-8000-{index:012d}",
        "action_type": "MOVE",
        "action_params": {"type": "MOVE", "destination": "JunkEmail"},
        "search_params": {"sender": f"s{index}@example.com", "detections_only": True},
        "status": "COMPLETED",
        "total_messages_discovered": 10 + index,
        "messages_pending": 0,
        "messages_successful": 10 + index,
        "messages_failed": 0,
        "comment": f"ticket {index}",
        "created_at": (NOW - timedelta(hours=index)).isoformat(),
    }
    raw.update(changes)
    return BulkJob.model_validate(raw)


def make_draft(
    action: ActionType = ActionType.MOVE,
    destination: Destination | None = Destination.DELETED_ITEMS,
    comment: str | None = "INC-1234",
    **params: Any,
) -> JobDraft:
    search: dict[str, Any] = {
        "sender": "bad@example.com",
        "start": NOW - timedelta(days=7),
        "end": NOW,
        "detections_only": False,
    }
    search.update(params)
    return JobDraft(
        action=action, destination=destination, search_params=SearchParams(**search), comment=comment
    )


def make_result(count: int = 3, *, capped: bool = False, subject: str = "Invoice overdue") -> SearchResult:
    messages = [
        MessageSummary.model_validate(
            {
                "id": f"m{i}",
                "from": f"bad{i}@example.com",
                "to": [f"user{i}@corp.example", "other@corp.example", "third@corp.example"],
                "subject": subject,
                "sent_at": (NOW - timedelta(hours=i)).isoformat(),
            }
        )
        for i in range(count)
    ]
    return SearchResult(messages=messages, capped=capped)


def assert_escaped(payload: dict[str, Any]) -> None:
    """No user-supplied markup survives in mrkdwn or the fallback text; every `&` is an entity."""
    texts = mrkdwn_texts(payload.get("blocks", []))
    if "text" in payload and isinstance(payload["text"], str):
        texts.append(payload["text"])
    for text in texts:
        assert "<!channel>" not in text and "<!here>" not in text, text
        assert "<@U123>" not in text, text
        assert "<https://evil" not in text, text
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), text


def assert_mrkdwn_verbatim(payload: Any) -> None:
    """Every mrkdwn object is verbatim, so Slack does no automatic @-mention or link parsing."""
    if isinstance(payload, dict):
        if payload.get("type") == "mrkdwn":
            assert payload.get("verbatim") is True, payload
        for value in payload.values():
            assert_mrkdwn_verbatim(value)
    elif isinstance(payload, list):
        for value in payload:
            assert_mrkdwn_verbatim(value)


def check_message(payload: dict[str, Any]) -> dict[str, Any]:
    """Validate with our checker and, independently, with slack_sdk's models."""
    validate_message(payload)
    assert isinstance(payload["text"], str) and payload["text"].strip()
    assert len(payload["blocks"]) <= 50
    for block in payload["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None
        assert parsed.to_dict() == block
    assert_mrkdwn_verbatim(payload)
    json.dumps(payload)
    return payload


def check_view(view: dict[str, Any]) -> dict[str, Any]:
    validate_view(view)
    View(**view).to_dict()
    assert len(view["title"]["text"]) <= 24
    assert len(view["blocks"]) <= 100
    assert_mrkdwn_verbatim(view)
    json.dumps(view)
    return view


def action_ids(payload: Any) -> list[str]:
    found: list[str] = []
    if isinstance(payload, dict):
        if "action_id" in payload:
            found.append(payload["action_id"])
        for value in payload.values():
            found.extend(action_ids(value))
    elif isinstance(payload, list):
        for value in payload:
            found.extend(action_ids(value))
    return found


def find_buttons(payload: Any, action_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(payload, dict):
        if payload.get("type") == "button" and payload.get("action_id") == action_id:
            found.append(payload)
        for value in payload.values():
            found.extend(find_buttons(value, action_id))
    elif isinstance(payload, list):
        for value in payload:
            found.extend(find_buttons(value, action_id))
    return found


def all_text(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False)


# ---------------------------------------------------------------- _kit


def test_escape_neutralises_mentions_and_links() -> None:
    assert _kit.escape("<!channel> & <@U1> <http://evil|bank>") == (
        "&lt;!channel&gt; &amp; &lt;@U1&gt; &lt;http://evil|bank&gt;"
    )


@pytest.mark.parametrize("limit", [1, 2, 5, 10, 11, 12, 13])
def test_truncate_never_splits_an_entity(limit: int) -> None:
    text = _kit.escape("abcdefg & <more>")
    cut = _kit.truncate(text, limit)
    assert len(cut) <= limit
    assert not re.search(r"&(?!amp;|lt;|gt;)", cut)


def test_truncate_keeps_short_text_and_marks_cuts() -> None:
    assert _kit.truncate("short", 10) == "short"
    assert _kit.truncate("0123456789abc", 10) == "012345678…"
    assert _kit.truncate("anything", 0) == ""


def test_truncate_drops_an_unclosed_token_of_ours() -> None:
    assert _kit.truncate("hello <@U0123456789>", 12) == "hello …"


@pytest.mark.parametrize(
    ("done", "total", "expected"),
    [
        (0, 0, "░" * 10 + " 0%"),
        (5, 10, "▓" * 5 + "░" * 5 + " 50%"),
        (10, 10, "▓" * 10 + " 100%"),
        (999, 1000, "▓" * 9 + "░" + " 99%"),
        (50, 10, "▓" * 10 + " 100%"),
        (-3, 10, "░" * 10 + " 0%"),
    ],
)
def test_progress_bar(done: int, total: int, expected: str) -> None:
    assert _kit.progress_bar(done, total, width=10) == expected


def test_progress_bar_default_width() -> None:
    assert _kit.progress_bar(1, 2) == "▓" * 10 + "░" * 10 + " 50%"


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(seconds=-30), "just now"),
        (timedelta(seconds=59), "just now"),
        (timedelta(minutes=5), "5 min ago"),
        (timedelta(hours=1, minutes=20), "1 h 20 min ago"),
        (timedelta(hours=5, minutes=20), "5 h ago"),
        (timedelta(days=3, hours=2), "3 d ago"),
    ],
)
def test_format_age(delta: timedelta, expected: str) -> None:
    assert _kit.format_age(NOW - delta, NOW) == expected


def test_format_age_accepts_naive_datetimes_as_utc() -> None:
    assert _kit.format_age(datetime(2026, 11, 23, 6, 0), NOW) == "1 h ago"


def test_format_count() -> None:
    assert _kit.format_count(1234567) == "1,234,567"
    assert _kit.format_count(None) == "—"


@pytest.mark.parametrize(
    ("user", "shown"), [("U0123ABC", "<@U0123ABC>"), ("W9", "<@W9>"), ("<!here>", "&lt;!here&gt;")]
)
def test_mention_validates_the_id(user: str, shown: str) -> None:
    assert _kit.mention(user) == shown


def test_button_refuses_an_oversized_value() -> None:
    with pytest.raises(ValueError, match="2000"):
        _kit.button("x", action_id="a", value="v" * 2001)


# ---------------------------------------------------------------- job card

ALL_STATUSES = [s.value for s in JobStatus] + ["PAUSED_FOR_REVIEW", "<!channel>"]


@pytest.mark.parametrize("status", ALL_STATUSES)
def test_card_in_every_status_is_valid_and_cancellable_only_while_active(status: str) -> None:
    job = make_job(status=status)
    card = check_message(build_job_card(job, now=NOW))
    assert_escaped(card)
    buttons = find_buttons(card, ActionId.CANCEL_JOB)
    terminal = status in {"COMPLETED", "FAILED", "CANCELLED", "SKIPPED"}
    assert bool(buttons) is not terminal
    if buttons:
        (cancel,) = buttons
        assert cancel["style"] == "danger"
        assert "confirm" in cancel
        assert "stay moved" in cancel["confirm"]["text"]["text"]
        assert "pending" in cancel["confirm"]["text"]["text"]
        assert decode(CancelButtonValue, cancel["value"]).job_id == job.job_id


def test_unknown_status_is_shown_as_is() -> None:
    card = build_job_card(make_job(status="PAUSED_FOR_REVIEW"), now=NOW)
    assert "PAUSED_FOR_REVIEW" in all_text(card)


def test_card_header_says_what_the_job_does() -> None:
    move = build_job_card(make_job(), now=NOW)
    assert move["blocks"][0]["text"]["text"] == "Move to Deleted Items"
    release = build_job_card(make_job(action_type="RELEASE", destination=None), now=NOW)
    assert release["blocks"][0]["text"]["text"] == "Release from quarantine"
    purge = build_job_card(make_job(destination="RecoverableItemsPurges"), now=NOW)
    assert "Permanently delete" in purge["blocks"][0]["text"]["text"]
    odd = check_message(build_job_card(make_job(action_type="QUARANTINE", destination="Archive"), now=NOW))
    assert "QUARANTINE" in odd["blocks"][0]["text"]["text"]


def test_gone_job_says_so_and_has_no_cancel() -> None:
    card = check_message(build_job_card(make_job(gone=True), now=NOW))
    assert "no longer exists at Cloudflare" in all_text(card)
    assert not find_buttons(card, ActionId.CANCEL_JOB)


def test_card_shows_counts_progress_age_and_requester() -> None:
    card = check_message(build_job_card(make_job(messages_skipped=3, messages_cancelled=4), now=NOW))
    text = all_text(card)
    for label in ("Discovered", "Successful", "Failed", "Pending", "Skipped", "Cancelled"):
        assert f"*{label}*" in text
    assert "▓" in text and "75%" in text
    assert "12 min ago" in text
    assert "<@U0123ABC>" in text
    assert "0b3c5f0e-7c1d-4a57-9d8e-2f3a4b5c6d7e" in text


def test_card_omits_counters_the_api_did_not_send() -> None:
    text = all_text(build_job_card(make_job(), now=NOW))
    assert "*Skipped*" not in text and "*Cancelled*" not in text


def test_card_with_no_messages() -> None:
    active = all_text(
        check_message(
            build_job_card(
                make_job(status="DISCOVERING", total_messages_discovered=0, messages_pending=0), now=NOW
            )
        )
    )
    assert "Searching" in active
    done = all_text(
        check_message(
            build_job_card(
                make_job(status="COMPLETED", total_messages_discovered=0, messages_pending=0), now=NOW
            )
        )
    )
    assert "No messages matched" in done


def test_card_with_huge_counts_and_strings() -> None:
    job = make_job(
        total_messages_discovered=10**12,
        messages_pending=10**11,
        messages_successful=9 * 10**11,
        messages_failed=10**10,
        messages_skipped=10**9,
        messages_cancelled=10**9,
        comment=HUGE,
        status_message=HUGE,
        search_params=SearchParams(
            sender=HUGE, subject=HUGE, query=HUGE, exact_subject=HUGE, recipient=HUGE, detections_only=True
        ),
        requester="U" + "A" * 500,
        cancelled_by="W" + "B" * 500,
    )
    card = check_message(build_job_card(job, now=NOW))
    assert_escaped(card)
    assert "1,000,000,000,000" in all_text(card)


def test_card_escapes_every_user_supplied_place() -> None:
    job = make_job(
        comment=EVIL + "\nsecond line " + EVIL,
        status_message=EVIL,
        search_params=SearchParams(
            sender=EVIL,
            recipient=EVIL,
            domain=EVIL,
            subject=EVIL,
            exact_subject=EVIL,
            message_id=EVIL,
            alert_id=EVIL,
            query=EVIL,
            final_disposition=EVIL,
            delivery_status=EVIL,
            detections_only=False,
        ),
        requester=EVIL,
        cancelled_by=EVIL,
        job_id=EVIL,
        destination=EVIL,
    )
    card = check_message(build_job_card(job, now=NOW))
    assert_escaped(card)
    assert "&lt;!channel&gt;" in all_text(card)
    reply = check_message(
        build_transition_reply(job.model_copy(update={"status": "FAILED"}), previous_status=EVIL, now=NOW)
    )
    assert_escaped(reply)


def test_an_id_that_cannot_be_carried_renders_without_the_button() -> None:
    card = check_message(build_job_card(make_job(job_id="j" * 2500), now=NOW))
    assert not find_buttons(card, ActionId.CANCEL_JOB)


def test_cancelled_by_is_a_mention_when_valid() -> None:
    card = build_job_card(make_job(status="CANCELLED", cancelled_by="U0CANCEL"), now=NOW)
    assert "Cancelled from Slack by <@U0CANCEL>" in all_text(card)


def test_card_shows_cloudflare_status_message() -> None:
    card = build_job_card(make_job(status="FAILED", status_message="quota exceeded"), now=NOW)
    assert "Cloudflare says: quota exceeded" in all_text(card)


def test_completed_with_failures_is_flagged() -> None:
    card = build_job_card(make_job(status="COMPLETED", messages_pending=0, messages_failed=3), now=NOW)
    assert "Completed with 3 failures" in all_text(card)


# ---------------------------------------------------------------- transitions and status


def test_transition_reply_to_a_terminal_state_has_final_counts() -> None:
    job = make_job(status="COMPLETED", messages_pending=0, messages_successful=190, status_message="done")
    reply = check_message(build_transition_reply(job, previous_status="PROCESSING", now=NOW))
    text = all_text(reply)
    assert "Processing → Completed" in text
    assert "Final counts" in text and "successful: 190" in text
    assert "Cloudflare says: done" in text
    assert "Processing → Completed" in reply["text"]


def test_transition_reply_while_running_shows_progress() -> None:
    reply = check_message(build_transition_reply(make_job(), previous_status="DISCOVERING", now=NOW))
    assert "Finding messages → Processing" in all_text(reply)
    assert "Final counts" not in all_text(reply)


def test_first_transition_reply_and_unknown_statuses() -> None:
    first = check_message(build_transition_reply(make_job(status="PENDING"), previous_status=None, now=NOW))
    assert "Pending" in first["text"]
    odd = check_message(
        build_transition_reply(make_job(status="NEWTHING"), previous_status="OLDTHING", now=NOW)
    )
    assert "OLDTHING → NEWTHING" in odd["text"]


def test_transition_reply_for_cancel_and_gone() -> None:
    cancelled = make_job(status="CANCELLED", cancelled_by="U0CANCEL", messages_cancelled=50)
    text = all_text(check_message(build_transition_reply(cancelled, previous_status="PROCESSING", now=NOW)))
    assert "<@U0CANCEL>" in text and "cancelled: 50" in text
    gone = all_text(
        check_message(build_transition_reply(make_job(gone=True), previous_status="PROCESSING", now=NOW))
    )
    assert "deleted outside Sweep" in gone


def test_status_card_for_untracked_and_tracked_jobs() -> None:
    untracked = check_message(
        build_status_card(seen(make_bulk(1, status="PROCESSING", messages_pending=5)), tracked=False, now=NOW)
    )
    assert "Not tracked by Sweep" in all_text(untracked)
    assert "created outside Sweep" in all_text(untracked)
    assert find_buttons(untracked, ActionId.CANCEL_JOB)
    odd = check_message(
        build_status_card(
            seen(make_bulk(2, status="BRAND_NEW", action_type="PURGE", action_params={"type": "PURGE"})),
            tracked=False,
            now=NOW,
        )
    )
    assert "BRAND_NEW" in all_text(odd)
    tracked = check_message(build_status_card(make_job(status="COMPLETED"), tracked=True, now=NOW))
    assert not find_buttons(tracked, ActionId.CANCEL_JOB)


# ---------------------------------------------------------------- job list


def test_empty_list_says_so() -> None:
    listing = check_message(
        build_job_list([], page=1, has_more=False, status=None, action_type=None, now=NOW)
    )
    assert "No bulk jobs match" in all_text(listing)
    assert ActionId.LIST_PAGE not in action_ids(listing)


def test_list_with_200_jobs_fits_in_one_message() -> None:
    jobs = [make_bulk(i, comment=EVIL) for i in range(200)]
    listing = check_message(
        build_job_list(seen_all(jobs), page=1, has_more=True, status=None, action_type=None, now=NOW)
    )
    assert_escaped(listing)
    assert len(listing["blocks"]) <= 50
    text = all_text(listing)
    assert "8000-000000000000" in text and f"8000-{MAX_LISTED - 1:012d}" in text
    assert f"8000-{MAX_LISTED:012d}" not in text
    assert "more on this page not shown" in text


def test_list_paging_buttons_carry_the_filters() -> None:
    jobs = [make_bulk(i) for i in range(10)]
    first = check_message(
        build_job_list(seen_all(jobs), page=1, has_more=True, status="COMPLETED", action_type="MOVE", now=NOW)
    )
    (only,) = find_buttons(first, ActionId.LIST_PAGE)
    assert decode(ListPageValue, only["value"]) == ListPageValue(
        status="COMPLETED", action_type="MOVE", page=2
    )
    middle = check_message(
        build_job_list(seen_all(jobs), page=3, has_more=True, status=None, action_type=None, now=NOW)
    )
    previous, following = find_buttons(middle, ActionId.LIST_PAGE)
    assert decode(ListPageValue, previous["value"]).page == 2
    assert decode(ListPageValue, following["value"]).page == 4
    last = check_message(
        build_job_list(seen_all(jobs), page=3, has_more=False, status=None, action_type=None, now=NOW)
    )
    (back,) = find_buttons(last, ActionId.LIST_PAGE)
    assert decode(ListPageValue, back["value"]).page == 2


def test_list_shows_status_counts_and_age() -> None:
    jobs = [
        make_bulk(1, status="PROCESSING", messages_pending=4),
        make_bulk(2, status="WEIRD"),
        make_bulk(3, action_type="RELEASE", action_params={"type": "RELEASE"}),
    ]
    text = all_text(
        check_message(
            build_job_list(seen_all(jobs), page=1, has_more=False, status=None, action_type=None, now=NOW)
        )
    )
    assert ":gear: Processing" in text and "WEIRD" in text and "Release from quarantine" in text
    assert "4 pending" in text and "1 h ago" in text


def test_list_escapes_the_filters_it_echoes() -> None:
    listing = check_message(
        build_job_list([], page=2, has_more=False, status=EVIL, action_type=EVIL, now=NOW)
    )
    assert_escaped(listing)


# ---------------------------------------------------------------- help, errors, notices


def test_help_is_valid_and_placeholders_cannot_become_links() -> None:
    help_message = check_message(build_help())
    assert "/sweep" in all_text(help_message)
    for text in [*mrkdwn_texts(help_message["blocks"]), help_message["text"]]:
        assert "<" not in text and ">" not in text.replace("&gt;", ""), text


def test_usage_error_says_what_and_how() -> None:
    error = UsageError(f"unknown folder {EVIL}", "/sweep move <folder> from:<sender>")
    message = check_message(build_usage_error(error))
    assert_escaped(message)
    assert "unknown folder" in all_text(message)
    assert "/sweep move &lt;folder&gt;" in all_text(message)


def test_errors_and_refusals_are_valid_and_escaped() -> None:
    for message in (
        build_error(EVIL, reference="ab12cd34"),
        build_error(HUGE),
        build_refusal(EVIL),
        build_cloudflare_error(f"Cloudflare error (HTTP 400) 1001: {EVIL}"),
        build_cloudflare_error(HUGE),
        build_budget_spent(f"Sweep did not send this request to Cloudflare: {EVIL}"),
        build_budget_spent(HUGE),
    ):
        check_message(message)
        assert_escaped(message)
    assert "ab12cd34" in build_error("boom", reference="ab12cd34")["text"]


def test_notice_keeps_our_own_markup() -> None:
    notice = check_message(build_notice("Created job `x`; its card is in <#C0123>."))
    assert "<#C0123>" in notice["blocks"][0]["text"]["text"]


# ---------------------------------------------------------------- create modal


def test_blank_modal_defaults() -> None:
    view = check_view(build_create_modal(metadata='{"stage":"form"}', now=NOW))
    assert view["callback_id"] == CallbackId.CREATE_FORM
    assert view["private_metadata"] == '{"stage":"form"}'
    by_id = {b.get("block_id"): b for b in view["blocks"]}
    action = by_id[BlockId.ACTION]
    assert action["dispatch_action"] is True
    assert action["element"]["action_id"] == ActionId.ACTION_SELECT
    assert action["element"]["initial_option"]["value"] == "MOVE"
    assert "initial_option" not in by_id[BlockId.DESTINATION]["element"]  # the analyst must choose
    assert by_id[BlockId.DESTINATION]["optional"] is False
    assert by_id[BlockId.START]["element"]["initial_date_time"] == int((NOW - timedelta(days=7)).timestamp())
    assert by_id[BlockId.END]["element"]["initial_date_time"] == int(NOW.timestamp())
    assert "initial_options" not in by_id[BlockId.DETECTIONS_ONLY]["element"]
    for block_id in (
        BlockId.SENDER,
        BlockId.RECIPIENT,
        BlockId.DOMAIN,
        BlockId.SUBJECT,
        BlockId.EXACT_SUBJECT,
        BlockId.MESSAGE_ID,
        BlockId.ALERT_ID,
        BlockId.QUERY,
        BlockId.FINAL_DISPOSITION,
        BlockId.DELIVERY_STATUS,
        BlockId.COMMENT,
    ):
        assert by_id[block_id]["optional"] is True
    assert by_id[BlockId.COMMENT]["element"]["multiline"] is True


def test_release_modal_hides_destination() -> None:
    view = check_view(build_create_modal(metadata="{}", action="RELEASE", now=NOW))
    ids = {b.get("block_id") for b in view["blocks"]}
    assert BlockId.DESTINATION not in ids
    action = next(b for b in view["blocks"] if b.get("block_id") == BlockId.ACTION)
    assert action["element"]["initial_option"]["value"] == "RELEASE"


def test_unknown_action_falls_back_to_move() -> None:
    view = check_view(build_create_modal(metadata="{}", action="DESTROY", now=NOW))
    assert BlockId.DESTINATION in {b.get("block_id") for b in view["blocks"]}


def test_modal_prefills_from_a_draft_and_action_overrides_it() -> None:
    draft = make_draft(
        destination=Destination.JUNK_EMAIL,
        subject="Invoice",
        final_disposition="MALICIOUS",
        delivery_status="delivered",
        detections_only=True,
        comment="line 1\nline 2",
    )
    view = check_view(build_create_modal(metadata="{}", draft=draft, now=NOW))
    by_id = {b.get("block_id"): b for b in view["blocks"]}
    assert by_id[BlockId.DESTINATION]["element"]["initial_option"]["value"] == "JunkEmail"
    assert by_id[BlockId.SUBJECT]["element"]["initial_value"] == "Invoice"
    assert by_id[BlockId.FINAL_DISPOSITION]["element"]["initial_option"]["value"] == "MALICIOUS"
    assert by_id[BlockId.DETECTIONS_ONLY]["element"]["initial_options"][0]["value"] == "detections_only"
    assert by_id[BlockId.COMMENT]["element"]["initial_value"] == "line 1\nline 2"
    switched = check_view(build_create_modal(metadata="{}", draft=draft, action="RELEASE", now=NOW))
    assert BlockId.DESTINATION not in {b.get("block_id") for b in switched["blocks"]}
    from_draft = check_view(
        build_create_modal(metadata="{}", draft=make_draft(ActionType.RELEASE, None), now=NOW)
    )
    assert BlockId.DESTINATION not in {b.get("block_id") for b in from_draft["blocks"]}


def test_modal_with_oversized_prefill_stays_valid() -> None:
    draft = make_draft(subject="s" * 2500, comment="c" * 2500)
    check_view(build_create_modal(metadata="{}", draft=draft, now=NOW))


def test_modal_block_ids_are_stable_across_action_switches() -> None:
    """views.update keeps typed values only for inputs whose block_id and action_id are unchanged."""
    move = build_create_modal(metadata="{}", action="MOVE", now=NOW)
    release = build_create_modal(metadata="{}", action="RELEASE", now=NOW)
    move_ids = [(b.get("block_id"), b.get("element", {}).get("action_id")) for b in move["blocks"]]
    release_ids = [(b.get("block_id"), b.get("element", {}).get("action_id")) for b in release["blocks"]]
    assert [i for i in move_ids if i[0] != BlockId.DESTINATION] == release_ids


# ---------------------------------------------------------------- previews


def test_confirmation_word() -> None:
    assert confirmation_word(make_draft()) is None
    assert confirmation_word(make_draft(destination=Destination.RECOVERABLE_ITEMS_PURGES)) == "PURGE"
    assert confirmation_word(make_draft(ActionType.RELEASE, None)) == "RELEASE"


def test_preview_view_for_a_plain_move() -> None:
    view = check_view(
        build_preview_view(metadata="m", draft=make_draft(), preview=make_result(3), limit=1000, now=NOW)
    )
    assert view["callback_id"] == CallbackId.CREATE_PREVIEW
    assert view["submit"]["text"] == "Create job"
    text = all_text(view)
    assert "Move to Deleted Items" in text and "3 messages" in text
    assert BlockId.CONFIRM_WORD not in {b.get("block_id") for b in view["blocks"]}
    assert find_buttons(view, ActionId.EDIT_DRAFT)


@pytest.mark.parametrize(
    ("draft", "word"),
    [
        (make_draft(destination=Destination.RECOVERABLE_ITEMS_PURGES), "PURGE"),
        (make_draft(ActionType.RELEASE, None), "RELEASE"),
    ],
)
def test_preview_view_demands_the_word_for_dangerous_drafts(draft: JobDraft, word: str) -> None:
    view = check_view(
        build_preview_view(metadata="m", draft=draft, preview=make_result(2), limit=1000, now=NOW)
    )
    confirm = next(b for b in view["blocks"] if b.get("block_id") == BlockId.CONFIRM_WORD)
    assert confirm["type"] == "input" and confirm["optional"] is False
    assert word in confirm["label"]["text"]
    assert confirm["element"]["action_id"] == ActionId.CONFIRM_WORD
    assert view["submit"]["text"] != "Create job"


def test_preview_says_more_than_when_capped() -> None:
    view = check_view(
        build_preview_view(
            metadata="m", draft=make_draft(), preview=make_result(5, capped=True), limit=1000, now=NOW
        )
    )
    assert "more than 5 messages" in all_text(view)
    empty = check_view(
        build_preview_view(
            metadata="m", draft=make_draft(), preview=make_result(0, capped=True), limit=1000, now=NOW
        )
    )
    assert "more than 1,000 messages" in all_text(empty)


def test_preview_with_no_match_says_so() -> None:
    view = check_view(
        build_preview_view(metadata="m", draft=make_draft(), preview=make_result(0), limit=10, now=NOW)
    )
    assert "No messages match" in all_text(view)


def test_preview_shows_at_most_five_escaped_samples() -> None:
    result = make_result(40, subject=EVIL)
    view = check_view(
        build_preview_view(metadata="m", draft=make_draft(comment=EVIL), preview=result, limit=40, now=NOW)
    )
    assert_escaped(view)
    assert all_text(view).count("bad") <= 6 + 1  # five samples plus the sender filter
    inline = check_message(
        build_inline_preview(
            draft=make_draft(comment=EVIL), preview=result, limit=40, confirm_value="v", now=NOW
        )
    )
    assert_escaped(inline)
    assert "+1 more" in all_text(inline)


def test_preview_view_rejects_oversized_metadata() -> None:
    view = build_preview_view(
        metadata="m" * 3001, draft=make_draft(), preview=make_result(1), limit=10, now=NOW
    )
    with pytest.raises(BlockLimitError, match="private_metadata"):
        validate_view(view)


def test_inline_preview_for_a_plain_move() -> None:
    message = check_message(
        build_inline_preview(
            draft=make_draft(), preview=make_result(3), limit=1000, confirm_value='{"x":1}', now=NOW
        )
    )
    (confirm,) = find_buttons(message, ActionId.CONFIRM_CREATE)
    assert confirm["value"] == '{"x":1}' and confirm["style"] == "primary"
    (cancel,) = find_buttons(message, ActionId.DISMISS_PREVIEW)
    assert cancel["value"]


def test_inline_preview_for_purge_uses_explicit_danger_text() -> None:
    draft = make_draft(destination=Destination.RECOVERABLE_ITEMS_PURGES)
    message = check_message(
        build_inline_preview(draft=draft, preview=make_result(7), limit=1000, confirm_value="v", now=NOW)
    )
    (confirm,) = find_buttons(message, ActionId.CONFIRM_CREATE)
    assert confirm["style"] == "danger"
    assert confirm["confirm"]["text"]["text"] == "This permanently deletes 7 messages. It cannot be undone."
    assert confirm["confirm"]["style"] == "danger"
    capped = build_inline_preview(
        draft=draft, preview=make_result(3, capped=True), limit=3, confirm_value="v", now=NOW
    )
    (confirm,) = find_buttons(capped, ActionId.CONFIRM_CREATE)
    assert "more than 3 messages" in confirm["confirm"]["text"]["text"]


def test_inline_preview_for_release_warns_about_inboxes() -> None:
    message = check_message(
        build_inline_preview(
            draft=make_draft(ActionType.RELEASE, None),
            preview=make_result(1),
            limit=10,
            confirm_value="v",
            now=NOW,
        )
    )
    (confirm,) = find_buttons(message, ActionId.CONFIRM_CREATE)
    assert confirm["style"] == "danger"
    assert "inboxes" in confirm["confirm"]["text"]["text"]


def test_loading_and_result_views() -> None:
    loading = check_view(build_loading_view("Searching the mail archive for you", "Searching…"))
    assert loading["title"]["text"] == "Searching the mail arch…"
    assert "submit" not in loading
    check_view(build_result_view("Job created", "Created job `x`. Its card is in <#C0123>."))
    check_view(build_result_view("", ""))


# ---------------------------------------------------------------- validate (negative cases)


def _message(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"text": "fallback", "blocks": list(blocks)}


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"blocks": [_kit.divider()]}, "fallback"),
        ({"text": "  ", "blocks": []}, "fallback"),
        (_message(*[_kit.divider()] * 51), "51 blocks"),
        (_message({"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}), "3000"),
        (_message({"type": "section", "fields": [{"type": "mrkdwn", "text": "x" * 2001}]}), "2000"),
        (_message({"type": "section", "fields": [{"type": "mrkdwn", "text": "x"}] * 11}), "10"),
        (_message({"type": "section", "text": {"type": "mrkdwn", "text": "x"}, "acessory": {}}), "unknown"),
        (_message({"type": "frobnicate"}), "unknown block type"),
        (_message("not a block"), "not a block"),  # type: ignore[arg-type]
        (
            _message(
                _kit.actions(
                    _kit.button("a", action_id="same", value="1"),
                    _kit.button("b", action_id="same", value="2"),
                )
            ),
            "duplicate action_id",
        ),
        (
            _message(_kit.divider() | {"block_id": "b"}, _kit.divider() | {"block_id": "b"}),
            "duplicate block_id",
        ),
        (
            _message(
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "x"},
                            "action_id": "a",
                            "value": "v" * 2001,
                        }
                    ],
                }
            ),
            "2000",
        ),
        (_message({"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}), "150"),
    ],
)
def test_validate_message_rejects(payload: dict[str, Any], match: str) -> None:
    with pytest.raises(BlockLimitError, match=match):
        validate_message(payload)


def test_validate_view_rejects() -> None:
    good = build_loading_view("t", "m")
    with pytest.raises(BlockLimitError, match="modal"):
        validate_view(good | {"type": "home"})
    with pytest.raises(BlockLimitError, match="100"):
        validate_view(good | {"blocks": [_kit.divider()] * 101})
    with pytest.raises(BlockLimitError, match="title"):
        validate_view(good | {"title": {"type": "plain_text", "text": "t" * 25}})
    with pytest.raises(BlockLimitError, match="at least one block"):
        validate_view(good | {"blocks": []})
    form = build_create_modal(metadata="{}", now=NOW)
    del form["submit"]
    with pytest.raises(BlockLimitError, match="submit"):
        validate_view(form)


# ---------------------------------------------------------------- property tests

_text = st.text(min_size=0, max_size=400) | st.sampled_from([EVIL, HUGE, "&amp;", "<", ">", "&", "*_~`"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=_text, comment=_text, sender=_text, status_message=_text, status=_text)
def test_any_strings_keep_cards_valid_and_escaped(
    subject: str, comment: str, sender: str, status_message: str, status: str
) -> None:
    job = make_job(
        status=status or "PROCESSING",
        comment=comment,
        status_message=status_message,
        search_params=SearchParams(subject=subject, sender=sender, detections_only=True),
    )
    for message in (
        build_job_card(job, now=NOW),
        build_transition_reply(job, previous_status=status, now=NOW),
        build_status_card(job, tracked=True, now=NOW),
    ):
        check_message(message)
        assert_escaped(message)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=_text, comment=_text, sender=_text)
def test_any_strings_keep_previews_valid_and_escaped(subject: str, comment: str, sender: str) -> None:
    draft = make_draft(comment=comment, subject=subject or None, sender=sender or "x@example.com")
    result = SearchResult(
        messages=[
            MessageSummary.model_validate(
                {"id": "m", "from": sender, "from_name": comment, "to": [subject], "subject": subject}
            )
        ],
        capped=False,
    )
    inline = check_message(
        build_inline_preview(draft=draft, preview=result, limit=10, confirm_value="v", now=NOW)
    )
    assert_escaped(inline)
    view = check_view(build_preview_view(metadata="m", draft=draft, preview=result, limit=10, now=NOW))
    assert_escaped(view)
    check_view(build_create_modal(metadata="m", draft=draft, now=NOW))


@settings(max_examples=40, deadline=None)
@given(text=_text, limit=st.integers(min_value=0, max_value=500))
def test_safe_is_bounded_and_escaped(text: str, limit: int) -> None:
    out = _kit.safe(text, limit)
    assert len(out) <= max(limit, 1)
    assert "<" not in out and ">" not in out
    assert not re.search(r"&(?!amp;|lt;|gt;)", out)


# ---------------------------------------------------------------- invisible characters (issue 9, item 8)

# Every character Sweep must never show: direction overrides and isolates, zero-width characters,
# tag characters, C0 and C1 controls (line breaks are allowed only as `\n`), lone surrogates.
SHOWN_NEVER = sorted(INVISIBLE) + [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0)) if c != 0x0A]
HIDDEN = (
    "invoice\u202efdp.exe pay\u200bpal \u2066iso\u2069 \ufeffbom \u200d\u200c\u00ad\u2060"
    " nul\x00 bell\x07 del\x7f c1\x85\x9b tag\U000e0041"
)
HOSTILE = HIDDEN + " " + EVIL


def shown_strings(node: Any, key: str = "") -> list[str]:
    """Return every string of a payload that Slack shows (button values and metadata are never shown)."""
    if isinstance(node, dict):
        return [
            s for k, v in node.items() if k not in {"value", "private_metadata"} for s in shown_strings(v, k)
        ]
    if isinstance(node, list):
        return [s for item in node for s in shown_strings(item, key)]
    return [node] if isinstance(node, str) else []


def assert_nothing_invisible(payload: Any) -> None:
    """Fail when any shown string holds an invisible, bidi, control or lone-surrogate character."""
    for text in shown_strings(payload):
        bad = sorted(
            {f"U+{ord(ch):04X}" for ch in text if ch in INVISIBLE or (is_control(ch) and ch != "\n")}
        )
        bad += sorted({f"U+{ord(ch):04X}" for ch in text if "\ud800" <= ch <= "\udfff"})
        assert not bad, f"{bad} in {text[:120]!r}"


def test_one_definition_of_invisible_characters_is_used_by_the_grammar_the_form_and_the_blocks() -> None:
    import bot.draft
    import bot.forms
    import bot.grammar

    # The grammar and the form refuse through the draft's one check, and it reads this one set.
    assert bot.draft.INVISIBLE is INVISIBLE
    check = bot.draft.first_hidden_character
    assert bot.forms.first_hidden_character is check
    assert bot.grammar.hidden_character_problem is bot.draft.hidden_character_problem
    assert all(check(f"a{ch}b") == 1 for ch in INVISIBLE)
    brief = {
        *"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069",
        *"\u200b\u200c\u200d\u200e\u200f\ufeff\u2060",
    }
    assert brief <= INVISIBLE
    assert all(unicodedata.category(ch) == "Cf" for ch in INVISIBLE), (
        "only format characters: none is visible"
    )


def test_visible_and_one_line_remove_invisible_characters_and_neutralise_controls() -> None:
    assert visible("a\u202eb\u200bc\r\nd\re\u2028f\x00g\x85h") == "abc\nd\ne\nf g\nh"
    assert one_line("  a\u202eb\u200bc\r\nd\te\x00f\u2029 ") == "abc d e f"
    assert visible("lone \ud800 surrogate") == "lone \ufffd surrogate"
    assert visible("👨\u200d👩 emoji, naïve, שלום, مرحبا, 日本") == "👨👩 emoji, naïve, שלום, مرحبا, 日本"
    for ch in SHOWN_NEVER:
        assert ch not in one_line(f"x{ch}y"), f"U+{ord(ch):04X}"
        assert ch not in visible(f"x{ch}y"), f"U+{ord(ch):04X}"


def test_kit_text_objects_strip_invisible_characters_whatever_the_builder() -> None:
    assert _kit.mrkdwn("a\u202eb\n*c*")["text"] == "ab\n*c*"
    assert _kit.plain_text("a\u200bb")["text"] == "ab"
    assert _kit.message("fallback\u202e", [])["text"] == "fallback"
    assert _kit.header("Move\u2066 to\u2069 Junk")["text"]["text"] == "Move to Junk"
    assert _kit.safe("in\u202evoice\x00", 100) == "invoice"
    assert _kit.safe_multiline("one\u202e\r\ntwo\x00", 100) == "one\ntwo"
    assert _kit.button("Con\u200bfirm", action_id="a", value="v\u202e")["value"] == "v\u202e", (
        "values are data"
    )


def test_a_card_shows_no_invisible_character_from_cloudflare() -> None:
    job = make_job(
        comment=HOSTILE + "\nline two " + HIDDEN,
        status_message=HOSTILE,
        destination="Junk\u202eEmail",
        action_type="MO\u200bVE",
        status="PROC\u202eESSING",
        search_params=SearchParams(
            sender=HOSTILE, subject=HOSTILE, query=HOSTILE, domain=HOSTILE, detections_only=True
        ),
        requester="U0123ABC",
        cancelled_by=HOSTILE,
    )
    card = check_message(build_job_card(job, now=NOW))
    assert_nothing_invisible(card)
    assert_escaped(card)
    assert "invoicefdp.exe paypal iso bom" in all_text(card), (
        "the text is still there, only the hidden parts go"
    )
    for message in (
        build_transition_reply(job, previous_status="PEN\u2067DING", now=NOW),
        build_transition_reply(job.model_copy(update={"status": "COMPLETED"}), previous_status=None, now=NOW),
        build_status_card(seen(make_bulk(comment=HOSTILE, status_message=HOSTILE)), tracked=False, now=NOW),
    ):
        assert_nothing_invisible(check_message(message))


def test_a_list_and_previews_show_no_invisible_character_from_cloudflare() -> None:
    jobs = [
        make_bulk(i, comment=HOSTILE, status="PROCE\u200bSSING", job_id=f"job\u202e{i}") for i in range(3)
    ]
    listed = check_message(
        build_job_list(seen_all(jobs), page=1, has_more=True, status=None, action_type=None, now=NOW)
    )
    assert_nothing_invisible(listed)
    samples = SearchResult(
        messages=[
            MessageSummary.model_validate(
                {
                    "id": "m",
                    "from": "evil\u202emoc.knab@x.example",
                    "from_name": "Bank\u200b Support",
                    "to": ["vic\u2066tim@corp.example"],
                    "subject": HOSTILE,
                }
            )
        ],
        capped=False,
    )
    draft = make_draft(comment="INC-1", subject="invoice")
    inline = check_message(
        build_inline_preview(draft=draft, preview=samples, limit=10, confirm_value="v", now=NOW)
    )
    assert_nothing_invisible(inline)
    assert "evilmoc.knab@x.example" in all_text(inline)
    view = check_view(build_preview_view(metadata="m", draft=draft, preview=samples, limit=10, now=NOW))
    assert_nothing_invisible(view)


def test_errors_notices_and_status_views_show_no_invisible_character() -> None:
    for payload in (
        build_cloudflare_error(f"1000{HIDDEN}: {HOSTILE}"),
        build_budget_spent(HOSTILE),
        build_error(HOSTILE, reference="ref\u202e1"),
        build_refusal(HOSTILE),
        build_notice(HOSTILE),
        build_usage_error(UsageError(HOSTILE)),
    ):
        assert_nothing_invisible(check_message(payload))
    for view in (build_loading_view(HOSTILE, HOSTILE), build_result_view(HOSTILE, HOSTILE)):
        assert_nothing_invisible(check_view(view))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    comment=st.text(alphabet=st.sampled_from([*SHOWN_NEVER, "a", " ", "\n", "<", "&"]), max_size=200) | _text,
    subject=st.text(max_size=100),
)
def test_any_string_from_cloudflare_reaches_slack_without_invisible_characters(
    comment: str, subject: str
) -> None:
    job = make_job(comment=comment, status_message=comment, search_params=SearchParams(subject=subject))
    assert_nothing_invisible(check_message(build_job_card(job, now=NOW)))
    assert_nothing_invisible(check_message(build_transition_reply(job, previous_status=comment, now=NOW)))


# ---------------------------------------------------------------- impossible counts (issue 9, item 6)


def test_an_impossible_count_is_shown_as_unknown_with_a_note() -> None:
    assert _kit.format_count(UNKNOWN_COUNT) == "unknown"
    job = make_job(total_messages_discovered=UNKNOWN_COUNT, messages_skipped=UNKNOWN_COUNT)
    card = check_message(build_job_card(job, now=NOW))
    text = all_text(card)
    assert "Cloudflare reported an impossible count (Discovered, Skipped); shown as unknown" in text
    assert "*Discovered*\\nunknown" in text and "*Successful*\\n140" in text
    assert "Progress unknown" in text and "▓" not in text and "unknown processed" in card["text"]
    reply = check_message(
        build_transition_reply(
            job.model_copy(update={"status": "COMPLETED"}), previous_status="PROCESSING", now=NOW
        )
    )
    assert "discovered: unknown" in reply["text"] and "impossible count" in all_text(reply)
    listed = build_job_list(
        [seen(make_bulk(total_messages_discovered=2**63, messages_pending=-3))],
        page=1,
        has_more=False,
        status=None,
        action_type=None,
        now=NOW,
    )
    assert "unknown found" in all_text(listed) and "unknown pending" in all_text(listed)


def test_a_normal_card_has_no_impossible_count_note() -> None:
    assert "impossible" not in all_text(build_job_card(make_job(), now=NOW))


@pytest.mark.parametrize(
    ("raw", "count"),
    [
        (0, 0),
        (12, 12),
        (12.0, 12),
        ("12", 12),
        (2**53 - 1, 2**53 - 1),
        (2**53, UNKNOWN_COUNT),
        (2**63, UNKNOWN_COUNT),
        (-1, UNKNOWN_COUNT),
        (-5, UNKNOWN_COUNT),
        (1.5, UNKNOWN_COUNT),
        (float("inf"), UNKNOWN_COUNT),
        (float("nan"), UNKNOWN_COUNT),
        ("many", UNKNOWN_COUNT),
        ("1e3", UNKNOWN_COUNT),
        ("٣", UNKNOWN_COUNT),
        (True, UNKNOWN_COUNT),
        ([1], UNKNOWN_COUNT),
        ({}, UNKNOWN_COUNT),
        ("9" * 20, UNKNOWN_COUNT),
    ],
)
def test_cloudflare_counts_are_parsed_per_job_and_never_fail_the_parse(raw: Any, count: int) -> None:
    job = make_bulk(messages_pending=raw)
    assert job.messages_pending == count
    assert ("messages_pending" in job.impossible_counts) is (count == UNKNOWN_COUNT)
    assert job.total_messages_discovered == 10 and not set(job.impossible_counts) - {"messages_pending"}
    assert make_bulk(impossible_counts={"x": "forged"}).impossible_counts == {}


# ---------------------------------------------------------------- honest words (issue 10)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("COMPLETED", "No messages matched the search."),
        ("CANCELLED", "Cancelled before any message was discovered."),
        ("FAILED", "Failed before any message was discovered."),
        ("SKIPPED", "Skipped before any message was discovered."),
        # An unknown status is treated as active (never dropped from tracking): still searching.
        ("ARCHIVED", "Searching for matching messages…"),
    ],
)
def test_a_job_that_ended_with_nothing_discovered_says_how_it_ended(status: str, expected: str) -> None:
    job = make_job(status=status, total_messages_discovered=0, messages_pending=0, messages_successful=0)
    card = all_text(check_message(build_job_card(job, now=NOW)))
    assert expected in card
    if status != "COMPLETED":
        assert "No messages matched" not in card


def test_a_job_deleted_before_discovery_says_so() -> None:
    job = make_job(status="PENDING", total_messages_discovered=0, messages_pending=0, gone=True)
    card = all_text(check_message(build_job_card(job, now=NOW)))
    assert "Deleted at Cloudflare before any message was discovered." in card
    assert "No messages matched" not in card and "Searching" not in card


def test_card_and_thread_reply_word_the_outcome_alike() -> None:
    job = make_job(status="COMPLETED", messages_pending=0, messages_failed=2, messages_successful=10)
    card = all_text(build_job_card(job, now=NOW))
    reply = build_transition_reply(job, previous_status="PROCESSING", now=NOW)
    assert ":white_check_mark: Completed with 2 failures" in card
    assert ":white_check_mark: Completed with 2 failures" in all_text(reply)
    assert "Processing → Completed with 2 failures" in reply["text"]
    assert "Completed, 200/200 processed, 2 failed" in build_job_card(job, now=NOW)["text"]
    first = all_text(build_transition_reply(job, previous_status=None, now=NOW))
    assert ":white_check_mark: Completed with 2 failures" in first


def test_job_list_words_the_outcome_like_the_card() -> None:
    job = make_bulk(status="COMPLETED", messages_failed=2, messages_pending=0)
    listed = build_job_list([seen(job)], page=1, has_more=False, status=None, action_type=None, now=NOW)
    assert "Completed with 2 failures" in all_text(check_message(listed))


# ---------------------------------------------------------------- auto-cancel past the agreed maximum


def test_a_job_cancelled_past_its_agreed_maximum_says_so_on_its_card() -> None:
    job = make_job(status="CANCELLED", total_messages_discovered=1600, agreed_max=1100, overshoot=1523)
    card = check_message(build_job_card(job, now=NOW))
    text = json.dumps(card["blocks"])
    assert "Discovered 1,523 messages, agreed at most 1,100: cancelled automatically." in text
    assert "Messages already moved stay moved." in text
    assert action_ids(card) == []  # finished: no Cancel button
    # Not cancelled for that reason (or created elsewhere): no such line.
    for plain in (make_job(agreed_max=1100), make_job(status="CANCELLED", cancelled_by="U0123ABC")):
        assert "cancelled automatically" not in json.dumps(build_job_card(plain, now=NOW))


def test_a_release_past_its_agreed_maximum_says_released_messages_stay_released() -> None:
    job = make_job(action_type="RELEASE", destination=None, agreed_max=6, overshoot=9)
    assert auto_cancel_line(job, discovered=9, agreed_max=6).endswith(
        "Messages already released stay released."
    )


def test_the_auto_cancel_reply_gives_both_figures_once_in_text_and_blocks() -> None:
    job = make_job(job_id=EVIL, status="CANCELLED", agreed_max=105, overshoot=240)
    reply = check_message(build_auto_cancel_reply(job, discovered=240, agreed_max=105, now=NOW))
    assert "discovered 240 messages, agreed at most 105: cancelled automatically" in reply["text"]
    assert "Discovered 240 messages, agreed at most 105" in json.dumps(reply["blocks"])
    assert_escaped(reply)
