"""`action: update` — set fields of the enrolled record (`stage`, `name`, `health_score` or
any trait; string values are templates), as a change like any other: it goes through
ingestion (an `identify` for a contact, a `group` for an account), so segments, stages,
health and other workflows see it. Its messageId is derived from the step's idempotency key,
so a repeated run stores the change once (ingestion drops a repeated messageId)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine import templating
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
from engine.settings import Settings
from engine.step_defs import StepDef, UpdateStep
from engine.template_checks import template_problem


class UpdateAction(Action):
    kind = "update"
    config = UpdateStep
    delivery = Delivery.AT_LEAST_ONCE_KEYED  # keyed by the messageId ingestion deduplicates

    def problems(self, step: StepDef, path: str, checks: SaveChecks) -> list[str]:
        assert isinstance(step, UpdateStep)
        return [
            f"{path}.set.{name}: {problem}"
            for name, value in step.set.items()
            if isinstance(value, str) and (problem := template_problem(value, checks.context))
        ]

    def _values(self, step: UpdateStep, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            name: templating.render(value, data) if isinstance(value, str) else value
            for name, value in step.set.items()
        }

    def preview(self, step: StepDef, data: Mapping[str, Any], settings: Settings) -> Preview:
        assert isinstance(step, UpdateStep)
        try:
            values = self._values(step, data)
        except templating.TemplateError as exc:
            return Preview(tuple(f"set {name}" for name in step.set), problem=str(exc))
        return Preview(tuple(f"set {name} = {value!r}" for name, value in values.items()))

    def run(self, step: StepDef, ctx: RunContext) -> Outcome:
        assert isinstance(step, UpdateStep)
        try:
            values = self._values(step, ctx.data)
        except templating.TemplateError as exc:
            return Failed(str(exc))
        object_type = ctx.data["workflow"]["object"]
        external_id = ctx.data[object_type]["id"]
        call: dict[str, Any] = {
            "type": "group" if object_type == "account" else "identify",
            "messageId": f"step-{ctx.idempotency_key}",
            "traits": values,
        }
        call["groupId" if object_type == "account" else "userId"] = external_id
        try:
            ctx.record_change(call)
        except ValueError as exc:  # refused by ingestion: an unknown stage, a bad score
            return Failed(f"set: {exc}")
        shown = ", ".join(f"{name} = {value!r}" for name, value in values.items())
        return Done({"set": values}, f"set {shown}")
