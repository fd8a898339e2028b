"""docs/slack-messages.md is what tests/bot/slack_examples.py generates from the builders, for
every `/workflow` subcommand; each example is valid Block Kit within Slack's limits; and the
answers the listeners write inline, which the generator repeats, are word for word what the
bot answers through the real app (signed requests, the Slack stand-in recording)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from blocks import kit
from blocks import workflows as wf
from bot import forms
from bot.listeners import commands
from engine.runtime import Runtime
from storage.db import session_scope
from storage.workflow_models import Enrollment
from tests.blocks.limits import assert_escaped, checked_message, checked_view, texts
from tests.bot import slack_examples as examples
from tests.bot.slack_requests import SlackSender, slack_web_app
from tests.bot.test_slack_manage import ADMIN, answer, with_files
from tests.engine.flow import Flow
from tests.sink import Sink
from tests.slack_peer import slack_peer

DOC = Path(__file__).resolve().parents[2] / "docs" / "slack-messages.md"
REFRESH = "UPDATE_DOCS=1 .venv/bin/pytest tests/bot/test_slack_examples.py"
SHOWN = [(e.heading, s) for e in examples.examples() for s in e.shown]


def test_the_doc_is_what_the_code_sends() -> None:
    text = examples.markdown()
    if os.environ.get("UPDATE_DOCS"):
        DOC.parent.mkdir(exist_ok=True)
        DOC.write_text(text, encoding="utf-8")
    written = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    assert written == text, f"docs/slack-messages.md is out of date: `{REFRESH}` rewrites it"


def test_every_subcommand_has_an_example() -> None:
    covered = {e.subcommand for e in examples.examples()}
    assert set(commands.table()) - covered == set()


def test_the_sample_workflow_is_one_the_bot_accepts() -> None:
    assert forms.problems({**examples.TRIAL_WELCOME, "status": "live"}, None) == []


@pytest.mark.parametrize(
    "shown", [s for _, s in SHOWN], ids=[f"{h.strip('`')} {i}" for i, (h, _) in enumerate(SHOWN)]
)
def test_each_example_is_valid_for_slack(shown: examples.Shown) -> None:
    payload = shown.payload
    if shown.kind == "message":
        checked_message(payload)
    elif shown.kind == "view":
        checked_view(payload)
    elif shown.kind == "text":
        assert list(payload) == ["text"]
        assert 1 <= len(payload["text"]) <= kit.MESSAGE_TEXT_MAX
        assert_escaped([payload["text"]])
    else:
        assert list(payload) == ["filename", "title", "initial_comment"]
    assert_escaped(texts(payload, "mrkdwn"))
    assert json.loads(examples.compact_json(payload)) == payload


# -- the answers written inline, against the bot's own ---------------------------------------------
@pytest.fixture
def slack(rt: Runtime, sink: Sink) -> Iterator[SlackSender]:
    rt.settings = rt.settings.model_copy(update={"slack_admins": [ADMIN]})
    with slack_peer() as peer:
        with_files(peer, sink)
        with slack_web_app(rt, peer) as sender:
            yield sender


def newest_enrollment(rt: Runtime) -> int:
    with session_scope(rt.db) as s:
        found = s.scalar(select(func.max(Enrollment.id)))
    assert found is not None
    return found


def test_the_plain_answers_are_the_bots_own(slack: SlackSender, rt: Runtime) -> None:
    flow = Flow(rt)
    flow.segment("Trial accounts", 'plan = "trial"')
    step = {"action": "slack", "channel": "#cs-team", "text": "Check in", "delay": "3d"}
    trigger = {"segment": "Trial accounts"}
    flow.workflow(status="draft", name="Trial welcome", trigger=trigger, steps=[step])
    flow.group("globex", name="Globex", plan="enterprise")
    flow.group("hooli", name="Hooli", plan="enterprise")
    flow.evaluate()
    globex = ("account", "globex")

    assert answer(slack, "enable Trial welcome")["text"] == wf.status_changed_text(
        "Trial welcome", "live"
    )
    enrolled = answer(slack, "enroll Trial welcome globex")["text"]
    assert enrolled == wf.enrolled_text(globex, "Trial welcome", newest_enrollment(rt))
    assert answer(slack, "exit Trial welcome globex")["text"] == wf.exited_text(
        globex, "Trial welcome", left=True
    )
    assert answer(slack, "exit Trial welcome globex")["text"] == wf.exited_text(
        globex, "Trial welcome", left=False
    )
    answer(slack, "enroll Trial welcome hooli")
    assert answer(slack, "disable Trial welcome --exit-all")["text"] == wf.status_changed_text(
        "Trial welcome", "disabled", exited=1
    )
    assert sorted(flow.enrollments()) == [("globex", "exited"), ("hooli", "exited")]

    channel = slack.peer.add_channel("cs-team")
    exported = answer(slack, "export Trial welcome", channel_id=channel)["text"]
    upload = examples.export_upload("Trial welcome", "Trial-welcome.yml")
    assert exported == wf.exported_text(upload["filename"])
    [asked] = slack.peer.calls_to("files.getUploadURLExternal")
    [done] = slack.peer.calls_to("files.completeUploadExternal")
    [file] = json.loads(done.params["files"])
    sent = {
        "filename": asked.params["filename"],
        "title": file["title"],
        "initial_comment": done.params["initial_comment"],
    }
    assert sent == upload

    assert answer(slack, "pause-all")["text"] == wf.paused_text(True)
    assert answer(slack, "resume-all")["text"] == wf.resumed_text(0)
