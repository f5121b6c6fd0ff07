"""Sandboxed Jinja2 expressions and templates for flow documents.

Flow documents come from API users, so every ``{{ ... }}`` string and every
``when:`` expression is untrusted code. They run in an
:class:`~jinja2.sandbox.ImmutableSandboxedEnvironment` tightened further:

* **Names.** Only ``vars``, ``call``, ``amd``, ``last`` (and a capped
  ``range``) exist; any other name is refused when the template is compiled,
  so ``answer == '1'`` (a forgotten ``vars.``) fails at upload, not mid-call.
* **Expressions only.** ``{% ... %}`` statements (loops, assignments, macros,
  includes) are refused: a flow template is text with ``{{ expr }}`` holes.
* **No internals.** The sandbox already hides ``_``-prefixed attributes; on
  top of it only a short list of pure ``str``/``list``/``dict`` methods may be
  called (``'{:>999999999}'.format`` or ``dict.fromkeys`` cannot be reached),
  and the filter set is curated (no ``format``, ``center``, ``indent``,
  ``wordwrap``, ``random``…).
* **Bounded.** Every operator, call and filter that can make something bigger
  is checked *before* it runs (``'a' * 10**9``, ``9**9**9``, ``range(10**9)``,
  ``x | replace('a', 'aaaa')``); every value an expression builds is capped
  at :data:`MAX_VALUE_SIZE` size units; rendered text at :data:`MAX_OUTPUT`
  characters; integers at 64 bits; and a deadline (:data:`DEFAULT_TIMEOUT`)
  is checked at each of those points.
* **One error type.** Anything that goes wrong raises :class:`ExpressionError`
  with a message naming the expression; callers never see Jinja or Python
  exceptions.

Missing variables use :class:`~jinja2.StrictUndefined`: ``{{ vars.nmae }}``
raises ``ExpressionError("... 'nmae' is undefined ...")`` instead of
rendering an empty string. ``x is defined`` and ``x | default(...)`` work.
The executor turns an ``ExpressionError`` into flow outcome ``error`` for
that call only.
"""

from __future__ import annotations

import functools
import json
import math
import operator
import re
import time
import types
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextvars import ContextVar
from itertools import islice
from typing import Any

from jinja2 import StrictUndefined, Template, nodes
from jinja2 import filters as jfilters
from jinja2.environment import TemplateExpression
from jinja2.exceptions import TemplateError, TemplateSyntaxError, UndefinedError
from jinja2.parser import Parser
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_environment, pass_eval_context
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

__all__ = [
    "CONTEXT_NAMES",
    "DEFAULT_TIMEOUT",
    "MAX_INT_BITS",
    "MAX_OUTPUT",
    "MAX_RANGE",
    "MAX_SOURCE",
    "MAX_VALUE_SIZE",
    "ExpressionError",
    "check_expression",
    "check_template",
    "evaluate",
    "evaluate_condition",
    "is_template",
    "render",
    "render_value",
]

#: Names an expression may use (``range`` is added as a capped function).
CONTEXT_NAMES: frozenset[str] = frozenset({"vars", "call", "amd", "last"})
#: Longest template or expression source accepted, in characters.
MAX_SOURCE = 8192
#: Most items ``range()`` may produce.
MAX_RANGE = 10_000
#: Largest value an expression may build, in size units: one per character
#: of a string, one per number/bool/null, one per list item or dict entry
#: (counted through nesting, so shared references count every time).
MAX_VALUE_SIZE = 65_536
#: Longest rendered text, in characters.
MAX_OUTPUT = 65_536
#: Integers produced by arithmetic must fit in a signed 64-bit integer
#: (what JSON consumers and databases hold); this also keeps ``**`` cheap.
MAX_INT_BITS = 63
#: Wall-clock budget of one render/evaluate call, in seconds.
DEFAULT_TIMEOUT = 0.1
#: Widths in ``%`` formatting (``'%05d' % n``) at most this.
_MAX_FORMAT_WIDTH = 1000
_MAX_DEPTH = 64


