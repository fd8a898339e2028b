"""The time and size limits: the per-render meter, value weights, and size checks run beforehand."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from jinja2.runtime import Undefined

from engine.templating.errors import TemplateTooLarge, TemplateTooSlow

T = TypeVar("T")

MAX_VALUE = 1_000_000  # characters (about) in one value a template builds
MAX_WORK = 10_000_000  # characters (about) in all the values one render builds
MAX_INT_BITS = 100_000  # an int a template multiplies or divides (about 30,000 digits)
MAX_DEPTH = 64  # nesting of lists and dicts in a context
DEFAULT_SECONDS = 2.0
DEFAULT_CHARS = 100_000


# -- one meter per render, in a ContextVar because the environment is shared ------------------
@dataclass
class Meter:
    deadline: float
    max_seconds: float
    max_value: int
    max_work: int
    names: list[str] | None  # undefined names collected, or None to raise on the first
    work: int = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateTooSlow(f"template took longer than {self.max_seconds:g} seconds")

    def room(self) -> int:
        return min(self.max_value, self.max_work - self.work)

    def check(self, size: int) -> None:
        """Refuse to build a value of about `size` characters if it would pass a limit."""
        self.tick()
        if size > self.max_value:
            raise TemplateTooLarge(f"template builds a value over {self.max_value:,} characters")
        if self.work + size > self.max_work:
            raise TemplateTooLarge(f"template builds over {self.max_work:,} characters in all")

    def charge(self, value: T) -> T:
        """Count a value the template built against the limits and return it."""
        size = weight(value, self.room())
        self.check(size)
        self.work += size
        return value


METER: ContextVar[Meter | None] = ContextVar("templating_meter", default=None)


def current_meter() -> Meter:
    """The meter of the render under way, or RuntimeError outside render()."""
    meter = METER.get()
    if meter is None:
        # Jinja folds constant filter calls while compiling; failing here makes it leave them to
        # render time, under the meter. Nothing else runs template code outside render().
        raise RuntimeError("template code runs only inside render()")
    return meter


def new_meter(max_seconds: float, max_chars: int, *, names: list[str] | None) -> Meter:
    """A meter whose clock starts now, with value limits no smaller than the output limit."""
    return Meter(
        deadline=time.monotonic() + max_seconds,
        max_seconds=max_seconds,
        max_value=max(MAX_VALUE, max_chars),
        max_work=max(MAX_WORK, 10 * max_chars),
        names=names,
    )


def weight(value: object, limit: int) -> int:
    """About how many characters `value` takes as text, counting shared items each time."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, Undefined):
            continue
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, Mapping):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, Collection) and not isinstance(item, range):  # a range is lazy
            total += len(item)
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 4 + 1
        else:
            total += 1
    return total


# -- operators and str methods that can build far more than they are given --------------------
def int_bits(operator: str, left: int, right: int) -> int:
    """The bits of the result of `*` and `**`, else of the larger operand."""
    if operator == "**":
        return left.bit_length() * right if abs(left) > 1 and right > 0 else 0
    if operator == "*":
        return left.bit_length() + right.bit_length()
    return max(left.bit_length(), right.bit_length())


def product_size(left: Any, right: Any, limit: int) -> int:
    """The weight of `left * right` when one side is a str, list or tuple and the other an int."""
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(times, int):
            return weight(seq, limit) * max(times, 0)
    return 0


def _number(digits: str) -> int:
    return int(digits) if len(digits) < 10 else 10**10


_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_FIELD = re.compile(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}")


def _check_widths(meter: Meter, widths: list[str], dynamic: bool, values: Iterable[object]) -> None:
    """Refuse format widths past the limits; a width taken from the values is any int in them."""
    for width in widths:
        meter.check(_number(width))
    for value in values if dynamic else ():
        if isinstance(value, int):
            meter.check(value)


def check_printf(meter: Meter, fmt: str, values: object) -> None:
    """Refuse a `%` format whose widths would build a value past the limits."""
    specs = [part for spec in _PRINTF.findall(fmt) for part in spec]
    items = values.values() if isinstance(values, Mapping) else values
    items = items if isinstance(items, Iterable) else [items]
    _check_widths(meter, [s for s in specs if s.isdigit()], "*" in specs, items)


