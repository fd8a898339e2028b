"""Insight in Slack (the Insight issue, part 2), through signed requests to the real web app
with the Slack stand-in recording what Slack received: `/workflow logs` paged by Next and
Previous (a click replaces the message), `/workflow stats [NAME] [--since]` and `/workflow
report NAME`, which everyone may use."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from blocks.ids import WorkflowMenu
from blocks.insight_ids import InsightAction, InsightBlock, LogsPage
from engine import control, report_links, workflows
from engine.runtime import Runtime
from storage.db import session_scope
from tests.bot.slack_requests import SlackSender, slack_web_app
from tests.bot.test_slack_manage import (
    ADMIN,
    STRANGER,
    answer,
    click,
    code,
    menu,
    mrkdwn_texts,
    workflow,
)
from tests.engine.flow import Flow
from tests.slack_peer import SlackPeer

ACCOUNTS = 23  # three pages: 10, 10, 3


@pytest.fixture
def slack(rt: Runtime, peer: SlackPeer) -> Iterator[SlackSender]:
    rt.settings = rt.settings.model_copy(update={"slack_admins": [ADMIN]})
    with slack_web_app(rt, peer) as sender:
        yield sender


def seed(rt: Runtime, accounts: int = ACCOUNTS) -> Flow:
    """Live "Trial welcome" with `accounts` trial accounts enrolled, a000 first."""
    flow = Flow(rt)
    flow.segment("Trial accounts", 'plan = "trial"')
    flow.workflow(
        name="Trial welcome",
        trigger={"segment": "Trial accounts"},
        enrollment="every_time",
        steps=[{"action": "slack", "channel": "#alerts", "text": "New trial", "delay": "1d"}],
    )
    for n in range(accounts):
        flow.group(f"a{n:03}", name=f"Account {n}", plan="trial")
    flow.evaluate()
    assert len(flow.enrollments()) == accounts
    return flow


def shown_accounts(message: dict[str, Any]) -> list[str]:
    """The records whose timelines a logs message shows, in order."""
    return re.findall(r"^#\d+ account (\S+) ·", code(message), flags=re.MULTILINE)


def page_buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Next / Previous by their label."""
    found = [b for b in message["blocks"] if b.get("block_id") == InsightBlock.LOGS_PAGES]
    if not found:
        return {}
    return {e["text"]["text"]: e for e in found[0]["elements"]}


def press(slack: SlackSender, button: dict[str, Any], user: str = STRANGER) -> dict[str, Any]:
    return click(
        slack,
        {
            "type": "button",
            "action_id": button["action_id"],
            "block_id": InsightBlock.LOGS_PAGES,
            "value": button["value"],
        },
        user=user,
    )


def newest(n: int, start: int = 0) -> list[str]:
    """The accounts of enrollments start+1..start+n, newest first."""
    every = [f"a{i:03}" for i in reversed(range(ACCOUNTS))]
    return every[start : start + n]


# -- logs, paged ---------------------------------------------------------------------------------
def test_logs_pages_through_the_enrollments_with_next_and_previous(
    slack: SlackSender, rt: Runtime
) -> None:
    seed(rt)
    first = answer(slack, "logs Trial welcome", user=STRANGER)  # anyone may
    assert shown_accounts(first) == newest(10)
    assert first["blocks"][0]["text"]["text"] == "*Trial welcome*: the latest enrollments"
    assert list(page_buttons(first)) == ["Next"]  # no Previous on the first page

    second = press(slack, page_buttons(first)["Next"])
    assert second["replace_original"] is True
    assert shown_accounts(second) == newest(10, 10)
    assert second["blocks"][0]["text"]["text"] == (
        "*Trial welcome*: enrollments 11 to 20, newest first"
    )
    assert list(page_buttons(second)) == ["Previous", "Next"]

    last = press(slack, page_buttons(second)["Next"])
    assert shown_accounts(last) == newest(3, 20)
    assert list(page_buttons(last)) == ["Previous"]  # no Next on the last page

    back = press(slack, page_buttons(last)["Previous"])
    assert shown_accounts(back) == newest(10, 10)
    again = press(slack, page_buttons(back)["Previous"])
    assert shown_accounts(again) == newest(10)
    assert again["blocks"] == first["blocks"]


