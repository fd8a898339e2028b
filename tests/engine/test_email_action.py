"""`action: email` and `team_notification` from a live workflow to a real SMTP server on
127.0.0.1 (issue 5, items 2, 3, 7; RELIABILITY 6, 13, 22-24): drafts wait for approval, ten
approvals send once, discard / expiry / exit skip, a missing value holds the email, a crash
mid-send leaves it `unknown` and never resent by itself."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from engine import control, drafts
from engine.runtime import Runtime
from storage.action_models import Draft
from storage.db import session_scope
from storage.queries import suppressions
from storage.workflow_models import StepRun
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.sink import Sink
from tests.smtp_peer import SmtpPeer

KEY = "email test secret key"
PUBLIC = "https://bot.example.com"


@pytest.fixture
def flow(rt: Runtime, smtp: SmtpPeer) -> Flow:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(
        update={
            "smtp_url": smtp.url(),
            "email_from": "CS Team <cs@acme.example>",
            "approval_channel": "#cs-approvals",
            "secret_key": [KEY],
            "public_url": PUBLIC,
            "webhook_allowed_hosts": ["127.0.0.1"],
        }
    )
    return Flow(rt)


def email_step(**fields: Any) -> dict[str, Any]:
    return {
        "action": "email",
        "kind": "html",
        "to": ["{{ account.primary_contact.email }}"],
        "subject": "Welcome to Acme, {{ account.name }}",
        "body": '<p>Hi {{ account.primary_contact.first_name }},</p><a href="https://acme.example/start">Start</a>',
        **fields,
    }


def welcome(flow: Flow, *steps: dict[str, Any], **workflow: Any) -> None:
    flow.segment("Trials", 'plan = "trial"')
    flow.workflow(
        name="Welcome",
        trigger={"segment": "Trials"},
        steps=list(steps) or [email_step()],
        **workflow,
    )


def trial(flow: Flow, external: str = "acme", **traits: Any) -> None:
    contact = f"ada-{external}"
    flow.identify(contact, email=f"{contact}@globex.example", first_name="Ada")
    flow.group(external, user=contact, name="Acme", plan="trial", **traits)
    flow.evaluate()


def the_draft(flow: Flow) -> Draft:
    with session_scope(flow.rt.db) as s:
        [draft] = s.scalars(select(Draft))
        s.expunge(draft)
        return draft


def decide(flow: Flow, how: Any, draft_id: int, by: str = "U0ANA") -> Any:
    with session_scope(flow.rt.db) as s:
        return how(s, draft_id, by=by, now=flow.rt.clock.now())


def statuses(flow: Flow) -> list[str]:
    return [status for _, status, _ in flow.steps()]


def test_a_draft_waits_for_approval_then_is_sent_once_as_rendered(
    flow: Flow, smtp: SmtpPeer
) -> None:
    welcome(flow)
    trial(flow)
    flow.run()
    assert statuses(flow) == ["waiting"] and smtp.received == []
    draft = the_draft(flow)
    assert (draft.status, draft.to, draft.subject) == (
        "pending",
        ["ada-acme@globex.example"],
        "Welcome to Acme, Acme",
    )
    assert draft.approval_channel == "#cs-approvals" and draft.expires_at is not None
    decide(flow, drafts.approve, draft.id)
    flow.run()
    [got] = smtp.received
    message = got.message
    assert got.mail_from == "cs@acme.example" and got.rcpt_tos == ["ada-acme@globex.example"]
    assert message["Subject"] == "Welcome to Acme, Acme"
    assert message["Message-ID"] == draft.message_id
    assert message["List-Unsubscribe"].startswith(f"<{PUBLIC}/u/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and "Hi Ada," in text.get_content()
    assert html is not None and f"{PUBLIC}/t/c/" in html.get_content()  # the link is tracked
    assert f"{PUBLIC}/t/o/" in html.get_content()  # and the pixel
    assert flow.enrollments() == [("acme", "completed")]
    assert the_draft(flow).status == "sent"
    assert any("approved by U0ANA" in line for line in flow.timeline(["draft"]))


def test_ten_concurrent_approvals_send_one_email(flow: Flow, smtp: SmtpPeer) -> None:
    welcome(flow)
    trial(flow)
    flow.run()
    draft_id = the_draft(flow).id

    def click(i: int) -> str:
        try:
            decide(flow, drafts.approve, draft_id, by=f"U0{i}")
            return "approved"
        except drafts.DraftError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(pool.map(click, range(10)))
    assert answers.count("approved") == 1
    refusals = [a for a in answers if a != "approved"]
    assert all("cannot be approved: it was already approved by U0" in a for a in refusals)
    flow.run()
    flow.run()
    assert len(smtp.received) == 1


def test_approval_auto_sends_at_once_and_a_team_notification_needs_none(
    flow: Flow, smtp: SmtpPeer
) -> None:
    welcome(
        flow,
        email_step(
            approval="auto", kind="email", body="Hi {{ account.primary_contact.first_name }}"
        ),
        {
            "action": "team_notification",
            "to": ["cs-team@acme.example", "lead@acme.example"],
            "subject": "New trial: {{ account.name }}",
            "body": "Owner: {{ owner.name | default('nobody') }}",
        },
    )
    trial(flow)
    flow.run()
    assert [r.rcpt_tos for r in smtp.received] == [
        ["ada-acme@globex.example"],
        ["cs-team@acme.example", "lead@acme.example"],
    ]
    first, team = (r.message for r in smtp.received)
    assert first.get_content_type() == "text/plain"
    assert team["Subject"] == "New trial: Acme" and "Owner: nobody" in team.get_content()
    assert flow.enrollments() == [("acme", "completed")]


def test_discard_skips_the_step_and_the_workflow_goes_on(
    flow: Flow, smtp: SmtpPeer, sink: Sink
) -> None:
    welcome(flow, email_step(), {"action": "webhook", "url": sink.url})
    trial(flow)
    flow.run()
    draft = the_draft(flow)
    decide(flow, drafts.discard, draft.id)
    flow.run()
    assert smtp.received == [] and len(sink.received) == 1
    assert statuses(flow) == ["skipped", "done"]
    assert f"step 1 (email) skipped: draft #{draft.id} discarded by U0ANA" in flow.timeline()
    with pytest.raises(drafts.DraftError, match="already discarded by U0ANA"):
        decide(flow, drafts.approve, draft.id)


def test_an_unanswered_draft_expires_after_its_timeout(flow: Flow, smtp: SmtpPeer) -> None:
    welcome(flow, email_step(approval="#cs-approvals", approval_timeout="2d"))
    trial(flow)
    flow.run()
    flow.rt.clock.advance(days=1)  # type: ignore[attr-defined]
    flow.scheduler().expire_drafts()
    assert the_draft(flow).status == "pending"
    flow.rt.clock.advance(days=1, seconds=1)  # type: ignore[attr-defined]
    assert flow.scheduler().expire_drafts() == 1
    flow.run()
    assert the_draft(flow).status == "expired" and smtp.received == []
    assert statuses(flow) == ["skipped"]
    assert flow.enrollments() == [("acme", "completed")]


def test_an_exit_withdraws_the_pending_draft(flow: Flow, smtp: SmtpPeer) -> None:
    welcome(flow, exit_if='status = "paying"')
    trial(flow)
    flow.run()
    flow.group("acme", status="paying")
    flow.evaluate()
    draft = the_draft(flow)
    assert draft.status == "withdrawn"
    with pytest.raises(drafts.DraftError, match="withdrawn"):
        decide(flow, drafts.approve, draft.id)
    flow.run()
    assert smtp.received == [] and flow.enrollments() == [("acme", "exited")]


def test_a_missing_value_holds_the_email_instead_of_sending_hi_blank(
    flow: Flow, smtp: SmtpPeer
) -> None:
    welcome(flow, email_step(body="Hi {{ account.primary_contact.nickname }},"))
    trial(flow)
    flow.run()
    assert statuses(flow) == ["attention"]
    [line] = flow.timeline(["attention"])
    assert "needs attention: body:" in line and "nickname" in line
    with session_scope(flow.rt.db) as s:
        assert s.scalars(select(Draft)).first() is None
    assert smtp.received == []


def test_a_line_break_in_a_rendered_header_fails_the_step(flow: Flow, smtp: SmtpPeer) -> None:
    welcome(flow, email_step(subject="Hello {{ account.tagline }}"))
    trial(flow, tagline="x\r\nBcc: everyone@example.com")
    flow.run()
    assert statuses(flow) == ["failed"]
    assert "line break" in flow.timeline(["failed"])[0]
    assert smtp.received == []


def test_a_suppressed_recipient_is_never_emailed(flow: Flow, smtp: SmtpPeer) -> None:
    welcome(flow, email_step(approval="auto"))
    with session_scope(flow.rt.db) as s:
        suppressions.add(
            s,
            email="ADA-acme@globex.example",
            reason="unsubscribe",
            by="test",
            now=flow.rt.clock.now(),
        )
    trial(flow)
    flow.run()
    assert smtp.received == []
    assert the_draft(flow).status == "suppressed"
    assert statuses(flow) == ["skipped"]


def test_a_connection_lost_mid_send_is_unknown_and_never_resent_by_itself(
    flow: Flow, smtp: SmtpPeer
) -> None:
    welcome(flow, email_step(approval="auto"))
    smtp.drop_after_data = True
    trial(flow)
    flow.run()
    assert statuses(flow) == ["unknown"] and the_draft(flow).status == "unknown"
    smtp.drop_after_data = False
    flow.rt.clock.advance(days=1)  # type: ignore[attr-defined]
    flow.run()
    assert smtp.received == []  # nothing resends it by itself
    assert flow.enrollments() == [("acme", "active")]
    decide(flow, drafts.send_again, the_draft(flow).id)
    flow.run()
    assert len(smtp.received) == 1 and flow.enrollments() == [("acme", "completed")]


def die_and_recover(flow: Flow) -> None:
    """The worker is gone: its lease runs out and the scheduler's recovery runs."""
    lease = flow.rt.settings.step_lease_seconds
    flow.rt.clock.advance(seconds=lease + 1)  # type: ignore[attr-defined]
    flow.scheduler().recover_steps()
    flow.run()


