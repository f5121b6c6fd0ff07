"""Suite files: validation with document paths, flow files beside the suite, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialflow.testing.suite import AmdSpec, SuiteError, load_suite, parse_suite, suite_from_data

MINIMAL = {"org": "acme", "tests": [{"name": "a", "flow": "tester", "to": "sip:7001@{sip}"}]}


def _problems(document: object) -> list[tuple[str, str]]:
    with pytest.raises(SuiteError) as info:
        parse_suite(document, source="s.yaml")
    return info.value.problems


def test_minimal_suite_defaults() -> None:
    model = parse_suite(MINIMAL)
    [test] = model.tests
    assert model.concurrency == 4 and model.flows == [] and model.server is None
    assert (test.expect.status, test.expect.flow_outcome) == ("completed", "passed")
    assert test.expect.amd_result is None and test.timeout == 60.0
    assert test.amd_spec() is None
    assert test.destination("127.0.0.1:5070") == "sip:7001@127.0.0.1:5070"


def test_sip_placeholder_needs_an_address() -> None:
    [test] = parse_suite(MINIMAL).tests
    with pytest.raises(ValueError, match="--sip"):
        test.destination(None)
    other = parse_suite({**MINIMAL, "tests": [{"name": "a", "flow": "t", "to": "sip:b@h"}]})
    assert other.tests[0].destination(None) == "sip:b@h"


def test_errors_have_document_paths() -> None:
    problems = _problems(
        {
            "org": "Acme!",
            "concurrency": 0,
            "surprise": 1,
            "tests": [
                {
                    "name": "a",
                    "flow": "t",
                    "to": "sip:1@{host}",
                    "amd": {"mode": "later"},
                    "expect": {"flowOutcome": "pass", "bogus": 1},
                }
            ],
        }
    )
    paths = [p for p, _ in problems]
    assert paths == [
        "org",
        "concurrency",
        "tests.0.to",
        "tests.0.amd.mode",
        "tests.0.expect.flowOutcome",
        "tests.0.expect.bogus",
        "surprise",
    ]
    messages = dict(problems)
    assert messages["tests.0.to"] == "unknown placeholder {host} (known: {sip})"
    assert messages["surprise"] == "unknown field"
    assert "'passed'" in messages["tests.0.expect.flowOutcome"]


def test_duplicate_names_and_empty_tests() -> None:
    test = {"name": "same", "flow": "t", "to": "sip:a@b"}
    assert _problems({"org": "a", "tests": [test, test]}) == [("", "two tests are named 'same'")]
    assert _problems({"org": "a", "tests": []})[0][0] == "tests"
    assert _problems(["not", "a", "mapping"])[0][0] == ""


def test_amd_shorthand_and_implied_by_expect() -> None:
    def spec(**fields: object) -> AmdSpec | None:
        model = parse_suite(
            {"org": "a", "tests": [{"name": "a", "flow": "t", "to": "x", **fields}]}
        )
        return model.tests[0].amd_spec()

    assert spec(amd=False) is None
    assert spec(amd={"enabled": False}) is None
    on = spec(amd=True)
    assert on is not None and on.request_body() == {
        "enabled": True,
        "mode": "async",
        "runFlowOn": ["human", "machine", "fax", "unknown"],
    }
    implied = spec(expect={"amdResult": "machine"})
    assert implied is not None and implied.mode == "async"
    custom = spec(amd={"mode": "sync", "timeoutMs": 3000, "runFlowOn": ["human"]})
    assert custom is not None and custom.request_body() == {
        "enabled": True,
        "mode": "sync",
        "timeoutMs": 3000,
        "runFlowOn": ["human"],
    }


def test_null_expect_field_is_not_checked() -> None:
    model = parse_suite(
        {
            "org": "a",
            "tests": [{"name": "a", "flow": "t", "to": "x", "expect": {"flowOutcome": None}}],
        }
    )
    assert model.tests[0].expect.flow_outcome is None


def test_load_suite_reads_flows_beside_it(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    (tmp_path / "flows" / "ivr.yaml").write_text("id: ivr\nstart: a\nnodes: {a: {type: hangup}}\n")
    (tmp_path / "t.json").write_text(
        '{"id": "t", "start": "a", "nodes": {"a": {"type": "hangup"}}}'
    )
    path = tmp_path / "my-suite.yaml"
    path.write_text(
        "org: acme\nflows: [flows/ivr.yaml, t.json]\n"
        "numbers: [{number: 7001, flowId: ivr}]\n"  # a YAML int: a number is text
        "tests: [{name: a, flow: t, to: 'sip:7001@{sip}'}]\n"
    )
    suite = load_suite(path)
    assert suite.name == "my-suite"  # no `name:`: the file's stem
    assert [(f.flow_id, f.content_type) for f in suite.flows] == [
        ("ivr", "application/yaml"),
        ("t", "application/json"),
    ]
    assert suite.flows[0].text.startswith("id: ivr")
    assert suite.model.numbers[0].number == "7001"


@pytest.mark.parametrize(
    ("flows", "files", "expected"),
    [
        (["gone.yaml"], {}, ("flows.0", "cannot read")),
        (["a.yaml"], {"a.yaml": "start: x\nnodes: {}\n"}, ("flows.0", "has no id")),
        (["a.yaml"], {"a.yaml": "id: [unclosed\n"}, ("flows.0", "a.yaml:")),
        (
            ["a.yaml", "b.yaml"],
            {"a.yaml": "id: x\n", "b.yaml": "id: x\n"},
            ("flows.1", "also in flows.0"),
        ),
    ],
)
def test_flow_file_problems(
    tmp_path: Path, flows: list[str], files: dict[str, str], expected: tuple[str, str]
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    path = tmp_path / "suite.yaml"
    path.write_text(f"org: a\nflows: {flows}\ntests: [{{name: a, flow: t, to: x}}]\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    [(where, message)] = info.value.problems
    assert where == expected[0] and expected[1] in message
    assert info.value.source == str(path)


def test_yaml_1_2_keeps_on_and_no_as_text(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("org: a\ntests: [{name: no, flow: t, to: x, variables: {answer: on}}]\n")
    [test] = load_suite(path).tests
    assert test.name == "no" and test.variables == {"answer": "on"}


def test_suite_from_data_serialises_flow_documents() -> None:
    flow = {"id": "t", "start": "a", "nodes": {"a": {"type": "hangup"}}}
    suite = suite_from_data(MINIMAL, [flow], name="demo")
    assert suite.name == "demo" and suite.path is None
    assert suite.flows[0].flow_id == "t" and suite.flows[0].content_type == "application/json"
