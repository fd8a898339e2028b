"""Users (issue 5, item 1): `workflowbot users list|set|connect-gmail`, one person known by
Slack id and by email merged into one user, and the Gmail connection through Google's OAuth
callback (tokens stored encrypted; email steps held for it go on)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from bot import oauth_web
from engine import users as people
from engine.runtime import Runtime
from storage.action_models import Connection
from storage.db import session_scope
from storage.models import Account, User
from storage.workflow_models import StepRun
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.gmail_peer import GooglePeer, google_peer
from tests.helpers import serve

KEY = "users test secret key"


def users(rt: Runtime) -> list[tuple[str | None, str | None, str | None, dict[str, Any]]]:
    with session_scope(rt.db) as s:
        return [
            (u.slack_id, u.email, u.name, u.crm_ids)
            for u in s.scalars(select(User).order_by(User.id))
        ]


def test_users_set_creates_changes_and_lists(cli: Callable[..., Any], rt: Runtime) -> None:
    made = cli("users", "set", "U0ANA", "--email", "Ana@Acme.example", "--name", "Ana Diaz")
    assert made.exit_code == 0, made.output
    crm = cli("users", "set", "ana@acme.example", "--salesforce-id", "005AAA", "--hubspot-id", "77")
    assert crm.exit_code == 0, crm.output
    assert users(rt) == [
        ("U0ANA", "ana@acme.example", "Ana Diaz", {"salesforce": "005AAA", "hubspot": "77"})
    ]
    listed = cli("users", "list")
    assert "U0ANA" in listed.output and "ana@acme.example" in listed.output
    assert "salesforce=005AAA" in listed.output
    cleared = cli("users", "set", "U0ANA", "--hubspot-id", "")
    assert cleared.exit_code == 0
    assert users(rt)[0][3] == {"salesforce": "005AAA"}


def test_a_person_known_by_email_and_by_slack_id_becomes_one_user(rt: Runtime) -> None:
    flow = Flow(rt)
    flow.group("acme", owner="bob@acme.example")  # ingestion makes a user by email
    flow.group("globex", owner="U0BOB")  # and one by Slack id
    assert len(users(rt)) == 2
    with session_scope(rt.db) as s:
        people.set_user(s, "U0BOB", email="bob@acme.example", now=rt.clock.now())
    assert users(rt) == [("U0BOB", "bob@acme.example", None, {})]
    with session_scope(rt.db) as s:
        [bob] = s.scalars(select(User.id))
        assert {a.owner_id for a in s.scalars(select(Account))} == {bob}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "set", "nobody"], '"nobody" is not a Slack user id'),
        (["users", "set", "U0ANA", "--slack-id", "bob"], 'slack id: "bob" is not a Slack user id'),
        (["users", "set", "U0ANA", "--email", "not-an-email"], "email:"),
    ],
)
def test_a_bad_user_field_is_refused_naming_it_and_nothing_is_written(
    cli: Callable[..., Any], rt: Runtime, args: list[str], message: str
) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert users(rt) == []


@pytest.fixture
def google() -> Iterator[GooglePeer]:
    with google_peer() as peer:
        yield peer


@pytest.fixture
def gmail_rt(rt: Runtime, google: GooglePeer) -> Runtime:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(
        update={
            "secret_key": [KEY],
            "public_url": "https://bot.example.com",
            "google_client_id": google.client_id,
            "google_client_secret": google.client_secret,
            "google_token_url": google.url + "/token",
            "gmail_api_url": google.url + "/",
            "email_from": "cs@acme.example",
            "approval_channel": "#cs-approvals",
        }
    )
    return rt


def test_connect_gmail_prints_a_signed_consent_link(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "SECRET_KEY": KEY,
        "PUBLIC_URL": "https://bot.example.com",
        "GOOGLE_CLIENT_ID": "client-123.apps.googleusercontent.com",
    }.items():
        monkeypatch.setenv(name, value)
    cli("users", "set", "ana@acme.example")
    result = cli("users", "connect-gmail", "ana@acme.example")
    assert result.exit_code == 0, result.output
    url = result.output.strip().splitlines()[-1]
    query = parse_qs(urlsplit(url).query)
    assert query["redirect_uri"] == ["https://bot.example.com/oauth/google/callback"]
    assert query["access_type"] == ["offline"] and query["login_hint"] == ["ana@acme.example"]
    assert "gmail.send" in query["scope"][0] and query["state"][0]
    unknown = cli("users", "connect-gmail", "zed@acme.example")
    assert unknown.exit_code == 1 and "no user zed@acme.example" in unknown.output
    monkeypatch.delenv("PUBLIC_URL")
    missing = cli("users", "connect-gmail", "ana@acme.example")
    assert missing.exit_code == 2 and "PUBLIC_URL" in missing.output


def test_the_callback_stores_the_tokens_encrypted_and_releases_held_gmail_steps(
    gmail_rt: Runtime, google: GooglePeer
) -> None:
    from engine import gmail_connect

    flow = Flow(gmail_rt)
    flow.workflow(
        name="Personal welcome",
        object="contact",
        trigger={"event": "signup"},
        steps=[
            {
                "action": "email",
                "kind": "gmail",
                "from": "ana@acme.example",
                "to": ["{{ contact.email }}"],
                "subject": "Welcome",
                "body": "<p>Hi</p>",
            }
        ],
    )
    flow.identify("ada", email="ada@globex.example")
    flow.track("ada", "signup")
    flow.evaluate()
    flow.run()
    assert [status for _, status, _ in flow.steps()] == ["attention"]
    with session_scope(gmail_rt.db) as s:
        ana = people.ensure(s, "ana@acme.example", now=gmail_rt.clock.now())
        link = gmail_connect.link(gmail_rt.settings, ana, gmail_rt.clock.now())
    state = parse_qs(urlsplit(link).query)["state"][0]
    code = google.grant("ana@acme.example", "https://bot.example.com/oauth/google/callback")
    with (
        serve(Starlette(routes=oauth_web.make_routes(gmail_rt))) as url,
        httpx.Client(base_url=url) as client,
    ):
        tampered = client.get("/oauth/google/callback", params={"code": code, "state": state + "x"})
        assert tampered.status_code == 400 and "not valid" in tampered.text
        page = client.get("/oauth/google/callback", params={"code": code, "state": state})
        assert page.status_code == 200, page.text
        assert "ana@acme.example" in page.text and "1 waiting emails go on now" in page.text
        refused = client.get("/oauth/google/callback", params={"error": "access_denied"})
        assert refused.status_code == 400 and "access_denied" in refused.text
    with session_scope(gmail_rt.db) as s:
        [connection] = s.scalars(select(Connection))
        assert connection.account == "ana@acme.example"
        stored = connection.secret
        [row] = s.scalars(select(StepRun))
        assert (row.status, row.due_at) == ("scheduled", gmail_rt.clock.now())
    for token in ("access_token", "refresh_token"):
        assert token not in stored  # only ciphertext is stored
    assert "ana@acme.example" not in stored


def test_users_sync_fills_names_emails_and_ids_from_slack(
    cli: Callable[..., Any], rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.slack_peer import slack_peer

    with slack_peer() as slack:
        ana = slack.add_user("ana", email="ana@acme.example", real_name="Ana Diaz")
        bob = slack.add_user("bob", email="bob@acme.example", real_name="Bob Stone")
        monkeypatch.setenv("SLACK_BOT_TOKEN", slack.token)
        monkeypatch.setenv("SLACK_API_URL", slack.url)
        flow = Flow(rt)
        flow.group("acme", owner="ana@acme.example")  # known by email only
        flow.group("globex", owner=bob)  # known by Slack id only
        flow.group("initech", owner="zed@acme.example")  # not in Slack
        result = cli("users", "sync")
        assert result.exit_code == 0, result.output
        assert "2 users filled from Slack; 1 not found in Slack" in result.output
        assert sorted(users(rt), key=str) == sorted(
            [
                (ana, "ana@acme.example", "Ana Diaz", {}),
                (bob, "bob@acme.example", "Bob Stone", {}),
                (None, "zed@acme.example", None, {}),
            ],
            key=str,
        )
