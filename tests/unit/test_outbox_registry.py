"""The delivery-kind registry: each kind registered once; bad or unknown kinds are clear errors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.models import TrackedJob
from bot.outbox import KINDS, Kind, KindError, Recovery, Registry, Target, UnknownKindError
from bot.outbox.kinds import approval_metadata, card_metadata, notice_metadata, transition_metadata
from bot.store import OutboxItem, OutboxState


def render(payload: Mapping[str, Any], job: TrackedJob | None, now: datetime) -> dict[str, Any]:
    return {"text": str(payload.get("text")), "blocks": []}


RECOVERY = Recovery("sweep_test", lambda item: {"job_id": item.key})


def item(kind: str, key: str = "k1", job_id: str | None = "j1") -> OutboxItem:
    return OutboxItem(
        id=1,
        job_id=job_id,
        kind=kind,
        key=key,
        state=OutboxState.PENDING,
        seq=1,
        attempts=0,
        payload={},
        channel_id="C1",
        card_ts=None,
    )


def test_a_kind_cannot_be_registered_twice() -> None:
    registry = Registry([Kind("export_ready", Target.USER, render, RECOVERY)])
    with pytest.raises(KindError, match="'export_ready' is already registered"):
        registry.register(Kind("export_ready", Target.CHANNEL, render, RECOVERY))
    assert registry.get("export_ready").target is Target.USER  # the first registration stands
    with pytest.raises(KindError, match="'card_post' is already registered"):
        KINDS.copy().register(Kind("card_post", Target.CHANNEL, render, RECOVERY))


def test_an_unknown_kind_is_a_clear_error_naming_the_known_ones() -> None:
    with pytest.raises(UnknownKindError) as raised:
        KINDS.get("export_ready")
    message = str(raised.value)
    assert "no delivery kind 'export_ready' is registered" in message
    assert "card_post" in message and "create_not_made" in message and "approval_request" in message
    assert raised.value.name == "export_ready"
    assert "export_ready" not in KINDS


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        (lambda: Kind("Bad Name", Target.CHANNEL, render, RECOVERY), "lower_snake_case"),
        (lambda: Kind("reply", Target.CARD_THREAD, render, RECOVERY), "must wait for the card"),
        (lambda: Kind("edit", Target.CARD, render, RECOVERY, rearmable=True), "must wait for the card"),
        (
            lambda: Kind("repost", Target.CHANNEL, render, RECOVERY, rearmable=True),
            "only an edit can be re-armed",
        ),
        (lambda: Kind("card2", Target.CHANNEL, render, RECOVERY, records_card=True), "can become the card"),
        (
            lambda: Kind(
                "card3", Target.JOB_CHANNEL, render, RECOVERY, records_card=True, waits_for_card=True
            ),
            "can become the card",
        ),
        (lambda: Kind("edit2", Target.MESSAGE, render, RECOVERY), "go together"),
        (lambda: Kind("edit3", Target.CHANNEL, render, RECOVERY, edits="card_post"), "go together"),
    ],
    ids=[
        "name",
        "thread-without-wait",
        "edit-without-wait",
        "rearmed-post",
        "card-elsewhere",
        "card-waits",
        "message-edit-of-nothing",
        "post-that-edits",
    ],
)
def test_a_bad_definition_is_refused_at_registration(kind: Any, problem: str) -> None:
    with pytest.raises(KindError, match=problem):
        kind()


def test_todays_kinds_are_registered_once_each_with_their_rules() -> None:
    assert {k.name for k in KINDS} == {
        "card_post",
        "card_update",
        "transition",
        "auto_cancel",
        "create_not_made",
        "approval_request",
        "approval_update",
    }
    post, update, reply, notice = (
        KINDS.get(n) for n in ("card_post", "card_update", "transition", "create_not_made")
    )
    auto = KINDS.get("auto_cancel")
    assert (auto.target, auto.rearmable, auto.waits_for_card) == (Target.CARD_THREAD, False, True)
    assert (post.target, post.records_card, post.waits_for_card) == (Target.JOB_CHANNEL, True, False)
    assert (update.target, update.rearmable, update.waits_for_card) == (Target.CARD, True, True)
    assert (reply.target, reply.rearmable, reply.waits_for_card) == (Target.CARD_THREAD, False, True)
    assert (notice.target, notice.waits_for_card) == (Target.CHANNEL, False)
    request, edit = KINDS.get("approval_request"), KINDS.get("approval_update")
    assert (request.target, request.rearmable, request.waits_for_card) == (Target.CHANNEL, False, False)
    assert (edit.target, edit.rearmable, edit.edits) == (Target.MESSAGE, True, "approval_request")
    # Only the card post and row-targeted kinds go before the card exists.
    assert KINDS.card_free() == {"card_post", "create_not_made", "approval_request"}


def test_recovery_metadata_is_what_cards_replies_and_notices_carry() -> None:
    assert KINDS.get("card_post").recovery.metadata(item("card_post", "card")) == card_metadata("j1")
    assert KINDS.get("card_update").recovery.metadata(item("card_update", "card")) == card_metadata("j1")
    reply = KINDS.get("transition").recovery
    assert reply.metadata(item("transition", "PENDING->PROCESSING")) == transition_metadata(
        "j1", "PENDING->PROCESSING"
    )
    assert reply.key(item("transition", "PENDING->PROCESSING")) == "j1|PENDING->PROCESSING"
    notice = KINDS.get("create_not_made").recovery
    assert notice.metadata(item("create_not_made", "create:t1", None)) == notice_metadata("create:t1")
    assert notice.key(item("create_not_made", "create:t1", None)) == "create:t1"
    assert notice.event_type == "sweep_notice"
    # An approval's request and its edits carry the same metadata: an edit never loses it.
    for kind in ("approval_request", "approval_update"):
        recovery = KINDS.get(kind).recovery
        assert recovery.metadata(item(kind, "approval:a1", None)) == approval_metadata("a1")
        assert recovery.key(item(kind, "approval:a1", None)) == "a1"
        assert recovery.event_type == "sweep_approval"


def test_a_copy_takes_new_kinds_without_changing_the_original() -> None:
    extended = KINDS.copy()
    extended.register(Kind("export_ready", Target.USER, render, RECOVERY))
    assert "export_ready" in extended and "export_ready" not in KINDS
    assert len(extended) == len(KINDS) + 1
    assert "export_ready" in extended.card_free()


def test_rendering_a_job_kind_without_its_job_is_refused() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="renders a tracked job"):
        KINDS.get("card_post").render({}, None, now)
    with pytest.raises(ValueError, match="renders a tracked job"):
        KINDS.get("transition").render({"previous": "PENDING"}, None, now)


def test_a_message_edit_names_a_registered_kind_whose_message_it_edits() -> None:
    registry = Registry([Kind("export_ready", Target.CHANNEL, render, RECOVERY)])
    with pytest.raises(KindError, match="edits 'nope', which is not registered"):
        registry.register(Kind("export_edit", Target.MESSAGE, render, RECOVERY, rearmable=True, edits="nope"))
    edit = registry.register(
        Kind("export_edit", Target.MESSAGE, render, RECOVERY, rearmable=True, edits="export_ready")
    )
    assert edit.target.edits and not edit.target.needs_job
    approval_update = KINDS.get("approval_update")
    assert approval_update.edits == "approval_request" and approval_update.rearmable
    assert approval_update.waits_for_card  # once its job exists it waits for the card, to link to it
    assert "approval_request" in KINDS.card_free() and "approval_update" not in KINDS.card_free()
