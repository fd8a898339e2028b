"""Who may decide on a draft (workflow-format.md, "Approval"): the record's owner, the
workflow's admins (by Slack id or email) and SLACK_ADMINS, user groups included."""

from __future__ import annotations

from sqlalchemy import select

from bot.authz import Admins, may_decide
from engine import users as people
from engine.runtime import Runtime
from storage.action_models import Draft
from storage.db import session_scope
from tests.conftest import ManualClock
from tests.engine.flow import Flow


def a_draft(rt: Runtime) -> None:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(
        update={"email_from": "cs@acme.example", "approval_channel": "#cs-approvals"}
    )
    flow = Flow(rt)
    flow.segment("Trials", 'plan = "trial"')
    flow.workflow(
        name="Welcome",
        trigger={"segment": "Trials"},
        admins=["U0ADMIN", "lee@acme.example"],
        steps=[{"action": "email", "to": ["a@b.example"], "subject": "s", "body": "b"}],
    )
    with session_scope(rt.db) as s:
        people.set_user(s, "lee@acme.example", slack_id="U0LEE", now=rt.clock.now())
    flow.group("acme", plan="trial", owner="U0OWNER")
    flow.evaluate()
    flow.run()


def decide(rt: Runtime, user: str, admins: Admins) -> str | None:
    with session_scope(rt.db) as s:
        draft = s.scalars(select(Draft)).one()
        refusal = may_decide(s, draft, user, admins)
        return None if refusal is None else refusal.reason


def test_the_owner_the_workflows_admins_and_slack_admins_may_decide(rt: Runtime) -> None:
    a_draft(rt)
    calls: list[str] = []

    def members(group: str) -> list[str]:
        calls.append(group)
        return ["U0GROUPIE"]

    admins = Admins(["U0BOSS", "S0CS"], members)
    for allowed in ("U0OWNER", "U0ADMIN", "U0LEE", "U0BOSS", "U0GROUPIE"):
        assert decide(rt, allowed, admins) is None, allowed
    refusal = decide(rt, "U0STRANGER", admins)
    assert refusal is not None and "record's owner, this workflow's admins" in refusal
    assert calls == ["S0CS"]  # the group's members are read once, then cached
    admins.forget("S0CS")  # subteam_members_changed
    assert decide(rt, "U0STRANGER", admins) is not None
    assert calls == ["S0CS", "S0CS"]


def test_a_group_slack_cannot_read_admits_nobody_new(rt: Runtime) -> None:
    a_draft(rt)

    def broken(group: str) -> list[str]:
        raise RuntimeError("slack down")

    assert decide(rt, "U0GROUPIE", Admins(["S0CS"], broken)) is not None
    assert decide(rt, "U0OWNER", Admins(["S0CS"], broken)) is None


def test_only_admins_manage_workflows_and_only_slack_admins_create(rt: Runtime) -> None:
    from bot.authz import may_manage
    from storage.workflow_models import WorkflowVersion

    a_draft(rt)
    admins = Admins(["U0BOSS"], lambda group: [])
    with session_scope(rt.db) as s:
        version = s.scalars(select(WorkflowVersion.id)).one()
        assert may_manage(s, version, "U0ADMIN", admins) is None
        assert may_manage(s, version, "U0LEE", admins) is None  # an admin written as an email
        assert may_manage(s, version, "U0BOSS", admins) is None
        refused = may_manage(s, version, "U0OWNER", admins)
        assert refused is not None and "this workflow's admins" in refused.reason
        assert may_manage(s, None, "U0ADMIN", admins) is not None
        assert may_manage(s, None, "U0BOSS", admins) is None
