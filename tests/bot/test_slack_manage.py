"""Managing workflows from Slack (the Slack issue, parts 3 and 6): `/workflow open | enable |
disable | logs | test | enroll | exit | export | pause-all | resume-all | connect gmail` and
the `/workflow list` overflow, through signed requests to the real web app, with the Slack
stand-in recording what Slack received. Each subcommand acks at once and answers after; admins
only where the issue says so, every refusal saying why; names quoted or as typed; user text
shown literally."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from blocks import workflows as workflow_blocks
from blocks.ids import ActionId, WorkflowMenu, workflow_block_id, workflow_menu_value
from bot.listeners.manage import chose
from bot.workflow_names import closest_names, match_name
from engine import fileload, runner
from engine.runtime import Runtime
from storage.db import session_scope
from storage.models import User
from storage.queries import workflows as workflow_queries
from storage.workflow_models import Workflow
from tests.bot.slack_requests import (
    CHANNEL,
    USER,
    SlackSender,
    checked_blocks,
    interaction,
    slack_web_app,
)
from tests.engine.flow import Flow
from tests.helpers import wait_until
from tests.sink import Sink
from tests.slack_peer import BOT_USER, TEAM, SlackFail, SlackPeer, slack_peer

ADMIN = USER  # in SLACK_ADMINS
STRANGER = "U0STRANGER"
FILE_ID = "F0EXPORT01"


def dumped(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def mrkdwn_texts(message: dict[str, Any]) -> list[str]:
    """Every mrkdwn text of a message (plain_text is never parsed for mentions)."""
    found = [message.get("text") or ""]

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") == "mrkdwn":
                found.append(value["text"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(message.get("blocks") or [])
    return found


def with_files(peer: SlackPeer, sink: Sink) -> None:
    """files_upload_v2 on the stand-in: an upload URL on `sink` (which keeps the bytes), then
    the completion, refused where the bot is not a member, as Slack does."""

    def upload_url(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
        return {"upload_url": f"{sink.url}/upload/{FILE_ID}", "file_id": FILE_ID}

    def complete(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
        channel = peer.channels.get(str(params.get("channel_id") or ""))
        if channel is None:
            raise SlackFail("channel_not_found")
        if BOT_USER not in channel.members:
            raise SlackFail("not_in_channel")
        files = json.loads(params["files"])
        return {"files": [{"id": f["id"], "title": f["title"]} for f in files]}

    peer.on("files.getUploadURLExternal", upload_url)
    peer.on("files.completeUploadExternal", complete)


@pytest.fixture
def peer(sink: Sink) -> Iterator[SlackPeer]:
    with slack_peer() as running:
        with_files(running, sink)
        yield running


@pytest.fixture
def slack(rt: Runtime, peer: SlackPeer) -> Iterator[SlackSender]:
    rt.settings = rt.settings.model_copy(update={"slack_admins": [ADMIN]})
    with slack_web_app(rt, peer) as sender:
        yield sender


def seed(rt: Runtime) -> Flow:
    """Live "Trial welcome" (acme enrolled), draft "Trial", "Renewal nudge" and one named
    like a mention, disabled "Churn alert"; globex is in no workflow."""
    flow = Flow(rt)
    flow.segment("Trial accounts", 'plan = "trial"')
    step = {"action": "slack", "channel": "#alerts", "text": "New trial"}
    trigger = {"segment": "Trial accounts"}
    flow.workflow(
        name="Trial welcome", description="Greets <!here> trials", trigger=trigger, steps=[step]
    )
    flow.workflow(status="draft", name="Trial", trigger=trigger, steps=[step])
    flow.workflow(status="draft", name="Renewal nudge", trigger=trigger, steps=[step])
    flow.workflow(status="draft", name="<!channel> & co", trigger=trigger, steps=[step])
    flow.workflow(status="disabled", name="Churn alert", trigger=trigger, steps=[step])
    flow.group("acme", name="Acme", plan="trial")
    flow.group("globex", name="Globex", plan="enterprise")
    flow.evaluate()
    assert flow.enrollments() == [("acme", "active")]
    return flow


def answer(slack: SlackSender, text: str, user: str = ADMIN, **fields: Any) -> dict[str, Any]:
    """`/workflow TEXT` acked empty at once; the ephemeral message it answered after."""
    before = len(slack.responded())
    acked = slack.command(text, user_id=user, **fields)
    assert acked.status_code == 200 and acked.content == b"", acked.text
    wait_until(lambda: len(slack.responded()) > before)
    message = slack.responded()[before]
    assert message["response_type"] == "ephemeral"
    if message.get("blocks"):
        checked_blocks(message["blocks"])
    return message


def workflow(rt: Runtime, name: str) -> Workflow:
    with session_scope(rt.db) as s:
        found = workflow_queries.by_name(s, name=name, deleted=True)
        assert found is not None
        s.expunge(found)
        return found


def code(message: dict[str, Any]) -> str:
    return "\n".join(t for t in mrkdwn_texts(message) if t.startswith("```"))


# -- open, and how names are read ------------------------------------------------------------------
def test_open_shows_the_workflow_its_counts_and_latest_log_lines(
    slack: SlackSender, rt: Runtime
) -> None:
    seed(rt)
    message = answer(slack, "open Trial welcome")
    blocks = message["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Trial welcome", "emoji": True},
    }
    assert blocks[1]["text"]["text"] == "Greets &lt;!here&gt; trials"
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert fields[:3] == ["*Status*\nlive", "*Follows*\naccounts", "*Version*\nv1"]
    assert "*Enrolled*\n1" in fields and "*Active*\n1" in fields
    assert "account acme" in code(message) and "enrolled" in code(message)
    [actions] = [b for b in blocks if b["type"] == "actions"]
    [button] = actions["elements"]
    assert button["action_id"] == ActionId.WORKFLOW_DISABLE
    assert button["value"] == str(workflow(rt, "Trial welcome").id)
    assert "<!here>" not in dumped(message)

    seen_by_anyone = answer(slack, "open Trial welcome", user=STRANGER)
    assert not [b for b in seen_by_anyone["blocks"] if b["type"] == "actions"]
    assert seen_by_anyone["blocks"][0] == blocks[0]


@pytest.mark.parametrize(
    "typed",
    [
        "Trial welcome",
        "trial WELCOME",
        '"Trial welcome"',
        "'trial welcome'",
        "\u201cTrial welcome\u201d",
    ],
)
def test_a_name_with_spaces_works_quoted_or_as_typed(
    typed: str, slack: SlackSender, rt: Runtime
) -> None:
    seed(rt)
    message = answer(slack, f"open {typed}")
    assert message["blocks"][0]["text"]["text"] == "Trial welcome"


@pytest.mark.parametrize("typed", ["<!channel> & co", "&lt;!channel&gt; &amp; co"])
def test_a_name_like_a_mention_is_found_and_shown_literally(
    typed: str, slack: SlackSender, rt: Runtime
) -> None:
    """Slack sends `&`, `<`, `>` as entities; either way the name is found."""
    seed(rt)
    message = answer(slack, f"open {typed}")
    assert message["blocks"][0]["text"]["text"] == "<!channel> & co"  # plain_text: literal
    assert all("<!channel>" not in text for text in mrkdwn_texts(message))
    assert "&lt;!channel&gt; &amp; co" in message["text"]


def test_an_unquoted_name_is_the_longest_existing_one_the_text_starts_with(
    slack: SlackSender, rt: Runtime
) -> None:
    seed(rt)
    longest = answer(slack, "logs trial welcome acme")
    assert longest["blocks"][0]["text"]["text"].startswith("*Trial welcome*")
    assert "#1 account acme · active" in code(longest)
    shorter = answer(slack, "logs Trial acme")
    assert shorter["blocks"][0]["text"]["text"].startswith("*Trial*: ")
    assert shorter["blocks"][1]["elements"][0]["text"] == "No enrollments yet."
    assert match_name('"Trial" acme', ["Trial", "Trial welcome"], rest=True) == ("Trial", "acme")
    assert match_name("Trial welcomes", ["Trial", "Trial welcome"], rest=False) is None
    assert match_name("Trial welcomes", ["Trial", "Trial welcome"], rest=True) == (
        "Trial",
        "welcomes",
    )


def test_an_unknown_name_answers_with_the_closest_existing_names(
    slack: SlackSender, rt: Runtime
) -> None:
    seed(rt)
    typo = answer(slack, "open Trial welcom")
    assert typo["text"] == (
        ":thinking_face: No workflow is named “Trial welcom”. Did you mean *Trial welcome*? "
        "`/workflow list` shows them all."
    )
    with_record = answer(slack, "logs Trail welcome acme")
    assert "Did you mean *Trial welcome*" in with_record["text"]
    nothing = answer(slack, "open <!here> zzzz")
    assert nothing["text"] == (
        ":thinking_face: No workflow is named “&lt;!here&gt; zzzz”. `/workflow list` shows "
        "them all."
    )
    assert closest_names("renewal", ["Renewal nudge", "Churn alert"]) == ["Renewal nudge"]


def test_a_subcommand_without_its_name_answers_its_usage_in_the_ack(
    slack: SlackSender, peer: SlackPeer
) -> None:
    for text, usage in [
        ("open", "open NAME"),
        ("enable  ", "enable NAME"),
        ("test", "test NAME record"),
        ("connect outlook", "connect gmail"),
    ]:
        acked = slack.command(text).json()
        assert acked == {"response_type": "ephemeral", "text": f"Usage: `/workflow {usage}`"}
    assert peer.calls == []


def test_help_lists_every_management_subcommand(slack: SlackSender) -> None:
    body = dumped(slack.command("help").json()["blocks"])
    for usage in (
        "open NAME", "enable NAME", "disable NAME [--exit-all]", "logs NAME [record]",
        "test NAME record", "enroll NAME record", "exit NAME record", "export NAME",
        "pause-all", "resume-all", "connect gmail",
    ):  # fmt: skip
        assert f"`/workflow {usage}`" in body


# -- enable / disable ------------------------------------------------------------------------------
def test_enable_is_for_admins_and_says_why_to_anyone_else(slack: SlackSender, rt: Runtime) -> None:
    seed(rt)
    refused = answer(slack, "enable Renewal nudge", user=STRANGER)
    assert refused["text"] == (
        ":no_entry: Only this workflow's admins and the Slack admins (SLACK_ADMINS) may do this."
    )
    assert refused["replace_original"] is False
    assert workflow(rt, "Renewal nudge").status == "draft"

    enabled = answer(slack, "enable renewal nudge")
    assert enabled["text"] == (
        ":large_green_circle: *Renewal nudge* is live: signals from now on enroll records."
    )
    assert workflow(rt, "Renewal nudge").status == "live"
    again = answer(slack, "enable Renewal nudge")
    assert again["text"] == "*Renewal nudge* is already live."


def test_enable_checks_the_current_version_as_the_cli_does(slack: SlackSender, rt: Runtime) -> None:
    flow = Flow(rt)
    flow.segment("Trial accounts", 'plan = "trial"')
    flow.workflow(
        status="draft",
        name="Hook <b>",
        trigger={"segment": "Trial accounts"},
        steps=[{"action": "webhook", "url": "http://127.0.0.1:9/hook"}],
    )
    refused = answer(slack, "enable Hook <b>")
    [section] = refused["blocks"]
    assert section["text"]["text"] == (
        ":no_entry: *Hook &lt;b&gt;* cannot go live:\n• steps[0].url: https is required"
    )
    assert workflow(rt, "Hook <b>").status == "draft"


def test_disable_with_exit_all_ends_the_active_enrollments(slack: SlackSender, rt: Runtime) -> None:
    flow = seed(rt)
    refused = answer(slack, "disable Trial welcome --exit-all", user=STRANGER)
    assert refused["text"].startswith(":no_entry: Only this workflow's admins")
    assert flow.enrollments() == [("acme", "active")]

    done = answer(slack, "disable Trial welcome --exit-all")
    assert done["text"] == (
        ":double_vertical_bar: *Trial welcome* is disabled: no new enrollments; pending steps "
        "wait until it is enabled again. 1 active enrollments exited."
    )
    assert workflow(rt, "Trial welcome").status == "disabled"
    assert flow.enrollments() == [("acme", "exited")]


def test_a_workflows_own_admins_may_change_it(slack: SlackSender, rt: Runtime) -> None:
    flow = Flow(rt)
    flow.segment("Trial accounts", 'plan = "trial"')
    flow.workflow(
        status="draft",
        name="Owned",
        admins=[STRANGER],
        trigger={"segment": "Trial accounts"},
        steps=[{"action": "slack", "channel": "#alerts", "text": "hi"}],
    )
    assert "is live" in answer(slack, "enable Owned", user=STRANGER)["text"]


# -- logs, test, enroll, exit ----------------------------------------------------------------------
def test_logs_of_a_record_by_kind_or_bare_id_and_an_unknown_record(
    slack: SlackSender, rt: Runtime
) -> None:
    seed(rt)
    for record in ("account:acme", "acme", "ACCOUNT:acme"):
        message = answer(slack, f'logs "Trial welcome" {record}')
        assert message["blocks"][0]["text"]["text"] == (
            "*Trial welcome*: the latest enrollments of account “acme”"
        )
        assert code(message).startswith("```\n#1 account acme · active · version 1\n  ")
    unknown = answer(slack, "logs Trial welcome <!here>")
    assert unknown["text"] == ":thinking_face: No account or contact has the id “&lt;!here&gt;”."
    contact = answer(slack, "logs Trial welcome contact:nobody")
    assert contact["text"] == ':no_entry: no contact has the id "nobody"'


def test_long_logs_stay_within_slacks_limits() -> None:
    lines = [f"line {n} <!channel> ```" + "x" * 900 for n in range(400)]
    message = workflow_blocks.logs_message("T", None, lines)
    blocks = checked_blocks(message["blocks"])
    sections = [b for b in message["blocks"] if b["type"] == "section"][1:]
    assert len(sections) == workflow_blocks.CODE_SECTIONS_MAX
    assert all(len(s["text"]["text"]) <= 3000 for s in sections)
    assert all(s["text"]["text"].count("```") == 2 for s in sections)
    assert "more lines not shown here" in message["blocks"][-1]["elements"][0]["text"]
    assert "<!channel>" not in dumped(message) and len(blocks) == 7


def test_every_builder_stays_valid_with_extreme_data() -> None:
    name = ("Ünïcödé 🚀 <!here> & `x` " * 12)[:200]
    detail = workflow_blocks.WorkflowDetail(
        id=2**40,
        name=name,
        description="<!channel> " * 1000,
        status="live",
        object_type="contact",
        version=10**6,
        counts={"enrolled": 10**12, "active": 10**9},
        recent=[f"2025-01-01 00:00  contact {name}  " + "y" * 600 for _ in range(10)],
    )
    messages = [
        workflow_blocks.workflow_message(detail, may_manage=True),
        workflow_blocks.workflow_message(
            workflow_blocks.WorkflowDetail(1, "x", None, "draft", "account", 1, {}, []),
            may_manage=False,
        ),
        workflow_blocks.cannot_go_live(name, [f"steps[{n}].url: <{name}>" for n in range(300)]),
        workflow_blocks.delete_confirmation(2**40, name, "live"),
        workflow_blocks.gmail_link_message("https://accounts.google.com/?" + "a=b&" * 600),
        workflow_blocks.logs_message(name, ("contact", name), []),
        workflow_blocks.dry_run_message(name, ("contact", name), [name] * 3),
    ]
    for message in messages:
        checked_blocks(message["blocks"])
        assert all("<!here>" not in t and "<!channel>" not in t for t in mrkdwn_texts(message))
    assert messages[0]["blocks"][-2]["elements"][0]["action_id"] == ActionId.WORKFLOW_DISABLE
    said = workflow_blocks.unknown_workflow("x" * 5000 + "<!here>", [name], any_exist=True)
    assert len(said) < 1000 and "<!here>" not in said


def test_test_shows_the_dry_run(slack: SlackSender, rt: Runtime) -> None:
    seed(rt)
    message = answer(slack, "test Trial welcome globex", user=STRANGER)  # anyone may
    assert message["blocks"][0]["text"]["text"] == (
        "*Trial welcome* for account “globex”: a dry run"
    )
    shown = code(message)
    assert 'workflow "Trial welcome" (version 1, live) for account "globex"' in shown
    assert "trigger: does not match now" in shown
    assert "step 1 (slack, at once): would run" in shown
    missing = answer(slack, "test Trial welcome")
    assert missing["text"].startswith("Which record? `/workflow test NAME record`")


def test_enroll_and_exit_are_for_admins(slack: SlackSender, rt: Runtime) -> None:
    flow = seed(rt)
    refused = answer(slack, "enroll Trial welcome globex", user=STRANGER)
    assert refused["text"].startswith(":no_entry: Only this workflow's admins")
    enrolled = answer(slack, "enroll Trial welcome globex")
    assert enrolled["text"].startswith(
        ":inbox_tray: account “globex” is enrolled in *Trial welcome* (enrollment #"
    )
    assert sorted(flow.enrollments()) == [("acme", "active"), ("globex", "active")]
    twice = answer(slack, "enroll Trial welcome globex")
    assert twice["text"].startswith(':no_entry: account "globex" was not enrolled')

    assert answer(slack, "exit Trial welcome globex", user=STRANGER)["text"].startswith(
        ":no_entry: Only"
    )
    left = answer(slack, "exit Trial welcome account:globex")
    assert left["text"] == (
        ":outbox_tray: account “globex” left *Trial welcome*; its pending steps are cancelled."
    )
    gone = answer(slack, "exit Trial welcome globex")
    assert gone["text"] == "account “globex” has no active enrollment in *Trial welcome*."
    not_live = answer(slack, "enroll Renewal nudge globex")
    assert not_live["text"] == ':no_entry: "Renewal nudge" is draft; enable it first'


# -- export ----------------------------------------------------------------------------------------
def test_export_uploads_the_workflow_file_where_it_was_asked(
    slack: SlackSender, rt: Runtime, peer: SlackPeer, sink: Sink
) -> None:
    seed(rt)
    channel = peer.add_channel("cs-team")
    message = answer(slack, "export <!channel> & co", user=STRANGER, channel_id=channel)
    assert message["text"] == ":page_facing_up: `channel-co.yml` is in this conversation."
    [asked] = peer.calls_to("files.getUploadURLExternal")
    assert asked.params["filename"] == "channel-co.yml"
    [uploaded] = sink.received
    data = fileload.load_text(uploaded.body.decode())
    assert data["version"] == 1
    [document] = data["workflows"]
    assert document["name"] == "<!channel> & co" and document["status"] == "draft"
    assert document["steps"] == [{"action": "slack", "channel": "#alerts", "text": "New trial"}]
    [done] = peer.calls_to("files.completeUploadExternal")
    assert done.params["channel_id"] == channel
    assert done.params["initial_comment"].startswith("*&lt;!channel&gt; &amp; co* as a workflow")


def test_export_where_the_bot_may_not_post_goes_to_a_direct_message(
    slack: SlackSender, rt: Runtime, peer: SlackPeer, sink: Sink
) -> None:
    seed(rt)
    peer.users[ADMIN] = {"id": ADMIN, "name": "ana", "profile": {}}
    elsewhere = peer.add_channel("private-ish", member=False)
    message = answer(slack, "export Trial welcome", channel_id=elsewhere)
    assert "direct messages" in message["text"]
    tried, done = peer.calls_to("files.completeUploadExternal")
    assert tried.params["channel_id"] == elsewhere
    assert done.params["channel_id"] == f"D{ADMIN[1:]}"
    assert len(sink.received) == 2


# -- pause-all, resume-all, connect gmail ---------------------------------------------------------
def test_pause_all_and_resume_all_are_for_slack_admins(slack: SlackSender, rt: Runtime) -> None:
    flow = Flow(rt)
    flow.segment("Trial accounts", 'plan = "trial"')
    flow.workflow(
        name="Owned",
        admins=[STRANGER],  # a workflow's admin is not a Slack admin
        trigger={"segment": "Trial accounts"},
        steps=[{"action": "slack", "channel": "#alerts", "text": "hi"}],
    )
    refused = answer(slack, "pause-all", user=STRANGER)
    assert refused["text"] == ":no_entry: Only Slack admins (SLACK_ADMINS) may do this."
    assert answer(slack, "pause-all")["text"].startswith(":octagonal_sign: Every send is paused")
    with session_scope(rt.db) as s:
        assert runner.paused(s)
    assert answer(slack, "pause-all")["text"] == "Sends were already paused."
    assert answer(slack, "resume-all", user=STRANGER)["text"].startswith(":no_entry: Only Slack")
    resumed = answer(slack, "resume-all")
    assert resumed["text"] == ":arrow_forward: Sends resumed; 0 waiting steps scheduled."
    with session_scope(rt.db) as s:
        assert not runner.paused(s)


def test_connect_gmail_says_a_missing_setting_then_gives_the_users_own_link(
    slack: SlackSender, rt: Runtime
) -> None:
    missing = answer(slack, "connect gmail", user=STRANGER)
    assert missing["text"] == (
        ":no_entry: Gmail cannot be connected yet: SECRET_KEY is not set: it signs the link "
        "and encrypts the tokens"
    )
    rt.settings = rt.settings.model_copy(
        update={
            "secret_key": ["a test secret key"],
            "google_client_id": "client-123.apps.googleusercontent.com",
            "public_url": "https://bot.example.com",
        }
    )
    with slack_web_app(rt, slack.peer) as configured:
        message = answer(configured, "connect Gmail", user=STRANGER)
    [section] = message["blocks"]
    button = section["accessory"]
    assert button["action_id"] == ActionId.GMAIL_LINK
    assert button["url"].startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    assert "client_id=client-123.apps.googleusercontent.com" in button["url"]
    with session_scope(rt.db) as s:
        assert s.scalars(select(User.slack_id)).all() == [STRANGER]


# -- the list's overflow menu, the open message's buttons, Delete's confirmation ------------------
def click(
    slack: SlackSender,
    action: dict[str, Any],
    user: str = ADMIN,
    channel: str = CHANNEL,
) -> dict[str, Any]:
    """A click in an ephemeral message; what the listener answered after its empty ack."""
    before = len(slack.responded())
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": user},
        "api_app_id": "A0WFB0001",
        "token": "legacy-verification-token",
        "trigger_id": "1.2.3",
        "container": {"type": "message", "is_ephemeral": True, "channel_id": channel},
        "channel": {"id": channel},
        "response_url": slack.response_url(),
        "actions": [{**action, "action_ts": "1700000001.000200"}],
    }
    acked = slack.send(interaction(payload))
    assert acked.status_code == 200 and acked.content == b""
    wait_until(lambda: len(slack.responded()) > before)
    message = slack.responded()[before]
    if message.get("blocks"):
        checked_blocks(message["blocks"])
    return message


def hold(release: threading.Event) -> None:
    """Keep a call to the stand-in waiting until the test releases it (at most 10 s)."""
    release.wait(10)


def menu(choice: WorkflowMenu, workflow_id: int) -> dict[str, Any]:
    return {
        "type": "static_select",
        "action_id": str(ActionId.WORKFLOW_MENU),
        "block_id": workflow_block_id(workflow_id),
        "selected_option": {
            "text": {"type": "plain_text", "text": choice.title()},
            "value": workflow_menu_value(choice, workflow_id),
        },
    }


def button(action_id: ActionId, workflow_id: int) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": str(action_id),
        "block_id": "workflow_actions",
        "value": str(workflow_id),
        "text": {"type": "plain_text", "text": "x"},
    }


def test_the_menu_opens_enables_and_exports(
    slack: SlackSender, rt: Runtime, peer: SlackPeer, sink: Sink
) -> None:
    seed(rt)
    nudge = workflow(rt, "Renewal nudge").id
    opened = click(slack, menu(WorkflowMenu.OPEN, nudge), user=STRANGER)
    assert opened["blocks"][0]["text"]["text"] == "Renewal nudge"
    assert opened["replace_original"] is False

    refused = click(slack, menu(WorkflowMenu.ENABLE, nudge), user=STRANGER)
    assert refused["text"].startswith(":no_entry: Only this workflow's admins")
    enabled = click(slack, menu(WorkflowMenu.ENABLE, nudge))
    assert "*Renewal nudge* is live" in enabled["text"]
    disabled = click(slack, menu(WorkflowMenu.DISABLE, nudge))
    assert "*Renewal nudge* is disabled" in disabled["text"]

    channel = peer.add_channel("cs-team")
    exported = click(slack, menu(WorkflowMenu.EXPORT, nudge), user=STRANGER, channel=channel)
    assert exported["text"] == ":page_facing_up: `Renewal-nudge.yml` is in this conversation."
    assert b"name: Renewal nudge" in sink.received[0].body


def test_the_open_messages_buttons_enable_and_disable(slack: SlackSender, rt: Runtime) -> None:
    seed(rt)
    nudge = workflow(rt, "Renewal nudge").id
    message = answer(slack, "open Renewal nudge")
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    assert actions["elements"][0]["action_id"] == ActionId.WORKFLOW_ENABLE
    assert "is live" in click(slack, button(ActionId.WORKFLOW_ENABLE, nudge))["text"]
    refused = click(slack, button(ActionId.WORKFLOW_DISABLE, nudge), user=STRANGER)
    assert refused["text"].startswith(":no_entry: Only")
    assert "is disabled" in click(slack, button(ActionId.WORKFLOW_DISABLE, nudge))["text"]


def test_delete_asks_first_and_only_admins_may(slack: SlackSender, rt: Runtime) -> None:
    seed(rt)
    odd = workflow(rt, "<!channel> & co").id
    refused = click(slack, menu(WorkflowMenu.DELETE, odd), user=STRANGER)
    assert refused["text"].startswith(":no_entry: Only") and "blocks" not in refused

    asked = click(slack, menu(WorkflowMenu.DELETE, odd))
    section, actions = asked["blocks"]
    assert section["text"]["text"].startswith(":wastebasket: Delete *&lt;!channel&gt; &amp; co*?")
    delete, cancel = actions["elements"]
    assert (delete["action_id"], delete["style"], delete["value"]) == (
        ActionId.WORKFLOW_DELETE, "danger", str(odd)
    )  # fmt: skip
    assert workflow(rt, "<!channel> & co").deleted_at is None  # nothing until confirmed

    assert click(slack, cancel)["delete_original"] is True
    assert workflow(rt, "<!channel> & co").deleted_at is None
    assert click(slack, delete, user=STRANGER)["text"].startswith(":no_entry: Only")
    done = click(slack, delete)
    assert done["replace_original"] is True
    assert (
        done["text"] == ":wastebasket: *&lt;!channel&gt; &amp; co* is deleted; its history stays."
    )
    assert workflow(rt, "<!channel> & co").deleted_at is not None
    again = click(slack, delete)
    assert again["text"] == "That workflow no longer exists: `/workflow list` shows those that do."


def test_edit_in_the_menu_is_left_to_the_wizard() -> None:
    body = {"actions": [{"selected_option": {"value": workflow_menu_value(WorkflowMenu.EDIT, 4)}}]}
    assert chose(WorkflowMenu.EDIT)(body)
    assert not chose(WorkflowMenu.OPEN, WorkflowMenu.DELETE)(body)
    assert not chose(WorkflowMenu.EDIT)({"actions": [{"value": "4"}]})


# -- acks (RELIABILITY 10) -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    ["open Trial welcome", "export Trial welcome", "disable Trial welcome", "pause-all"],
)
def test_each_subcommand_acks_within_3_s_while_slack_is_slow_and_answers_after(
    text: str, slack: SlackSender, peer: SlackPeer, rt: Runtime
) -> None:
    """Every call to the stand-in is held until the test lets it go: a call made before the
    ack would hold the ack past 3 s."""
    seed(rt)
    channel = peer.add_channel("cs-team")
    release = threading.Event()
    peer.on_call = lambda call: hold(release)
    try:
        started = time.monotonic()
        acked = slack.command(text, channel_id=channel)
        assert time.monotonic() - started < 3
        assert acked.status_code == 200 and acked.content == b""
        wait_until(lambda: bool(peer.calls))  # the answer (or the upload) starts after the ack
    finally:
        release.set()
    wait_until(lambda: bool(slack.responded()))
    assert slack.responded()[0]["response_type"] == "ephemeral"


def test_a_menu_click_acks_within_3_s_while_slack_is_slow(
    slack: SlackSender, peer: SlackPeer, rt: Runtime
) -> None:
    seed(rt)
    release = threading.Event()
    peer.on_call = lambda call: hold(release)
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": ADMIN},
        "api_app_id": "A0WFB0001",
        "container": {"type": "message", "is_ephemeral": True},
        "channel": {"id": CHANNEL},
        "response_url": slack.response_url(),
        "actions": [menu(WorkflowMenu.OPEN, workflow(rt, "Trial welcome").id)],
    }
    try:
        started = time.monotonic()
        acked = slack.send(interaction(payload))
        assert time.monotonic() - started < 3
        assert acked.status_code == 200 and acked.content == b""
    finally:
        release.set()
    wait_until(lambda: bool(slack.responded()))
