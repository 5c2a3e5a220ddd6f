"""Schema version 2 (issue 9): ambiguous creates, stored use-once previews, remembered requests, notices.

Creates whose outcome is unknown stay open as 'ambiguous' and are re-checked on a schedule;
previews are stored server-side and used once; duplicate Slack requests are remembered; an outbox
row may exist before any job (a notice to a channel). SQLite cannot alter a constraint, so there
the two changed tables are rebuilt with every row copied; PostgreSQL alters them in place.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_INTENT_STATE = "state IN ('open', 'ambiguous', 'done', 'failed')"
_TARGET = "job_id IS NOT NULL OR channel_id IS NOT NULL"


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def _intent_columns() -> list[sa.Column[object]]:
    zero = sa.text("0")
    return [
        sa.Column("tag", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("requester", sa.Text, nullable=False),
        sa.Column("channel_id", sa.Text, nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("job_id", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("preview_id", sa.Text),
        sa.Column("checks", sa.Integer, nullable=False, server_default=zero),
        sa.Column("misses", sa.Integer, nullable=False, server_default=zero),
        sa.Column("next_check_at", sa.Float),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    ]


def _outbox_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("job_id", sa.Text),
        sa.Column("channel_id", sa.Text),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("state", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("seq", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("slack_ts", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
    ]


_V1_INTENT = "tag, account_id, requester, channel_id, request, state, job_id, error, created_at, updated_at"
_V1_OUTBOX = (
    "id, job_id, kind, key, payload, state, seq, attempts, due_at, slack_ts, last_error, "
    "created_at, updated_at"
)


def _rebuild_sqlite() -> None:
    op.create_table(
        "create_intents_v2",
        *_intent_columns(),
        sa.PrimaryKeyConstraint("tag", name="pk_create_intents"),
        sa.CheckConstraint(_INTENT_STATE, name="ck_create_intents_state"),
    )
    op.execute(f"INSERT INTO create_intents_v2 ({_V1_INTENT}) SELECT {_V1_INTENT} FROM create_intents")  # noqa: S608
    op.drop_table("create_intents")
    op.rename_table("create_intents_v2", "create_intents")

    op.create_table(
        "outbox_v2",
        *_outbox_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(["job_id"], ["tracked_jobs.job_id"], name="fk_outbox_job_id"),
        sa.UniqueConstraint("job_id", "kind", "key", name="uq_outbox_job_id_kind_key"),
        sa.CheckConstraint("state IN ('pending', 'attempting', 'sent', 'failed')", name="ck_outbox_state"),
        sa.CheckConstraint(_TARGET, name="ck_outbox_target"),
        sqlite_autoincrement=True,
    )
    op.execute(f"INSERT INTO outbox_v2 ({_V1_OUTBOX}) SELECT {_V1_OUTBOX} FROM outbox")  # noqa: S608
    op.drop_table("outbox")
    op.rename_table("outbox_v2", "outbox")
    op.create_index("outbox_due", "outbox", ["due_at"], **_where("state IN ('pending', 'attempting')"))


def _alter_postgresql() -> None:
    op.drop_index("create_intents_open", table_name="create_intents")
    op.drop_constraint("ck_create_intents_state", "create_intents", type_="check")
    op.create_check_constraint("ck_create_intents_state", "create_intents", _INTENT_STATE)
    for column in _intent_columns()[8:12]:
        op.add_column("create_intents", column)

    op.alter_column("outbox", "job_id", nullable=True)
    op.add_column("outbox", sa.Column("channel_id", sa.Text))
    op.drop_constraint("ck_outbox_kind", "outbox", type_="check")
    op.create_check_constraint("ck_outbox_target", "outbox", _TARGET)


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        _rebuild_sqlite()
    else:
        _alter_postgresql()
    op.create_index(
        "create_intents_unresolved",
        "create_intents",
        ["created_at"],
        **_where("state IN ('open', 'ambiguous')"),
    )
    # NULLs are distinct in a UNIQUE constraint: rows without a job are unique by kind and key.
    op.create_index(
        "outbox_unique_notice", "outbox", ["kind", "key"], unique=True, **_where("job_id IS NULL")
    )

    op.create_table(
        "previews",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("requester", sa.Text, nullable=False),
        sa.Column("channel_id", sa.Text, nullable=False),
        sa.Column("draft", sa.Text),
        sa.Column("request_hash", sa.Text),
        sa.Column("matched", sa.Integer),
        sa.Column("capped", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("tag", sa.Text),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_previews"),
        sa.CheckConstraint("state IN ('form', 'previewed', 'used')", name="ck_previews_state"),
    )
    op.create_index("previews_expiry", "previews", ["expires_at"])

    op.create_table(
        "seen_requests",
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_seen_requests"),
    )
    op.create_index("seen_requests_at", "seen_requests", ["at"])


def downgrade() -> None:
    raise NotImplementedError("Sweep's migrations go forward only: restore a backup to go back")
