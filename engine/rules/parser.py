"""Parse rule text into the AST, or raise RuleError with `line:column` and what was expected."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, cast

from engine.rules.ast import (
    KEYWORDS,
    Aggregate,
    AggregateCompare,
    Ago,
    And,
    Compare,
    CompareOp,
    Contains,
    DateValue,
    Duration,
    Field,
    In,
    IsSet,
    Not,
    Or,
    Rule,
    Unit,
    Value,
    Within,
)
from engine.rules.values import as_timestamp


class RuleError(ValueError):
    """A rule that does not parse: `line:column: what was expected there`."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(f"{line}:{column}: {message}")
        self.line, self.column, self.message = line, column, message


TokenKind = Literal["name", "quoted", "string", "number", "duration", "op", "punct", "end"]


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    offset: int


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<duration>\d+[A-Za-z]+\b)
  | (?P<number>-?\d+(?:\.\d+)?)
  | (?P<string>"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")
  | (?P<quoted>`(?:[^`]|``)*`)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>!=|<=|>=|=|<|>)
  | (?P<punct>[()\[\],.])
    """,
    re.VERBOSE,
)
_DURATION = re.compile(r"([1-9]\d*)([mhdw])\Z")


def _describe(token: Token) -> str:
    return "the end of the rule" if token.kind == "end" else f"{token.text!r}"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokenize(text)
        self.pos = 0

    # -- tokens -------------------------------------------------------------------------
    def _tokenize(self, text: str) -> list[Token]:
        tokens: list[Token] = []
        offset = 0
        while offset < len(text):
            match = _TOKEN.match(text, offset)
            if match is None:
                if text[offset] == '"':
                    raise self._error_at(offset, "unterminated or malformed string")
                if text[offset] == "`":
                    raise self._error_at(offset, "unterminated backtick name")
                raise self._error_at(offset, f"unexpected character {text[offset]!r}")
            kind, raw = match.lastgroup, match.group()
            # `7d` is a duration; `7x` and `7days` are mistakes, said as such.
            if kind == "duration" and not _DURATION.match(raw):
                raise self._error_at(
                    offset, f"bad duration {raw!r}: a whole number and m, h, d or w"
                )
            if kind != "space":
                tokens.append(Token(cast(TokenKind, kind), raw, offset))
            offset = match.end()
        tokens.append(Token("end", "", len(text)))
        return tokens

    def _error_at(self, offset: int, message: str) -> RuleError:
        line = self.text.count("\n", 0, offset) + 1
        column = offset - (self.text.rfind("\n", 0, offset) + 1) + 1
        return RuleError(line, column, message)

    def error(self, message: str, token: Token | None = None) -> RuleError:
        return self._error_at((token or self.peek()).offset, message)

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.pos += 1
        return token

    def at_keyword(self, *words: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "name" and token.text.lower() in words

    def expect_keyword(self, word: str, context: str) -> None:
        if not self.at_keyword(word):
            raise self.error(f"expected '{word}' {context}, found {_describe(self.peek())}")
        self.next()

    def expect_punct(self, char: str, context: str) -> None:
        token = self.peek()
        if token.kind != "punct" or token.text != char:
            raise self.error(f"expected '{char}' {context}, found {_describe(token)}")
        self.next()

    # -- grammar ------------------------------------------------------------------------
    def rule(self, *, in_where: bool = False) -> Rule:
        items = [self.conjunction(in_where)]
        while self.at_keyword("or"):
            self.next()
            items.append(self.conjunction(in_where))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def conjunction(self, in_where: bool) -> Rule:
        items = [self.negation(in_where)]
        while self.at_keyword("and"):
            self.next()
            items.append(self.negation(in_where))
        return items[0] if len(items) == 1 else And(tuple(items))

    def negation(self, in_where: bool) -> Rule:
        if self.at_keyword("not"):
            self.next()
            return Not(self.negation(in_where))
        return self.atom(in_where)

    def atom(self, in_where: bool) -> Rule:
        token = self.peek()
        if token.kind == "punct" and token.text == "(":
            self.next()
            inner = self.rule(in_where=in_where)
            self.expect_punct(")", "to close '('")
            return inner
        if self.at_keyword("count", "trend") and self.peek(1).text == "(":
            if in_where:
                raise self.error("an aggregate cannot be nested inside 'where'")
            return self.aggregate_compare()
        if token.kind == "name" and self.peek(1).text == "(" and token.text.lower() != "date":
            raise self.error(f"unknown function {token.text!r} (count and trend are known)")
        field = self.field(in_where)
        return self.predicate(field)

    def field(self, in_where: bool) -> Field:
        parts = [self.name("a field name")]
        while self.peek().kind == "punct" and self.peek().text == ".":
            self.next()
            parts.append(self.name("a name after '.'"))
        field = Field(tuple(parts))
        if in_where and not (
            (len(parts) >= 2 and parts[0] == "properties") or parts == ["timestamp"]
        ):
            raise self.error(
                f"inside 'where' only properties.NAME and timestamp are known, not '{field}'",
                self.tokens[self.pos - 1],
            )
        return field

    def name(self, what: str) -> str:
        token = self.peek()
        if token.kind == "quoted":
            self.next()
            text = token.text[1:-1].replace("``", "`")
            if not text:
                raise self.error("a backtick name cannot be empty", token)
            return text
        if token.kind == "name" and token.text.lower() not in KEYWORDS:
            self.next()
            return token.text
        if token.kind == "name":
            raise self.error(
                f"expected {what}, found the keyword {token.text!r} (quote it in backticks)"
            )
        raise self.error(f"expected {what}, found {_describe(token)}")

    def predicate(self, field: Field) -> Rule:
        token = self.peek()
        if token.kind == "op":
            self.next()
            return Compare(field, cast(CompareOp, token.text), self.value(f"after '{token.text}'"))
        if self.at_keyword("in"):
            self.next()
            return In(field, self.value_list())
        if self.at_keyword("contains"):
            self.next()
            value = self.peek()
            if value.kind != "string":
                raise self.error(f"expected a string after 'contains', found {_describe(value)}")
            return Contains(field, self.string(self.next()))
        if self.at_keyword("is"):
            self.next()
            negated = self.at_keyword("not")
            if negated:
                self.next()
            self.expect_keyword("set", "after 'is'" + (" not" if negated else ""))
            return IsSet(field, negated)
        if self.at_keyword("within"):
            self.next()
            future = self.at_keyword("next")
            if future:
                self.next()
            return Within(field, self.duration("after 'within'"), future)
        if self.at_keyword("before", "after"):
            relation = cast(Literal["before", "after"], self.next().text.lower())
            duration = self.duration(f"after '{relation}'")
            self.expect_keyword("ago", f"after '{relation} {duration}'")
            return Ago(field, relation, duration)
        raise self.error(
            f"expected a comparison (=, !=, <, <=, >, >=, in, contains, is set, within, "
            f"before, after) after '{field}', found {_describe(token)}"
        )

    def value(self, context: str) -> Value:
        token = self.peek()
        if token.kind == "string":
            return self.string(self.next())
        if token.kind == "number":
            self.next()
            return Decimal(token.text)
        if self.at_keyword("true", "false"):
            return self.next().text.lower() == "true"
        if self.at_keyword("date") and self.peek(1).text == "(":
            return self.date()
        raise self.error(f"expected a value {context}, found {_describe(token)}")

    def value_list(self) -> tuple[Value, ...]:
        self.expect_punct("[", "to open the list after 'in'")
        values = [self.value("in the list")]
        while self.peek().text == ",":
            self.next()
            values.append(self.value("after ','"))
        self.expect_punct("]", "to close the list")
        return tuple(values)

    def string(self, token: Token) -> str:
        return str(json.loads(token.text))

    def date(self) -> DateValue:
        self.next()  # date
        self.expect_punct("(", "after 'date'")
        token = self.peek()
        if token.kind != "string":
            raise self.error(f"expected a date string in date(...), found {_describe(token)}")
        text = self.string(self.next())
        if as_timestamp(text) is None:  # exactly the forms a stored timestamp may take
            raise self.error(
                f"malformed date {text!r}: use 2026-01-31 or an ISO-8601 timestamp", token
            )
        self.expect_punct(")", "to close date(...)")
        return DateValue(text)

    def duration(self, context: str) -> Duration:
        token = self.peek()
        if token.kind != "duration":
            if token.kind == "number":
                raise self.error(f"a duration needs a unit (m, h, d or w), found {token.text!r}")
            raise self.error(f"expected a duration (like 7d) {context}, found {_describe(token)}")
        self.next()
        found = parse_duration(token.text)
        assert found is not None  # checked by the tokenizer
        return found

    def aggregate_compare(self) -> AggregateCompare:
        function = cast(Literal["count", "trend"], self.next().text.lower())
        self.expect_punct("(", f"after '{function}'")
        event = self.name("an event name")
        where: Rule | None = None
        if self.at_keyword("where"):
            self.next()
            where = self.rule(in_where=True)
        self.expect_punct(",", f"before the window of {function}(...)")
        window = self.duration(f"as the window of {function}(...)")
        self.expect_punct(")", f"to close {function}(...)")
        aggregate = Aggregate(function, event, where, window)
        token = self.peek()
        if token.kind != "op":
            raise self.error(
                f"expected a comparison after {function}(...), found {_describe(token)}"
            )
        self.next()
        number = self.peek()
        if number.kind != "number":
            raise self.error(f"expected a number after '{token.text}', found {_describe(number)}")
        self.next()
        return AggregateCompare(aggregate, cast(CompareOp, token.text), Decimal(number.text))


def parse(text: str) -> Rule:
    """Parse a rule, or raise RuleError (`1:14: expected a value after '='`)."""
    if not text.strip():
        raise RuleError(1, 1, "the rule is empty")
    parser = _Parser(text)
    rule = parser.rule()
    token = parser.peek()
    if token.kind != "end":
        raise parser.error(f"expected 'and', 'or' or the end of the rule, found {_describe(token)}")
    return rule


def parse_duration(text: str) -> Duration | None:
    """A duration as the rule language writes it (`30m`, `4h`, `3d`, `2w`), or None."""
    match = _DURATION.match(text)
    return None if match is None else Duration(int(match.group(1)), cast(Unit, match.group(2)))
