"""Flow documents, version 1: pydantic models and the JSON/YAML loader.

One model per node type, joined in :data:`Node`, a union discriminated on
``type``. Documents use camelCase (``numDigits``, ``saveAs``); attributes are
snake_case (``num_digits``, ``save_as``); both spellings are accepted on input.

Unknown fields are refused (``extra="forbid"``): a typo such as ``nxet`` or
``timout`` would otherwise be dropped silently and the flow would misbehave
on a live call. Types are strict (``"5"`` is not a number, ``1`` is not a
string), so what was uploaded is what runs.

These models check each field on its own. Cross-references between nodes
(``next`` pointing nowhere), expression syntax and reachability are checked by
:func:`dialflow.flows.validate.validate_flow`; use :func:`load_flow` or
``validate_flow`` for documents from users, not ``Flow.model_validate``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

__all__ = [
    "FLOW_ID_PATTERN",
    "MAX_DOCUMENT_BYTES",
    "MAX_NODES",
    "NODE_ID_PATTERN",
    "NODE_TYPES",
    "VAR_NAME_PATTERN",
    "BranchCase",
    "BranchNode",
    "ExpectNode",
    "Flow",
    "FlowError",
    "GatherNode",
    "HangupNode",
    "HttpNode",
    "ListenNode",
    "Node",
    "NodeBase",
    "PauseNode",
    "PlayNode",
    "Problem",
    "RecordNode",
    "SayNode",
    "SendDtmfNode",
    "SetNode",
    "TransferNode",
    "WaitForBeepNode",
    "iter_path",
    "load_flow",
    "parse_document",
]

FLOW_ID_PATTERN = r"^[a-z0-9-]{1,64}$"
NODE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
#: Variable names must be identifiers so that ``vars.<name>`` works in expressions.
VAR_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
DTMF_DIGITS_PATTERN = r"^[0-9*#A-Dw]+$"
FINISH_KEY_PATTERN = r"^[0-9*#]$"
#: Media file names: relative, no "..", resolved by the executor under its media directory.
MEDIA_FILE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,255}$"
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$"

MAX_DOCUMENT_BYTES = 256 * 1024
MAX_NODES = 500
MAX_TEXT = 4000

Seconds = Annotated[float, Field(gt=0, le=3600)]
NodeRef = Annotated[str, Field(min_length=1, max_length=64)]
VarName = Annotated[str, Field(pattern=VAR_NAME_PATTERN)]
NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN)]
FinishKey = Annotated[str, Field(pattern=FINISH_KEY_PATTERN)]
TemplateText = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
ShortTemplate = Annotated[str, Field(min_length=1, max_length=2048)]

_URL_RE = re.compile(r"^https?://[^\s/?#]+[^\s]*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found in a flow document.

    ``path`` is dotted and starts at the document root using the document's
    own spelling (``nodes.ask.numDigits``, ``nodes.route.cases.0.when``);
    ``""`` means the whole document. ``code`` is a stable snake_case word.
    """

    path: str
    message: str
    code: str

    def to_dict(self) -> dict[str, str]:
        """The ``{"path", "message", "code"}`` form used in 422 ``details``."""
        return {"path": self.path, "message": self.message, "code": self.code}


