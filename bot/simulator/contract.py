"""The simulator's request contract, read from Cloudflare's own OpenAPI document.

`email-security-investigate.openapi.json` (beside this module, identical to `spec/` in the repository) is
Cloudflare's official description. For every operation the simulator serves, the path and query
parameters and the request body are validated against that document's schemas (types, enums, formats,
integer ranges, lengths, nullability, required fields) with jsonschema: there is one description per
endpoint and no hand-written type check in the handlers. What the document cannot say (MOVE needs a
`destination`, `end` not before `start`, a cursor belongs to its search) is checked afterwards in
`validation.py`.

Query values arrive as text: an `integer` must be written in decimal digits, a `boolean` as `true` or
`false`, and a parameter given twice is refused (none of them is an array). An empty value is a value:
`start=` is not a date-time, `action_type=` is not an action.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from bot.simulator.validation import SimError, parse_time

SPEC_FILE = "email-security-investigate.openapi.json"
# Paging parameters keep their own code (1006), as the simulator always answered; a malformed job id
# names no job (404, 1404); everything else the document forbids is 1002 (1003 for a missing field).
PAGING = frozenset({"page", "per_page"})
_DROP = frozenset(
    {"example", "examples", "description", "discriminator", "deprecated", "xml", "externalDocs"}
)
_INTEGER = re.compile(r"-?[0-9]+")
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _revision_extensions(schemas: dict[str, Any], operations: dict[tuple[str, str], Any]) -> None:
    """Add what the newer API revision (SDK 5.9, `spec/…sdk-5.9.0-overlay…`) accepts and Sweep may send.

    Only additions: a newer client keeps working against the simulator, and nothing the official
    document forbids for another reason becomes allowed.
    """
    schemas["email-security_MessageDeliveryStatus"]["enum"].append("move_failed")
    schemas["email-security_BulkSearchParams"]["properties"]["smtp_helo_ip"] = {
        "type": "string",
        "nullable": True,
    }
    search = operations[("GET", "/accounts/{account_id}/email-security/investigate")]
    search["parameters"].append({"name": "smtp_helo_ip", "in": "query", "schema": {"type": "string"}})


# ---------------------------------------------------------------------------- OpenAPI 3.0 -> JSON Schema


def _to_json_schema(node: Any, document: Mapping[str, Any]) -> Any:
    """Resolve `$ref`s and turn OpenAPI 3.0 `nullable` into JSON Schema (`type` admits null)."""
    if isinstance(node, list):
        return [_to_json_schema(item, document) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _to_json_schema(_resolve(node["$ref"], document), document)
    schema = {
        key: _properties(value, document) if key == "properties" else _to_json_schema(value, document)
        for key, value in node.items()
        if key not in _DROP and not key.startswith("x-") and key != "nullable"
    }
    # OpenAPI 3.0.3: `nullable` adds null to the type only; an `enum` admits null only if it lists it
    # (so `message_action: null` is refused, as the document says).
    if node.get("nullable") is True and isinstance(schema.get("type"), str):
        schema["type"] = [schema["type"], "null"]
    return schema


def _properties(node: Any, document: Mapping[str, Any]) -> Any:
    # Property names are data, not keywords: none of them is dropped.
    if not isinstance(node, dict):
        return node
    return {name: _to_json_schema(value, document) for name, value in node.items()}


def _resolve(ref: str, document: Mapping[str, Any]) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported: {ref}")
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# ---------------------------------------------------------------------------- formats


def _is_date_time(value: object) -> bool:
    """RFC 3339 date-time with an offset (what `format: date-time` means), and a real instant."""
    if not isinstance(value, str):
        return True
    if not _DATE_TIME.fullmatch(value):
        return False
    try:
        parse_time(value, "value")
    except SimError:
        return False
    return True


def _is_uuid(value: object) -> bool:
    return not isinstance(value, str) or _UUID.fullmatch(value) is not None


def _format_checker() -> FormatChecker:
    # Only the formats the simulator relies on, checked the same way whatever optional packages exist.
    checker = FormatChecker(formats=())
    checker.checks("date-time")(_is_date_time)
    checker.checks("uuid")(_is_uuid)
    return checker


# ---------------------------------------------------------------------------- contracts


@dataclass(frozen=True)
class Parameter:
    """One path or query parameter: its JSON schema and how its text becomes a value."""

    name: str
    location: str
    required: bool
    schema: dict[str, Any]

    def coerce(self, text: str) -> Any:
        """Return the typed value of `text`, or the text itself when it is not of the declared type."""
        types = self.schema.get("type")
        kinds = {types} if isinstance(types, str) else set(types or ())
        if text == "" and "null" in kinds:
            return None
        if "integer" in kinds and _INTEGER.fullmatch(text):
            # Python refuses to convert (or print) integers of more than 4300 digits: past 1000 digits
            # the value stands for itself at 10**1000, which is as far out of any range.
            if len(text.lstrip("-")) > 1000:
                return -(10**1000) if text.startswith("-") else 10**1000
            return int(text)
        if "boolean" in kinds and text in {"true", "false"}:
            return text == "true"
        return text


@dataclass(frozen=True)
class RequestArgs:
    """A request that passed its contract: typed path and query values (defaults filled in) and body."""

    path: dict[str, Any]
    query: dict[str, Any]
    body: Any = None


@dataclass(frozen=True)
class Operation:
    """Everything the document says about one operation's request, ready to validate."""

    method: str
    path: str
    operation_id: str
    parameters: tuple[Parameter, ...]
    path_validator: Draft7Validator
    query_validator: Draft7Validator
    body_validator: Draft7Validator | None

    @property
    def takes_body(self) -> bool:
        """Return True when the operation has a JSON request body."""
        return self.body_validator is not None

    def validate(self, match_info: Mapping[str, str], query: Any, body: Any = None) -> RequestArgs:
        """Return the typed arguments, or raise a SimError listing every violation.

        `query` is the request's multi-dict; `body` the parsed JSON body (ignored when the operation
        takes none). Query defaults the document declares are filled in.
        """
        path_values = {p.name: p.coerce(match_info[p.name]) for p in self.parameters if p.location == "path"}
        problems = _errors(self.path_validator, path_values, "path", self._codes)
        query_values: dict[str, Any] = {}
        for p in self.parameters:
            if p.location != "query":
                continue
            given: list[str] = query.getall(p.name, [])
            if len(given) > 1:
                problems.append(
                    _error(self._codes("query", p.name), f"{p.name} is given more than once", p.name)
                )
            if given:
                query_values[p.name] = p.coerce(given[0])
        problems += _errors(self.query_validator, query_values, "query", self._codes)
        payload = body if self.body_validator is not None else None
        if self.body_validator is not None:
            problems += _errors(self.body_validator, payload, "body", self._codes)
        if problems:
            raise _combined(problems)
        for p in self.parameters:
            if p.location == "query" and p.name not in query_values and "default" in p.schema:
                query_values[p.name] = p.schema["default"]
        return RequestArgs(path_values, query_values, payload)

    def _codes(self, location: str, name: str) -> tuple[int, int]:
        if location == "path" and name == "job_id":
            return 404, 1404
        if location == "query" and name in PAGING:
            return 400, 1006
        return 400, 1002


