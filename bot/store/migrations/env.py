"""Alembic environment, run only programmatically (`bot.store.migrate`): no alembic.ini.

The caller hands over an open connection in a transaction (`config.attributes["connection"]`):
every pending revision runs in that one transaction, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from alembic import context

from bot.store.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
