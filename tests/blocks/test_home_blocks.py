"""blocks.home with realistic, extreme and empty data (issue 6, items 5 and 7): the Home and its
modals are valid for slack_sdk's models and within Slack's documented limits (100 blocks,
text lengths, unique block ids), drafts come first with the approval message's buttons, and
user text is escaped."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from slack_sdk.models.views import View

from blocks.approval_ids import DraftAction
from blocks.home import (
    DRAFTS_SHOWN,
    HomeData,
    WorkflowDetail,
    WorkflowSummary,
    gmail_modal,
    home_view,
    loading_modal,
    notice_modal,
    workflow_modal,
)
from blocks.home_ids import HOME_CALLBACK, HomeAction, HomeBlock
from blocks.wizard_ids import WizardAction
from tests.blocks.test_approval_blocks import EXTREME, NASTY, REALISTIC, check_escaped

COUNTS = {"enrolled": 120, "active": 14, "completed": 98, "exited": 6, "failed": 2}


def elements(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every interactive element: actions' elements and accessories."""
    found = []
    for block in blocks:
        found += block["elements"] if block["type"] == "actions" else []
        found += [block["accessory"]] if "accessory" in block else []
    return found


def check_view(view: dict[str, Any]) -> list[dict[str, Any]]:
    """`view` parsed by slack_sdk's models and within Slack's limits (some of which the models
    do not check); its blocks."""
    View(**view).validate_json()
    blocks: list[dict[str, Any]] = view["blocks"]
    assert 1 <= len(blocks) <= 100
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(ids) == len(set(ids)) and all(len(i) <= 255 for i in ids)
    for block in blocks:
        kind = block["type"]
        if kind == "section":
            assert 1 <= len(block["text"]["text"].strip()) <= 3000
        elif kind == "header":
            assert len(block["text"]["text"]) <= 150
        elif kind == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(1 <= len(e["text"]) <= 3000 for e in block["elements"])
        elif kind == "actions":
            assert 1 <= len(block["elements"]) <= 25
        else:
            assert kind == "divider", kind
    for element in elements(blocks):
        assert element["type"] == "button"
        assert len(element["text"]["text"]) <= 75 and len(element["action_id"]) <= 255
        assert len(element.get("value", "")) <= 2000 and len(element.get("url", "")) <= 3000
        if "confirm" in element:
            confirm = element["confirm"]
            assert len(confirm["title"]["text"]) <= 100 and len(confirm["text"]["text"]) <= 300
            assert len(confirm["confirm"]["text"]) <= 30 and len(confirm["deny"]["text"]) <= 30
    check_escaped(blocks)
    return blocks


def workflow(i: int, status: str, name: str | None = None) -> WorkflowSummary:
    return WorkflowSummary(
        id=i,
        name=name or f"Workflow {i}",
        status=status,
        object_type="account",
        version=3,
        counts=COUNTS,
    )


REALISTIC_HOME = HomeData(
    drafts=[REALISTIC, dataclasses.replace(REALISTIC, id=43, subject="Renewal, Initech")],
    waiting=2,
    workflows=[
        workflow(1, "live", "Trial welcome"),
        workflow(2, "draft", "Renewal nudge"),
        workflow(3, "disabled", "Churn alert"),
    ],
    gmail_connected=False,
)
LONG_NAME = ("Ünïcødé 工作流 🎉 " + NASTY) * 20


def texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Each block's text as a person reads it (sections, headers, contexts)."""
    found = []
    for block in blocks:
        if "text" in block:
            found.append(block["text"]["text"])
        found += [e["text"] for e in block.get("elements", []) if "text" in e and "type" in e]
    return [t if isinstance(t, str) else t["text"] for t in found]


def actions(blocks: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["action_id"], e.get("value")) for e in elements(blocks)]


