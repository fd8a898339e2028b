"""The sandbox: its environment class, metered filters, and the compiler that instruments."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NoReturn, TypeVar

from jinja2 import nodes, pass_context
from jinja2.environment import Template
from jinja2.exceptions import SecurityError, TemplateSyntaxError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from engine.templating.errors import TemplateSyntaxProblem, TemplateTooLarge
from engine.templating.limits import (
    FILTER_CHECKS,
    MAX_INT_BITS,
    Meter,
    check_printf,
    check_str_method,
    current_meter,
    int_bits,
    product_size,
)
from engine.templating.undefined import TrackedUndefined, join_path

T = TypeVar("T")

_LOOP, _CHARGE, _NAMED = "_wb_loop", "_wb_charge", "_wb_named"


# -- filters: every built-in one metered, and three the instrumented templates call ----------
def _metered(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a filter so every call ticks the clock, passes its size check and is charged."""
    check = FILTER_CHECKS.get(name)
    lead = 1 if hasattr(func, "jinja_pass_arg") else 0  # jinja passes a context or env first

    @functools.wraps(func)
    def metered(*args: Any, **kwargs: Any) -> Any:
        meter = current_meter()
        meter.tick()
        value = args[lead] if len(args) > lead else None
        if isinstance(value, TrackedUndefined) and name not in ("default", "d"):
            # Some filters quietly accept a missing value (`items`, `dictsort`); only default may.
            return value._used()
        if check is not None:
            args = (*args[:lead], check(meter, *args[lead:], **kwargs), *args[lead + 1 :])
        return meter.charge(func(*args, **kwargs))

    return metered


@pass_context
def _loop_filter(context: Context, iterable: Iterable[T]) -> Iterator[T]:
    return _ticking(current_meter(), iterable)


def _ticking(meter: Meter, iterable: Iterable[T]) -> Iterator[T]:
    for item in iterable:
        meter.tick()
        yield item


@pass_context
def _charge_filter(context: Context, value: T) -> T:
    return current_meter().charge(value)


@pass_context
def _named_filter(context: Context, value: Any, path: str) -> Any:
    return value.renamed(path) if isinstance(value, TrackedUndefined) else value


# -- the environment --------------------------------------------------------------------------
class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})

    def getattr(self, obj: Any, attribute: str) -> Any:
        if attribute.startswith("_"):
            raise SecurityError(f"attribute {attribute!r} is private")
        return super().getattr(obj, attribute)

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        # Raise at once rather than return an undefined value that `default` would hide.
        raise SecurityError(f"{type(obj).__name__}.{attribute} is not allowed")

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        meter = current_meter()
        meter.tick()
        if isinstance(obj, TrackedUndefined):
            return obj._used()  # before the sandbox probes it for attributes
        args = check_str_method(meter, obj, args, kwargs)
        return meter.charge(super().call(context, obj, *args, **kwargs))

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        meter = current_meter()
        meter.tick()
        if isinstance(left, int) and isinstance(right, int) and operator != "+":
            # One multiplication or division of huge ints takes seconds and cannot be stopped.
            if int_bits(operator, left, right) > MAX_INT_BITS:
                raise TemplateTooLarge(f"template computes a number over {MAX_INT_BITS:,} bits")
        elif operator == "*":
            meter.check(product_size(left, right, meter.room()))
        elif operator == "%" and isinstance(left, str):
            check_printf(meter, left, right)
        return meter.charge(super().call_binop(context, operator, left, right))


def sandbox(*, html: bool = False) -> ImmutableSandboxedEnvironment:
    """The shared sandbox for text templates, or for autoescaped HTML ones; built on first use."""
    return _sandbox(html)


@functools.lru_cache(maxsize=2)
def _sandbox(html: bool) -> _Sandbox:
    env = _Sandbox(autoescape=html, undefined=TrackedUndefined)
    for name in ("lipsum", "cycler", "joiner", "namespace"):
        del env.globals[name]
    env.filters = {name: _metered(name, func) for name, func in env.filters.items()}
    env.filters.update({_LOOP: _loop_filter, _CHARGE: _charge_filter, _NAMED: _named_filter})
    return env


# -- compiling --------------------------------------------------------------------------------
class _Instrument(NodeTransformer):
    """Route loops, built values and output through the meter; name attribute chains."""

    def _wrap(self, node: nodes.Node, name: str, *args: object) -> nodes.Expr:
        consts: list[nodes.Expr] = [nodes.Const(arg) for arg in args]
        return nodes.Filter(node, name, consts, [], None, None, lineno=node.lineno)

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = self._wrap(node.iter, _LOOP)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)  # blocks captured by set, macro or filter are charged here
        node.nodes = [self._wrap(child, _CHARGE) for child in node.nodes]
        return node

    def _charged(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        return self._wrap(node, _CHARGE)

    visit_Concat = visit_List = visit_Dict = _charged

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:
        return self._charged(node) if node.ctx == "load" else self.generic_visit(node)

    def _chain(self, node: nodes.Getattr | nodes.Getitem) -> nodes.Node:
        path = _dotted(node)
        self.generic_visit(node)
        return self._wrap(node, _NAMED, path) if path else node

    visit_Getattr = visit_Getitem = _chain


def _dotted(node: nodes.Node) -> str | None:
    """The dotted path an attribute chain writes (`account.contacts[0].email`), if it has one."""
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        base = _dotted(node.node)
        return join_path(base, node.attr) if base else None
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        base, key = _dotted(node.node), node.arg.value
        return join_path(base, key) if base and isinstance(key, str | int) else None
    return None


_NOT_AVAILABLE = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


@functools.lru_cache(maxsize=512)
def compiled(source: str, html: bool) -> Template:
    """`source` compiled and instrumented in the shared sandbox, or TemplateSyntaxProblem."""
    env = _sandbox(html)
    try:
        tree = env.parse(source)
        for node in tree.find_all(_NOT_AVAILABLE):
            tag = type(node).__name__.lower().replace("fromimport", "from")
            raise TemplateSyntaxProblem(f"{{% {tag} %}} is not available", line=node.lineno)
        for test in tree.find_all((nodes.Filter, nodes.Test)):
            # Jinja only finds an unknown filter inside {% if %} when the branch runs.
            kind, known = (
                ("filter", env.filters) if isinstance(test, nodes.Filter) else ("test", env.tests)
            )
            if test.name not in known:
                raise TemplateSyntaxProblem(f"no {kind} named {test.name!r}", line=test.lineno)
        instrumented = _Instrument().visit(tree)
        instrumented.set_environment(env)
        return env.from_string(instrumented)
    except TemplateSyntaxError as exc:
        raise TemplateSyntaxProblem(exc.message or str(exc), line=exc.lineno) from None
