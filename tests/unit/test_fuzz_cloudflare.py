"""Random Cloudflare answers that are valid against the OpenAPI document: parse them, then render them.

Strategies are built from the schemas themselves by a small interpreter of the JSON Schema subset the
document uses (hypothesis-jsonschema 0.23 does not work with current Hypothesis), after turning the
OpenAPI 3.0 dialect into JSON Schema (`nullable`, `$ref`, `discriminator`). Every string enum is widened to
"the documented values or any other string" — Cloudflare adds statuses and folders over time — and
the newer revision's counters (`messages_cancelled`, `messages_skipped`) are added; objects accept
extra fields, which hypothesis fills with arbitrary JSON. Whatever comes back:

- the models in `bot/cloudflare/models.py` parse it (and the client's envelope handling accepts it);
- every surface built from it — job card, transition reply, status card, job list, inline preview and
  the modal's preview — passes `validate_message` / `validate_view`;
- no `<` or `>` from Cloudflare's data reaches a mrkdwn text unescaped (so no ping, mention or link).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from functools import cache
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from blocks.create_modal import build_preview_view
from blocks.job_card import build_job_card, build_status_card, build_transition_reply
from blocks.job_list import build_job_list
from blocks.preview import build_inline_preview
from blocks.validate import validate_message, validate_view
from bot.cloudflare.client import CloudflareClient, Credentials, RetryPolicy
from bot.cloudflare.models import BulkJob, JobMessage, MessageSummary, SearchResult
from bot.grammar import CreateCommand, parse_command
from bot.models import TrackedJob
from bot.payloads import ConfirmCreateValue, ModalMetadata, encode
from tests.support import SPEC_PATH, mrkdwn_texts

SCHEMA_PREFIX = "#/components/schemas/"
ACCOUNT = "0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
CHANNEL = "C0INCIDENT"
REQUESTERS = [None, "U0OPERATOR", "W0ENTERPRISE", "not-a-user-id <!channel>"]
STATUSES = ["PENDING", "DISCOVERING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED"]
NEWER_COUNTERS = {"messages_cancelled": {"type": "integer"}, "messages_skipped": {"type": "integer"}}
_DROP = {"discriminator", "deprecated", "readOnly", "writeOnly", "example", "description", "default"}

FUZZ = settings(
    max_examples=60,
    deadline=None,
    # The explain phase re-runs big examples hundreds of times; the shrunk example says enough.
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# ---------------------------------------------------------------------------- OpenAPI → JSON Schema


@cache
def _components() -> dict[str, Any]:
    spec = json.loads(SPEC_PATH.read_text())
    return dict(spec["components"]["schemas"])


def _convert(node: Any) -> Any:
    """Return `node` as JSON Schema: refs inlined, `nullable` as a null branch, enums widened."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith(SCHEMA_PREFIX), ref
        return _convert(copy.deepcopy(_components()[ref.removeprefix(SCHEMA_PREFIX)]))
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key.startswith("x-") or key == "nullable":
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {name: _convert(sub) for name, sub in value.items()}
        else:
            out[key] = _convert(value)
    if "oneOf" in out:
        # Widened `type` enums make the branches overlap; any branch is a valid answer.
        out["anyOf"] = out.pop("oneOf")
    if "enum" in out and out.get("type") == "string":
        enum = {"type": "string", "enum": out.pop("enum")}
        other = {"type": "string", "maxLength": 40}
        out = {**{k: v for k, v in out.items() if k != "type"}, "anyOf": [enum, other]}
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def schema_of(name: str, *, extra_properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """Return the JSON Schema of `email-security_<name>` (with extra optional properties)."""
    raw = copy.deepcopy(_components()[f"email-security_{name}"])
    raw.setdefault("properties", {}).update(extra_properties or {})
    return dict(_convert(raw))


# Strings as an API might hold them: any text, with Slack markup and HTML-ish characters mixed in.
MARKUP = [
    "<!channel>",
    "<@U999>",
    "<https://evil.example|bank>",
    "&lt;",
    "&amp;",
    "<",
    ">",
    "&",
    "*",
    "`",
    "\n",
]
any_text = st.lists(st.one_of(st.text(max_size=30), st.sampled_from(MARKUP)), max_size=5).map("".join)
json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), any_text
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(any_text, inner, max_size=3)),
    max_leaves=6,
)


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    """Return an RFC 3339 date-time: any year, `Z` or an offset, with or without fractional seconds.

    The calendar's first and last days are included: there an offset moves the UTC equivalent
    outside Python's range, which the models clamp.
    """
    edge = st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)])
    moment = draw(st.one_of(edge, st.datetimes()))
    text = f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}"
    if draw(st.booleans()):
        text += "." + str(draw(st.integers(0, 999_999))).zfill(draw(st.integers(1, 6)))[:6]
    offset = draw(
        st.one_of(st.just("Z"), st.tuples(st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59)))
    )
    if isinstance(offset, tuple):
        sign, hours, minutes = offset
        return f"{text}{sign}{hours:02d}:{minutes:02d}"
    return text + offset


