"""Suite files for ``dialflow test`` (FLOWS.md "Testing flows with flows", docs/testing.md).

A suite names the flows to push before running (files beside it), the inbound numbers
to create, and the tester calls to make with what each must end as::

    name: appointment-reminder
    server: http://127.0.0.1:8080      # or --server / DIALFLOW_URL
    org: acme
    flows: [ivr.yaml, tester.yaml]     # relative to the suite file
    numbers: [{number: "7101", flowId: reminder-ivr}]
    concurrency: 4
    tests:
      - name: confirms with 1
        flow: reminder-tester
        to: "sip:7101@{sip}"           # {sip}: the server's SIP host:port
        expect: {status: completed, flowOutcome: passed}

The file is validated with pydantic; every problem is reported with its path
(``tests.1.expect.flowOutcome: ...``) as a :class:`SuiteError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from ..api.schemas import CallStatusName
from ..flows.model import FlowError, parse_document

FlowOutcomeName = Literal["completed", "skipped", "error", "passed", "failed"]
AmdResultName = Literal["human", "machine", "fax", "unknown"]
HangupByName = Literal["remote", "flow", "api", "timeout", "system"]

#: Placeholders a test's ``to`` may use; ``{sip}`` is the server's SIP ``host:port``.
PLACEHOLDERS = frozenset({"sip"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_FLOW_ID = r"^[a-z0-9-]{1,64}$"
_ORG_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
_ALL_AMD_RESULTS: list[AmdResultName] = list(get_args(AmdResultName))


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Expect(_Model):
    """What a test's call must end as. ``null`` for a field means "do not check it"."""

    status: CallStatusName | None = "completed"
    flow_outcome: FlowOutcomeName | None = "passed"
    amd_result: AmdResultName | None = None
    hangup_by: HangupByName | None = None


class AmdSpec(_Model):
    """AMD on the tester's call (the call request's ``amd``).

    ``runFlowOn`` defaults to every result: an IVR is a machine to AMD, and a tester
    flow should run whatever AMD decides (the decision is checked with ``amdResult``).
    """

    enabled: bool = True
    mode: Literal["sync", "async"] = "async"
    timeout_ms: Annotated[int, Field(ge=500, le=60_000)] | None = None
    detect_beep: bool | None = None
    run_flow_on: list[AmdResultName] = Field(default_factory=lambda: list(_ALL_AMD_RESULTS))

    def request_body(self) -> dict[str, Any]:
        """The call request's ``amd`` object."""
        return self.model_dump(by_alias=True, exclude_none=True)