def _error(codes: tuple[int, int], message: str, pointer: str | None) -> SimError:
    return SimError(codes[0], codes[1], message, pointer=pointer)


def _combined(problems: list[SimError]) -> SimError:
    """One answer for all violations: the first decides the status; duplicates are dropped."""
    unique: dict[tuple[int, str | None, str], SimError] = {}
    for problem in problems:
        unique.setdefault((problem.code, problem.pointer, problem.message), problem)
    ordered = list(unique.values())
    statuses = {p.status for p in ordered}
    # A job id that is no uuid names no job: that answer (404) wins over the 400s.
    first = next((p for p in ordered if p.status == 404), ordered[0]) if 404 in statuses else ordered[0]
    rest = [p for p in ordered if p is not first and p.status == first.status]
    return SimError(first.status, first.code, first.message, pointer=first.pointer, more=rest)


def _errors(
    validator: Draft7Validator, instance: Any, location: str, codes: Callable[[str, str], tuple[int, int]]
) -> list[SimError]:
    found: list[SimError] = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path]):
        found.extend(_translate(error, location, codes))
    return found


def _translate(
    error: ValidationError, location: str, codes: Callable[[str, str], tuple[int, int]]
) -> Iterable[SimError]:
    path = [str(part) for part in error.absolute_path]
    required: Any = error.validator_value if error.validator == "required" else ()
    instance: Any = error.instance
    if location == "body":
        if not path and error.validator == "type":
            yield SimError(400, 1001, "request body must be a JSON object")
            return
        pointer = "/" + "/".join(path) if path else None
        if error.validator == "required":
            for name in required:
                if name not in instance:
                    yield SimError(400, 1003, f"{name} is required", pointer=f"{pointer or ''}/{name}")
            return
        yield SimError(400, 1002, _describe(error, path[-1] if path else "body"), pointer=pointer)
        return
    name = path[0] if path else ""
    if error.validator == "required":
        for missing in required:
            if missing not in instance:
                yield _error(codes(location, missing), f"{missing} is required", missing)
        return
    status, code = codes(location, name)
    message = f"bulk job not found: {instance}" if status == 404 else _describe(error, name)
    yield SimError(status, code, message, pointer=name)


