"""Flow models and the JSON/YAML document loader."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from dialflow.flows.model import (
    MAX_DOCUMENT_BYTES,
    NODE_TYPES,
    BranchNode,
    ExpectNode,
    Flow,
    FlowError,
    GatherNode,
    HttpNode,
    PlayNode,
    SayNode,
    load_flow,
    parse_document,
)
from tests.unit.flows.samples import REMINDER_YAML, reminder_doc


def test_reminder_example_loads_from_yaml() -> None:
    flow = load_flow(REMINDER_YAML, "application/yaml")
    assert flow.id == "reminder"
    assert flow.start == "greet"
    assert flow.vars == {"attempts": 0}
    assert flow.max_steps == 1000
    assert list(flow.nodes) == [
        "greet", "ask", "route", "retry", "retry-check", "confirmed", "cancelled", "bye",
    ]  # fmt: skip
    ask = flow.node("ask")
    assert isinstance(ask, GatherNode)
    assert ask.input == ["dtmf", "speech"]
    assert ask.num_digits == 1 and ask.finish_on_key == "#" and ask.timeout == 5.0
    # YAML 1.2 core schema: yes/no stay strings (PyYAML's YAML 1.1 would give True/False).
    assert ask.speech_hints == ["yes", "no", "confirm", "cancel"]
    assert ask.save_as == "answer" and ask.next == "route"
    greet = flow.node("greet")
    assert isinstance(greet, SayNode) and greet.barge_in is True and greet.voice is None
    cancelled = flow.node("cancelled")
    assert isinstance(cancelled, HttpNode)
    assert cancelled.json_body == {"name": "{{ vars.name }}"}
    assert cancelled.method == "POST" and cancelled.on_error is None
    route = flow.node("route")
    assert isinstance(route, BranchNode)
    assert route.targets() == ["confirmed", "cancelled", "retry"]


def test_reminder_example_loads_from_json_and_matches_yaml() -> None:
    text = json.dumps(reminder_doc())
    from_json = load_flow(text, "application/json")
    assert from_json == load_flow(REMINDER_YAML, "application/yaml")
    assert load_flow(text.encode(), None) == from_json  # bytes, sniffed as JSON
    assert load_flow(REMINDER_YAML, None) == from_json  # sniffed as YAML


def test_to_document_round_trips_in_camel_case() -> None:
    flow = load_flow(REMINDER_YAML, "application/yaml")
    doc = flow.to_document()
    assert doc["maxSteps"] == 1000
    assert doc["nodes"]["ask"] == {
        "type": "gather",
        "next": "route",
        "input": ["dtmf", "speech"],
        "numDigits": 1,
        "finishOnKey": "#",
        "timeout": 5.0,
        "speechHints": ["yes", "no", "confirm", "cancel"],
        "saveAs": "answer",
    }
    assert doc["nodes"]["cancelled"]["json"] == {"name": "{{ vars.name }}"}
    assert list(doc["nodes"]["bye"]) == ["type"]
    assert load_flow(json.dumps(doc)) == flow


def test_snake_case_names_are_accepted_too() -> None:
    node = GatherNode.model_validate(
        {"type": "gather", "input": ["dtmf"], "num_digits": 4, "timeout": 3, "save_as": "pin"}
    )
    assert node.num_digits == 4 and node.save_as == "pin"


def test_node_types_cover_flows_md() -> None:
    assert set(NODE_TYPES) == {
        "say", "play", "gather", "branch", "set", "http", "record", "send_dtmf", "listen",
        "expect", "wait_for_beep", "pause", "transfer", "hangup",
    }  # fmt: skip
    # hangup and transfer end the flow: no next field at all.
    assert "next" not in NODE_TYPES["hangup"].model_fields
    assert "next" not in NODE_TYPES["transfer"].model_fields
    assert "next" not in NODE_TYPES["branch"].model_fields
    for name, cls in NODE_TYPES.items():
        if name not in ("hangup", "transfer", "branch"):
            assert cls.model_fields["next"].default is None, name


@pytest.mark.parametrize(
    ("node", "ok"),
    [
        ({"type": "send_dtmf", "digits": "123*#ABCDw"}, True),
        ({"type": "send_dtmf", "digits": "12E"}, False),
        ({"type": "send_dtmf", "digits": ""}, False),
        ({"type": "send_dtmf", "digits": 1234}, False),  # strict: quote digits in YAML
        ({"type": "pause", "seconds": 0}, False),
        ({"type": "pause", "seconds": 3600}, True),
        ({"type": "pause", "seconds": 3600.5}, False),
        ({"type": "pause", "seconds": "5"}, False),
        ({"type": "pause", "seconds": True}, False),
        ({"type": "gather", "input": [], "timeout": 1, "saveAs": "a"}, False),
        ({"type": "gather", "input": ["dtmf", "dtmf"], "timeout": 1, "saveAs": "a"}, False),
        ({"type": "gather", "input": ["speech"], "timeout": 1, "saveAs": "a"}, True),
        ({"type": "gather", "input": ["dtmf"], "timeout": 1, "saveAs": "1a"}, False),
        (
            {"type": "gather", "input": ["dtmf"], "timeout": 1, "saveAs": "a", "finishOnKey": "##"},
            False,
        ),
        (
            {
                "type": "http",
                "method": "GET",
                "url": "https://x.example/a",
                "timeout": 3,
                "saveAs": "r",
            },
            True,
        ),
        (
            {
                "type": "http",
                "method": "FETCH",
                "url": "https://x.example/a",
                "timeout": 3,
                "saveAs": "r",
            },
            False,
        ),
        (
            {
                "type": "http",
                "method": "GET",
                "url": "file:///etc/passwd",
                "timeout": 3,
                "saveAs": "r",
            },
            False,
        ),
        (
            {
                "type": "http",
                "method": "GET",
                "url": "{{ vars.base }}/a",
                "timeout": 3,
                "saveAs": "r",
            },
            True,
        ),
        ({"type": "http", "method": "GET", "url": "https://x.example", "saveAs": "r"}, False),
        ({"type": "play", "url": "https://x.example/a.wav"}, True),
        ({"type": "play", "file": "prompts/hello.wav", "loop": 3}, True),
        ({"type": "play", "file": "../etc/passwd"}, False),
        ({"type": "play", "file": "/etc/passwd"}, False),
        ({"type": "play"}, False),
        ({"type": "play", "url": "https://x.example/a.wav", "file": "a.wav"}, False),
        ({"type": "expect", "heard": "press one", "within": 5}, True),
        ({"type": "expect", "pattern": "press (one|1)", "within": 5, "onFail": "x"}, True),
        ({"type": "expect", "pattern": "(", "within": 5}, False),
        ({"type": "expect", "within": 5}, False),
        ({"type": "record", "maxSeconds": 30, "saveAs": "rec"}, True),
        ({"type": "listen", "maxSeconds": 30, "saveAs": "t"}, False),  # silenceTimeout required
        ({"type": "wait_for_beep", "timeout": 20}, True),
        ({"type": "transfer", "to": "sip:ops@127.0.0.1"}, True),
        ({"type": "transfer", "to": "sip:ops@127.0.0.1", "next": "x"}, False),
        ({"type": "hangup", "reason": "done"}, True),
        ({"type": "hangup", "next": "x"}, False),
        ({"type": "say", "text": "hi", "bargein": False}, False),  # typo: unknown field
        ({"type": "branch", "cases": [], "default": "x"}, False),
        ({"type": "branch", "cases": [{"when": "true", "next": "x"}]}, False),
        ({"type": "set", "values": {}}, False),
        ({"type": "set", "values": {"bad name": 1}}, False),
    ],
)
def test_field_bounds(node: dict, ok: bool) -> None:
    doc = {"id": "f", "start": "n", "nodes": {"n": node}}
    if ok:
        Flow.model_validate(doc)
    else:
        with pytest.raises(ValidationError):
            Flow.model_validate(doc)


def test_flow_level_bounds() -> None:
    base = {"id": "f", "start": "n", "nodes": {"n": {"type": "hangup"}}}
    Flow.model_validate(base)
    for bad in (
        {"id": "Flow_1"},
        {"id": "x" * 65},
        {"maxSteps": 0},
        {"nodes": {}},
        {"nodes": {"bad id": {"type": "hangup"}}},
        {"vars": {"1st": 1}},
        {"version": 2},
    ):
        with pytest.raises(ValidationError):
            Flow.model_validate(base | bad)


def test_models_are_frozen() -> None:
    flow = load_flow(REMINDER_YAML)
    with pytest.raises(ValidationError):
        flow.start = "bye"  # type: ignore[misc]


def test_expect_matching() -> None:
    heard = ExpectNode.model_validate({"type": "expect", "heard": "Press One", "within": 5})
    assert heard.matches("to confirm press one now")
    assert not heard.matches("press two")
    assert heard.matches("hello ada", heard="Hello Ada")  # the rendered template wins
    pattern = ExpectNode.model_validate(
        {"type": "expect", "pattern": r"press (1|one)", "within": 5}
    )
    assert pattern.matches("PRESS 1 to confirm")
    assert not pattern.matches("press two")


def test_play_targets_and_defaults() -> None:
    play = PlayNode.model_validate({"type": "play", "file": "a.wav", "next": "b"})
    assert play.loop == 1 and play.barge_in is True and play.targets() == ["b"]
    http = HttpNode.model_validate(
        {"type": "http", "method": "GET", "url": "https://a.example", "timeout": 1,
         "saveAs": "r", "onError": "oops", "next": "ok"}
    )  # fmt: skip
    assert http.targets() == ["ok", "oops"] and http.headers == {}


# -- parse_document ---------------------------------------------------------


def _problem(text: str | bytes, content_type: str | None = None) -> str:
    with pytest.raises(FlowError) as info:
        parse_document(text, content_type)
    (problem,) = info.value.problems
    assert problem.path == ""
    return problem.message


def test_yaml_core_schema_scalars() -> None:
    doc = parse_document(
        "x: [yes, no, on, off, true, False, 010, 0x1f, 0o17, 1.5, -2, ~, null, 2024-01-02, .inf]",
        "application/yaml",
    )
    assert doc == {
        "x": ["yes", "no", "on", "off", True, False, 10, 31, 15, 1.5, -2, None, None,
              "2024-01-02", ".inf"]
    }  # fmt: skip


def test_yaml_refuses_aliases_even_a_billion_laughs() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    assert "aliases" in _problem(bomb, "application/yaml")
    assert "line 2, column 11" in _problem("a: &x 1\nb: [1, 2, *x]", "application/yaml")


def test_yaml_refuses_duplicate_keys_and_non_json_tags() -> None:
    message = _problem("nodes:\n  a: {type: hangup}\n  a: {type: say}\n", "text/yaml")
    assert "duplicate key 'a'" in message and "line 3" in message
    assert "binary" in _problem("a: !!binary aGVsbG8=", "application/yaml")
    assert "python/object" in _problem("a: !!python/object:os.system x", "application/yaml")
    assert "constructor" in _problem("a: !!set {x}", "application/x-yaml")
    assert "single document" in _problem("a: 1\n---\nb: 2\n", "application/yaml")


def test_json_errors() -> None:
    assert _problem('{"a": 1, "a": 2}', "application/json") == "invalid JSON: duplicate key 'a'"
    assert "NaN is not valid JSON" in _problem('{"a": NaN}', "application/json; charset=utf-8")
    assert "line 1, column 6" in _problem('{"a" 1}', "application/json")
    assert "nested too deeply" in _problem("[" * 100_000, "application/json")
    assert "UTF-8" in _problem(b'{"a": "\xff"}', "application/json")


def test_size_cap() -> None:
    big = "a: " + "x" * MAX_DOCUMENT_BYTES
    assert "too large" in _problem(big, "application/yaml")
    assert parse_document(b"\xef\xbb\xbf" + b'{"a": 1}') == {"a": 1}  # UTF-8 BOM


def test_load_flow_raises_with_every_problem() -> None:
    doc = reminder_doc()
    doc["nodes"]["ask"]["next"] = "nowhere"
    doc["nodes"]["greet"]["text"] = "{{ vars.name "
    with pytest.raises(FlowError) as info:
        load_flow(json.dumps(doc))
    assert [p.path for p in info.value.problems] == ["nodes.ask.next", "nodes.greet.text"]
    assert str(info.value).startswith("nodes.ask.next: no node named 'nowhere'")
