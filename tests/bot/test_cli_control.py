"""`workflowbot logs`, `enroll`, `enrollments exit`, `workflows test|audience`,
`workflows disable --exit-all`, `pause-all` / `resume-all`, and what `apply` says before a
live workflow changes — as run, against records that came in through ingestion."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.runtime import Runtime
from tests.engine.flow import Flow
from tests.sink import Sink

pytestmark = pytest.mark.both_dbs

FILE = """\
version: 1
segments:
  - name: Trial accounts
    object: account
    rule: 'plan = "trial"'
workflows:
  - name: Trial welcome
    object: account
    trigger: {{segment: Trial accounts, when: enter}}
    only_if: 'mrr < 500'
    exit_if: 'status = "paying"'
    status: live
    enroll_existing: {existing}
    steps:
      - action: webhook
        url: '{url}/hooks/{{{{ account.name }}}}'
      - delay: 3d
        only_if: 'count(login, 3d) < 1'
        action: webhook
        url: {url}/later
"""


@pytest.fixture
def flow(rt: Runtime) -> Flow:
    rt.settings = rt.settings.model_copy(update={"webhook_allowed_hosts": ["127.0.0.1"]})
    return Flow(rt)


@pytest.fixture
def run(cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    return cli


def apply(run: Callable[..., Any], tmp_path: Path, sink: Sink, existing: bool = False) -> Any:
    path = tmp_path / "workspace.yml"
    path.write_text(FILE.format(url=sink.url, existing="true" if existing else "false"))
    result = run("apply", path, "--yes")
    assert result.exit_code == 0, result.output
    return result


def test_logs_show_each_enrollment_timeline(
    run: Callable[..., Any], tmp_path: Path, sink: Sink, flow: Flow
) -> None:
    apply(run, tmp_path, sink)
    flow.group("acme", name="Acme", plan="trial", mrr=100)
    flow.group("globex", name="Globex", plan="trial", mrr=900)  # only_if is false
    flow.evaluate()
    flow.run()
    result = run("logs", "Trial welcome")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("#1 account acme · active · version 1")
    assert 'enrolled (signal): entered segment "Trial accounts" · version 1' in lines[1]
    assert "step 1 (webhook) scheduled now" in lines[2]
    assert "step 1 (webhook): POST " in lines[3] and "/hooks/Acme: 200" in lines[3]
    assert "step 2 (webhook) scheduled for" in lines[4]
    assert run("logs", "Trial welcome", "--account", "globex").output == "no enrollments yet\n"
    missing = run("logs", "Nope")
    assert missing.exit_code == 1
    assert 'no workflow is named "Nope"' in missing.output


def test_enroll_by_hand_then_exit_by_hand(
    run: Callable[..., Any], tmp_path: Path, sink: Sink, flow: Flow
) -> None:
    apply(run, tmp_path, sink)
    flow.group("globex", name="Globex", plan="pro", mrr=900)
    flow.evaluate()
    enrolled = run("enroll", "Trial welcome", "--account", "globex")
    assert enrolled.exit_code == 0, enrolled.output
    assert "account globex: enrolled in Trial welcome (enrollment #1)" in enrolled.output
    again = run("enroll", "Trial welcome", "--account", "globex")
    assert again.exit_code == 1
    assert "was not enrolled: already enrolled (enrollment: once)" in again.output
    flow.run()  # the scheduler dispatches the manual enrollment's first step
    assert [r.path for r in sink.received] == ["/hooks/Globex"]
    left = run("enrollments", "exit", "--workflow", "Trial welcome", "--account", "globex")
    assert left.exit_code == 0, left.output
    assert "account globex: exited Trial welcome" in left.output
    log = run("logs", "Trial welcome").output
    assert "enrolled (manual): by hand, by cli:" in log
    assert "exited: exited by hand, by cli:" in log
    nothing = run("enrollments", "exit", "--all", "--account", "globex")
    assert nothing.exit_code == 1
    assert "no active enrollment to exit" in nothing.output
    unknown = run("enroll", "Trial welcome", "--account", "nobody")
    assert unknown.exit_code == 1 and 'no account has the id "nobody"' in unknown.output


def test_workflows_test_walks_one_record_without_sending(
    run: Callable[..., Any], tmp_path: Path, sink: Sink, flow: Flow
) -> None:
    apply(run, tmp_path, sink)
    flow.group("acme", name="Acme", plan="trial", mrr=100)
    flow.evaluate()
    sent = len(sink.received)
    result = run("workflows", "test", "Trial welcome", "--account", "acme")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "nothing is sent" in out
    assert 'trigger: matches now: members of segment "Trial accounts"' in out
    assert "only_if `mrr < 500`: true" in out
    assert 'exit_if `status = "paying"`: false' in out
    assert "step 1 (webhook, at once): would run" in out
    assert f"POST {sink.url}/hooks/Acme" in out
    assert "step 2 (webhook, after 3d): would run" in out
    assert len(sink.received) == sent  # nothing was sent


def test_audience_counts_who_matches_now(
    run: Callable[..., Any], tmp_path: Path, sink: Sink, flow: Flow
) -> None:
    flow.group("acme", plan="trial", mrr=100)
    flow.group("globex", plan="trial", mrr=900)
    flow.group("initech", plan="pro", mrr=100)
    flow.evaluate()
    apply(run, tmp_path, sink)
    result = run("workflows", "audience", "Trial welcome")
    assert result.exit_code == 0, result.output
    assert result.output == (
        'Trial welcome: 1 members of segment "Trial accounts" where only_if `mrr < 500` holds\n'
    )


def test_enroll_existing_enrolls_the_audience_at_the_first_enable(
    run: Callable[..., Any], tmp_path: Path, sink: Sink, flow: Flow
) -> None:
    flow.group("acme", plan="trial", mrr=100)
    flow.group("globex", plan="trial", mrr=900)
    flow.evaluate()
    result = apply(run, tmp_path, sink, existing=True)
    assert 'workflow "Trial welcome": 1 existing records enrolled (enroll_existing)' in (
        result.output
    )
    assert flow.enrollments() == [("acme", "active")]
    assert "in the audience when the workflow went live" in run("logs", "Trial welcome").output


def test_apply_says_what_a_change_to_a_live_workflow_touches(
    run: Callable[..., Any], tmp_path: Path, sink: Sink, flow: Flow
) -> None:
    apply(run, tmp_path, sink)
    flow.group("acme", plan="trial", mrr=100)
    flow.group("globex", plan="trial", mrr=200)
    flow.evaluate()
    changed = tmp_path / "changed.yml"
    changed.write_text(
        FILE.format(url=sink.url, existing="false").replace("mrr < 500", "mrr < 150")
    )
    result = run("apply", changed, "--dry-run")
    assert result.exit_code == 0, result.output
    assert (
        'workflow "Trial welcome": new version (only_if); 2 active enrollments finish on their '
        'version; 1 members of segment "Trial accounts" where only_if `mrr < 150` holds now'
    ) in result.output


def test_disable_exit_all_and_pause_all(
    run: Callable[..., Any], tmp_path: Path, sink: Sink, flow: Flow
) -> None:
    apply(run, tmp_path, sink)
    paused = run("pause-all")
    assert paused.output == "every send is paused\n"
    assert run("pause-all").output == "sends were already paused\n"
    flow.group("acme", name="Acme", plan="trial", mrr=100)
    flow.evaluate()
    flow.run()
    assert sink.received == []  # waits
    resumed = run("resume-all")
    assert resumed.output == "sends resumed; 1 waiting steps scheduled\n"
    flow.run()
    assert [r.path for r in sink.received] == ["/hooks/Acme"]
    disabled = run("workflows", "disable", "Trial welcome", "--exit-all")
    assert disabled.exit_code == 0, disabled.output
    assert disabled.output == "Trial welcome: disabled\nexited 1 active enrollments\n"
    assert flow.enrollments() == [("acme", "exited")]


def test_apply_says_how_many_enroll_existing_takes_before_it_does(
    run: Callable[..., Any], tmp_path: Path, sink: Sink, flow: Flow
) -> None:
    flow.group("acme", plan="trial", mrr=100)
    flow.evaluate()
    drafted = tmp_path / "draft.yml"
    drafted.write_text(
        FILE.format(url=sink.url, existing="true").replace("status: live", "status: draft")
    )
    assert run("apply", drafted, "--yes").exit_code == 0
    live = tmp_path / "live.yml"
    live.write_text(FILE.format(url=sink.url, existing="true"))
    result = run("apply", live, "--dry-run")
    assert (
        'draft -> live; enroll_existing: 1 members of segment "Trial accounts" where only_if '
        "`mrr < 500` holds enroll now"
    ) in result.output
    assert flow.enrollments() == []


def test_only_a_valid_workflow_goes_live(
    run: Callable[..., Any], tmp_path: Path, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    drafted = tmp_path / "draft.yml"
    drafted.write_text(FILE.format(url=sink.url, existing="false").replace("live", "draft"))
    assert run("apply", drafted, "--yes").exit_code == 0
    monkeypatch.delenv("WEBHOOK_ALLOWED_HOSTS")  # 127.0.0.1 is no longer allowed
    refused = run("workflows", "enable", "Trial welcome")
    assert refused.exit_code == 2
    assert "workflows[0].steps[0].url: https is required" in refused.output
    assert "draft" in run("workflows", "list").output
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    enabled = run("workflows", "enable", "Trial welcome")
    assert enabled.exit_code == 0, enabled.output
    assert enabled.output == "Trial welcome: live\n"
