"""Schema management: Alembic revisions shipped in the package, applied in one transaction.

A database made before Alembic (a `schema_version` table, version 1 or 2, no `alembic_version`)
is adopted: stamped at the matching revision and upgraded in place, every row kept. A database
newer than this code is refused with one line. On SQLite the old `schema_version` table is kept at
the newest version too, so an older Sweep opening the file refuses it instead of misreading it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

# Sweep logs each step itself, in one line; Alembic's own INFO lines (some at import) stay out.
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from alembic.util.exc import CommandError  # noqa: E402
from sqlalchemy import inspect, text  # noqa: E402
from sqlalchemy.engine import Connection  # noqa: E402

from bot.store.models import StoreError  # noqa: E402

log = logging.getLogger("sweep.store")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
LEGACY_TABLE = "schema_version"
# The revision matching each schema version of the releases before Alembic.
LEGACY_REVISIONS = {1: "0001", 2: "0002"}
# Several replicas may start at once on PostgreSQL: one migrates, the others wait and find it done.
_PG_LOCK = 0x53_57_45_45_50  # "SWEEP"


def alembic_config(connection: Connection | None = None) -> Config:
    """Return the programmatic Alembic configuration (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_version() -> int:
    """Return the schema version this code ships (the head revision's number)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # noqa: S101 - the package ships its revisions
    return int(head)


def current_version(connection: Connection) -> int:
    """Return the schema version of the database (0: nothing applied yet)."""
    revision = MigrationContext.configure(connection).get_current_revision()
    return 0 if revision is None else int(revision)


def _legacy_version(connection: Connection) -> int | None:
    if LEGACY_TABLE not in inspect(connection).get_table_names():
        return None
    value = connection.execute(text(f"SELECT MAX(version) FROM {LEGACY_TABLE}")).scalar()  # noqa: S608
    return None if value is None else int(value)


def _newer(found: int | str, head: int) -> StoreError:
    found = int(found) if str(found).isdigit() else found
    return StoreError(f"database schema is at version {found}, newer than this Sweep ({head}): upgrade Sweep")


def upgrade(connection: Connection, target: str = "head") -> int:
    """Bring the schema to `target` inside the caller's transaction; return the resulting version."""
    if connection.dialect.name == "postgresql":
        connection.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK})"))
    config = alembic_config(connection)
    script = ScriptDirectory.from_config(config)
    head = head_version()
    revision = MigrationContext.configure(connection).get_current_revision()
    legacy = _legacy_version(connection)
    if revision is not None:
        try:
            script.get_revision(revision)
        except CommandError:
            raise _newer(revision, head) from None
    if legacy is not None and legacy > head:
        raise _newer(legacy, head)
    if revision is None and legacy is not None and legacy > 0:
        if legacy not in LEGACY_REVISIONS:
            raise _newer(legacy, max(LEGACY_REVISIONS))
        command.stamp(config, LEGACY_REVISIONS[legacy])
        log.info("database adopted at schema version %d", legacy)
    before = current_version(connection)
    command.upgrade(config, target)
    after = current_version(connection)
    for version in range(before + 1, after + 1):
        log.info("database migrated to schema version %d", version)
    if connection.dialect.name == "sqlite":
        _keep_legacy_table(connection, after)
    return after


def _keep_legacy_table(connection: Connection, version: int) -> None:
    connection.execute(
        text(
            f"CREATE TABLE IF NOT EXISTS {LEGACY_TABLE} "
            "(version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
    )
    connection.execute(
        text(f"INSERT OR IGNORE INTO {LEGACY_TABLE} (version, applied_at) VALUES (:version, :at)"),  # noqa: S608
        {"version": version, "at": datetime.now(UTC).isoformat()},
    )
