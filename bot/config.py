"""Every environment variable Sweep reads, validated in one place.

`load_settings` reads the environment once and reports every problem at once: a `ConfigError`
carries one line per problem, each naming its variable, so the CLI prints them instead of a
traceback. Secrets are `SecretStr`: they never show in a repr, a log line or an error, and a
secret's value is never echoed in a problem line.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from bot.approval import (
    ApprovalPolicy,
    parse_above,
    parse_always,
    parse_domains,
    parse_duration,
    parse_margin,
)
from bot.policy import EVERYONE, Policy, parse_ids

DEFAULT_CLOUDFLARE_BASE_URL = "https://api.cloudflare.com/client/v4"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - the HTTP listener serves Slack from outside the host
DEFAULT_PORT = 3000
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_LOG_LEVEL_RULE = f"one of {', '.join(LOG_LEVELS)}"
LOG_FORMATS = ("text", "json")
_LOG_FORMAT_RULE = "text or json"

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*\.?$")
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9]{1,32}$")


class ConfigError(Exception):
    """The configuration is unusable; `problems` holds one line per problem, each naming its variable."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems: tuple[str, ...] = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__("; ".join(self.problems))


class UnavailableError(Exception):
    """A service Sweep needs gave no usable answer (unreachable, timed out, failing); one-line message."""


