"""docs/slack-messages.md, generated: what each `/workflow` subcommand answers, the approval
message of an email draft, the App Home and a Slack step's post, built by the real builders
(blocks/, and the pure listener and engine functions that feed them) from fixed sample data:
Acme, a fictional SaaS whose customer-success team runs "Trial welcome" for trial accounts
such as Globex.

`markdown()` is the file's text. test_slack_examples.py compares it with the file
(`UPDATE_DOCS=1` rewrites it), checks every example against Slack's limits, and checks the
`*_text` functions below — the answers the listeners write inline — against what the bot
answers through the real app.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from blocks import approval, home, importing, segments, wizard, wizard_steps
from blocks import stats as stats_blocks
from blocks import workflows as wf
from blocks.ids import COMMAND
from bot import forms
from bot.listeners import commands, insight
from engine import control, gmail_connect, report_links, stats, workspace
from engine import workflows as engine_workflows
from engine.actions import slack as slack_action
from engine.settings import Settings
from engine.step_defs import SlackStep
from storage.models import User
from storage.workflow_models import Enrollment, EnrollmentLog

Kind = Literal["message", "view", "text", "upload"]
Payload = dict[str, Any]
JSON_WIDTH = 100  # a JSON value that fits on one line in this many characters stays on one

# -- the sample data ---------------------------------------------------------------------------
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
DANA = "U05DANA0001"  # Slack id of Dana Reyes, Acme's CSM and a Slack admin
WORKFLOW_ID = 12
COUNTS = {"enrolled": 312, "active": 41, "completed": 248, "exited": 19, "failed": 4}
WORKFLOWS = [
    wf.WorkflowSummary(WORKFLOW_ID, "Trial welcome", "live", "account", 3, COUNTS),
    wf.WorkflowSummary(
        14,
        "Onboarding check-in",
        "live",
        "contact",
        2,
        {"enrolled": 87, "active": 23, "completed": 60, "exited": 4, "failed": 0},
    ),
    wf.WorkflowSummary(15, "Renewal reminder", "draft", "account", 1, {}),
    wf.WorkflowSummary(
        9,
        "Health drop alert",
        "disabled",
        "account",
        4,
        {"enrolled": 55, "active": 0, "completed": 41, "exited": 14, "failed": 0},
    ),
]
TRIAL_WELCOME: dict[str, Any] = {
    "name": "Trial welcome",
    "description": "Greets each new trial account and checks in after three days.",
    "object": "account",
    "trigger": {"segment": "Trial accounts", "when": "enter"},
    "enrollment": "once",
    "exit_if": 'plan = "paying"',
    "steps": [
        {
            "action": "email",
            "to": ["{{ account.primary_contact.email }}"],
            "subject": "Welcome to Acme, {{ account.name }}",
            "body": "Hi,\n\nWelcome to your Acme trial! Reply to this email to book a "
            "30-minute onboarding call.\n\nDana",
            "approval": "#cs-approvals",
        },
        {
            "action": "slack",
            "channel": "#cs-team",
            "text": "*{{ account.name }}* is three days into its trial: time for a check-in.",
            "delay": "3d",
        },
        {"action": "hubspot_task", "subject": "Call {{ account.name }}", "due_in": "2d"},
    ],
}
SEGMENT_CHOICES = wizard.TriggerChoices(
    segments=[("Trial accounts", "account"), ("Quiet trials", "account"), ("Admins", "contact")],
    stages=["Trial", "Onboarding", "Adoption", "Renewal"],
)
AUDIENCE = control.Audience(87, 'members of segment "Trial accounts"')
QUIET_TRIALS = segments.SegmentForm(
    "Quiet trials", "account", 'plan = "trial" and count(login, 7d) < 2'
)
GLOBEX = ("account", "globex")
PENDING = approval.DraftView(
    id=118,
    kind="email",
    status="pending",
    sender="Dana Reyes <dana@acme.example>",
    to=("ada@globex.example",),
    cc=(),
    subject="Welcome to Acme, Globex",
    body="Hi,\n\nWelcome to your Acme trial! Reply to this email to book a 30-minute "
    "onboarding call.\n\nDana",
    record_name="Globex",
    record_type="account",
    owner="Dana Reyes",
    workflow_name="Trial welcome",
    step_number=1,
    approval_channel="#cs-approvals",
    expires_at=NOW + timedelta(days=2),
)
SENT = dataclasses.replace(
    PENDING,
    status="sent",
    decided_by=DANA,
    decided_at=NOW + timedelta(minutes=12),
    sent_at=NOW + timedelta(minutes=12, seconds=2),
)
CANNOT_GO_LIVE = (
    "steps[0].approval: not given and APPROVAL_CHANNEL is not set: name the channel where "
    "drafts wait (#name), or `auto` to send without approval"
)


def _timeline(
    enrollment_id: int, record: str, status: str, lines: Sequence[tuple[timedelta, str]]
) -> control.Timeline:
    enrollment = Enrollment(id=enrollment_id, object_type="account", status=status)
    logged = [
        EnrollmentLog(id=enrollment_id * 100 + i, at=NOW + after, message=message)
        for i, (after, message) in enumerate(lines)
    ]
    return control.Timeline(enrollment, record, 3, logged)


def timelines() -> list[control.Timeline]:
    """Two enrollments of Trial welcome, newest first, as engine.control.timelines reads them."""
    days, hour = timedelta(days=1), timedelta(hours=1)
    return [
        _timeline(
            311,
            "globex",
            "active",
            [
                (timedelta(0), 'enrolled (signal): entered segment "Trial accounts" · version 3'),
                (timedelta(0), "step 1 (email) scheduled now"),
                (
                    timedelta(seconds=2),
                    "step 1 (email): draft #118 to ada@globex.example waits for approval in "
                    "#cs-approvals",
                ),
                (timedelta(minutes=12), f"draft #118 approved by {DANA}"),
                (
                    timedelta(minutes=12, seconds=3),
                    "step 1 (email): draft #118 sent to ada@globex.example",
                ),
                (
                    timedelta(minutes=12, seconds=3),
                    "step 2 (slack) scheduled for 2026-03-05 09:42 UTC",
                ),
            ],
        ),
        _timeline(
            287,
            "initech",
            "completed",
            [
                (-5 * days, 'enrolled (signal): entered segment "Trial accounts" · version 3'),
                (-5 * days, "step 1 (email) scheduled now"),
                (-5 * days + hour, f"draft #97 discarded by {DANA}"),
                (-5 * days + hour, f"step 1 (email) skipped: draft #97 discarded by {DANA}"),
                (-5 * days + hour, "step 2 (slack) scheduled for 2026-02-28 10:30 UTC"),
                (-2 * days + hour, "step 2 (slack): posted to #cs-team"),
                (-2 * days + hour, "step 3 (hubspot_task) scheduled now"),
                (
                    -2 * days + hour,
                    "step 3 (hubspot_task): HubSpot task 90311 created: Call Initech",
                ),
                (-2 * days + hour, "completed"),
            ],
        ),
    ]


def _recent(found: Sequence[control.Timeline]) -> list[str]:
    """The latest log lines, oldest first, as bot.listeners.manage.detail writes them."""
    lines = [
        (
            line.at,
            line.id,
            f"{line.at:%Y-%m-%d %H:%M}  {t.enrollment.object_type} {t.record}  {line.message}",
        )
        for t in found
        for line in t.lines
    ]
    return [text for _, _, text in sorted(lines)[-10:]]


STATS_RANGE = stats.Range(NOW - timedelta(days=30), NOW)
STATS_SUMMARIES = [
    stats.Summary(
        WORKFLOW_ID, "Trial welcome", "live", 64, 41, 38, 6, 2, 58, stats.Rate(27, 58), 0.23
    ),
    stats.Summary(14, "Onboarding check-in", "live", 31, 23, 12, 1, 0, 0, stats.Rate(0, 0), -0.14),
    stats.Summary(15, "Renewal reminder", "draft", 0, 0, 0, 0, 0, 0, stats.Rate(0, 0), None),
    stats.Summary(9, "Health drop alert", "disabled", 0, 0, 3, 2, 0, 0, stats.Rate(0, 0), -1.0),
]
TRIAL_STATS = stats.WorkflowStats(
    workflow_id=WORKFLOW_ID,
    name="Trial welcome",
    status="live",
    version=3,
    range=STATS_RANGE,
    enrolled=64,
    active=41,
    completed=38,
    exited={"exit_if": 5, "manual": 1},
    failed=2,
    steps=[
        stats.StepStats(
            0,
            "email",
            "Welcome to Acme, {{ account.name }}",
            58,
            {"draft discarded": 3, "draft expired": 1},
            1,
            2,
            stats.Wait(38 * 60, 6.2 * 3600, "exact"),
        ),
        stats.StepStats(
            1, "slack", "Post to #cs-team", 47, {}, 0, 9, stats.Wait(3 * 86400, 3 * 86400, "exact")
        ),
        stats.StepStats(
            2, "hubspot_task", "Call {{ account.name }}", 45, {}, 1, 1, stats.Wait(4, 31, "exact")
        ),
    ],
    emails=[
        stats.EmailStats(
            index=0,
            drafted=63,
            approved=59,
            edited=11,
            discarded=3,
            expired=1,
            sent=58,
            failed=1,
            opened=stats.Rate(27, 58),
            machine_opened=9,
            clicked=stats.Rate(8, 58),
            scanner_clicked=3,
            unsubscribed=stats.Rate(1, 58),
            approval_median_seconds=38 * 60,
        )
    ],
    days=[
        stats.Day((NOW - timedelta(days=30 - n)).date(), (3, 1, 2, 0, 4, 2, 1)[n % 7], 1, 0)
        for n in range(30)
    ],
    trend=0.23,
)


def report_url() -> str:
    """Trial welcome's report link, signed by engine.report_links with fixed settings and clock."""
    settings = Settings.model_construct(
        secret_key=["docs-example-key"], public_url="https://workflowbot.acme.example"
    )
    return report_links.link(settings, path=f"/reports/workflows/{WORKFLOW_ID}", now=NOW)


