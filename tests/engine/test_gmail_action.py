"""`kind: gmail` from a live workflow to a local stand-in of Google's token endpoint and Gmail
API (issue 5, item 2; RELIABILITY 6): sent from the sender's own Gmail, tokens refreshed and
stored encrypted, a send cut short reconciled by our Message-ID in Sent, never sent twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from engine import drafts
from engine.email import deliver, gmail
from engine.runtime import Runtime
from engine.secrets import Vault
from storage.action_models import Connection, Draft
from storage.db import session_scope
from storage.queries import users as user_rows
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.gmail_peer import GooglePeer, google_peer

KEY = "gmail action secret key"
ANA = "ana@acme.example"
CALLBACK = "https://bot.example.com/oauth/google/callback"


class WorkerKilled(BaseException):
    """The worker process dies here (not an error the runner would catch)."""


@pytest.fixture
def google() -> Iterator[GooglePeer]:
    with google_peer() as peer:
        yield peer


@pytest.fixture
def flow(rt: Runtime, google: GooglePeer) -> Flow:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(
        update={
            "secret_key": [KEY],
            "public_url": "https://bot.example.com",
            "google_client_id": google.client_id,
            "google_client_secret": google.client_secret,
            "google_token_url": google.url + "/token",
            "gmail_api_url": google.url + "/",
            "approval_channel": "#cs-approvals",
        }
    )
    flow = Flow(rt)
    with gmail.GmailClient(rt.settings, rt.resolver) as client:
        tokens = client.exchange_code(google.grant(ANA, CALLBACK), CALLBACK, rt.clock.now())
    with session_scope(rt.db) as s:
        from engine import users as people

        ana = people.set_user(s, ANA, name="Ana Diaz", now=rt.clock.now())
        user_rows.save_connection(
            s,
            user_id=ana.id,
            provider="gmail",
            account=ANA,
            secret=Vault([KEY]).encrypt_json(tokens.as_dict()),
            now=rt.clock.now(),
        )
    return flow


def personal(flow: Flow, **step: Any) -> None:
    flow.workflow(
        name="Personal welcome",
        object="contact",
        trigger={"event": "signup"},
        steps=[
            {
                "action": "email",
                "kind": "gmail",
                "from": "{{ owner.email }}",
                "to": ["{{ contact.email }}"],
                "subject": "Welcome, {{ contact.first_name }}",
                "body": "<p>Hi {{ contact.first_name }}, I am your contact at Acme.</p>",
                **step,
            }
        ],
    )
    flow.identify("ada", email="ada@globex.example", first_name="Ada", owner=ANA)
    flow.track("ada", "signup")
    flow.evaluate()


def the_draft(flow: Flow) -> Draft:
    with session_scope(flow.rt.db) as s:
        [draft] = s.scalars(select(Draft))
        s.expunge(draft)
        return draft


def test_a_gmail_email_is_sent_from_the_senders_gmail_after_approval(
    flow: Flow, google: GooglePeer
) -> None:
    personal(flow)
    flow.run()
    draft = the_draft(flow)
    with session_scope(flow.rt.db) as s:
        drafts.approve(s, draft.id, by="U0ANA", now=flow.rt.clock.now())
    flow.run()
    [sent] = google.sent
    assert sent.account == ANA
    assert sent.message["To"] == "ada@globex.example"
    assert sent.message["Subject"] == "Welcome, Ada"
    assert sent.message["Message-ID"] == draft.message_id
    assert the_draft(flow).provider_id == sent.id
    assert flow.enrollments() == [("ada", "completed")]


def test_an_expired_token_is_refreshed_and_the_new_one_stored_encrypted(
    flow: Flow, google: GooglePeer
) -> None:
    with session_scope(flow.rt.db) as s:
        before = s.scalars(select(Connection.secret)).one()
    flow.rt.clock.advance(hours=2)  # type: ignore[attr-defined]
    google.expire_access_tokens()
    personal(flow, approval="auto")
    flow.run()
    assert len(google.sent) == 1
    assert google.grant_types().count("refresh_token") == 1
    with session_scope(flow.rt.db) as s:
        after = s.scalars(select(Connection.secret)).one()
    assert after != before
    tokens = gmail.Tokens.from_dict(Vault([KEY]).decrypt_json(after))
    assert tokens.access_token not in after and tokens.refresh_token not in after


def test_a_send_cut_short_is_found_in_sent_and_never_sent_twice(
    flow: Flow, google: GooglePeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    personal(flow, approval="auto")
    call = flow.claim(flow.pending.pop())

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise WorkerKilled  # Gmail took it; the worker dies before recording anything

    monkeypatch.setattr(deliver, "_sent", killed)
    with pytest.raises(WorkerKilled):
        flow.call(call)
    monkeypatch.undo()
    assert len(google.sent) == 1
    flow.rt.clock.advance(seconds=flow.rt.settings.step_lease_seconds + 1)  # type: ignore[attr-defined]
    flow.scheduler().recover_steps()
    assert the_draft(flow).status == "unknown"
    assert flow.scheduler().reconcile_gmail() == 1
    flow.run()
    draft = the_draft(flow)
    assert (draft.status, draft.decided_by) == ("sent", "reconciled")
    assert len(google.sent) == 1 and flow.enrollments() == [("ada", "completed")]


def test_an_unknown_send_not_in_sent_waits_for_a_person_and_send_again_sends_once(
    flow: Flow, google: GooglePeer
) -> None:
    personal(flow)
    flow.run()
    draft = the_draft(flow)
    with session_scope(flow.rt.db) as s:
        step_id = drafts.approve(s, draft.id, by="U0ANA", now=flow.rt.clock.now()).step_id
    flow.claim(step_id)  # `sending`; the worker dies before Gmail got the message
    flow.rt.clock.advance(seconds=flow.rt.settings.step_lease_seconds + 1)  # type: ignore[attr-defined]
    flow.scheduler().recover_steps()
    assert flow.scheduler().reconcile_gmail() == 0
    assert flow.scheduler().reconcile_gmail() == 0  # looked up once, not on every tick
    assert len([r for r in google.requests if r.route == "list"]) == 1
    flow.run()
    assert google.sent == [] and the_draft(flow).status == "unknown"
    with session_scope(flow.rt.db) as s:
        drafts.send_again(s, draft.id, by="U0ANA", now=flow.rt.clock.now())
    flow.run()
    assert len(google.sent) == 1 and flow.enrollments() == [("ada", "completed")]


def test_a_sender_without_a_gmail_connection_holds_the_step(flow: Flow, google: GooglePeer) -> None:
    personal(flow, **{"from": "zed@acme.example"})
    flow.run()
    [line] = flow.timeline(["attention"])
    assert "zed@acme.example has not connected Gmail" in line
    assert "workflowbot users connect-gmail zed@acme.example" in line
    assert google.sent == []
