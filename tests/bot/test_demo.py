"""`workflowbot demo` (issue 8): a shortened month on the real stand-ins on 127.0.0.1, with
assertions on what each peer received, then the full default demo through the CLI, timed,
and the database it leaves explored with `workflowbot stats` and `logs`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import dramatiq
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from bot.cli import main
from bot.demo import run
from bot.demo.stage import ALERTS, APPROVALS, Stage, stand_ins
from engine import broker as broker_mod
from engine import report_links, runtime
from engine.settings import Settings
from storage.action_models import Draft
from storage.db import session_scope
from storage.models import Account

# Settings the developer's environment may hold; the demo must not see them.
CLEAN_ENV = {
    name: None
    for name in (
        "DATABASE_URL", "REDIS_URL", "SLACK_BOT_TOKEN", "SLACK_API_URL", "SECRET_KEY",
        "PUBLIC_URL", "SMTP_URL", "WEBHOOK_ALLOWED_HOSTS", "RABBITMQ_URL",
    )
}  # fmt: skip


@pytest.fixture(autouse=True)
def process_globals() -> Iterator[None]:
    """The demo sets this process's broker and runtime, as a command does; put them back."""
    saved = (dramatiq.get_broker(), broker_mod._configured, runtime._current)
    yield
    dramatiq.set_broker(saved[0])
    broker_mod._configured, runtime._current = saved[1], saved[2]


def cli(*args: object) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=CLEAN_ENV)


@pytest.fixture(scope="module")
def ten_days(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Ten simulated days, played once for the assertions below."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    saved = (dramatiq.get_broker(), broker_mod._configured, runtime._current)
    lines: list[str] = []
    try:
        with stand_ins(real_slack=False) as stage:
            settings = stage.settings(
                Settings(), database_url=f"sqlite:///{path}", secret_key="demo test key"
            )
            rt = run.connect(settings, marker="demo")
            played = run.play(rt, stage, days=10, say=lines.append, start=run.month_start(10))
            links = run.report_links(rt, played)
            with session_scope(rt.db) as s:
                drafts = [
                    (d.id, d.kind, d.status, d.subject, list(d.to))
                    for d in s.scalars(select(Draft))
                ]
                owned = list(s.scalars(select(Account.name).where(Account.owner_id.is_not(None))))
            yield {
                "stage": stage, "played": played, "links": links, "lines": lines,
                "drafts": drafts, "owned": owned, "settings": rt.settings,
            }  # fmt: skip
            rt.db.dispose()
    finally:
        dramatiq.set_broker(saved[0])
        broker_mod._configured, runtime._current = saved[1], saved[2]


def test_drafts_are_posted_for_approval_and_one_in_ten_is_discarded(ten_days: dict) -> None:
    stage: Stage = ten_days["stage"]
    assert stage.slack is not None
    [approvals] = [c for c in stage.slack.channels.values() if c.name == APPROVALS]
    emails = [d for d in ten_days["drafts"] if d[1] != "team"]
    assert len(emails) >= 20
    assert len(approvals.messages) == len(emails)  # each draft posted once, then updated
    decided = [d for d in emails if d[2] in ("sent", "discarded")]
    discarded = [d for d in emails if d[2] == "discarded"]
    assert len(discarded) == len(decided) // 10 >= 2
    assert any(
        f"draft #{d[0]} DISCARDED by Dana" in line for d in discarded for line in ten_days["lines"]
    )


def test_only_approved_drafts_reach_smtp_or_gmail(ten_days: dict) -> None:
    stage: Stage = ten_days["stage"]
    mailed = {(str(m.message["Subject"]), r) for m in stage.smtp.received for r in m.rcpt_tos}
    mailed |= {(str(m.message["Subject"]), str(m.message["To"])) for m in stage.google.sent}
    for _, kind, status, subject, to in ten_days["drafts"]:
        if kind == "team":
            continue
        assert ((subject, to[0]) in mailed) == (status == "sent"), (subject, to, status)
    assert any(m.message["To"] == "cs-team@lumen.example" for m in stage.smtp.received)
    assert stage.google.sent, "the Gmail kind sends from Dana's connected Gmail"


def test_alerts_webhooks_owners_and_crm_tasks_reach_their_peers(ten_days: dict) -> None:
    stage: Stage = ten_days["stage"]
    assert stage.slack is not None
    [alerts] = [c for c in stage.slack.channels.values() if c.name == ALERTS]
    assert any("dropped to bad health" in m["text"] for m in alerts.messages)
    paths = {r.path for r in stage.sink.received}
    assert paths == {"/renewals", "/expansion"}
    assert all(r.headers.get("webhook-signature") for r in stage.sink.received)
    assert ten_days["owned"] and any("(round robin)" in line for line in ten_days["lines"])
    assert stage.hubspot.tasks and stage.salesforce.tasks
    assert any(line.endswith('" created') and "HubSpot task" in line for line in ten_days["lines"])


def test_every_workflow_enrolls_and_each_report_link_verifies(ten_days: dict) -> None:
    played: run.Played = ten_days["played"]
    assert len(played.summaries) == 4
    for summary in played.summaries:
        assert summary.enrolled > 0, summary
        assert summary.failed == 0, summary
    assert set(ten_days["links"]) == {s.name for s in played.summaries}
    now = datetime.now(UTC)
    for link in ten_days["links"].values():
        url = urlsplit(link)
        query = parse_qs(url.query)
        assert link.startswith("http://127.0.0.1:8000/reports/workflows/")
        assert report_links.verify(
            ten_days["settings"], url.path, query["exp"][0], query["sig"][0], now
        )


def test_the_full_demo_runs_in_under_a_minute_and_leaves_a_database_to_explore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "workflowbot-demo.db"
    began = time.monotonic()
    result = cli("demo", "--database", db)
    elapsed = time.monotonic() - began
    assert result.exit_code == 0, result.output
    assert elapsed < 60, f"the demo took {elapsed:.1f} s"
    out = result.output
    assert "30 simulated days" in out and "#cs-alerts ←" in out and "approved by Dana" in out
    assert "workflowbot run" in out and "/reports/workflows/" in out
    env = dict(line.split("=", 1) for line in db.with_suffix(".env").read_text().split())
    assert env["DATABASE_URL"] == f"sqlite:///{db.resolve()}" and env["SECRET_KEY"]

    explore = CliRunner(env={**CLEAN_ENV, "DATABASE_URL": env["DATABASE_URL"]})
    stats = explore.invoke(main, ["stats", "--since", "31d"])
    assert stats.exit_code == 0, stats.output
    assert "Trial welcome (live): enrolled" in stats.output
    logs = explore.invoke(main, ["logs", "Renewal prep"])
    assert logs.exit_code == 0, logs.output
    assert "completed" in logs.output

    again = cli("demo", "--database", db)
    assert again.exit_code == 2 and "--fresh" in again.output
    other = tmp_path / "mine.db"
    other.write_bytes(b"")
    refused = cli("demo", "--database", other, "--fresh")
    assert refused.exit_code == 2 and "not a demo database" in refused.output


def test_demo_slack_needs_a_bot_token(tmp_path: Path) -> None:
    result = cli("demo", "--slack", "--database", tmp_path / "d.db")
    assert result.exit_code == 2 and "SLACK_BOT_TOKEN" in result.output
    assert not (tmp_path / "d.db").exists()
