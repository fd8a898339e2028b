"""Insight's Slack builders (blocks/stats.py) and the logs' paging (blocks/workflows.py), from
engine.stats' dataclasses built here: what a reader sees (the numbers, the trend, the ▇
funnel, the waits in human words, the email stats, the report link), and with extreme data
(hundreds of workflows and steps, names of thousands of characters, mentions, zeros
everywhere) valid Block Kit within Slack's limits, long lists capped with a count, user text
escaped."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from blocks import stats as sb
from blocks import workflows as wf
from blocks.insight_ids import InsightAction, InsightBlock, LogsPage
from engine.stats import (
    Day,
    EmailStats,
    Range,
    Rate,
    StepStats,
    Summary,
    Wait,
    WorkflowStats,
)
from tests.blocks.limits import assert_escaped, checked_message, texts

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
RANGE = Range(NOW - timedelta(days=30), NOW)
USER_TEXT = "<!channel> <@U123> <https://evil.example|click> &<> *bold* ``` x"
LONG = ("Zoë 🎉 工作流程 " + USER_TEXT + " ") * 60  # thousands of characters
REPORT = "https://bot.acme.example/reports/workflows/12?exp=1772962200&sig=Zm9vYmFy"


def summary(**changes: Any) -> Summary:
    found = Summary(
        workflow_id=12,
        name="Trial welcome",
        status="live",
        enrolled=120,
        active=41,
        completed=70,
        exited=6,
        failed=3,
        sent=96,
        opened=Rate(42, 96),
        trend=0.25,
    )
    return dataclasses.replace(found, **changes)


def step(index: int, action: str, label: str, run: int, **changes: Any) -> StepStats:
    found = StepStats(
        index=index,
        action=action,
        label=label,
        run=run,
        skipped={},
        failed=0,
        pending=0,
        wait=Wait(median_seconds=None, p95_seconds=None, resolution="exact"),
    )
    return dataclasses.replace(found, **changes)


EMAIL = EmailStats(
    index=0,
    drafted=110,
    approved=98,
    edited=14,
    discarded=9,
    expired=3,
    sent=96,
    failed=2,
    opened=Rate(42, 96),
    machine_opened=17,
    clicked=Rate(11, 96),
    scanner_clicked=4,
    unsubscribed=Rate(1, 96),
    approval_median_seconds=47 * 60,
)
STATS = WorkflowStats(
    workflow_id=12,
    name="Trial welcome",
    status="live",
    version=3,
    range=RANGE,
    enrolled=120,
    active=41,
    completed=70,
    exited={"exit_if": 4, "manual": 2},
    failed=3,
    steps=[
        step(
            0,
            "email",
            "Welcome email",
            96,
            skipped={"draft discarded": 9, "draft expired": 3},
            failed=2,
            pending=10,
            wait=Wait(47 * 60, 5.5 * 3600, "exact"),
        ),
        step(1, "slack", "Post to #cs-team", 80, wait=Wait(3 * 86400, 3 * 86400 + 90, "exact")),
        step(2, "hubspot_task", "Call task for the owner", 71, failed=1),
    ],
    emails=[EMAIL],
    days=[
        Day(date(2026, 1, 31) + timedelta(days=n), enrolled=n % 7, completed=n % 3, exited=0)
        for n in range(30)
    ],
    trend=-0.1,
)


def mrkdwn(message: dict[str, Any]) -> str:
    return "\n".join(texts(message["blocks"], "mrkdwn"))


def valid(message: dict[str, Any]) -> dict[str, Any]:
    checked_message(message)
    # Our own link is a url button, never a `<…>` in mrkdwn.
    assert_escaped(texts(message["blocks"], "mrkdwn"))
    assert_escaped([message["text"]])
    return message


# -- words and numbers -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("trend", "shown"),
    [(0.25, "▲ 25%"), (-0.1, "▼ 10%"), (None, "—"), (0.001, "— 0%"), (12.5, "▲ 1,250%")],
)
def test_a_trend_is_an_arrow_and_a_percent(trend: float | None, shown: str) -> None:
    assert sb.trend_text(trend) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "—"),
        (0, "0 s"),
        (45, "45 s"),
        (12 * 60, "12 min"),
        (3.5 * 3600, "3.5 h"),
        (5 * 3600, "5 h"),
        (3 * 86400, "3 d"),
        (400 * 86400, "400 d"),
    ],
)
def test_durations_read_as_people_say_them(seconds: float | None, shown: str) -> None:
    assert sb.duration(seconds) == shown


def test_rates_bars_and_sparklines() -> None:
    assert sb.percent(Rate(42, 96)) == "44%"
    assert sb.percent(Rate(1, 96)) == "1.0%"
    assert sb.percent(Rate(0, 0)) == "—"
    assert sb.bar(120, 120) == "▇" * 20
    assert sb.bar(60, 120) == "▇" * 10
    assert sb.bar(1, 10**9) == "▇"  # any value shows
    assert sb.bar(0, 120) == sb.bar(5, 0) == ""
    assert sb.sparkline([0, 1, 4, 8]) == "▁▂▅█"
    assert sb.sparkline([0, 0]) == "▁▁" and sb.sparkline([]) == ""
    assert sb.range_text(RANGE) == "the last 30 days (31 Jan to 2 Mar 2026)"


# -- /workflow stats -----------------------------------------------------------------------------
def test_the_list_shows_one_line_per_workflow_with_its_numbers_and_trend() -> None:
    found = [
        summary(),
        summary(
            workflow_id=14,
            name="Churn <!here> alert",
            status="disabled",
            trend=None,
            sent=0,
            opened=Rate(0, 0),
            enrolled=0,
            active=0,
            completed=0,
            exited=0,
            failed=0,
        ),
        summary(workflow_id=15, name="Renewal", trend=-0.5),
    ]
    message = valid(sb.stats_list_message(found, RANGE))
    shown = mrkdwn(message)
    assert (
        "*Trial welcome*  _live_  ▲ 25%\n120 enrolled · 41 active · 70 completed · 6 exited · "
        "3 failed · 96 sent · 44% opened"
    ) in shown
    assert "*Churn &lt;!here&gt; alert*  _disabled_  —\n0 enrolled" in shown
    assert "— opened" in shown
    assert "*Renewal*  _live_  ▼ 50%" in shown
    assert message["blocks"][0]["text"]["text"] == "Workflow stats"
    assert "the last 30 days (31 Jan to 2 Mar 2026)" in shown
    assert message["text"] == "Workflow stats, the last 30 days (31 Jan to 2 Mar 2026): 3 workflows"


def test_no_workflows_says_so() -> None:
    message = valid(sb.stats_list_message([], RANGE))
    assert "No workflows yet." in mrkdwn(message)


def test_hundreds_of_long_named_workflows_are_capped_with_a_count() -> None:
    found = [summary(workflow_id=n, name=f"{n} {LONG}", trend=n * 1e6) for n in range(1000)]
    message = valid(sb.stats_list_message(found, RANGE))
    shown = mrkdwn(message)
    lines = re.findall(r"^\*\d+ ", shown, flags=re.MULTILINE)
    more = re.search(r"…and ([\d,]+) more", shown)
    assert more is not None
    assert len(lines) + int(more.group(1).replace(",", "")) == 1000
    assert len(message["blocks"]) <= 50


# -- /workflow stats NAME ------------------------------------------------------------------------
def test_one_workflow_shows_its_numbers_funnel_exits_steps_and_emails() -> None:
    message = valid(sb.stats_message(STATS, report_url=REPORT))
    blocks = message["blocks"]
    assert blocks[0]["text"]["text"] == "Trial welcome"
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert fields == [
        "*Enrolled*\n120",
        "*Active now*\n41",
        "*Completed*\n70",
        "*Exited*\n6",
        "*Failed*\n3",
        "*Trend*\n▼ 10%",
    ]
    shown = mrkdwn(message)
    funnel = next(t for t in texts(blocks, "mrkdwn") if t.startswith("```"))
    assert funnel.splitlines()[1:-1] == [
        f"Enrolled                 120      {'▇' * 20}",
        f"1. Welcome email          96  80% {'▇' * 16}",
        f"2. Post to #cs-team       80  67% {'▇' * 13}",
        f"3. Call task for the ow…  71  59% {'▇' * 12}",
    ]
    assert "*Exits by reason*\nexit_if 4, manual 2" in shown
    assert (
        "`1` *Welcome email* _email_\n96 run · 12 skipped (draft discarded 9, draft expired 3) "
        "· 2 failed · 10 waiting now · wait median 47 min, p95 5.5 h"
    ) in shown
    assert "wait median 3 d, p95 3 d" in shown
    assert "`3` *Call task for the owner* _hubspot_task_\n71 run · 1 failed · wait median —" in (
        shown
    )
    assert "*Email stats*\n*Step 1 · Welcome email*\n110 drafted → 98 approved → 96 sent" in shown
    assert "opened 44% (42; 17 more by machines only, not counted)" in shown
    assert "clicked 11% (11; 4 more by link scanners only, not counted)" in shown
    assert "unsubscribed 1.0% (1) · median approval 47 min" in shown
    assert "14 edited before sending, 9 discarded, 3 expired, 2 failed" in shown
    assert "*Enrolled per day*, 31 Jan to 1 Mar\n`" in shown
    [report] = [b for b in blocks if b.get("block_id") == InsightBlock.REPORT]
    [button] = report["elements"]
    assert button["url"] == REPORT and button["text"]["text"] == "View report"
    assert button["action_id"] == InsightAction.REPORT_LINK


def test_without_a_report_url_there_is_no_button_and_empty_stats_read_well() -> None:
    empty = WorkflowStats(
        workflow_id=1,
        name="New",
        status="draft",
        version=1,
        range=RANGE,
        enrolled=0,
        active=0,
        completed=0,
        exited={},
        failed=0,
        steps=[],
        emails=[],
        days=[],
        trend=None,
    )
    message = valid(sb.stats_message(empty, report_url=None))
    shown = mrkdwn(message)
    assert "*No exits.*" in shown
    assert "Enrolled                 0" in shown
    assert not [b for b in message["blocks"] if b["type"] == "actions"]
    assert "*Trend*\n—" in [f["text"] for f in message["blocks"][2]["fields"]]


def test_an_extreme_workflow_stays_within_slacks_limits() -> None:
    steps = [
        step(
            n,
            "email",
            f"{n} {LONG}",
            10**12 - n,
            skipped={f"{r} {LONG}": 10**9 for r in range(50)},
            failed=10**9,
            pending=10**9,
            wait=Wait(10**9, 10**10, f"bucket {LONG}"),
        )
        for n in range(300)
    ]
    emails = [dataclasses.replace(EMAIL, index=n, drafted=10**12) for n in range(300)]
    extreme = dataclasses.replace(
        STATS,
        workflow_id=2**63 - 1,
        name=LONG,
        enrolled=10**12,
        exited={f"{r} {LONG}": 10**9 for r in range(500)},
        steps=steps,
        emails=emails,
        days=[Day(date(2026, 1, 1) + timedelta(days=n), n * 10**6, 0, 0) for n in range(366)],
        trend=10**6,
    )
    message = valid(sb.stats_message(extreme, report_url=REPORT + "&x=" + "a" * 2000))
    shown = mrkdwn(message)
    assert "more steps" in shown and "more email steps" in shown
    assert "&lt;!channel&gt;" in shown
    with pytest.raises(ValueError):
        sb.stats_message(STATS, report_url="https://x.example/" + "a" * 3000)


def test_the_report_answer_is_a_link_button() -> None:
    message = valid(sb.report_message(LONG, REPORT))
    assert message["blocks"][1]["elements"][0]["url"] == REPORT
    assert "&lt;!channel&gt;" in message["text"]


# -- logs, paged -----------------------------------------------------------------------------------
def test_logs_pages_have_previous_and_next_where_there_is_a_page() -> None:
    record = ("contact", "ada@globex.example")

    def buttons(paging: wf.Paging) -> dict[str, LogsPage]:
        message = valid(wf.logs_message("Trial welcome", record, ["#1 x"], paging))
        found = [b for b in message["blocks"] if b.get("block_id") == InsightBlock.LOGS_PAGES]
        elements = found[0]["elements"] if found else []
        return {e["text"]["text"]: LogsPage.parse(e["value"]) for e in elements}

    assert buttons(wf.Paging(12, 0, 10, 10, more=True)) == {"Next": LogsPage(12, record, 10)}
    assert buttons(wf.Paging(12, 10, 10, 10, more=True)) == {
        "Previous": LogsPage(12, record, 0),
        "Next": LogsPage(12, record, 20),
    }
    assert buttons(wf.Paging(12, 20, 3, 10, more=False)) == {"Previous": LogsPage(12, record, 10)}
    assert buttons(wf.Paging(12, 0, 3, 10, more=False)) == {}
    assert LogsPage.parse(LogsPage(1, None, 0).value()) == LogsPage(1, None, 0)
    longest = LogsPage(2**63 - 1, ("contact", "é" * 200), 10**9).value()
    assert len(longest) < 2000


@pytest.mark.parametrize(
    "value",
    ["", "[]", '{"w": 1}', '{"w": 1, "o": -1}', '{"w": "1", "o": 0}', '{"w":1,"o":0,"r":[1]}'],
)
def test_a_page_value_not_ours_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        LogsPage.parse(value)


# -- View report on Open ---------------------------------------------------------------------------
def test_open_has_view_report_for_everyone_when_a_report_url_is_given() -> None:
    detail = wf.WorkflowDetail(12, "Trial welcome", None, "live", "account", 3, {}, [])
    seen = valid(wf.workflow_message(detail, may_manage=False, report_url=REPORT))
    [actions] = [b for b in seen["blocks"] if b["type"] == "actions"]
    assert [(e["text"]["text"], e.get("url")) for e in actions["elements"]] == [
        ("View report", REPORT)
    ]
    managed = valid(wf.workflow_message(detail, may_manage=True, report_url=REPORT))
    [actions] = [b for b in managed["blocks"] if b["type"] == "actions"]
    assert [e["text"]["text"] for e in actions["elements"]] == ["Disable", "View report"]
    plain = valid(wf.workflow_message(detail, may_manage=False))
    assert not [b for b in plain["blocks"] if b["type"] == "actions"]


def test_many_steps_fill_sections_whole_and_count_the_rest() -> None:
    steps = [step(n, "slack", f"Post number {n}", 1000 - n) for n in range(1000)]
    message = valid(sb.stats_message(dataclasses.replace(STATS, steps=steps), report_url=None))
    shown = mrkdwn(message)
    listed = re.findall(r"^`(\d+)` \*Post number (\d+)\* _slack_$", shown, flags=re.MULTILINE)
    assert all(int(a) == int(b) + 1 for a, b in listed)  # no line cut
    more = re.search(r"…and ([\d,]+) more steps", shown)
    assert more is not None and len(listed) + int(more.group(1).replace(",", "")) == 1000
    assert "more steps: the report shows them all" in shown  # the funnel's code blocks too
