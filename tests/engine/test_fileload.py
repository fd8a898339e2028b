"""Workflow files load under the YAML 1.2 core schema; what YAML 1.1 reads otherwise is refused."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from engine.fileload import FileError, load_path, load_text
from engine.rules import parse

# The example of workflow-format.md, "A file" (one comment shortened to fit the line length).
EXAMPLE = """\
version: 1
stages: [Onboarding, Adoption, Expansion, Renewal, Churned]   # ordered lifecycle stages
health: {good: 70, bad: 40}      # score >= 70 good, < 40 bad, else neutral

segments:
  - name: Trial accounts
    object: account              # account | contact
    rule: 'plan = "trial"'
  - name: Quiet trials
    object: account
    rule: 'plan = "trial" and count(login, 7d) < 2'

workflows:
  - name: Trial welcome series
    description: Welcome new trial accounts and nudge them to activate.
    object: account
    trigger: {segment: Trial accounts, when: enter}
    only_if: 'status = "trial"'
    enrollment: once             # once | every_time
    exit_if: 'status = "paying"'
    on_failure: stop             # stop | continue
    admins: [U01AAAA]            # may edit, enable, approve; default: SLACK_ADMINS
    status: live                 # draft | live | disabled
    steps:
      - action: email
        kind: html               # gmail | email | html
        from: '{{ owner.email }}'
        to: ['{{ account.primary_contact.email }}']
        subject: 'Welcome to Acme, {{ account.name }}'
        body: |
          <p>Hi {{ account.primary_contact.first_name | default("there") }},</p>
        approval: '#cs-approvals'  # channel where the draft waits; auto = send at once
        approval_timeout: 7d       # an unanswered draft expires (a skip)
      - delay: 3d
        only_if: 'count(login, 3d) < 1'
        action: slack
        channel: '#cs-alerts'
        text: ':warning: {{ account.name }} has not logged in since joining the trial'
      - action: owner
        assign: round_robin      # fixed | round_robin
        users: [U01AAAA, bob@acme.example]
      - action: update
        set: {stage: Adoption}
      - action: team_notification
        to: [cs-team@example.com]
        subject: 'New trial: {{ account.name }}'
        body: 'Owner: {{ owner.name }}'
      - action: webhook
        url: https://hooks.example.com/cs
        headers: {X-Team: cs}
      - action: hubspot_task     # hubspot_task | salesforce_task
        subject: 'Call {{ account.name }}'
        due_in: 2d
