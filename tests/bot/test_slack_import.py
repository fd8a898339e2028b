"""`/workflow import` (the Slack issue: a snippet or a file shared with the bot → the plan of
what changes → an Apply button), through signed requests to the real web app, with the Slack
stand-in recording what Slack received and serving the shared files. A broken document is
refused on its field or in the answer, naming its line or path, and nothing is stored; Apply
writes what the plan said; only admins may import, and a refusal says why; a new webhook
secret is shown once, never in a message that stays in a conversation."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.models.views import View
from sqlalchemy import select

from blocks import importing as import_blocks
from blocks import kit
from blocks.import_ids import ImportAction, ImportBlock, ImportInput, ImportModal
from bot.listeners.importing import Unreadable, download
from engine.runtime import Runtime
from storage.action_models import SlackForm
from storage.db import session_scope
from storage.workflow_models import Workflow, WorkflowVersion
from tests.bot.slack_requests import (
    USER,
    SlackSender,
    checked_blocks,
    event_callback,
    interaction,
    slack_web_app,
)
from tests.engine.flow import Flow
from tests.helpers import count, wait_until
from tests.slack_peer import BOT_USER, FILES_PREFIX, TEAM, Channel, SlackPeer, slack_peer

ADMIN = USER  # in SLACK_ADMINS
STRANGER = "U0STRANGER"
OWNER = "U0OWNER01"  # in one workflow's `admins`
DM = "D0CSM0001"  # ADMIN's direct messages with the bot
KEY = "slack import test secret key"

_ids = itertools.count(1)

TRIAL_WELCOME = """\
version: 1
segments:
  - name: Paying
    object: account
    rule: 'plan = "paying"'
workflows:
  - name: Trial welcome
    object: account
    status: live
    trigger: {segment: Trials}
    steps:
      - action: slack
        channel: '#alerts'
        text: 'New trial: {{ account.name }}'
"""

HOOKED = """\
  - name: Hooked
    object: account
    status: live
    trigger: {segment: Trials}
    steps:
      - action: webhook
        url: http://127.0.0.1:9/hook
"""
WITH_WEBHOOK = f"version: 1\nworkflows:\n{HOOKED}"


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with slack_peer() as found:
        found.on("views.open", lambda peer, params: {"view": {"id": "V1", "hash": "h1"}})
        found.on("views.update", lambda peer, params: {"view": {"id": "V1", "hash": "h2"}})
        found.on("chat.postEphemeral", lambda peer, params: {"message_ts": peer.next_ts()})
        found.channels[DM] = Channel(DM, "", is_im=True, members={BOT_USER, ADMIN})
        yield found


@pytest.fixture
def slack(rt: Runtime, peer: SlackPeer) -> Iterator[SlackSender]:
    rt.settings = rt.settings.model_copy(
        update={
            "slack_admins": [ADMIN],
            "secret_key": [KEY],
            "webhook_allowed_hosts": ["127.0.0.1"],
        }
    )
    with slack_web_app(rt, peer) as sender:
        yield sender


@pytest.fixture
def flow(rt: Runtime) -> Flow:
    """A segment "Trials" with one account in it."""
    found = Flow(rt)
    found.segment("Trials", 'plan = "trial"')
    found.group("acme", name="Acme", plan="trial")
    found.evaluate()
    return found


# -- reading what Slack received ----------------------------------------------------------------
def sent_views(peer: SlackPeer) -> list[dict[str, Any]]:
    views = []
    for call in peer.calls:
        if call.method in ("views.open", "views.update"):
            view = call.params["view"]
            views.append(json.loads(view) if isinstance(view, str) else view)
    return views


def valid(view: dict[str, Any]) -> dict[str, Any]:
    View(**view).validate_json()
    assert len(view["blocks"]) <= kit.VIEW_BLOCKS_MAX
    assert len(view.get("private_metadata", "")) <= kit.PRIVATE_METADATA_MAX
    return view


def checked(message: dict[str, Any]) -> dict[str, Any]:
    checked_blocks(message["blocks"])
    return message


def texts(value: Any) -> str:
    """Every text of a view or message, one per line."""
    if isinstance(value, dict):
        return "\n".join(
            v if k == "text" and isinstance(v, str) else texts(v) for k, v in value.items()
        )
    if isinstance(value, list):
        return "\n".join(texts(v) for v in value)
    return ""


def buttons(message: dict[str, Any]) -> dict[str, str]:
    """action_id -> value of the message's buttons."""
    return {
        e["action_id"]: e.get("value", "")
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    }


