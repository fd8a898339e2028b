"""`action: owner` — make a user the record's owner: `fixed` (one user) or `round_robin` over
`users`, fair across concurrent runs (a database counter per workflow step, not memory).

The owner is written as a change like any other (an `identify` / `group` call with the
`owner` trait through ingestion), so segments, workflows and `owner.*` in later templates
see it. The pick is remembered under the step's idempotency key, so a repeated run picks the
same user and the counter moves once; the change's messageId is derived from the key too.
With `notify: true` the new owner gets a Slack DM with the record's facts (keyed by the
step's key in the message metadata, so a repeat posts once).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.actions.base import (
    Action,
    Delivery,
    Done,
    Failed,
    Outcome,
    Preview,
    RunContext,
    SaveChecks,
)
from engine.actions.notify import dm_owner
from engine.settings import Settings
from engine.step_defs import OwnerStep, StepDef
from engine.users import label
from storage.db import session_scope
from storage.models import User
from storage.queries import counters
from storage.queries import users as user_rows


def _pick(ctx: RunContext, step: OwnerStep) -> tuple[str, User | None]:
    """The user this run assigns (the same on every repeat of the step)."""
    with session_scope(ctx.database) as session:
        if step.assign == "fixed":
            index = 0
        else:
            remembered = f"owner-pick:{ctx.idempotency_key}"
            picked = counters.recall(session, name=remembered)
            if picked is None:
                turn = counters.take(
                    session, name=f"owner-round-robin:{ctx.workflow_id}:{ctx.step_index}"
                )
                picked = counters.remember(session, name=remembered, value=(turn - 1))
            index = picked
        ref = step.users[index % len(step.users)]
        user = user_rows.find(session, ref)
        if user is not None:
            session.expunge(user)
        return ref, user


class OwnerAction(Action):
    kind = "owner"
    config = OwnerStep
    delivery = Delivery.AT_LEAST_ONCE_KEYED  # the change's messageId and the DM's metadata

    def problems(self, step: StepDef, path: str, checks: SaveChecks) -> list[str]:
        assert isinstance(step, OwnerStep)
        if step.notify and not checks.settings.slack_bot_token:
            return [f"{path}.notify: SLACK_BOT_TOKEN is not set, so no DM can be sent"]
        return []

    def preview(self, step: StepDef, data: Mapping[str, Any], settings: Settings) -> Preview:
        assert isinstance(step, OwnerStep)
        if step.assign == "fixed":
            lines = [f"owner = {step.users[0]}"]
        else:
            lines = [f"owner = the next of {', '.join(step.users)} (round robin)"]
        if step.notify:
            lines.append("DM the new owner with the record's facts")
        return Preview(tuple(lines))

    def run(self, step: StepDef, ctx: RunContext) -> Outcome:
        assert isinstance(step, OwnerStep)
        ref, user = _pick(ctx, step)
        # The trait as ingestion reads it: a Slack id or an email (a user row is made if new).
        written = (user.slack_id or user.email or ref) if user is not None else ref
        object_type = ctx.data["workflow"]["object"]
        call: dict[str, Any] = {
            "type": "group" if object_type == "account" else "identify",
            "messageId": f"step-{ctx.idempotency_key}",
            "traits": {"owner": written},
        }
        call["groupId" if object_type == "account" else "userId"] = ctx.data[object_type]["id"]
        try:
            ctx.record_change(call)
        except ValueError as exc:
            return Failed(f"owner: {exc}")
        result: dict[str, Any] = {"owner": written}
        summary = f"owner set to {label(user) if user is not None else ref}"
        if step.notify:
            with session_scope(ctx.database) as session:
                owner = user_rows.find(session, written)
                if owner is not None:
                    session.expunge(owner)
            dm = dm_owner(ctx, owner)
            if not isinstance(dm, Done):
                return dm  # the owner is written (keyed); the repeat only retries the DM
            result |= dict(dm.result)
            summary += f"; {dm.summary}"
        return Done(result, summary)
