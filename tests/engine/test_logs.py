"""LOG_FORMAT=json: one JSON object a line, carrying the ids of the work at hand (set by the
runner around each step's call), tracebacks in a field, and never a token."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from engine import logs, runner
from engine.actions.base import Retry
from engine.runtime import Runtime
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.sink import Sink


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """A JSON handler on the root logger, writing into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    formats = {h: h.formatter for h in root.handlers}  # pytest's own: logs.setup may change them
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        logs.setup("text", secrets=())  # forget any configured secret
        for h, fmt in formats.items():
            h.setFormatter(fmt)


def parsed(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_line_is_one_json_object_with_the_context_ids(lines: io.StringIO) -> None:
    log = logging.getLogger("workflowbot.test")
    with logs.log_context(workflow_id=7, enrollment_id=12):
        with logs.log_context(step_run_id=99, slack_request_id="Ev0ABC"):
            log.info("ran %s\nsecond line", "step")
        log.warning("after")
    log.info("outside")
    first, second, third = parsed(lines)
    assert first["message"] == "ran step\nsecond line"
    assert first["level"] == "INFO" and first["logger"] == "workflowbot.test"
    assert {k: first[k] for k in ("workflow_id", "enrollment_id", "step_run_id")} == {
        "workflow_id": 7,
        "enrollment_id": 12,
        "step_run_id": 99,
    }
    assert first["slack_request_id"] == "Ev0ABC"
    assert first["ts"].endswith("+00:00")
    assert second["level"] == "WARNING" and "step_run_id" not in second
    assert second["workflow_id"] == 7
    assert "workflow_id" not in third


def test_an_exception_is_logged_with_its_traceback_in_a_field(lines: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("workflowbot.test").exception("it failed")
    [entry] = parsed(lines)
    assert entry["message"] == "it failed"
    assert entry["exc"].startswith("Traceback") and "RuntimeError: boom" in entry["exc"]


# Token-shaped test values are put together at run time, so no scanner mistakes them for
# leaked credentials.
BOT_TOKEN = "xox" + "b-1234-5678-fake"
APP_TOKEN = "xa" + "pp-1-A0-fake"


def test_tokens_and_configured_secrets_never_print(lines: io.StringIO) -> None:
    logs.setup("json", secrets=["whsec_c2VjcmV0LWtleS0xMjM0NTY=", "wk_live_0123456789"])
    # setup reformatted every root handler, the test's buffer included
    log = logging.getLogger("workflowbot.test")
    log.info("calling with %s", BOT_TOKEN)
    log.info("header Authorization: Bearer abcdefghijklmnop1234")
    log.info("write key %s and %s", "wk_live_0123456789", "whsec_c2VjcmV0LWtleS0xMjM0NTY=")
    try:
        raise ValueError(f"token {APP_TOKEN} was refused")
    except ValueError:
        log.exception("failed")
    text = lines.getvalue()
    for secret in (BOT_TOKEN, "abcdefghijklmnop1234", "wk_live_0123456789", "whsec_", APP_TOKEN):
        assert secret not in text
    assert text.count(logs.REDACTED) == 5  # each token, key and secret where it was logged


def test_the_context_takes_ids_only() -> None:
    with pytest.raises(ValueError, match="takes an id"), logs.log_context(workflow_id="a b"):
        pass
    with pytest.raises(ValueError, match="not one of"), logs.log_context(token="xoxb-1"):
        pass


def test_a_step_run_logs_with_its_workflow_enrollment_and_step_ids(
    rt: Runtime, sink: Sink, lines: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runner sets the context around each action's call (in its pool thread)."""
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(update={"webhook_allowed_hosts": ["127.0.0.1"]})
    flow = Flow(rt)
    flow.workflow(
        name="Hooks",
        trigger={"event": "login"},
        steps=[{"action": "webhook", "url": f"{sink.url}/hook"}],
    )
    flow.group("acme", "ada")
    flow.track("ada", "login")
    flow.evaluate()
    [step_id] = flow.pending
    call = flow.claim(step_id)

    def raising(step: Any) -> Any:
        raise RuntimeError("a bug in the action")

    monkeypatch.setattr(runner.actions, "for_step", raising)  # an action with a bug
    assert isinstance(flow.call(call), Retry)
    [entry] = [e for e in parsed(lines) if e["logger"] == "engine.runner"]
    assert entry["step_run_id"] == step_id
    assert entry["enrollment_id"] == call.enrollment_id
    assert entry["workflow_id"] == call.workflow_id > 0
    assert "RuntimeError: a bug in the action" in entry["exc"]