def _insight_examples() -> list[Example]:
    return [
        Example(
            _command("stats"),
            "stats",
            "Anyone sees every workflow in a line: its numbers over the last 30 days and its "
            "trend; `--since 7d`, `30d` or `90d` picks the range. With a name, one workflow's "
            "numbers, funnel, exits, steps and email stats.",
            (
                Shown("message", stats_blocks.stats_list_message(STATS_SUMMARIES, STATS_RANGE)),
                Shown(
                    "message",
                    stats_blocks.stats_message(TRIAL_STATS, report_url=report_url()),
                    f"{_command('stats Trial welcome')}",
                ),
            ),
        ),
        Example(
            _command("report Trial welcome"),
            "report",
            "Anyone gets a signed link to the workflow's report page, valid for 7 days.",
            (Shown("message", stats_blocks.report_message("Trial welcome", report_url())),),
        ),
    ]


DRY_RUN = [
    'workflow "Trial welcome" (version 3, live) for account "globex" — nothing is sent',
    'trigger: matches now: members of segment "Trial accounts"',
    'exit_if `plan = "paying"`: false',
    "already active (enrollment #311): a signal would not enroll it",
    "step 1 (email, at once): would run",
    "    From: Dana Reyes <dana@acme.example>",
    "    To: ada@globex.example",
    "    Subject: Welcome to Acme, Globex",
    "    (waits for approval in #cs-approvals)",
    "    Hi,",
    "step 2 (slack, after 3d): would run",
    "    post to #cs-team",
    "    *Globex* is three days into its trial: time for a check-in.",
    "step 3 (hubspot_task, after 3d): would run",
    "    HubSpot task for the record's owner, due in 2d: Call Globex",
]


