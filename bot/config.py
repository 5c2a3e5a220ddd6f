"""Every environment variable Sweep reads, validated once at start.

A missing or malformed value becomes a `ConfigError` whose message names the variable, so the
CLI can print one clear line instead of a traceback. Secrets are `SecretStr`: they never show in
a repr, a log line or an error.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CLOUDFLARE_BASE_URL = "https://api.cloudflare.com/client/v4"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"


class ConfigError(Exception):
    """The environment does not describe a usable configuration; the message names the variable."""


class CloudflareSettings(BaseSettings):
    """How to reach Cloudflare, named like Cloudflare's own SDK."""

    model_config = SettingsConfigDict(env_prefix="CLOUDFLARE_", extra="ignore")

    api_token: SecretStr | None = None
    email: str | None = None
    api_key: SecretStr | None = None
    account_id: str = Field(min_length=1, max_length=32)
    base_url: str = DEFAULT_CLOUDFLARE_BASE_URL

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _need_credentials(self) -> CloudflareSettings:
        if self.api_token is None and not (self.email and self.api_key is not None):
            raise ValueError(
                "set CLOUDFLARE_API_TOKEN (or both CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)",
            )
        return self


class Settings(BaseSettings):
    """Configuration of `sweep-bot serve`."""

    model_config = SettingsConfigDict(extra="ignore")

    slack_bot_token: SecretStr
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    sweep_database: Path = Path("sweep.db")
    sweep_poll_seconds: float = Field(default=10.0, gt=0, le=3600)
    # Seconds to wait for one Cloudflare answer (connect, read, write); each retry waits again.
    sweep_cloudflare_timeout: float = Field(default=10.0, gt=0, le=300)
    sweep_operators: str = Field(min_length=1)
    sweep_channels: str | None = None
    # Cloudflare-calling requests allowed (see bot/throttle.py): per user per minute, for everyone per 5 min.
    sweep_reads_per_user: int = Field(default=30, ge=1, le=100_000)
    sweep_writes_per_user: int = Field(default=10, ge=1, le=100_000)
    sweep_reads_total: int = Field(default=300, ge=1, le=1_000_000)
    sweep_writes_total: int = Field(default=60, ge=1, le=1_000_000)

    @field_validator("slack_api_url")
    @classmethod
    def _slack_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
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

    @property
    def operators(self) -> frozenset[str]:
        """Return the Slack user and user-group ids allowed to create and cancel (`*` = everyone)."""
        return frozenset(part.strip() for part in self.sweep_operators.split(",") if part.strip())

    @property
    def channels(self) -> frozenset[str] | None:
        """Return the allowed channel ids, or None when every channel is allowed."""
        if not self.sweep_channels:
            return None
        return frozenset(part.strip() for part in self.sweep_channels.split(",") if part.strip())


def describe_validation_error(error: ValidationError, *, prefix: str = "") -> str:
    """Turn a pydantic-settings error into one line naming the environment variable."""
    problems = []
    for item in error.errors():
        field = "_".join(str(part) for part in item["loc"]) if item["loc"] else ""
        name = (prefix + field).upper() if field else ""
        message = item["msg"]
        if item["type"] == "missing":
            message = "is required but not set"
        problems.append(f"{name} {message}".replace("Value error, ", "").strip())
    return "; ".join(problems)


def load_cloudflare_settings() -> CloudflareSettings:
    """Read the CLOUDFLARE_* variables or raise ConfigError naming the bad one."""
    try:
        return CloudflareSettings()
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, prefix="CLOUDFLARE_")) from None


def load_settings(*, socket_mode: bool | None = None) -> tuple[Settings, CloudflareSettings]:
    """Read and validate everything `serve` needs, or raise ConfigError naming the bad variable."""
    try:
        settings = Settings()
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None
    cloudflare = load_cloudflare_settings()
    use_socket = socket_mode if socket_mode is not None else settings.slack_app_token is not None
    if use_socket and settings.slack_app_token is None:
        raise ConfigError("SLACK_APP_TOKEN is required for Socket Mode")
    if not use_socket and settings.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET is required in HTTP mode")
    return settings, cloudflare
