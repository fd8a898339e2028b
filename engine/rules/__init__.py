"""The rule language of workflow-format.md: parse text to an AST, print it back, store it."""

from engine.rules.ast import Rule
from engine.rules.parser import RuleError, parse, parse_duration
from engine.rules.serialize import from_json, to_json
from engine.rules.to_python import Predicate, RecordView, to_python

__all__ = [
    "Predicate",
    "RecordView",
    "Rule",
    "RuleError",
    "from_json",
    "parse",
    "parse_duration",
    "to_json",
    "to_python",
]