class SuiteTest(_Model):
    """One call: ``flow`` (the tester, on the server) dials ``to``; ``expect`` is checked."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    flow: Annotated[str, Field(pattern=_FLOW_ID)]
    to: Annotated[str, Field(min_length=1, max_length=512)]
    from_: Annotated[str, Field(max_length=128)] | None = Field(None, alias="from")
    variables: dict[str, Any] = Field(default_factory=dict)
    timeout: Annotated[float, Field(gt=0, le=3600)] = 60.0
    ring_timeout: Annotated[int, Field(ge=1, le=120)] | None = None
    amd: AmdSpec | None = None
    expect: Expect = Field(default_factory=Expect)

    @field_validator("amd", mode="before")
    @classmethod
    def _amd_shorthand(cls, value: Any) -> Any:
        # `amd: true` is AMD with the defaults; `amd: false` is none.
        if isinstance(value, bool):
            return {} if value else None
        return value

    @field_validator("to")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        unknown = sorted(set(_PLACEHOLDER.findall(value)) - PLACEHOLDERS)
        if unknown:
            names = ", ".join("{" + u + "}" for u in unknown)
            raise ValueError(f"unknown placeholder {names} (known: {{sip}})")
        return value

    def amd_spec(self) -> AmdSpec | None:
        """The AMD options to send: explicit, or implied by ``expect.amdResult``."""
        if self.amd is not None:
            return self.amd if self.amd.enabled else None
        return AmdSpec() if self.expect.amd_result is not None else None

    def destination(self, sip_address: str | None) -> str:
        """``to`` with ``{sip}`` replaced; ValueError if it is needed but unknown."""
        if "{sip}" not in self.to:
            return self.to
        if not sip_address:
            raise ValueError("the server's SIP address is unknown (pass --sip HOST:PORT)")
        return self.to.replace("{sip}", sip_address)


class NumberSpec(_Model):
    """An inbound number to create before the tests (409 "already there" is fine)."""

    number: Annotated[str, Field(min_length=1, max_length=64)]
    flow_id: Annotated[str, Field(pattern=_FLOW_ID)]

    @field_validator("number", mode="before")
    @classmethod
    def _digits_as_text(cls, value: Any) -> Any:
        # `number: 7001` in YAML is an int; a number is text (it may start with + or 0).
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class SuiteModel(_Model):
    """The suite document."""

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    server: Annotated[str, Field(pattern=r"^https?://")] | None = None
    org: Annotated[str, Field(pattern=_ORG_ID)]
    flows: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    numbers: list[NumberSpec] = Field(default_factory=list)
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 4
    tests: Annotated[list[SuiteTest], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique_test_names(self) -> SuiteModel:
        seen: set[str] = set()
        for test in self.tests:
            if test.name in seen:
                # JUnit identifies a testcase by classname + name: duplicates would merge.
                raise ValueError(f"two tests are named {test.name!r}")
            seen.add(test.name)
        return self


@dataclass(frozen=True, slots=True)
class FlowFile:
    """A flow document to push: its id, raw text and media type."""

    flow_id: str
    text: str
    content_type: str
    source: str

    @classmethod
    def from_document(cls, document: dict[str, Any], source: str = "<built-in>") -> FlowFile:
        """A flow given as data (the demo's flows)."""
        return cls(str(document["id"]), json.dumps(document), "application/json", source)


@dataclass(frozen=True, slots=True)
class Suite:
    """A validated suite with its flow files read."""

    name: str
    model: SuiteModel
    flows: tuple[FlowFile, ...]
    path: Path | None = None

    @property
    def tests(self) -> list[SuiteTest]:
        return self.model.tests


class SuiteError(Exception):
    """The suite file cannot be used; ``problems`` are ``(path, message)`` pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        lines = [
            f"{source}: {path}: {message}" if path else f"{source}: {message}"
            for path, message in problems
        ]
        super().__init__("\n".join(lines))


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """pydantic errors as ``(dotted path, message)``, paths in the document's own names."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append((_loc(tuple(error["loc"])), message))
    return problems


def parse_suite(document: Any, *, source: str = "suite") -> SuiteModel:
    """Validate suite data; :class:`SuiteError` with every problem's path."""
    if not isinstance(document, dict):
        raise SuiteError(source, [("", "a suite is a mapping (server, org, flows, tests…)")])
    try:
        return SuiteModel.model_validate(document)
    except ValidationError as exc:
        raise SuiteError(source, validation_problems(exc)) from None


def _read_flow(source: str, base: Path, index: int, name: str) -> FlowFile:
    path = (base / name).resolve()
    where = f"flows.{index}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(source, [(where, f"cannot read {path}: {exc.strerror or exc}")]) from None
    is_yaml = path.suffix.lower() in (".yaml", ".yml")
    content_type = "application/yaml" if is_yaml else "application/json"
    try:
        document = parse_document(text, content_type)
    except FlowError as exc:
        raise SuiteError(source, [(where, f"{name}: {exc}")]) from None
    flow_id = document.get("id") if isinstance(document, dict) else None
    if not isinstance(flow_id, str) or not flow_id:
        raise SuiteError(source, [(where, f"{name}: the flow document has no id")])
    return FlowFile(flow_id, text, content_type, str(path))


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite file (YAML or JSON) and the flow files it names."""
    suite_path = Path(path)
    source = str(suite_path)
    try:
        text = suite_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(source, [("", f"cannot read: {exc.strerror or exc}")]) from None
    try:
        # The flows' YAML loader: YAML 1.2 (`on`/`no` stay strings), no aliases or tags.
        document = parse_document(
            text, "application/json" if suite_path.suffix == ".json" else "application/yaml"
        )
    except FlowError as exc:
        raise SuiteError(source, [("", str(exc))]) from None
    model = parse_suite(document, source=source)
    base = suite_path.resolve().parent
    flows = tuple(_read_flow(source, base, i, name) for i, name in enumerate(model.flows))
    seen: dict[str, int] = {}
    for i, flow in enumerate(flows):
        if flow.flow_id in seen:
            raise SuiteError(
                source,
                [(f"flows.{i}", f"flow id {flow.flow_id!r} is also in flows.{seen[flow.flow_id]}")],
            )
        seen[flow.flow_id] = i
    return Suite(model.name or suite_path.stem, model, flows, suite_path)


def suite_from_data(
    document: dict[str, Any], flows: list[dict[str, Any]], *, name: str = "suite"
) -> Suite:
    """A suite built in code (the demo, tests): flows given as documents."""
    model = parse_suite(document, source=name)
    return Suite(model.name or name, model, tuple(FlowFile.from_document(f) for f in flows))
