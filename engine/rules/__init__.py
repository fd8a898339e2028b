"""The rule language of workflow-format.md: parse text to an AST, print it back, store it."""

from engine.rules.ast import Rule
from engine.rules.parser import RuleError, parse
from engine.rules.serialize import from_json, to_json

__all__ = ["Rule", "RuleError", "from_json", "parse", "to_json"]