class ExpressionError(Exception):
    """An expression or template could not be compiled or evaluated.

    The only exception this module raises. ``message`` is meant for people
    (call records, 422 details); ``source`` is the offending expression.
    """

    def __init__(self, message: str, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source


class _Refused(ExpressionError):
    """Internal: a limit or rule was hit while evaluating (already worded)."""


# ---------------------------------------------------------------------------
# Deadline and size accounting
# ---------------------------------------------------------------------------

_DEADLINE: ContextVar[float] = ContextVar("dialflow_expression_deadline", default=math.inf)


def _tick() -> None:
    # Checked at every operator, call, attribute access and filter: with
    # statements refused there is no loop an expression can write itself, so
    # these points bound the work between two checks.
    if time.monotonic() > _DEADLINE.get():
        raise _Refused("expression took too long")


def _size(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """Size of ``value`` in size units, counting stops just past ``limit``.

    Iterative (no recursion limit) and O(limit) at worst, whatever the value.
    """
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            total += len(v) + 1
        elif isinstance(v, bool) or v is None or isinstance(v, float):
            total += 1
        elif isinstance(v, int):
            total += 1 + v.bit_length() // 64
        elif isinstance(v, Undefined):
            total += 1  # touching a StrictUndefined raises; it is small anyway
        elif isinstance(v, range):
            total += 1 + len(v)
        elif isinstance(v, list | tuple | set | frozenset):
            total += 1
            if total + len(v) > limit:
                return limit + 1
            stack.extend(v)
        elif isinstance(v, Mapping):
            total += 1
            if total + 2 * len(v) > limit:
                return limit + 1
            for k, item in v.items():
                stack.append(k)
                stack.append(item)
        else:
            total += 1  # generators, methods: opaque and small
        if total > limit:
            return limit + 1
    return total


def _check_size(value: Any, what: str = "value") -> Any:
    if _size(value) > MAX_VALUE_SIZE:
        raise _Refused(f"{what} too large (limit {MAX_VALUE_SIZE} size units)")
    return value


def _check_number(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise _Refused("integer result out of the 64-bit range")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Refused("number result is not finite")
    return value


# ---------------------------------------------------------------------------
# Operators
# ---------------------------------------------------------------------------

_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}
_UNOPS: dict[str, Callable[[Any], Any]] = {"+": operator.pos, "-": operator.neg}
_PRINTF_RE = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")


def _is_int(v: Any) -> bool:
    return isinstance(v, int)


def _precheck_binop(op: str, a: Any, b: Any) -> None:
    if op == "**":
        if _is_int(a) and _is_int(b) and b > 0 and abs(a) > 1:
            # Refuse before computing: 9**(9**9) would otherwise run for hours.
            # |a|**b has at least b*(bit_length(a)-1) bits; within the bound the
            # exact power is cheap and the result check below is exact.
            if b * (abs(a).bit_length() - 1) > MAX_INT_BITS:
                raise _Refused("integer result out of the 64-bit range")
    elif op == "*":
        if _is_int(b) and isinstance(a, str | list | tuple):
            a, b = b, a
        if _is_int(a) and isinstance(b, str | list | tuple):
            unit = len(b) if isinstance(b, str) else _size(b) - 1  # the copies share one header
            if a > 0 and a * unit > MAX_VALUE_SIZE:
                raise _Refused(f"repetition too large (limit {MAX_VALUE_SIZE} size units)")
    elif op == "+":
        if not (isinstance(a, int | float) and isinstance(b, int | float)):
            if _size(a) + _size(b) > MAX_VALUE_SIZE:
                raise _Refused(f"value too large (limit {MAX_VALUE_SIZE} size units)")
    elif op == "%" and isinstance(a, str):
        # printf-style widths allocate before we could look at the result.
        for m in _PRINTF_RE.finditer(a):
            for part in m.groups():
                if part == "*" or (part is not None and int(part) > _MAX_FORMAT_WIDTH):
                    raise _Refused("format width too large")
        _check_size(b, "format arguments")


def _binop(op: str, a: Any, b: Any) -> Any:
    _tick()
    _precheck_binop(op, a, b)
    result = _BINOPS[op](a, b)
    if isinstance(result, str | list | tuple):
        return _check_size(result)
    return _check_number(result)


# ---------------------------------------------------------------------------
# Calls: our functions and a short list of pure builtin methods
# ---------------------------------------------------------------------------


def _range(*args: Any) -> range:
    """``range`` capped at :data:`MAX_RANGE` items."""
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise _Refused(f"range too large (limit {MAX_RANGE} items)")
    return r


_STR_METHODS = frozenset(
    """lower upper title capitalize casefold swapcase strip lstrip rstrip startswith
    endswith find rfind count index rindex isdigit isalpha isalnum isspace islower isupper
    isnumeric isdecimal split rsplit splitlines partition rpartition removeprefix removesuffix
    replace zfill ljust rjust center join""".split()
)
_SEQ_METHODS = frozenset({"index", "count"})
_DICT_METHODS = frozenset({"get", "keys", "values", "items"})
_WIDTH_METHODS = frozenset({"zfill", "ljust", "rjust", "center"})


def _check_method_call(owner: Any, name: str, args: tuple[Any, ...]) -> None:
    if isinstance(owner, str):
        if name not in _STR_METHODS:
            raise _Refused(f"calling str.{name}() is not allowed")
        if name in _WIDTH_METHODS and args and _is_int(args[0]) and args[0] > MAX_VALUE_SIZE:
            raise _Refused(f"str.{name}() width too large")
        if name == "replace" and len(args) >= 2:
            _precheck_replace(owner, args[0], args[1], args[2] if len(args) > 2 else -1)
        if name == "join" and args:
            raise _Refused("use the join filter: items | join(sep)")
    elif isinstance(owner, list | tuple):
        if name not in _SEQ_METHODS:
            raise _Refused(f"calling {type(owner).__name__}.{name}() is not allowed")
    elif isinstance(owner, Mapping):
        if name not in _DICT_METHODS:
            raise _Refused(f"calling {name}() on an object is not allowed")
    else:
        raise _Refused(f"calling {name}() is not allowed")


def _precheck_replace(s: Any, old: Any, new: Any, count: Any) -> None:
    if not (isinstance(s, str) and isinstance(old, str) and isinstance(new, str)):
        return
    n = len(s) + 1 if old == "" else s.count(old)
    if _is_int(count) and count >= 0:
        n = min(n, count)
    if len(s) + n * (len(new) - len(old)) > MAX_VALUE_SIZE:
        raise _Refused(f"replace result too large (limit {MAX_VALUE_SIZE} characters)")


# ---------------------------------------------------------------------------
# Rendering values as text, and as data
# ---------------------------------------------------------------------------


def _undefined_error(value: Undefined) -> Exception:
    """The exception using ``value`` raises (UndefinedError, or SecurityError)."""
    try:
        value._fail_with_undefined_error()
    except Exception as exc:
        return exc
    return _Refused("undefined value")  # pragma: no cover - always raises above


def _to_data(value: Any) -> Any:
    """Turn an expression result into JSON-like data (dict/list/str/num/bool/None).

    Lazy results (``map``, ``select``, ``dict.keys()``…) become lists. One size
    budget covers the whole result, so the work is O(MAX_VALUE_SIZE) at most.
    """
    return _data(value, 0, [MAX_VALUE_SIZE])


def _data(value: Any, depth: int, budget: list[int]) -> Any:
    if depth > _MAX_DEPTH:
        raise _Refused("value nested too deeply")
    out: Any
    if value is None or isinstance(value, bool | int | float):
        out, cost = value, 1
    elif isinstance(value, str):
        out, cost = str(value), len(value) + 1  # str(): Markup → str
    elif isinstance(value, Undefined):
        raise _undefined_error(value)
    elif isinstance(value, Mapping):
        out, cost = {}, 1
        for k, v in value.items():
            key = k if isinstance(k, str) else _to_text(k)
            budget[0] -= len(key)
            out[key] = _data(v, depth + 1, budget)
    elif isinstance(value, list | tuple | range | set | frozenset | Iterator) or isinstance(
        value, KeysView | ValuesView | ItemsView
    ):
        out, cost = [], 1
        for v in value:
            out.append(_data(v, depth + 1, budget))
    else:
        raise _Refused(f"the result is a {type(value).__name__}, not a data value")
    budget[0] -= cost
    if budget[0] < 0:
        raise _Refused(f"value too large (limit {MAX_VALUE_SIZE} size units)")
    return out


def _to_text(value: Any) -> str:
    """Text for ``{{ value }}`` and ``~``: JSON spellings for data."""
    _tick()
    if isinstance(value, str):
        return str(value)
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Undefined):
        raise _undefined_error(value)
    data = _to_data(value)
    return json.dumps(data, ensure_ascii=False, separators=(", ", ": "))


# ---------------------------------------------------------------------------
# Filters: a curated, guarded set
# ---------------------------------------------------------------------------


def _guard_filter(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)  # keeps jinja's pass_context/pass_environment marks
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _tick()
        result = func(*args, **kwargs)
        if isinstance(result, Markup):
            result = str(result)
        if isinstance(result, int | float):
            return _check_number(result)
        return _check_size(result)

    return wrapper


def _materialize(value: Any) -> list[Any]:
    if isinstance(value, Undefined):
        raise _undefined_error(value)
    if isinstance(value, str):
        return list(value)
    items = list(islice(iter(value), MAX_VALUE_SIZE + 1))
    _check_size(items)
    return items


@pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = _materialize(value)
    if attribute is not None:
        getter = jfilters.make_attrgetter(eval_ctx.environment, attribute)
        items = [getter(x) for x in items]
    if _size(items) + len(items) * len(str(d)) > MAX_VALUE_SIZE:
        raise _Refused(f"join result too large (limit {MAX_VALUE_SIZE} characters)")
    return str(d).join(_to_text(x) for x in items)


@pass_eval_context
def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> str:
    _precheck_replace(str(s), str(old), str(new), -1 if count is None else count)
    return str(jfilters.do_replace(eval_ctx, s, old, new, count))


@pass_environment
def _sum(env: Any, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    items = _materialize(iterable)
    if attribute is not None:
        items = [jfilters.make_attrgetter(env, attribute)(x) for x in items]
    total = start
    for x in [start, *items]:
        if isinstance(x, bool) or not isinstance(x, int | float):
            raise _Refused("sum works on numbers only")
    for x in items:
        total = _check_number(total + x)
    return total


def _tojson(value: Any) -> str:
    # No indent argument: indent=10**6 would multiply the output.
    return json.dumps(_to_data(value), ensure_ascii=False, separators=(",", ":"))


def _string(value: Any) -> str:
    return _to_text(value)


def _list(value: Any) -> list[Any]:
    return _materialize(value)


def _round(value: Any, precision: Any = 0, method: str = "common") -> Any:
    # Jinja computes 10**precision: precision=10**9 would run for hours.
    if not _is_int(precision) or abs(precision) > 20:
        raise _Refused("round precision must be an integer from -20 to 20")
    return jfilters.do_round(value, precision, method)  # type: ignore[arg-type]


def _batch(value: Any, linecount: int, fill_with: Any = None) -> list[list[Any]]:
    if not _is_int(linecount) or not 0 < linecount <= MAX_RANGE:
        raise _Refused(f"batch size must be 1..{MAX_RANGE}")
    return list(jfilters.do_batch(_materialize(value), linecount, fill_with))


_PLAIN_FILTERS = (
    "abs capitalize count default d dictsort first float groupby int items last length lower "
    "map max min reject rejectattr reverse select selectattr sort title trim truncate "
    "unique upper urlencode wordcount"
).split()
_CUSTOM_FILTERS: dict[str, Callable[..., Any]] = {
    "join": _join,
    "replace": _replace,
    "sum": _sum,
    "tojson": _tojson,
    "string": _string,
    "list": _list,
    "batch": _batch,
    "round": _round,
}


# ---------------------------------------------------------------------------
# The environment
# ---------------------------------------------------------------------------


class _FlowUndefined(StrictUndefined):
    """StrictUndefined with messages that name the missing key."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        return f"{self._undefined_name!r} is undefined"


class _FlowEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with our operator, call and attribute rules."""

    intercepted_binops = frozenset(_BINOPS)
    intercepted_unops = frozenset(_UNOPS)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return _binop(operator, left, right)

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        _tick()
        return _check_number(_UNOPS[operator](arg))

    def getattr(self, obj: Any, attribute: str) -> Any:
        _tick()
        # JSON objects: a key wins over a dict method, so vars.items / vars.values
        # reach variables named "items" / "values".
        if isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _tick()
        return super().getitem(obj, argument)

    def call(
        __self,  # the sandbox's own spelling: no clash with the callee's kwargs
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _tick()
        if isinstance(__obj, Undefined):
            raise _undefined_error(__obj)
        if __obj is not _range:
            if not isinstance(__obj, types.BuiltinMethodType):
                name = getattr(__obj, "__name__", type(__obj).__name__)
                raise _Refused(f"calling {name}() is not allowed")
            _check_method_call(__obj.__self__, __obj.__name__, args)
        result = __context.call(__obj, *args, **kwargs)
        if isinstance(result, int | float):
            return _check_number(result)
        return _check_size(result)


def _make_environment() -> _FlowEnvironment:
    env = _FlowEnvironment(
        undefined=_FlowUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        # No compile-time constant folding: folded code would run at compile
        # time, outside our deadline, through code paths we do not guard.
        optimized=False,
        finalize=_to_text,
        cache_size=0,
    )
    env.globals.clear()  # drop lipsum, cycler, joiner, namespace, dict
    env.globals["range"] = _range
    default_filters = dict(env.filters)
    env.filters.clear()
    for name in _PLAIN_FILTERS:
        env.filters[name] = _guard_filter(default_filters[name])
    for name, func in _CUSTOM_FILTERS.items():
        env.filters[name] = _guard_filter(func)
    # Internal names contain a space so that no template can spell them.
    env.filters[_CONCAT_FILTER] = _concat
    env.filters[_LITERAL_FILTER] = _check_size
    return env


def _concat(parts: list[Any]) -> str:
    """``a ~ b``: Jinja's own concat cannot be guarded, so the AST is rewritten to this."""
    _tick()
    if sum(_size(p) for p in parts) > MAX_VALUE_SIZE:
        raise _Refused(f"text too large (limit {MAX_VALUE_SIZE} characters)")
    text = "".join(_to_text(p) for p in parts)
    _check_size(text)
    return text


_CONCAT_FILTER = "dialflow concat"
_LITERAL_FILTER = "dialflow literal"
_NAMES = CONTEXT_NAMES | {"range"}

_ALLOWED_NODES: tuple[type[nodes.Node], ...] = tuple(
    getattr(nodes, name)
    for name in (
        "Template Output TemplateData Name Const List Tuple Dict Pair Keyword CondExpr And Or "
        "Not Neg Pos Add Sub Mul Div FloorDiv Mod Pow Concat Compare Operand Getattr Getitem "
        "Slice Call Filter Test"
    ).split()
)


class _Guard(NodeTransformer):
    """Checks the tree against our rules and inserts size guards."""

    def __init__(self, env: _FlowEnvironment) -> None:
        self.env = env

    def generic_visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> nodes.Node:
        if not isinstance(node, _ALLOWED_NODES):
            if isinstance(node, nodes.Stmt):
                raise _Refused(
                    "statements ({% ... %}) are not allowed in flow templates; "
                    "use {{ a if condition else b }}"
                )
            raise _Refused(f"{type(node).__name__} is not allowed in flow expressions")
        if isinstance(node, nodes.Name) and node.name not in _NAMES:
            raise _Refused(
                f"unknown name {node.name!r} (available: {', '.join(sorted(CONTEXT_NAMES))})"
            )
        if isinstance(node, nodes.Filter) and node.name not in self.env.filters:
            raise _Refused(f"no filter named {node.name!r}")
        if isinstance(node, nodes.Test) and node.name not in self.env.tests:
            raise _Refused(f"no test named {node.name!r}")
        new = super().generic_visit(node, *args, **kwargs)
        if isinstance(new, nodes.Concat):
            return self._filter(nodes.List(new.nodes, lineno=new.lineno), _CONCAT_FILTER)
        if isinstance(new, nodes.List | nodes.Tuple | nodes.Dict):
            # [x, x, x, …] of a big input would otherwise be unbounded.
            return self._filter(new, _LITERAL_FILTER)
        return new

    @staticmethod
    def _filter(node: nodes.Expr, name: str) -> nodes.Filter:
        return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


_ENV = _make_environment()


def _syntax_message(exc: TemplateSyntaxError) -> str:
    return f"{exc.message} (line {exc.lineno})" if exc.lineno else str(exc.message)


def _describe(source: str) -> str:
    return repr(source if len(source) <= 80 else source[:77] + "...")


def _compile_guarded(source: str, build: Callable[[_Guard], nodes.Template]) -> Template:
    if len(source) > MAX_SOURCE:
        raise ExpressionError(f"too long ({len(source)} > {MAX_SOURCE} characters)", source)
    try:
        tree = build(_Guard(_ENV))
        tree.set_environment(_ENV)
        return _ENV.from_string(tree)
    except _Refused as exc:
        raise ExpressionError(exc.message, source) from None
    except TemplateSyntaxError as exc:
        raise ExpressionError(_syntax_message(exc), source) from None
    except Exception as exc:  # RecursionError on absurd nesting, MemoryError…
        raise ExpressionError(f"cannot compile: {type(exc).__name__}", source) from None


@functools.lru_cache(maxsize=4096)
def _compile_template(source: str) -> Template:
    return _compile_guarded(source, lambda guard: guard.visit(_ENV.parse(source)))


@functools.lru_cache(maxsize=4096)
def _compile_expression(source: str) -> TemplateExpression:
    def build(guard: _Guard) -> nodes.Template:
        parser = Parser(_ENV, source, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError(
                f"unexpected {parser.stream.current.value!r} after the expression",
                parser.stream.current.lineno,
            )
        expr = guard.visit(expr)
        return nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr)], lineno=1)

    if source.lstrip().startswith("{{"):
        # when: takes a bare expression, not a template.
        raise ExpressionError("write the expression without {{ }}", source)
    return TemplateExpression(_compile_guarded(source, build), False)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def is_template(text: str) -> bool:
    """True if ``text`` has Jinja markup (``{{``, ``{%`` or ``{#``) and must be rendered."""
    return "{" in text and ("{{" in text or "{%" in text or "{#" in text)


def check_template(template: str) -> None:
    """Raise :class:`ExpressionError` if ``template`` does not compile (syntax, names, filters)."""
    if is_template(template):
        _compile_template(template)


def check_expression(expr: str) -> None:
    """Raise :class:`ExpressionError` if the ``when:`` expression ``expr`` does not compile."""
    _compile_expression(expr)


def _context(ctx: Mapping[str, Any]) -> dict[str, Any]:
    return {name: ctx[name] for name in CONTEXT_NAMES if name in ctx}


class _Deadline:
    def __init__(self, timeout: float | None) -> None:
        self.timeout = DEFAULT_TIMEOUT if timeout is None else timeout

    def __enter__(self) -> None:
        self.token = _DEADLINE.set(time.monotonic() + self.timeout)

    def __exit__(self, *exc: object) -> None:
        _DEADLINE.reset(self.token)


def _failure(exc: Exception, source: str) -> ExpressionError:
    if isinstance(exc, ExpressionError):
        message = exc.message
    elif isinstance(exc, UndefinedError):
        message = f"{exc.message}; test with 'is defined' or use '| default(...)'"
    elif isinstance(exc, TemplateError):
        message = exc.message or type(exc).__name__
    elif isinstance(exc, RecursionError | MemoryError):
        message = "expression too complex"
    else:
        message = f"{type(exc).__name__}: {exc}"
    return ExpressionError(f"{_describe(source)}: {message}", source)


def render(template: str, ctx: Mapping[str, Any], *, timeout: float | None = None) -> str:
    """Render a ``{{ }}`` template string to text.

    A string without Jinja markup is returned unchanged (no compile, no copy).
    ``None`` renders as ``""``, booleans as ``true``/``false``, lists and dicts
    as JSON. Raises :class:`ExpressionError` on any failure.
    """
    if not is_template(template):
        return template
    try:
        compiled = _compile_template(template)
    except ExpressionError as exc:
        raise _failure(exc, template) from None
    out: list[str] = []
    length = 0
    try:
        with _Deadline(timeout):
            for piece in compiled.generate(_context(ctx)):
                length += len(piece)
                if length > MAX_OUTPUT:
                    raise _Refused(f"rendered text too long (limit {MAX_OUTPUT} characters)")
                out.append(piece)
    except Exception as exc:
        raise _failure(exc, template) from None
    return "".join(out)


def evaluate(expr: str, ctx: Mapping[str, Any], *, timeout: float | None = None) -> Any:
    """Evaluate a bare expression (no braces) and return JSON-like data.

    An undefined result raises :class:`ExpressionError`, as does any failure.
    """
    try:
        compiled = _compile_expression(expr)
        with _Deadline(timeout):
            return _to_data(compiled(_context(ctx)))
    except Exception as exc:
        raise _failure(exc, expr) from None


def evaluate_condition(expr: str, ctx: Mapping[str, Any], *, timeout: float | None = None) -> bool:
    """Evaluate a ``when:`` expression to a bool (Python truthiness).

    ``'confirm' in vars.answer`` with ``answer`` unset raises
    :class:`ExpressionError` (it does not silently count as false).
    """
    try:
        compiled = _compile_expression(expr)
        with _Deadline(timeout):
            result = compiled(_context(ctx))
            if isinstance(result, Undefined):
                raise _undefined_error(result)
            return bool(result)
    except Exception as exc:
        raise _failure(exc, expr) from None


# "{{ expr }}" and nothing else (surrounding whitespace allowed); "-" markers
# are Jinja whitespace control, not part of the expression.
_SINGLE_EXPR_RE = re.compile(r"\s*\{\{-?(?P<expr>.*?)-?\}\}\s*", re.DOTALL)


def render_value(value: Any, ctx: Mapping[str, Any], *, timeout: float | None = None) -> Any:
    """Render a value of a ``set`` or ``http.json`` field, keeping native types.

    * a string that is exactly one ``{{ expr }}`` gives the expression's value
      as data (``"{{ vars.attempts + 1 }}"`` → ``1``);
    * any other string is rendered as text (:func:`render`);
    * lists and dicts are rendered item by item (keys are not rendered);
    * other values (numbers, bools, null) are returned as they are.
    """
    if isinstance(value, str):
        if not is_template(value):
            return value
        m = _SINGLE_EXPR_RE.fullmatch(value)
        if m is not None:
            try:
                _compile_expression(m["expr"])
            except ExpressionError:
                pass  # e.g. "{{ a }} and {{ b }}": not one expression
            else:
                return evaluate(m["expr"], ctx, timeout=timeout)
        return render(value, ctx, timeout=timeout)
    if isinstance(value, list):
        return [render_value(v, ctx, timeout=timeout) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, ctx, timeout=timeout) for k, v in value.items()}
    return value
