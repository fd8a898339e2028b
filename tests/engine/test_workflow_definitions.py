"""The `workflows:` part of a workflow file: what is accepted, and each refusal with its path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engine.def_types import parse_duration
from engine.definitions import (
    DefinitionError,
    WorkspaceDef,
    check_references,
    parse_document,
    sample_context,
)
from engine.fileload import load_text
from engine.step_defs import WebhookStep
from engine.templating import render
from engine.workflow_defs import EventTrigger, HealthTrigger, SegmentTrigger, StageTrigger

# workflow-format.md's example with the steps that are built (webhooks), one of each trigger.
EXAMPLE = """\
version: 1
stages: [Onboarding, Adoption, Expansion, Renewal, Churned]
health: {good: 70, bad: 40}

segments:
  - name: Trial accounts
    object: account
    rule: 'plan = "trial"'

workflows:
  - name: Trial welcome series
    description: Welcome new trial accounts and nudge them to activate.
    object: account
    trigger: {segment: Trial accounts, when: enter}
    only_if: 'status = "trial"'
    enrollment: once
    exit_if: 'status = "paying"'
    on_failure: stop
    admins: [U01AAAA, bob@acme.example]
    status: live
    steps:
      - action: webhook
        url: https://hooks.example.com/cs
        headers: {X-Team: cs}
      - delay: 3d
        only_if: 'count(login, 3d) < 1'
        name: Nudge
        action: webhook
        url: 'https://hooks.example.com/cs/{{ account.name | urlencode }}'
        body: |
          {"text": "{{ account.name }} has not logged in; owner {{ owner.email }}"}
  - name: Health alerts
    object: contact
    trigger: {health: drop, to: bad}
    enrollment: every_time
    reenroll_after: 7d
    steps:
      - action: webhook
        url: https://hooks.example.com/health
  - name: CSV exports
    object: contact
    trigger: {event: export_created, where: 'properties.format = "csv"'}
    steps:
      - action: webhook
        url: https://hooks.example.com/exports
  - name: Renewals
    object: account
    trigger: {stage: renewal}
    steps:
      - action: webhook
        url: https://hooks.example.com/renewals