def workflows(rt: Runtime) -> dict[str, tuple[str, int, str]]:
    """name -> (status, version, who saved the version)."""
    with session_scope(rt.db) as s:
        rows = s.execute(
            select(Workflow.name, Workflow.status, Workflow.version, WorkflowVersion.created_by)
            .join(WorkflowVersion, WorkflowVersion.workflow_id == Workflow.id)
            .where(WorkflowVersion.number == Workflow.version)
        )
        return {name: (status, version, by) for name, status, version, by in rows}


# -- acting as a person in Slack ----------------------------------------------------------------
def base(user: str) -> dict[str, Any]:
    return {
        "team": {"id": TEAM},
        "user": {"id": user},
        "api_app_id": "A0WFB0001",
        "token": "legacy-verification-token",
        "trigger_id": f"9.{next(_ids)}.abc",
    }


def submit(slack: SlackSender, view: dict[str, Any], user: str, text: str | None = None) -> Any:
    """Press the view's submit (with `text` in the document field); Slack's answer."""
    values = {}
    if text is not None:
        entry = {"type": "plain_text_input", "value": text}
        values = {str(ImportBlock.DOCUMENT): {str(ImportInput.DOCUMENT): entry}}
    shown = dict(view, id="V1", team_id=TEAM, hash="h0", state={"values": values})
    payload = base(user) | {"type": "view_submission", "view": shown}
    response = slack.send(interaction(payload))
    assert response.status_code == 200
    return response.json() if response.content.strip() else {}


def then_view(peer: SlackPeer, before: int) -> dict[str, Any]:
    """The next view the bot sent after `before` had been sent."""
    wait_until(lambda: len(sent_views(peer)) > before)
    return valid(sent_views(peer)[before])


def click(
    slack: SlackSender, action: str, value: str, user: str, *, channel: str, ephemeral: bool
) -> list[dict[str, Any]]:
    """Click a button of a plan message; what the bot answered through its response_url."""
    before = len(slack.responded())
    container = {"type": "message", "channel_id": channel, "is_ephemeral": ephemeral}
    payload = base(user) | {
        "type": "block_actions",
        "container": container | {"message_ts": "1.0"},
        "channel": {"id": channel},
        "response_url": slack.response_url(),
        "actions": [
            {
                "action_id": action,
                "block_id": "b",
                "type": "button",
                "value": value,
                "action_ts": "1",
            }
        ],
    }
    assert slack.send(interaction(payload)).status_code == 200
    wait_until(lambda: len(slack.responded()) > before)
    return slack.responded()[before:]


def command(slack: SlackSender, text: str, user: str = ADMIN) -> dict[str, Any]:
    """`/workflow TEXT`, acked empty; the ephemeral answer after."""
    before = len(slack.responded())
    acked = slack.command(text, user_id=user)
    assert acked.status_code == 200 and acked.content == b"", acked.text
    wait_until(lambda: len(slack.responded()) > before)
    answer = slack.responded()[before]
    assert answer["response_type"] == "ephemeral"
    return checked(answer)


def share(slack: SlackSender, peer: SlackPeer, name: str, content: bytes, **event: str) -> str:
    """Someone shares a file: the `file_shared` event Slack sends (in ADMIN's DM by default)."""
    user = event.get("user_id", ADMIN)
    file_id = peer.add_file(name, content, user=user)
    shared = {
        "type": "file_shared",
        "channel_id": DM,
        "file_id": file_id,
        "user_id": user,
        "file": {"id": file_id},
        "event_ts": "1700000000.000100",
    } | event
    assert slack.send(event_callback(shared, event_id=f"EvIMP{next(_ids):06d}")).status_code == 200
    return file_id