def import_plan() -> workspace.Plan:
    """A file adding the segment Quiet trials and a fourth step to Trial welcome."""
    changed = {
        **TRIAL_WELCOME,
        "steps": [
            *TRIAL_WELCOME["steps"],
            {"action": "webhook", "url": "https://hooks.acme.example/cs"},
        ],
    }
    return workspace.Plan(
        segments=[workspace.SegmentPlan("Quiet trials", "account", "create", members=42)],
        workflows=[
            workspace.WorkflowPlan(
                "Trial welcome",
                "change",
                "live",
                "live",
                active=41,
                summary=engine_workflows.changes(TRIAL_WELCOME, changed),
                audience=AUDIENCE,
            )
        ],
    )


def gmail_link() -> str:
    """Dana's consent link, made by engine.gmail_connect with fixed settings and clock."""
    settings = Settings.model_construct(
        secret_key=["docs-example-key"],
        google_client_id="1234-acme.apps.googleusercontent.com",
        public_url="https://workflowbot.acme.example",
    )
    return gmail_connect.link(settings, User(id=7, email="dana@acme.example"), NOW)


def slack_post() -> Payload:
    """What Trial welcome's Slack step posts for Globex (engine.actions.slack)."""
    step = SlackStep.model_validate(TRIAL_WELCOME["steps"][1])
    data = {
        "account": {
            "name": "Globex",
            "stage": "Trial",
            "health": "good",
            "health_score": 72,
            "plan": "trial",
            "mrr": 0,
        },
        "owner": {"name": "Dana Reyes", "email": "dana@acme.example"},
        "workflow": {"name": "Trial welcome", "object": "account", "status": "live"},
    }
    text = slack_action.render_text(step, data)
    blocks = slack_action.notification_blocks(
        text, slack_action.facts(data), slack_action.owner_of(data)
    )
    return {"text": slack_action.notification_text(text), "blocks": blocks}


