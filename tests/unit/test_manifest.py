"""manifest.yml is a valid Slack app manifest (Slack's published JSON schema) with what Sweep needs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "slack" / "manifest.schema.json"  # Slack's published schema, kept in the repository


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return schema


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "manifest.yml").read_text())
    return data


def _validator() -> jsonschema.Draft7Validator:
    schema = _schema()
    # The schema declares draft-07 in `$schema`; check that, then validate with that draft explicitly.
    assert schema.get("$schema", "").startswith("http://json-schema.org/draft-07/schema")
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_manifest_matches_slack_schema(manifest: dict[str, Any]) -> None:
    errors = sorted(_validator().iter_errors(manifest), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_schema_catches_mistakes(manifest: dict[str, Any]) -> None:
    validator = _validator()
    broken = json.loads(json.dumps(manifest))
    broken["features"]["slash_commands"][0]["command"] = "sweep"  # must start with /
    broken["settings"]["interactivity"].pop("is_enabled")
    assert len(list(validator.iter_errors(broken))) == 2


def test_slash_command(manifest: dict[str, Any]) -> None:
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/sweep"
    assert command["should_escape"] is False
    assert command["usage_hint"] == (
        "help | new | move … to:folder | release … | list | status <id> | cancel <id> | watch <id>"
    )
    assert command["url"] == manifest["settings"]["interactivity"]["request_url"]
    assert command["url"].endswith("/slack/events")


def test_app_settings(manifest: dict[str, Any]) -> None:
    assert manifest["display_information"]["name"] == "Sweep"
    assert manifest["features"]["bot_user"]["display_name"] == "Sweep"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["settings"]["socket_mode_enabled"] is True
    # The schema spells this constraint `regex`, which JSON Schema ignores: check it here.
    assert re.fullmatch(
        r"#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?", manifest["display_information"]["background_color"]
    )
    # No event subscriptions: Sweep only needs the command and interactivity.
    assert "event_subscriptions" not in manifest["settings"]


def test_smallest_scopes_each_explained(manifest: dict[str, Any]) -> None:
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert scopes == ["commands", "chat:write", "usergroups:read", "channels:history", "groups:history"]
    assert "user" not in manifest["oauth_config"]["scopes"]
    text = (ROOT / "manifest.yml").read_text().splitlines()
    for scope in scopes:
        index = next(i for i, line in enumerate(text) if line.strip() == f"- {scope}")
        assert text[index - 1].strip().startswith("#"), f"scope {scope} needs a comment saying why"
