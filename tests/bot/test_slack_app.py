"""The Slack app over HTTP: signed requests to the real web app on 127.0.0.1, its Web API
calls and response_url answers going to the Slack stand-in. Signatures first (RELIABILITY 9),
acks within 3 s with no call before them (10), one effect per event id (11), user text
escaped (14), `/workflow help` and `/workflow list`, and errors as ephemeral messages."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from slack_bolt import Ack
from sqlalchemy import Engine, select
from starlette.applications import Starlette

from blocks import workflows as workflow_blocks
from blocks.ids import COMMAND, ActionId, WorkflowMenu, parse_workflow_menu_value
from bot import slack_web
from bot.app import create_app
from bot.errors import UserError
from engine.runtime import Runtime
from storage.action_models import SlackEvent
from storage.db import make_engine, session_scope
from storage.queries import slack_events, slack_forms
from tests.bot.slack_requests import (
    SIGNING_SECRET,
    USER,
    SlackRequest,
    SlackSender,
    checked_blocks,
    event_callback,
    interaction,
    signature,
    signed_headers,
    slack_web_app,
)
from tests.conftest import REPO, LiveServer
from tests.engine.flow import Flow
from tests.helpers import all_rows, count, serve, wait_until
from tests.slack_peer import TEAM, SlackPeer, slack_peer

ERROR_ID = re.compile(r"error `([0-9a-f]{8})`")


def dumped(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with slack_peer() as running:
        yield running


@pytest.fixture
def slack(rt: Runtime, peer: SlackPeer) -> Iterator[SlackSender]:
    with slack_web_app(rt, peer) as sender:
        yield sender


def reaction(event_id: str) -> SlackRequest:
    """An Events API delivery the app has no listener for: Bolt answers it 404 ("unhandled
    request"), so a 404 shows the delivery reached the app and a bare 200 that it did not."""
    event = {
        "type": "reaction_added",
        "user": USER,
        "reaction": "eyes",
        "item": {"type": "message", "channel": "C0CS00001", "ts": "1700000000.000100"},
        "event_ts": "1700000001.000200",
    }
    return event_callback(event, event_id=event_id)


def reached_the_app(response: httpx.Response) -> bool:
    return response.status_code == 404 and response.json() == {"error": "unhandled request"}


def seed(rt: Runtime) -> None:
    """Four workflows (live with one enrollment, two drafts, one disabled), one of them
    named like a mention."""
    flow = Flow(rt)
    flow.segment("Trial accounts", 'plan = "trial"')
    step = {"action": "slack", "channel": "#alerts", "text": "New trial"}
    trigger = {"segment": "Trial accounts"}
    flow.workflow(name="Trial welcome", trigger=trigger, steps=[step])
    flow.workflow(status="draft", name="Renewal nudge", trigger=trigger, steps=[step])
    flow.workflow(status="draft", name="<!channel> & co", trigger=trigger, steps=[step])
    flow.workflow(status="disabled", name="Churn alert", trigger=trigger, steps=[step])
    flow.group("acme", name="Acme", plan="trial")
    flow.evaluate()
    assert flow.enrollments() == [("acme", "active")]


# -- signatures (RELIABILITY 9) --------------------------------------------------------------------
def _without(headers: dict[str, str], *names: str) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k not in names}


