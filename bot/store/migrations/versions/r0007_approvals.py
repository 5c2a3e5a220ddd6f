"""Schema version 7 (issue 12): approval requests, and the sample messages a preview showed.

`approvals`: a job that needs a second person, stored when its requester confirms — the canonical
request and its hash, the previewed count and samples, the reasons, requester, channel,
justification, agreed maximum, expiry, state and decider. `previews.samples` (nullable): the first
sample messages a preview showed, so an approval request shows what the requester saw. A new table
and a nullable column: every row is kept as it is, on both backends.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_PENDING = "state = 'pending'"


def upgrade() -> None:
    op.add_column("previews", sa.Column("samples", sa.Text))
    op.create_table(
        "approvals",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("preview_id", sa.Text, nullable=False),
        sa.Column("requester", sa.Text, nullable=False),
        sa.Column("channel_id", sa.Text, nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("justification", sa.Text, nullable=False),
        sa.Column("matched", sa.Integer, nullable=False),
        sa.Column("capped", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("samples", sa.Text, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("reasons", sa.Text, nullable=False, server_default=sa.text("'[]'")),
        sa.Column("agreed_max", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("decided_by", sa.Text),
        sa.Column("decided_at", sa.Text),
        sa.Column("note", sa.Text),
        sa.Column("tag", sa.Text),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
        sa.UniqueConstraint("preview_id", name="uq_approvals_preview_id"),
        sa.UniqueConstraint("tag", name="uq_approvals_tag"),
        sa.CheckConstraint(
            "state IN ('pending', 'approved', 'rejected', 'expired')", name="ck_approvals_state"
        ),
    )
    op.create_index(
        "approvals_pending",
        "approvals",
        ["expires_at"],
        sqlite_where=sa.text(_PENDING),
        postgresql_where=sa.text(_PENDING),
    )


def downgrade() -> None:
    raise NotImplementedError("Sweep's migrations go forward only: restore a backup to go back")
