"""`workflowbot stats [NAME] --format text|csv|json`, as run, over enrollments the engine made
(tests/engine/test_stats.py's onboarding: 4 enrolled, 2 completed, 1 exited, 1 active)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import pytest

from engine.runtime import Runtime
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.engine.test_stats import T0, onboarding
from tests.sink import Sink

pytestmark = pytest.mark.both_dbs

DAYS = ("--from", "2026-03-02", "--to", "2026-03-06")


@pytest.fixture
def flow(rt: Runtime, sink: Sink) -> Flow:
    rt.clock = ManualClock(T0)
    rt.settings = rt.settings.model_copy(update={"webhook_allowed_hosts": ["127.0.0.1"]})
    made = Flow(rt)
    onboarding(made, sink)
    return made


def ok(result: Any) -> str:
    assert result.exit_code == 0, result.output
    return str(result.output)


def test_json_is_the_workflow_stats(cli: Callable[..., Any], flow: Flow) -> None:
    data = json.loads(ok(cli("stats", "onboarding", *DAYS, "--format", "json")))
    assert (data["name"], data["enrolled"], data["active"], data["completed"]) == (
        "Onboarding",
        4,
        1,
        2,
    )
    assert data["exited"] == {"exit condition": 1}
    assert data["range"] == {
        "start": "2026-03-02T00:00:00+00:00",
        "end": "2026-03-07T00:00:00+00:00",
    }
    assert [s["run"] for s in data["steps"]] == [4, 1, 2]
    assert data["steps"][1]["skipped"] == {"condition false": 1}
    assert data["days"][0] == {"day": "2026-03-02", "enrolled": 3, "completed": 0, "exited": 0}
    assert len(data["days"]) == 5


def test_csv_has_a_row_per_step(cli: Callable[..., Any], flow: Flow) -> None:
    rows = list(
        csv.DictReader(io.StringIO(ok(cli("stats", "Onboarding", *DAYS, "--format", "csv"))))
    )
    assert [(r["step"], r["action"], r["run"], r["skipped"]) for r in rows] == [
        ("1", "webhook", "4", "0"),
        ("2", "webhook", "1", "1"),
        ("3", "webhook", "2", "0"),
    ]
    assert rows[1]["skipped_by_reason"] == "condition false=1" and rows[1]["pending"] == "1"
    assert 2 * 86400 * 0.81 < float(rows[1]["wait_median_s"]) < 2 * 86400 * 1.19
    assert rows[0]["sent"] == ""  # not an email step


def test_text_and_the_summaries(cli: Callable[..., Any], flow: Flow) -> None:
    text = ok(cli("stats", "Onboarding", *DAYS))
    assert "enrolled 4 · active now 1 · completed 2 · exited 1 · failed 0" in text
    assert "  skipped, condition false: 1" in text and "  2026-03-05: 1 / 2 / 0" in text
    summary = ok(cli("stats", *DAYS))
    assert summary.startswith("Onboarding (live): enrolled 4 · active 1 · completed 2")
    [row] = csv.DictReader(io.StringIO(ok(cli("stats", *DAYS, "--format", "csv"))))
    assert (row["name"], row["enrolled"], row["exited"]) == ("Onboarding", "4", "1")
    [item] = json.loads(ok(cli("stats", "--since", "3650d", "--format", "json")))
    assert item["enrolled"] == 4


def test_mistakes_are_told(cli: Callable[..., Any], flow: Flow) -> None:
    missing = cli("stats", "Nope")
    assert missing.exit_code == 2 and "no workflow named 'Nope'" in missing.output
    bad = cli("stats", "Onboarding", "--since", "soon")
    assert bad.exit_code == 2 and "not a duration" in bad.output
    backwards = cli("stats", "Onboarding", "--from", "2026-03-06", "--to", "2026-03-01")
    assert backwards.exit_code == 2 and "before --from" in backwards.output


def test_report_prints_a_signed_link_the_page_accepts(
    cli: Callable[..., Any], flow: Flow, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime
    from urllib.parse import parse_qs, urlsplit

    from engine import report_links

    unset = cli("report", "Onboarding")
    assert unset.exit_code == 2
    assert "PUBLIC_URL" in unset.output or "SECRET_KEY" in unset.output
    monkeypatch.setenv("PUBLIC_URL", "https://bot.acme.example")
    monkeypatch.setenv("SECRET_KEY", "cli-report-key")
    url = urlsplit(ok(cli("report", "onboarding", "--valid", "1d")).strip())
    query = parse_qs(url.query)
    settings = rt.settings.model_copy(
        update={"public_url": "https://bot.acme.example", "secret_key": ["cli-report-key"]}
    )
    assert url.netloc == "bot.acme.example" and url.path.startswith("/reports/workflows/")
    now = datetime.now(UTC)  # the command's own clock
    assert report_links.verify(settings, url.path, query["exp"][0], query["sig"][0], now)
    assert 86_000 < int(query["exp"][0]) - now.timestamp() <= 86_400  # --valid 1d
    assert cli("report", "Nope").exit_code == 2
    assert "not a duration" in cli("report", "onboarding", "--valid", "soon").output
