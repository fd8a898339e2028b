"""blocks.approval with realistic and extreme drafts (issue 6, item 7; RELIABILITY 14): every
message and modal is valid for slack_sdk's models and within Slack's documented limits,
buttons follow the status, and user text is escaped in mrkdwn."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from blocks.approval import (
    FINAL,
    INPUT_VALUE_MAX,
    DraftView,
    chunks,
    draft_message,
    edit_modal,
    full_body_modal,
    when,
    who,
)
from blocks.approval_ids import DraftAction, DraftBlock, DraftInput, DraftModal
from blocks.kit import escape

STATUSES = ["pending", "failed", "unknown", *sorted(FINAL), "something-new"]
AT = datetime(2026, 11, 26, 14, 3, tzinfo=UTC)

REALISTIC = DraftView(
    id=42,
    kind="html",
    status="pending",
    sender="CS Team <cs@acme.example>",
    to=("ada@globex.example",),
    cc=("boss@globex.example",),
    subject="Welcome to Acme, Globex",
    body='<p>Hi Ada,</p><p><a href="https://acme.example/start">Get started</a></p>',
    body_text="Hi Ada,\n\nGet started (https://acme.example/start)",
    record_name="Globex",
    record_type="account",
    owner="Ana Diaz",
    workflow_name="Welcome",
    step_number=1,
    approval_channel="#cs-approvals",
    expires_at=AT,
)
NASTY = "<!channel> & <https://evil.example|click> *bold* `code` <@U0EVIL>"
EXTREME = DraftView(
    id=9_223_372_036_854_775_807,  # the largest BIGINT
    kind="email",
    status="pending",
    sender=f"{'Ünïcødé Sender ' * 10}<{'s' * 60}@{'d' * 180}.example>",
    to=tuple(f"person{i}.{'x' * 40}@例え.example" for i in range(100)),
    cc=(),
    subject=("Ωmega 🎉 " + NASTY) * 30,
    body=(("Ligne <b>&amp;</b> 🧪 " + NASTY + "\n") * 600)[:40_000],
    record_name=("Ω " + NASTY)[:300] * 2,
    record_type="contact",
    owner=NASTY,
    workflow_name="W" * 200,
    step_number=100,
    approval_channel="C0123456789",
    decided_by=NASTY,
    decided_at=AT,
    error="550 " + NASTY * 100,
    sent_at=AT,
    edited=True,
    expires_at=AT,
)
EMPTY = dataclasses.replace(REALISTIC, cc=(), body="", body_text="", record_name="", owner=None)


def views() -> Iterator[DraftView]:
    for base in (REALISTIC, EXTREME, EMPTY):
        for status in STATUSES:
            yield dataclasses.replace(base, status=status)


def texts(value: Any, kinds: tuple[str, ...] = ("mrkdwn",)) -> Iterator[str]:
    if isinstance(value, dict):
        if value.get("type") in kinds and isinstance(value.get("text"), str):
            yield value["text"]
        for item in value.values():
            yield from texts(item, kinds)
    elif isinstance(value, list):
        for item in value:
            yield from texts(item, kinds)


def elements(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every interactive element: actions' elements and accessories."""
    for block in blocks:
        if block["type"] == "actions":
            yield from block["elements"]
        if "accessory" in block:
            yield block["accessory"]


def check_limits(blocks: list[dict[str, Any]], most: int) -> None:
    """Slack's documented limits (some of which slack_sdk's models do not check)."""
    assert 1 <= len(blocks) <= most
    for block in blocks:
        assert len(block.get("block_id", "")) <= 255
        kind = block["type"]
        if kind == "section":
            assert "text" in block and 1 <= len(block["text"]["text"]) <= 3000
            assert block["text"]["text"].strip()
        elif kind == "header":
            assert len(block["text"]["text"]) <= 150
        elif kind == "context":
            assert 1 <= len(block["elements"]) <= 10
            assert all(1 <= len(e["text"]) <= 3000 for e in block["elements"])
        elif kind == "actions":
            assert 1 <= len(block["elements"]) <= 25
        elif kind == "input":
            assert len(block["label"]["text"]) <= 2000
            assert len(block.get("hint", {}).get("text", "")) <= 2000
            element = block["element"]
            assert element["type"] == "plain_text_input"
            assert len(element["action_id"]) <= 255
            assert element["max_length"] <= INPUT_VALUE_MAX
            assert len(element.get("initial_value", "")) <= element["max_length"]
        else:
            assert kind == "divider", kind
    for element in elements(blocks):
        assert element["type"] == "button"
        assert len(element["text"]["text"]) <= 75
        assert len(element["value"]) <= 2000 and len(element["action_id"]) <= 255
        if "confirm" in element:
            confirm = element["confirm"]
            assert len(confirm["title"]["text"]) <= 100 and len(confirm["text"]["text"]) <= 300
            assert len(confirm["confirm"]["text"]) <= 30 and len(confirm["deny"]["text"]) <= 30