def test_a_worker_dying_while_sending_leaves_it_unknown_until_someone_marks_it_sent(
    flow: Flow, smtp: SmtpPeer
) -> None:
    welcome(flow)
    trial(flow)
    flow.run()
    draft = the_draft(flow)
    decide(flow, drafts.approve, draft.id)
    with session_scope(flow.rt.db) as s:
        [step_id] = s.scalars(select(StepRun.id))
    flow.claim(step_id)  # committed as `sending`; the worker dies before the answer is kept
    die_and_recover(flow)
    assert statuses(flow) == ["unknown"] and smtp.received == []
    assert the_draft(flow).status == "unknown"
    assert any("may have been sent" in line for line in flow.timeline(["unknown"]))
    flow.rt.clock.advance(days=1)  # type: ignore[attr-defined]
    flow.run()
    assert smtp.received == []  # never resent by itself
    decide(flow, drafts.mark_sent, draft.id)
    flow.run()
    assert smtp.received == [] and flow.enrollments() == [("acme", "completed")]
    assert the_draft(flow).status == "sent"


def test_a_worker_dying_before_the_email_was_made_runs_it_again(flow: Flow, smtp: SmtpPeer) -> None:
    welcome(flow, email_step(approval="auto"))
    trial(flow)
    flow.claim(flow.pending.pop())  # `sending`, and the worker dies before making the draft
    die_and_recover(flow)
    assert len(smtp.received) == 1 and flow.enrollments() == [("acme", "completed")]


