"""Validation of flow documents: every problem, with the path to fix.

:func:`validate_flow` never raises. It runs, and reports together:

1. the document's shape limits (object at the top, nesting, size, node count);
2. the pydantic models (types, bounds, unknown fields, unknown node types),
   with pydantic's locations turned into document paths
   (``nodes.ask.numDigits``, ``nodes.route.cases.0.when``);
3. references: ``start`` and every ``next``/``default``/``cases.N.next``/
   ``onError``/``onFail`` must name a node of the flow;
4. expressions: every ``when:`` and every ``{{ }}`` template field must compile
   in the sandbox (syntax, known names and filters, no statements);
5. reachability from ``start``: unreachable nodes are **warnings**.

Checks 3–5 read the raw document, so they run even when some nodes failed
check 2, and a user sees all of their mistakes in one 422.
"""

from __future__ import annotations

import difflib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from dialflow.flows.expressions import ExpressionError, check_expression, check_template
from dialflow.flows.model import (
    MAX_NODES,
    NODE_TYPES,
    BranchCase,
    Flow,
    FlowError,
    NodeBase,
    Problem,
    iter_path,
    load_flow,
    parse_document,
)

__all__ = [
    "MAX_DEPTH",
    "MAX_ELEMENTS",
    "Problem",
    "ValidationResult",
    "load_flow",
    "validate_flow",
    "validate_text",
]

#: Deepest nesting accepted in a document (JSON bodies and vars included).
MAX_DEPTH = 64
#: Most values (scalars, lists, objects) accepted in one document.
MAX_ELEMENTS = 100_000


