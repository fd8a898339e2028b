"""Every Block Kit builder of blocks.workflows, .notification, .home and .approval, rendered with
realistic and extreme data (names of thousands of characters, hundreds of workflows, drafts and
log lines, unicode, empty lists, None), is valid for slack_sdk's models and within Slack's
documented limits (tests/blocks/limits.py); long lists are capped with a count of the rest, and
user text is escaped in mrkdwn (`<!channel>` shows literally) and literal in plain_text.

test_approval_blocks.py and test_home_blocks.py hold what those builders show and do; this file
only sweeps every builder with nastier data.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from blocks import home, kit
from blocks import notification as notes
from blocks import workflows as wf
from blocks.approval import DraftView, draft_message, edit_modal, full_body_modal
from tests.blocks.limits import OUR_TOKENS, assert_escaped, checked_message, checked_view, texts

USER_TEXT = "<!channel> <@U123> <https://evil.example|click> &<> *bold* _x_ ~y~"
RAW = ("<!channel>", "<@U123>", "<https://evil")  # never in mrkdwn as they are
ESCAPED = "&lt;!channel&gt; &lt;@U123&gt; &lt;https://evil.example|click&gt; &amp;&lt;&gt;"
# Emoji (a ZWJ family), Arabic and Hebrew (right to left), stacked combining marks, CJK.
UNICODE = "Zoë 🎉 👩\u200d👩\u200d👧 مرحبا بالعالم שלום עולם Z\u0301\u0308\u0327 工作流程 고객"
LONG = f"{UNICODE} {USER_TEXT} " * 40  # about 5,000 characters, twice that escaped
URL = "https://crm.example/accounts/001?tab=activity&from=slack"
AT = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
COUNTS = {"enrolled": 1_204, "active": 37, "completed": 1_150, "exited": 12, "failed": 5}
# The notification's own link to the record may appear in its mrkdwn.
TOKENS = re.compile(rf"{OUR_TOKENS.pattern}|<https://[^|<>]+\|Open the record>")

Payload = Mapping[str, Any]


def summary(i: int, status: str = "live", name: str | None = None) -> wf.WorkflowSummary:
    return wf.WorkflowSummary(i, name or f"Workflow {i}", status, "account", 3, COUNTS)


def many(n: int, name: str = LONG) -> list[wf.WorkflowSummary]:
    return [summary(i, ("live", "draft", "disabled")[i % 3], f"{i} {name}") for i in range(n)]


LIVE_100 = [summary(i, "live", f"{i} {UNICODE}") for i in range(100)]
REALISTIC_LIST = [
    summary(1, "live", "Trial welcome"),
    summary(2, "draft", "Renewal nudge — 90 days"),
    summary(3, "disabled", "Churn risk → CSM"),
]
USAGES = [
    wf.Usage("list", "every workflow, by status"),
    wf.Usage("open NAME", "one workflow: counts, recent activity"),
    wf.Usage("logs NAME [RECORD]", "the latest enrollments' timelines"),
]
MANY_USAGES = [wf.Usage(f"command{i} {UNICODE}", "what it does, " * 20) for i in range(100)]
DETAIL = wf.WorkflowDetail(
    id=1,
    name="Trial welcome",
    description="Greets new trials & books a call.",
    status="live",
    object_type="account",
    version=3,
    counts=COUNTS,
    recent=["2026-03-01 09:30 Globex enrolled", "2026-03-01 09:31 email sent to ada@globex"],
)
LONG_DETAIL = dataclasses.replace(
    DETAIL, id=2**63 - 1, name=LONG, description=LONG, counts={}, recent=[LONG] * 300
)
DRAFT = DraftView(
    id=7,
    kind="email",
    status="pending",
    sender="Zoë Martin <zoe@acme.example>",
    to=("ada@globex.example", "bob@globex.example"),
    cc=(),
    subject=f"Bienvenue 🎉 {USER_TEXT}",
    body=f"Hi Ada,\n\n{UNICODE}\n{USER_TEXT}",
    record_name=USER_TEXT,
    record_type="contact",
    owner=None,
    workflow_name=f"Welcome {UNICODE}",
    step_number=2,
    approval_channel=None,
)
LONG_DRAFT = dataclasses.replace(
    DRAFT,
    kind="gmail",
    to=tuple(f"person{i}@例え.jp" for i in range(300)),
    cc=tuple(f"cc{i}@example.com" for i in range(300)),
    subject=LONG,
    body=LONG * 10,
    body_text=LONG * 10,
    record_name=LONG,
    owner=USER_TEXT,
    workflow_name=LONG,
    step_number=100,
    decided_by=USER_TEXT,
    decided_at=AT,
    error=LONG,
    expires_at=AT,
)
DRAFT_STATUSES = ("pending", "failed", "unknown", "sent", "withdrawn")


def notification(
    text: str, facts: list[tuple[str, str]], owner: str | None, link: str | None
) -> Payload:
    """What engine.actions.slack posts: `text` rendered with escaped values, then the blocks."""
    shown = kit.escape(text)
    blocks = notes.notification_blocks(shown, facts, owner, link)
    return {"text": notes.notification_text(shown), "blocks": blocks}


def draft(view: DraftView) -> Payload:
    text, blocks = draft_message(view)
    return {"text": text, "blocks": blocks}


Build = Callable[[], Payload]
MESSAGES: list[Any] = [
    pytest.param(lambda: wf.help_message(USAGES), id="help"),
    pytest.param(lambda: wf.help_message(USAGES, unknown=LONG, suggestion="list"), id="help-typo"),
    pytest.param(lambda: wf.help_message(MANY_USAGES), id="help-100"),
    pytest.param(lambda: wf.list_message(REALISTIC_LIST), id="list"),
    pytest.param(lambda: wf.list_message(many(200)), id="list-200"),
    pytest.param(lambda: wf.list_message(LIVE_100), id="list-100-live"),
    pytest.param(lambda: wf.list_message([]), id="list-empty"),
    pytest.param(lambda: wf.workflow_message(DETAIL, may_manage=True), id="open"),
    pytest.param(lambda: wf.workflow_message(LONG_DETAIL, may_manage=True), id="open-long"),
    pytest.param(
        lambda: wf.workflow_message(
            dataclasses.replace(DETAIL, status="draft", description=None, recent=[]),
            may_manage=False,
        ),
        id="open-none",
    ),
    pytest.param(lambda: wf.logs_message("Trial welcome", None, DETAIL.recent), id="logs"),
    pytest.param(lambda: wf.logs_message(LONG, ("contact", LONG), [LONG] * 300), id="logs-300"),
    pytest.param(lambda: wf.logs_message(LONG, None, []), id="logs-empty"),
    pytest.param(
        lambda: wf.dry_run_message("Trial welcome", ("account", "001"), DETAIL.recent), id="dry"
    ),
    pytest.param(lambda: wf.dry_run_message(LONG, ("account", LONG), [LONG] * 300), id="dry-300"),
    pytest.param(lambda: wf.cannot_go_live("Trial welcome", ["no steps"]), id="cannot"),
    pytest.param(lambda: wf.cannot_go_live(LONG, [LONG] * 300), id="cannot-300"),
    pytest.param(lambda: wf.cannot_go_live(LONG, []), id="cannot-empty"),
    pytest.param(lambda: wf.delete_confirmation(1, "Trial welcome", "draft"), id="delete"),
    pytest.param(lambda: wf.delete_confirmation(2**63 - 1, LONG, "live"), id="delete-long"),
    pytest.param(lambda: wf.gmail_link_message(URL), id="gmail"),
    pytest.param(lambda: wf.gmail_link_message("https://g/" + "x" * 2990), id="gmail-3000"),
    pytest.param(
        lambda: notification("Globex renewed", [("Name", "Globex")], "Ana", URL), id="notify"
    ),
    pytest.param(
        lambda: notification(LONG, [(LONG, LONG)] * 30, LONG, URL + "&q=" + "x" * 2900),
        id="notify-long",
    ),
    pytest.param(lambda: notification(USER_TEXT, [], None, None), id="notify-bare"),
    *(
        pytest.param(lambda s=s: draft(dataclasses.replace(DRAFT, status=s)), id=s)
        for s in DRAFT_STATUSES
    ),
    *(
        pytest.param(lambda s=s: draft(dataclasses.replace(LONG_DRAFT, status=s)), id=f"{s}-long")
        for s in DRAFT_STATUSES
    ),
]
DRAFTS_300 = [dataclasses.replace(LONG_DRAFT, id=i) for i in range(300)]
VIEWS: list[Any] = [
    pytest.param(
        lambda: home.home_view(home.HomeData([DRAFT], 1, REALISTIC_LIST, False)), id="home"
    ),
    pytest.param(
        lambda: home.home_view(home.HomeData(DRAFTS_300, 300, many(300), False)), id="home-300"
    ),
    pytest.param(
        lambda: home.home_view(home.HomeData(DRAFTS_300[:10], 10_000, [], True)),
        id="home-drafts-only",
    ),
    pytest.param(lambda: home.home_view(home.HomeData([], 0, LIVE_100, True)), id="home-100-live"),
    pytest.param(lambda: home.home_view(home.HomeData([], 0, [], True)), id="home-empty"),
    pytest.param(
        lambda: home.workflow_modal(
            home.WorkflowDetail(REALISTIC_LIST[0], "Greets new trials.", {"segment": "Trials"})
        ),
        id="workflow-modal",
    ),
    pytest.param(
        lambda: home.workflow_modal(
            home.WorkflowDetail(summary(1, "live", LONG), LONG, {LONG: LONG, "where": [LONG]})
        ),
        id="workflow-modal-long",
    ),
    pytest.param(
        lambda: home.workflow_modal(home.WorkflowDetail(summary(1, "unknown"), None, {})),
        id="workflow-modal-none",
    ),
    pytest.param(lambda: home.loading_modal(LONG), id="loading"),
    pytest.param(lambda: home.notice_modal(LONG, kit.escape(LONG)), id="notice"),
    pytest.param(lambda: home.gmail_modal("https://g/" + "x" * 2990), id="gmail-modal"),
    pytest.param(lambda: full_body_modal(DRAFT), id="body"),
    pytest.param(lambda: full_body_modal(LONG_DRAFT), id="body-long"),
    pytest.param(lambda: edit_modal(DRAFT), id="edit"),
    pytest.param(lambda: edit_modal(LONG_DRAFT), id="edit-long"),
]


def check_shown(payload: Any, *extra_mrkdwn: str) -> None:
    """User text escaped in every mrkdwn text (and `extra_mrkdwn`), literal in plain_text."""
    shown = [*texts(payload, "mrkdwn"), *extra_mrkdwn]
    assert_escaped(shown, TOKENS)
    assert not [raw for raw in RAW for text in shown if raw in text]
    for text in texts(payload, "plain_text"):
        assert "&lt;" not in text and "&amp;" not in text, text[:200]  # never escaped twice


@pytest.mark.parametrize("build", MESSAGES)
def test_every_message_is_valid_within_limits_and_escaped(build: Build) -> None:
    message = build()
    checked_message(message)
    assert 1 <= len(message["text"]) <= kit.FALLBACK_TEXT_MAX
    check_shown(message["blocks"], message["text"])


@pytest.mark.parametrize("build", VIEWS)
def test_every_view_is_valid_within_limits_and_escaped(build: Build) -> None:
    view = build()
    checked_view(view)
    check_shown(view["blocks"])


NAMED: list[Any] = [  # each builder that shows a workflow's or a record's name `n`
    pytest.param(lambda n: wf.list_message([summary(1, "live", n)]), id="list"),
    pytest.param(
        lambda n: wf.workflow_message(dataclasses.replace(DETAIL, name=n), may_manage=True),
        id="open",
    ),
    pytest.param(lambda n: wf.logs_message(n, ("contact", n), []), id="logs"),
    pytest.param(lambda n: wf.dry_run_message(n, ("contact", n), []), id="dry"),
    pytest.param(lambda n: wf.cannot_go_live(n, [n]), id="cannot"),
    pytest.param(lambda n: wf.delete_confirmation(1, n, "live"), id="delete"),
    pytest.param(lambda n: wf.help_message(USAGES, unknown=n), id="help"),
    pytest.param(lambda n: notification("Hi", [("Name", n)], n, None), id="notify"),
    pytest.param(
        lambda n: home.home_view(home.HomeData([], 0, [summary(1, "live", n)], True)), id="home"
    ),
    pytest.param(
        lambda n: home.workflow_modal(
            home.WorkflowDetail(summary(1, "live", n), n, {"segment": n})
        ),
        id="workflow-modal",
    ),
    pytest.param(lambda n: draft(dataclasses.replace(DRAFT, record_name=n, subject=n)), id="draft"),
    pytest.param(lambda n: edit_modal(dataclasses.replace(DRAFT, record_name=n)), id="edit"),
    pytest.param(lambda n: {"text": wf.unknown_workflow(n, [n], any_exist=True)}, id="unknown"),
]


@pytest.mark.parametrize("build", NAMED)
def test_a_name_like_channel_shows_literally(build: Callable[[str], Payload]) -> None:
    payload = build("<!channel> & co")
    shown = [*texts(payload, "mrkdwn"), payload.get("text", "")]
    assert any("&lt;!channel&gt; &amp; co" in text for text in shown)
    check_shown(payload, payload.get("text", ""))


def test_plain_text_keeps_user_text_literal() -> None:
    opened = wf.workflow_message(dataclasses.replace(DETAIL, name=USER_TEXT), may_manage=True)
    assert opened["blocks"][0]["text"]["text"] == USER_TEXT  # the header
    _, blocks = draft_message(dataclasses.replace(DRAFT, record_name="<!here>"))
    confirms = [e["confirm"]["text"]["text"] for e in blocks[-1]["elements"] if "confirm" in e]
    assert any("<!here> leaves" in text for text in confirms)
    edit = edit_modal(DRAFT)
    subjects = [b["element"].get("initial_value") for b in edit["blocks"] if b["type"] == "input"]
    assert DRAFT.subject in subjects
    assert home.loading_modal("<!channel>")["title"]["text"] == "<!channel>"


def test_help_lists_what_fits_and_counts_the_rest() -> None:
    listed = wf.help_message(MANY_USAGES)["blocks"][1]["text"]["text"].split("\n")
    more = re.fullmatch(r"…and (\d+) more", listed[-1])
    assert more and len(listed) - 1 + int(more[1]) == 100


def test_a_long_name_is_cut_with_an_ellipsis_and_the_fallback_stays_short() -> None:
    message = wf.workflow_message(LONG_DETAIL, may_manage=True)
    header = message["blocks"][0]["text"]["text"]
    assert len(header) == kit.HEADER_TEXT_MAX and header.endswith(kit.ELLIPSIS)
    assert message["text"].endswith(": live, version 3")  # the name cut, not what follows
    deleting = wf.delete_confirmation(1, LONG, "live")
    assert "It is live: it stops enrolling at once." in deleting["blocks"][0]["text"]["text"]
    assert len(deleting["text"]) < 400


def test_200_workflows_fit_one_message_and_the_rest_are_counted() -> None:
    blocks = wf.list_message(many(200))["blocks"]
    assert len(blocks) == kit.MESSAGE_BLOCKS_MAX
    shown = [b for b in blocks if b.get("block_id", "").startswith("workflow:")]
    more = re.fullmatch(r"(\d+) more not shown here: .*", blocks[-1]["elements"][0]["text"])
    assert more and len(shown) + int(more[1]) == 200


def test_the_home_with_300_workflows_and_drafts_counts_the_rest() -> None:
    blocks = home.home_view(home.HomeData(DRAFTS_300, 300, many(300), False))["blocks"]
    assert len(blocks) == kit.VIEW_BLOCKS_MAX
    shown = [b for b in blocks if b.get("block_id", "").startswith("home_workflow:")]
    joined = "\n".join(texts(blocks, "mrkdwn"))
    more = re.search(r"(\d+) more workflows not shown here", joined)
    assert more and len(shown) + int(more[1]) == 300
    assert f"{300 - home.DRAFTS_SHOWN} more waiting" in joined


def test_300_problems_are_listed_as_far_as_they_fit_then_counted() -> None:
    problems = [f"step {i}: {LONG}" for i in range(300)]
    [section] = wf.cannot_go_live("Trial welcome", problems)["blocks"]
    lines = section["text"]["text"].split("\n")
    bullets = [line for line in lines if line.startswith("• ")]
    assert bullets and all(b.endswith(kit.ELLIPSIS) for b in bullets)  # each problem cut
    more = re.fullmatch(r"…and (\d+) more", lines[-1])
    assert more and len(bullets) + int(more[1]) == 300


def test_300_log_lines_show_in_five_code_blocks_and_the_rest_are_counted() -> None:
    lines = [f"line {i}: {LONG}" for i in range(300)]
    blocks = wf.logs_message("Trial welcome", None, lines)["blocks"]
    code = [b["text"]["text"] for b in blocks[1:] if b["type"] == "section"]
    assert len(code) == wf.CODE_SECTIONS_MAX
    shown = sum(len(c.split("\n")) - 2 for c in code)
    more = re.match(r"(\d+) more lines not shown here", blocks[-1]["elements"][0]["text"])
    assert more and shown + int(more[1]) == 300


def test_a_record_link_too_long_for_slack_is_left_out() -> None:
    fits = notes.notification_blocks("Hi", [], "Ana", URL)
    assert fits[-1]["elements"][-1]["text"] == f"<{URL.replace('&', '&amp;')}|Open the record>"
    long = notes.notification_blocks("Hi", [], "Ana", "https://crm.example/" + "x" * 3000)
    assert [e["text"] for e in long[-1]["elements"]] == ["Owner: Ana"]


def test_unknown_workflow_cuts_every_name_it_echoes() -> None:
    said = wf.unknown_workflow(LONG, [LONG] * 3, any_exist=True)
    assert len(said) < 2000 and said.count(kit.ELLIPSIS) == 4
    check_shown({}, said)


@pytest.mark.parametrize(
    ("lines", "limit", "expected"),
    [
        ([], 40, ""),
        (["a", "b"], 40, "a\nb"),
        (["a" * 10] * 5, 40, "aaaaaaaaaa\naaaaaaaaaa\n…and 3 more"),
        (["b" * 100, "c"], 40, "b" * 27 + "…\n…and 1 more"),
    ],
    ids=["empty", "fits", "capped", "first-cut"],
)
def test_listed_keeps_whole_lines_and_counts_the_rest(
    lines: list[str], limit: int, expected: str
) -> None:
    assert kit.listed(lines, limit) == expected
    assert len(kit.listed(lines, limit)) <= limit