def export_upload(name: str, filename: str) -> Payload:
    """The files_upload_v2 arguments of `/workflow export` but the file's content."""
    comment = wf.export_comment(name, filename)
    return {"filename": filename, "title": name, "initial_comment": comment}


# -- the examples ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shown:
    """One payload: a message (`text` and `blocks`), a view, a plain-text answer or an
    upload's arguments; `caption` says what it is when an example shows more than one."""

    kind: Kind
    payload: Payload
    caption: str = ""


@dataclass(frozen=True)
class Example:
    heading: str  # the command as typed, or what the message is
    subcommand: str | None  # its key in commands.table()
    when: str  # one sentence: when it shows
    shown: tuple[Shown, ...]


def _message(text_and_blocks: tuple[str, list[dict[str, Any]]]) -> Payload:
    text, blocks = text_and_blocks
    return {"text": text, "blocks": blocks}


def _said(text: str, caption: str = "") -> Shown:
    return Shown("text", {"text": text}, caption)


def _command(args: str) -> str:
    return f"`{COMMAND} {args}`"


def _wizard_examples() -> list[Example]:
    state = wizard.WizardState(
        name=TRIAL_WELCOME["name"],
        description=TRIAL_WELCOME["description"],
        segment="Trial accounts",
        exit_if=TRIAL_WELCOME["exit_if"],
        steps=TRIAL_WELCOME["steps"],
    )
    editing = forms.state_of(TRIAL_WELCOME, workflow_id=WORKFLOW_ID, status="live", version=3)
    first = state.model_copy(update={"step_at": 0})
    return [
        Example(
            _command("new"),
            "new",
            "An admin starts a workflow: the wizard's first modal (Information); Next leads "
            "to Trigger, Actions and Enable, shown below as they look once filled in.",
            (
                Shown("view", wizard.info_view(wizard.WizardState())),
                Shown(
                    "view",
                    wizard.trigger_view(state, SEGMENT_CHOICES),
                    "Trigger: accounts or contacts; a segment, stage, health or event trigger; "
                    "only if; once or every time.",
                ),
                Shown(
                    "view",
                    wizard_steps.actions_view(state),
                    "Actions: each step with its menu (edit, move up or down, remove), Add a "
                    "step, and the exit condition.",
                ),
                Shown(
                    "view",
                    wizard_steps.step_view(
                        first, "email", forms.step_typed(TRIAL_WELCOME["steps"][0])
                    ),
                    "The step modal pushed over Actions, here by Edit on step 1: the action "
                    "(email, Slack, owner, update, team notification, webhook, HubSpot or "
                    "Salesforce task), its fields, the delay and only if.",
                ),
                Shown(
                    "view",
                    wizard.enable_view(state, wizard.Reach(AUDIENCE.count, AUDIENCE.what)),
                    "Enable: the summary, the audience now, and how to save.",
                ),
            ),
        ),
        Example(
            _command("edit Trial welcome"),
            "edit",
            "An admin changes a workflow: a loading modal, then the wizard filled in with its "
            "current version (the name stays); a live workflow's running enrollments keep "
            "their version. Edit in the list's menu opens the same; Duplicate opens it on a "
            "draft copy named “Trial welcome (copy)”.",
            (Shown("view", wizard.info_view(editing)),),
        ),
    ]


def _segment_example() -> Example:
    counted = segments.Count("account", members=42)
    saved = segments.saved_text(QUIET_TRIALS.name, QUIET_TRIALS.object, counted.members or 0)
    return Example(
        _command("segment new"),
        "segment",
        "An admin creates a segment: name, accounts or contacts, and a rule.",
        (
            Shown("view", segments.new_view(segments.SegmentForm())),
            Shown(
                "view",
                segments.new_view(QUIET_TRIALS, counted),
                "After **Count members**: how many records the rule matches now.",
            ),
            Shown("view", segments.done_view(saved), "After **Save**."),
        ),
    )