def test_a_worker_dying_after_the_send_was_recorded_on_the_draft_sends_once(
    flow: Flow, smtp: SmtpPeer
) -> None:
    welcome(flow, email_step(approval="auto"))
    trial(flow)
    call = flow.claim(flow.pending.pop())
    flow.call(call)  # sent; the worker dies before recording the step's outcome
    die_and_recover(flow)
    assert len(smtp.received) == 1 and flow.enrollments() == [("acme", "completed")]


def test_a_busy_server_retries_later_and_refused_credentials_need_attention(
    flow: Flow, smtp: SmtpPeer
) -> None:
    welcome(flow, email_step(approval="auto"))
    smtp.mail_reply = "451 4.3.0 try again later"
    trial(flow)
    flow.run()
    with session_scope(flow.rt.db) as s:
        [row] = s.scalars(select(StepRun))
        assert (row.status, row.attempt) == ("scheduled", 1) and "451" in (row.error or "")
    smtp.mail_reply = "530 5.7.0 authentication required"
    flow.rt.clock.advance(hours=2)  # type: ignore[attr-defined]
    flow.run()
    assert statuses(flow) == ["attention"]
    draft = the_draft(flow)
    assert draft.status == "failed" and "530" in (draft.error or "")
    smtp.mail_reply = None
    decide(flow, drafts.send_again, draft.id)
    flow.run()
    assert len(smtp.received) == 1 and flow.enrollments() == [("acme", "completed")]


