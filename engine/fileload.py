"""Load a workflow file (YAML or JSON) as plain data under the YAML 1.2 core schema.

A plain scalar that YAML 1.1 would read as a different value (`on`, `0777`, `1:30`, `1_000`,
`2026-01-31`, ...) is refused with its line, so every tool reads a file the same way.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import IO, Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import MaxDepthExceededError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.resolver import VersionedResolver
from ruamel.yaml.tag import Tag

MAX_VALUES = 100_000  # values in the document once every alias is expanded
MAX_DEPTH = 100  # nesting of lists and mappings (aliases included)

Scalar = str | int | float | bool | None


class FileError(ValueError):
    """A file that does not load: `line N: problem`, prefixed by `source: ` when it is named."""

    def __init__(self, problem: str, *, line: int | None = None, source: str | None = None) -> None:
        where = f"line {line}: " if line is not None else ""
        named = f"{source}: " if source else ""
        super().__init__(f"{named}{where}{problem}")
        self.problem, self.line, self.source = problem, line, source


# -- the YAML 1.2 core schema ---------------------------------------------------------------
_NULL = frozenset(["", "~", "null", "Null", "NULL"])
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"[-+]?[0-9]+")
_OCT = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")

# -- what YAML 1.1 reads differently (its types repository, as PyYAML and ruamel apply it) --
_BOOL_11 = {
    **dict.fromkeys(["y", "Y", "yes", "Yes", "YES", "on", "On", "ON"], True),
    **dict.fromkeys(["true", "True", "TRUE"], True),
    **dict.fromkeys(["n", "N", "no", "No", "NO", "off", "Off", "OFF"], False),
    **dict.fromkeys(["false", "False", "FALSE"], False),
}
_BIN_11 = re.compile(r"[-+]?0b[01_]+")
_OCT_11 = re.compile(r"[-+]?0[0-7_]+")
_DEC_11 = re.compile(r"[-+]?(0|[1-9][0-9_]*)")
_HEX_11 = re.compile(r"[-+]?0x[0-9a-fA-F_]+")
_SEXAGESIMAL_INT_11 = re.compile(r"[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+")
_FLOAT_11 = re.compile(
    r"[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
)
_SEXAGESIMAL_FLOAT_11 = re.compile(r"[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*")
_DATE_11 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIMESTAMP_11 = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt]|[ \t]+)[0-9]{1,2}:[0-9]{2}:[0-9]{2}(\.[0-9]*)?"
    r"([ \t]*(Z|[-+][0-9]{1,2}(:[0-9]{2})?))?"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_DIFFERENT = object()  # a YAML 1.1 reading that never equals a core-schema value

_STANDARD = "tag:yaml.org,2002:"
_PLAIN = Tag(suffix="tag:workflowbot:plain")  # an untagged plain scalar, resolved by us


class _Resolver(VersionedResolver):
    """Leaves untagged plain scalars for `_core` to resolve; everything else is str/seq/map."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, (False, False))


def _core(text: str) -> Scalar:
    """A plain scalar's value under the YAML 1.2 core schema."""
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.fullmatch(text):
        return int(text, 10)
    if _OCT.fullmatch(text):
        return int(text[2:], 8)
    if _HEX.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INF.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


def _sexagesimal(text: str) -> float:
    sign = -1 if text.startswith("-") else 1
    total = 0.0
    for part in text.lstrip("+-").replace("_", "").split(":"):
        total = total * 60 + float(part)
    return sign * total


def _yaml11(text: str) -> tuple[str, object] | None:
    """What YAML 1.1 reads a plain scalar as, when not a string: (how to say it, the value)."""
    if text in _BOOL_11:
        value = _BOOL_11[text]
        return ("true" if value else "false"), value
    if text == "=":
        return "a value key", _DIFFERENT
    if text == "<<":
        return "a merge key", _DIFFERENT
    if _DATE_11.fullmatch(text):
        return "a date", _DIFFERENT
    if _TIMESTAMP_11.fullmatch(text):
        return "a timestamp", _DIFFERENT
    try:
        number = _number11(text)
    except ValueError:  # a form only YAML 1.1 has, with no digits in it (`0b_`)
        return "a number", _DIFFERENT
    return None if number is None else (str(number), number)


