"""validate_flow: every problem with its document path; never an exception."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialflow.flows.model import MAX_NODES, NODE_TYPES, Flow, Problem
from dialflow.flows.validate import ValidationResult, validate_flow, validate_text
from tests.unit.flows.samples import REMINDER_YAML, reminder_doc


def _errors(doc: Any) -> list[tuple[str, str]]:
    result = validate_flow(doc)
    assert result.flow is None
    return [(p.path, p.code) for p in result.errors]


def test_reminder_example_is_clean() -> None:
    result = validate_text(REMINDER_YAML, "application/yaml")
    assert result.ok and result.errors == [] and result.warnings == []
    assert isinstance(result.flow, Flow)
    assert validate_flow(reminder_doc()).flow == result.flow


def test_problem_dict_form() -> None:
    assert Problem("nodes.a.next", "m", "unknown_node").to_dict() == {
        "path": "nodes.a.next",
        "message": "m",
        "code": "unknown_node",
    }


def test_every_reference_kind_with_exact_paths() -> None:
    doc = reminder_doc()
    doc["start"] = "begin"
    doc["nodes"]["greet"]["next"] = "akk"
    doc["nodes"]["route"]["cases"][1]["next"] = "canceled"
    doc["nodes"]["route"]["default"] = "again"
    doc["nodes"]["cancelled"]["onError"] = "crm-down"
    doc["nodes"]["probe"] = {"type": "expect", "heard": "hi", "within": 3, "onFail": "x"}
    result = validate_flow(doc)
    assert [(p.path, p.code) for p in result.errors] == [
        ("start", "unknown_node"),
        ("nodes.greet.next", "unknown_node"),
        ("nodes.route.cases.1.next", "unknown_node"),
        ("nodes.route.default", "unknown_node"),
        ("nodes.cancelled.onError", "unknown_node"),
        ("nodes.probe.onFail", "unknown_node"),
    ]
    messages = {p.path: p.message for p in result.errors}
    assert messages["nodes.greet.next"] == "no node named 'akk' in this flow (did you mean 'ask'?)"
    assert messages["start"] == "no node named 'begin' in this flow"
    assert result.warnings == []  # no reachability when start is broken


def test_field_errors_use_document_paths() -> None:
    doc = reminder_doc()
    doc["nodes"]["ask"]["numDigits"] = 0
    doc["nodes"]["ask"]["input"] = ["dtmf", "fax"]
    doc["nodes"]["ask"]["timout"] = 5
    del doc["nodes"]["ask"]["saveAs"]
    doc["nodes"]["route"]["cases"][0]["next"] = 7
    doc["nodes"]["retry"]["values"]["bad-name"] = 1
    doc["maxStep"] = 3
    doc["vars"]["2x"] = 1
    assert _errors(doc) == [
        ("vars.2x", "invalid_name"),
        ("nodes.ask.input.1", "invalid_value"),
        ("nodes.ask.numDigits", "invalid_value"),
        ("nodes.ask.saveAs", "missing_field"),
        ("nodes.ask.timout", "unknown_field"),
        ("nodes.route.cases.0.next", "invalid_value"),
        ("nodes.retry.values.bad-name", "invalid_name"),
        ("maxStep", "unknown_field"),
    ]
    messages = {p.path: p.message for p in validate_flow(doc).errors}
    assert messages["nodes.ask.timout"] == "unknown field (did you mean 'timeout'?)"
    assert messages["maxStep"] == "unknown field (did you mean 'maxSteps'?)"
    assert messages["nodes.ask.saveAs"] == "required field is missing"


def test_unknown_and_missing_node_type() -> None:
    doc = reminder_doc()
    doc["nodes"]["bye"] = {"type": "hang_up"}
    doc["nodes"]["confirmed"] = {"text": "hi"}
    doc["nodes"]["cancelled"] = "not a node"
    result = validate_flow(doc)
    assert [(p.path, p.code) for p in result.errors] == [
        ("nodes.confirmed.type", "missing_field"),
        ("nodes.cancelled", "invalid_value"),
        ("nodes.bye.type", "unknown_node_type"),
    ]
    bye = result.errors[2].message
    assert bye.startswith("unknown node type 'hang_up'; expected one of say, play,")
    assert bye.endswith("(did you mean 'hangup'?)")
    assert result.errors[1].message == "a node must be an object (a mapping)"


def test_cross_field_errors_name_the_field() -> None:
    doc = {
        "id": "x",
        "start": "p",
        "nodes": {
            "p": {"type": "play", "next": "e"},
            "e": {"type": "expect", "within": 2, "heard": "a", "pattern": "b", "next": "t"},
            "t": {"type": "transfer", "to": "sip:a@b", "next": "p"},
            "b": {"type": "branch", "cases": [{"when": "true", "next": "p"}], "default": "p",
                  "next": "p"},
        },
    }  # fmt: skip
    result = validate_flow(doc)
    assert [(p.path, p.code, p.message) for p in result.errors] == [
        ("nodes.p.url", "invalid_value", "give exactly one of url or file"),
        ("nodes.e.heard", "invalid_value", "give exactly one of heard or pattern"),
        ("nodes.t.next", "unknown_field", "a transfer node ends the flow: it has no next"),
        ("nodes.b.next", "unknown_field",
         "a branch goes on through its cases and default: it has no next"),
    ]  # fmt: skip


def test_invalid_node_id_and_too_many_nodes() -> None:
    doc = {"id": "x", "start": "a", "nodes": {"a": {"type": "hangup"}, "b c": {"type": "hangup"}}}
    assert _errors(doc) == [("nodes.b c", "invalid_node_id")]
    many = {f"n{i}": {"type": "hangup"} for i in range(MAX_NODES + 1)}
    assert _errors({"id": "x", "start": "n0", "nodes": many}) == [("nodes", "too_many_nodes")]


def test_expression_and_template_syntax_with_paths() -> None:
    doc = reminder_doc()
    doc["nodes"]["route"]["cases"][0]["when"] = "vars.answer =="
    doc["nodes"]["route"]["cases"][1]["when"] = "answer == '2'"
    doc["nodes"]["greet"]["text"] = "Hello {{ vars.name "
    doc["nodes"]["retry"]["values"]["attempts"] = "{% if vars.x %}1{% endif %}"
    doc["nodes"]["cancelled"]["json"] = {"who": ["ok", "{{ vars.name | shout }}"]}
    doc["nodes"]["cancelled"]["headers"] = {"X-Id": "{{ call.sessionId }"}
    doc["nodes"]["cancelled"]["url"] = "https://crm.example.com/{{ ''.__class__ }}"  # runtime
    doc["nodes"]["check"] = {"type": "expect", "heard": "{{ nope }}", "within": 1, "next": "bye"}
    doc["nodes"]["xfer"] = {"type": "transfer", "to": "{{ vars.agent ~ }}"}
    result = validate_flow(doc)
    got = [(p.path, p.code) for p in result.errors]
    assert got == [
        ("nodes.greet.text", "invalid_expression"),
        ("nodes.route.cases.0.when", "invalid_expression"),
        ("nodes.route.cases.1.when", "invalid_expression"),
        ("nodes.retry.values.attempts", "invalid_expression"),
        ("nodes.cancelled.headers.X-Id", "invalid_expression"),
        ("nodes.cancelled.json.who.1", "invalid_expression"),
        ("nodes.check.heard", "invalid_expression"),
        ("nodes.xfer.to", "invalid_expression"),
    ]
    messages = {p.path: p.message for p in result.errors}
    assert "unknown name 'answer'" in messages["nodes.route.cases.1.when"]
    assert "no filter named 'shout'" in messages["nodes.cancelled.json.who.1"]
    assert "statements" in messages["nodes.retry.values.attempts"]
    # The new nodes are unreachable: warnings, not errors.
    assert [p.path for p in result.warnings] == ["nodes.check", "nodes.xfer"]


def test_when_must_not_be_wrapped_in_braces() -> None:
    doc = reminder_doc()
    doc["nodes"]["route"]["cases"][1]["when"] = "{{ vars.answer == '2' }}"
    result = validate_flow(doc)
    assert [(p.path, p.message) for p in result.errors] == [
        ("nodes.route.cases.1.when", "invalid expression: write the expression without {{ }}")
    ]


def test_unreachable_nodes_are_warnings_only() -> None:
    doc = reminder_doc()
    doc["nodes"]["orphan"] = {"type": "say", "text": "never", "next": "island"}
    doc["nodes"]["island"] = {"type": "hangup"}
    doc["nodes"]["route"]["cases"] = [{"when": "true", "next": "confirmed"}]  # cancelled orphaned
    result = validate_flow(doc)
    assert result.ok and result.flow is not None and result.errors == []
    assert [(p.path, p.code) for p in result.warnings] == [
        ("nodes.cancelled", "unreachable_node"),
        ("nodes.orphan", "unreachable_node"),
        ("nodes.island", "unreachable_node"),
    ]
    assert result.warnings[0].message == "node is never reached from start 'greet'"


def test_errors_and_warnings_together() -> None:
    doc = reminder_doc()
    doc["nodes"]["orphan"] = {"type": "pause", "seconds": -1}
    result = validate_flow(doc)
    assert [p.path for p in result.errors] == ["nodes.orphan.seconds"]
    assert [p.path for p in result.warnings] == ["nodes.orphan"]


def test_document_level_problems() -> None:
    assert _errors([1, 2]) == [("", "invalid_document")]
    assert _errors(None) == [("", "invalid_document")]
    assert _errors({}) == [("id", "missing_field"), ("start", "missing_field"),
                           ("nodes", "missing_field")]  # fmt: skip
    deep: Any = 1
    for _ in range(200):
        deep = [deep]
    doc = reminder_doc() | {"vars": {"deep": deep}}
    assert _errors(doc) == [("", "too_deep")]
    assert validate_text("id: [", "application/yaml").errors[0].code == "parse_error"


def test_validate_text_and_json_errors() -> None:
    doc = reminder_doc()
    doc["nodes"]["ask"]["next"] = "nowhere"
    result = validate_text(json.dumps(doc).encode(), "application/json")
    assert [p.path for p in result.errors] == ["nodes.ask.next"]


# -- property tests: the validator never raises -------------------------------

_FIELD_NAMES = sorted(
    {"id", "name", "start", "vars", "nodes", "maxSteps", "type", "cases", "when"}
    | {f.alias or n for cls in NODE_TYPES.values() for n, f in cls.model_fields.items()}
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(list(NODE_TYPES) + ["{{ vars.x }}", "{{", "{% for %}", "greet", "bye"])
)
_keys = st.sampled_from(_FIELD_NAMES) | st.text(max_size=8)
_json = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=25,
)


def _check(result: ValidationResult) -> None:
    assert isinstance(result, ValidationResult)
    assert all(isinstance(p, Problem) and isinstance(p.path, str) for p in result.errors)
    assert (result.flow is None) == bool(result.errors)
    # The validator's last-resort guard must never be what answered.
    assert not any(p.message.startswith("could not validate") for p in result.errors)
    if result.flow is not None:
        # An accepted flow re-validates cleanly from its own document.
        again = validate_flow(result.flow.to_document())
        assert again.errors == [] and again.flow == result.flow


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
def test_random_documents_never_raise(doc: Any) -> None:
    _check(validate_flow(doc))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _json, max_size=6))
def test_random_objects_never_raise(doc: dict[str, Any]) -> None:
    _check(validate_flow(doc))


def _mutate(doc: Any, data: st.DataObject) -> Any:
    """Replace, delete or add one thing somewhere inside doc (in place when possible)."""
    if not isinstance(doc, dict | list) or not doc or data.draw(st.integers(0, 4)) == 0:
        return data.draw(_json)
    if isinstance(doc, dict):
        key = data.draw(st.sampled_from(sorted(doc, key=str)))
        action = data.draw(st.sampled_from(["descend", "delete", "add"]))
        if action == "delete":
            del doc[key]
        elif action == "add":
            doc[data.draw(_keys)] = data.draw(_json)
        else:
            doc[key] = _mutate(doc[key], data)
        return doc
    index = data.draw(st.integers(0, len(doc) - 1))
    doc[index] = _mutate(doc[index], data)
    return doc


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_mutated_reminder_never_raises(data: st.DataObject) -> None:
    doc: Any = copy.deepcopy(reminder_doc())
    for _ in range(data.draw(st.integers(1, 4))):
        doc = _mutate(doc, data)
    _check(validate_flow(doc))