def _tampered() -> dict[str, Callable[[], tuple[bytes, dict[str, str]]]]:
    request = reaction("Ev0TAMPER01")
    now = int(time.time())

    def signed(**kw: Any) -> dict[str, str]:
        return signed_headers(request, **kw)

    def changed() -> tuple[bytes, dict[str, str]]:
        return request.body.replace(b"eyes", b"fire"), signed()

    def raw(body: bytes, ts: str, sig: str) -> tuple[bytes, dict[str, str]]:
        return body, {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
                      "X-Slack-Signature": sig}  # fmt: skip

    return {
        "another secret": lambda: (request.body, signed(secret="not-our-secret")),
        "no signature": lambda: (request.body, _without(signed(), "X-Slack-Signature")),
        "no timestamp": lambda: (request.body, _without(signed(), "X-Slack-Request-Timestamp")),
        "no Slack headers": lambda: (request.body, {"Content-Type": "application/json"}),
        "timestamp 301 s old": lambda: (request.body, signed(timestamp=now - 301)),
        "timestamp 301 s ahead": lambda: (request.body, signed(timestamp=now + 301)),
        "body changed after signing": changed,
        "timestamp not a number": lambda: raw(request.body, "soon", "v0=00"),
        "v1 signature": lambda: raw(
            request.body, str(now), "v1=" + signature(request.body, str(now))[3:]
        ),
        "not UTF-8": lambda: raw(b"\xff\xfe{", str(now), signature(b"x", str(now))),
        "not JSON": lambda: raw(b'{"type": "event_c', str(now), "v0=" + "0" * 64),
    }


@pytest.mark.parametrize("case", list(_tampered()))
def test_a_tampered_request_is_refused_before_anything_reads_it(
    case: str, slack: SlackSender, peer: SlackPeer, rt: Runtime
) -> None:
    body, headers = _tampered()[case]()
    answer = slack.http.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 401
    assert answer.text == "invalid signature"  # our check's answer, not Bolt's own
    assert count(rt.db, SlackEvent) == 0  # never dispatched: the event id was not recorded
    assert peer.calls == []


def test_a_request_signed_290_s_ago_is_accepted(slack: SlackSender, rt: Runtime) -> None:
    request = reaction("Ev0INTIME01")
    # Five minutes is the limit; 10 s to spare for a busy machine.
    answer = slack.send(request, signed_headers(request, timestamp=int(time.time()) - 290))
    assert reached_the_app(answer)
    assert [e.event_id for e in all_rows(rt.db, SlackEvent)] == ["Ev0INTIME01"]


def test_the_request_url_check_is_answered(slack: SlackSender) -> None:
    body = json.dumps({"token": "t", "challenge": "c3b5f1e7a9", "type": "url_verification"})
    answer = slack.send(SlackRequest(body.encode(), "application/json"))
    assert answer.status_code == 200
    assert answer.json() == {"challenge": "c3b5f1e7a9"}


def test_without_a_bot_token_there_is_no_slack_endpoint(live_api: LiveServer) -> None:
    request = reaction("Ev0NOSLACK1")
    answer = httpx.post(
        f"{live_api.url}/slack/events", content=request.body, headers=signed_headers(request)
    )
    assert answer.status_code == 404


# -- one effect per event (RELIABILITY 11) ---------------------------------------------------------
def test_slacks_retry_of_an_event_is_answered_without_reaching_the_app(
    slack: SlackSender, rt: Runtime
) -> None:
    request = reaction("Ev0RETRY001")
    first = slack.send(request)
    retry = slack.send(request, signed_headers(request, retry_num=1))
    assert reached_the_app(first)
    assert retry.status_code == 200 and retry.content == b""
    assert [e.event_id for e in all_rows(rt.db, SlackEvent)] == ["Ev0RETRY001"]


def test_one_event_delivered_six_times_at_once_reaches_the_app_once(
    slack: SlackSender, rt: Runtime
) -> None:
    request = reaction("Ev0BURST001")
    start = threading.Barrier(6)

    def deliver(n: int) -> httpx.Response:
        headers = signed_headers(request, retry_num=n or None)
        start.wait()
        return slack.send(request, headers)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(deliver, range(6)))
    assert sum(reached_the_app(a) for a in answers) == 1
    assert sorted(a.status_code for a in answers) == [200] * 5 + [404]
    assert count(rt.db, SlackEvent) == 1