def _describe(error: ValidationError, name: str) -> str:
    """Say what the document requires of the field, in the words of the simulator's other answers."""
    keyword = error.validator
    expected: Any = error.validator_value
    value: Any = error.instance
    if keyword == "enum":
        allowed = ", ".join(str(v) for v in expected if v is not None)
        return f"{name} must be one of {allowed}; got {_show(value)}"
    if keyword == "type":
        kinds = [expected] if isinstance(expected, str) else list(expected)
        words = {
            "integer": "an integer",
            "boolean": "true or false",
            "string": "a string",
            "object": "an object",
        }
        wanted = " or ".join(words.get(kind, kind) for kind in kinds if kind != "null")
        return f"{name} must be {wanted}" + ("" if "null" not in kinds else " (or null)")
    if keyword == "format":
        described = {"date-time": "an RFC 3339 date-time", "uuid": "a uuid"}.get(str(expected), str(expected))
        return f"{name} must be {described}; got {_show(value)}"
    if keyword == "minimum":
        return f"{name} must be at least {expected}"
    if keyword == "maximum":
        return f"{name} must be at most {expected}"
    if keyword == "maxLength":
        return f"{name} must be at most {expected} characters"
    if keyword == "minLength":
        return f"{name} must be at least {expected} characters"
    return f"{name} is not valid: {error.message[:200]}"


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _object_validator(properties: dict[str, dict[str, Any]], required: list[str]) -> Draft7Validator:
    schema = {"type": "object", "properties": properties, "required": required}
    return Draft7Validator(schema, format_checker=_format_checker())


@cache
def operations() -> dict[tuple[str, str], Operation]:
    """Return the contract of every operation in the document, keyed by (METHOD, path template)."""
    document = json.loads(resources.files(__package__).joinpath(SPEC_FILE).read_text(encoding="utf-8"))
    raw: dict[tuple[str, str], Any] = {}
    for template, item in document["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters":
                continue
            raw[(method.upper(), template)] = {
                **operation,
                "parameters": [*shared, *operation.get("parameters", [])],
            }
    _revision_extensions(document["components"]["schemas"], raw)
    return {key: _build(key, operation, document) for key, operation in raw.items()}


def _build(key: tuple[str, str], operation: Mapping[str, Any], document: Mapping[str, Any]) -> Operation:
    declared = (_to_json_schema(p, document) for p in operation["parameters"])
    parameters = tuple(
        Parameter(p["name"], p["in"], bool(p.get("required")), p.get("schema", {}))
        for p in declared
        if p["in"] in {"path", "query"}
    )

    def validator(location: str) -> Draft7Validator:
        chosen = [p for p in parameters if p.location == location]
        return _object_validator({p.name: p.schema for p in chosen}, [p.name for p in chosen if p.required])

    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    return Operation(
        method=key[0],
        path=key[1],
        operation_id=operation.get("operationId", ""),
        parameters=parameters,
        path_validator=validator("path"),
        query_validator=validator("query"),
        body_validator=None
        if body is None
        else Draft7Validator(_to_json_schema(body, document), format_checker=_format_checker()),
    )


def operation_for(method: str, template: str) -> Operation | None:
    """Return the contract of `METHOD template` (HEAD uses GET's), or None when the document has none."""
    found = operations()
    return found.get((method, template)) or (found.get(("GET", template)) if method == "HEAD" else None)