"""


def refused(text: str) -> FileError:
    with pytest.raises(FileError) as caught:
        load_text(text)
    return caught.value


# -- the format's own example, and JSON ---------------------------------------------------------


def test_the_example_file_loads_to_its_data() -> None:
    data = load_text(EXAMPLE)
    assert data["version"] == 1
    assert data["stages"] == ["Onboarding", "Adoption", "Expansion", "Renewal", "Churned"]
    assert data["health"] == {"good": 70, "bad": 40}
    assert data["segments"][1] == {
        "name": "Quiet trials",
        "object": "account",
        "rule": 'plan = "trial" and count(login, 7d) < 2',
    }
    workflow = data["workflows"][0]
    assert workflow["trigger"] == {"segment": "Trial accounts", "when": "enter"}
    assert workflow["admins"] == ["U01AAAA"]
    email, slack, owner, update, _, webhook, task = workflow["steps"]
    greeting = '<p>Hi {{ account.primary_contact.first_name | default("there") }},</p>\n'
    assert email["body"] == greeting
    assert email["approval"] == "#cs-approvals"
    assert (email["approval_timeout"], slack["delay"], task["due_in"]) == ("7d", "3d", "2d")
    assert owner["users"] == ["U01AAAA", "bob@acme.example"]
    assert update["set"] == {"stage": "Adoption"}
    assert webhook["headers"] == {"X-Team": "cs"}


def test_a_doubled_apostrophe_in_a_single_quoted_rule_is_one_apostrophe() -> None:
    data = load_text("segments:\n  - rule: 'company = \"O''Brien & Sons\" or `it''s` is set'\n")
    rule = data["segments"][0]["rule"]
    assert rule == "company = \"O'Brien & Sons\" or `it's` is set"
    assert str(parse(rule)) == rule


def test_the_example_written_as_json_loads_the_same() -> None:
    as_json = json.dumps(load_text(EXAMPLE), indent=2)
    assert load_text(as_json) == json.loads(as_json) == load_text(EXAMPLE)


@pytest.mark.parametrize(
    "text",
    [
        '{"on": "yes", "no": "off", "2026-01-31": "0777", "y": ["1:30", "1_000"]}',
        '{"big": 1e+16, "small": 1.5E-7, "minus_zero": -0.0, "int": 12345678901234567890}',
        '{"escapes": "\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9", "empty": [], "nested": {"a": {}}}',
        json.dumps({"subject": "Welcome \U0001f389", "flags": [True, False, None]}),
        '[1, 2.5, "x"]',
    ],
)
def test_json_loads_as_a_json_parser_reads_it(text: str) -> None:
    assert load_text(text) == json.loads(text)


# -- what YAML 1.1 reads differently is refused with its line ---------------------------------

AMBIGUOUS = [
    ("on", "true"),
    ("On", "true"),
    ("yes", "true"),
    ("Y", "true"),
    ("no", "false"),
    ("NO", "false"),
    ("off", "false"),
    ("n", "false"),
    ("0777", "511"),
    ("-0x1F", "-31"),
    ("1:30", "90"),
    ("190:20:30.15", "685230.15"),
    ("1_000", "1000"),
    ("0b101", "5"),
    ("2026-01-31", "a date"),
    ("2026-01-31 10:00:00", "a timestamp"),
    ("2026-01-31T10:00:00Z", "a timestamp"),
    ("=", "a value key"),
]
AS_VALUE = "version: 1\nsegments:\n  - name: x\n    object: {}\n"
AS_KEY = "version: 1\nsegments:\n  - name: x\n    {}: account\n"
IN_A_LIST = "version: 1\nstages:\n  - Onboarding\n  - {}\n"


@pytest.mark.parametrize("template", [AS_VALUE, AS_KEY, IN_A_LIST], ids=["value", "key", "list"])
@pytest.mark.parametrize(("scalar", "reading"), AMBIGUOUS)
def test_a_plain_scalar_yaml_1_1_reads_otherwise_is_refused_with_its_line(
    template: str, scalar: str, reading: str
) -> None:
    error = refused(template.format(scalar))
    assert error.line == 4
    assert str(error) == (
        f"<stdin>: line 4: {scalar} would load as {reading} in YAML 1.1; "
        f'quote it ("{scalar}") so every tool reads the same'
    )


@pytest.mark.parametrize(("scalar", "reading"), AMBIGUOUS)
def test_the_same_scalars_quoted_are_strings(scalar: str, reading: str) -> None:
    text = f'"{scalar}": \'{scalar}\'\nliteral: |\n  {scalar}\nflow: ["{scalar}"]\n'
    assert load_text(text) == {scalar: scalar, "literal": f"{scalar}\n", "flow": [scalar]}


def test_a_refusal_inside_a_flow_mapping_names_the_line_of_the_scalar() -> None:
    error = refused("version: 1\nhealth: {good: 70,\n  bad: 40,\n  neutral: yes}\n")
    assert (error.line, error.problem.split()[0]) == (4, "yes")


# -- the core schema ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("", None),
        ("~", None),
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("42", 42),
        ("-12", -12),
        ("+12", 12),
        ("08", 8),  # YAML 1.1 reads a string here, not a different number
        ("0o17", 15),
        ("0x1F", 31),
        ("1e3", 1000.0),
        ("1.5", 1.5),
        (".5", 0.5),
        ("-2.", -2.0),
        ("1.0e+3", 1000.0),
        (".inf", math.inf),
        ("-.Inf", -math.inf),
        ("'2026-01-31'", "2026-01-31"),
        ('"0777"', "0777"),
        ("'on'", "on"),
        ("!!str 5", "5"),
        ("!!str on", "on"),
        ("!!float 1", 1.0),
        ("!!int '12'", 12),
        ("1.2.3", "1.2.3"),
        ("7d", "7d"),
        ("U01AAAA", "U01AAAA"),
        ("2026-01-31T10:00", "2026-01-31T10:00"),  # no seconds: a string in YAML 1.1 too
    ],
)
def test_plain_scalars_resolve_by_the_core_schema(written: str, expected: object) -> None:
    value = load_text(f"value: {written}\n")["value"]
    assert value == expected
    assert type(value) is type(expected)


def test_nan_is_a_float() -> None:
    assert math.isnan(load_text("value: .NaN")["value"])


def test_an_empty_document_is_none() -> None:
    assert load_text("# nothing here\n") is None


# -- structure: keys, aliases, tags ---------------------------------------------------------


def test_a_duplicate_key_is_refused_with_the_line_of_the_second() -> None:
    error = refused("segments:\n  - name: Trials\n    object: account\n    name: Quiet\n")
    assert str(error) == '<stdin>: line 4: duplicate key "name"'


def test_a_duplicate_key_written_differently_is_still_a_duplicate() -> None:
    assert refused("health: {good: 70, 'good': 60}").problem == 'duplicate key "good"'


def test_a_list_or_mapping_as_a_key_is_refused() -> None:
    assert str(refused("a: 1\n? [x, y]\n: 2\n")) == (
        "<stdin>: line 2: a key must be a single value, not a list"
    )
    assert refused("{? {a: 1} : 2}").problem == "a key must be a single value, not a mapping"


def test_an_alias_repeats_its_anchor_as_equal_independent_data() -> None:
    data = load_text("base: &base {kind: html, to: [a@x.example]}\ncopy: *base\n")
    assert data["copy"] == data["base"] == {"kind": "html", "to": ["a@x.example"]}
    data["copy"]["to"].append("b@x.example")
    assert data["base"]["to"] == ["a@x.example"]


def test_a_merge_key_is_refused() -> None:
    error = refused("base: &base {kind: html}\nstep:\n  <<: *base\n  subject: Hi\n")
    assert str(error) == "<stdin>: line 3: merge keys (<<) are not supported; write the keys out"
    assert load_text("'<<': 1") == {"<<": 1}


def test_an_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    error = refused("\n".join(lines))
    assert "expands to more than 100,000 values through aliases" in str(error)


def test_an_alias_inside_its_own_anchor_is_refused() -> None:
    error = refused("x: 1\nloop: &loop [1, *loop]\n")
    assert str(error) == ("<stdin>: line 2: an alias refers to a list or mapping that contains it")


def test_nesting_past_the_limit_is_refused() -> None:
    load_text("a: " + "[" * 99 + "]" * 99)
    assert "nested deeper than 100 levels" in str(refused("a: " + "[" * 101 + "]" * 101))


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("a: 1\nb: !!binary aGk=\n", "!!binary"),
        ("a: 1\nb: !!timestamp 2026-01-31\n", "!!timestamp"),
        ("a: 1\nb: !!set {x, y}\n", "!!set"),
        ("a: 1\nb: !!omap [x: 1]\n", "!!omap"),
        ("a: 1\nb: !python/object x\n", "!python/object"),
        ("a: 1\nb: !<tag:example.com,2026:x> y\n", "!<tag:example.com,2026:x>"),
    ],
)
def test_an_unknown_tag_is_refused(text: str, tag: str) -> None:
    assert str(refused(text)) == f"<stdin>: line 2: the tag {tag} is not supported"


def test_a_standard_tag_that_does_not_fit_its_value_is_refused() -> None:
    assert str(refused("a: !!int ten")) == '<stdin>: line 1: "ten" is not a valid !!int'


# -- syntax errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("version: 1\nstages: [a, b\nhealth: 1\n", 3, "expected ',' or ']'"),
        ("version: 1\nsegments:\n  - name: x\n    rule: a: b\n", 4, "mapping values"),
        ("version: 1\nsegments:\n  - name: x\n\t- name: y\n", 4, "'\\t'"),
        ("a: 1\n---\nb: 2\n", 2, "expected a single document"),
        ("a: *nowhere\n", 1, "undefined alias"),
        ("a: 1\nb: x\x07y\n", 2, "character #x0007"),
    ],
)
def test_a_syntax_error_names_its_line(text: str, line: int, problem: str) -> None:
    error = refused(text)
    assert error.line == line
    assert str(error).startswith(f"<stdin>: line {line}: ")
    assert problem in str(error)


def test_an_unterminated_quote_names_where_it_starts() -> None:
    error = refused('version: 1\nsegments:\n  - rule: \'plan = "trial"\n    object: account\n')
    assert error.problem.endswith("(while scanning a quoted scalar on line 3)")


def test_a_message_without_a_source_starts_with_the_line() -> None:
    with pytest.raises(FileError, match=r"\Aline 1: on would load as true"):
        load_text("on: push", source=None)


# -- files ----------------------------------------------------------------------------------


def test_a_file_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "workflows.yaml"
    path.write_text("version: 1\nenabled: yes\n")
    with pytest.raises(FileError) as caught:
        load_path(str(path))
    assert str(caught.value).startswith(f"{path}: line 2: yes would load as true in YAML 1.1")
    assert (caught.value.source, caught.value.line) == (str(path), 2)


def test_a_file_with_a_bom_and_crlf_loads(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_bytes("\ufeffversion: 1\r\nstages: [Onboarding]\r\n".encode())
    assert load_path(str(path)) == {"version": 1, "stages": ["Onboarding"]}


def test_a_missing_or_undecodable_file_is_a_file_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(FileError, match=r"nope\.yaml: cannot read it: No such file"):
        load_path(str(missing))
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"version: 1\nname: caf\xe9\n")
    with pytest.raises(FileError, match=r"latin\.yaml: line 2: not UTF-8 text"):
        load_path(str(latin))


def test_a_dash_reads_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"version": 1}'))
    assert load_path("-") == {"version": 1}
    monkeypatch.setattr("sys.stdin", io.StringIO("a: 1\nb: off\n"))
    with pytest.raises(FileError, match=r"\A<stdin>: line 2: off would load as false"):
        load_path("-")