@pytest.mark.both_dbs
def test_an_event_id_is_new_once_and_old_rows_are_purged(db: Engine) -> None:
    now = datetime.now(UTC)
    with session_scope(db) as s:
        assert slack_events.record(s, event_id="Ev0OLD00001", now=now - timedelta(days=2))
        assert slack_events.record(s, event_id="Ev0NEW00001", now=now, timeout_ms=1000)
        assert not slack_events.record(s, event_id="Ev0NEW00001", now=now)
    with session_scope(db) as s:
        assert slack_events.purge(s, before=now - timedelta(days=1)) == 1
    with session_scope(db) as s:
        assert list(s.scalars(select(SlackEvent.event_id))) == ["Ev0NEW00001"]
        assert slack_events.record(s, event_id="Ev0OLD00001", now=now)


def test_an_event_id_recorded_from_eight_connections_at_once_is_new_once(db: Engine) -> None:
    start = threading.Barrier(8)
    now = datetime.now(UTC)

    def record(_: int) -> bool:
        start.wait()
        with session_scope(db) as s:
            return slack_events.record(s, event_id="Ev0RACE0001", now=now)

    with ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(record, range(8))) == [False] * 7 + [True]


def test_a_form_opens_only_for_its_kind_and_user_and_is_purged_when_untouched(
    db: Engine,
) -> None:
    now = datetime.now(UTC)
    with session_scope(db) as s:
        old = slack_forms.put(s, kind="wizard", user="U1", data={"name": "A"}, now=now)
        kept = slack_forms.put(s, kind="import", user="U1", data={"text": "B"}, now=now)
    with session_scope(db) as s:
        assert slack_forms.get(s, old, kind="wizard", user="U1") == {"name": "A"}
        assert slack_forms.get(s, old, kind="wizard", user="U2") is None  # someone else's
        assert slack_forms.get(s, old, kind="import", user="U1") is None
        assert slack_forms.replace(
            s, kept, kind="import", user="U1", data={"text": "C"}, now=now + timedelta(days=8)
        )
    with session_scope(db) as s:
        assert slack_forms.purge(s, before=now + timedelta(days=1)) == 1
    with session_scope(db) as s:
        assert slack_forms.get(s, old, kind="wizard", user="U1") is None
        assert slack_forms.get(s, kept, kind="import", user="U1") == {"text": "C"}


# -- /workflow help, unknown subcommands, /workflow list -------------------------------------------
@pytest.mark.parametrize("text", ["help", "", "  HELP  "])
def test_help_lists_the_subcommands_in_the_ack(
    text: str, slack: SlackSender, peer: SlackPeer
) -> None:
    answer = slack.command(text)
    assert answer.status_code == 200
    message = answer.json()
    assert message["response_type"] == "ephemeral"
    checked_blocks(message["blocks"])
    body = dumped(message["blocks"])
    assert "`/workflow list` — every workflow" in body
    assert "`/workflow help` — this list" in body
    assert "not a command" not in body
    assert peer.calls == []  # answered by the ack alone


def test_an_unknown_subcommand_gets_help_and_the_closest_match(slack: SlackSender) -> None:
    message = slack.command("lsit everything").json()
    checked_blocks(message["blocks"])
    first = message["blocks"][0]["text"]["text"]
    assert "`/workflow lsit` is not a command I know" in first
    assert "Did you mean `/workflow list`?" in first
    assert "`/workflow help` — this list" in dumped(message["blocks"])

    nothing_close = slack.command("zzzz").json()
    assert "Did you mean" not in dumped(nothing_close)


def test_a_subcommand_typed_as_a_mention_is_shown_literally(slack: SlackSender) -> None:
    message = slack.command("<!channel> & <https://evil.example|click>").json()
    checked_blocks(message["blocks"])
    raw = dumped(message)
    assert "<!channel>" not in raw and "<https://" not in raw
    assert "`/workflow &lt;!channel&gt;` is not a command I know" in raw


