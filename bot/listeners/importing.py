"""`/workflow import`: a workflow file, then the plan of what it changes, then Apply — what
`workflowbot apply` does (engine.workspace.plan / apply) — reached three ways:

- `/workflow import` alone opens a modal. Its submit parses the document before the ack, so a
  problem shows on the field with its line or path; planning counts segment members, so it
  runs after an ack showing a loading view, and views.update then shows the plan with Apply
  (or the document again with what the workspace refuses, e.g. an unknown segment).
- `/workflow import YAML` (``` fences stripped, Slack's `&lt;` entities and link markup undone)
  answers ephemeral with the plan and an Apply button; the result replaces that message.
- A .yml / .yaml file shared with the bot (`file_shared`): files.info, then the download with
  the bot token (only from Slack's own host, at most MAX_FILE_BYTES), and the plan posted in
  the direct message, or ephemeral to the sharer in a channel. In a channel only a file that
  reads as a mapping with `version:` is answered: other YAML is not for us. Other files are
  ignored.

Between the plan and Apply the document waits in a slack_forms row (kind "import", purged after
a week) whose id the plan view's private_metadata or the button's value carries; only its
author opens it, and once. A webhook signing secret Apply creates is shown once: in the modal
or an ephemeral message, never in a message that stays in a conversation.

Who may import (bot.authz), judged on the plan when it is shown and again at Apply, so what a
file leaves as it is needs nobody's permission: SLACK_ADMINS anything; a workflow's `admins`
(its current version's, deleted or not) changes to that workflow; stages, health thresholds,
segments and new workflows are for SLACK_ADMINS only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from blocks import importing as import_blocks
from blocks import kit
from blocks.import_ids import ImportAction, ImportBlock, ImportModal
from bot import forms
from bot.authz import may_manage
from bot.errors import UserError
from bot.listeners import Deps, manage
from engine import fileload, http, workspace
from engine.definitions import DefinitionError, WorkspaceDef, parse_document
from storage.db import session_scope
from storage.queries import slack_forms
from storage.queries import workflows as workflow_rows

if TYPE_CHECKING:
    from bot.listeners.commands import Invocation

log = logging.getLogger(__name__)

FORM_KIND = "import"
MAX_FILE_BYTES = 1_000_000
DOWNLOAD_TIMEOUT_SECONDS = 10.0
YAML_SUFFIXES = (".yml", ".yaml")
LISTED_MAX = 3  # names in a refusal
GONE = (
    "This plan is no longer here: plans last a week and open only for whoever asked. Import "
    "the file again."
)

_FENCE = re.compile(r"\A\s*```[ \t]*(?:(?:ya?ml|json)(?=\s))?[ \t]*\n?|\n?[ \t]*```\s*\Z", re.I)
_LINK = re.compile(r"<((?:https?|mailto):[^|>]*)(?:\|([^>]*))?>")

Handler = Callable[..., None]


class Unreadable(Exception):
    """A document that does not load, validate or fit the workspace; `problems` say where."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# -- the document ------------------------------------------------------------------------------
def strip_fences(text: str) -> str:
    """`text` without the ``` (or ```yaml) around it."""
    return _FENCE.sub("", text)


def from_command(text: str) -> str:
    """The document in a slash command's text: Slack's `<url|typed>` links back to what was
    typed, `&amp;` `&lt;` `&gt;` back to characters, fences stripped."""
    text = _LINK.sub(lambda m: m.group(2) if m.group(2) is not None else m.group(1), text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return strip_fences(text)


def _load(text: str) -> Any:
    try:
        return fileload.load_text(text, source=None)
    except fileload.FileError as exc:
        raise Unreadable([str(exc)]) from None


def _document(data: Any) -> WorkspaceDef:
    try:
        return parse_document(data)
    except DefinitionError as exc:
        raise Unreadable(list(exc.problems)) from None


def _for_us(text: str) -> bool:
    """Whether a file shared in a channel is a workflow file: a mapping with `version:`."""
    try:
        data = _load(text)
    except Unreadable:
        return False
    return isinstance(data, dict) and "version" in data


# -- who may, plan, apply ----------------------------------------------------------------------
def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:LISTED_MAX])
    return shown + (f" and {len(items) - LISTED_MAX} more" if len(items) > LISTED_MAX else "")


def refusal(session: Session, deps: Deps, user: str, intended: workspace.Plan) -> str | None:
    """Why `user` may not apply `intended` (plain text), or None when they may; who may is
    the module docstring's."""
    if may_manage(session, None, user, deps.admins) is None:
        return None
    slack_only = ["the stages"] if intended.stages else []
    slack_only += ["the health thresholds"] if intended.health else []
    slack_only += [f'segment "{s.name}"' for s in intended.segments if s.action != "unchanged"]
    not_theirs = []
    for planned in intended.workflows:
        if not planned.changes:
            continue
        found = workflow_rows.by_name(session, name=planned.name, deleted=True)
        if found is None:
            slack_only.append(f'the new workflow "{planned.name}"')
        elif (
            may_manage(session, manage.current_version_id(session, found), user, deps.admins)
            is not None
        ):
            not_theirs.append(f'"{found.name}"')
    if slack_only:
        return (
            "Only Slack admins (SLACK_ADMINS) may import this, as it creates or changes "
            f"{_listed(slack_only)}."
        )
    if not_theirs:
        return (
            "Only a workflow's admins and the Slack admins (SLACK_ADMINS) may change "
            f"{_listed(not_theirs)}."
        )
    return None