"""

HOSTS = {"hooks.example.com": ["93.184.216.34"], "internal.example.com": ["10.0.0.1"]}


class StubResolver:
    """Answers from HOSTS; no DNS."""

    def resolve(self, host: str, port: int) -> list[str]:
        return HOSTS.get(host, [])


def example() -> dict[str, Any]:
    return copy.deepcopy(load_text(EXAMPLE))


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        parse_document(data)
    return caught.value.problems


def one_workflow(**keys: Any) -> dict[str, Any]:
    workflow = {
        "name": "W",
        "object": "account",
        "trigger": {"segment": "Trial accounts"},
        "steps": [{"action": "webhook", "url": "https://hooks.example.com/x"}],
    }
    workflow.update(keys)
    return {"version": 1, "workflows": [workflow]}


def refusal(**keys: Any) -> str:
    found = problems(one_workflow(**keys))
    assert len(found) == 1, found
    return found[0]


def references(doc: WorkspaceDef, **overrides: Any) -> list[str]:
    given: dict[str, Any] = {
        "segments": {"quiet contacts": "contact"},
        "stages": [],
        "allowed_hosts": [],
        "resolver": StubResolver(),
    }
    given.update(overrides)
    return check_references(doc, **given)


# -- a valid document -------------------------------------------------------------------------


def test_the_example_parses_with_its_values_and_defaults() -> None:
    doc = parse_document(example())
    welcome, health, exports, renewals = doc.workflows
    assert welcome.trigger == SegmentTrigger(segment="Trial accounts", when="enter")
    assert welcome.admins == ["U01AAAA", "bob@acme.example"]
    assert (welcome.status, welcome.on_failure, welcome.enroll_existing) == ("live", "stop", False)
    first, nudge = welcome.steps
    assert isinstance(nudge, WebhookStep)
    assert (nudge.name, nudge.delay, nudge.delay_seconds) == ("Nudge", "3d", 3 * 86400)
    assert first.headers == {"X-Team": "cs"} and first.body is None and first.delay_seconds == 0
    assert (welcome.resume_window, welcome.resume_window_seconds) == ("24h", 86400)
    assert health.trigger == HealthTrigger(health="drop", to="bad")
    assert (health.reenroll_after, health.reenroll_after_seconds) == ("7d", 7 * 86400)
    assert exports.trigger == EventTrigger(
        event="export_created", where='properties.format = "csv"'
    )
    assert renewals.status == "draft" and renewals.description == ""
    assert references(doc) == []


def test_an_export_writes_back_what_the_user_wrote() -> None:
    data = one_workflow(
        trigger={"health": "rise", "from": "bad"},
        resume_window="2w",
        steps=[{"action": "webhook", "url": "https://hooks.example.com/x", "delay": "90m"}],
    )
    dumped = parse_document(data).model_dump(by_alias=True)["workflows"][0]
    assert dumped["trigger"] == {"health": "rise", "to": None, "from": "bad"}
    assert dumped["resume_window"] == "2w"
    assert dumped["steps"][0]["delay"] == "90m"
    assert parse_document({"version": 1, "workflows": [dumped]}).workflows[0].trigger == (
        HealthTrigger.model_validate({"health": "rise", "from": "bad"})
    )


def test_an_empty_workflows_key_is_no_workflows() -> None:
    assert parse_document({"version": 1, "workflows": None}).workflows == []


# -- steps ------------------------------------------------------------------------------------


def test_an_email_step_missing_its_subject_and_body_names_both() -> None:
    data = example()
    data["workflows"][0]["steps"].insert(
        1, {"action": "email", "kind": "html", "to": ["{{ account.primary_contact.email }}"]}
    )
    assert problems(data) == [
        "workflows[0].steps[1].subject: Field required",
        "workflows[0].steps[1].body: Field required",
    ]


@pytest.mark.parametrize(
    ("action", "required"),
    [
        ("email", ["to", "subject", "body"]),
        ("slack", ["channel", "text"]),
        ("owner", ["assign", "users"]),
        ("team_notification", ["to", "subject", "body"]),
        ("hubspot_task", ["subject"]),
        ("salesforce_task", ["subject"]),
    ],
)
def test_each_action_names_the_fields_it_requires(action: str, required: list[str]) -> None:
    steps = [{"action": "webhook", "url": "https://a.example/"}, {"action": action}]
    assert problems(one_workflow(steps=steps)) == [
        f"workflows[0].steps[1].{name}: Field required" for name in required
    ]


def test_an_unknown_action_names_the_ones_there_are() -> None:
    assert refusal(steps=[{"action": "foo"}]) == (
        'workflows[0].steps[0].action: unknown action "foo" (one of: email, slack, owner, '
        "update, team_notification, webhook, hubspot_task, salesforce_task)"
    )


def test_a_step_without_an_action_or_not_a_mapping_is_refused() -> None:
    assert refusal(steps=[{"url": "https://a.example/"}]) == (
        "workflows[0].steps[0].action: Field required"
    )
    assert refusal(steps=["webhook"]) == (
        "workflows[0].steps[0]: a step must be a mapping with an action"
    )


def test_a_workflow_needs_a_step() -> None:
    assert refusal(steps=[]) == "workflows[0].steps: a workflow needs at least one step"


def test_unknown_keys_are_refused_where_they_are() -> None:
    step = {"action": "webhook", "url": "https://a.example/", "method": "GET"}
    assert refusal(steps=[step]) == "workflows[0].steps[0].method: unknown key"
    assert refusal(triggers={"segment": "x"}) == "workflows[0].triggers: unknown key"


def test_a_webhook_needs_a_url() -> None:
    assert refusal(steps=[{"action": "webhook"}]) == "workflows[0].steps[0].url: Field required"


def test_a_step_delay_that_is_not_a_duration_says_what_to_write() -> None:
    steps = [
        {"action": "webhook", "url": "https://a.example/"},
        {"action": "webhook", "url": "https://a.example/"},
        {"action": "webhook", "url": "https://a.example/", "delay": "3x"},
    ]
    assert refusal(steps=steps) == (
        'workflows[0].steps[2].delay: "3x" is not a duration (use 30m, 4h, 3d or 2w)'
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("4h", 14400), ("3d", 259200), ("2w", 1209600), (" 1d ", 86400)],
)
def test_durations_are_minutes_hours_days_or_weeks(text: str, seconds: int) -> None:
    assert parse_duration(text).seconds == seconds


@pytest.mark.parametrize("text", ["3x", "0d", "30s", "1.5h", "3 d", "-1d", "d", "", "7days"])
def test_other_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_a_duration_that_is_a_number_or_past_ten_years_is_refused() -> None:
    assert refusal(resume_window=30) == (
        "workflows[0].resume_window: 30 is not a duration (use 30m, 4h, 3d or 2w)"
    )
    assert refusal(resume_window="1000w") == (
        'workflows[0].resume_window: "1000w" is longer than ten years'
    )


# -- triggers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trigger",
    [{}, {"when": "enter"}, {"segment": "a", "stage": "b"}, {"health": "drop", "event": "x"}],
)
def test_a_trigger_names_exactly_one_kind(trigger: dict[str, str]) -> None:
    assert refusal(trigger=trigger) == (
        "workflows[0].trigger: give exactly one of segment, stage, health, event"
    )


def test_a_trigger_is_a_mapping_and_its_keys_are_checked() -> None:
    assert refusal(trigger="Trial accounts").startswith("workflows[0].trigger: must be a mapping")
    assert refusal(trigger={"segment": "a", "when": "exit"}) == (
        "workflows[0].trigger.when: Input should be 'enter' or 'leave'"
    )
    assert refusal(trigger={"segment": "a", "to": "bad"}) == "workflows[0].trigger.to: unknown key"


def test_when_defaults_to_enter() -> None:
    doc = parse_document(one_workflow(trigger={"stage": "Renewal"}))
    assert doc.workflows[0].trigger == StageTrigger(stage="Renewal", when="enter")


@pytest.mark.parametrize(
    ("trigger", "problem"),
    [
        ({"health": "rise", "to": "bad"}, "trigger.to: health cannot rise to bad"),
        ({"health": "drop", "to": "good"}, "trigger.to: health cannot drop to good"),
        ({"health": "rise", "from": "good"}, "trigger.from: health cannot rise from good"),
        ({"health": "drop", "from": "bad"}, "trigger.from: health cannot drop from bad"),
        ({"health": "change", "from": "neutral", "to": "neutral"}, "trigger.to: the same as from"),
        ({"health": "fall"}, "trigger.health: Input should be 'drop', 'rise' or 'change'"),
        ({"health": "drop", "to": "awful"}, "trigger.to: Input should be 'bad', 'neutral'"),
    ],
)
def test_impossible_health_moves_are_refused(trigger: dict[str, str], problem: str) -> None:
    assert refusal(trigger=trigger).startswith(f"workflows[0].{problem}")


@pytest.mark.parametrize(
    "trigger",
    [
        {"health": "change"},
        {"health": "change", "to": "good"},
        {"health": "rise", "from": "bad", "to": "neutral"},
        {"health": "rise", "to": "good"},
        {"health": "drop", "from": "good", "to": "bad"},
        {"health": "drop", "from": "neutral"},
    ],
)
def test_possible_health_moves_are_accepted(trigger: dict[str, str]) -> None:
    assert isinstance(
        parse_document(one_workflow(trigger=trigger)).workflows[0].trigger, HealthTrigger
    )


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("plan = 1", "only properties.NAME and timestamp are known here, not 'plan'"),
        ("count(login, 7d) > 1", "count(...) cannot be used in an event's where"),
        ("properties.format =", "1:20: expected a value after '='"),
    ],
)
def test_an_event_where_reads_only_the_event(where: str, problem: str) -> None:
    trigger = {"event": "export_created", "where": where}
    assert refusal(trigger=trigger).startswith(f"workflows[0].trigger.where: {problem}")


def test_an_event_where_may_use_properties_and_the_timestamp() -> None:
    where = 'properties.format in ["csv", "xlsx"] and timestamp after 1d ago'
    parse_document(one_workflow(trigger={"event": "export_created", "where": where}))


# -- the workflow's other keys ----------------------------------------------------------------


def test_rules_are_checked_at_their_path() -> None:
    assert refusal(only_if="plan =").startswith(
        "workflows[0].only_if: 1:7: expected a value after '='"
    )
    assert refusal(exit_if='account.plan = "x"') == (
        "workflows[0].exit_if: account.plan: account. fields belong in contact rules"
    )
    steps = [{"action": "webhook", "url": "https://a.example/", "only_if": "count(login 7d) < 1"}]
    assert refusal(steps=steps).startswith("workflows[0].steps[0].only_if: 1:13: expected")
    steps[0]["only_if"] = 'account.plan = "x"'
    assert refusal(steps=steps) == (
        "workflows[0].steps[0].only_if: account.plan: account. fields belong in contact rules"
    )
    parse_document(one_workflow(object="contact", steps=steps, only_if='account.plan = "x"'))


def test_reenroll_after_needs_every_time() -> None:
    assert refusal(reenroll_after="7d").startswith(
        "workflows[0].reenroll_after: only meaningful with enrollment: every_time"
    )


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("object", "user", "Input should be 'account' or 'contact'"),
        ("enrollment", "always", "Input should be 'once' or 'every_time'"),
        ("on_failure", "retry", "Input should be 'stop' or 'continue'"),
        ("status", "on", "Input should be 'draft', 'live' or 'disabled'"),
        ("enroll_existing", "yes", "Input should be a valid boolean"),
        ("name", "", "String should have at least 1 character"),
        ("name", "x" * 201, "String should have at most 200 characters"),
    ],
)
def test_keys_with_a_fixed_set_of_values(key: str, value: object, problem: str) -> None:
    assert refusal(**{key: value}) == f"workflows[0].{key}: {problem}"


def test_admins_are_slack_user_ids_or_emails() -> None:
    doc = parse_document(one_workflow(admins=["U01AAAA", "W0B2", " ann@acme.example "]))
    assert doc.workflows[0].admins == ["U01AAAA", "W0B2", "ann@acme.example"]
    assert refusal(admins=["U01AAAA", "#cs-team"]) == (
        'workflows[0].admins[1]: "#cs-team" is not a Slack user id (U… or W…) or an email address'
    )


def test_strings_are_stripped() -> None:
    doc = parse_document(one_workflow(name="  Welcome  ", description=" Hi. "))
    assert (doc.workflows[0].name, doc.workflows[0].description) == ("Welcome", "Hi.")


# -- templates --------------------------------------------------------------------------------


def test_a_template_that_does_not_parse_is_refused_with_its_line() -> None:
    step: dict[str, Any] = {"action": "webhook", "url": "https://a.example/", "body": "{{ x }"}
    step["body"] = '{\n"a": "{{ x }"\n}'
    assert refusal(steps=[step]) == "workflows[0].steps[0].body: line 2: unexpected '}'"
    step = {"action": "webhook", "url": "https://a.example/", "headers": {"X-Id": "{% if %}"}}
    assert refusal(steps=[step]).startswith("workflows[0].steps[0].headers.X-Id: line 1: ")


def test_a_template_may_not_reach_into_the_url_host() -> None:
    step = {"action": "webhook", "url": "https://{{ account.domain }}/hook"}
    assert refusal(steps=[step]).startswith(
        "workflows[0].steps[0].url: a template may be used only in the URL's path or query"
    )
    step["url"] = "https://hooks.example.com/a/{{ account.name }}?id={{ account.id }}"
    parse_document(one_workflow(steps=[step]))


def test_header_names_are_checked() -> None:
    step = {"action": "webhook", "url": "https://a.example/", "headers": {"X Team": "cs"}}
    assert (
        refusal(steps=[step])
        == 'workflows[0].steps[0].headers: "X Team" is not a valid header name'
    )
    step["headers"] = {"Host": "evil.example"}
    assert refusal(steps=[step]) == (
        "workflows[0].steps[0].headers.Host: is set by the client and cannot be given"
    )


# -- the document -----------------------------------------------------------------------------


def test_workflow_names_are_unique_case_insensitively() -> None:
    data = example()
    data["workflows"][3]["name"] = "health ALERTS"
    assert problems(data) == [
        "workflows[3].name: 'health ALERTS' repeats workflows[1] (names are unique, "
        "case-insensitively)"
    ]


def test_segment_names_are_still_unique() -> None:
    data = example()
    data["segments"].append({"name": "TRIAL accounts", "object": "account", "rule": "x = 1"})
    assert problems(data) == [
        "segments[1].name: 'TRIAL accounts' repeats segments[0] (names are unique, "
        "case-insensitively)"
    ]


def test_problems_in_several_workflows_are_all_reported() -> None:
    data = example()
    data["workflows"][0]["status"] = "paused"
    data["workflows"][2]["steps"][0]["delay"] = "soon"
    assert problems(data) == [
        "workflows[0].status: Input should be 'draft', 'live' or 'disabled'",
        'workflows[2].steps[0].delay: "soon" is not a duration (use 30m, 4h, 3d or 2w)',
    ]


# -- check_references -------------------------------------------------------------------------


def test_a_trigger_segment_must_exist_and_be_over_the_same_object() -> None:
    data = example()
    data["workflows"][0]["trigger"] = {"segment": "Trail accounts"}
    data["workflows"][1]["trigger"] = {"segment": "Trial Accounts"}
    data["workflows"][2]["trigger"] = {"segment": "QUIET contacts", "when": "leave"}
    assert references(parse_document(data)) == [
        'workflows[0].trigger.segment: no segment is named "Trail accounts"',
        'workflows[1].trigger.segment: "Trial Accounts" is a segment of accounts; '
        "this workflow is over contacts",
    ]


def test_a_trigger_stage_must_be_listed() -> None:
    data = example()
    data["workflows"][3]["trigger"] = {"stage": "Renewl"}
    assert references(parse_document(data)) == [
        'workflows[3].trigger.stage: "Renewl" is not a stage; the stages are Onboarding, '
        "Adoption, Expansion, Renewal, Churned"
    ]
    del data["stages"]
    assert references(parse_document(data), stages=["Renewal"]) == [
        'workflows[3].trigger.stage: "Renewl" is not a stage; the stages are Renewal'
    ]
    assert references(parse_document(data), stages=[]) == []  # no list: any stage


def test_rules_must_name_listed_stages_and_real_buckets() -> None:
    data = example()
    data["workflows"][0]["exit_if"] = 'stage = "Renewl"'
    data["workflows"][0]["steps"][1]["only_if"] = 'health = "great"'
    assert references(parse_document(data)) == [
        "workflows[0].exit_if: stage: 'Renewl' is not a stage; the stages are Onboarding, "
        "Adoption, Expansion, Renewal, Churned",
        "workflows[0].steps[1].only_if: health: 'great' is not a health bucket "
        "(good, neutral, bad)",
    ]


def test_a_webhook_to_a_private_address_is_refused_at_save() -> None:
    data = example()
    data["workflows"][1]["steps"][0]["url"] = "https://internal.example.com/hook"
    data["workflows"][2]["steps"][0]["url"] = "http://hooks.example.com/plain"
    data["workflows"][3]["steps"][0]["url"] = "https://internal.example.com/{{ account.name }}"
    doc = parse_document(data)
    assert references(doc) == [
        "workflows[1].steps[0].url: internal.example.com resolves to 10.0.0.1, a private address",
        "workflows[2].steps[0].url: https is required",
        "workflows[3].steps[0].url: internal.example.com resolves to 10.0.0.1, a private address",
    ]
    allowed = ["internal.example.com", "hooks.example.com"]
    assert references(doc, allowed_hosts=allowed) == []


class FailingResolver:
    def resolve(self, host: str, port: int) -> list[str]:
        raise OSError("temporary failure in name resolution")


def test_a_host_that_cannot_be_resolved_now_is_reported_to_try_again() -> None:
    doc = parse_document(one_workflow())
    assert references(doc, resolver=FailingResolver(), segments={"trial accounts": "account"}) == [
        "workflows[0].steps[0].url: hooks.example.com could not be resolved now: temporary "
        "failure in name resolution; try again"
    ]


def test_an_undefined_template_name_is_reported_at_its_field() -> None:
    data = example()
    step = data["workflows"][0]["steps"][1]
    step["body"] = "{{ account.nmae }} / {{ acount.name }} / {{ owner.nmae }} / {{ nope }}"
    step["headers"] = {"X-Event": "{{ event.nmae }}", "X-Who": "{{ contact.email }}"}
    assert references(parse_document(data)) == [
        "workflows[0].steps[1].body: undefined names 'acount.name', 'owner.nmae', 'nope'",
        "workflows[0].steps[1].headers.X-Event: undefined name 'event.nmae'",
        "workflows[0].steps[1].headers.X-Who: undefined name 'contact.email'",
    ]


def test_traits_properties_and_template_locals_are_accepted() -> None:
    data = example()
    data["workflows"][2]["steps"][0]["body"] = (
        "{{ contact.plan }} {{ contact.account.mrr }} {{ account.traits.name }} "
        "{{ event.properties.format }} {{ event.contact.email }} {{ account['Signup Source'] }} "
        "{{ account.primary_contact.title }} {{ owner.email }} {{ workflow.name }} "
        "{% for item in contact.orders %}{{ item.sku }}{% endfor %}"
        "{% set who = contact %}{{ who.whatever }}"
    )
    assert references(parse_document(data)) == []


def test_a_template_that_fails_on_the_sample_is_reported() -> None:
    data = example()
    data["workflows"][0]["steps"][0]["body"] = "{{ account.__class__ }}"
    assert references(parse_document(data)) == [
        "workflows[0].steps[0].body: unsafe template: attribute '__class__' is private"
    ]


def test_the_sample_has_the_built_in_fields() -> None:
    account = render(
        "{{ account.name }}|{{ account.stage }}|{{ account.health }}|{{ account.health_score }}|"
        "{{ account.owner.email }}|{{ account.created_at.year }}|{{ account.last_seen_at.year }}|"
        "{{ account.primary_contact.first_name }}|{{ account.traits | length }}",
        sample_context("account"),
    )
    assert account == "Acme|Adoption|good|72|owner@example.com|2026|2026|Ada|0"
    contact = render(
        "{{ contact.email }}|{{ contact.first_name }}|{{ contact.last_name }}|{{ contact.name }}|"
        "{{ contact.account.name }}|{{ account.name }}|{{ owner.slack_id }}|{{ workflow.object }}|"
        "{{ event.name }}|{{ event.contact.email }}",
        sample_context("contact"),
    )
    assert contact.split("|") == [
        *("ada@example.com", "Ada", "Lovelace", "Ada Lovelace", "Acme", "Acme", "U0SAMPLE1"),
        *("contact", "login", "ada@example.com"),
    ]
    assert "contact" not in sample_context("account")
