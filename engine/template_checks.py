"""What a step's fields are checked against when a workflow is saved: a sample record shaped
like a real render (`sample_context`), its template names (`template_problem`) and the host
of a URL (`url_problems`). Used by the schema's workspace checks and by each action's
`problems`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from typing import Any

from jinja2 import meta

from engine import http, templating
from engine.def_types import url_base


class OpenRecord(dict[str, Any]):
    """A mapping whose unknown names are free traits or properties (see `sample_context`)."""


_SAMPLE_TIME = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)


def _user() -> dict[str, Any]:
    return {"slack_id": "U0SAMPLE1", "email": "owner@example.com", "name": "Sam Owner"}


def _record(name: str) -> OpenRecord:
    return OpenRecord(
        name=name,
        stage="Adoption",
        health_score=72,
        health="good",
        owner=_user(),
        created_at=_SAMPLE_TIME,
        last_seen_at=_SAMPLE_TIME,
        traits=OpenRecord(),
    )


def _contact() -> OpenRecord:
    contact = _record("Ada Lovelace")
    contact.update(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    return contact


def _account() -> OpenRecord:
    account = _record("Acme")
    account["primary_contact"] = _contact()
    return account


def sample_context(object_type: str) -> dict[str, Any]:
    """Plain template data shaped like a real render of a workflow over `object_type`.

    In scope: `account` (with `primary_contact`), `owner` (the record's owner: slack_id, email,
    name), `event` (name, timestamp, properties, contact) and `workflow` (name, description,
    object, status); a contact workflow also has `contact` (with its `account`). An account
    workflow has no `contact`: its people are `account.primary_contact` and `event.contact`.
    Records, `traits` and `event.properties` are `OpenRecord`s: any other name under them is a
    trait or property, so `check_references` accepts it; everything else is strict.
    """
    account, contact = _account(), _contact()
    contact["account"] = account  # the record's contact, or the contact of the event
    record = account if object_type == "account" else contact
    context: dict[str, Any] = {
        "account": account,
        "owner": record["owner"],
        "event": {
            "name": "login",
            "timestamp": _SAMPLE_TIME,
            "properties": OpenRecord(),
            "contact": contact,
        },
        "workflow": {
            "name": "Sample workflow",
            "description": "",
            "object": object_type,
            "status": "live",
        },
    }
    if object_type == "contact":
        context["contact"] = contact
    return context


# -- checks ----------------------------------------------------------------------------------
def url_problems(
    path: str, url: str, allowed_hosts: Collection[str], resolver: http.Resolver
) -> list[str]:
    base = url_base(url)
    if base is None:  # refused while validating
        return []
    try:
        http.check_url(base, allowed_hosts=allowed_hosts, resolver=resolver)
    except http.UrlRefused as exc:
        return [f"{path}: {exc}"]
    except http.TransportFailed as exc:
        return [f"{path}: {exc}; try again"]
    return []


def template_problem(source: str, context: Mapping[str, Any]) -> str | None:
    """Why `source` does not render with the sample, or None; see `sample_context` for which
    undefined names are accepted (free traits and properties, template-local names)."""
    try:
        names = templating.undefined_names(source, context)
    except templating.TemplateError as exc:
        return str(exc)
    taken = meta.find_undeclared_variables(templating.sandbox().parse(source))
    wrong = [name for name in names if _strict_name(name, context, taken)]
    return str(templating.UndefinedName(wrong)) if wrong else None


_PART = re.compile(r"\.([^.\[]+)|\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|-?[0-9]+)\]")


def _strict_name(path: str, context: Mapping[str, Any], taken: Collection[str]) -> bool:
    """Whether the undefined `path` is a mistake: not a free trait or property (a name under an
    OpenRecord) and not rooted at a name the template itself defines (loop variable, set)."""
    head = re.split(r"[.\[]", path, maxsplit=1)[0]
    rest = path[len(head) :]
    if head not in taken:
        return False
    parts: list[object] = [head]
    while rest:
        match = _PART.match(rest)
        if match is None:
            return True
        parts.append(match[1] if match[1] is not None else ast.literal_eval(match[2]))
        rest = rest[match.end() :]
    node: object = context
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return not isinstance(node, OpenRecord)
    return True