def blocks_of(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The blocks of a Web API call (a JSON body carries a list, a form a JSON string)."""
    blocks = params["blocks"]
    return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


def downloads(peer: SlackPeer) -> list[Any]:
    return [c for c in peer.calls if c.method.startswith(FILES_PREFIX)]


# -- the modal ----------------------------------------------------------------------------------
def test_the_modal_shows_problems_on_the_field_then_the_plan_then_applies(
    rt: Runtime, peer: SlackPeer, slack: SlackSender, flow: Flow
) -> None:
    assert slack.command("import").status_code == 200
    wait_until(lambda: len(sent_views(peer)) == 1)
    form = valid(sent_views(peer)[0])
    assert form["callback_id"] == ImportModal.INPUT
    assert peer.calls_to("views.open")[0].params["trigger_id"]

    broken = submit(slack, form, ADMIN, "version: 1\nworkflows:\n  - name: A\n  name: B\n")
    assert broken["response_action"] == "errors"
    [message] = broken["errors"].values()
    assert message.startswith("line 4: ") and len(message) <= 150, message
    invalid = submit(slack, form, ADMIN, "version: 1\nworkflows:\n  - name: A\n")
    assert "workflows[0]" in invalid["errors"][ImportBlock.DOCUMENT]
    assert "(+" in invalid["errors"][ImportBlock.DOCUMENT]  # more problems than shown
    assert count(rt.db, SlackForm) == 0

    unknown = TRIAL_WELCOME.replace("{segment: Trials}", "{segment: Nobody}")
    before = len(sent_views(peer))
    answer = submit(slack, form, ADMIN, f"```yaml\n{unknown}```")
    assert answer["response_action"] == "update"
    assert valid(answer["view"])["callback_id"] == ImportModal.LOADING
    again = then_view(peer, before)
    assert again["callback_id"] == ImportModal.INPUT
    assert "Nobody" in texts(again["blocks"][:-1])  # the problem, above the field
    typed = again["blocks"][-1]["element"]["initial_value"]
    assert typed == unknown.rstrip("\n")  # what was typed stays, without its fences
    assert count(rt.db, SlackForm) == 0

    before = len(sent_views(peer))
    submit(slack, again, ADMIN, TRIAL_WELCOME)
    planned = then_view(peer, before)
    assert planned["callback_id"] == ImportModal.PLAN
    assert planned["submit"]["text"] == "Apply"
    shown = texts(planned["blocks"])
    assert 'segment "Paying" (account): new, 0 members' in shown
    assert 'workflow "Trial welcome": new, live' in shown
    assert int(planned["private_metadata"]) > 0
    assert workflows(rt) == {}  # planning writes nothing

    before = len(sent_views(peer))
    assert submit(slack, planned, ADMIN)["view"]["callback_id"] == ImportModal.LOADING
    done = then_view(peer, before)
    assert done["callback_id"] == ImportModal.DONE
    assert "Applied: 1 segments created" in texts(done) and "1 workflows" in texts(done)
    assert workflows(rt) == {"Trial welcome": ("live", 1, f"slack:{ADMIN}")}

    before = len(sent_views(peer))
    submit(slack, planned, ADMIN)  # the same plan, submitted again
    assert "applied already" in texts(then_view(peer, before))
    before = len(sent_views(peer))
    submit(slack, form, ADMIN, TRIAL_WELCOME)
    unchanged = then_view(peer, before)
    assert "Nothing to change" in texts(unchanged)
    assert "submit" not in unchanged and "private_metadata" not in unchanged
    assert workflows(rt) == {"Trial welcome": ("live", 1, f"slack:{ADMIN}")}
    assert count(rt.db, SlackForm) == 1  # the applied plan's; none for nothing to apply


# -- a snippet after the command ---------------------------------------------------------------
def test_a_snippet_as_slack_sends_it_gets_the_plan_and_apply_replaces_it(
    rt: Runtime, slack: SlackSender, flow: Flow
) -> None:
    # Slack sends `&`, `<`, `>` as entities; the user fenced the file.
    typed = TRIAL_WELCOME.replace("    trigger", "    only_if: 'mrr &gt; 100'\n    trigger")
    answer = command(slack, f"import\n```\n{typed}```")
    assert 'workflow "Trial welcome": new, live' in texts(answer)
    actions = buttons(answer)
    assert set(actions) == {ImportAction.APPLY, ImportAction.CANCEL}
    assert workflows(rt) == {}

    [result] = click(
        slack, ImportAction.APPLY, actions[ImportAction.APPLY], ADMIN, channel="C1", ephemeral=True
    )
    assert result["replace_original"] is True
    assert "Applied" in checked(result)["text"]
    assert workflows(rt)["Trial welcome"][0] == "live"
    with session_scope(rt.db) as s:
        document = s.scalars(select(WorkflowVersion.document)).one()
    assert document["only_if"] == "mrr > 100"

    [again] = click(
        slack, ImportAction.APPLY, actions[ImportAction.APPLY], ADMIN, channel="C1", ephemeral=True
    )
    assert "applied already" in again["text"] and again["replace_original"] is False


def test_cancel_removes_the_plan(slack: SlackSender, flow: Flow) -> None:
    answer = command(slack, f"import {TRIAL_WELCOME}")
    value = buttons(answer)[ImportAction.CANCEL]
    [gone] = click(slack, ImportAction.CANCEL, value, ADMIN, channel="C1", ephemeral=True)
    assert gone["delete_original"] is True


def test_a_broken_snippet_names_its_line_and_stores_nothing(
    rt: Runtime, slack: SlackSender
) -> None:
    answer = command(slack, "import version: 1\nworkflows: [")
    assert "cannot be imported" in answer["text"]
    assert "line 2" in texts(answer)
    assert not buttons(answer)
    assert count(rt.db, SlackForm) == 0


# -- who may import -----------------------------------------------------------------------------
def test_someone_who_is_not_an_admin_is_refused_with_the_reason(
    rt: Runtime, slack: SlackSender, flow: Flow
) -> None:
    refused = command(slack, f"import {TRIAL_WELCOME}", user=STRANGER)
    said = texts(refused)
    assert "Only Slack admins (SLACK_ADMINS) may import this" in said
    assert 'segment "Paying"' in said and 'the new workflow "Trial welcome"' in said
    assert not buttons(refused)
    assert count(rt.db, SlackForm) == 0

    # The admin's plan, clicked by someone else, opens nothing.
    value = buttons(command(slack, f"import {TRIAL_WELCOME}"))[ImportAction.APPLY]
    [told] = click(slack, ImportAction.APPLY, value, STRANGER, channel="C1", ephemeral=True)
    assert "no longer here" in told["text"]
    assert workflows(rt) == {}


def test_a_workflows_own_admins_may_change_it_and_nothing_else(
    rt: Runtime, slack: SlackSender, flow: Flow
) -> None:
    step = {"action": "slack", "channel": "#alerts", "text": "New trial"}
    flow.workflow(name="Owned", trigger={"segment": "Trials"}, steps=[step], admins=[OWNER])
    flow.workflow(name="Other", trigger={"segment": "Trials"}, steps=[step])
    changed = (
        "version: 1\nworkflows:\n  - name: Owned\n    object: account\n"
        f"    admins: [{OWNER}]\n    trigger: {{segment: Trials}}\n    steps:\n"
        "      - {action: slack, channel: '#alerts', text: 'Hello'}\n"
    )
    answer = command(slack, f"import {changed}", user=OWNER)
    assert 'workflow "Owned": new version' in texts(answer)
    [result] = click(
        slack,
        ImportAction.APPLY,
        buttons(answer)[ImportAction.APPLY],
        OWNER,
        channel="C1",
        ephemeral=True,
    )
    assert "Applied" in result["text"]
    assert workflows(rt)["Owned"] == ("live", 2, f"slack:{OWNER}")

    other = changed.replace("name: Owned", "name: Other").replace(f"    admins: [{OWNER}]\n", "")
    refused = command(slack, f"import {other}", user=OWNER)
    assert "Only a workflow's admins and the Slack admins" in texts(refused)
    assert '"Other"' in texts(refused) and not buttons(refused)
    assert workflows(rt)["Other"][1] == 1


# -- a file shared with the bot -----------------------------------------------------------------
def test_a_file_shared_in_a_direct_message_is_planned_and_applied(
    rt: Runtime, peer: SlackPeer, slack: SlackSender, flow: Flow
) -> None:
    share(slack, peer, "welcome.yml", (TRIAL_WELCOME + HOOKED).encode())
    wait_until(lambda: len(peer.messages(DM)) == 1)
    [posted] = peer.messages(DM)
    checked_blocks(posted["blocks"])
    shown = texts(posted["blocks"])
    assert "`welcome.yml`" in shown and 'workflow "Hooked": new, live' in shown
    [download] = downloads(peer)
    assert download.auth == f"Bearer {peer.token}"
    assert workflows(rt) == {}

    replies = click(
        slack,
        ImportAction.APPLY,
        buttons(posted)[ImportAction.APPLY],
        ADMIN,
        channel=DM,
        ephemeral=False,
    )
    wait_until(lambda: len(slack.responded()) >= 2)
    replaced, secret = slack.responded()[-2:]
    assert replies[0] == replaced
    assert replaced["replace_original"] is True and "Applied" in checked(replaced)["text"]
    assert "whsec_" not in json.dumps(replaced)  # the DM stays: the secret is not in it
    assert secret["response_type"] == "ephemeral" and secret["replace_original"] is False
    assert "whsec_" in texts(checked(secret)) and "shown once" in texts(secret)
    assert set(workflows(rt)) == {"Trial welcome", "Hooked"}
    assert all("whsec_" not in json.dumps(c.params) for c in peer.calls_to("chat.postMessage"))


def test_a_secret_made_from_the_modal_is_shown_in_its_last_view(
    rt: Runtime, peer: SlackPeer, slack: SlackSender, flow: Flow
) -> None:
    slack.command("import")
    form = then_view(peer, 0)
    submit(slack, form, ADMIN, WITH_WEBHOOK)
    planned = then_view(peer, 1)
    submit(slack, planned, ADMIN)
    done = texts(then_view(peer, 2))
    assert 'workflow "Hooked": new, live' in done and "whsec_" in done
    assert "Hooked" in workflows(rt)


def test_a_file_in_a_channel_answers_the_sharer_alone_and_refuses_a_non_admin(
    rt: Runtime, peer: SlackPeer, slack: SlackSender, flow: Flow
) -> None:
    channel = peer.add_channel("cs-team")
    share(slack, peer, "welcome.yaml", TRIAL_WELCOME.encode(), channel_id=channel)
    wait_until(lambda: len(peer.calls_to("chat.postEphemeral")) == 1)
    share(slack, peer, "mine.YML", TRIAL_WELCOME.encode(), channel_id=channel, user_id=STRANGER)
    wait_until(lambda: len(peer.calls_to("chat.postEphemeral")) == 2)
    admin, stranger = (c.params for c in peer.calls_to("chat.postEphemeral"))
    assert (admin["user"], admin["channel"]) == (ADMIN, channel)
    assert ImportAction.APPLY in json.dumps(blocks_of(admin))
    assert stranger["user"] == STRANGER
    assert "Only Slack admins (SLACK_ADMINS) may import this" in texts(blocks_of(stranger))
    assert ImportAction.APPLY not in json.dumps(blocks_of(stranger))
    for params in (admin, stranger):
        checked_blocks(blocks_of(params))
    assert peer.messages(channel) == [] and workflows(rt) == {}


def test_files_not_meant_for_the_bot_are_left_alone(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    """Not YAML; YAML in a channel that is no workflow file, or does not load; the bot's own
    upload (`/workflow export`): no answer, no form."""
    channel = peer.add_channel("engineering")
    share(slack, peer, "notes.txt", b"version: 1\n")
    share(slack, peer, "compose.yml", b"services:\n  web: {image: nginx}\n", channel_id=channel)
    share(slack, peer, "broken.yml", b"a: [\n", channel_id=channel)
    share(slack, peer, "export.yml", TRIAL_WELCOME.encode(), user_id=BOT_USER)
    wait_until(lambda: len(peer.calls_to("files.info")) == 3 and len(downloads(peer)) == 2)
    share(slack, peer, "last.yml", b"version: 1\n")  # answered: after the others, in all likelihood
    wait_until(lambda: len(peer.messages(DM)) == 1)
    assert "Nothing to change" in texts(peer.messages(DM)[0]["blocks"])
    assert len(peer.calls_to("files.info")) == 4  # never for the bot's own file
    assert len(peer.calls_to("chat.postMessage")) == 1 and peer.calls_to("chat.postEphemeral") == []
    assert count(rt.db, SlackForm) == 0


def test_a_broken_or_too_big_file_in_a_direct_message_says_why(
    peer: SlackPeer, slack: SlackSender
) -> None:
    share(slack, peer, "broken.yml", b"version: 1\nworkflows:\n  - name: A\n    object: on\n")
    wait_until(lambda: len(peer.messages(DM)) == 1)
    share(slack, peer, "huge.yml", b"#" * (1_000_001))
    wait_until(lambda: len(peer.messages(DM)) == 2)
    broken, huge = peer.messages(DM)
    for message in (broken, huge):
        checked_blocks(message["blocks"])
    assert "`broken.yml` cannot be imported" in texts(broken["blocks"])
    assert "line 4: on would load as true in YAML 1.1" in texts(broken["blocks"])
    assert "bigger than 1 MB" in texts(huge["blocks"])
    assert len(downloads(peer)) == 1  # the size said it: not downloaded


def test_the_bot_token_goes_only_to_slack(peer: SlackPeer) -> None:
    client = WebClient(token=peer.token, base_url=peer.url)
    file_id = peer.add_file("a.yml", b"version: 1\n", user=ADMIN)
    info = dict(peer.files[file_id][0])
    assert download(client, info) == "version: 1\n"
    for elsewhere in ("http://127.0.0.2:9/a.yml", "https://files.example.com/a.yml", ""):
        with pytest.raises(Unreadable, match="no download address"):
            download(client, info | {"url_private_download": elsewhere})
    unauthorized = WebClient(token="another-token", base_url=peer.url)
    with pytest.raises(Unreadable, match="files:read"):
        download(unauthorized, info)
    assert [c.auth for c in downloads(peer)] == [f"Bearer {peer.token}", "Bearer another-token"]


# -- limits -------------------------------------------------------------------------------------
def test_a_plan_of_200_lines_still_makes_a_valid_view_and_message() -> None:
    lines = [f'segment "<!channel> {i}" (account): new, {i:,} members' for i in range(200)]
    plan = import_blocks.ImportPlan(lines, 7, source="big `file`.yml")
    message = import_blocks.plan_message(plan)
    checked_blocks(message["blocks"])
    assert "…and 150 more" in texts(message)
    assert "<!channel>" not in json.dumps(message) and "&lt;!channel&gt; 49" in texts(message)
    view = valid(import_blocks.plan_view(plan))
    assert view["private_metadata"] == "7"
    problems = [f"workflows[{i}].name: " + "x" * 600 for i in range(200)]
    checked_blocks(import_blocks.problems_message(problems)["blocks"])
    valid(import_blocks.input_view("y" * 5000, problems))
    applied = import_blocks.Applied(workflows=lines, secrets=[("W", "whsec_abc")] * 3)
    valid(import_blocks.applied_view(applied))
    checked_blocks(import_blocks.applied_message(applied, with_secrets=False)["blocks"])


def test_apply_clicked_four_times_at_once_applies_once(rt: Runtime, flow: Flow) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from bot.authz import Admins
    from bot.errors import UserError
    from bot.listeners import Deps, importing
    from engine.definitions import parse_document
    from engine.fileload import load_text

    rt.settings = rt.settings.model_copy(update={"slack_admins": [ADMIN]})
    deps = Deps(rt.settings, rt, Admins([ADMIN], lambda group: []))
    doc = parse_document(load_text(TRIAL_WELCOME, source=None))
    planned = importing.plan(deps, ADMIN, doc, text=TRIAL_WELCOME, source=None)
    assert planned.form_id is not None
    start = Barrier(4)

    def apply(_: int) -> str:
        start.wait()
        try:
            importing.apply(deps, ADMIN, planned.form_id or 0)
        except UserError as exc:
            return str(exc)
        return "applied"

    with ThreadPoolExecutor(4) as pool:
        said = sorted(pool.map(apply, range(4)))
    assert said == ["This plan is applied already."] * 3 + ["applied"]
    assert workflows(rt) == {"Trial welcome": ("live", 1, f"slack:{ADMIN}")}
