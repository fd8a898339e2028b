"""`action: webhook` — a JSON POST to the step's URL, signed as Standard Webhooks says.

Headers: `webhook-id` (the step's idempotency key: the same on every attempt, so a receiver
drops a repeat), `webhook-timestamp` (this attempt) and `webhook-signature` (HMAC-SHA256 with
the workflow's own secret, and the previous one for 24 h after a rotation: see
engine.webhook_secrets; absent when there is none). The body is the step's `body` template (it
must render to JSON; `| tojson` quotes a value) or, without one, `{workflow, step, enrollment,
object, account, event}` (`envelope`). Delivery is at least once, keyed: retried with backoff
and jitter on timeouts, 5xx and 429 (at Retry-After), never on another 4xx; 410 stops.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from standardwebhooks.webhooks import Webhook

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
from engine.settings import Settings
from engine.step_defs import StepDef, WebhookStep
from engine.template_checks import template_problem, url_problems


def envelope(
    data: Mapping[str, Any], ctx_ids: Mapping[str, Any], step: WebhookStep
) -> dict[str, Any]:
    """The default body: the workflow, the step, the enrollment, the full record (`object`),
    its account and the event that enrolled it (null when none), as plain JSON."""
    workflow = data.get("workflow", {})
    object_type = workflow.get("object", "account")
    return {
        "workflow": {"id": ctx_ids.get("workflow_id"), "name": workflow.get("name")},
        "step": {"index": ctx_ids.get("step_index"), "action": step.action, "name": step.name},
        "enrollment": {"id": ctx_ids.get("enrollment_id")},
        "object": {"type": object_type, **(data.get(object_type) or {})},
        "account": data.get("account"),
        "event": data.get("event"),
    }


class WebhookAction(Action):
    kind = "webhook"
    config = WebhookStep
    delivery = Delivery.AT_LEAST_ONCE_KEYED
    signs_with_workflow_secret = True

    def problems(self, step: StepDef, path: str, checks: SaveChecks) -> list[str]:
        assert isinstance(step, WebhookStep)
        problems = url_problems(f"{path}.url", step.url, checks.allowed_hosts, checks.resolver)
        templates = {"url": step.url, "body": step.body}
        templates |= {f"headers.{name}": text for name, text in step.headers.items()}
        for field, source in templates.items():
            if source is not None and (problem := template_problem(source, checks.context)):
                problems.append(f"{path}.{field}: {problem}")
        return problems

    def _request(
        self, step: WebhookStep, data: Mapping[str, Any], ids: Mapping[str, Any]
    ) -> tuple[str, dict[str, str], str]:
        """URL, headers and body, rendered; TemplateError or ValueError say what is wrong."""
        url = templating.render(step.url, data).strip()
        headers = {}
        for name, source in step.headers.items():
            value = templating.render(source, data)
            if "\r" in value or "\n" in value:
                raise ValueError(f"headers.{name}: the rendered value holds a line break")
            headers[name] = value
        if step.body is None:
            body = json.dumps(envelope(data, ids, step), default=str)
        else:
            body = templating.render(step.body, data)
            try:
                json.loads(body)
            except ValueError as exc:
                raise ValueError(f"body: the rendered text is not JSON ({exc})") from None
        return url, headers, body

    def preview(self, step: StepDef, data: Mapping[str, Any], settings: Settings) -> Preview:
        assert isinstance(step, WebhookStep)
        try:
            url, headers, body = self._request(step, data, {"step_index": 0})
        except (templating.TemplateError, ValueError) as exc:
            return Preview((f"POST {step.url}",), problem=str(exc))
        lines = [f"POST {url}", *(f"{k}: {v}" for k, v in headers.items()), body]
        return Preview(tuple(lines))

    def run(self, step: StepDef, ctx: RunContext) -> Outcome:
        assert isinstance(step, WebhookStep)
        try:
            ids = {
                "workflow_id": ctx.workflow_id,
                "step_index": ctx.step_index,
                "enrollment_id": ctx.enrollment_id,
            }
            url, headers, body = self._request(step, ctx.data, ids)
        except (templating.TemplateError, ValueError) as exc:
            return Failed(str(exc))
        sent = {k: v for k, v in headers.items() if not k.lower().startswith("webhook-")}
        sent |= {
            "Content-Type": "application/json",
            "webhook-id": ctx.idempotency_key,
            "webhook-timestamp": str(int(ctx.now.timestamp())),
        }
        # The runner read the workflow's secrets with the claim (signs_with_workflow_secret).
        keys = list(ctx.signing_keys)
        if keys:
            # Several signatures, space-separated, while a rotated secret still signs.
            sent["webhook-signature"] = " ".join(
                Webhook(key).sign(ctx.idempotency_key, ctx.now, body) for key in keys
            )
        try:
            with http.from_settings(ctx.settings, ctx.resolver) as client:
                response = client.request("POST", url, headers=sent, content=body.encode())
        except http.UrlRefused as exc:
            return Failed(f"url: {exc}")
        except http.TransportFailed as exc:
            return Retry(str(exc))
        if 200 <= response.status < 300:
            return Done({"status": response.status}, f"POST {url}: {response.status}")
        answer = f"POST {url}: the receiver answered {response.status}"
        if http.is_permanent(response.status):
            return Failed(answer)
        wait = http.retry_after(response.headers, ctx.now)
        at = None if wait is None else ctx.now + timedelta(seconds=wait)
        return Retry(answer, at)
