"""Schema version 4 (issue 12): the agreed maximum of a job Sweep creates, and its automatic cancel.

`create_intents.agreed_max` and `tracked_jobs.agreed_max`: how many messages a job created from a
preview may discover (the previewed count plus the margin) before Sweep cancels it; NULL for jobs
created elsewhere and watched, and for rows made before this revision. `tracked_jobs.overshoot`:
how many messages the job had discovered when Sweep cancelled it for going past that maximum (NULL:
never). Nullable columns only: every row is kept as it is, on both backends.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("create_intents", sa.Column("agreed_max", sa.Integer))
    op.add_column("tracked_jobs", sa.Column("agreed_max", sa.Integer))
    op.add_column("tracked_jobs", sa.Column("overshoot", sa.Integer))


def downgrade() -> None:
    raise NotImplementedError("Sweep's migrations go forward only: restore a backup to go back")
