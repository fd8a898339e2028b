"""The hardened webhook (issue 5, item 8; RELIABILITY 16, 19): the body names the workflow,
step, enrollment, record, account and event; each workflow signs with its own secret, which
`apply` prints once and `workflows rotate-secret` replaces while the old one signs for 24 h;
410 stops, other 4xx fail at once, 5xx retries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from engine import webhook_secrets
from engine.runtime import Runtime
from engine.secrets import Vault
from storage.action_models import WorkflowSecret
from storage.db import session_scope
from storage.workflow_models import Workflow
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.sink import Received, Sink

KEY = "a test secret key, long enough"


@pytest.fixture
def flow(rt: Runtime) -> Flow:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(
        update={"webhook_allowed_hosts": ["127.0.0.1"], "secret_key": [KEY]}
    )
    return Flow(rt)


def workflow_secret(flow: Flow, name: str) -> str:
    with session_scope(flow.rt.db) as s:
        workflow = s.scalars(select(Workflow).where(Workflow.name == name)).one()
        made = webhook_secrets.ensure(
            s, workflow_id=workflow.id, vault=Vault([KEY]), now=flow.rt.clock.now()
        )
    assert made is not None
    return made


def signed_by(secret: str, got: Received) -> bool:
    """Whether one of the delivery's signatures is `secret`'s (the library's own signing,
    without its check of the timestamp against the real clock, which the test moved)."""
    at = datetime.fromtimestamp(int(got.headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(got.headers["webhook-id"], at, got.body.decode())
    return expected in got.headers["webhook-signature"].split(" ")


def test_the_body_carries_workflow_step_enrollment_record_account_and_event(
    flow: Flow, sink: Sink
) -> None:
    flow.workflow(
        name="Exports",
        object="contact",
        trigger={"event": "export_created"},
        steps=[{"action": "webhook", "url": f"{sink.url}/hook", "name": "tell the warehouse"}],
    )
    flow.group("acme", name="Acme", plan="pro")
    flow.identify("ada", email="ada@acme.example", company={"id": "acme"})
    flow.track("ada", "export_created", format="csv")
    flow.evaluate()
    flow.run()
    [got] = sink.received
    body = got.json
    assert set(body) == {"workflow", "step", "enrollment", "object", "account", "event"}
    assert body["workflow"]["name"] == "Exports" and isinstance(body["workflow"]["id"], int)
    assert body["step"] == {"index": 0, "action": "webhook", "name": "tell the warehouse"}
    assert isinstance(body["enrollment"]["id"], int)
    assert body["object"]["type"] == "contact" and body["object"]["email"] == "ada@acme.example"
    assert body["account"]["name"] == "Acme" and body["account"]["plan"] == "pro"
    assert body["event"]["name"] == "export_created"
    assert body["event"]["properties"] == {"format": "csv"}


def test_each_workflow_signs_with_its_own_secret_and_a_rotation_overlaps_a_day(
    flow: Flow, sink: Sink
) -> None:
    flow.segment("Trials", 'plan = "trial"')
    flow.workflow(
        name="Hook", trigger={"segment": "Trials"}, steps=[{"action": "webhook", "url": sink.url}]
    )
    old = workflow_secret(flow, "Hook")
    flow.group("a1", plan="trial")
    flow.evaluate()
    flow.run()
    Webhook(old).verify(sink.received[0].body, sink.received[0].headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhook_secrets.new_secret()).verify(
            sink.received[0].body, sink.received[0].headers
        )

    with session_scope(flow.rt.db) as s:
        workflow_id = s.scalars(select(Workflow.id).where(Workflow.name == "Hook")).one()
        new = webhook_secrets.rotate(
            s, workflow_id=workflow_id, vault=Vault([KEY]), now=flow.rt.clock.now()
        )
    flow.group("a2", plan="trial")
    flow.evaluate()
    flow.run()
    during = sink.received[1]
    Webhook(old).verify(during.body, during.headers)  # receivers not switched yet
    Webhook(new).verify(during.body, during.headers)  # and those that did
    flow.rt.clock.advance(hours=25)  # type: ignore[attr-defined]
    flow.group("a3", plan="trial")
    flow.evaluate()
    flow.run()
    after = sink.received[2]
    assert signed_by(new, after) and not signed_by(old, after)
    assert after.headers["webhook-signature"].count("v1,") == 1


def test_secrets_are_stored_encrypted(flow: Flow) -> None:
    flow.workflow(
        name="Hook",
        trigger={"event": "signup"},
        steps=[{"action": "webhook", "url": "https://a.example/"}],
    )
    secret = workflow_secret(flow, "Hook")
    with session_scope(flow.rt.db) as s:
        [row] = s.scalars(select(WorkflowSecret))
        assert secret not in row.secret and secret.removeprefix("whsec_") not in row.secret
        assert Vault([KEY]).decrypt(row.secret) == secret


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(410, ("failed", 0)), (404, ("failed", 0)), (503, ("scheduled", 1)), (429, ("scheduled", 1))],
)
def test_410_and_other_4xx_stop_while_5xx_and_429_retry(
    flow: Flow, sink: Sink, status: int, outcome: tuple[str, int]
) -> None:
    flow.workflow(
        name="Hook",
        object="contact",
        trigger={"event": "signup"},
        steps=[{"action": "webhook", "url": sink.url}],
    )
    sink.answers.append((status, {}))
    flow.identify("ada")
    flow.track("ada", "signup")
    flow.evaluate()
    flow.run()
    assert len(sink.received) == 1
    assert [(status_, attempt) for _, status_, attempt in flow.steps()] == [outcome]


def test_apply_prints_a_new_workflows_secret_once_and_rotate_secret_replaces_it(
    cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", KEY)
    monkeypatch.setenv("WEBHOOK_ALLOWED_HOSTS", "127.0.0.1")
    path = tmp_path / "hooks.yaml"
    path.write_text(
        "version: 1\nworkflows:\n  - name: Hook\n    object: account\n"
        "    trigger: {event: signup}\n    steps:\n"
        "      - action: webhook\n        url: http://127.0.0.1:9/cs\n"
    )
    first = cli("apply", "--yes", path)
    assert first.exit_code == 0, first.output
    [line] = [x for x in first.output.splitlines() if "signing secret" in x]
    secret = line.rsplit(" ", 1)[1]
    assert secret.startswith("whsec_")
    again = cli("apply", "--yes", path)
    assert "signing secret" not in again.output
    rotated = cli("workflows", "rotate-secret", "Hook")
    assert rotated.exit_code == 0, rotated.output
    assert "whsec_" in rotated.output and secret not in rotated.output
    assert "24 hours" in rotated.output
    unknown = cli("workflows", "rotate-secret", "Nope")
    assert unknown.exit_code == 2 and "Nope" in unknown.output


def test_rotate_secret_without_secret_key_says_what_to_set(
    cli: Callable[..., Any], flow: Flow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    flow.workflow(
        name="Hook",
        trigger={"event": "signup"},
        steps=[{"action": "webhook", "url": "https://a.example/"}],
    )
    result = cli("workflows", "rotate-secret", "Hook")
    assert result.exit_code == 2 and "SECRET_KEY is not set" in result.output
