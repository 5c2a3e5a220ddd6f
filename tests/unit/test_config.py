"""Settings parsing (bot.config): every rule the README's Configuration table states, one line each."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import (
    ConfigError,
    load_database,
    load_database_target,
    load_log_format,
    load_log_level,
    load_settings,
)

TOKEN = "xoxb-unit-bot-token"
SECRET = "unit-signing-secret"
CF_TOKEN = "unit-cloudflare-token"
GOOD = {
    "SLACK_BOT_TOKEN": TOKEN,
    "SLACK_SIGNING_SECRET": SECRET,
    "CLOUDFLARE_API_TOKEN": CF_TOKEN,
    "CLOUDFLARE_ACCOUNT_ID": "023e105f4ecef8ad9ca31a8372d0c353",
    "SWEEP_OPERATORS": "U012AB3CD,S0SOCTEAM",
}


def problems(env: dict[str, str], **kw: str | bool | None) -> tuple[str, ...]:
    """Return the problem lines load_settings reports for `env` (asserting there are some)."""
    with pytest.raises(ConfigError) as raised:
        load_settings(env, **kw)  # type: ignore[arg-type]
    return raised.value.problems


def test_defaults_are_the_readmes() -> None:
    config = load_settings(GOOD)
    settings, cloudflare = config.settings, config.cloudflare
    assert settings.slack_api_url == "https://slack.com/api/"
    assert cloudflare.base_url == "https://api.cloudflare.com/client/v4"
    assert settings.sweep_database == Path("sweep.db")
    assert settings.sweep_poll_seconds == 10
    assert settings.sweep_cloudflare_timeout == 10
    assert settings.sweep_log_level == "INFO"
    assert (settings.host, settings.port) == ("0.0.0.0", 3000)
    assert settings.channels is None
    assert settings.operators == {"U012AB3CD", "S0SOCTEAM"}
    assert config.socket_mode is False
    # Issue 12's defaults: any operator approves, above 300, purges always, 1 h, 10 %, 20 active jobs.
    policy = settings.approval_policy
    assert policy.approvers is None and policy.above == 300 and policy.always == {"purge"}
    assert (
        policy.ttl == timedelta(hours=1) and policy.margin_percent == 10 and policy.internal_domains == set()
    )
    assert settings.sweep_max_active_jobs == 20
    # Issue 13: Cloudflare's 1,200 requests per 5 minutes per token.
    assert settings.sweep_cloudflare_budget == 1200


def test_the_approval_policy_as_configured() -> None:
    env = {
        **GOOD,
        "SWEEP_APPROVERS": "U0LEAD,S0LEADS",
        "SWEEP_APPROVAL_ABOVE": "off",
        "SWEEP_APPROVAL_ALWAYS": "purge,release",
        "SWEEP_APPROVAL_TTL": "30m",
        "SWEEP_APPROVAL_MARGIN": "25%",
        "SWEEP_INTERNAL_DOMAINS": "corp.example, Example.COM",
    }
    policy = load_settings(env).settings.approval_policy
    assert policy.approvers == {"U0LEAD", "S0LEADS"} and policy.above is None
    assert policy.always == {"purge", "release"} and policy.ttl == timedelta(minutes=30)
    assert policy.margin_percent == 25 and policy.internal_domains == {"corp.example", "example.com"}


def test_examples_from_the_readme_are_accepted(tmp_path: Path) -> None:
    env = {
        **GOOD,
        "SLACK_API_URL": "http://127.0.0.1:9000/api",
        "CLOUDFLARE_BASE_URL": "http://127.0.0.1:8787/client/v4/",
        "SWEEP_DATABASE": str(tmp_path / "sweep.db"),
        "SWEEP_POLL_SECONDS": "5",
        "SWEEP_CLOUDFLARE_TIMEOUT": "20",
        "SWEEP_CLOUDFLARE_BUDGET": "600",
        "SWEEP_CHANNELS": "C0INCIDENT, C0SOC",
        "SWEEP_LOG_LEVEL": "debug",
        "PORT": "8080",
        "HOST": "127.0.0.1",
    }
    settings = load_settings(env).settings
    assert settings.slack_api_url == "http://127.0.0.1:9000/api/"
    assert load_settings(env).cloudflare.base_url == "http://127.0.0.1:8787/client/v4"
    assert settings.channels == {"C0INCIDENT", "C0SOC"}
    assert settings.sweep_log_level == "DEBUG"
    assert settings.sweep_cloudflare_budget == 600
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    for host in ("::", "sweep.internal.example", "localhost"):
        assert load_settings({**GOOD, "HOST": host}).settings.host == host


def test_socket_mode_is_chosen_by_the_app_token_and_needs_no_signing_secret() -> None:
    env = {**GOOD, "SLACK_APP_TOKEN": "xapp-1-A0-1-abc"}
    del env["SLACK_SIGNING_SECRET"]
    assert load_settings(env).socket_mode is True
    assert problems(env, socket_mode=False) == (
        "SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)",
    )
    assert problems(GOOD, socket_mode=True) == ("SLACK_APP_TOKEN is required for Socket Mode",)


def test_empty_values_count_as_unset() -> None:
    env = {**GOOD, "SLACK_APP_TOKEN": "", "SWEEP_CHANNELS": "  ", "PORT": ""}
    config = load_settings(env)
    assert config.socket_mode is False and config.settings.channels is None and config.settings.port == 3000
    assert problems({**GOOD, "SWEEP_OPERATORS": ""}) == ("SWEEP_OPERATORS is required but not set",)


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            {"SWEEP_POLL_SECONDS": "often"},
            "SWEEP_POLL_SECONDS must be a number of seconds above 0, at most 3600, not 'often'",
        ),
        (
            {"SWEEP_POLL_SECONDS": "0"},
            "SWEEP_POLL_SECONDS must be a number of seconds above 0, at most 3600, not '0'",
        ),
        (
            {"SWEEP_POLL_SECONDS": "inf"},
            "SWEEP_POLL_SECONDS must be a number of seconds above 0, at most 3600, not 'inf'",
        ),
        (
            {"SWEEP_CLOUDFLARE_TIMEOUT": "301"},
            "SWEEP_CLOUDFLARE_TIMEOUT must be a number of seconds above 0, at most 300, not '301'",
        ),
        ({"PORT": "abc"}, "PORT must be a whole number from 0 to 65535, not 'abc'"),
        (
            {"SWEEP_CLOUDFLARE_BUDGET": "9"},
            "SWEEP_CLOUDFLARE_BUDGET must be a whole number of requests per 5 minutes from 10 to 1000000, "
            "not '9'",
        ),
        (
            {"SWEEP_CLOUDFLARE_BUDGET": "lots"},
            "SWEEP_CLOUDFLARE_BUDGET must be a whole number of requests per 5 minutes from 10 to 1000000, "
            "not 'lots'",
        ),
        (
            {"SWEEP_READS_PER_USER": "0"},
            "SWEEP_READS_PER_USER must be a whole number of requests from 1 to 100000, not '0'",
        ),
        (
            {"SWEEP_WRITES_TOTAL": "many"},
            "SWEEP_WRITES_TOTAL must be a whole number of requests from 1 to 1000000, not 'many'",
        ),
        ({"PORT": "65536"}, "PORT must be a whole number from 0 to 65535, not '65536'"),
        # Issue 12: the blast-radius policy, each rule as the README states it.
        (
            {"SWEEP_APPROVAL_TTL": "soon"},
            "SWEEP_APPROVAL_TTL must be a duration like 90s, 30m or 2h, not 'soon'",
        ),
        (
            {"SWEEP_APPROVAL_ABOVE": "3.5"},
            "SWEEP_APPROVAL_ABOVE must be a whole number of messages (0 = every job) or off, not '3.5'",
        ),
        ({"SWEEP_APPROVAL_MARGIN": "ten"}, "SWEEP_APPROVAL_MARGIN must be a percentage like 10%, not 'ten'"),
        (
            {"SWEEP_APPROVERS": "*"},
            "SWEEP_APPROVERS cannot be *: name the approvers, or leave it unset for any operator",
        ),
        ({"PORT": "80.5"}, "PORT must be a whole number from 0 to 65535, not '80.5'"),
        ({"HOST": "exa mple"}, "HOST must be an IP address or a host name to listen on, not 'exa mple'"),
        (
            {"SWEEP_LOG_LEVEL": "LOUD"},
            "SWEEP_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, not 'LOUD'",
        ),
        ({"SWEEP_LOG_FORMAT": "xml"}, "SWEEP_LOG_FORMAT must be text or json, not 'xml'"),
        ({"SLACK_API_URL": "slack.com/api/"}, "SLACK_API_URL must be an http(s) URL, not 'slack.com/api/'"),
        ({"CLOUDFLARE_BASE_URL": "https://"}, "CLOUDFLARE_BASE_URL must be an http(s) URL, not 'https://'"),
        (
            {"CLOUDFLARE_EMAIL": "soc", "CLOUDFLARE_API_KEY": "k"},
            "CLOUDFLARE_EMAIL must be an email address, not 'soc'",
        ),
        (
            {"SWEEP_OPERATORS": "bob"},
            "SWEEP_OPERATORS entries must be Slack user IDs (U…/W…), user-group IDs (S…) or *; not bob",
        ),
        (
            {"SWEEP_OPERATORS": "U1,@alice,bob"},
            "SWEEP_OPERATORS entries must be Slack user IDs (U…/W…), user-group IDs (S…) or *; "
            "not @alice, bob",
        ),
        (
            {"SWEEP_CHANNELS": "#incident"},
            "SWEEP_CHANNELS entries must be Slack channel IDs (C…/G…/D…); not #incident",
        ),
    ],
)
def test_a_malformed_value_is_one_line_quoting_it(change: dict[str, str], line: str) -> None:
    assert problems({**GOOD, **change}) == (line,)


@pytest.mark.parametrize(
    ("change", "variable"),
    [
        (
            {"SLACK_BOT_TOKEN": "xoxp-unit-user-token"},
            "SLACK_BOT_TOKEN must be a bot token (starts with xoxb-)",
        ),
        (
            {"SLACK_APP_TOKEN": "xoxb-unit-bot-token"},
            "SLACK_APP_TOKEN must be an app-level token (starts with xapp-)",
        ),
    ],
)
def test_a_malformed_secret_is_named_but_never_repeated(change: dict[str, str], variable: str) -> None:
    (line,) = problems({**GOOD, **change})
    assert line == variable
    assert "unit" not in line


def test_everyone_and_every_channel() -> None:
    settings = load_settings({**GOOD, "SWEEP_OPERATORS": "*", "SWEEP_CHANNELS": "*"}).settings
    assert settings.operators == {"*"}
    assert problems({**GOOD, "SWEEP_OPERATORS": " , "})[0].startswith("SWEEP_OPERATORS lists no one")
    assert problems({**GOOD, "SWEEP_CHANNELS": ","})[0].startswith("SWEEP_CHANNELS lists no channel")


def test_cloudflare_credentials_token_or_email_and_key() -> None:
    legacy = {**GOOD, "CLOUDFLARE_EMAIL": "soc@example.com", "CLOUDFLARE_API_KEY": "unit-global-key"}
    del legacy["CLOUDFLARE_API_TOKEN"]
    assert load_settings(legacy).cloudflare.api_token is None
    del legacy["CLOUDFLARE_API_KEY"]
    assert problems(legacy) == (
        "CLOUDFLARE_API_KEY is required with CLOUDFLARE_EMAIL (or set CLOUDFLARE_API_TOKEN instead)",
    )
    bare = {k: v for k, v in GOOD.items() if k != "CLOUDFLARE_API_TOKEN"}
    assert problems(bare) == (
        "CLOUDFLARE_API_TOKEN is required but not set (or set both CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)",
    )
    assert problems({**GOOD, "CLOUDFLARE_ACCOUNT_ID": "0" * 33})[0].startswith(
        "CLOUDFLARE_ACCOUNT_ID must be"
    )


def test_oauth_variables_together_are_refused() -> None:
    assert load_settings({**GOOD, "SLACK_CLIENT_ID": "123.456"}).settings  # one alone changes nothing
    (line,) = problems({**GOOD, "SLACK_CLIENT_ID": "123.456", "SLACK_CLIENT_SECRET": ""})
    assert line.startswith("SLACK_CLIENT_ID and SLACK_CLIENT_SECRET are both set") and "OAuth" in line


def test_every_problem_at_once(tmp_path: Path) -> None:
    assert problems({}) == (
        "SLACK_BOT_TOKEN is required but not set",
        "SWEEP_OPERATORS is required but not set",
        "CLOUDFLARE_ACCOUNT_ID is required but not set",
        "CLOUDFLARE_API_TOKEN is required but not set (or set both CLOUDFLARE_EMAIL and CLOUDFLARE_API_KEY)",
        "SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)",
    )
    lines = problems({**GOOD, "PORT": "x", "SWEEP_LOG_LEVEL": "x", "CLOUDFLARE_ACCOUNT_ID": "a b"})
    assert [line.split()[0] for line in lines] == ["SWEEP_LOG_LEVEL", "PORT", "CLOUDFLARE_ACCOUNT_ID"]


def test_command_line_host_and_port_win_and_are_named_as_flags() -> None:
    env = {**GOOD, "PORT": "abc", "HOST": "not a host"}
    settings = load_settings(env, host="127.0.0.1", port="0").settings
    assert (settings.host, settings.port) == ("127.0.0.1", 0)
    assert problems(GOOD, port="http") == ("--port must be a whole number from 0 to 65535, not 'http'",)
    assert problems(GOOD, host="a b") == (
        "--host must be an IP address or a host name to listen on, not 'a b'",
    )


def test_database_path_rules(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "sweep.db"
    assert problems({**GOOD, "SWEEP_DATABASE": str(missing)}) == (
        f"SWEEP_DATABASE is in a directory that does not exist: {missing.parent} (for {missing})",
    )
    assert problems({**GOOD, "SWEEP_DATABASE": str(tmp_path)}) == (
        f"SWEEP_DATABASE names a directory, not a file: {tmp_path}",
    )
    a_file = tmp_path / "file"
    a_file.write_text("")
    (line,) = problems({**GOOD, "SWEEP_DATABASE": str(a_file / "sweep.db")})
    assert line.startswith("SWEEP_DATABASE is under") and str(a_file) in line
    assert load_database({"SWEEP_DATABASE": str(tmp_path / "ok.db")}) == tmp_path / "ok.db"
    assert load_database({}) == Path("sweep.db")
    with pytest.raises(ConfigError, match="SWEEP_DATABASE"):
        load_database({"SWEEP_DATABASE": str(missing)})


def test_database_url_selects_postgresql_and_is_never_quoted(tmp_path: Path) -> None:
    url = "postgresql://sweep:s3cret-pw@db.internal/sweep"
    settings = load_settings({**GOOD, "SWEEP_DATABASE_URL": url}).settings
    assert settings.database_target == url and settings.database_setting == "SWEEP_DATABASE_URL"
    assert "s3cret-pw" not in repr(settings)
    plus = "postgresql+asyncpg://sweep@db.internal:5433/sweep"
    assert load_settings({**GOOD, "SWEEP_DATABASE_URL": plus}).settings.database_target == plus
    # Without it, the SQLite file as before.
    alone = load_settings({**GOOD, "SWEEP_DATABASE": str(tmp_path / "x.db")}).settings
    assert alone.database_target == tmp_path / "x.db" and alone.database_setting == "SWEEP_DATABASE"
    shape = "postgresql://user[:password]@host[:port]/database"
    for bad, line in (
        (
            "mysql://root:s3cret-pw@db/sweep",
            "SWEEP_DATABASE_URL must be a postgresql:// (or postgresql+asyncpg://) URL",
        ),
        ("db.internal/sweep", "SWEEP_DATABASE_URL must be a postgresql:// (or postgresql+asyncpg://) URL"),
        ("postgresql://sweep:s3cret-pw@/sweep", f"SWEEP_DATABASE_URL names no host: {shape}"),
        ("postgresql://sweep:s3cret-pw@db.internal", f"SWEEP_DATABASE_URL names no database: {shape}"),
        (
            "postgresql://sweep:s3cret-pw@db.internal:port/sweep",
            f"SWEEP_DATABASE_URL is not a valid URL: {shape}",
        ),
    ):
        assert problems({**GOOD, "SWEEP_DATABASE_URL": bad}) == (line,), bad
        with pytest.raises(ConfigError) as raised:
            load_database_target({"SWEEP_DATABASE_URL": bad})
        assert tuple(raised.value.problems) == (line,) and "s3cret" not in line
    assert load_database_target({"SWEEP_DATABASE_URL": url}) == url
    assert load_database_target({"SWEEP_DATABASE": str(tmp_path / "y.db")}) == tmp_path / "y.db"


def test_log_level_alone() -> None:
    assert load_log_level({}) == "INFO"
    assert load_log_level({"SWEEP_LOG_LEVEL": "warning"}) == "WARNING"
    with pytest.raises(ConfigError) as raised:
        load_log_level({"SWEEP_LOG_LEVEL": "LOUD\x1b[31m"})
    (line,) = raised.value.problems
    assert line.startswith("SWEEP_LOG_LEVEL must be one of") and "\x1b" not in line


def test_log_format_alone() -> None:
    assert load_log_format({}) == "text"
    assert load_log_format({"SWEEP_LOG_FORMAT": "JSON"}) == "json"
    with pytest.raises(ConfigError) as raised:
        load_log_format({"SWEEP_LOG_FORMAT": "yaml"})
    assert list(raised.value.problems) == ["SWEEP_LOG_FORMAT must be text or json, not 'yaml'"]


def test_a_long_value_is_cut_short() -> None:
    (line,) = problems({**GOOD, "SWEEP_POLL_SECONDS": "9" * 500})
    assert len(line) < 200
