"""Sweep's durable state: tracked jobs, create intents, previews, approvals, the audit log and the outbox.

One schema (`schema.py`, SQLAlchemy Core) managed by Alembic revisions shipped in the package
(`migrations/`); one module per aggregate behind a small Protocol (`jobs`, `intents`, `previews`,
`approvals`, `audit`, `outbox`, and `budget`: the Cloudflare request budget all replicas share);
`SqlStore` composes them over one engine: SQLite through aiosqlite (a path or
`sqlite+aiosqlite:///path`) or PostgreSQL through asyncpg (`postgresql+asyncpg://…`). Callers get
models, never rows.

The outbox is what makes notifications exactly-once: a change and the outbox rows that announce it
commit in one transaction, and each row's unique key means the same delivery is never queued twice.
"""

from __future__ import annotations

from bot.store.approvals import ApprovalStore
from bot.store.audit import AuditStore
from bot.store.budget import BudgetReading, RequestBudgetStore, SqlRequestBudget
from bot.store.db import BUSY_TIMEOUT_MS, database_url, display_url
from bot.store.intents import IntentStore
from bot.store.jobs import CardStore, JobStore
from bot.store.lease import PollerLease
from bot.store.migrate import head_version
from bot.store.models import (
    CARD_KEY,
    GONE,
    UNRESOLVED_INTENTS,
    CreateIntent,
    IntentState,
    OutboxItem,
    OutboxKind,
    OutboxState,
    PreviewRecord,
    PreviewState,
    StoreError,
    StoreUnavailable,
    Transition,
    transition_key,
)
from bot.store.outbox import OutboxStore
from bot.store.previews import PreviewStore
from bot.store.store import SqlStore, Store, migrate, open_store

# The name of the store before it spoke PostgreSQL too; kept for callers written against it.
SqliteStore = SqlStore

__all__ = [
    "PollerLease",
    "BUSY_TIMEOUT_MS",
    "ApprovalStore",
    "CARD_KEY",
    "GONE",
    "UNRESOLVED_INTENTS",
    "AuditStore",
    "BudgetReading",
    "CardStore",
    "CreateIntent",
    "IntentState",
    "IntentStore",
    "JobStore",
    "OutboxItem",
    "OutboxKind",
    "OutboxState",
    "OutboxStore",
    "PreviewRecord",
    "PreviewState",
    "PreviewStore",
    "RequestBudgetStore",
    "SqlRequestBudget",
    "SqlStore",
    "SqliteStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "Transition",
    "database_url",
    "display_url",
    "head_version",
    "migrate",
    "open_store",
    "transition_key",
]