def _managing_examples() -> list[Example]:
    detail = wf.WorkflowDetail(
        id=WORKFLOW_ID,
        name="Trial welcome",
        description=TRIAL_WELCOME["description"],
        status="live",
        object_type="account",
        version=3,
        counts=COUNTS,
        recent=_recent(timelines()),
    )
    return [
        Example(
            _command("list"),
            "list",
            "Anyone lists the workflows by status, each with its counts and a menu: Open, "
            "View report, Edit, Enable or Disable, Duplicate, Export, Delete.",
            (Shown("message", wf.list_message(WORKFLOWS)),),
        ),
        Example(
            _command("open Trial welcome"),
            "open",
            "Anyone opens a workflow: its description, counts and latest log lines, View "
            "report (an admin also gets Enable or Disable), then its statistics of the last "
            "30 days with each email step's.",
            (
                Shown(
                    "message",
                    stats_blocks.open_message(
                        wf.workflow_message(detail, may_manage=True, report_url=report_url()),
                        TRIAL_STATS,
                    ),
                ),
            ),
        ),
        Example(
            _command("enable Renewal reminder"),
            "enable",
            "An admin makes a workflow live, after its current version is checked against "
            "today's workspace.",
            (
                _said(wf.status_changed_text("Renewal reminder", "live")),
                Shown(
                    "message",
                    wf.cannot_go_live("Renewal reminder", [CANNOT_GO_LIVE]),
                    "When the version cannot go live: every problem.",
                ),
            ),
        ),
        Example(
            _command("disable Trial welcome --exit-all"),
            "disable",
            "An admin stops new enrollments; `--exit-all` also ends the active ones.",
            (_said(wf.status_changed_text("Trial welcome", "disabled", exited=41)),),
        ),
        Example(
            _command("logs Trial welcome"),
            "logs",
            "Anyone reads the newest enrollments' timelines (or one record's: "
            f"{_command('logs Trial welcome globex')}), ten a page; Next and Previous replace "
            "the message with the page after or before.",
            (
                Shown(
                    "message",
                    wf.logs_message(
                        "Trial welcome",
                        None,
                        insight.timeline_lines(timelines()),
                        wf.Paging(WORKFLOW_ID, offset=0, count=2, size=10, more=True),
                    ),
                    "The first page (two enrollments of its ten here).",
                ),
            ),
        ),
        *_insight_examples(),
        Example(
            _command("test Trial welcome globex"),
            "test",
            "Anyone asks what the workflow would do for a record now; nothing is sent.",
            (Shown("message", wf.dry_run_message("Trial welcome", GLOBEX, DRY_RUN)),),
        ),
        Example(
            _command("enroll Trial welcome hooli"),
            "enroll",
            "An admin enrolls a record by hand.",
            (_said(wf.enrolled_text(("account", "hooli"), "Trial welcome", 342)),),
        ),
        Example(
            _command("exit Trial welcome globex"),
            "exit",
            "An admin ends a record's active enrollment.",
            (
                _said(wf.exited_text(GLOBEX, "Trial welcome", left=True)),
                _said(wf.exited_text(GLOBEX, "Trial welcome", left=False), "When it has none."),
            ),
        ),
        Example(
            _command("export Trial welcome"),
            "export",
            "Anyone gets the workflow file, uploaded to the conversation (or to a direct "
            "message where the bot may not post); the answer, then the upload.",
            (
                _said(wf.exported_text("Trial-welcome.yml")),
                Shown(
                    "upload",
                    export_upload("Trial welcome", "Trial-welcome.yml"),
                    "`files_upload_v2`'s arguments, the file's content (the YAML of "
                    "`workflowbot export`) left out.",
                ),
            ),
        ),
    ]


def _import_example() -> Example:
    plan = import_plan()
    planned = importing.ImportPlan(plan.lines(), form_id=57)
    applied = importing.Applied(
        segments_created=1, workflows=[w.line() for w in plan.workflows if w.changes]
    )
    return Example(
        _command("import"),
        "import",
        "An admin imports a workflow file: alone, the command opens a form to paste it; "
        "followed by the file (or for a .yml shared with the bot) it answers with the plan.",
        (
            Shown("view", importing.input_view()),
            Shown("message", importing.plan_message(planned), "The plan, with Apply."),
            Shown(
                "message",
                importing.applied_message(applied, with_secrets=True),
                "After Apply, in place of the plan.",
            ),
        ),
    )


