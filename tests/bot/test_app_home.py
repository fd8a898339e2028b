"""The App Home (the Slack issue, parts 5 and 7) through the real web app and Bolt, with the
Slack stand-in recording what the bot sends: a signed `app_home_opened` publishes the viewer's
dashboard (their pending drafts first, workflows by status with counts, Connect Gmail only
without a connection), valid and within limits even crowded; its buttons enable and disable
(admins only, refusals said in a DM), open a workflow, connect Gmail, and decide on drafts."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import select

from blocks.approval_ids import DraftAction
from blocks.home_ids import HomeAction, HomeBlock
from blocks.wizard_ids import WizardAction
from engine import draft_messages
from engine import workflows as workflow_engine
from engine.runtime import Runtime
from engine.workflow_defs import WorkflowDef
from storage.action_models import Draft
from storage.db import session_scope
from storage.queries import users as user_rows
from storage.workflow_models import Workflow
from tests.blocks.test_home_blocks import check_view
from tests.bot.slack_requests import (
    APP_ID,
    USER,
    SlackSender,
    event_callback,
    interaction,
    slack_web_app,
)
from tests.bot.test_approval_buttons import drafted, the_draft
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.helpers import wait_until
from tests.slack_peer import TEAM, SlackPeer, slack_peer
from tests.smtp_peer import smtp_peer

ADMIN = "U0ADMIN001"  # in SLACK_ADMINS
STRANGER = "U0STRANGER"  # neither an admin nor an owner
OTHER_OWNER = "U0OTHER001"
KEY = "app home test secret key"
_events = itertools.count(1)


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    views = itertools.count(1)

    def opened(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
        n = next(views)
        return {"view": {"id": f"V{n:04d}", "hash": f"hash-{n}"}}

    with slack_peer() as found:
        found.on("views.publish", lambda peer, params: {"view": {"id": "VHOME"}})
        found.on("views.open", opened)
        found.on("views.update", lambda peer, params: {"view": {"id": params["view_id"]}})
        for user in (USER, ADMIN, STRANGER):  # so conversations.open finds them
            found.users[user] = {"id": user, "team_id": TEAM, "name": user, "profile": {}}
        yield found


@contextmanager
def served(rt: Runtime, peer: SlackPeer, **settings: Any) -> Iterator[SlackSender]:
    """The web app with ADMIN in SLACK_ADMINS, an approval channel and `settings`."""
    rt.clock = ManualClock()
    with smtp_peer() as smtp:
        rt.settings = rt.settings.model_copy(
            update={
                "smtp_url": smtp.url(),
                "email_from": "cs@acme.example",
                "approval_channel": "#cs-approvals",
                "slack_admins": [ADMIN],
                **settings,
            }
        )
        with slack_web_app(rt, peer) as sender:
            yield sender


@pytest.fixture
def slack(rt: Runtime, peer: SlackPeer) -> Iterator[SlackSender]:
    with served(rt, peer) as sender:
        yield sender


def as_dict(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def published(peer: SlackPeer, user: str = USER) -> list[dict[str, Any]]:
    """The views published as `user`'s Home, in order."""
    return [
        as_dict(c.params["view"])
        for c in peer.calls_to("views.publish")
        if c.params.get("user_id") == user
    ]


def open_home(slack: SlackSender, peer: SlackPeer, user: str = USER) -> dict[str, Any]:
    """`user` opens the Home tab; the view the bot published for it."""
    before = len(published(peer, user))
    event = {
        "type": "app_home_opened",
        "user": user,
        "channel": f"D{user[1:]}",
        "tab": "home",
        "event_ts": "1700000000.000100",
    }
    response = slack.send(event_callback(event, event_id=f"EvHOME{next(_events):06d}"))
    assert response.status_code == 200
    wait_until(lambda: len(published(peer, user)) > before)
    return published(peer, user)[-1]


def click(slack: SlackSender, action: str, value: str, user: str = USER) -> None:
    """`user` clicks a button of their Home: no response_url, no channel, as Slack sends it."""
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": user},
        "api_app_id": APP_ID,
        "token": "legacy-verification-token",
        "trigger_id": "1.2.3",
        "container": {"type": "view", "view_id": "VHOME"},
        "view": {
            "id": "VHOME",
            "type": "home",
            "team_id": TEAM,
            "callback_id": "home",
            "hash": "home-hash",
            "blocks": [],
            "state": {"values": {}},
        },
        "actions": [
            {
                "type": "button",
                "action_id": action,
                "block_id": "home_block",
                "value": value,
                "action_ts": "1.0",
            }
        ],
    }
    response = slack.send(interaction(payload))
    assert response.status_code == 200


def dms(peer: SlackPeer, user: str) -> list[str]:
    channel = f"D{user[1:]}"
    return [m["text"] for m in peer.messages(channel)] if channel in peer.channels else []