class FlowError(ValueError):
    """A flow document was refused; ``problems`` lists every error found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        first = problems[0] if problems else Problem("", "invalid flow", "invalid_flow")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first.path or 'document'}: {first.message}{more}")


def _cross_field(field: str, message: str, code: str = "invalid_value") -> PydanticCustomError:
    # A node-level check that blames one field: the validator turns ctx["field"]
    # into the last path element (API.md: "a cross-field error names the field
    # that must change").
    return PydanticCustomError("cross_field", message, {"field": field, "code": code})


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
    )


class NodeBase(_Model):
    """Fields and metadata shared by every node type.

    The ``*_PATHS`` class variables say, in document spelling, where a node
    holds node references, ``{{ }}`` templates and ``when:`` expressions:
    ``"*"`` is every item of a list or value of a dict, ``"**"`` every string
    anywhere below (JSON bodies, ``set`` values). The validator and the
    executor both read them, so they cannot disagree.
    """

    REF_PATHS: ClassVar[tuple[tuple[str, ...], ...]] = (("next",),)
    TEMPLATE_PATHS: ClassVar[tuple[tuple[str, ...], ...]] = ()
    EXPRESSION_PATHS: ClassVar[tuple[tuple[str, ...], ...]] = ()

    def targets(self) -> list[str]:
        """Every node id this node may continue to, in document order."""
        found: list[str] = []
        data = self.model_dump(by_alias=True)
        for path in self.REF_PATHS:
            for _, value in iter_path(data, path):
                if isinstance(value, str):
                    found.append(value)
        return found


Location = tuple[Any, ...]
"""A place in a document: keys and list indexes from the root (or a given prefix)."""


def iter_path(
    value: Any, path: tuple[str, ...], prefix: Location = ()
) -> Iterator[tuple[Location, Any]]:
    """Yield ``(location, value)`` for each place ``path`` matches in raw data.

    Tolerant of any shape (missing keys and wrong types just match nothing),
    so it works on documents that failed validation too.
    """
    if not path:
        yield prefix, value
        return
    head, rest = path[0], path[1:]
    if head == "**":
        stack: list[tuple[Location, Any]] = [(prefix, value)]
        while stack:
            loc, v = stack.pop()
            if isinstance(v, dict):
                stack.extend((loc + (k,), item) for k, item in reversed(list(v.items())))
            elif isinstance(v, list):
                stack.extend((loc + (i,), item) for i, item in reversed(list(enumerate(v))))
            else:
                yield loc, v
    elif head == "*":
        if isinstance(value, dict):
            for k, item in value.items():
                yield from iter_path(item, rest, prefix + (k,))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                yield from iter_path(item, rest, prefix + (i,))
    elif isinstance(value, dict) and head in value:
        yield from iter_path(value[head], rest, prefix + (head,))


class _Continues(NodeBase):
    next: NodeRef | None = None
    """The node to run after this one; absent: the flow ends and the call hangs up."""


class SayNode(_Continues):
    """Speak ``text`` (a template) with TTS; DTMF/speech interrupt it if ``barge_in``."""

    type: Literal["say"]
    text: TemplateText
    voice: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    barge_in: bool = True

    TEMPLATE_PATHS = (("text",),)


class PlayNode(_Continues):
    """Play a WAV file from ``url`` or ``file`` (exactly one), ``loop`` times."""

    type: Literal["play"]
    url: ShortTemplate | None = None
    file: Annotated[str, Field(pattern=MEDIA_FILE_PATTERN)] | None = None
    loop: Annotated[int, Field(ge=1, le=100)] = 1
    barge_in: bool = True

    TEMPLATE_PATHS = (("url",),)

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, v: str | None) -> str | None:
        return _check_url(v)

    @field_validator("file")
    @classmethod
    def _no_parent(cls, v: str | None) -> str | None:
        # The executor resolves files under its media directory; ".." would leave it.
        if v is not None and ".." in v.split("/"):
            raise ValueError("file must not contain '..' segments")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> PlayNode:
        if (self.url is None) == (self.file is None):
            raise _cross_field("url", "give exactly one of url or file")
        return self


class GatherNode(_Continues):
    """Collect DTMF and/or speech into ``vars.<saveAs>`` (kind in ``vars.<saveAs>_kind``)."""

    type: Literal["gather"]
    input: Annotated[list[Literal["dtmf", "speech"]], Field(min_length=1, max_length=2)]
    num_digits: Annotated[int, Field(ge=1, le=64)] | None = None
    finish_on_key: FinishKey | None = None
    timeout: Seconds
    speech_hints: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=100)
    ] = Field(default_factory=list)
    save_as: VarName

    @field_validator("input")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("input lists dtmf and speech at most once each")
        return v


class BranchCase(_Model):
    """One case of a branch: go to ``next`` if ``when`` is true."""

    when: Annotated[str, Field(min_length=1, max_length=2000)]
    next: NodeRef


class BranchNode(NodeBase):
    """Go to the ``next`` of the first case whose ``when`` is true, else to ``default``.

    No ``next`` field: ``default`` is where a branch continues.
    """

    type: Literal["branch"]
    cases: Annotated[list[BranchCase], Field(min_length=1, max_length=100)]
    default: NodeRef

    REF_PATHS = (("cases", "*", "next"), ("default",))
    EXPRESSION_PATHS = (("cases", "*", "when"),)


class SetNode(_Continues):
    """Set variables; string values are templates (``"{{ expr }}"`` keeps the type)."""

    type: Literal["set"]
    values: Annotated[dict[VarName, Any], Field(min_length=1, max_length=100)]

    TEMPLATE_PATHS = (("values", "**"),)


class HttpNode(_Continues):
    """Call a web service; the response JSON lands in ``vars.<saveAs>``.

    On a transport error, timeout or non-2xx answer the flow goes to
    ``on_error`` (absent: the flow ends with outcome ``error``).
    """

    type: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    url: ShortTemplate
    headers: Annotated[
        dict[
            Annotated[str, Field(pattern=HEADER_NAME_PATTERN)],
            Annotated[str, Field(max_length=4096)],
        ],
        Field(max_length=50),
    ] = Field(default_factory=dict)
    json_body: Any = Field(default=None, alias="json")
    timeout: Seconds
    save_as: VarName
    on_error: NodeRef | None = None

    REF_PATHS = (("next",), ("onError",))
    TEMPLATE_PATHS = (("url",), ("headers", "*"), ("json", "**"))

    @field_validator("url")
    @classmethod
    def _url_scheme(cls, v: str) -> str:
        checked = _check_url(v)
        assert checked is not None
        return checked


class RecordNode(_Continues):
    """Record the caller (WAV) for up to ``max_seconds``; link saved in ``vars.<saveAs>``."""

    type: Literal["record"]
    max_seconds: Seconds
    finish_on_key: FinishKey | None = None
    silence_timeout: Seconds | None = None
    save_as: VarName


class SendDtmfNode(_Continues):
    """Send ``digits`` as RFC 4733 events; ``w`` is a 0.5 s pause."""

    type: Literal["send_dtmf"]
    digits: Annotated[str, Field(pattern=DTMF_DIGITS_PATTERN, max_length=256)]


class ListenNode(_Continues):
    """Transcribe the far end into ``vars.<saveAs>``."""

    type: Literal["listen"]
    max_seconds: Seconds
    silence_timeout: Seconds
    save_as: VarName


class ExpectNode(_Continues):
    """Listen up to ``within`` seconds and record an assertion.

    Passes as soon as the transcript so far contains ``heard`` (a template,
    case-insensitive) or matches ``pattern`` (Python ``re``, searched,
    case-insensitive). On failure the flow goes to ``on_fail`` if set,
    else to ``next``.
    """

    type: Literal["expect"]
    heard: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    pattern: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    within: Seconds
    save_as: VarName | None = None
    on_fail: NodeRef | None = None

    REF_PATHS = (("next",), ("onFail",))
    TEMPLATE_PATHS = (("heard",),)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _one_matcher(self) -> ExpectNode:
        if (self.heard is None) == (self.pattern is None):
            raise _cross_field("heard", "give exactly one of heard or pattern")
        return self

    def matches(self, transcript: str, heard: str | None = None) -> bool:
        """Whether ``transcript`` satisfies this node.

        ``heard`` is the rendered ``heard`` template (the executor renders it
        once per visit); defaults to the raw field.
        """
        if self.pattern is not None:
            return re.search(self.pattern, transcript, re.IGNORECASE) is not None
        needle = self.heard if heard is None else heard
        return needle is not None and needle.casefold() in transcript.casefold()


class WaitForBeepNode(_Continues):
    """Wait up to ``timeout`` seconds for the voicemail beep, then go on either way."""

    type: Literal["wait_for_beep"]
    timeout: Seconds


class PauseNode(_Continues):
    """Send silence for ``seconds``."""

    type: Literal["pause"]
    seconds: Seconds


class TransferNode(NodeBase):
    """Blind transfer to ``to`` (SIP REFER), then the flow ends."""

    type: Literal["transfer"]
    to: Annotated[str, Field(min_length=1, max_length=256)]

    REF_PATHS = ()
    TEMPLATE_PATHS = (("to",),)


class HangupNode(NodeBase):
    """End the call (BYE); ``reason`` is recorded."""

    type: Literal["hangup"]
    reason: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    REF_PATHS = ()


def _check_url(v: str | None) -> str | None:
    # A template may build the whole URL ("{{ vars.base }}/x"); the executor
    # checks the rendered one. A literal must be http(s).
    if v is not None and "{{" not in v and not _URL_RE.match(v):
        raise ValueError("url must start with http:// or https://")
    return v


Node = Annotated[
    SayNode
    | PlayNode
    | GatherNode
    | BranchNode
    | SetNode
    | HttpNode
    | RecordNode
    | SendDtmfNode
    | ListenNode
    | ExpectNode
    | WaitForBeepNode
    | PauseNode
    | TransferNode
    | HangupNode,
    Field(discriminator="type"),
]
"""Any node; pydantic picks the model from the ``type`` field."""

#: ``type`` value → model class.
NODE_TYPES: dict[str, type[NodeBase]] = {
    get_args(cls.model_fields["type"].annotation)[0]: cls
    for cls in (
        SayNode,
        PlayNode,
        GatherNode,
        BranchNode,
        SetNode,
        HttpNode,
        RecordNode,
        SendDtmfNode,
        ListenNode,
        ExpectNode,
        WaitForBeepNode,
        PauseNode,
        TransferNode,
        HangupNode,
    )
}


class Flow(_Model):
    """A flow document: named nodes run one at a time from ``start``."""

    id: Annotated[str, Field(pattern=FLOW_ID_PATTERN)]
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    start: NodeRef
    vars: dict[VarName, Any] = Field(default_factory=dict)
    """Default variables; the call's ``variables`` override them."""
    nodes: Annotated[dict[NodeId, Node], Field(min_length=1, max_length=MAX_NODES)]
    max_steps: Annotated[int, Field(ge=1, le=100_000)] = 1000
    """Node visits before the flow stops with outcome ``error`` (loops end)."""

    def node(self, node_id: str) -> Node:
        """The node called ``node_id`` (``KeyError`` if there is none)."""
        return self.nodes[node_id]

    def to_document(self) -> dict[str, Any]:
        """The flow as a JSON-ready document in camelCase (for storage and GET)."""
        doc = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        # "type" first reads better than pydantic's base-class-first field order.
        doc["nodes"] = {k: {"type": n.pop("type"), **n} for k, n in doc["nodes"].items()}
        return doc


