"""Fault injection: rate limits, server errors, latency and slow searches, set at runtime.

A fault configuration is a list of rules checked in order against every API request (never the
`/__sim/` control routes). A rule applies when its `method` (if set) equals the request method and
its `path` (if set) is a substring of the request path, and while its `count` lasts (None: forever).

- `status` 429: answer 429 with `Retry-After: retry_after` and error code 10429.
- `status` 500/502/503/504: answer that status with error code 10002.
- `status` 202: only for the first request of an investigate search: answer 202 with a `Location` to poll.
- `latency`: wait that many seconds before answering (after the work is done, so a slow create still
  creates the job).
- `after`: with a status, do the work first and then answer the error (an ambiguous failure).

`POST /__sim/faults` accepts any of these shapes (each call replaces the whole configuration):
- `{}`: no faults.
- one flat rule: `{"status": 429, "count": 1, "retry_after": 2, "method": "GET", "path": "/bulk"}`.
- shorthands: `{"rate_limit": {"count": 3, "retry_after": 5}, "server_error": {"count": 2, "status": 502},
  "latency": {"seconds": 0.5, "count": 4}, "search_accepted_first": true}`.
- the full form: `{"rules": [...], "search_accepted_first": false}`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

FAULT_STATUSES = frozenset({202, 429, 500, 502, 503, 504})
_RULE_KEYS = frozenset({"status", "latency", "count", "retry_after", "method", "path", "after"})


class FaultRule(BaseModel):
    """One fault rule (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    status: int | None = None
    latency: float = Field(default=0.0, ge=0)
    count: int | None = Field(default=None, ge=0)
    retry_after: int = Field(default=1, ge=0)
    method: str | None = None
    path: str | None = None
    after: bool = False

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: int | None) -> int | None:
        if value is not None and value not in FAULT_STATUSES:
            raise ValueError(f"status must be one of {sorted(FAULT_STATUSES)}")
        return value

    def covers(self, method: str, path: str) -> bool:
        """Return True when the rule's method and path restrictions match this request."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or self.path in path


class FaultConfig(BaseModel):
    """The whole fault configuration; off by default."""

    model_config = ConfigDict(extra="forbid")

    rules: list[FaultRule] = Field(default_factory=list)
    # When true, the first request of every investigate search answers 202 with a Location to poll.
    search_accepted_first: bool = False


def parse_fault_spec(spec: dict[str, Any]) -> FaultConfig:
    """Turn any accepted request shape into a FaultConfig (raises ValueError when invalid)."""
    spec = dict(spec)
    rules: list[FaultRule] = [FaultRule.model_validate(r) for r in spec.pop("rules", [])]
    accepted_first = bool(spec.pop("search_accepted_first", False))
    rate_limit = spec.pop("rate_limit", None)
    if rate_limit is not None:
        rules.append(FaultRule.model_validate({"status": 429, **_as_dict(rate_limit, "count")}))
    server_error = spec.pop("server_error", None)
    if server_error is not None:
        rules.append(FaultRule.model_validate({"status": 503, **_as_dict(server_error, "count")}))
    if isinstance(spec.get("latency"), dict):
        latency = dict(spec.pop("latency"))
        if "seconds" in latency:
            latency["latency"] = latency.pop("seconds")
        rules.append(FaultRule.model_validate(latency))
    if spec:
        unknown = set(spec) - _RULE_KEYS
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        rules.append(FaultRule.model_validate(spec))
    return FaultConfig(rules=rules, search_accepted_first=accepted_first)


def _as_dict(value: Any, scalar_key: str) -> dict[str, Any]:
    if isinstance(value, dict):
        return dict(value)
    return {scalar_key: value}


@dataclass(frozen=True)
class Decision:
    """What to do with one request: an error rule (if any) and the latency to add."""

    error: FaultRule | None = None
    latency: float = 0.0
    accept_search: bool = False


class FaultInjector:
    """Holds the current configuration and consumes rule counts as requests match."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = config or FaultConfig()

    def set(self, config: FaultConfig) -> None:
        """Replace the configuration."""
        self.config = config

    def decide(self, method: str, path: str, *, first_search: bool) -> Decision:
        """Match the rules against one request and consume the counts of those that apply."""
        error: FaultRule | None = None
        accept = False
        latency = 0.0
        for rule in self.config.rules:
            if (rule.count is not None and rule.count <= 0) or not rule.covers(method, path):
                continue
            if rule.status == 202:
                if not first_search or accept:
                    continue
                accept = True
            elif rule.status is not None:
                if error is not None:
                    continue
                error = rule
            elif rule.latency <= 0:
                continue
            latency += rule.latency
            if rule.count is not None:
                rule.count -= 1
        accept = accept or (first_search and self.config.search_accepted_first)
        return Decision(error=error, latency=latency, accept_search=accept)