def test_exactly_one_page_has_no_buttons(slack: SlackSender, rt: Runtime) -> None:
    seed(rt, accounts=10)
    message = answer(slack, "logs Trial welcome")
    assert len(shown_accounts(message)) == 10
    assert page_buttons(message) == {}


def test_a_records_logs_page_by_the_record(slack: SlackSender, rt: Runtime) -> None:
    """Next carries the record: the next page holds that record's older enrollments only."""
    seed(rt, accounts=2)
    now = rt.clock.now()
    with session_scope(rt.db) as s:
        for _ in range(11):  # a001 leaves and is enrolled again: 12 enrollments in all
            control.exit_record(
                s,
                name="Trial welcome",
                object_type="account",
                external_id="a001",
                by="test",
                now=now,
            )
            control.enroll_by_hand(
                s,
                name="Trial welcome",
                object_type="account",
                external_id="a001",
                by="test",
                now=now,
            )
    first = answer(slack, "logs Trial welcome account:a001")
    assert shown_accounts(first) == ["a001"] * 10
    value = LogsPage.parse(page_buttons(first)["Next"]["value"])
    assert value == LogsPage(workflow(rt, "Trial welcome").id, ("account", "a001"), 10)
    second = press(slack, page_buttons(first)["Next"])
    assert shown_accounts(second) == ["a001"] * 2
    assert second["blocks"][0]["text"]["text"] == (
        "*Trial welcome*: enrollments 11 to 12 of account “a001”, newest first"
    )
    assert list(page_buttons(second)) == ["Previous"]


def test_a_page_of_a_deleted_workflow_says_so(slack: SlackSender, rt: Runtime) -> None:
    seed(rt, accounts=11)
    first = answer(slack, "logs Trial welcome")
    answer(slack, "disable Trial welcome")
    with session_scope(rt.db) as s:
        workflows.delete(s, name="Trial welcome", now=rt.clock.now())
    said = press(slack, page_buttons(first)["Next"])
    assert said["text"].startswith("That workflow no longer exists")
    assert said["replace_original"] is False


def test_a_forged_page_value_is_refused(slack: SlackSender) -> None:
    said = press(
        slack, {"action_id": InsightAction.LOGS_NEXT, "value": '{"w": "1; drop", "o": -3}'}
    )
    assert said["text"] == "That button is not one of mine."


# -- stats ---------------------------------------------------------------------------------------
def test_stats_lists_every_workflow_with_its_numbers(slack: SlackSender, rt: Runtime) -> None:
    seed(rt)
    message = answer(slack, "stats", user=STRANGER)  # anyone may
    shown = "\n".join(mrkdwn_texts(message))
    assert "*Trial welcome*  _live_" in shown
    assert (
        f"{ACCOUNTS} enrolled · {ACCOUNTS} active · 0 completed · 0 exited · 0 failed · 0 sent · "
        "— opened"
    ) in shown
    assert "the last 30 days" in shown


def test_stats_of_one_workflow_shows_its_funnel_and_steps(slack: SlackSender, rt: Runtime) -> None:
    seed(rt)
    message = answer(slack, "stats Trial welcome --since 7d", user=STRANGER)
    assert message["blocks"][0]["text"]["text"] == "Trial welcome"
    fields = [f["text"] for f in message["blocks"][2]["fields"]]
    assert fields[:2] == [f"*Enrolled*\n{ACCOUNTS}", f"*Active now*\n{ACCOUNTS}"]
    shown = "\n".join(mrkdwn_texts(message))
    assert "the last 7 days" in shown
    assert re.search(rf"^Enrolled +{ACCOUNTS} +▇{{20}}$", code(message), flags=re.MULTILINE)
    assert f"0 run · {ACCOUNTS} waiting now" in shown
    assert not [b for b in message["blocks"] if b["type"] == "actions"]  # no PUBLIC_URL here