def check_escaped(blocks: list[dict[str, Any]], text: str = "") -> None:
    """No user control sequence reaches mrkdwn; only our own mentions and dates."""
    for shown in [*texts(blocks), text]:
        for token in re.findall(r"<[^>]*>", shown):
            assert re.fullmatch(r"<@U[A-Z0-9]+>|<!date\^\d+\^[^|]+\|[^>]+>", token), token
        assert "<!channel>" not in shown and "<https://evil" not in shown
        assert "<@U0EVIL>" not in shown


@pytest.mark.parametrize("view", list(views()), ids=lambda v: f"{v.id}-{v.status}")
def test_every_message_is_valid_and_within_limits(view: DraftView) -> None:
    text, blocks = draft_message(view)
    for block in blocks:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    check_limits(blocks, 50)
    check_escaped(blocks, text)
    assert 1 <= len(text) <= 3000


@pytest.mark.parametrize("view", list(views()), ids=lambda v: f"{v.id}-{v.status}")
def test_every_modal_is_valid_and_within_limits(view: DraftView) -> None:
    for modal in (full_body_modal(view), edit_modal(view)):
        View(**modal).validate_json()
        check_limits(modal["blocks"], 100)
        check_escaped(modal["blocks"])
        assert len(modal["title"]["text"]) <= 24 and len(modal["private_metadata"]) <= 3000
        assert modal["private_metadata"] == str(view.id)


def actions(view: DraftView) -> list[tuple[str, str]]:
    return [(e["action_id"], e["value"]) for e in elements(draft_message(view)[1])]


def test_buttons_follow_the_status() -> None:
    pending = actions(REALISTIC)
    assert pending == [
        (DraftAction.APPROVE, "42"),
        (DraftAction.EDIT, "42"),
        (DraftAction.DISCARD, "42"),
        (DraftAction.EXIT, "42"),
    ]
    assert actions(dataclasses.replace(REALISTIC, status="failed")) == [(DraftAction.RETRY, "42")]
    assert actions(dataclasses.replace(REALISTIC, status="unknown")) == [
        (DraftAction.MARK_SENT, "42"),
        (DraftAction.SEND_AGAIN, "42"),
    ]
    for status in FINAL:
        assert actions(dataclasses.replace(EXTREME, status=status)) == []  # not even Show all
    [approve] = [
        e for e in elements(draft_message(REALISTIC)[1]) if e["action_id"] == "draft_approve"
    ]
    assert approve["style"] == "primary"
    assert approve["confirm"]["title"]["text"] == "Send this email?"
    assert "ada@globex.example" in approve["confirm"]["text"]["text"]


def test_a_long_body_is_cut_with_show_all_and_the_modal_holds_all_of_it() -> None:
    body = "Paragraph & more.\n" * 2200  # 39,600 characters, 44,000 escaped
    view = dataclasses.replace(REALISTIC, body=body, body_text=body)
    _, blocks = draft_message(view)
    [section] = [b for b in blocks if b.get("block_id") == DraftBlock.BODY]
    assert section["text"]["text"].endswith("…") and len(section["text"]["text"]) <= 3000
    assert section["accessory"]["action_id"] == DraftAction.SHOW_ALL
    assert section["accessory"]["value"] == "42"
    modal = full_body_modal(view)
    assert modal["callback_id"] == DraftModal.BODY and "submit" not in modal
    shown = "".join(b["text"]["text"] for b in modal["blocks"][2:])
    assert shown == escape(body)  # every character, in order, none cut
    assert all(len(b["text"]["text"]) <= 3000 for b in modal["blocks"][2:])
    short = draft_message(REALISTIC)[1]
    assert all("accessory" not in b for b in short)


def test_a_body_longer_than_a_modal_says_where_the_rest_is() -> None:
    body = "x" * 400_000
    modal = full_body_modal(dataclasses.replace(REALISTIC, body=body, body_text=body))
    assert len(modal["blocks"]) == 100
    assert "`workflowbot drafts show 42`" in modal["blocks"][-1]["elements"][0]["text"]
    View(**modal).validate_json()


def test_chunks_never_cut_an_entity_and_prefer_line_breaks() -> None:
    text = escape("a" * 2998 + "&b")
    pieces = list(chunks(text, 3000))
    assert "".join(pieces) == text and pieces[0] == "a" * 2998
    lines = "line one\n" * 1000
    assert all(p.endswith("\n") for p in chunks(lines, 3000))