def plan(
    deps: Deps, user: str, doc: WorkspaceDef, *, text: str, source: str | None
) -> import_blocks.ImportPlan:
    """What importing `doc` would change (nothing is written but the form that keeps `text`
    for Apply, when there is something `user` may apply); Unreadable with the workspace's
    problems."""
    now = deps.rt.clock.now()
    with session_scope(deps.rt.db) as session:
        try:
            with session.begin_nested() as planning:
                intended = workspace.plan(
                    session,
                    doc,
                    now=now,
                    allowed_hosts=deps.settings.webhook_allowed_hosts,
                    settings=deps.settings,
                )
                refused = refusal(session, deps, user, intended)
                planning.rollback()
        except DefinitionError as exc:
            raise Unreadable(list(exc.problems)) from None
        form_id = None
        if intended.changes and refused is None:
            data = {"text": text, "source": source}
            form_id = slack_forms.put(session, kind=FORM_KIND, user=user, data=data, now=now)
    return import_blocks.ImportPlan(intended.lines(), form_id, source, refused)


def apply(deps: Deps, user: str, form_id: int) -> import_blocks.Applied:
    """Apply the document kept in `form_id` by `user`, as `workflowbot apply` does (the
    problems when the workspace no longer takes it); UserError when it is gone or already
    applied, or when `user` may not."""
    now = deps.rt.clock.now()
    hosts = deps.settings.webhook_allowed_hosts
    try:
        with session_scope(deps.rt.db) as session:
            # Locked: two Apply clicks at once apply once, the second finds it applied.
            data = slack_forms.get(session, form_id, kind=FORM_KIND, user=user, lock=True)
            if data is None:
                raise UserError(GONE)
            if data.get("applied"):
                raise UserError("This plan is applied already.")
            doc = _document(_load(str(data["text"])))
            intended = workspace.plan(
                session, doc, now=now, allowed_hosts=hosts, settings=deps.settings
            )
            refused = refusal(session, deps, user, intended)
            if refused is not None:
                raise UserError(f":no_entry: Not applied. {kit.escape(refused)}")
            done = deps.apply(session, doc, user)
            applied = {**data, "applied": True}
            slack_forms.replace(session, form_id, kind=FORM_KIND, user=user, data=applied, now=now)
    except DefinitionError as exc:
        return import_blocks.Applied(problems=list(exc.problems))
    except Unreadable as exc:
        return import_blocks.Applied(problems=exc.problems)
    changed = [s for s in done.segments if s.action == "change"]
    return import_blocks.Applied(
        segments_created=sum(1 for s in done.segments if s.action == "create"),
        segments_changed=len(changed),
        entered=sum(s.entering for s in changed),
        left=sum(s.leaving for s in changed),
        workflows=[w.line() for w in done.workflows if w.changes],
        enrolled=[(w.name, w.enrolled_existing) for w in done.workflows if w.enrolled_existing],
        secrets=[(w.name, w.new_secret) for w in done.workflows if w.new_secret],
    )


def _answer(deps: Deps, user: str, text: str, source: str | None) -> import_blocks.Message:
    """The plan of `text` for `user` with Apply, or what is wrong with it."""
    try:
        planned = plan(deps, user, _document(_load(text)), text=text, source=source)
    except Unreadable as exc:
        return import_blocks.problems_message(exc.problems, source)
    return import_blocks.plan_message(planned)


# -- the command and the modal -----------------------------------------------------------------
def command(inv: Invocation) -> None:
    """`/workflow import [YAML]`, acked already: the modal at once, or the plan of the text."""
    if not inv.args:
        if not inv.trigger_id:
            raise UserError("The import form could not open: Slack sent no trigger_id.")
        inv.client.views_open(trigger_id=inv.trigger_id, view=import_blocks.input_view())
        return
    message = _answer(inv.deps, inv.user_id, from_command(inv.args), None)
    inv.respond(response_type="ephemeral", **message)


def _field_error(problems: list[str]) -> str:
    more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
    return kit.truncate(problems[0], forms.ERROR_MAX - len(more)) + more


