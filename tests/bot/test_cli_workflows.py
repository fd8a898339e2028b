"""`workflowbot apply` with workflows, `validate`, `export` and `workflows ...`, as run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.fileload import load_text
from storage.db import session_scope
from storage.models import Segment
from storage.queries import workflows as q
from tests.helpers import count

pytestmark = pytest.mark.both_dbs

FILE = """\
version: 1
stages: [Onboarding, Renewal]
segments:
  - name: Trial accounts
    object: account
    rule: 'plan = "trial"'
workflows:
  - name: Trial welcome
    description: Tell the CS tool about new trials.
    object: account
    trigger: {segment: Trial accounts, when: enter}
    only_if: 'mrr < 500'
    status: live
    steps:
      - action: webhook
        url: 'http://127.0.0.1:9/hooks/{{ account.name }}'
        headers: {X-Team: cs}
      - delay: 3d
        action: webhook
        url: http://127.0.0.1:9/later
"""


def write(tmp_path: Path, text: str, name: str = "workspace.yml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def run(cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    return cli


def test_apply_creates_a_live_workflow_and_says_so(run: Callable[..., Any], tmp_path: Path) -> None:
    result = run("apply", write(tmp_path, FILE), "--yes")
    assert result.exit_code == 0, result.output
    assert 'workflow "Trial welcome": new, live' in result.output
    listed = run("workflows", "list")
    assert "Trial welcome (account, live, v1): 0 enrolled, 0 active" in listed.output
    again = run("apply", write(tmp_path, FILE), "--yes")
    assert 'workflow "Trial welcome": unchanged' in again.output
    assert "Nothing to change." in again.output


def test_a_changed_workflow_is_a_new_version_in_its_history(
    run: Callable[..., Any], tmp_path: Path
) -> None:
    run("apply", write(tmp_path, FILE), "--yes")
    changed = FILE.replace("url: http://127.0.0.1:9/later", "url: http://127.0.0.1:9/v2")
    result = run("apply", write(tmp_path, changed), "--yes")
    assert 'workflow "Trial welcome": new version (steps[1])' in result.output
    history = run("workflows", "history", "trial welcome")
    lines = history.output.splitlines()
    assert [line.split()[0] for line in lines] == ["v1", "v2"]
    assert lines[1].endswith("steps[1]")
    rolled = run("workflows", "rollback", "Trial welcome", "1")
    assert "version 1 is current again, as version 3" in rolled.output
    exported = load_text(run("export").output)
    assert exported["workflows"][0]["steps"][1]["url"] == "http://127.0.0.1:9/later"


def test_an_export_applies_back_without_a_change(run: Callable[..., Any], tmp_path: Path) -> None:
    run("apply", write(tmp_path, FILE), "--yes")
    exported = run("export", "Trial welcome")
    assert exported.exit_code == 0, exported.output
    back = run("apply", write(tmp_path, exported.output, "export.yml"), "--dry-run")
    assert back.exit_code == 0, back.output
    assert "Nothing to change." in back.output


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            FILE.replace("{segment: Trial accounts, when: enter}", "{segment: Nope}"),
            "workflows[0].trigger.segment",
        ),
        (FILE.replace("delay: 3d", "delay: 3x"), 'workflows[0].steps[1].delay: "3x" is not a'),
        (
            FILE.replace("{{ account.name }}", "{{ acount.name }}"),
            "workflows[0].steps[0].url: undefined name 'acount",
        ),
        (FILE.replace("http://127.0.0.1:9/later", "http://10.0.0.8/later"), "steps[1].url"),
    ],
)
def test_validate_and_apply_refuse_a_bad_workflow_and_store_nothing(
    run: Callable[..., Any], tmp_path: Path, text: str, message: str
) -> None:
    checked = run("validate", write(tmp_path, text))
    assert checked.exit_code == 2
    assert message in checked.output
    applied = run("apply", write(tmp_path, text), "--yes")
    assert applied.exit_code == 2
    assert message in applied.output


def test_validate_says_a_good_file_is_valid_and_changes_nothing(
    run: Callable[..., Any], tmp_path: Path, db: Any
) -> None:
    result = run("validate", write(tmp_path, FILE))
    assert result.exit_code == 0, result.output
    assert "valid (1 segments, 1 workflows)" in result.output
    assert count(db, Segment) == 0


def test_disable_enable_rename_and_delete(run: Callable[..., Any], tmp_path: Path, db: Any) -> None:
    run("apply", write(tmp_path, FILE), "--yes")
    assert "Trial welcome: disabled" in run("workflows", "disable", "Trial welcome").output
    assert "Trial welcome: live" in run("workflows", "enable", "trial welcome").output
    assert run("workflows", "rename", "Trial welcome", "Welcome").exit_code == 0
    assert "Welcome: deleted" in run("workflows", "delete", "Welcome").output
    assert "No workflows yet" in run("workflows", "list").output
    missing = run("workflows", "enable", "Welcome")
    assert missing.exit_code == 2
    assert "no workflow named 'Welcome'" in missing.output
    with session_scope(db) as session:
        [gone] = q.all_workflows(session) or [q.by_name(session, name="Welcome", deleted=True)]
        assert gone is not None and gone.deleted_at is not None


def test_a_segment_that_triggers_a_workflow_is_not_deleted(
    run: Callable[..., Any], tmp_path: Path, db: Any
) -> None:
    run("apply", write(tmp_path, FILE), "--yes")
    refused = run("segments", "delete", "Trial accounts")
    assert refused.exit_code == 2
    assert "'Trial accounts' triggers 'Trial welcome'" in refused.output
    assert count(db, Segment) == 1
    run("workflows", "delete", "Trial welcome")
    assert run("segments", "delete", "Trial accounts").exit_code == 0
    assert count(db, Segment) == 0
