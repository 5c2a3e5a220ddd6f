"""Schema version 3 (issue 11): an outbox row's target may be a thread or a user.

`thread_ts` and `user_id` target a row that belongs to no job (a reply in a thread, a DM); a row
needs a job, a channel or a user; a notice row's kind becomes the notice's own name
(`create_not_made`). SQLite rebuilds the outbox with every row copied (ids kept);
PostgreSQL adds the columns and swaps the check.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TARGET = "job_id IS NOT NULL OR channel_id IS NOT NULL OR user_id IS NOT NULL"
_V2_OUTBOX = (
    "id, job_id, channel_id, kind, key, payload, state, seq, attempts, due_at, slack_ts, last_error, "
    "created_at, updated_at"
)


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def _rebuild_sqlite() -> None:
    op.create_table(
        "outbox_v3",
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
        sa.Column("thread_ts", sa.Text),
        sa.Column("user_id", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(["job_id"], ["tracked_jobs.job_id"], name="fk_outbox_job_id"),
        sa.UniqueConstraint("job_id", "kind", "key", name="uq_outbox_job_id_kind_key"),
        sa.CheckConstraint("state IN ('pending', 'attempting', 'sent', 'failed')", name="ck_outbox_state"),
        sa.CheckConstraint(_TARGET, name="ck_outbox_target"),
        sqlite_autoincrement=True,
    )
    op.execute(f"INSERT INTO outbox_v3 ({_V2_OUTBOX}) SELECT {_V2_OUTBOX} FROM outbox")  # noqa: S608
    op.drop_table("outbox")
    op.rename_table("outbox_v3", "outbox")
    op.create_index("outbox_due", "outbox", ["due_at"], **_where("state IN ('pending', 'attempting')"))
    op.create_index(
        "outbox_unique_notice", "outbox", ["kind", "key"], unique=True, **_where("job_id IS NULL")
    )


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        _rebuild_sqlite()
        # A notice's kind is now the notice itself (kinds are registered in `bot.outbox`).
        op.execute(
            "UPDATE outbox SET kind = COALESCE(json_extract(payload, '$.notice'), kind) WHERE kind = 'notice'"
        )
        return
    op.add_column("outbox", sa.Column("thread_ts", sa.Text))
    op.add_column("outbox", sa.Column("user_id", sa.Text))
    op.drop_constraint("ck_outbox_target", "outbox", type_="check")
    op.create_check_constraint("ck_outbox_target", "outbox", _TARGET)
    op.execute("UPDATE outbox SET kind = COALESCE(payload::json ->> 'notice', kind) WHERE kind = 'notice'")


def downgrade() -> None:
    raise NotImplementedError("Sweep's migrations go forward only: restore a backup to go back")