def test_stats_refuses_a_range_it_does_not_offer_and_an_unknown_name(
    slack: SlackSender, rt: Runtime
) -> None:
    seed(rt, accounts=1)
    assert answer(slack, "stats --since 5d")["text"] == (
        ":thinking_face: `--since` takes `7d`, `30d`, `90d`."
    )
    assert "Did you mean *Trial welcome*" in answer(slack, "stats Trial welcom")["text"]
    assert "the last 90 days" in "\n".join(mrkdwn_texts(answer(slack, "stats —since 90D")))


def test_report_needs_a_name(slack: SlackSender) -> None:
    acked = slack.command("report").json()
    assert acked == {"response_type": "ephemeral", "text": "Usage: `/workflow report NAME`"}


def test_report_without_public_url_says_why(slack: SlackSender, rt: Runtime) -> None:
    seed(rt, accounts=1)
    assert rt.settings.public_url is None
    said = answer(slack, "report Trial welcome", user=STRANGER)["text"]
    assert said.startswith(":no_entry: No report link: PUBLIC_URL is not set")


@pytest.fixture
def reporting(rt: Runtime, peer: SlackPeer) -> Iterator[SlackSender]:
    """The app where report links can be made: PUBLIC_URL and SECRET_KEY set."""
    rt.settings = rt.settings.model_copy(
        update={"public_url": "https://bot.acme.example/", "secret_key": ["report-test-key"]}
    )
    with slack_web_app(rt, peer) as sender:
        yield sender


def link_of(message: dict[str, Any]) -> str:
    [url] = [
        e["url"]
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["text"]["text"] == "View report"
    ]
    return str(url)


def verified(rt: Runtime, url: str, path: str) -> bool:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}" == "https://bot.acme.example"
    assert parts.path == path
    return report_links.verify(
        rt.settings, parts.path, query["exp"][0], query["sig"][0], rt.clock.now()
    )


def test_report_answers_a_signed_link_to_the_report_page(
    reporting: SlackSender, rt: Runtime
) -> None:
    seed(rt, accounts=1)
    path = f"/reports/workflows/{workflow(rt, 'Trial welcome').id}"
    message = answer(reporting, "report Trial welcome", user=STRANGER)  # anyone may
    assert message["blocks"][0]["text"]["text"].startswith("*Trial welcome*: its report")
    assert verified(rt, link_of(message), path)
    stats = answer(reporting, "stats Trial welcome", user=STRANGER)
    assert verified(rt, link_of(stats), path)  # and the stats carry it too


def test_open_shows_the_statistics_and_view_report_and_the_list_menu_links_the_report(
    reporting: SlackSender, rt: Runtime
) -> None:
    seed(rt, accounts=3)
    found = workflow(rt, "Trial welcome")
    path = f"/reports/workflows/{found.id}"
    opened = answer(reporting, "open Trial welcome", user=STRANGER)
    shown = " ".join(mrkdwn_texts(opened))
    assert "*Enrolled*\n3" in shown and "*Funnel*" in shown  # the statistics, after the counts
    assert verified(rt, link_of(opened), path)

    chosen = click(reporting, menu(WorkflowMenu.REPORT, found.id), user=STRANGER)
    assert chosen["blocks"][0]["text"]["text"].startswith("*Trial welcome*: its report")
    assert verified(rt, link_of(chosen), path)


def test_view_report_in_the_menu_says_why_without_public_url(
    slack: SlackSender, rt: Runtime
) -> None:
    seed(rt, accounts=1)
    chosen = click(slack, menu(WorkflowMenu.REPORT, workflow(rt, "Trial welcome").id))
    assert "PUBLIC_URL" in chosen["text"]