FORMATS: dict[str, st.SearchStrategy[str]] = {"uuid": st.uuids().map(str), "date-time": rfc3339()}


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Return a strategy for values valid against `schema` (the subset this document uses)."""
    if "allOf" in schema:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged.update(part)
        return from_schema(merged)
    if "anyOf" in schema:
        base = {k: v for k, v in schema.items() if k != "anyOf"}
        return st.one_of([from_schema({**base, **branch}) for branch in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers()
    if kind == "number":
        return st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False))
    if kind == "string":
        if schema.get("format") in FORMATS:
            return FORMATS[schema["format"]]
        return any_text.map(lambda text: text[: schema.get("maxLength", len(text))])
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), max_size=4)
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        known = st.fixed_dictionaries(
            {name: from_schema(sub) for name, sub in properties.items() if name in required},
            optional={name: from_schema(sub) for name, sub in properties.items() if name not in required},
        )
        # Fields the document does not know yet (a newer revision): clients must ignore them.
        unknown = st.dictionaries(any_text.filter(lambda key: key not in properties), json_values, max_size=3)
        return st.builds(lambda extra, fields: {**extra, **fields}, unknown, known)
    return json_values  # no type: anything


def answers(name: str, **kw: Any) -> st.SearchStrategy[dict[str, Any]]:
    """Return a strategy for schema-valid objects of one component."""
    return from_schema(schema_of(name, **kw))


bulk_jobs = st.deferred(lambda: answers("BulkJobDetail", extra_properties=NEWER_COUNTERS))
job_messages = st.deferred(lambda: answers("BulkActionMessageDetail"))
message_details = st.deferred(lambda: answers("MessageDetails"))


# ---------------------------------------------------------------------------- checks

# Mrkdwn Sweep writes itself: a mention of a Slack user id it was given.
_OWN_MENTION = re.compile(r"<@[UW][A-Z0-9]+>")


def assert_escaped(texts: list[str], where: str) -> None:
    """Fail when a mrkdwn text holds a `<` or `>` that Sweep did not write itself.

    A `>` opening a line is Sweep's own blockquote (the card quotes the comment that way).
    """
    for text in texts:
        stripped = _OWN_MENTION.sub("", text)
        assert "<" not in stripped, f"{where}: unescaped '<' in {stripped[:300]!r}"
        for line in stripped.splitlines():
            assert ">" not in line.lstrip(">"), f"{where}: unescaped '>' in {line[:300]!r}"


def check_message(payload: dict[str, Any], where: str) -> None:
    """Validate a message and check its mrkdwn (the fallback text is mrkdwn in notifications too)."""
    validate_message(payload)
    assert_escaped([payload["text"], *mrkdwn_texts(payload.get("blocks"))], where)


def check_view(view: dict[str, Any], where: str) -> None:
    """Validate a modal and check its mrkdwn."""
    validate_view(view)
    assert_escaped(mrkdwn_texts(view.get("blocks")), where)


# ---------------------------------------------------------------------------- bulk jobs


@FUZZ
@given(
    data=bulk_jobs,
    requester=st.sampled_from(REQUESTERS),
    previous=st.one_of(st.none(), st.sampled_from(STATUSES), st.text(max_size=20)),
    cancelled_by=st.sampled_from([None, "U0OPERATOR"]),
    gone=st.booleans(),
)
def test_any_bulk_job_parses_and_renders_as_valid_escaped_blocks(
    data: dict[str, Any], requester: str | None, previous: str | None, cancelled_by: str | None, gone: bool
) -> None:
    job = BulkJob.model_validate(data)
    assert str(job.status) == data["status"] and job.job_id == data["job_id"]
    tracked = TrackedJob.from_job(job, account_id=ACCOUNT, now=NOW, requester=requester, channel_id=CHANNEL)
    tracked = tracked.model_copy(update={"cancelled_by": cancelled_by, "gone": gone, "card_ts": "1.000100"})
    check_message(build_job_card(tracked, now=NOW), "job card")
    check_message(build_transition_reply(tracked, previous_status=previous, now=NOW), "transition reply")
    untracked = TrackedJob.from_job(job, account_id=ACCOUNT, now=NOW)
    check_message(build_status_card(untracked, tracked=False, now=NOW), "status card (untracked)")
    check_message(build_status_card(tracked, tracked=True, now=NOW), "status card (tracked)")


@FUZZ
@given(
    jobs=st.lists(bulk_jobs, max_size=45),
    page=st.integers(1, 4),
    has_more=st.booleans(),
    status=st.one_of(st.none(), st.sampled_from(STATUSES), st.text(max_size=30)),
    action_type=st.one_of(st.none(), st.sampled_from(["MOVE", "RELEASE"]), st.text(max_size=30)),
)
def test_any_page_of_bulk_jobs_renders_as_a_valid_escaped_list(
    jobs: list[dict[str, Any]], page: int, has_more: bool, status: str | None, action_type: str | None
) -> None:
    parsed = [TrackedJob.from_job(BulkJob.model_validate(job), account_id=ACCOUNT, now=NOW) for job in jobs]
    check_message(
        build_job_list(parsed, page=page, has_more=has_more, status=status, action_type=action_type, now=NOW),
        "job list",
    )


@settings(FUZZ, max_examples=30)
@given(jobs=st.lists(bulk_jobs, max_size=5), extra=st.dictionaries(st.text(max_size=10), st.integers()))
async def test_the_client_accepts_any_schema_valid_list_answer(
    jobs: list[dict[str, Any]], extra: dict[str, int]
) -> None:
    envelope = {
        "success": True,
        "errors": [],
        "messages": [],
        "result": jobs,
        "result_info": {"count": len(jobs), "per_page": 100, "page": 0, "total_count": 0},
        **{k: v for k, v in extra.items() if k not in ("success", "result", "result_info")},
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=envelope))
    async with httpx.AsyncClient(transport=transport) as http:
        client = CloudflareClient(
            http,
            account_id=ACCOUNT,
            credentials=Credentials(api_token=SecretStr("token")),
            base_url="https://api.example/client/v4",
            retry=RetryPolicy(max_attempts=1),
        )
        page = await client.list_jobs(per_page=100)
    assert [job.job_id for job in page.items] == [job["job_id"] for job in jobs]


# ---------------------------------------------------------------------------- job messages


@FUZZ
@given(data=job_messages)
def test_any_bulk_job_message_parses(data: dict[str, Any]) -> None:
    message = JobMessage.model_validate(data)
    assert message.message_id == data["message_id"] and str(message.status) == data["status"]


# ---------------------------------------------------------------------------- previews


DRAFTS = [
    "move subject:invoice to:junk",
    'move sender:a@b.example since:30d to:purge comment:"<!channel> wave & more"',
    'release alert_id:A-1 comment:"false positive"',
    'move query:"<https://evil.example|bank>" detections_only:yes to:deleted',
]


def _draft(text: str) -> Any:
    command = parse_command(text, now=NOW)
    assert isinstance(command, CreateCommand)
    return command.draft


@settings(FUZZ, max_examples=40)
@given(
    samples=st.lists(message_details, max_size=6),
    capped=st.booleans(),
    draft_text=st.sampled_from(DRAFTS),
)
def test_any_search_results_render_as_valid_escaped_previews(
    samples: list[dict[str, Any]], capped: bool, draft_text: str
) -> None:
    messages = [MessageSummary.model_validate(sample) for sample in samples]
    for message, sample in zip(messages, samples, strict=True):
        assert message.id == sample["id"]
    draft = _draft(draft_text)
    preview = SearchResult(messages=messages, capped=capped)
    confirm_value = encode(ConfirmCreateValue(preview_id="pV1ew-0123456789abcdef"))
    inline = build_inline_preview(
        draft=draft, preview=preview, limit=1000, confirm_value=confirm_value, now=NOW
    )
    check_message(inline, "inline preview")
    metadata = encode(ModalMetadata(preview_id="pV1ew-0123456789abcdef", draft=draft, stage="preview"))
    view = build_preview_view(metadata=metadata, draft=draft, preview=preview, limit=1000, now=NOW)
    check_view(view, "modal preview")
