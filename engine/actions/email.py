"""`action: email` (kinds `email`, `html`, `gmail`) and `action: team_notification`.

A run renders the step into a draft (sender, recipients, subject, body, the record it is
about) and, by default, waits for approval: the step's row is `waiting` until a decision
(engine.drafts: approve, discard, expiry, an exit) queues it again, and that run sends, skips
or stops accordingly. `approval: auto` and team notifications send in the same run. Delivery
is at most once (RELIABILITY 6): the runner commits `sending` before any run that sends
(`sends_now`), and engine.email.deliver records what the provider answered.

A template value that is missing (or empty) holds the step as "needs attention" instead of
sending "Hi ,"; so does a `gmail` sender without a Gmail connection. A CR or LF in a rendered
header fails the step: header injection is impossible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from email.utils import parseaddr
from typing import Any

from engine import templating
from engine.actions.base import (
    Action,
    Attention,
    Delivery,
    Done,
    Failed,
    Outcome,
    Preview,
    RunContext,
    SaveChecks,
    Skipped,
    Unknown,
    Waiting,
)
from engine.email import deliver, message
from engine.settings import Settings
from engine.step_defs import APPROVAL_AUTO, EmailStep, StepDef, TeamNotificationStep
from engine.template_checks import template_problem
from storage.action_models import Draft
from storage.db import session_scope
from storage.queries import drafts as draft_rows
from storage.queries import users as user_rows

# Held for a value the record lacks: tried again when the record changes, or by hand
# (`workflowbot enrollments retry`).
NEEDS_DATA = {"needs": "data"}


class Hold(Exception):
    """The draft cannot be made as the data stands: needs attention."""


class Broken(Exception):
    """A rendered header is unsafe (a line break): the step fails."""


@dataclass(frozen=True)
class Rendered:
    kind: str
    sender: str
    to: list[str]
    cc: list[str]
    reply_to: str | None
    subject: str
    body: str
    approval: str | None  # None: sent at once


def present(value: Any) -> Any:
    """Template data without empty values (None, "", [], {}): a missing value then fails the
    render (or takes its `default(...)`) instead of printing "None" or nothing."""
    if isinstance(value, Mapping):
        return {
            k: present(v)
            for k, v in value.items()
            if v is not None and v != "" and v != [] and v != {}
        }
    if isinstance(value, list):
        return [present(v) for v in value]
    return value


def _render(field: str, source: str, data: Mapping[str, Any], *, html: bool = False) -> str:
    try:
        return templating.render(source, data, html=html)
    except templating.UndefinedName as exc:
        raise Hold(f"{field}: {exc} (the record has no value for it)") from None
    except templating.TemplateError as exc:
        raise Hold(f"{field}: {exc}") from None


def _header(field: str, source: str, data: Mapping[str, Any]) -> str:
    value = _render(field, source, data).strip()
    if "\r" in value or "\n" in value:
        raise Broken(f"{field}: the rendered value {value!r} holds a line break")
    if not value:
        raise Hold(f"{field}: renders empty")
    return value


def _address(field: str, source: str, data: Mapping[str, Any]) -> str:
    value = _header(field, source, data)
    try:
        return message.check_address(field, value)
    except message.HeaderError as exc:
        raise Hold(str(exc)) from None


def render_email(step: EmailStep, raw: Mapping[str, Any], settings: Settings) -> Rendered:
    """The draft a step makes for one record's data; Hold or Broken say why not."""
    data = present(raw)
    if step.from_ is not None:
        sender = _address("from", step.from_, data)
    elif settings.email_from:
        sender = settings.email_from
    else:
        raise Hold("from: not given and EMAIL_FROM is not set")
    approval = (
        None if step.approval == APPROVAL_AUTO else (step.approval or settings.approval_channel)
    )
    if step.approval != APPROVAL_AUTO and approval is None:
        raise Hold("approval: not given and APPROVAL_CHANNEL is not set")
    return Rendered(
        kind=step.kind,
        sender=sender,
        to=[_address(f"to[{i}]", s, data) for i, s in enumerate(step.to)],
        cc=[_address(f"cc[{i}]", s, data) for i, s in enumerate(step.cc)],
        reply_to=None if step.reply_to is None else _address("reply_to", step.reply_to, data),
        subject=_header("subject", step.subject, data),
        body=_render("body", step.body, data, html=step.kind in ("html", "gmail")),
        approval=approval,
    )