def _document_submitted(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        text = strip_fences(forms.values(view).get(ImportBlock.DOCUMENT, ""))
        try:
            doc = _document(_load(text))
        except Unreadable as exc:
            errors = {str(ImportBlock.DOCUMENT): _field_error(exc.problems)}
            ack(response_action="errors", errors=errors)
            return
        ack(response_action="update", view=import_blocks.loading_view("Planning"))
        try:
            planned = plan(deps, body["user"]["id"], doc, text=text, source=None)
            shown = import_blocks.plan_view(planned)
        except Unreadable as exc:
            shown = import_blocks.input_view(text, exc.problems)
        client.views_update(view_id=view["id"], view=shown)

    return handle


def _plan_submitted(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        ack(response_action="update", view=import_blocks.loading_view("Applying"))
        try:
            applied = apply(deps, body["user"]["id"], int(view["private_metadata"]))
            shown = import_blocks.applied_view(applied)
        except UserError as exc:
            shown = import_blocks.done_view(str(exc))
        client.views_update(view_id=view["id"], view=shown)

    return handle


# -- the plan message's buttons ----------------------------------------------------------------
def _apply_clicked(deps: Deps) -> Handler:
    """Apply, then the result in place of the plan; new webhook secrets only where nobody but
    the clicker sees them (the plan was ephemeral, else a new ephemeral message)."""

    def handle(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        ephemeral = bool((body.get("container") or {}).get("is_ephemeral"))
        with manage.told(respond):
            applied = apply(deps, body["user"]["id"], int(body["actions"][0]["value"]))
            done = import_blocks.applied_message(applied, with_secrets=ephemeral)
            respond(replace_original=True, **done)
            if applied.secrets and not ephemeral:
                secrets = import_blocks.secrets_message(applied)
                respond(response_type="ephemeral", replace_original=False, **secrets)

    return handle


def _cancelled(ack: Ack, respond: Respond) -> None:
    ack()
    respond(delete_original=True)


# -- a file shared with the bot ----------------------------------------------------------------
def _origin(url: httpx.URL) -> tuple[str, str, int]:
    return url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80)


def download(client: WebClient, info: Mapping[str, Any]) -> str:
    """A shared file's text, fetched with the bot token from Slack (SLACK_API_URL's host or,
    over https, one under it: files.slack.com), the token going nowhere else; Unreadable
    saying why not."""
    too_big = f"it is bigger than {MAX_FILE_BYTES / 1e6:g} MB, the most a workflow file may be"
    size = info.get("size")
    if isinstance(size, int) and size > MAX_FILE_BYTES:
        raise Unreadable([too_big])
    api = httpx.URL(client.base_url)
    scheme, host, port = _origin(api)
    try:
        url = httpx.URL(str(info.get("url_private_download") or ""))
    except httpx.InvalidURL:
        url = httpx.URL("")
    ours = _origin(url) == (scheme, host, port) or (
        url.scheme == "https" and url.host.endswith(f".{host}")
    )
    if not ours:
        raise Unreadable(["Slack gave no download address of its own for it"])
    allowed = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    try:
        with http.client(
            allowed_hosts=allowed,
            resolver=http.SystemResolver(),
            timeout=DOWNLOAD_TIMEOUT_SECONDS,
            max_response_bytes=MAX_FILE_BYTES,
        ) as web:
            got = web.request("GET", str(url), headers={"Authorization": f"Bearer {client.token}"})
    except (http.UrlRefused, http.TransportFailed) as exc:
        raise Unreadable([f"it could not be downloaded: {exc}"]) from None
    if got.status != 200 or got.headers.get("content-type", "").startswith("text/html"):
        raise Unreadable(
            [f"Slack did not hand it over (HTTP {got.status}): the app needs the files:read scope"]
        )
    if got.truncated:
        raise Unreadable([too_big])
    try:
        return got.body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unreadable(["it is not UTF-8 text"]) from None


def _bot_users(body: Mapping[str, Any]) -> set[str]:
    """The app's own user ids (Slack lists them in each event's `authorizations`)."""
    found = body.get("authorizations") or []
    return {str(a.get("user_id")) for a in found if isinstance(a, dict) and a.get("is_bot")}


def _file_shared(deps: Deps) -> Handler:
    """A .yml / .yaml file someone shared where the bot is (Bolt acked the event)."""

    def handle(event: dict[str, Any], body: dict[str, Any], client: WebClient) -> None:
        user = str(event.get("user_id") or "")
        channel = str(event.get("channel_id") or "")
        file_id = str(event.get("file_id") or "")
        if not (user and channel and file_id) or user in _bot_users(body):
            return  # the bot's own upload (`/workflow export`), or nothing to answer to
        info = client.files_info(file=file_id).get("file") or {}
        name = str(info.get("name") or "")
        if not name.lower().endswith(YAML_SUFFIXES):
            return
        direct = channel.startswith("D")
        try:
            text = download(client, info)
        except Unreadable as exc:
            if not direct:
                log.info("shared file %s not read: %s", file_id, exc)
                return
            message = import_blocks.problems_message(exc.problems, name)
        else:
            if not direct and not _for_us(text):
                return
            message = _answer(deps, user, text, name)
        if direct:
            client.chat_postMessage(channel=channel, **message)
        else:
            client.chat_postEphemeral(channel=channel, user=user, **message)

    return handle


def register(app: App, deps: Deps) -> None:
    app.view(str(ImportModal.INPUT))(_document_submitted(deps))
    app.view(str(ImportModal.PLAN))(_plan_submitted(deps))
    app.action(str(ImportAction.APPLY))(_apply_clicked(deps))
    app.action(str(ImportAction.CANCEL))(_cancelled)
    app.event("file_shared")(_file_shared(deps))