def test_list_shows_the_workflows_grouped_with_counts_and_a_menu(
    slack: SlackSender, rt: Runtime
) -> None:
    seed(rt)
    answer = slack.command("list")
    assert answer.status_code == 200 and answer.content == b""  # acked, answered after
    wait_until(lambda: bool(slack.responded()))
    [message] = slack.responded()
    assert message["response_type"] == "ephemeral"
    assert message["text"] == "Workflows: 1 live, 2 draft, 1 disabled"
    blocks = message["blocks"]
    checked_blocks(blocks)
    shown = [
        b["text"]["text"].split("\n")[0] if b["type"] == "section" else b["text"]["text"]
        for b in blocks
    ]
    assert shown == [
        "Live · 1",
        "*Trial welcome*  _account · v1_",
        "Drafts · 2",
        "*&lt;!channel&gt; &amp; co*  _account · v1_",
        "*Renewal nudge*  _account · v1_",
        "Disabled · 1",
        "*Churn alert*  _account · v1_",
    ]
    live = blocks[1]
    assert live["text"]["text"].split("\n")[1] == (
        "1 enrolled · 1 active · 0 completed · 0 exited · 0 failed"
    )
    menu = live["accessory"]
    assert menu["type"] == "static_select" and menu["action_id"] == ActionId.WORKFLOW_MENU
    choices = [parse_workflow_menu_value(o["value"]) for o in menu["options"]]
    workflow_id = int(live["block_id"].split(":")[1])
    assert choices == [
        (c, workflow_id)
        for c in (
            WorkflowMenu.OPEN,
            WorkflowMenu.REPORT,
            WorkflowMenu.EDIT,
            WorkflowMenu.DISABLE,
            WorkflowMenu.DUPLICATE,
            WorkflowMenu.EXPORT,
            WorkflowMenu.DELETE,
        )
    ]
    draft_choices = [o["text"]["text"] for o in blocks[3]["accessory"]["options"]]
    assert draft_choices == [
        "Open", "View report", "Edit", "Enable", "Duplicate", "Export", "Delete…"
    ]  # fmt: skip
    assert "<!channel>" not in dumped(message)


def test_list_with_no_workflows_says_so(slack: SlackSender) -> None:
    slack.command("list")
    wait_until(lambda: bool(slack.responded()))
    [message] = slack.responded()
    checked_blocks(message["blocks"])
    assert message["blocks"][0]["text"]["text"] == "No workflows yet."


# -- ack timing (RELIABILITY 10) -------------------------------------------------------------------
@pytest.mark.parametrize("text", ["help", "", "lsit"])
def test_an_answer_in_the_ack_comes_within_3_s_and_before_any_call_to_slack(
    text: str, slack: SlackSender, peer: SlackPeer
) -> None:
    peer.delay = 10  # any call to Slack before the ack would hold it 10 s
    started = time.monotonic()
    answer = slack.command(text)
    assert time.monotonic() - started < 3
    assert answer.status_code == 200 and answer.json()["blocks"]
    assert peer.calls == []


def test_list_acks_within_3_s_while_slack_is_slow_and_answers_after(
    slack: SlackSender, peer: SlackPeer, rt: Runtime
) -> None:
    """Every call to the stand-in is held until the test lets it go (a 10 s delay that ends
    with the test): a call made before the ack would hold the ack past 3 s."""
    seed(rt)
    release = threading.Event()
    peer.on_call = lambda call: release.wait(10) and None
    try:
        started = time.monotonic()
        answer = slack.command("list")
        assert time.monotonic() - started < 3
        assert answer.status_code == 200 and answer.content == b""
        wait_until(lambda: bool(slack.responded()))  # the answer went out after the ack
    finally:
        release.set()
    assert "Trial welcome" in dumped(slack.responded()[0]["blocks"])