def _check_str_format(meter: Meter, fmt: str, args: tuple[Any, ...], kwargs: Any) -> None:
    specs = [field.partition(":")[2] for field in _FORMAT_FIELD.findall(fmt)]
    widths = [width for spec in specs for width in re.findall(r"\d+", spec)]
    dynamic = any("{" in spec for spec in specs)  # a nested field: '{:>{width}}'
    _check_widths(meter, widths, dynamic, [*args, *kwargs.values()])


def _replaced_size(text: str, old: str, new: str, count: object) -> int:
    hits = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * max(0, len(new) - len(old))


def check_str_method(meter: Meter, obj: Any, args: tuple[Any, ...], kwargs: Any) -> tuple[Any, ...]:
    """Refuse a str method call whose result would pass the limits; returns the arguments to use."""
    target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
    text, name = getattr(target, "__self__", None), getattr(target, "__name__", "")
    if not isinstance(text, str):
        return args
    if name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        meter.check(args[0])
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        meter.check(len(text) + text.count("\t") * size if isinstance(size, int) else 0)
    elif name == "join" and args:
        items = list(args[0])  # joined as estimated, even when given a one-pass iterator
        meter.check(weight(items, meter.room()) + len(items) * len(text))
        return (items, *args[1:])
    elif name == "replace" and len(args) >= 2:
        count = args[2] if len(args) > 2 else kwargs.get("count")
        meter.check(_replaced_size(text, str(args[0]), str(args[1]), count))
    elif name == "format":
        _check_str_format(meter, text, args, kwargs)
    elif name == "format_map" and args and isinstance(args[0], Mapping):
        _check_str_format(meter, text, (), args[0])
    return args


# -- the filters that can build far more than they are given, checked before they run --------
def _filter_join(meter: Meter, value: Any, d: object = "", attribute: object = None) -> Any:
    items = list(value)  # joined as estimated, even when given a one-pass iterator
    meter.check(weight(items, meter.room()) + len(items) * len(str(d)))
    return items


def _filter_replace(meter: Meter, s: Any, old: Any, new: Any, count: Any = None) -> Any:
    meter.check(_replaced_size(str(s), str(old), str(new), count))
    return s


def _filter_indent(meter: Meter, s: Any, width: Any = 4, *args: Any, **kwargs: Any) -> Any:
    step = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    text = str(s)
    meter.check(len(text) + (text.count("\n") + 1) * step)
    return s


def _filter_wordwrap(
    meter: Meter, s: Any, width: Any = 79, long: Any = True, wrapstring: Any = None, **kw: Any
) -> Any:
    text, breaks = str(s), len(str(wrapstring)) if wrapstring is not None else 1
    meter.check(len(text) + (len(text) + 1) * breaks)  # at most one break per character
    return s


def _filter_center(meter: Meter, value: Any, width: Any = 80) -> Any:
    meter.check(width if isinstance(width, int) else 0)
    return value


def _filter_format(meter: Meter, value: Any, *args: Any, **kwargs: Any) -> Any:
    check_printf(meter, str(value), kwargs or args)
    return value


def _filter_batch(meter: Meter, value: Any, linecount: Any, fill_with: Any = None) -> Any:
    if isinstance(linecount, int):  # the last batch is filled up to linecount items
        meter.check(linecount * max(1, weight(fill_with, meter.room())))
    return value


def _filter_slice(meter: Meter, value: Any, slices: Any, fill_with: Any = None) -> Any:
    meter.check(slices if isinstance(slices, int) else 0)
    return value


def _filter_sum(meter: Meter, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    if isinstance(start, bool) or not isinstance(start, int | float | Decimal):
        raise TypeError("sum adds numbers only")  # adding lists one by one takes quadratic time
    return iterable


# Each takes the meter and the filter's arguments and returns the value to filter.
FILTER_CHECKS: dict[str, Callable[..., Any]] = {
    "join": _filter_join,
    "replace": _filter_replace,
    "indent": _filter_indent,
    "wordwrap": _filter_wordwrap,
    "center": _filter_center,
    "format": _filter_format,
    "batch": _filter_batch,
    "slice": _filter_slice,
    "sum": _filter_sum,
}
