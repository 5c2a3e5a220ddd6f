"""Schema version 6 (issue 13): one Cloudflare request budget per account, shared by every replica.

`cloudflare_budget`: one row per account (made at its first request). `n0`…`n10` count the requests
reserved in 30-second slices of the database clock, as a ring (`head` is the newest slice written);
`paused_until` is when the pause a 429 started ends (epoch seconds, database clock); `checked_at` and
`granted` are the latest reservation's time and answer, read back by its `RETURNING`. A new table
only: every existing row is kept, on both backends.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SLICES = 11  # as bot/store/schema.py's BUDGET_SLICES when this revision was written


def upgrade() -> None:
    op.create_table(
        "cloudflare_budget",
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("head", sa.Integer, nullable=False, server_default=sa.text("0")),
        *(sa.Column(f"n{i}", sa.Integer, nullable=False, server_default=sa.text("0")) for i in range(SLICES)),
        sa.Column("paused_until", sa.Float),
        sa.Column("checked_at", sa.Float),
        sa.Column("granted", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("account_id", name="pk_cloudflare_budget"),
    )


def downgrade() -> None:
    raise NotImplementedError("Sweep's migrations go forward only: restore a backup to go back")
