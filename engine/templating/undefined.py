"""Undefined names: missing values that know their dotted path and raise, or record it, on use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jinja2.exceptions import TemplateRuntimeError, UndefinedError
from jinja2.runtime import Undefined, missing

from engine.templating.limits import METER


class UndefinedUse(UndefinedError):
    """A render used an undefined value; `path` is the dotted name it was reached by, if any."""

    def __init__(self, undefined: TrackedUndefined) -> None:
        super().__init__(undefined._undefined_message)
        self.path = undefined._path


def join_path(path: str, key: object) -> str:
    """`path.key` for an identifier key, else `path[key]` with the key's repr."""
    if isinstance(key, str) and key.isidentifier():
        return f"{path}.{key}"
    return f"{path}[{key!r}]"


class TrackedUndefined(Undefined):
    """A missing value that knows its dotted path; using it raises, or records the path."""

    __slots__ = ("_path",)
    _path: str | None

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[TemplateRuntimeError] = UndefinedError,
        path: str | None = None,
    ) -> None:
        super().__init__(hint, obj, name, exc)
        if path is None and name is not None:
            parent = obj._path if isinstance(obj, TrackedUndefined) else None
            path = join_path(parent, name) if parent else str(name)
        self._path = path

    def _use(self) -> None:
        meter = METER.get()
        if meter is None:  # outside a render (a debugger's repr): behave like Undefined
            return
        if meter.names is None:
            raise UndefinedUse(self)
        if self._path and self._path not in meter.names:
            meter.names.append(self._path)

    def renamed(self, path: str) -> TrackedUndefined:
        hint, obj, name = self._undefined_hint, self._undefined_obj, self._undefined_name
        return TrackedUndefined(hint, obj, name, self._undefined_exception, path=path)

    def _used(self, *args: Any, **kwargs: Any) -> Any:
        self._use()
        return self  # when collecting, `x + 1` and `x()` stay undefined

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _used
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _used
    __mod__ = __rmod__ = __pow__ = __rpow__ = __pos__ = __neg__ = __call__ = _used
    __lt__ = __le__ = __gt__ = __ge__ = _used

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return TrackedUndefined(obj=self, name=name)

    def __getitem__(self, key: Any) -> Any:
        return TrackedUndefined(obj=self, name=key)

    def __str__(self) -> str:
        self._use()
        return ""

    def __repr__(self) -> str:
        self._use()
        return f"Undefined({self._path!r})"

    def __iter__(self) -> Iterator[Any]:
        self._use()
        return iter(())

    def __len__(self) -> int:
        self._use()
        return 0

    def __bool__(self) -> bool:
        self._use()
        return False

    def __contains__(self, item: object) -> bool:
        self._use()
        return False

    def __eq__(self, other: object) -> bool:
        self._use()
        return type(self) is type(other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        self._use()
        return id(type(self))

    def __int__(self) -> int:  # type: ignore[override]
        self._use()
        return 0

    def __float__(self) -> float:  # type: ignore[override]
        self._use()
        return 0.0
