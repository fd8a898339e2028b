"""The one Jinja2 sandbox every action renders its template fields through.

Templates run in jinja2's `ImmutableSandboxedEnvironment` (text, or autoescaped HTML with
`html=True`) with these rules on top:

- Globals are `range` (the sandbox's, at most 100,000 items) and `dict`; `lipsum`, `cycler`,
  `joiner` and `namespace` are removed: messages do not need them, and `namespace` is the one
  way to carry a value from one loop iteration to the next. The built-in filters and tests
  stay; no filter is added.
- Attributes starting with `_` are refused, as is anything the sandbox finds unsafe (both
  raise `UnsafeTemplate`); a context key starting with `_` is read as `x['_key']`.
- `{% include %}`, `{% import %}` and `{% extends %}` are refused: a template is one field.
- A name that is not defined fails when it is used (`UndefinedName`, naming the dotted path the
  template wrote); `default(...)` and `is defined` accept it. `undefined_names` reports every
  one instead of the first.
- The context is plain data only (`plain`).
- Limits: rendering takes at most `max_seconds` (checked on every loop item, call, filter and
  operator) and writes at most `max_chars`; no value the template builds (a string, a list, a
  captured block) may weigh more than `MAX_VALUE` characters, and all of them together more than
  `MAX_WORK`; operators and methods that multiply a size (`*`, `**`, `%` and `format` widths,
  `center`, `indent`, `join`, `replace`, `wordwrap`, `batch`, ...) are refused before they run,
  and so are `*`, `**`, `//` and `%` on ints past `MAX_INT_BITS`. A value's weight counts a
  shared item each time it appears, as its text would.

This module is the API; `errors`, `limits`, `undefined` and `environment` hold the parts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal, DecimalException
from typing import Any

from jinja2.environment import Template
from jinja2.exceptions import SecurityError

from engine.templating.environment import compiled, sandbox
from engine.templating.errors import (
    TemplateError,
    TemplateSyntaxProblem,
    TemplateTooLarge,
    TemplateTooSlow,
    UndefinedName,
    UnsafeTemplate,
)
from engine.templating.limits import (
    DEFAULT_CHARS,
    DEFAULT_SECONDS,
    MAX_DEPTH,
    MAX_INT_BITS,
    MAX_VALUE,
    MAX_WORK,
    METER,
    Meter,
    new_meter,
)
from engine.templating.undefined import UndefinedUse, join_path

__all__ = [
    "DEFAULT_CHARS",
    "DEFAULT_SECONDS",
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "MAX_VALUE",
    "MAX_WORK",
    "TemplateError",
    "TemplateSyntaxProblem",
    "TemplateTooLarge",
    "TemplateTooSlow",
    "UndefinedName",
    "UnsafeTemplate",
    "check",
    "plain",
    "render",
    "sandbox",
    "undefined_names",
]


# -- the context ------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """A copy of `value` as template data (tuples become lists), or TypeError naming what is not."""
    return _plain(value, "context", 0)


def _plain(value: Any, where: str, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise TypeError(f"{where} nests deeper than {MAX_DEPTH} levels")
    if value is None or isinstance(value, bool | Decimal | date):
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a str subclass (Markup, StrEnum) becomes a plain str
    if isinstance(value, int):
        return int(value)  # an IntEnum becomes a plain int
    if isinstance(value, float):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"{where} has a key that is not a str: {key!r}")
        return {str.__str__(k): _plain(v, join_path(where, k), depth + 1) for k, v in value.items()}
    raise TypeError(
        f"{where} has type {type(value).__name__}; templates take plain data only"
        " (None, bool, int, float, str, Decimal, date, datetime, list, tuple, dict)"
    )


# -- the API ----------------------------------------------------------------------------------
def check(source: str, *, html: bool = False) -> None:
    """Compile `source` without rendering it, or raise TemplateSyntaxProblem with its line."""
    compiled(source, html)


def render(
    source: str,
    context: Mapping[str, Any],
    *,
    html: bool = False,
    max_seconds: float = DEFAULT_SECONDS,
    max_chars: int = DEFAULT_CHARS,
) -> str:
    """Render `source` with plain-data `context` within the limits, or raise a TemplateError."""
    template, data = compiled(source, html), plain(dict(context))
    return _run(template, data, new_meter(max_seconds, max_chars, names=None), max_chars)


def undefined_names(source: str, context: Mapping[str, Any], *, html: bool = False) -> list[str]:
    """Every undefined dotted name `source` uses when rendered with `context`, in order of use.

    Any other problem raises as it does in `render`, within the default limits.
    """
    template, data = compiled(source, html), plain(dict(context))
    meter = new_meter(DEFAULT_SECONDS, DEFAULT_CHARS, names=[])
    _run(template, data, meter, DEFAULT_CHARS)
    return meter.names or []


def _words(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", camel).lower()


def _run(template: Template, data: dict[str, Any], meter: Meter, max_chars: int) -> str:
    token = METER.set(meter)
    chunks = template.generate(data)
    out: list[str] = []
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > max_chars:
                raise TemplateTooLarge(f"output is longer than {max_chars:,} characters")
            meter.tick()
            out.append(chunk)
    except TemplateError:
        raise
    except UndefinedUse as exc:
        names = [exc.path] if exc.path else []
        raise UndefinedName(names, None if names else exc.message) from None
    except SecurityError as exc:
        raise UnsafeTemplate(f"unsafe template: {exc.message}") from None
    except RecursionError:
        raise TemplateError("template calls itself too deeply") from None
    except DecimalException as exc:  # str() of these is a list of signal classes
        raise TemplateError(f"template failed: {_words(type(exc).__name__)}") from exc
    except Exception as exc:
        # The sandbox documents that rendering may raise anything; one type reaches the caller.
        raise TemplateError(f"template failed: {exc}") from exc
    finally:
        chunks.close()  # type: ignore[attr-defined]
        METER.reset(token)
    return "".join(out)