def render_team(step: TeamNotificationStep, raw: Mapping[str, Any], settings: Settings) -> Rendered:
    data = present(raw)
    if not settings.email_from:
        raise Hold("EMAIL_FROM is not set: team notifications are sent from it")
    return Rendered(
        kind="team",
        sender=settings.email_from,
        to=[_address(f"to[{i}]", s, data) for i, s in enumerate(step.to)],
        cc=[],
        reply_to=None,
        subject=_header("subject", step.subject, data),
        body=_render("body", step.body, data),
        approval=None,
    )


def _record_name(data: Mapping[str, Any]) -> str:
    object_type = data.get("workflow", {}).get("object", "account")
    record = data.get(object_type) or {}
    return str(record.get("name") or record.get("email") or record.get("id") or "")[:300]


def _make_draft(ctx: RunContext, rendered: Rendered, timeout: timedelta | None) -> Draft:
    now = ctx.now
    object_type = ctx.data["workflow"]["object"]
    with session_scope(ctx.database) as session:
        return draft_rows.create(
            session,
            values={
                "step_run_id": ctx.step_run_id,
                "enrollment_id": ctx.enrollment_id,
                "workflow_id": ctx.workflow_id,
                "step_index": ctx.step_index,
                "kind": rendered.kind,
                "status": "pending" if rendered.approval else "approved",
                "object_type": object_type,
                "object_id": ctx.record_id,
                "record_name": _record_name(ctx.data),
                "sender": rendered.sender,
                "to": rendered.to,
                "cc": rendered.cc,
                "reply_to": rendered.reply_to,
                "subject": rendered.subject,
                "body": rendered.body,
                "message_id": message.make_message_id(
                    deliver.sender_domain(ctx.settings, rendered.sender)
                ),
                "approval_channel": rendered.approval,
                "expires_at": now + timeout if rendered.approval and timeout else None,
                "edited": False,
                "decided_by": None if rendered.approval else "auto",
                "decided_at": None if rendered.approval else now,
                "created_at": now,
                "updated_at": now,
            },
        )


def _gmail_connected(ctx: RunContext, sender: str) -> bool:
    with session_scope(ctx.database) as session:
        user = user_rows.find(session, parseaddr(sender)[1] or sender)
        return user is not None and (
            user_rows.connection(session, user_id=user.id, provider="gmail") is not None
        )


def _after_decision(draft: Draft, ctx: RunContext) -> Outcome:
    """The run that follows a decision on an existing draft."""
    if draft.status == "approved":
        return deliver.deliver(draft, ctx)
    if draft.status == "pending":
        return Waiting({"draft": draft.id}, f"draft #{draft.id} still waits for approval")
    if draft.status == "sent":
        by = f" (marked sent by {draft.decided_by})" if draft.provider_id == "marked" else ""
        return Done(
            {"draft": draft.id, "message_id": draft.message_id, "to": list(draft.to)},
            f"draft #{draft.id} sent to {', '.join(draft.to)}{by}",
        )
    if draft.status == "unknown":
        return Unknown(f"draft #{draft.id} may have been sent ({draft.error})")
    if draft.status == "failed":
        return Attention(f"draft #{draft.id}: {draft.error}")
    who = f" by {draft.decided_by}" if draft.decided_by else ""
    return Skipped(f"draft #{draft.id} {draft.status}{who}")