# -- errors ----------------------------------------------------------------------------------------
def test_a_failing_subcommand_gets_an_error_id_not_a_trace(
    rt: Runtime, peer: SlackPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """`/workflow list` with the database unreachable: the ack is 200, and the user gets an
    ephemeral message with an id that is also in the log line holding the stack trace."""
    settings = rt.settings.model_copy(
        update={
            "slack_bot_token": peer.token,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": peer.url,
        }
    )
    unreachable = make_engine("postgresql://postgres@127.0.0.1:1/none")
    broken = Runtime(settings=settings, db=unreachable, broker=rt.broker, clock=rt.clock)
    app = Starlette(routes=slack_web.make_routes(broken))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        sender = SlackSender(http, peer)
        answer = sender.command("list")
        assert answer.status_code == 200
        wait_until(lambda: bool(sender.responded()))
    unreachable.dispose()
    [reply] = sender.responded()
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    found = ERROR_ID.search(reply["text"])
    assert found is not None, reply["text"]
    assert "Traceback" not in reply["text"] and "127.0.0.1" not in reply["text"]
    [logged] = [r for r in caplog.records if found.group(1) in r.getMessage()]
    assert logged.exc_info is not None and "slack command by U0CSM0001" in logged.getMessage()


@pytest.fixture
def raising_app(rt: Runtime, peer: SlackPeer) -> Iterator[SlackSender]:
    """The Slack app with test listeners that raise before their ack (the real ones never
    do, so only a test listener can show what the app's one error handler does then)."""
    rt.settings = rt.settings.model_copy(
        update={
            "slack_bot_token": peer.token,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": peer.url,
        }
    )
    app = create_app(rt.settings, rt=rt)

    @app.command("/boom")
    def boom(ack: Ack, command: dict[str, Any]) -> None:
        if command["text"] == "user":
            raise UserError("That workflow is live: disable it first.")
        raise RuntimeError("password=hunter2 in /srv/secret")

    @app.action("boom_button")
    def boom_button(ack: Ack) -> None:
        raise RuntimeError("password=hunter2 in /srv/secret")

    web = Starlette(routes=slack_web.make_routes(rt, app=app))
    with serve(web) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield SlackSender(http, peer)


def test_an_error_before_the_ack_is_an_ephemeral_answer_not_a_500(
    raising_app: SlackSender, caplog: pytest.LogCaptureFixture
) -> None:
    answer = raising_app.command("", command="/boom")
    assert answer.status_code == 200
    message = answer.json()
    assert message["response_type"] == "ephemeral"
    found = ERROR_ID.search(message["text"])
    assert found is not None and "hunter2" not in answer.text
    [logged] = [r for r in caplog.records if found.group(1) in r.getMessage()]
    assert logged.exc_info is not None and "hunter2" in str(logged.exc_info[1])

    told = raising_app.command("user", command="/boom").json()
    assert told == {
        "response_type": "ephemeral",
        "text": "That workflow is live: disable it first.",
    }


def test_an_error_in_a_button_listener_is_an_ephemeral_message(raising_app: SlackSender) -> None:
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": USER, "username": "ana", "team_id": TEAM},
        "api_app_id": "A0WFB0001",
        "container": {"type": "message", "message_ts": "1700000000.000100"},
        "trigger_id": "1.2.3",
        "channel": {"id": "C0CS00001", "name": "customer-success"},
        "response_url": raising_app.response_url(),
        "actions": [
            {
                "type": "button",
                "action_id": "boom_button",
                "block_id": "b1",
                "value": "1",
                "action_ts": "1700000001.000200",
            }
        ],
    }
    answer = raising_app.send(interaction(payload))
    assert answer.status_code == 200 and answer.content == b""
    wait_until(lambda: bool(raising_app.responded()))
    [reply] = raising_app.responded()
    assert reply["response_type"] == "ephemeral" and ERROR_ID.search(reply["text"])
    assert "hunter2" not in dumped(reply)


