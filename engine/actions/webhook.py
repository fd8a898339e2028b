"""`action: webhook` — a JSON POST to the step's URL, signed as Standard Webhooks says.

Headers: `webhook-id` (the step's idempotency key: the same on every attempt, so a receiver
drops a repeat), `webhook-timestamp` (this attempt) and `webhook-signature` (HMAC-SHA256 with
WEBHOOK_SECRET, or a key derived from SECRET_KEY; absent when neither is set). The body is the
step's `body` template (it must render to JSON; `| tojson` quotes a value) or, without one, the
engine's envelope: `{"type": "workflow.step", "timestamp", "data": {workflow, step, object,
record, event}}`. Delivery is at least once, keyed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
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
)
from engine.settings import Settings
from engine.template_checks import template_problem, url_problems
from engine.workflow_defs import StepDef, WebhookStep

_DERIVATION = b"workflowbot webhook signing key v1"


def signing_secret(settings: Settings) -> str | None:
    """`whsec_...`: WEBHOOK_SECRET as given, else derived from the first SECRET_KEY (so a
    receiver can be given it with `workflowbot webhooks secret`), else None (unsigned)."""
    if settings.webhook_secret:
        return settings.webhook_secret
    if settings.secret_key:
        key = hmac.new(settings.secret_key[0].encode(), _DERIVATION, hashlib.sha256).digest()
        return "whsec_" + base64.b64encode(key).decode()
    return None


def envelope(data: Mapping[str, Any], step_index: int, now: datetime) -> dict[str, Any]:
    """The default body: who and what, as plain JSON."""
    workflow = data.get("workflow", {})
    object_type = workflow.get("object", "account")
    return {
        "type": "workflow.step",
        "timestamp": now.astimezone(UTC).isoformat(),
        "data": {
            "workflow": workflow.get("name"),
            "step": step_index,
            "object": object_type,
            "record": data.get(object_type),
            "event": data.get("event"),
        },
    }


class WebhookAction(Action):
    kind = "webhook"
    config = WebhookStep
    delivery = Delivery.AT_LEAST_ONCE_KEYED

    def problems(
        self,
        step: StepDef,
        path: str,
        *,
        context: Mapping[str, Any],
        allowed_hosts: Collection[str],
        resolver: http.Resolver,
    ) -> list[str]:
        assert isinstance(step, WebhookStep)
        problems = url_problems(f"{path}.url", step.url, allowed_hosts, resolver)
        templates = {"url": step.url, "body": step.body}
        templates |= {f"headers.{name}": text for name, text in step.headers.items()}
        for field, source in templates.items():
            if source is not None and (problem := template_problem(source, context)):
                problems.append(f"{path}.{field}: {problem}")
        return problems

    def _request(
        self, step: WebhookStep, data: Mapping[str, Any], step_index: int, now: datetime
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
            body = json.dumps(envelope(data, step_index, now), default=str)
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
            url, headers, body = self._request(step, data, 0, datetime.now(UTC))
        except (templating.TemplateError, ValueError) as exc:
            return Preview((f"POST {step.url}",), problem=str(exc))
        lines = [f"POST {url}", *(f"{k}: {v}" for k, v in headers.items()), body]
        return Preview(tuple(lines))

    def run(self, step: StepDef, ctx: RunContext) -> Outcome:
        assert isinstance(step, WebhookStep)
        try:
            url, headers, body = self._request(step, ctx.data, ctx.step_index, ctx.now)
        except (templating.TemplateError, ValueError) as exc:
            return Failed(str(exc))
        sent = {k: v for k, v in headers.items() if not k.lower().startswith("webhook-")}
        sent |= {
            "Content-Type": "application/json",
            "webhook-id": ctx.idempotency_key,
            "webhook-timestamp": str(int(ctx.now.timestamp())),
        }
        secret = signing_secret(ctx.settings)
        if secret is not None:
            sent["webhook-signature"] = Webhook(secret).sign(ctx.idempotency_key, ctx.now, body)
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