# ---------------------------------------------------------------------------
# Parsing JSON and YAML
# ---------------------------------------------------------------------------


class _CoreResolver(yaml.resolver.BaseResolver):
    """YAML 1.2 core schema scalars.

    PyYAML implements YAML 1.1, where ``yes``/``no``/``on``/``off`` are
    booleans, ``010`` is octal and ``2024-01-02`` a date: FLOWS.md's own
    ``speechHints: [yes, no, …]`` would turn into ``[True, False, …]``. Here
    only ``true``/``false`` are booleans and there are no timestamps.
    """


_CoreResolver.yaml_implicit_resolvers = {}
_resolvers: tuple[tuple[str, str, str | list[str]], ...] = (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$",
        "-+0123456789.",
    ),
)
for _tag, _regexp, _first in _resolvers:
    _CoreResolver.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))


class _JsonConstructor(yaml.constructor.SafeConstructor):
    """Builds JSON data only: maps, lists, strings, numbers, booleans, null.

    Any other tag (``!!binary``, ``!!set``, ``!!timestamp``, ``!!python/…``)
    is an error.
    """

    def construct_core_int(self, node: yaml.ScalarNode) -> int:
        value = str(self.construct_scalar(node))
        if value.startswith(("0o", "0x")):
            return int(value[2:], 8 if value[1] == "o" else 16)
        return int(value, 10)  # "010" is ten, not eight

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, found {type(node).__name__}", node.start_mark
            )
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                )
            if key in mapping:
                # A repeated node id would silently replace the first node.
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping

    _safe = yaml.constructor.SafeConstructor
    yaml_constructors: ClassVar[dict[Any, Any]] = {
        "tag:yaml.org,2002:null": _safe.construct_yaml_null,
        "tag:yaml.org,2002:bool": _safe.construct_yaml_bool,
        "tag:yaml.org,2002:int": construct_core_int,
        "tag:yaml.org,2002:float": _safe.construct_yaml_float,
        "tag:yaml.org,2002:str": _safe.construct_yaml_str,
        "tag:yaml.org,2002:seq": _safe.construct_yaml_seq,
        "tag:yaml.org,2002:map": _safe.construct_yaml_map,
        None: _safe.construct_undefined,
    }
    yaml_multi_constructors: ClassVar[dict[Any, Any]] = {}
    del _safe