def test_a_refused_recipient_is_a_hard_bounce_and_suppressed(flow: Flow, smtp: SmtpPeer) -> None:
    welcome(flow, email_step(approval="auto", cc=["boss@globex.example"]))
    smtp.refuse = {"ada-acme@globex.example"}
    trial(flow)
    flow.run()
    [got] = smtp.received
    assert got.rcpt_tos == ["boss@globex.example"]
    with session_scope(flow.rt.db) as s:
        assert suppressions.suppressed(s, emails=["ada-acme@globex.example"])


def test_editing_a_pending_draft_sends_the_edit(flow: Flow, smtp: SmtpPeer) -> None:
    welcome(flow)
    trial(flow)
    flow.run()
    draft = the_draft(flow)
    with (
        session_scope(flow.rt.db) as s,
        pytest.raises(drafts.DraftError, match="subject: must be one line"),
    ):
        drafts.edit(s, draft.id, by="U0ANA", now=flow.rt.clock.now(), subject="a\nb")
    with session_scope(flow.rt.db) as s:
        drafts.edit(
            s,
            draft.id,
            by="U0ANA",
            now=flow.rt.clock.now(),
            subject="Welcome aboard",
            to=["ada@globex.example"],
        )
    decide(flow, drafts.approve, draft.id)
    flow.run()
    [got] = smtp.received
    assert got.rcpt_tos == ["ada@globex.example"] and got.message["Subject"] == "Welcome aboard"
    assert the_draft(flow).edited


def test_workflows_test_previews_the_rendered_email(flow: Flow) -> None:
    welcome(flow)
    flow.identify("ada-acme", email="ada-acme@globex.example", first_name="Ada")
    flow.group("acme", user="ada-acme", name="Acme", plan="trial")
    with session_scope(flow.rt.db) as s:
        lines = control.dry_run(
            s,
            name="Welcome",
            object_type="account",
            external_id="acme",
            settings=flow.rt.settings,
            now=flow.rt.clock.now(),
        )
    text = "\n".join(lines)
    assert "To: ada-acme@globex.example" in text
    assert "Subject: Welcome to Acme, Acme" in text
    assert "(waits for approval in #cs-approvals)" in text
    assert flow.steps() == []  # nothing was made


def test_record_data_is_escaped_in_an_html_body(flow: Flow, smtp: SmtpPeer) -> None:
    welcome(flow, email_step(approval="auto", body="<p>{{ account.name }}</p>"))
    flow.identify("ada-acme", email="ada-acme@globex.example", first_name="Ada")
    flow.group("acme", user="ada-acme", name='<script>alert("x")</script>', plan="trial")
    flow.evaluate()
    flow.run()
    [got] = smtp.received
    html = got.message.get_body(("html",))
    assert html is not None
    content = html.get_content()
    assert "<script>" not in content and "&lt;script&gt;" in content


def test_every_action_is_previewed_by_workflows_test_without_doing_anything(
    flow: Flow, smtp: SmtpPeer, sink: Sink
) -> None:
    flow.segment("Trials", 'plan = "trial"')
    flow.workflow(
        name="Everything",
        trigger={"segment": "Trials"},
        steps=[
            email_step(),
            {"action": "slack", "channel": "#cs-alerts", "text": ":wave: {{ account.name }}"},
            {"action": "owner", "assign": "round_robin", "users": ["U0ANA", "U0BOB"]},
            {"action": "update", "set": {"stage": "Adoption"}},
            {
                "action": "team_notification",
                "to": ["cs@acme.example"],
                "subject": "New: {{ account.name }}",
                "body": "hi",
            },
            {"action": "webhook", "url": sink.url},
            {"action": "hubspot_task", "subject": "Call {{ account.name }}", "due_in": "2d"},
            {"action": "salesforce_task", "subject": "Call {{ account.name }}"},
        ],
    )
    flow.identify("ada-acme", email="ada-acme@globex.example", first_name="Ada")
    flow.group("acme", user="ada-acme", name="Acme", plan="trial")
    with session_scope(flow.rt.db) as s:
        text = "\n".join(
            control.dry_run(
                s,
                name="Everything",
                object_type="account",
                external_id="acme",
                settings=flow.rt.settings,
                now=flow.rt.clock.now(),
            )
        )
    for expected in [
        "step 1 (email, at once): would run",
        "Subject: Welcome to Acme, Acme",
        "step 2 (slack, at once): would run",
        ":wave: Acme",
        "owner = the next of U0ANA, U0BOB (round robin)",
        "set stage = 'Adoption'",
        "Subject: New: Acme",
        f"POST {sink.url}",
        "HubSpot task: 'Call Acme', due in 2d",
        "Salesforce task: 'Call Acme', due in 1d",
    ]:
        assert expected in text, text
    assert smtp.received == [] and sink.received == [] and flow.steps() == []


