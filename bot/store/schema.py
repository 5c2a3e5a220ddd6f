"""Every table Sweep keeps, defined once (SQLAlchemy Core), as the newest migration leaves them.

Types are dialect-neutral (TEXT, INTEGER, FLOAT): timestamps are ISO-8601 text in UTC, due times
and expiries epoch seconds, JSON documents text, flags 0/1 integers — as the SQLite files made by
earlier releases hold them, so those files are adopted without rewriting a row.

The migrations (`bot/store/migrations/versions`) build this schema step by step; a test compares
the result with these definitions on both backends.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


def _where(condition: str) -> dict[str, Any]:
    """Return the dialect options of a partial index (same condition on both backends)."""
    return {"sqlite_where": text(condition), "postgresql_where": text(condition)}


tracked_jobs = Table(
    "tracked_jobs",
    metadata,
    Column("job_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("action_type", Text, nullable=False),
    Column("destination", Text),
    Column("search_params", Text, nullable=False),
    Column("comment", Text),
    Column("requester", Text),
    Column("channel_id", Text),
    Column("card_ts", Text),
    Column("status", Text, nullable=False),
    Column("total_messages_discovered", Integer, nullable=False, server_default=text("0")),
    Column("messages_pending", Integer, nullable=False, server_default=text("0")),
    Column("messages_successful", Integer, nullable=False, server_default=text("0")),
    Column("messages_failed", Integer, nullable=False, server_default=text("0")),
    Column("messages_cancelled", Integer),
    Column("messages_skipped", Integer),
    Column("status_message", Text),
    Column("created_at", Text, nullable=False),
    Column("started_at", Text),
    Column("completed_at", Text),
    Column("cancelled_by", Text),
    Column("gone", Integer, nullable=False, server_default=text("0")),
    Column("card_dead", Integer, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("terminal", Integer, nullable=False, server_default=text("0")),
    Column("tracked_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("agreed_max", Integer),  # most messages it may discover (jobs Sweep created; revision 4)
    Column("overshoot", Integer),  # discovered when Sweep cancelled it for going past agreed_max
)
Index("tracked_jobs_active", tracked_jobs.c.job_id, tracked_jobs.c.status, **_where("terminal = 0"))
Index("tracked_jobs_recent", tracked_jobs.c.tracked_at)

INTENT_STATES = ("open", "ambiguous", "done", "failed")

create_intents = Table(
    "create_intents",
    metadata,
    Column("tag", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("requester", Text, nullable=False),
    Column("channel_id", Text, nullable=False),
    Column("request", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("job_id", Text),
    Column("error", Text),
    Column("preview_id", Text),
    Column("checks", Integer, nullable=False, server_default=text("0")),
    Column("misses", Integer, nullable=False, server_default=text("0")),
    Column("next_check_at", Float),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("agreed_max", Integer),  # the previewed count plus the margin (revision 4)
    CheckConstraint("state IN ('open', 'ambiguous', 'done', 'failed')", name="state"),
)
Index("create_intents_unresolved", create_intents.c.created_at, **_where("state IN ('open', 'ambiguous')"))

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("job_id", Text),
    Column("channel_id", Text),
    Column("outcome", Text, nullable=False),
    Column("detail", Text),
    sqlite_autoincrement=True,
)
Index("audit_log_job", audit_log.c.job_id, audit_log.c.id)

APPEND_ONLY_MESSAGE = "the audit log is append-only"

# The audit log is append-only in the database itself, whatever the code does (revision 1 applies it).
AUDIT_APPEND_ONLY: dict[str, tuple[str, ...]] = {
    "sqlite": (
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END",
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END",
    ),
    "postgresql": (
        "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$",
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()",
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()",
    ),
}

OUTBOX_STATES = ("pending", "attempting", "sent", "failed")

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", Text, ForeignKey("tracked_jobs.job_id")),
    Column("channel_id", Text),
    Column("kind", Text, nullable=False),  # validated in code: adding a kind needs no migration
    Column("key", Text, nullable=False),
    Column("payload", Text, nullable=False, server_default=text("'{}'")),
    Column("state", Text, nullable=False, server_default=text("'pending'")),
    Column("seq", Integer, nullable=False, server_default=text("1")),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("due_at", Float, nullable=False),
    Column("slack_ts", Text),
    Column("last_error", Text),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("thread_ts", Text),
    Column("user_id", Text),
    Column("claimed_until", Float),  # epoch seconds: one notifier delivers the row until then
    UniqueConstraint("job_id", "kind", "key"),
    CheckConstraint("state IN ('pending', 'attempting', 'sent', 'failed')", name="state"),
    CheckConstraint("job_id IS NOT NULL OR channel_id IS NOT NULL OR user_id IS NOT NULL", name="target"),
    sqlite_autoincrement=True,
)
Index("outbox_due", outbox.c.due_at, **_where("state IN ('pending', 'attempting')"))
# NULLs are distinct in a UNIQUE constraint: rows without a job are unique by kind and key.
Index("outbox_unique_notice", outbox.c.kind, outbox.c.key, unique=True, **_where("job_id IS NULL"))

PREVIEW_STATES = ("form", "previewed", "used")

previews = Table(
    "previews",
    metadata,
    Column("id", Text, primary_key=True),
    Column("requester", Text, nullable=False),
    Column("channel_id", Text, nullable=False),
    Column("draft", Text),
    Column("request_hash", Text),
    Column("matched", Integer),
    Column("capped", Integer, nullable=False, server_default=text("0")),
    Column("state", Text, nullable=False),
    Column("tag", Text),
    Column("expires_at", Float, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    Column("samples", Text),  # JSON: the first sample messages the preview showed (revision 7)
    CheckConstraint("state IN ('form', 'previewed', 'used')", name="state"),
)
Index("previews_expiry", previews.c.expires_at)

seen_requests = Table(
    "seen_requests",
    metadata,
    Column("key", Text, primary_key=True),
    Column("at", Float, nullable=False),
)
Index("seen_requests_at", seen_requests.c.at)

#: The shared Cloudflare request budget (revision 6): how many 30-second slices one row counts — the
#: current one and the ten before it, so every 5 minutes fall inside the counted ones.
BUDGET_SLICES = 11

# One row per account, shared by every replica: a ring of request counts, slot `i` holding the newest
# slice whose index is `i` modulo BUDGET_SLICES (`head` is the newest slice written; older entries are
# void once they leave the window), and the pause a 429 started. Times are the database's clock.
cloudflare_budget = Table(
    "cloudflare_budget",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("head", Integer, nullable=False, server_default=text("0")),
    *(Column(f"n{i}", Integer, nullable=False, server_default=text("0")) for i in range(BUDGET_SLICES)),
    Column("paused_until", Float),  # epoch seconds: nothing is sent before then (a 429's Retry-After)
    Column("checked_at", Float),  # epoch seconds of the latest reservation (what RETURNING reads)
    Column("granted", Integer, nullable=False, server_default=text("0")),  # the latest reservation's answer
)


APPROVAL_STATES = ("pending", "approved", "rejected", "expired")

# A job that needs a second person (revision 7): the exact request previewed, who asked and why, and
# how it was decided. One per preview (the preview is used by it); one per create intent once approved.
approvals = Table(
    "approvals",
    metadata,
    Column("id", Text, primary_key=True),
    Column("preview_id", Text, nullable=False),
    Column("requester", Text, nullable=False),
    Column("channel_id", Text, nullable=False),
    Column("request", Text, nullable=False),  # canonical JSON: action, folder, search (absolute dates)
    Column("request_hash", Text, nullable=False),  # sha256 of `request`, re-checked before the create
    Column("justification", Text, nullable=False),
    Column("matched", Integer, nullable=False),
    Column("capped", Integer, nullable=False, server_default=text("0")),
    Column("samples", Text, nullable=False, server_default=text("'[]'")),
    Column("reasons", Text, nullable=False, server_default=text("'[]'")),
    Column("agreed_max", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("decided_by", Text),
    Column("decided_at", Text),
    Column("note", Text),  # the reason given for a rejection
    Column("tag", Text),  # the create intent's request tag, once approved
    Column("expires_at", Float, nullable=False),
    Column("created_at", Text, nullable=False),
    Column("updated_at", Text, nullable=False),
    UniqueConstraint("preview_id"),
    UniqueConstraint("tag"),
    CheckConstraint("state IN ('pending', 'approved', 'rejected', 'expired')", name="state"),
)
Index("approvals_pending", approvals.c.expires_at, **_where("state = 'pending'"))
