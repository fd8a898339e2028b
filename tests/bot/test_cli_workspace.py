"""`workflowbot apply`, `segments list|delete` and `signals tail`, run as a user runs them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine import lifecycle
from engine.runtime import Runtime
from storage.db import session_scope
from storage.models import Segment, Signal
from tests.engine.harness import Harness
from tests.helpers import count

pytestmark = pytest.mark.both_dbs

FILE = """\
version: 1
stages: [Onboarding, Adoption, Renewal]
health: {good: 75, bad: 35}
segments:
  - name: Trial accounts
    object: account
    rule: 'plan = "trial"'
  - name: Big trials
    object: account
    rule: 'plan = "trial" and mrr >= 500'
  - name: People at trials
    object: contact
    rule: 'account.plan = "trial"'
"""


@pytest.fixture
def wb(rt: Runtime) -> Harness:
    h = Harness(rt)
    for n, (plan, mrr) in enumerate([("trial", 100), ("trial", 900), ("pro", 900), ("trial", 50)]):
        h.group(f"acct{n}", user=f"user{n}", plan=plan, mrr=mrr)
    h.evaluate()
    return h


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "workspace.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_apply_creates_what_the_file_defines_and_says_so(
    cli: Callable[..., Any], wb: Harness, tmp_path: Path
) -> None:
    path = write(tmp_path, FILE)
    dry = cli("apply", path, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert 'segment "Trial accounts" (account): new, 3 members' in dry.output
    assert "Dry run: nothing applied." in dry.output
    assert count(wb.rt.db, Segment) == 0

    done = cli("apply", path)
    assert done.exit_code == 0, done.output
    assert wb.members("Trial accounts") == {"acct0", "acct1", "acct3"}
    assert wb.members("Big trials") == {"acct1"}
    assert wb.members("People at trials") == {"user0", "user1", "user3"}
    assert wb.signals() == []  # a first computation fires nothing
    with session_scope(wb.rt.db) as s:
        assert lifecycle.stages(s).names == ("Onboarding", "Adoption", "Renewal")
        assert lifecycle.health(s) == lifecycle.Health(good=75, bad=35)

    listed = cli("segments", "list")
    assert listed.exit_code == 0
    row = next(line for line in listed.output.splitlines() if line.startswith("Trial accounts"))
    assert row.split()[2:5] == ["account", "3", "on"]

    again = cli("apply", path)
    assert again.exit_code == 0 and "Nothing to change." in again.output


def test_a_changed_rule_says_who_enters_and_leaves_then_signals_exactly_that(
    cli: Callable[..., Any], wb: Harness, tmp_path: Path
) -> None:
    assert cli("apply", write(tmp_path, FILE)).exit_code == 0
    changed = write(tmp_path, FILE.replace("mrr >= 500", "mrr >= 80"))
    dry = cli("apply", changed, "--dry-run")
    assert (
        'segment "Big trials" (account): rule changes, 1 will enter and 0 will leave' in dry.output
    )
    assert wb.members("Big trials") == {"acct1"}
    done = cli("apply", changed, "--yes")
    assert done.exit_code == 0, done.output
    assert wb.members("Big trials") == {"acct0", "acct1"}
    assert [s[1:] for s in wb.signals()] == [("acct0", "segment_enter", wb.signals()[0][3])]


def test_stdin_and_a_renamed_case_are_the_same_segment(
    cli: Callable[..., Any], wb: Harness, tmp_path: Path
) -> None:
    assert cli("apply", "-", input=FILE).exit_code == 0
    result = cli("apply", "-", input=FILE.replace("Trial accounts", "TRIAL ACCOUNTS"))
    assert result.exit_code == 0, result.output
    assert 'segment "TRIAL ACCOUNTS" (account): renamed' in result.output
    assert count(wb.rt.db, Segment) == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            FILE.replace('plan = "trial" and mrr >= 500', "plan = "),
            "segments[1].rule: 1:7: expected a value after '='",
        ),
        (FILE.replace("[Onboarding, Adoption, Renewal]", "[on, off]"), "line 2: on would load as"),
        (
            FILE
            + "workflows:\n  - name: x\n    object: account\n    trigger: {segment: Trial accounts}"
            + "\n    steps:\n      - action: email\n",
            "workflows[0].steps[0].subject: Field required",
        ),
        (FILE.replace("version: 1", "version: 2"), "version: must be 1"),
        (FILE.replace("object: contact", "object: user"), "segments[2].object:"),
    ],
)
def test_a_bad_file_is_refused_with_where_and_nothing_is_applied(
    cli: Callable[..., Any], wb: Harness, tmp_path: Path, text: str, message: str
) -> None:
    result = cli("apply", write(tmp_path, text))
    assert result.exit_code == 2
    assert message in result.output
    assert count(wb.rt.db, Segment) == 0
    with session_scope(wb.rt.db) as s:
        assert lifecycle.stages(s).names == ()


def test_a_segment_cannot_change_object(
    cli: Callable[..., Any], wb: Harness, tmp_path: Path
) -> None:
    assert cli("apply", write(tmp_path, FILE)).exit_code == 0
    moved = FILE.replace(
        "object: account\n    rule: 'plan = \"trial\"'",
        "object: contact\n    rule: 'plan = \"trial\"'",
    )
    result = cli("apply", write(tmp_path, moved))
    assert result.exit_code == 2
    assert "segments[0].object: 'Trial accounts' is an account segment" in result.output


def test_segments_delete_removes_it_and_its_members(
    cli: Callable[..., Any], wb: Harness, tmp_path: Path
) -> None:
    assert cli("apply", write(tmp_path, FILE)).exit_code == 0
    result = cli("segments", "delete", "big TRIALS", "--yes")
    assert result.exit_code == 0, result.output
    assert 'Deleted segment "Big trials" (1 members).' in result.output
    assert count(wb.rt.db, Segment) == 2
    missing = cli("segments", "delete", "Big trials", "--yes")
    assert missing.exit_code == 2 and "no segment named 'Big trials'" in missing.output


def test_signals_tail_prints_what_happened(
    cli: Callable[..., Any], wb: Harness, tmp_path: Path
) -> None:
    assert cli("apply", write(tmp_path, FILE)).exit_code == 0
    wb.group("acct2", plan="trial", stage="renewal", health_score=20)
    wb.track("user2", "export_created", format="csv")
    wb.evaluate()
    result = cli("signals", "tail", "--no-follow", "--last", "100")
    assert result.exit_code == 0, result.output
    lines = [line.split("  ", 1)[1].split() for line in result.output.splitlines()]
    assert ["account", "acct2", "segment_enter", "Trial", "accounts"] in lines
    assert ["contact", "user2", "segment_enter", "People", "at", "trials"] in lines
    assert ["account", "acct2", "health", "change", "none", "->", "bad", "(score", "20)"] in lines
    assert ["contact", "user2", "event", "export_created", '{"format":', '"csv"}'] in lines
    assert count(wb.rt.db, Signal) == len(lines)
    short = cli("signals", "tail", "--no-follow", "--last", "1")
    assert len(short.output.splitlines()) == 1


def test_new_thresholds_move_health_segments_without_signals(
    cli: Callable[..., Any], wb: Harness, tmp_path: Path
) -> None:
    wb.group("acct0", health_score=30)
    wb.group("acct1", health_score=45)
    wb.evaluate()
    before = len(wb.signals())
    at_risk = FILE + "  - name: At risk\n    object: account\n    rule: 'health = \"bad\"'\n"
    assert cli("apply", write(tmp_path, at_risk)).exit_code == 0
    assert wb.members("At risk") == {"acct0"}
    result = cli("apply", write(tmp_path, at_risk.replace("bad: 35", "bad: 50")))
    assert result.exit_code == 0, result.output
    assert "segments on health move without signals" in result.output
    assert wb.members("At risk") == {"acct0", "acct1"}
    assert len(wb.signals()) == before


def test_an_unknown_stage_in_a_rule_is_refused_naming_the_stages(
    cli: Callable[..., Any], wb: Harness, tmp_path: Path
) -> None:
    text = FILE + "  - name: Late\n    object: account\n    rule: 'stage >= \"Renewl\"'\n"
    result = cli("apply", write(tmp_path, text))
    assert result.exit_code == 2
    assert "segments[3].rule: stage: 'Renewl' is not a stage; the stages are Onboarding" in (
        result.output
    )
    assert count(wb.rt.db, Segment) == 0
