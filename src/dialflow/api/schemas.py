"""The HTTP boundary's models (API.md): camelCase on the wire, validated by pydantic.

Request bodies refuse unknown fields (a typo like ``ringtimeout`` is a 422 with its
path, not a silently ignored option) — the same rule as flow documents.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

_ORG_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_RESOURCE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_HEADER_NAME = re.compile(r"^X-[A-Za-z0-9-]{1,64}$")


#: The call status machine of API.md (``CallStatus`` values), as the wire contract names it.
CallStatusName = Literal[
    "queued",
    "dialing",
    "ringing",
    "in_progress",
    "completed",
    "busy",
    "no_answer",
    "failed",
    "canceled",
]


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", str_max_length=4096
    )


class OutModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


# -- errors


class ErrorDetail(OutModel):
    path: str | None = None
    message: str


class ErrorBody(OutModel):
    code: str
    message: str
    details: list[ErrorDetail] = []


class ErrorResponse(OutModel):
    error: ErrorBody


# -- organizations


class OrganizationCreate(ApiModel):
    id: str = Field(pattern=_ORG_ID, description="lower-case id, e.g. acme")
    name: str = Field(min_length=1, max_length=200)
    max_concurrent_calls: int = Field(10, ge=1, le=100_000)
    calls_per_second: float = Field(5.0, gt=0, le=10_000)
    allowed_destinations: list[str] = Field(default_factory=list, max_length=1000)


class OrganizationPatch(ApiModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    max_concurrent_calls: int | None = Field(None, ge=1, le=100_000)
    calls_per_second: float | None = Field(None, gt=0, le=10_000)
    allowed_destinations: list[str] | None = Field(None, max_length=1000)


class OrganizationOut(OutModel):
    id: str
    name: str
    max_concurrent_calls: int
    calls_per_second: float
    allowed_destinations: list[str]
    created_at: datetime | None = None
    webhook_secret: str | None = Field(
        None, description="only in the creation and rotation responses"
    )


class WebhookSecretOut(OutModel):
    webhook_secret: str


class ApiKeyCreate(ApiModel):
    name: str = Field(min_length=1, max_length=200)


class ApiKeyOut(OutModel):
    id: str
    name: str
    key: str = Field(description="shown once; stored hashed")
    created_at: datetime | None = None


# -- trunks


class TrunkCreate(ApiModel):
    id: str = Field(pattern=_RESOURCE_ID)
    proxy: str = Field(description="SIP URI of the carrier's proxy, e.g. sip:sbc.example.net:5060")
    username: str | None = Field(None, max_length=256)
    password: str | None = Field(None, max_length=256)
    from_user: str | None = Field(None, max_length=64)
    default: bool = False


class TrunkPatch(ApiModel):
    proxy: str | None = None
    username: str | None = Field(None, max_length=256)
    password: str | None = Field(None, max_length=256)
    from_user: str | None = Field(None, max_length=64)
    default: bool | None = None


class TrunkOut(OutModel):
    id: str
    proxy: str
    username: str | None
    has_password: bool
    from_user: str | None
    default: bool
    created_at: datetime | None = None


class TrunkList(OutModel):
    data: list[TrunkOut]


# -- flows


class FlowOut(OutModel):
    id: str
    version: int
    name: str | None = None
    created_at: datetime | None = None
    warnings: list[ErrorDetail] = []
    document: dict[str, Any]


class FlowList(OutModel):
    data: list[FlowOut]


# -- numbers


class NumberCreate(ApiModel):
    number: str = Field(pattern=r"^[A-Za-z0-9+*#._-]{1,64}$")
    flow_id: str = Field(pattern=r"^[a-z0-9-]{1,64}$")


class NumberOut(OutModel):
    number: str
    flow_id: str
    sip_uri: str
    created_at: datetime | None = None


class NumberList(OutModel):
    data: list[NumberOut]


# -- calls


AmdResult = Literal["human", "machine", "fax", "unknown"]


_DEFAULT_RUN_FLOW_ON: list[AmdResult] = ["human", "unknown"]


class AmdOptionsIn(ApiModel):
    enabled: bool = True
    mode: Literal["sync", "async"] = "sync"
    timeout_ms: int = Field(5000, ge=500, le=60_000)
    detect_beep: bool = False
    run_flow_on: list[AmdResult] = Field(default_factory=lambda: _DEFAULT_RUN_FLOW_ON.copy())


class CallCreate(ApiModel):
    to: str = Field(min_length=1, max_length=512)
    from_: str | None = Field(None, alias="from", max_length=128)
    mode: Literal["sync", "poll", "webhook"] = "poll"
    webhook_url: str | None = Field(None, max_length=2048)
    ring_timeout: int = Field(30, ge=1, le=120)
    max_duration: int = Field(3600, ge=1, le=86_400)
    sync_timeout: int = Field(30, ge=1, le=30)
    amd: AmdOptionsIn | None = None
    variables: dict[str, Any] = Field(default_factory=dict, max_length=200)
    sip_headers: dict[str, str] = Field(default_factory=dict, max_length=50)
    trunk: str | None = Field(None, pattern=_RESOURCE_ID)
    record: bool = False

    @field_validator("sip_headers")
    @classmethod
    def _x_headers_only(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(f"{name!r}: only X- headers may be added")
            if any(ch in value for ch in "\r\n\0") or len(value) > 1024:
                raise ValueError(f"{name!r}: bad header value")
        return headers

    @field_validator("from_")
    @classmethod
    def _caller_id(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z0-9+*#._-]{1,64}$", value):
            raise ValueError("caller id: digits, letters and + * # . _ - only")
        return value


class SipInfo(OutModel):
    call_id: str | None = None
    final_code: int | None = None
    final_reason: str | None = None


class AmdInfo(OutModel):
    result: AmdResult | None = None
    decision_ms: int | None = None
    beep: bool | None = None
    beep_ms: int | None = None
    reason: str | None = None
    confidence: float | None = None


class Assertion(OutModel):
    node: str
    expected: str | None = None
    heard: str | None = None
    passed: bool


class FlowInfo(OutModel):
    outcome: str | None = None
    path: list[str] = []
    variables: dict[str, Any] = {}
    assertions: list[Assertion] = []


class CallError(OutModel):
    code: str
    message: str


class CallOut(OutModel):
    session_id: str
    org_id: str
    flow_id: str | None
    flow_version: int | None
    direction: Literal["outbound", "inbound"]
    mode: str
    to: str
    from_: str | None = Field(None, alias="from")
    status: CallStatusName
    amd: AmdInfo | None = None
    sip: SipInfo
    hangup_by: Literal["remote", "flow", "api", "timeout", "system"] | None = None
    created_at: str
    dialed_at: str | None = None
    ringing_at: str | None = None
    answered_at: str | None = None
    ended_at: str | None = None
    duration_ms: int | None = None
    flow: FlowInfo
    recording_url: str | None = None
    error: CallError | None = None


class CallList(OutModel):
    data: list[CallOut]
    next_cursor: str | None = None


class CallEventOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    seq: int
    type: str
    at: str


class CallEventList(OutModel):
    data: list[CallEventOut]


class WebhookAttemptOut(OutModel):
    event_id: str
    event_type: str
    attempt: int
    at: str
    url: str
    status_code: int | None
    error: str | None
    duration_ms: int
    will_retry: bool


class WebhookAttemptList(OutModel):
    data: list[WebhookAttemptOut]
