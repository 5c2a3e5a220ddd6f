"""State carried in Slack payloads (button `value`, modal `private_metadata`) as small pydantic models.

Each model is encoded as compact JSON (unset fields left out) and checked against Slack's limit for
where it travels. Decoding never raises anything but `PayloadError`: a forged or garbled payload
must not crash a handler. Unknown fields are ignored so a button posted by a newer release still
decodes in an older one, and vice versa.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bot.cloudflare.models import is_job_id
from bot.draft import JobDraft
from bot.slack_limits import BUTTON_VALUE_MAX, PRIVATE_METADATA_MAX

__all__ = [
    "ApprovalButtonValue",
    "CancelButtonValue",
    "ConfirmCreateValue",
    "ListPageValue",
    "ModalMetadata",
    "Payload",
    "PayloadError",
    "PayloadTooLargeError",
    "RejectMetadata",
    "decode",
    "encode",
]

_API_NAME_RE = re.compile(r"^[A-Za-z_-]{1,32}$")
_INCOMING = "incoming"
SlackId = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,64}$")]


def _incoming(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get(_INCOMING))


class PayloadError(ValueError):
    """A payload could not be read (garbled, forged, or from an incompatible version)."""


class PayloadTooLargeError(PayloadError):
    """A payload is longer than Slack allows where it travels."""


class Payload(BaseModel):
    """Base of every payload model: frozen, compact, with the limit of where it travels."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    MAX_CHARS: ClassVar[int] = BUTTON_VALUE_MAX


class CancelButtonValue(Payload):
    """The Cancel button on a job card."""

    job_id: str = Field(min_length=1, max_length=200)

    @field_validator("job_id")
    @classmethod
    def _uuid_when_read(cls, value: str, info: ValidationInfo) -> str:
        # Building a card for an odd id must not fail; reading one back must be a real job id.
        if _incoming(info) and not is_job_id(value):
            raise ValueError("not a job id")
        return value


PreviewId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")]


class ConfirmCreateValue(Payload):
    """The Confirm button of an inline preview: only the id of the preview stored server-side.

    What is created, and for whom and where, is read from the stored preview, never from here.
    """

    preview_id: PreviewId


ApprovalId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{16,64}$")]


class ApprovalButtonValue(Payload):
    """The Approve and Reject buttons of an approval request: only the id of the stored request.

    What is approved, for whom and where, is read from the stored request, never from here.
    """

    approval_id: ApprovalId


class RejectMetadata(Payload):
    """The reject modal's `private_metadata`: the approval it rejects (re-authorised at submit)."""

    MAX_CHARS: ClassVar[int] = PRIVATE_METADATA_MAX

    approval_id: ApprovalId


class ModalMetadata(Payload):
    """The create modal's `private_metadata`: the id of its server-side record, and the draft to show.

    The draft only pre-fills the form when going back; what a confirm creates is the stored preview.
    """

    MAX_CHARS: ClassVar[int] = PRIVATE_METADATA_MAX

    preview_id: PreviewId
    draft: JobDraft | None = None
    stage: Literal["form", "preview"] = "form"

    @model_validator(mode="after")
    def _preview_has_draft(self) -> ModalMetadata:
        if self.stage == "preview" and self.draft is None:
            raise ValueError("a preview stage needs its draft")
        return self


class ListPageValue(Payload):
    """The paging buttons of `/sweep list`: the filters and the page to show."""

    status: str | None = Field(default=None, max_length=200)
    action_type: str | None = Field(default=None, max_length=200)
    page: int = Field(default=1, ge=1, le=10_000)

    @field_validator("status", "action_type")
    @classmethod
    def _api_name_when_read(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and _incoming(info) and not _API_NAME_RE.match(value):
            raise ValueError("not a status or action name")
        return value


PayloadT = TypeVar("PayloadT", bound=Payload)


def encode(model: Payload) -> str:
    """Return the model as compact JSON, or raise `PayloadTooLargeError` if Slack would refuse it."""
    text = model.model_dump_json(exclude_none=True)
    limit = type(model).MAX_CHARS
    if len(text) > limit:
        raise PayloadTooLargeError(
            f"{type(model).__name__} is {len(text)} characters encoded; Slack allows at most {limit}"
        )
    return text


def decode(cls: type[PayloadT], text: str) -> PayloadT:
    """Read a payload of this type, raising `PayloadError` (never anything else) when it is unusable."""
    name = getattr(cls, "__name__", "payload")
    if not isinstance(text, str) or not text:
        raise PayloadError(f"{name}: empty or not text")
    if len(text) > cls.MAX_CHARS:
        raise PayloadError(f"{name}: {len(text)} characters, more than the {cls.MAX_CHARS} Slack allows")
    try:
        return cls.model_validate_json(text, context={_INCOMING: True})
    except (ValidationError, ValueError, TypeError, RecursionError) as error:
        raise PayloadError(f"{name} could not be read ({_reason(error)})") from error


def _reason(error: Exception) -> str:
    if isinstance(error, ValidationError) and error.error_count():
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        return f"{location or 'value'}: {first['type']}"
    return type(error).__name__