class EmailAction(Action):
    kind = "email"
    config = EmailStep
    delivery = Delivery.AT_MOST_ONCE

    def problems(self, step: StepDef, path: str, checks: SaveChecks) -> list[str]:
        assert isinstance(step, EmailStep)
        found: list[str] = []
        if step.approval is None and not checks.settings.approval_channel:
            found.append(
                f"{path}.approval: not given and APPROVAL_CHANNEL is not set: name the channel "
                "where drafts wait (#name), or `auto` to send without approval"
            )
        if step.from_ is None and step.kind != "gmail" and not checks.settings.email_from:
            found.append(f"{path}.from: not given and EMAIL_FROM is not set")
        fields: dict[str, str | None] = {
            "from": step.from_,
            "reply_to": step.reply_to,
            "subject": step.subject,
            "body": step.body,
        }
        fields |= {f"to[{i}]": s for i, s in enumerate(step.to)}
        fields |= {f"cc[{i}]": s for i, s in enumerate(step.cc)}
        for name, source in fields.items():
            if source is not None and (problem := template_problem(source, checks.context)):
                found.append(f"{path}.{name}: {problem}")
        return found

    def sends_now(self, step: StepDef, draft_status: str | None) -> bool:
        assert isinstance(step, EmailStep)
        if draft_status is None:
            return step.approval == APPROVAL_AUTO
        return draft_status == "approved"

    def preview(self, step: StepDef, data: Mapping[str, Any], settings: Settings) -> Preview:
        assert isinstance(step, EmailStep)
        try:
            rendered = render_email(step, data, settings)
        except (Hold, Broken) as exc:
            return Preview((f"{step.kind} email",), problem=str(exc))
        return Preview(_lines(rendered))

    def run(self, step: StepDef, ctx: RunContext) -> Outcome:
        assert isinstance(step, EmailStep)
        with session_scope(ctx.database) as session:
            draft = draft_rows.for_step(session, step_run_id=ctx.step_run_id)
        if draft is not None:
            return _after_decision(draft, ctx)
        try:
            rendered = render_email(step, ctx.data, ctx.settings)
        except Hold as exc:
            return Attention(str(exc), NEEDS_DATA)
        except Broken as exc:
            return Failed(str(exc))
        if rendered.kind == "gmail" and not _gmail_connected(ctx, rendered.sender):
            address = parseaddr(rendered.sender)[1] or rendered.sender
            return Attention(
                f"{rendered.sender} has not connected Gmail: run `workflowbot users "
                f"connect-gmail {address}` (or Connect Gmail in Slack); the email is made "
                "as soon as it is connected",
                {"needs": "gmail", "sender": address.lower()},
            )
        draft = _make_draft(ctx, rendered, timedelta(seconds=step.approval_timeout_seconds))
        if draft.status == "pending":
            return Waiting(
                {"draft": draft.id},
                f"draft #{draft.id} to {', '.join(draft.to)} waits for approval in "
                f"{draft.approval_channel} (expires after {step.approval_timeout})",
            )
        return _after_decision(draft, ctx)


class TeamNotificationAction(Action):
    kind = "team_notification"
    config = TeamNotificationStep
    delivery = Delivery.AT_MOST_ONCE

    def problems(self, step: StepDef, path: str, checks: SaveChecks) -> list[str]:
        assert isinstance(step, TeamNotificationStep)
        fields = {"subject": step.subject, "body": step.body}
        fields |= {f"to[{i}]": s for i, s in enumerate(step.to)}
        return [
            f"{path}.{name}: {problem}"
            for name, source in fields.items()
            if (problem := template_problem(source, checks.context))
        ]

    def preview(self, step: StepDef, data: Mapping[str, Any], settings: Settings) -> Preview:
        assert isinstance(step, TeamNotificationStep)
        try:
            rendered = render_team(step, data, settings)
        except (Hold, Broken) as exc:
            return Preview(("team notification",), problem=str(exc))
        return Preview(_lines(rendered))

    def run(self, step: StepDef, ctx: RunContext) -> Outcome:
        assert isinstance(step, TeamNotificationStep)
        with session_scope(ctx.database) as session:
            draft = draft_rows.for_step(session, step_run_id=ctx.step_run_id)
        if draft is None:
            try:
                rendered = render_team(step, ctx.data, ctx.settings)
            except Hold as exc:
                return Attention(str(exc), NEEDS_DATA)
            except Broken as exc:
                return Failed(str(exc))
            draft = _make_draft(ctx, rendered, None)
        return _after_decision(draft, ctx)


def _lines(rendered: Rendered) -> tuple[str, ...]:
    lines = [f"From: {rendered.sender}", f"To: {', '.join(rendered.to)}"]
    if rendered.cc:
        lines.append(f"Cc: {', '.join(rendered.cc)}")
    if rendered.reply_to:
        lines.append(f"Reply-To: {rendered.reply_to}")
    lines.append(f"Subject: {rendered.subject}")
    lines.append(
        f"(waits for approval in {rendered.approval})" if rendered.approval else "(sent at once)"
    )
    lines += rendered.body.splitlines()[:20]
    return tuple(lines)