# libyaml's parser is ~7x faster; the pure-Python one behaves the same.
_Parser: Any = getattr(yaml, "CParser", None)
if _Parser is None:  # pragma: no cover - PyYAML built without libyaml

    class _Parser(  # type: ignore[no-redef]
        yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer
    ):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            yaml.composer.Composer.__init__(self)


class _Loader(_Parser, _JsonConstructor, _CoreResolver):  # type: ignore[misc]
    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        _JsonConstructor.__init__(self)
        _CoreResolver.__init__(self)


def _yaml_problem(exc: yaml.YAMLError) -> Problem:
    mark: Any = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    what = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    return Problem(
        "", f"invalid YAML: {f'{context}: ' if context else ''}{what}{where}", "parse_error"
    )


def _load_yaml(text: str) -> Any:
    # Aliases are refused outright: "billion laughs" documents expand to
    # exponentially many references, and nobody needs anchors in a flow.
    loader = _Loader(text)
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, yaml.AliasEvent):
                mark: Any = event.start_mark
                raise FlowError(
                    [
                        Problem(
                            "",
                            "YAML aliases (*name) are not allowed in flow documents "
                            f"(line {mark.line + 1}, column {mark.column + 1})",
                            "parse_error",
                        )
                    ]
                )
    finally:
        loader.dispose()
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _load_json(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_json_constant)


