"""Schema version 1: tracked jobs, create intents, the append-only audit log, the job outbox.

Revision ID: 0001
Revises: -
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from bot.store.schema import AUDIT_APPEND_ONLY

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _where(condition: str) -> dict[str, Any]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    zero = sa.text("0")
    op.create_table(
        "tracked_jobs",
        sa.Column("job_id", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("action_type", sa.Text, nullable=False),
        sa.Column("destination", sa.Text),
        sa.Column("search_params", sa.Text, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("requester", sa.Text),
        sa.Column("channel_id", sa.Text),
        sa.Column("card_ts", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("total_messages_discovered", sa.Integer, nullable=False, server_default=zero),
        sa.Column("messages_pending", sa.Integer, nullable=False, server_default=zero),
        sa.Column("messages_successful", sa.Integer, nullable=False, server_default=zero),
        sa.Column("messages_failed", sa.Integer, nullable=False, server_default=zero),
        sa.Column("messages_cancelled", sa.Integer),
        sa.Column("messages_skipped", sa.Integer),
        sa.Column("status_message", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("started_at", sa.Text),
        sa.Column("completed_at", sa.Text),
        sa.Column("cancelled_by", sa.Text),
        sa.Column("gone", sa.Integer, nullable=False, server_default=zero),
        sa.Column("card_dead", sa.Integer, nullable=False, server_default=zero),
        sa.Column("last_error", sa.Text),
        sa.Column("terminal", sa.Integer, nullable=False, server_default=zero),
        sa.Column("tracked_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_tracked_jobs"),
    )
    op.create_index("tracked_jobs_active", "tracked_jobs", ["job_id", "status"], **_where("terminal = 0"))
    op.create_index("tracked_jobs_recent", "tracked_jobs", ["tracked_at"])

    op.create_table(
        "create_intents",
        sa.Column("tag", sa.Text, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("requester", sa.Text, nullable=False),
        sa.Column("channel_id", sa.Text, nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("job_id", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("tag", name="pk_create_intents"),
        sa.CheckConstraint("state IN ('open', 'done', 'failed')", name="ck_create_intents_state"),
    )
    op.create_index("create_intents_open", "create_intents", ["created_at"], **_where("state = 'open'"))

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("at", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("job_id", sa.Text),
        sa.Column("channel_id", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
        sqlite_autoincrement=True,
    )
    op.create_index("audit_log_job", "audit_log", ["job_id", "id"])
    for statement in AUDIT_APPEND_ONLY[op.get_context().dialect.name]:
        op.execute(statement)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("job_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False, server_default=sa.text("'{}'")),
        sa.Column("state", sa.Text, nullable=False, server_default=sa.text("'pending'")),
        sa.Column("seq", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=zero),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("slack_ts", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(["job_id"], ["tracked_jobs.job_id"], name="fk_outbox_job_id"),
        sa.UniqueConstraint("job_id", "kind", "key", name="uq_outbox_job_id_kind_key"),
        sa.CheckConstraint("kind IN ('card_post', 'card_update', 'transition')", name="ck_outbox_kind"),
        sa.CheckConstraint("state IN ('pending', 'attempting', 'sent', 'failed')", name="ck_outbox_state"),
        sqlite_autoincrement=True,
    )
    op.create_index("outbox_due", "outbox", ["due_at"], **_where("state IN ('pending', 'attempting')"))


def downgrade() -> None:
    raise NotImplementedError("Sweep's migrations go forward only: restore a backup to go back")
