"""Pure parts of the notifier: metadata shapes and keys, the job a reply shows.

The Slack port (error mapping, history search) is tested against the local Slack over HTTP in
tests/component/test_slack_port.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bot.models import TrackedJob
from bot.outbox.kinds import _reply_job, card_metadata, transition_metadata
from bot.slack_port import metadata_key

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_metadata_shapes_and_keys() -> None:
    assert card_metadata("j1") == {"event_type": "sweep_card", "event_payload": {"job_id": "j1"}}
    reply = transition_metadata("j1", "PENDING->PROCESSING")
    assert reply["event_type"] == "sweep_transition"
    assert metadata_key(reply["event_payload"]) == "j1|PENDING->PROCESSING"
    assert metadata_key(card_metadata("j1")["event_payload"]) == "j1"


def test_reply_shows_the_state_at_the_transition() -> None:
    job = TrackedJob(
        job_id="j1",
        account_id="a",
        action_type="MOVE",
        status="COMPLETED",
        messages_successful=10,
        created_at=T0,
        updated_at=T0,
        gone=True,
    )
    at_transition = _reply_job(
        job,
        {
            "previous": "PENDING",
            "status": "PROCESSING",
            "state": {"status": "PROCESSING", "messages_successful": 3},
        },
    )
    assert (at_transition.status, at_transition.messages_successful, at_transition.gone) == (
        "PROCESSING",
        3,
        False,
    )
    assert _reply_job(job, {"previous": "PROCESSING", "status": "PROCESSING", "gone": True}) is job