# -- builders at their limits ----------------------------------------------------------------------
def test_list_of_many_long_unicode_names_stays_within_one_message() -> None:
    rows = [
        workflow_blocks.WorkflowSummary(
            id=n,
            name=("Ünïcödé 🚀 <!here> " * 12)[:200],
            status=("live", "draft", "disabled")[n % 3],
            object_type="contact",
            version=n,
            counts={"enrolled": 10**9, "active": n},
        )
        for n in range(1, 121)
    ]
    message = workflow_blocks.list_message(rows)
    blocks = message["blocks"]
    checked_blocks(blocks)
    assert len(blocks) == 50
    shown = sum(1 for b in blocks if b["type"] == "section")
    assert blocks[-1]["elements"][0]["text"].startswith(f"{120 - shown} more not shown")
    assert "<!here>" not in dumped(message)


def test_help_after_a_very_long_unknown_subcommand_stays_valid() -> None:
    usages = [workflow_blocks.Usage("list", "every workflow")]
    message = workflow_blocks.help_message(usages, unknown="x" * 5000 + "`<!here>`")
    checked_blocks(message["blocks"])
    assert len(message["blocks"][0]["text"]["text"]) < 300


def test_a_menu_value_that_is_not_ours_is_refused() -> None:
    assert parse_workflow_menu_value("export:42") == (WorkflowMenu.EXPORT, 42)
    for value in ("export", "export:", "explode:4", "open:4x"):
        with pytest.raises(ValueError):
            parse_workflow_menu_value(value)


# -- Socket Mode -----------------------------------------------------------------------------------
def test_socket_mode_without_an_app_token_exits_2_naming_it(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_APP_TOKEN", raising=False)
    result = cli("socket")
    assert result.exit_code == 2
    assert "SLACK_APP_TOKEN" in result.output


@pytest.mark.parametrize("command", ["web", "run"])
def test_a_bot_token_without_its_signing_secret_is_refused_at_start(
    cli: Any, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "fake-bot-token-for-tests")
    monkeypatch.setenv("INGEST_WRITE_KEYS", "wk_test")
    monkeypatch.delenv("SLACK_SIGNING_SECRET", raising=False)
    result = cli(command, "--port", "1")
    assert result.exit_code == 2
    assert "SLACK_SIGNING_SECRET: required when SLACK_BOT_TOKEN is set" in result.output


def test_one_app_serves_http_and_socket_mode_without_calling_slack_at_start(
    rt: Runtime, peer: SlackPeer
) -> None:
    rt.settings = rt.settings.model_copy(
        update={"slack_bot_token": peer.token, "slack_api_url": peer.url}
    )
    app = create_app(rt.settings, rt=rt)  # no signing secret: Socket Mode needs none
    assert app.client.base_url == peer.url
    assert app.client.retry_handlers == []
    assert peer.calls == []


# -- the manifest ----------------------------------------------------------------------------------
def test_the_manifest_declares_what_the_app_serves() -> None:
    from ruamel.yaml import YAML

    manifest = YAML(typ="safe").load((REPO / "slack-manifest.yml").read_text())
    assert set(manifest) == {
        "_metadata", "display_information", "features", "oauth_config", "settings"
    }  # fmt: skip
    info = manifest["display_information"]
    assert len(info["name"]) <= 35 and len(info["description"]) <= 140
    endpoint = f"https://YOUR-HOST{slack_web.PATH}"
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == COMMAND and command["url"] == endpoint
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    settings = manifest["settings"]
    assert settings["event_subscriptions"]["request_url"] == endpoint
    assert settings["event_subscriptions"]["bot_events"] == [
        "app_home_opened",
        "subteam_members_changed",
        "file_shared",
    ]
    interactivity = settings["interactivity"]
    assert interactivity == {
        "is_enabled": True,
        "request_url": endpoint,
        "message_menu_options_url": endpoint,
    }
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    # What the code calls: chat.postMessage, conversations.history/join/list/info/open,
    # users.info/lookupByEmail, usergroups.users.list, files upload, files.info and the
    # download of a file shared for /workflow import; and the command.
    assert scopes == {
        "commands", "chat:write", "chat:write.public", "channels:read", "groups:read",
        "channels:join", "channels:history", "groups:history", "im:write", "users:read",
        "users:read.email", "usergroups:read", "files:write", "files:read",
    }  # fmt: skip