def texts(view: dict[str, Any]) -> str:
    return json.dumps(view, ensure_ascii=False)


def button_values(view: dict[str, Any], action: str) -> list[str]:
    return [
        element["value"]
        for block in view["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == action
    ]


def workflow_status(rt: Runtime, name: str) -> str:
    with session_scope(rt.db) as s:
        return s.scalars(select(Workflow.status).where(Workflow.name == name)).one()


def a_workflow(rt: Runtime, name: str = "Renewal nudge", status: str = "draft") -> Flow:
    flow = Flow(rt)
    flow.segment("Renewals", 'plan = "pro"')
    flow.workflow(
        status=status,
        name=name,
        trigger={"segment": "Renewals"},
        steps=[{"action": "email", "to": ["a@acme.example"], "subject": "Hi", "body": "Hi"}],
    )
    return flow


def test_the_home_shows_the_viewers_pending_drafts_first_and_the_workflows_with_counts(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    flow, mine, _ = drafted(rt, peer)
    flow.group("globex", name="Globex", plan="trial", owner=OTHER_OWNER)
    flow.evaluate()
    flow.run()
    with session_scope(rt.db) as s:
        assert len(s.scalars(select(Draft).where(Draft.status == "pending")).all()) == 2
    a_workflow(rt)

    messages_tab = {"type": "app_home_opened", "user": USER, "tab": "messages", "channel": "D1"}
    assert slack.send(event_callback(messages_tab, event_id="EvMESSAGES1")).status_code == 200
    view = open_home(slack, peer)

    assert len(published(peer)) == 1  # the Messages tab publishes nothing
    blocks = check_view(view)
    assert view["type"] == "home"
    assert button_values(view, DraftAction.APPROVE) == [str(mine.id)]  # not Globex's draft
    assert button_values(view, DraftAction.DISCARD) == [str(mine.id)]
    shown = texts(view)
    assert "Welcome, Acme" in shown and "Globex" not in shown
    first_draft = next(i for i, b in enumerate(blocks) if "Welcome, Acme" in json.dumps(b))
    first_header = next(
        i for i, b in enumerate(blocks) if b["type"] == "header" and "Live" in b["text"]["text"]
    )
    assert first_draft < first_header
    assert "Live · 1" in shown and "Drafts · 1" in shown and "Disabled" not in shown
    assert "*Welcome*" in shown and "2 enrolled · 2 active · 0 completed" in shown
    assert button_values(view, HomeAction.ENABLE) != []  # the draft workflow
    assert HomeAction.CONNECT_GMAIL in shown and WizardAction.OPEN in shown

    # An admin may decide on both drafts.
    both = open_home(slack, peer, ADMIN)
    assert len(button_values(both, DraftAction.APPROVE)) == 2


def test_connect_gmail_shows_only_without_a_connection(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    assert HomeAction.CONNECT_GMAIL in texts(open_home(slack, peer))
    with session_scope(rt.db) as s:
        user = user_rows.create(
            s, slack_id=USER, email="ana@acme.example", name="Ana", now=rt.clock.now()
        )
        user_rows.save_connection(
            s,
            user_id=user.id,
            provider="gmail",
            account="ana@acme.example",
            secret="x",
            now=rt.clock.now(),
        )
    view = open_home(slack, peer)
    assert HomeAction.CONNECT_GMAIL not in texts(view) and WizardAction.OPEN in texts(view)


def modal_shown(peer: SlackPeer, count: int) -> dict[str, Any]:
    """The `count`th modal update (a loading modal is opened first, then updated)."""
    wait_until(lambda: len(peer.calls_to("views.update")) >= count)
    call = peer.calls_to("views.update")[count - 1]
    view = as_dict(call.params["view"])
    check_view(view)
    return view


def test_connect_gmail_without_its_settings_says_which_one_is_missing(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    click(slack, HomeAction.CONNECT_GMAIL, "")
    view = modal_shown(peer, 1)
    [loading] = peer.calls_to("views.open")
    assert "Loading" in texts(as_dict(loading.params["view"]))
    assert peer.calls_to("views.update")[0].params["hash"] == "hash-1"
    assert "SECRET_KEY is not set" in texts(view)


def test_connect_gmail_opens_a_modal_with_the_users_link(rt: Runtime, peer: SlackPeer) -> None:
    gmail = {
        "secret_key": [KEY],
        "public_url": "https://bot.example.com",
        "google_client_id": "client-123.apps.googleusercontent.com",
    }
    with served(rt, peer, **gmail) as slack:
        click(slack, HomeAction.CONNECT_GMAIL, "")
        view = modal_shown(peer, 1)
        [link] = [b["accessory"] for b in view["blocks"] if b.get("accessory", {}).get("url")]
        assert link["url"].startswith("https://accounts.google.com/o/oauth2/v2/auth?")
        assert "client-123.apps.googleusercontent.com" in link["url"]
        click(slack, HomeAction.GMAIL_LINK, "")  # Slack tells the app of a url click: acked
    with session_scope(rt.db) as s:
        assert user_rows.by_slack_id(s, USER) is not None  # the link names this user


def test_an_admin_enables_and_disables_from_the_home_and_it_is_republished(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    a_workflow(rt)
    [workflow_id] = button_values(open_home(slack, peer, ADMIN), HomeAction.ENABLE)

    click(slack, HomeAction.ENABLE, workflow_id, user=ADMIN)
    wait_until(lambda: len(published(peer, ADMIN)) == 2)
    assert workflow_status(rt, "Renewal nudge") == "live"
    live = published(peer, ADMIN)[-1]
    check_view(live)
    assert "Live · 1" in texts(live) and button_values(live, HomeAction.DISABLE) == [workflow_id]

    click(slack, HomeAction.DISABLE, workflow_id, user=ADMIN)
    wait_until(lambda: len(published(peer, ADMIN)) == 3)
    assert workflow_status(rt, "Renewal nudge") == "disabled"
    assert "Disabled · 1" in texts(published(peer, ADMIN)[-1])
    assert dms(peer, ADMIN) == []  # nothing to say: the Home shows it


def test_someone_who_is_not_an_admin_is_refused_saying_why(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    a_workflow(rt, status="live")
    [workflow_id] = button_values(open_home(slack, peer, STRANGER), HomeAction.DISABLE)
    click(slack, HomeAction.DISABLE, workflow_id, user=STRANGER)
    wait_until(lambda: bool(dms(peer, STRANGER)))
    assert "Only this workflow's admins and the Slack admins" in dms(peer, STRANGER)[0]
    assert workflow_status(rt, "Renewal nudge") == "live"


def test_open_shows_the_workflow_in_a_modal(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    a_workflow(rt, name="<!channel> renewals", status="live")
    [workflow_id] = button_values(open_home(slack, peer), HomeAction.OPEN)
    click(slack, HomeAction.OPEN, workflow_id)
    view = modal_shown(peer, 1)
    assert "&lt;!channel&gt; renewals" in texts(view) and "<!channel>" not in texts(view)
    assert "segment: Renewals" in texts(view)


def test_a_decision_from_the_home_is_answered_in_a_dm_and_republished(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    _, draft, _ = drafted(rt, peer)
    assert button_values(open_home(slack, peer), DraftAction.APPROVE) == [str(draft.id)]

    click(slack, DraftAction.DISCARD, str(draft.id), user=STRANGER)
    wait_until(lambda: bool(dms(peer, STRANGER)))
    assert "Only the record's owner" in dms(peer, STRANGER)[0]

    click(slack, DraftAction.APPROVE, str(draft.id))
    wait_until(lambda: len(published(peer)) == 2)
    assert the_draft(rt).status == "approved"
    assert "approved: it is sent within seconds" in dms(peer, USER)[0]
    after = published(peer)[-1]
    check_view(after)
    assert button_values(after, DraftAction.APPROVE) == []
    assert draft_messages.sync(rt.db, rt.settings, rt.clock.now()) == 1  # the message follows


def test_a_crowded_home_stays_within_slacks_limits(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    Flow(rt).segment("Renewals", 'plan = "pro"')
    long_name = ("Ünïcødé 工作流 🎉 <!channel> & *bold* " * 8)[:180]
    with session_scope(rt.db) as s:
        for i in range(200):
            definition = WorkflowDef.model_validate(
                {
                    "object": "account",
                    "status": "live" if i % 2 else "draft",
                    "name": f"{i:03d} {long_name}",
                    "trigger": {"segment": "Renewals"},
                    "steps": [
                        {"action": "email", "to": ["a@acme.example"], "subject": "Hi", "body": "Hi"}
                    ],
                }
            )
            workflow_engine.save(s, definition=definition, by="test", now=rt.clock.now())
    view = open_home(slack, peer)
    blocks = check_view(view)
    assert len(blocks) <= 100
    shown = [b for b in blocks if b.get("block_id", "").startswith(f"{HomeBlock.WORKFLOW}:")]
    assert f"{200 - len(shown)} more workflows not shown here" in texts(view)
    assert "&lt;!channel&gt;" in texts(view) and "<!channel>" not in texts(view)


def test_create_a_workflow_opens_the_wizard(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    view = open_home(slack, peer, ADMIN)
    assert WizardAction.OPEN in texts(view)
    click(slack, WizardAction.OPEN, "", user=ADMIN)
    wait_until(lambda: bool(peer.calls_to("views.open")))
    assert as_dict(peer.calls_to("views.open")[0].params["view"])["type"] == "modal"