def test_the_outcome_says_what_happened_by_whom_and_when() -> None:
    def outcome(**changes: Any) -> str:
        view = dataclasses.replace(REALISTIC, decided_at=AT, **changes)
        return draft_message(view)[1][-1]["elements"][0]["text"]

    date = "<!date^1795701780^{date_short_pretty} {time}|2026-11-26 14:03 UTC>"
    assert when(AT) == date
    assert outcome(status="sent", decided_by="U0ANA", sent_at=AT) == (
        f":white_check_mark: Sent {date} · approved by <@U0ANA> {date}"
    )
    assert outcome(status="sent", decided_by="U0ANA", marked_sent=True) == (
        f":white_check_mark: Marked sent by <@U0ANA> {date}"
    )
    assert outcome(status="approved", decided_by="W0ENT") == (
        f":hourglass_flowing_sand: Approved by <@W0ENT> {date}: sending…"
    )
    assert outcome(status="discarded", decided_by="cli:ana") == (
        f":wastebasket: Discarded by cli:ana {date}"
    )
    assert outcome(status="expired", decided_by="expiry") == (
        f":hourglass: Expired {date}: nobody decided in time"
    )
    assert outcome(status="withdrawn", decided_by="exit") == (
        f":leftwards_arrow_with_hook: Withdrawn {date}: the enrollment exited"
    )
    assert "suppression list" in outcome(status="suppressed", decided_by="U0ANA")
    assert who("<!channel>") == "&lt;!channel&gt;" and who("U0ANA") == "<@U0ANA>"


def test_failed_and_unknown_show_the_error_escaped() -> None:
    failed = dataclasses.replace(REALISTIC, status="failed", error="554 <no> & never")
    text = "\n".join(texts(draft_message(failed)[1]))
    assert "The provider answered: 554 &lt;no&gt; &amp; never" in text
    unknown = dataclasses.replace(REALISTIC, status="unknown", error="SMTP: connection lost")
    text = "\n".join(texts(draft_message(unknown)[1]))
    assert "may have been sent" in text and "SMTP: connection lost" in text


def test_user_text_is_escaped_in_the_message() -> None:
    view = dataclasses.replace(REALISTIC, record_name="<!channel>", subject="Hi <!here>")
    text, blocks = draft_message(view)
    shown = "\n".join(texts(blocks))
    assert "*Account:* &lt;!channel&gt;" in shown and "*Subject:* Hi &lt;!here&gt;" in shown
    assert "<!here>" not in text and "&lt;!here&gt;" in text
    assert all(t.get("verbatim") is True for t in _mrkdwn_objects(blocks))


def _mrkdwn_objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn":
            yield value
        for item in value.values():
            yield from _mrkdwn_objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from _mrkdwn_objects(item)


def test_the_edit_modal_is_prefilled_and_says_what_it_cannot_hold() -> None:
    modal = edit_modal(REALISTIC)
    assert modal["callback_id"] == DraftModal.EDIT and modal["private_metadata"] == "42"
    inputs = {b["block_id"]: b for b in modal["blocks"] if b["type"] == "input"}
    assert list(inputs) == [
        DraftBlock.EDIT_TO,
        DraftBlock.EDIT_CC,
        DraftBlock.EDIT_SUBJECT,
        DraftBlock.EDIT_BODY,
    ]
    values = {
        k: (b["element"]["action_id"], b["element"].get("initial_value")) for k, b in inputs.items()
    }
    assert values == {
        DraftBlock.EDIT_TO: (DraftInput.TO, "ada@globex.example"),
        DraftBlock.EDIT_CC: (DraftInput.CC, "boss@globex.example"),
        DraftBlock.EDIT_SUBJECT: (DraftInput.SUBJECT, "Welcome to Acme, Globex"),
        DraftBlock.EDIT_BODY: (DraftInput.BODY, REALISTIC.body),  # the HTML, as stored
    }
    assert inputs[DraftBlock.EDIT_BODY]["element"]["multiline"] is True
    assert inputs[DraftBlock.EDIT_BODY]["label"]["text"] == "Body (HTML)"
    assert inputs[DraftBlock.EDIT_CC]["optional"] is True
    empty_cc = edit_modal(EMPTY)
    [cc] = [b for b in empty_cc["blocks"] if b.get("block_id") == DraftBlock.EDIT_CC]
    assert "initial_value" not in cc["element"]
    long = edit_modal(EXTREME)  # 100 recipients and a 40,000-character body
    ids = [b.get("block_id") for b in long["blocks"] if b["type"] == "input"]
    assert ids == [DraftBlock.EDIT_CC, DraftBlock.EDIT_SUBJECT]
    notes = "\n".join(texts(long["blocks"]))
    assert (
        "*Body* is 40,000 characters" in notes
        and "cannot be edited here and stays as it is" in notes
    )
    assert "*To* is " in notes and "--body-file" in notes