def test_save_time_checks_name_the_field_and_the_problem() -> None:
    from engine.definitions import DefinitionError, check_references, parse_document
    from engine.http import SystemResolver
    from engine.settings import Settings

    def problems(step: dict[str, Any], **settings: Any) -> list[str]:
        doc = parse_document(
            {
                "version": 1,
                "workflows": [
                    {
                        "name": "W",
                        "object": "account",
                        "trigger": {"event": "signup"},
                        "steps": [step],
                    }
                ],
            }
        )
        return check_references(
            doc,
            segments={},
            stages=[],
            allowed_hosts=[],
            resolver=SystemResolver(),
            settings=Settings(**settings),
        )

    assert problems(email_step(), email_from="cs@acme.example") == [
        "workflows[0].steps[0].approval: not given and APPROVAL_CHANNEL is not set: name the "
        "channel where drafts wait (#name), or `auto` to send without approval"
    ]
    assert problems(email_step(approval="auto")) == [
        "workflows[0].steps[0].from: not given and EMAIL_FROM is not set"
    ]
    [typo] = problems(
        email_step(approval="auto", body="Hi {{ acount.name }}"), email_from="cs@acme.example"
    )
    assert typo.startswith("workflows[0].steps[0].body: undefined name 'acount.name'")
    with pytest.raises(DefinitionError) as refused:
        problems(email_step(approval="#CS Approvals"))
    assert refused.value.problems == [
        'workflows[0].steps[0].approval: "#CS Approvals" is not a channel: write #name '
        "(lowercase) or its id (C…)"
    ]
    with pytest.raises(DefinitionError) as gmail_without_sender:
        problems(email_step(kind="gmail"))
    assert gmail_without_sender.value.problems[0].startswith(
        "workflows[0].steps[0].from: a gmail email is sent from a user's Gmail"
    )


def test_an_email_held_for_a_missing_value_goes_on_once_the_record_has_it(
    flow: Flow, smtp: SmtpPeer
) -> None:
    welcome(flow, email_step(approval="auto", subject="Your {{ account.plan_name }} trial"))
    trial(flow)
    flow.run()
    assert statuses(flow) == ["attention"]
    flow.group("acme", plan_name="Pro")  # the data arrives
    flow.evaluate()
    flow.run()
    [got] = smtp.received
    assert got.message["Subject"] == "Your Pro trial"
    assert "step 1: the record changed; trying again" in flow.timeline(["retried"])
    assert flow.enrollments() == [("acme", "completed")]


def test_team_notification_cut_short_mid_send_is_unknown_and_not_resent(
    flow: Flow, smtp: SmtpPeer
) -> None:
    welcome(
        flow,
        {"action": "team_notification", "to": ["cs@acme.example"], "subject": "s", "body": "b"},
    )
    smtp.drop_after_data = True
    trial(flow)
    flow.run()
    smtp.drop_after_data = False
    flow.rt.clock.advance(days=1)  # type: ignore[attr-defined]
    flow.run()
    assert statuses(flow) == ["unknown"] and smtp.received == []


def test_without_smtp_url_the_email_needs_attention_and_a_dead_server_is_retried(
    flow: Flow, smtp: SmtpPeer
) -> None:
    url = flow.rt.settings.smtp_url
    flow.rt.settings = flow.rt.settings.model_copy(update={"smtp_url": None})
    welcome(flow, email_step(approval="auto"))
    trial(flow)
    flow.run()
    [line] = flow.timeline(["attention"])
    assert "SMTP_URL is not set" in line
    flow.rt.settings = flow.rt.settings.model_copy(
        update={"smtp_url": url.replace(str(smtp.port), "1")}  # nobody listens there
    )
    decide(flow, drafts.send_again, the_draft(flow).id)
    flow.run()
    with session_scope(flow.rt.db) as s:
        [row] = s.scalars(select(StepRun))
        assert (row.status, row.attempt) == ("scheduled", 1)
    assert smtp.received == []