@dataclass(slots=True)
class ValidationResult:
    """Outcome of validating a flow document.

    ``flow`` is set only when ``errors`` is empty; ``warnings`` never block.
    """

    flow: Flow | None
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the document is accepted (warnings allowed)."""
        return not self.errors


def validate_text(text: str | bytes, content_type: str | None = None) -> ValidationResult:
    """Parse (JSON or YAML, see :func:`~dialflow.flows.model.parse_document`) and validate."""
    try:
        doc = parse_document(text, content_type)
    except FlowError as exc:
        return ValidationResult(None, list(exc.problems), [])
    return validate_flow(doc)


def validate_flow(doc: Any) -> ValidationResult:
    """Validate a parsed flow document, reporting every error and warning. Never raises."""
    try:
        return _Validator(doc).run()
    except RecursionError:
        return ValidationResult(None, [Problem("", "document nested too deeply", "too_deep")])
    except Exception as exc:  # a bug here must not become a 500 or kill a worker
        return ValidationResult(
            None, [Problem("", f"could not validate ({type(exc).__name__})", "invalid_document")]
        )


def _path(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc)


def _measure(doc: Any) -> tuple[int, int]:
    """(number of values, depth), counting stops past the limits."""
    count = 0
    depth = 0
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, d = stack.pop()
        count += 1
        depth = max(depth, d)
        if count > MAX_ELEMENTS or depth > MAX_DEPTH:
            break
        if isinstance(value, dict):
            stack.extend((v, d + 1) for v in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((v, d + 1) for v in value)
    return count, depth


def _aliases(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


class _Validator:
    def __init__(self, doc: Any) -> None:
        self.doc = doc
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.raw_nodes: dict[Any, Any] = {}

    def error(self, path: str, message: str, code: str) -> None:
        problem = Problem(path, message, code)
        if problem not in self.errors:
            self.errors.append(problem)

    def run(self) -> ValidationResult:
        doc = self.doc
        if not isinstance(doc, dict):
            self.error("", "a flow document must be an object (a mapping)", "invalid_document")
            return self.result(None)
        count, depth = _measure(doc)
        if depth > MAX_DEPTH:
            self.error("", f"document nested too deeply (limit {MAX_DEPTH} levels)", "too_deep")
            return self.result(None)
        if count > MAX_ELEMENTS:
            self.error(
                "", f"document too large (limit {MAX_ELEMENTS} values)", "document_too_large"
            )
            return self.result(None)
        raw_nodes = doc.get("nodes")
        if isinstance(raw_nodes, dict):
            if len(raw_nodes) > MAX_NODES:
                self.error(
                    "nodes",
                    f"too many nodes ({len(raw_nodes)} > {MAX_NODES})",
                    "too_many_nodes",
                )
                return self.result(None)
            self.raw_nodes = raw_nodes

        flow: Flow | None = None
        try:
            flow = Flow.model_validate(doc)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                self.convert(err)

        self.check_references()
        self.check_expressions()
        self.check_reachability()
        return self.result(flow)

    def result(self, flow: Flow | None) -> ValidationResult:
        return ValidationResult(flow if not self.errors else None, self.errors, self.warnings)

    # -- pydantic errors -----------------------------------------------------

    def convert(self, err: Any) -> None:
        loc: list[Any] = list(err["loc"])
        kind: str = err["type"]
        ctx: dict[str, Any] = err.get("ctx") or {}
        message: str = err["msg"]
        # pydantic puts the matched tag in the location: nodes.ask.gather.numDigits
        if len(loc) >= 3 and loc[0] == "nodes" and isinstance(loc[2], str) and loc[2] in NODE_TYPES:
            del loc[2]
        code = "invalid_value"
        if kind == "union_tag_invalid":
            tag = ctx.get("tag", "")
            loc.append("type")
            code = "unknown_node_type"
            message = f"unknown node type {tag!r}; expected one of {', '.join(NODE_TYPES)}"
            close = difflib.get_close_matches(str(tag), list(NODE_TYPES), n=1)
            if close:
                message += f" (did you mean {close[0]!r}?)"
        elif kind == "union_tag_not_found":
            loc.append("type")
            code = "missing_field"
            message = f"a node needs a type: one of {', '.join(NODE_TYPES)}"
        elif kind == "cross_field":
            loc.append(ctx["field"])
            code = ctx.get("code", code)
        elif kind == "string_type":
            message = "must be a string (put it in quotes)"
            if loc and loc[-1] == "[key]":
                loc.pop()
                code = "invalid_key"
        elif loc and loc[-1] == "[key]":
            loc.pop()
            if len(loc) == 2 and loc[0] == "nodes":
                code = "invalid_node_id"
                message = "node ids are 1-64 letters, digits, '_' or '-'"
            elif (len(loc) == 2 and loc[0] == "vars") or (len(loc) == 4 and loc[2] == "values"):
                code = "invalid_name"
                message = (
                    "variable names are identifiers: a letter or '_', then letters, digits, '_'"
                )
            else:
                code = "invalid_key"
                message = f"invalid key: {message}"
        elif kind == "missing":
            code = "missing_field"
            message = "required field is missing"
        elif kind == "extra_forbidden":
            code = "unknown_field"
            message = "unknown field"
            close = difflib.get_close_matches(str(loc[-1]), self.known_fields(loc), n=1)
            node_type = self.node_type(loc)
            if close:
                message += f" (did you mean {close[0]!r}?)"
            elif len(loc) == 3 and loc[-1] == "next" and node_type in ("hangup", "transfer"):
                message = f"a {node_type} node ends the flow: it has no next"
            elif len(loc) == 3 and loc[-1] == "next" and node_type == "branch":
                message = "a branch goes on through its cases and default: it has no next"
        elif kind in ("model_attributes_type", "model_type", "dict_type") and len(loc) == 2:
            message = "a node must be an object (a mapping)" if loc[0] == "nodes" else message
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        self.error(_path(loc), message, code)

    def node_type(self, loc: list[Any]) -> str | None:
        """The raw ``type`` of the node a location is in, if it names a known type."""
        if len(loc) < 2 or loc[0] != "nodes":
            return None
        node = self.raw_nodes.get(loc[1])
        node_type = node.get("type") if isinstance(node, dict) else None
        return node_type if isinstance(node_type, str) and node_type in NODE_TYPES else None

    def known_fields(self, loc: list[Any]) -> list[str]:
        model: type[BaseModel] | None = None
        if len(loc) == 1:
            model = Flow
        elif len(loc) >= 3 and loc[0] == "nodes":
            node_type = self.node_type(loc)
            cls = NODE_TYPES[node_type] if node_type is not None else None
            if len(loc) == 3:
                model = cls
            elif len(loc) == 5 and loc[2] == "cases":
                model = BranchCase
        return _aliases(model) if model is not None else []

    # -- references, expressions, reachability --------------------------------

    def typed_nodes(self) -> list[tuple[Any, dict[str, Any], type[NodeBase]]]:
        out = []
        for node_id, node in self.raw_nodes.items():
            if isinstance(node, dict):
                node_type = node.get("type")
                if isinstance(node_type, str) and node_type in NODE_TYPES:
                    out.append((node_id, node, NODE_TYPES[node_type]))
        return out

    def check_references(self) -> None:
        start = self.doc.get("start")
        if isinstance(start, str) and isinstance(self.doc.get("nodes"), dict):
            if start not in self.raw_nodes:
                self.error("start", self.missing_message(start), "unknown_node")
        for node_id, node, cls in self.typed_nodes():
            for path in cls.REF_PATHS:
                for loc, target in iter_path(node, path, ("nodes", node_id)):
                    if isinstance(target, str) and target not in self.raw_nodes:
                        self.error(_path(loc), self.missing_message(target), "unknown_node")

    def missing_message(self, target: str) -> str:
        message = f"no node named {target!r} in this flow"
        names = [k for k in self.raw_nodes if isinstance(k, str)]
        close = difflib.get_close_matches(target, names, n=1)
        return message + (f" (did you mean {close[0]!r}?)" if close else "")

    def check_expressions(self) -> None:
        for node_id, node, cls in self.typed_nodes():
            for path in cls.TEMPLATE_PATHS:
                for loc, text in iter_path(node, path, ("nodes", node_id)):
                    if isinstance(text, str):
                        try:
                            check_template(text)
                        except ExpressionError as exc:
                            self.error(
                                _path(loc), f"invalid template: {exc.message}", "invalid_expression"
                            )
            for path in cls.EXPRESSION_PATHS:
                for loc, expr in iter_path(node, path, ("nodes", node_id)):
                    if isinstance(expr, str):
                        try:
                            check_expression(expr)
                        except ExpressionError as exc:
                            self.error(
                                _path(loc),
                                f"invalid expression: {exc.message}",
                                "invalid_expression",
                            )

    def check_reachability(self) -> None:
        start = self.doc.get("start")
        if not isinstance(start, str) or start not in self.raw_nodes:
            return
        edges: dict[Any, list[str]] = {}
        for node_id, node, cls in self.typed_nodes():
            edges[node_id] = [
                target
                for path in cls.REF_PATHS
                for _, target in iter_path(node, path)
                if isinstance(target, str) and target in self.raw_nodes
            ]
        seen = {start}
        queue = deque([start])
        while queue:
            for target in edges.get(queue.popleft(), ()):
                if target not in seen:
                    seen.add(target)
                    queue.append(target)
        for node_id in self.raw_nodes:
            if node_id not in seen:
                self.warnings.append(
                    Problem(
                        _path(["nodes", node_id]),
                        f"node is never reached from start {start!r}",
                        "unreachable_node",
                    )
                )
