"""Schema version 5 (issue 13): an outbox row may be claimed by one replica's notifier until a time.

`claimed_until` (epoch seconds, NULL when unclaimed): a notifier claims the due rows it is about to
deliver (`SELECT … FOR UPDATE SKIP LOCKED` on PostgreSQL), and no other replica takes them before
the claim runs out; a replica that died mid-delivery leaves the row to be recovered after that.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("claimed_until", sa.Float))


def downgrade() -> None:
    raise NotImplementedError("Sweep's migrations go forward only: restore a backup to go back")