def _url_problem(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return "must be an http(s) URL"
    return None


def cloudflare_credentials_problem(token: object, email: object, key: object) -> str | None:
    """Return the problem with the Cloudflare credentials given (None when they are usable)."""
    if token is not None:
        return None
    if email and key is None:
        return "CLOUDFLARE_API_KEY is required with CLOUDFLARE_EMAIL (or set CLOUDFLARE_API_TOKEN instead)"
    if key is not None and not email:
        return "CLOUDFLARE_EMAIL is required with CLOUDFLARE_API_KEY (or set CLOUDFLARE_API_TOKEN instead)"
    if not email:
        return (
            "CLOUDFLARE_API_TOKEN is required but not set "
            "(or set both CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)"
        )
    return None


def operators_problem(value: str) -> str | None:
    """Return why SWEEP_OPERATORS is unusable (the rule is `Policy`'s), or None."""
    entries = parse_ids(value.split(","))
    if not entries:
        return "SWEEP_OPERATORS lists no one: give Slack user IDs (U…/W…), user-group IDs (S…) or *"
    try:
        Policy(operators=entries, channels=None)
    except ValueError as error:
        return str(error)
    return None


def channels_problem(value: str) -> str | None:
    """Return why SWEEP_CHANNELS is unusable (the rule is `Policy`'s), or None."""
    entries = parse_ids(value.split(","))
    if not entries:
        return "SWEEP_CHANNELS lists no channel: give Slack channel IDs (C…/G…/D…), or leave it unset for all"
    try:
        Policy(operators=frozenset({"*"}), channels=entries)
    except ValueError as error:
        return str(error)
    return None


def database_problem(path: Path) -> str | None:
    """Return why `path` cannot be Sweep's SQLite file, or None (the file itself may not exist yet)."""
    if not str(path).strip():
        return "SWEEP_DATABASE must name a file"
    if path.is_dir():
        return f"SWEEP_DATABASE names a directory, not a file: {path}"
    parent = path.parent
    if not parent.exists():
        return f"SWEEP_DATABASE is in a directory that does not exist: {parent} (for {path})"
    if not parent.is_dir():
        return f"SWEEP_DATABASE is under {parent}, which is not a directory (for {path})"
    return None


_DATABASE_URL_SCHEMES = ("postgresql", "postgresql+asyncpg")


def database_url_problem(value: str) -> str | None:
    """Return why `value` cannot be SWEEP_DATABASE_URL, or None (never quoting it: it may hold a password)."""
    scheme, sep, rest = value.strip().partition("://")
    if not sep or scheme.lower() not in _DATABASE_URL_SCHEMES:
        return "SWEEP_DATABASE_URL must be a postgresql:// (or postgresql+asyncpg://) URL"
    shape = "postgresql://user[:password]@host[:port]/database"
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"SWEEP_DATABASE_URL is not a valid URL: {shape}"
    if not parts.hostname and "host=" not in parts.query:
        return f"SWEEP_DATABASE_URL names no host: {shape}"
    if not parts.path.strip("/"):
        return f"SWEEP_DATABASE_URL names no database: {shape}"
    return None


class CloudflareSettings(BaseModel):
    """How to reach Cloudflare, named like Cloudflare's own SDK (CLOUDFLARE_*)."""

    model_config = ConfigDict(frozen=True)

    api_token: SecretStr | None = None
    email: str | None = Field(default=None, description="an email address")
    api_key: SecretStr | None = None
    account_id: str = Field(description="a Cloudflare account ID (1 to 32 letters and digits)")
    base_url: str = DEFAULT_CLOUDFLARE_BASE_URL

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        problem = _url_problem(value)
        if problem:
            raise ValueError(problem)
        return value.rstrip("/")

    @field_validator("account_id")
    @classmethod
    def _account_id(cls, value: str) -> str:
        if not _ACCOUNT_RE.match(value):
            raise ValueError("must be a Cloudflare account ID (1 to 32 letters and digits)")
        return value

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and "@" not in value:
            raise ValueError("must be an email address")
        return value

    @model_validator(mode="after")
    def _need_credentials(self) -> CloudflareSettings:
        problem = cloudflare_credentials_problem(self.api_token, self.email, self.api_key)
        if problem:
            raise ValueError(problem)
        return self


_APPROVAL_PARSERS: dict[str, Any] = {
    "sweep_approval_above": parse_above,
    "sweep_approval_always": parse_always,
    "sweep_approval_ttl": parse_duration,
    "sweep_approval_margin": parse_margin,
}
_USER_BUDGET_RULE = "a whole number of requests from 1 to 100000"
_TOTAL_BUDGET_RULE = "a whole number of requests from 1 to 1000000"


class Settings(BaseModel):
    """Configuration of `sweep-bot serve` (every variable not CLOUDFLARE_*)."""

    model_config = ConfigDict(frozen=True)

    slack_bot_token: SecretStr
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    sweep_database: Path = Path("sweep.db")
    #: PostgreSQL instead of the SQLite file (several replicas); it may hold a password, so it is secret.
    sweep_database_url: SecretStr | None = None
    sweep_poll_seconds: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        allow_inf_nan=False,
        description="a number of seconds above 0, at most 3600",
    )
    # Seconds to wait for one Cloudflare answer (connect, read, write); each retry waits again.
    sweep_cloudflare_timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        allow_inf_nan=False,
        description="a number of seconds above 0, at most 300",
    )
    sweep_operators: str
    sweep_channels: str | None = None
    sweep_log_level: str = Field(default="INFO", description=_LOG_LEVEL_RULE)
    sweep_log_format: str = Field(default="text", description=_LOG_FORMAT_RULE)
    host: str = Field(default=DEFAULT_HOST, description="an IP address or a host name to listen on")
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535, description="a whole number from 0 to 65535")
    # Cloudflare-calling requests allowed (see bot/throttle.py): per user per minute, for everyone per 5 min.
    sweep_reads_per_user: int = Field(default=30, ge=1, le=100_000, description=_USER_BUDGET_RULE)
    sweep_writes_per_user: int = Field(default=10, ge=1, le=100_000, description=_USER_BUDGET_RULE)
    sweep_reads_total: int = Field(default=300, ge=1, le=1_000_000, description=_TOTAL_BUDGET_RULE)
    sweep_writes_total: int = Field(default=60, ge=1, le=1_000_000, description=_TOTAL_BUDGET_RULE)
    # Blast-radius policy (bot/approval.py): who approves, which jobs need it, for how long, how far past.
    sweep_approvers: str | None = None
    sweep_approval_above: str = "300"
    sweep_approval_always: str = "purge"
    sweep_approval_ttl: str = "1h"
    sweep_approval_margin: str = "10%"
    sweep_internal_domains: str | None = None
    sweep_max_active_jobs: int = Field(
        default=20, ge=1, le=1000, description="a whole number of jobs from 1 to 1000"
    )
    # The requests Cloudflare allows the token per 5 minutes; all replicas together use 80 % (bot/budget.py).
    sweep_cloudflare_budget: int = Field(
        default=1200,
        ge=10,
        le=1_000_000,
        description="a whole number of requests per 5 minutes from 10 to 1000000",
    )

    @field_validator("slack_api_url")
    @classmethod
    def _slack_url(cls, value: str) -> str:
        problem = _url_problem(value)
        if problem:
            raise ValueError(problem)
        return value if value.endswith("/") else value + "/"

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token (starts with xoxb-)")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token (starts with xapp-)")
        return value

    @field_validator("sweep_database")
    @classmethod
    def _database(cls, value: Path) -> Path:
        problem = database_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("sweep_database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            problem = database_url_problem(value.get_secret_value())
            if problem:
                raise ValueError(problem)
        return value

    @property
    def database_target(self) -> Path | str:
        """Return the database to open: SWEEP_DATABASE_URL when set, else the SWEEP_DATABASE file."""
        if self.sweep_database_url is not None:
            return self.sweep_database_url.get_secret_value()
        return self.sweep_database

    @property
    def database_setting(self) -> str:
        """Return the variable naming the database in use (for problem lines)."""
        return "SWEEP_DATABASE_URL" if self.sweep_database_url is not None else "SWEEP_DATABASE"

    @field_validator("sweep_operators")
    @classmethod
    def _operators(cls, value: str) -> str:
        problem = operators_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("sweep_channels")
    @classmethod
    def _channels(cls, value: str | None) -> str | None:
        problem = channels_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("sweep_log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise ValueError(f"must be {_LOG_LEVEL_RULE}")
        return value.upper()

    @field_validator("sweep_log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value.lower() not in LOG_FORMATS:
            raise ValueError(f"must be {_LOG_FORMAT_RULE}")
        return value.lower()

    @field_validator("sweep_approvers")
    @classmethod
    def _approvers(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = operators_problem(value)
        if problem:
            raise ValueError(problem.replace("SWEEP_OPERATORS", "SWEEP_APPROVERS").replace(" or *", ""))
        if EVERYONE in parse_ids(value.split(",")):
            raise ValueError(
                "SWEEP_APPROVERS cannot be *: name the approvers, or leave it unset for any operator"
            )
        return value

    @field_validator(
        "sweep_approval_above", "sweep_approval_always", "sweep_approval_ttl", "sweep_approval_margin"
    )
    @classmethod
    def _approval_rule(cls, value: str, info: ValidationInfo) -> str:
        _APPROVAL_PARSERS[info.field_name or ""](value)
        return value

    @field_validator("sweep_internal_domains")
    @classmethod
    def _internal_domains(cls, value: str | None) -> str | None:
        if value is not None:
            parse_domains(value)
        return value

    @property
    def approval_policy(self) -> ApprovalPolicy:
        """Return the blast-radius policy these settings describe (already validated)."""
        return ApprovalPolicy(
            approvers=parse_ids(self.sweep_approvers.split(",")) if self.sweep_approvers else None,
            above=parse_above(self.sweep_approval_above),
            always=parse_always(self.sweep_approval_always),
            ttl=parse_duration(self.sweep_approval_ttl),
            margin_percent=parse_margin(self.sweep_approval_margin),
            internal_domains=parse_domains(self.sweep_internal_domains or ""),
        )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if not _HOSTNAME_RE.match(value):
                raise ValueError("must be an IP address or a host name to listen on") from None
        return value

    @property
    def operators(self) -> frozenset[str]:
        """Return the Slack user and user-group ids allowed to create and cancel (`*` = everyone)."""
        return parse_ids(self.sweep_operators.split(","))

    @property
    def channels(self) -> frozenset[str] | None:
        """Return the allowed channel ids, or None when every channel is allowed."""
        if not self.sweep_channels:
            return None
        return parse_ids(self.sweep_channels.split(","))

    @property
    def socket_mode(self) -> bool:
        """Return True when `serve` picks Socket Mode by default (an app-level token is set)."""
        return self.slack_app_token is not None


# Variables whose value is a secret: a problem line never repeats what they hold.
_SECRET_FIELDS = frozenset(
    {
        "sweep_database_url",
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "api_token",
        "api_key",
    }
)
_SHOWN_CHARS = 40


def _value(environ: Mapping[str, str], name: str) -> str | None:
    """Return the variable's value, stripped; an empty value counts as unset."""
    raw = environ.get(name)
    if raw is None:
        return None
    return raw.strip() or None


def _values(environ: Mapping[str, str], fields: Iterable[str], prefix: str = "") -> dict[str, str]:
    return {
        field: value for field in fields if (value := _value(environ, (prefix + field).upper())) is not None
    }


def _problem_lines(
    error: ValidationError,
    model: type[BaseModel],
    *,
    prefix: str = "",
    names: Mapping[str, str] | None = None,
) -> list[str]:
    """Turn a validation error into one line per problem, each naming the variable."""
    lines: list[str] = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        lines.append(_problem_line(item, model, field, (names or {}).get(field) or (prefix + field).upper()))
    return lines


def _problem_line(item: ErrorDetails, model: type[BaseModel], field: str, name: str) -> str:
    if not field:  # a model validator: its message already names the variables
        return str(item["msg"]).removeprefix("Value error, ")
    if item["type"] == "missing":
        return f"{name} is required but not set"
    if item["type"] == "value_error":
        message = str(item["msg"]).removeprefix("Value error, ")
        if message.startswith(("SWEEP_", "CLOUDFLARE_", "SLACK_")):
            return message  # a rule that names the variable itself (operators, channels, database)
    else:
        info = model.model_fields.get(field)
        message = f"must be {info.description}" if info is not None and info.description else item["msg"]
    if field in _SECRET_FIELDS:
        return f"{name} {message}"
    return f"{name} {message}, not {_shown(item.get('input', ''))}"


def _shown(value: object) -> str:
    """Return a non-secret value as a problem line quotes it: repr'd (no control characters), cut short."""
    text = str(value)
    if len(text) > _SHOWN_CHARS:
        text = text[:_SHOWN_CHARS] + "…"
    return repr(text)


@dataclass(frozen=True)
class Config:
    """Everything `serve` and `check` need, validated."""

    settings: Settings
    cloudflare: CloudflareSettings
    socket_mode: bool


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    socket_mode: bool | None = None,
    host: str | None = None,
    port: str | None = None,
) -> Config:
    """Read and validate everything `serve` needs; raise ConfigError listing every problem at once.

    `socket_mode` forces a mode (None: Socket Mode when SLACK_APP_TOKEN is set); `host` and `port`
    come from the command line and win over HOST and PORT.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []
    names: dict[str, str] = {}
    values: dict[str, Any] = _values(env, Settings.model_fields)
    for field, flag in (("host", host), ("port", port)):
        if flag is not None:
            values[field] = flag.strip()
            names[field] = f"--{field}"
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(values)
    except ValidationError as error:
        problems.extend(_problem_lines(error, Settings, names=names))
    cf_values = _values(env, CloudflareSettings.model_fields, prefix="CLOUDFLARE_")
    cloudflare: CloudflareSettings | None = None
    try:
        cloudflare = CloudflareSettings.model_validate(cf_values)
    except ValidationError as error:
        problems.extend(_problem_lines(error, CloudflareSettings, prefix="CLOUDFLARE_"))
        if not any(item["loc"] == () for item in error.errors()):
            # Field errors stop pydantic before the credentials rule: check it here too.
            credentials = cloudflare_credentials_problem(
                cf_values.get("api_token"), cf_values.get("email"), cf_values.get("api_key")
            )
            if credentials:
                problems.append(credentials)
    use_socket = socket_mode if socket_mode is not None else "slack_app_token" in values
    if use_socket and "slack_app_token" not in values:
        problems.append("SLACK_APP_TOKEN is required for Socket Mode")
    if not use_socket and "slack_signing_secret" not in values:
        problems.append(
            "SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)"
        )
    if env.get("SLACK_CLIENT_ID") is not None and env.get("SLACK_CLIENT_SECRET") is not None:
        problems.append(OAUTH_CONFLICT)
    if problems or settings is None or cloudflare is None:
        raise ConfigError(problems)
    return Config(settings=settings, cloudflare=cloudflare, socket_mode=use_socket)


OAUTH_CONFLICT = (
    "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are both set: Bolt would silently switch to OAuth "
    "(multi-workspace) mode; unset them for a single-workspace Sweep"
)


def oauth_conflict(environ: Mapping[str, str] | None = None) -> bool:
    """Return True when the environment would make Bolt switch to OAuth mode (both variables present)."""
    env = os.environ if environ is None else environ
    return env.get("SLACK_CLIENT_ID") is not None and env.get("SLACK_CLIENT_SECRET") is not None


def load_log_level(environ: Mapping[str, str] | None = None) -> str:
    """Return SWEEP_LOG_LEVEL in capitals (default INFO), or raise ConfigError naming it."""
    value = _value(os.environ if environ is None else environ, "SWEEP_LOG_LEVEL") or "INFO"
    if value.upper() not in LOG_LEVELS:
        raise ConfigError(f"SWEEP_LOG_LEVEL must be {_LOG_LEVEL_RULE}, not {_shown(value)}")
    return value.upper()


def load_log_format(environ: Mapping[str, str] | None = None) -> str:
    """Return SWEEP_LOG_FORMAT in lower case (default text), or raise ConfigError naming it."""
    value = _value(os.environ if environ is None else environ, "SWEEP_LOG_FORMAT") or "text"
    if value.lower() not in LOG_FORMATS:
        raise ConfigError(f"SWEEP_LOG_FORMAT must be {_LOG_FORMAT_RULE}, not {_shown(value)}")
    return value.lower()


def load_database(environ: Mapping[str, str] | None = None) -> Path:
    """Return SWEEP_DATABASE (default sweep.db), or raise ConfigError naming it."""
    path = Path(_value(os.environ if environ is None else environ, "SWEEP_DATABASE") or "sweep.db")
    problem = database_problem(path)
    if problem:
        raise ConfigError(problem)
    return path


def load_database_target(environ: Mapping[str, str] | None = None) -> Path | str:
    """Return SWEEP_DATABASE_URL when set, else SWEEP_DATABASE; raise ConfigError naming a bad one."""
    url = _value(os.environ if environ is None else environ, "SWEEP_DATABASE_URL")
    if url is None:
        return load_database(environ)
    problem = database_url_problem(url)
    if problem:
        raise ConfigError(problem)
    return url
