"""The sandboxed expression engine: results, native types, limits, escapes."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dialflow.flows import expressions
from dialflow.flows.expressions import (
    MAX_OUTPUT,
    ExpressionError,
    check_expression,
    check_template,
    evaluate,
    evaluate_condition,
    is_template,
    render,
    render_value,
)

CTX: dict[str, Any] = {
    "vars": {"name": "Ada", "attempts": 2, "answer": "yes i confirm", "items": [1, 2, 3],
             "values": "v", "flag": None},
    "call": {"to": "sip:bob@127.0.0.1:5070", "from": "+15550001111", "sessionId": "c_1",
             "direction": "outbound"},
    "amd": {"result": "machine", "beep": True, "decisionMs": 2380},
    "last": {"status": 200, "body": {"ok": True}},
}  # fmt: skip


# -- results ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{ vars.name }}.", "Hello Ada."),
        ("plain text, no markup", "plain text, no markup"),
        ("{{ vars.attempts + 1 }}", "3"),
        ("{{ call.to }} / {{ call['from'] }}", "sip:bob@127.0.0.1:5070 / +15550001111"),
        ("{{ amd.result }} {{ amd.beep }} {{ amd.decisionMs // 1000 }}", "machine true 2"),
        ("[{{ vars.flag }}]", "[]"),  # null renders as nothing
        ("{{ vars.items }}", "[1, 2, 3]"),  # data renders as JSON
        ("{{ last.body }}", '{"ok": true}'),
        ("{{ vars.items | join(',') }}", "1,2,3"),
        ("{{ vars.name | upper }}{{ vars.name.lower() }}", "ADAada"),
        ("{{ 'x' ~ vars.attempts ~ true }}", "x2true"),
        ("{{ 'yes' if vars.attempts > 1 else 'no' }}", "yes"),
        ("{{ vars.missing | default('n/a') }}", "n/a"),
        ("{{ vars.values }}", "v"),  # a key wins over the dict method of the same name
        ("{{ vars.items | sum }} {{ vars.items | max }}", "6 3"),
        ("{{ range(3) | map('string') | join('-') }}", "0-1-2"),
        ("{{ '%03d' % vars.attempts }}", "002"),
        ("{{ last | tojson }}", '{"status":200,"body":{"ok":true}}'),
        ("{# a comment #}{{ 7 // 2 }}", "3"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render(template, CTX) == expected


def test_render_fast_path_returns_the_same_object() -> None:
    text = "no braces here, {single} is fine"
    assert not is_template(text)
    assert render(text, {}) is text


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("vars.answer == '1' or 'confirm' in vars.answer", True),
        ("vars.answer == '2'", False),
        ("vars.attempts < 3", True),
        ("amd.result in ['machine', 'fax']", True),
        ("vars.nope is defined", False),
        ("vars.flag is none", True),
        ("last.status >= 200 and last.status < 300", True),
        ("not vars.items", False),
    ],
)
def test_conditions(expr: str, expected: bool) -> None:
    assert evaluate_condition(expr, CTX) is expected


def test_evaluate_returns_plain_data() -> None:
    assert evaluate("vars.attempts * 2", CTX) == 4
    assert evaluate("vars.items | map('string') | list", CTX) == ["1", "2", "3"]
    assert evaluate("vars.items | map('string')", CTX) == ["1", "2", "3"]  # lazy → list
    assert evaluate("(1, 'a')", CTX) == [1, "a"]
    assert evaluate("last.body.keys()", CTX) == ["ok"]
    assert evaluate("range(3)", CTX) == [0, 1, 2]
    assert evaluate("{'a': [1, none]}", CTX) == {"a": [1, None]}


def test_render_value_keeps_native_types() -> None:
    ctx = {"vars": {"attempts": 0, "name": "Ada", "items": [1, 2]}}
    assert render_value("{{ vars.attempts + 1 }}", ctx) == 1  # the FLOWS.md retry node
    assert render_value("{{ vars.attempts + 1 }}", ctx) is not True
    assert render_value("{{ vars.attempts >= 0 }}", ctx) is True
    assert render_value("{{ vars.items }}", ctx) == [1, 2]
    assert render_value("{{ vars.nope | default(none) }}", ctx) is None
    assert render_value("{{ vars.attempts / 4 }}", ctx) == 0.0
    assert render_value("  {{ vars.attempts }}\n", ctx) == 0  # surrounding whitespace
    assert render_value("{{- vars.attempts -}}", ctx) == 0  # whitespace control markers
    assert render_value("{{ -1 }}", ctx) == -1
    assert render_value("{{ vars.attempts }} tries", ctx) == "0 tries"
    assert render_value("{{ vars.name }}{{ vars.attempts }}", ctx) == "Ada0"
    assert render_value('{{ "}} {{" }}', ctx) == "}} {{"
    assert render_value("plain", ctx) == "plain"
    assert render_value(5, ctx) == 5
    # JSON bodies are rendered all the way down; keys are not templates.
    body = {"{{ k }}": ["{{ vars.name }}", 1, {"n": "{{ vars.attempts + 2 }}"}], "b": None}
    assert render_value(body, ctx) == {"{{ k }}": ["Ada", 1, {"n": 2}], "b": None}


# -- errors -------------------------------------------------------------------


def test_missing_variable_is_a_clear_error() -> None:
    with pytest.raises(ExpressionError) as info:
        render("Hello {{ vars.nmae }}", CTX)
    assert info.value.message == (
        "'Hello {{ vars.nmae }}': 'nmae' is undefined; "
        "test with 'is defined' or use '| default(...)'"
    )
    assert info.value.source == "Hello {{ vars.nmae }}"


def test_membership_in_a_missing_variable_does_not_crash() -> None:
    # FLOWS.md's route: if gather never set answer, the flow ends with a clear error.
    expr = "vars.answer == '1' or 'confirm' in vars.answer"
    with pytest.raises(ExpressionError, match="'answer' is undefined"):
        evaluate_condition(expr, {"vars": {}})
    with pytest.raises(ExpressionError, match="'answer' is undefined"):
        evaluate(expr, {"vars": {}})


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ vars.name ", "unexpected end of template"),
        ("{{ answer }}", "unknown name 'answer' (available: amd, call, last, vars)"),
        ("{% for i in range(3) %}x{% endfor %}", "statements ({% ... %}) are not allowed"),
        ("{% set x = 1 %}", "statements"),
        ("{{ x | center(9) }}", "no filter named 'center'"),
        ("{{ vars.a if vars.b else vars.c | nofilter }}", "no filter named 'nofilter'"),
        ("{{ vars is nosuchtest }}", "no test named 'nosuchtest'"),
        ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", ""),
        ("{{ '" + "x" * 9000 + "' }}", "too long"),
    ],
)
def test_template_compile_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        check_template(source)
    assert message in info.value.message
    with pytest.raises(ExpressionError):
        render(source, CTX)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("vars.a ==", "unexpected 'end of template'"),
        ("vars.a }} x", "unexpected '}}' after the expression"),
        ("{{ vars.a }}", "write the expression without {{ }}"),
        ("cycler", "unknown name 'cycler'"),
        ("", "unexpected 'end of template'"),
    ],
)
def test_expression_compile_errors(expr: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        check_expression(expr)
    assert message in info.value.message


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
        ("{{ vars.name + 1 }}", "TypeError"),
        ("{{ vars.items[10] }}", "undefined"),
        ("{{ vars.attempts() }}", "calling int() is not allowed"),
        ("{{ vars.items.append(4) }}", "unsafe"),
        ("{{ vars.items.pop() }}", "unsafe"),
        ("{{ last.body.update({'x': 1}) }}", "unsafe"),
        ("{{ last.body.setdefault('x', 1) }}", "unsafe"),
        ("{{ vars.name.encode() }}", "calling str.encode() is not allowed"),
        ("{{ vars.name.join(['a', 'b']) }}", "use the join filter"),
        ("{{ 2 ** 63 }}", "integer result out of the 64-bit range"),
        ("{{ 1e308 * 10 }}", "not finite"),
        ("{{ ['a'] | sum(start=[]) }}", "sum works on numbers only"),
        ("{{ 'abc' | int + 'x' }}", "TypeError"),
    ],
)
def test_runtime_errors_are_expression_errors(source: str, message: str) -> None:
    with pytest.raises(ExpressionError) as info:
        render(source, CTX)
    assert message in info.value.message


def test_mutation_is_refused_and_context_is_untouched() -> None:
    ctx = {"vars": {"items": [1]}}
    with pytest.raises(ExpressionError):
        evaluate("vars.items.append(2)", ctx)
    assert ctx == {"vars": {"items": [1]}}


# -- sandbox escapes and resource bombs ----------------------------------------


ESCAPES = [
    ("{{ ''.__class__.__mro__ }}", "unsafe"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),
    ("{{ cycler.__init__.__globals__ }}", "unknown name 'cycler'"),
    ("{{ self.__init__.__globals__ }}", "unknown name 'self'"),
    ("{{ lipsum.__globals__['os'] }}", "unknown name 'lipsum'"),
    ("{{ vars.__class__ }}", "unsafe"),
    ("{{ vars['__class__'] }}", "unsafe"),
    ("{{ range.__globals__ }}", "unsafe"),
    ("{{ vars.name | attr('__class__') }}", "no filter named 'attr'"),
    ("{{ vars.name.format.__globals__ }}", "unsafe"),
    ("{{ '{0.__class__}'.format(vars.name) }}", "calling format() is not allowed"),
    ("{{ range(10**9) | list }}", "range too large"),
    ("{{ range(10**9) }}", "range too large"),
    ("{{ 'a' * 10**9 }}", "repetition too large"),
    ("{{ 10**9 * 'a' }}", "repetition too large"),
    ("{{ [1] * 10**9 }}", "repetition too large"),
    ("{{ [[1] * 10000] * 10000 }}", "repetition too large"),
    ("{{ 9**9**9 }}", "64-bit"),
    ("{{ 9**(9**9) }}", "64-bit"),
    ("{{ -9**999999999 }}", "64-bit"),
    ("{{ 'a'.ljust(10**9) }}", "width too large"),
    ("{{ 'a'.center(10**9) }}", "width too large"),
    ("{{ '{:>999999999}'.format(1) }}", "calling format() is not allowed"),
    ("{{ '%999999999d' % 1 }}", "format width too large"),
    ("{{ '%*d' % (999999999, 1) }}", "format width too large"),
    ("{{ ('a' * 60000) | replace('a', 'aaaa') }}", "replace result too large"),
    ("{{ ('a' * 60000).replace('a', 'aaaa') }}", "replace result too large"),
    ("{{ ('a' * 1000) | replace('', 'x' * 100) }}", "replace result too large"),
    ("{{ range(10000) | map(attribute='q', default='a' * 60000) | join }}", "too large"),
    ("{{ range(10000) | map(attribute='q', default='a' * 60000) | list }}", "too large"),
    ("{{ vars | tojson(indent=999999999) }}", "TypeError"),
    ("{{ {}.fromkeys(range(10000), 'a' * 60000) }}", "calling fromkeys() is not allowed"),
    ("{{ ('a' * 60000) ~ ('a' * 60000) }}", "too large"),
    ("{{ ('a' * 60000) + ('a' * 60000) }}", "too large"),
    ("{{ [vars.big, vars.big, vars.big] }}", "too large"),
    ("{{ vars.big ~ vars.big }}", "too large"),
    ("{{ [1] | batch(10**9, 'x') | list }}", "batch size"),
    ("{{ 12345 | round(-1000000000) }}", "round precision"),
    ("{{ 1.5 | round(10**9, 'floor') }}", "round precision"),
    ("{{ vars.big }}{{ vars.big }}", "rendered text too long"),
]


@pytest.mark.parametrize(("source", "message"), ESCAPES)
def test_escapes_and_bombs_are_refused_quickly(source: str, message: str) -> None:
    ctx = {"vars": {"name": "Ada", "big": "b" * 40_000}}
    started = time.perf_counter()
    with pytest.raises(ExpressionError) as info:
        render(source, ctx)
    assert time.perf_counter() - started < 1.0
    assert message in info.value.message, info.value.message


def test_integer_bounds_are_exact() -> None:
    assert evaluate("2 ** 62", {}) == 2**62
    assert evaluate("3 ** 39", {}) == 3**39
    assert evaluate("(2 ** 62) - 1 + (2 ** 62)", {}) == 2**63 - 1
    for expr in ("3 ** 40", "2 ** 62 * 2", "-(2 ** 62) * 4", "vars.n + 1"):
        with pytest.raises(ExpressionError, match="64-bit"):
            evaluate(expr, {"vars": {"n": 2**63 - 1}})
    assert evaluate("42.55 | round(1, 'floor')", {}) == 42.5


def test_output_cap() -> None:
    assert len(render("{{ 'a' * 30000 }}{{ 'b' * 30000 }}", {})) == 60_000
    with pytest.raises(ExpressionError, match="rendered text too long"):
        render("{{ 'a' * 40000 }}{{ 'b' * 40000 }}", {})
    assert MAX_OUTPUT == 65_536


def test_deadline() -> None:
    with pytest.raises(ExpressionError, match="took too long"):
        render("{{ vars.name }}", CTX, timeout=-1.0)
    with pytest.raises(ExpressionError, match="took too long"):
        evaluate_condition("vars.attempts > 1", CTX, timeout=-1.0)
    # Bounded but real work fits well inside the default budget.
    assert evaluate("range(10000) | map('string') | join(',') | length", {}) == 48_889


def test_heavy_legal_expressions_are_fast() -> None:
    started = time.perf_counter()
    assert evaluate("(range(10000) | list) == (range(10000) | list)", {}) is True
    assert evaluate("range(10000) | sum", {}) == 49_995_000
    assert len(evaluate("range(10000) | reverse | list", {})) == 10_000
    assert time.perf_counter() - started < 1.0


def test_compiled_once() -> None:
    source = "{{ vars.attempts + 41 }}"
    before = expressions._compile_template.cache_info().hits
    for _ in range(5):
        assert render(source, CTX) == "43"
    assert expressions._compile_template.cache_info().hits >= before + 4
    assert expressions._compile_expression("vars.attempts") is expressions._compile_expression(
        "vars.attempts"
    )


def test_only_the_four_names_reach_the_expression() -> None:
    assert render("{{ vars.x }}", {"vars": {"x": 1}, "secret": "s"}) == "1"
    with pytest.raises(ExpressionError, match="unknown name 'secret'"):
        render("{{ secret }}", {"secret": "s"})
    with pytest.raises(ExpressionError, match="'last' is undefined"):
        render("{{ last }}", {"vars": {}})


_tokens = list("{}()[]|.~+-*/%<>=!'\" ,:#0123456789abcxyz_") + [
    "vars", "range", "**", "{{", "}}", "{%", "%}", " in ", " if ", " else ", "join", "map",
    "__class__", "99",
]  # fmt: skip
_jinja_ish = st.lists(st.sampled_from(_tokens), max_size=30).map("".join)


@settings(max_examples=300, deadline=None)
@given(_jinja_ish)
def test_random_sources_only_raise_expression_error(source: str) -> None:
    ctx = {"vars": {"a": 1, "b": "x", "c": [1, 2]}, "last": None}
    for fn in (render, evaluate, evaluate_condition, render_value):
        try:
            fn(source, ctx)
        except ExpressionError:
            pass
    for check in (check_template, check_expression):
        try:
            check(source)
        except ExpressionError:
            pass
