"""The wizard's views (blocks.wizard) with realistic and extreme data are valid Block Kit
within Slack's limits, keep user text literal, and refuse state past private_metadata's size;
bot.forms maps the file schema's problems to the wizard's fields."""

from __future__ import annotations

from typing import Any

import pytest

from blocks import kit
from blocks import wizard as w
from blocks import wizard_steps as ws
from blocks.wizard_ids import WizardBlock
from bot import forms
from tests.blocks.limits import assert_escaped, checked_view, texts

LONG = "Ünïcödé 🚀 " * 40
CHOICES = w.TriggerChoices(
    segments=[(f"Segment {i} {LONG}"[:150], "account") for i in range(150)],
    stages=[f"Stage {i}" for i in range(30)],
)


def valid(view: dict[str, Any]) -> dict[str, Any]:
    checked_view(view)  # slack_sdk's models and every limit of tests/blocks/limits.py
    assert_escaped(texts(view, "mrkdwn"))
    return view


def every_view(state: w.WizardState) -> list[dict[str, Any]]:
    views = [w.info_view(state), ws.actions_view(state), w.loading_view(state, "Loading")]
    views += [w.trigger_view(state.model_copy(update={"kind": k}), CHOICES) for k in w.KINDS]
    views += [ws.step_view(state, action) for action in ws.ACTIONS]
    views += [
        ws.step_view(state.model_copy(update={"step_at": 0}), str(step["action"]), typed)
        for step in state.steps[:3]
        for typed in [forms.step_typed(step)]
    ]
    views += [
        w.enable_view(state, w.Reach(12345, "accounts")),
        w.enable_view(state, w.Reach(None, problems=["x" * 5000])),
    ]
    return [*views, w.done_view(LONG * 20)]


def test_every_view_is_valid_empty_and_with_extreme_data() -> None:
    for view in every_view(w.WizardState()):
        valid(view)
    # 100 steps of every kind, long text everywhere: the state lives in a form row (id 7).
    kinds: list[dict[str, Any]] = [
        {"action": "update", "set": {"n": LONG}},
        {"action": "email", "to": ["a@b.c"], "subject": LONG, "body": LONG * 5},
        {"action": "slack", "channel": "#cs-alerts", "text": "<!channel> " + LONG},
        {"action": "owner", "assign": "round_robin", "users": ["U1", "bob@acme.example"]},
        {"action": "hubspot_task", "subject": LONG, "due_in": "2d", "delay": "3d"},
    ]
    many = [kinds[i % len(kinds)] | {"only_if": "x = 1"} for i in range(100)]
    extreme = w.WizardState(
        name=LONG[:200],
        description="<!channel> " * 300,
        steps=many,
        form=7,
        editing=3,
        status="live",
        exit_if=LONG,
    )
    for view in every_view(extreme):
        valid(view)
        assert w.WizardState.load(view.get("private_metadata")).form in (None, 7)
    listed = ws.actions_view(extreme)["blocks"]
    assert len(listed) <= kit.VIEW_BLOCKS_MAX
    assert "20 more steps" in str(listed)


def test_user_text_shows_literally() -> None:
    state = w.WizardState(
        name="<!channel> & <https://x|y>",
        steps=[{"action": "slack", "channel": "C1", "text": "<!here>"}],
    )
    text = str(w.enable_view(state, w.Reach(1, "accounts"))["blocks"])
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "<!here>" not in text


def test_a_state_too_large_for_private_metadata_is_refused() -> None:
    state = w.WizardState(
        steps=[{"action": "email", "to": ["a@b.c"], "subject": "s", "body": "x" * 3000}]
    )
    with pytest.raises(w.MetadataTooLarge, match="more than a modal can carry"):
        ws.actions_view(state)
    kept = state.model_copy(update={"form": 12, "step_at": 0})
    carried = w.WizardState.load(ws.actions_view(kept)["private_metadata"])
    assert (carried.form, carried.step_at, carried.pointer()) == (12, 0, True)


def test_the_state_round_trips_through_metadata() -> None:
    state = w.WizardState(
        name="Trial",
        kind="event",
        event="signup",
        steps=[{"action": "webhook", "url": "https://h.example/x"}],
    )
    assert w.WizardState.load(w.info_view(state)["private_metadata"]) == state


def test_problems_land_on_their_fields() -> None:
    state = w.WizardState(name="", kind="event", event="signup", only_if="plan =")
    found = forms.problems(forms.definition(state, with_steps=False), None)
    shown = {str(WizardBlock.NAME), str(WizardBlock.ONLY_IF)}
    errors = forms.errors(found, shown)
    assert set(errors) == shown
    assert errors[WizardBlock.ONLY_IF].startswith("1:7:")
    step = {"action": "slack", "channel": "not a channel", "text": "hi", "delay": "3 days"}
    grown = state.model_copy(update={"name": "ok", "only_if": "", "steps": [step]})
    in_step = forms.errors(
        forms.problems(forms.definition(grown), None),
        {str(WizardBlock.SLACK_CHANNEL), str(WizardBlock.STEP_DELAY)},
        step=0,
    )
    assert set(in_step) == {WizardBlock.SLACK_CHANNEL, WizardBlock.STEP_DELAY}


def test_a_step_read_from_the_form_reads_back() -> None:
    step = {
        "action": "email",
        "to": ["a@b.c", "{{ owner.email }}"],
        "subject": "Hi",
        "body": "B",
        "delay": "3d",
    }
    assert forms.read_step(forms.step_typed(step)) == step