def _number11(text: str) -> int | float | None:
    digits = text.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    unsigned = digits.lstrip("+-")
    number: int | float
    if _BIN_11.fullmatch(text):
        number = sign * int(unsigned[2:], 2)
    elif _HEX_11.fullmatch(text):
        number = sign * int(unsigned[2:], 16)
    elif _OCT_11.fullmatch(text):
        number = sign * int(unsigned, 8)
    elif _DEC_11.fullmatch(text):
        number = int(digits, 10)
    elif _SEXAGESIMAL_INT_11.fullmatch(text):
        number = int(_sexagesimal(text))
    elif _SEXAGESIMAL_FLOAT_11.fullmatch(text):
        number = _sexagesimal(text)
    elif _FLOAT_11.fullmatch(text) and any(c.isdigit() for c in text):
        number = float(digits)
    else:
        return None  # a string, or null, .inf and .nan, which read the same in both
    return number


def _same(old: object, new: Scalar) -> bool:
    if type(old) is not type(new):
        return False
    if isinstance(old, float) and isinstance(new, float) and math.isnan(old):
        return math.isnan(new)
    return old == new


def _show(value: object) -> str:
    """A key as a user wrote it: strings in double quotes, others as JSON would print them."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except ValueError:  # nan / inf
        return repr(value)


class _Builder:
    """Builds plain data from composed nodes, counting every value an alias repeats."""

    def __init__(self) -> None:
        self.values = 0
        self.open: set[int] = set()  # collections being built, to find an alias to an ancestor

    def build(self, node: Node, depth: int = 0) -> Any:
        line = node.start_mark.line + 1
        self.values += 1
        if self.values > MAX_VALUES:
            raise FileError(
                f"the document expands to more than {MAX_VALUES:,} values through aliases",
                line=line,
            )
        if depth > MAX_DEPTH:
            raise FileError(f"nested deeper than {MAX_DEPTH} levels", line=line)
        if isinstance(node, ScalarNode):
            return self.scalar(node, line)
        if id(node) in self.open:
            raise FileError("an alias refers to a list or mapping that contains it", line=line)
        self.open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                self.check_tag(node, "seq", line)
                return [self.build(item, depth + 1) for item in node.value]
            assert isinstance(node, MappingNode)
            self.check_tag(node, "map", line)
            return self.mapping(node, depth, line)
        finally:
            self.open.discard(id(node))

    def mapping(self, node: MappingNode, depth: int, line: int) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, ScalarNode):
                kind = "a list" if isinstance(key_node, SequenceNode) else "a mapping"
                raise FileError(f"a key must be a single value, not {kind}", line=key_line)
            if key_node.tag == _PLAIN and key_node.value == "<<":
                raise FileError(
                    "merge keys (<<) are not supported; write the keys out", line=key_line
                )
            key = self.build(key_node, depth + 1)
            if key in result:
                raise FileError(f"duplicate key {_show(key)}", line=key_line)
            result[key] = self.build(value_node, depth + 1)
        return result

    def check_tag(self, node: Node, expected: str, line: int) -> None:
        if node.tag != _STANDARD + expected:
            raise FileError(f"the tag {_written(node)} is not supported", line=line)

    def scalar(self, node: ScalarNode, line: int) -> Scalar:
        text: str = node.value
        tag = node.tag
        if tag == _STANDARD + "str":  # quoted, block, `!!str` or `!`: always a string
            return _pair_surrogates(text, line) if _SURROGATE.search(text) else text
        if tag == _PLAIN:  # `! "5"` is resolved like a plain scalar: it stays a string
            return text if node.style else _plain(text, line)
        kind = tag[len(_STANDARD) :] if tag and tag.startswith(_STANDARD) else None
        if kind not in ("int", "float", "bool", "null"):
            raise FileError(f"the tag {_written(node)} is not supported", line=line)
        value = _plain(text, line)
        if kind == "float" and type(value) is int:
            return float(value)
        wanted = {"int": int, "float": float, "bool": bool, "null": type(None)}[kind]
        if type(value) is not wanted:
            raise FileError(f"{_show(text)} is not a valid !!{kind}", line=line)
        return value


def _plain(text: str, line: int) -> Scalar:
    """A plain scalar under the core schema, refused when YAML 1.1 reads it otherwise."""
    try:
        value = _core(text)
        old = _yaml11(text)
    except ValueError:  # int() past Python's digit limit
        raise FileError(f"the number {text[:20]}... is too long", line=line) from None
    if old is not None and not _same(old[1], value):
        raise FileError(
            f"{text} would load as {old[0]} in YAML 1.1; quote it ({_show(text)}) "
            "so every tool reads the same",
            line=line,
        )
    return value


def _pair_surrogates(text: str, line: int) -> str:
    """Join UTF-16 surrogate pairs: json.dumps writes an emoji as "\\ud83d\\ude00"."""
    try:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        raise FileError(
            "a \\u escape is half of a character (a lone surrogate)", line=line
        ) from None


def _written(node: Node) -> str:
    """A tag as written in the file: `!!binary`, `!custom`, or `!<uri>`."""
    ctag = node.ctag
    if ctag.handle:
        return f"{ctag.handle}{ctag.suffix}"
    return f"!<{node.tag}>"


def _compose(text: str) -> Node | None:
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    yaml.Resolver = _Resolver
    yaml.max_depth = MAX_DEPTH + 1
    yaml.composer.warn_double_anchors = False  # YAML 1.2 allows redefining an anchor
    return yaml.compose(text)


def load_text(text: str, *, source: str | None = "<stdin>") -> Any:
    """The data of one YAML 1.2 (or JSON) document, or FileError naming `source` and the line.

    Aliases yield equal (not shared) data; a document that expands past MAX_VALUES values is
    refused. Merge keys (`<<`) are refused: YAML 1.2 has none, YAML 1.1 merges. An empty
    document is None. `source=None` leaves the name out of messages (text pasted in Slack).
    """
    try:
        root = _compose(text)
    except MaxDepthExceededError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else None
        raise FileError(
            f"nested deeper than {MAX_DEPTH} levels", line=line, source=source
        ) from None
    except MarkedYAMLError as error:
        raise _syntax_error(error, source) from None
    except ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        raise FileError(
            f"character #x{error.character:04x} is not allowed in YAML", line=line, source=source
        ) from None
    except YAMLError as error:
        raise FileError(str(error).strip(), source=source) from None
    if root is None:
        return None
    try:
        return _Builder().build(root)
    except FileError as error:
        raise FileError(error.problem, line=error.line, source=source) from None


def _syntax_error(error: MarkedYAMLError, source: str | None) -> FileError:
    mark = error.problem_mark or error.context_mark
    problem = str(error.problem or error.context or "not valid YAML").strip()
    if error.problem and error.context and problem.startswith("but "):
        problem = f"{error.context}, {problem}"  # "expected a single document ..., but found"
    elif error.problem and error.context:
        context_mark = error.context_mark
        if context_mark is not None and mark is not None and context_mark.line != mark.line:
            problem += f" ({error.context} on line {context_mark.line + 1})"
        else:
            problem += f" ({error.context})"
    return FileError(problem, line=mark.line + 1 if mark is not None else None, source=source)


def load_path(path: str) -> Any:
    """`load_text` of a UTF-8 file, or of standard input for `-`; messages start `PATH: `."""
    if path == "-":
        return load_text(sys.stdin.read(), source="<stdin>")
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as error:
        raise FileError(f"cannot read it: {error.strerror}", source=path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise FileError("not UTF-8 text", line=line, source=path) from None
    return load_text(text, source=path)


def dump(data: Any, stream: IO[str]) -> None:
    """Write plain data as YAML that `load_text` reads back equal: a string that YAML 1.1 or
    1.2 would read as something else is quoted, and a multi-line one is a `|` block."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[assignment]  # key order
    yaml.width = 100
    yaml.allow_unicode = True

    def string(representer: Any, value: str) -> Any:
        style = None
        if "\n" in value and not value.endswith((" ", "\t")):
            style = "|"
        elif _core(value) != value or _yaml11(value) is not None or value != value.strip():
            style = '"'
        return representer.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    yaml.representer.add_representer(str, string)
    yaml.dump(data, stream)