def _admin_examples() -> list[Example]:
    return [
        Example(
            _command("pause-all"),
            "pause-all",
            "A Slack admin holds every send.",
            (_said(wf.paused_text(True)),),
        ),
        Example(
            _command("resume-all"),
            "resume-all",
            "A Slack admin lets the held sends go.",
            (_said(wf.resumed_text(17)),),
        ),
        Example(
            _command("connect gmail"),
            "connect",
            "Anyone gets their own Gmail consent link, valid for an hour.",
            (Shown("message", wf.gmail_link_message(gmail_link())),),
        ),
    ]


def _outside_examples() -> list[Example]:
    home_data = home.HomeData(
        drafts=[PENDING], waiting=1, workflows=WORKFLOWS, gmail_connected=False
    )
    return [
        Example(
            "The approval message of an email draft",
            None,
            "Posted to the step's approval channel when an email step makes a draft, and "
            "updated when it is decided (here: approved, then sent).",
            (
                Shown("message", _message(approval.draft_message(PENDING))),
                Shown("message", _message(approval.draft_message(SENT)), "Sent."),
            ),
        ),
        Example(
            "The App Home",
            None,
            "Published when someone opens the bot's Home tab: the drafts waiting for their "
            "decision, then the workflows.",
            (Shown("view", home.home_view(home_data)),),
        ),
        Example(
            "A Slack step's post",
            None,
            "Posted by a workflow's Slack step: its text, the record's key facts, its owner.",
            (Shown("message", slack_post()),),
        ),
    ]


def examples() -> list[Example]:
    """Every example, in the order of `/workflow help`, then the messages outside commands."""
    new, edit = _wizard_examples()
    listed, opened, *managing = _managing_examples()
    return [
        Example(
            _command("help"),
            "help",
            "Anyone types `/workflow` alone, `help`, or a subcommand the bot does not know "
            "(then with the closest one first).",
            (Shown("message", commands.help_message(commands.table())),),
        ),
        new,
        _segment_example(),
        listed,
        opened,
        edit,
        *managing,
        _import_example(),
        *_admin_examples(),
        *_outside_examples(),
    ]


# -- markdown ------------------------------------------------------------------------------------
def compact_json(value: Any, indent: int = 0, used: int = 0) -> str:
    """`value` as JSON: on one line when it fits JSON_WIDTH, else one item a line."""
    one = json.dumps(value, ensure_ascii=False)
    if used + len(one) <= JSON_WIDTH or not isinstance(value, dict | list) or not value:
        return one
    pad = " " * (indent + 1)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            head = f"{pad}{json.dumps(key, ensure_ascii=False)}: "
            items.append(head + compact_json(item, indent + 1, len(head) + 1))
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + compact_json(item, indent + 1, len(pad) + 1) for item in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


HEAD = f"""# Slack messages

What each `{COMMAND}` subcommand answers, the approval message of an email draft, the App
Home and a Slack step's post: the Block Kit JSON the bot sends, built by the bot's own
builders from sample data (Acme, a SaaS; its workflow "Trial welcome" for trial accounts such
as Globex). Answers are ephemeral: a message is its `text` (the notification and screen
reader line) and `blocks`; a plain answer is `text` alone; a modal or the Home is a view
(`views.open` / `views.update` / `views.publish`).

Generated by `tests/bot/slack_examples.py`, do not edit: `tests/bot/test_slack_examples.py`
fails when this file no longer matches the code, and
`UPDATE_DOCS=1 .venv/bin/pytest tests/bot/test_slack_examples.py` rewrites it.
"""


def markdown() -> str:
    """The text of docs/slack-messages.md."""
    found = examples()
    parts = [
        HEAD.strip(),
        "\n".join(f"- [{e.heading.strip('`')}](#{anchor(e.heading)})" for e in found),
    ]
    for example in found:
        parts.append(f"## {example.heading}\n\n{example.when}")
        for shown in example.shown:
            if shown.caption:
                parts.append(shown.caption)
            parts.append(f"```json\n{compact_json(shown.payload)}\n```")
    return "\n\n".join(parts) + "\n"
