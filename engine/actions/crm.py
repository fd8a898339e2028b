"""`action: salesforce_task` and `action: hubspot_task` — a task on the record in the
customer's CRM: subject and body (templates), due `due_in` after the step runs, owned by the
step's `owner` (else the record's owner) through that user's CRM owner id (`workflowbot users
set USER --salesforce-id / --hubspot-id`; without one the CRM's default applies).

At least once, keyed: the step's idempotency key is stored on the task (Salesforce: an
external-id upsert; HubSpot: a property searched before creating), so a repeat makes no second
task. Rate limits reschedule the step at the vendor's time (no retry storm).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

from engine import http, templating
from engine.actions.base import (
    Action,
    Delivery,
    Done,
    Failed,
    Outcome,
    Preview,
    Retry,
    RunContext,
    SaveChecks,
)
from engine.crm import CrmFailed, CrmRetry, TaskClient, TaskSpec
from engine.crm.hubspot import HubSpotClient
from engine.crm.salesforce import SalesforceClient
from engine.settings import Settings
from engine.step_defs import HubspotTaskStep, SalesforceTaskStep, StepDef, TaskStep
from engine.template_checks import template_problem
from storage.db import session_scope
from storage.queries import users as user_rows

# One client per vendor, vendor settings and resolver in this process (Salesforce's caches
# its access token); the resolver is held so that its id is never reused for another.
_clients: dict[tuple[Any, ...], tuple[http.Resolver, TaskClient]] = {}
_clients_lock = threading.Lock()


def _client(vendor: str, ctx: RunContext) -> TaskClient:
    s = ctx.settings
    values = (
        (
            s.salesforce_login_url,
            s.salesforce_client_id,
            s.salesforce_client_secret,
            s.salesforce_refresh_token,
            s.salesforce_api_version,
            s.salesforce_task_key_field,
        )
        if vendor == "salesforce"
        else (s.hubspot_api_url, s.hubspot_token, s.hubspot_task_key_property)
    )
    key = (vendor, values, id(ctx.resolver))
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            made: TaskClient = (
                SalesforceClient(s, ctx.resolver, clock=ctx.clock)
                if vendor == "salesforce"
                else HubSpotClient(s, ctx.resolver, clock=ctx.clock)
            )
            found = _clients[key] = (ctx.resolver, made)
        return found[1]


class _TaskAction(Action):
    vendor: ClassVar[str]
    title: ClassVar[str]
    delivery = Delivery.AT_LEAST_ONCE_KEYED

    def problems(self, step: StepDef, path: str, checks: SaveChecks) -> list[str]:
        assert isinstance(step, TaskStep)
        return [
            f"{path}.{name}: {problem}"
            for name, source in (("subject", step.subject), ("body", step.body))
            if (problem := template_problem(source, checks.context))
        ]

    def _render(self, step: TaskStep, data: Mapping[str, Any]) -> tuple[str, str]:
        return templating.render(step.subject, data).strip(), templating.render(step.body, data)

    def preview(self, step: StepDef, data: Mapping[str, Any], settings: Settings) -> Preview:
        assert isinstance(step, TaskStep)
        try:
            subject, body = self._render(step, data)
        except templating.TemplateError as exc:
            return Preview((f"{self.title} task",), problem=str(exc))
        owner = step.owner or "the record's owner"
        lines = [f"{self.title} task: {subject!r}, due in {step.due_in}, owner {owner}"]
        return Preview((*lines, *body.splitlines()[:10]))

    def _owner_id(self, step: TaskStep, ctx: RunContext) -> str | None:
        owner = ctx.data.get("owner") or {}
        ref = step.owner or owner.get("slack_id") or owner.get("email")
        if not ref:
            return None
        with session_scope(ctx.database) as session:
            user = user_rows.find(session, ref)
            return None if user is None else (user.crm_ids or {}).get(self.vendor)

    def run(self, step: StepDef, ctx: RunContext) -> Outcome:
        assert isinstance(step, TaskStep)
        try:
            subject, body = self._render(step, ctx.data)
        except templating.TemplateError as exc:
            return Failed(str(exc))
        if not subject:
            return Failed("subject: renders empty")
        object_type = ctx.data["workflow"]["object"]
        spec = TaskSpec(
            key=ctx.idempotency_key,
            subject=subject,
            body=body,
            due_at=ctx.now + timedelta(seconds=step.due_in_seconds),
            owner_id=self._owner_id(step, ctx),
            object_type=object_type,
            record=ctx.data[object_type],
        )
        try:
            task = _client(self.vendor, ctx).create_task(spec)
        except CrmRetry as exc:
            at = None if exc.retry_after is None else ctx.now + timedelta(seconds=exc.retry_after)
            return Retry(f"{self.title}: {exc.error}", at)
        except CrmFailed as exc:
            return Failed(f"{self.title}: {exc.error}")
        result = {"task": task.id, "created": task.created, "link": task.link}
        said = "created" if task.created else "already there (not made twice)"
        return Done(result, f"{self.title} task {task.id} {said}: {subject}")


class SalesforceTaskAction(_TaskAction):
    kind = "salesforce_task"
    config = SalesforceTaskStep
    vendor = "salesforce"
    title = "Salesforce"


class HubspotTaskAction(_TaskAction):
    kind = "hubspot_task"
    config = HubspotTaskStep
    vendor = "hubspot"
    title = "HubSpot"