def test_the_home_lists_drafts_first_then_workflows_by_status() -> None:
    view = home_view(REALISTIC_HOME)
    assert view["type"] == "home" and view["callback_id"] == HOME_CALLBACK
    blocks = check_view(view)
    assert actions(blocks)[:2] == [(WizardAction.OPEN, None), (HomeAction.CONNECT_GMAIL, None)]
    shown = texts(blocks)
    needles = [
        "Waiting for your decision · 2",
        "Welcome to Acme",
        "Renewal, Initech",
        "Live · 1",
        "Trial welcome",
        "Drafts · 1",
        "Renewal nudge",
        "Disabled · 1",
    ]
    order = [next(i for i, t in enumerate(shown) if needle in t) for needle in needles]
    assert order == sorted(order)
    assert "120 enrolled · 14 active · 98 completed · 6 exited · 2 failed" in "\n".join(shown)
    assert actions(blocks)[2:5] == [
        (DraftAction.APPROVE, "42"),
        (DraftAction.EDIT, "42"),
        (DraftAction.DISCARD, "42"),
    ]
    toggles = [a for a in actions(blocks) if a[0] in (HomeAction.ENABLE, HomeAction.DISABLE)]
    assert toggles == [
        (HomeAction.DISABLE, "1"),
        (HomeAction.ENABLE, "2"),
        (HomeAction.ENABLE, "3"),
    ]
    assert (HomeAction.OPEN, "2") in actions(blocks)
    [approve] = [e for e in elements(blocks) if e["action_id"] == DraftAction.APPROVE][:1]
    assert approve["confirm"]["title"]["text"] == "Send this email?"


def test_connect_gmail_only_without_a_connection() -> None:
    connected = home_view(dataclasses.replace(REALISTIC_HOME, gmail_connected=True))
    assert HomeAction.CONNECT_GMAIL not in json.dumps(connected)
    assert WizardAction.OPEN in json.dumps(connected)


def test_extreme_data_stays_within_100_blocks_and_says_how_many_more() -> None:
    many = [
        workflow(i, ("live", "draft", "disabled")[i % 3], f"{i} {LONG_NAME}") for i in range(200)
    ]
    drafts = [dataclasses.replace(EXTREME, id=EXTREME.id - i) for i in range(DRAFTS_SHOWN)]
    data = HomeData(drafts=drafts, waiting=57, workflows=many, gmail_connected=False)
    blocks = check_view(home_view(data))
    assert len(blocks) <= 100
    draft_ids = [b for b in blocks if b.get("block_id", "").startswith(f"{HomeBlock.DRAFT}:")]
    assert len(draft_ids) == DRAFTS_SHOWN
    shown = [b for b in blocks if b.get("block_id", "").startswith(f"{HomeBlock.WORKFLOW}:")]
    assert 10 < len(shown) < 200
    joined = "\n".join(texts(blocks))
    assert f"{57 - DRAFTS_SHOWN} more waiting" in joined
    assert f"{200 - len(shown)} more workflows not shown here (" in joined
    assert "66 disabled)" in joined
    assert "&lt;!channel&gt;" in joined and "<!channel>" not in joined


def test_empty_lists_say_so() -> None:
    data = HomeData(drafts=[], waiting=0, workflows=[], gmail_connected=True)
    blocks = check_view(home_view(data))
    joined = "\n".join(texts(blocks))
    assert "Nothing is waiting for you" in joined and "No workflows yet" in joined
    assert actions(blocks) == [(WizardAction.OPEN, None)]


def test_the_modals_are_valid() -> None:
    detail = WorkflowDetail(
        workflow=workflow(7, "live", LONG_NAME),
        description=("Welcome new trials. " + NASTY) * 200,
        trigger={"segment": LONG_NAME},
    )
    for view in (
        workflow_modal(detail),
        loading_modal("Connect Gmail"),
        notice_modal("Connect Gmail", "GOOGLE_CLIENT_ID is not set"),
        gmail_modal("https://accounts.google.com/o/oauth2/v2/auth?state=" + "s" * 1000),
    ):
        check_view(view)
        assert len(view["title"]["text"]) <= 24
    [link] = elements(gmail_modal("https://accounts.google.com/x")["blocks"])
    assert link["url"] == "https://accounts.google.com/x"
    assert link["action_id"] == HomeAction.GMAIL_LINK
    assert re.search(r"120 enrolled", json.dumps(workflow_modal(detail)))