def parse_document(text: str | bytes, content_type: str | None = None) -> Any:
    """Parse a flow document from JSON or YAML text into plain data.

    ``content_type`` containing ``yaml`` → YAML, ``json`` → JSON; anything
    else (or ``None``): JSON if the text starts with ``{``, else YAML. YAML
    follows the 1.2 core schema, refuses aliases, tags other than the JSON
    types and duplicate keys. Raises :class:`FlowError` (path ``""``) when
    the text is over :data:`MAX_DOCUMENT_BYTES` or does not parse.
    """
    size = len(text.encode() if isinstance(text, str) else text)
    if size > MAX_DOCUMENT_BYTES:
        raise FlowError(
            [
                Problem(
                    "",
                    f"document too large ({size} bytes > {MAX_DOCUMENT_BYTES})",
                    "document_too_large",
                )
            ]
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise FlowError([Problem("", f"not UTF-8 text: {exc}", "parse_error")]) from None
    kind = (content_type or "").split(";")[0].strip().lower()
    use_yaml = "yaml" in kind or ("json" not in kind and not text.lstrip().startswith("{"))
    try:
        if use_yaml:
            return _load_yaml(text)
        try:
            return _load_json(text)
        except (ValueError, RecursionError) as exc:
            if "json" in kind:
                raise
            try:  # unlabelled "{...}": YAML flow style is valid too
                return _load_yaml(text)
            except (yaml.YAMLError, RecursionError):
                raise exc from None
    except FlowError:
        raise
    except yaml.YAMLError as exc:
        raise FlowError([_yaml_problem(exc)]) from None
    except json.JSONDecodeError as exc:
        raise FlowError(
            [
                Problem(
                    "",
                    f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                    "parse_error",
                )
            ]
        ) from None
    except RecursionError:
        raise FlowError([Problem("", "document nested too deeply", "parse_error")]) from None
    except ValueError as exc:
        raise FlowError([Problem("", f"invalid JSON: {exc}", "parse_error")]) from None


def load_flow(text: str | bytes, content_type: str | None = None) -> Flow:
    """Parse and fully validate a flow document; raise :class:`FlowError` listing every error.

    Warnings (unreachable nodes) do not stop loading; use
    :func:`dialflow.flows.validate.validate_text` to see them.
    """
    from dialflow.flows.validate import validate_text  # validate imports this module

    result = validate_text(text, content_type)
    if result.flow is None:
        raise FlowError(result.errors)
    return result.flow
