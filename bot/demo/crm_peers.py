"""Salesforce and HubSpot stand-ins on 127.0.0.1 for the CRM clients' tests.

Each checks a request the way the vendor's API reference describes it (method, path, auth,
content type, form fields, JSON shape, field names and values, association types), answers a
wrong one with a 4xx shaped like the vendor's, and keeps its records, so a repeated key is
really found. `queued` answers replace the next API answers (rate limits, outages; None lets
one through), `delay` holds every answer back (timeouts), `seen` records every request.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from bot.demo.serving import QuietHandler, serving

Answer = tuple[int, dict[str, str], Any]  # status, headers, JSON body (None: no body)


@dataclass
class Seen:
    method: str
    path: str  # with the query
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Peer:
    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    queued: list[Answer | None] = field(default_factory=list)  # None: answer as usual
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def requests(self, prefix: str = "") -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path.startswith(prefix)]

    def answer(self, seen: Seen) -> Answer:
        raise NotImplementedError

    def next_id(self) -> int:
        return next(self._ids)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out closed the socket: expected in the timeout tests


@contextmanager
def serve(peer: Peer) -> Iterator[Peer]:
    """Run `peer` on a free 127.0.0.1 port (its `url`) until the block ends."""

    class Handler(QuietHandler):
        def handle_any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            headers = {k.lower(): v for k, v in self.headers.items()}
            seen = Seen(self.command, self.path, headers, self.rfile.read(length))
            with peer.lock:
                peer.seen.append(seen)
            if peer.delay:
                time.sleep(peer.delay)
            with peer.lock:
                status, extra, body = peer.answer(seen)
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_any

    with serving(Handler, _Server) as url:
        peer.url = url
        yield peer


# --- Salesforce --------------------------------------------------------------------------------

TASK_FIELDS = {"Subject", "Description", "ActivityDate", "Status", "OwnerId", "WhatId", "WhoId"}
TASK_STATUSES = {"Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"}
_SOQL = re.compile(
    r"SELECT\s+(?P<fields>\w+(?:\s*,\s*\w+)*)\s+FROM\s+(?P<object>\w+)\s+"
    r"WHERE\s+(?P<field>\w+)\s*=\s*'(?P<rest>.*)",
    re.S | re.I,
)
_SOQL_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "r": "\r", "t": "\t", "b": "\b"}
_SOQL_ESCAPES |= {"f": "\f", "_": "\\_", "%": "\\%"}
# sObject -> (the field it is looked up by, the fields it has)
_LOOKUPS = {"account": ("Name", {"Id", "Name"}), "contact": ("Email", {"Id", "Email", "AccountId"})}


def sf_error(status: int, code: str, message: str, *fields: str) -> Answer:
    return status, {}, [{"message": message, "errorCode": code, "fields": list(fields)}]


def oauth_error(error: str, description: str) -> Answer:
    return 400, {}, {"error": error, "error_description": description}


def _soql_literal(rest: str) -> tuple[str, str] | None:
    """The string literal at the start of `rest` (its opening quote consumed) and what
    follows; None if it is not closed or holds an escape SOQL does not know."""
    out: list[str] = []
    chars = iter(enumerate(rest))
    for i, char in chars:
        if char == "'":
            return "".join(out), rest[i + 1 :]
        if char == "\\":
            nxt = next(chars, (0, ""))[1]
            if nxt not in _SOQL_ESCAPES:
                return None
            out.append(_SOQL_ESCAPES[nxt])
        else:
            out.append(char)
    return None


@dataclass
class SalesforcePeer(Peer):
    client_id: str = "3MVG9-test-consumer-key"
    client_secret: str = "test-consumer-secret"
    refresh_token: str = "5Aep-test-refresh-token"
    version: str = "v61.0"
    key_field: str = "WorkflowBot_Key__c"
    accounts: dict[str, dict[str, str]] = field(default_factory=dict)
    contacts: dict[str, dict[str, str | None]] = field(default_factory=dict)
    users: set[str] = field(default_factory=lambda: {"005000000000001AAA"})
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # by key (case-folded)
    sessions: set[str] = field(default_factory=set)
    refuse_sessions: bool = False  # every access token is refused, even a new one
    updates_answer_204: bool = False  # as API versions before 46.0 answer an update

    def add_account(self, name: str) -> str:
        account_id = f"001{self.next_id():012d}AAA"
        self.accounts[account_id] = {"Id": account_id, "Name": name}
        return account_id

    def add_contact(self, email: str, account_id: str | None = None) -> str:
        contact_id = f"003{self.next_id():012d}AAA"
        self.contacts[contact_id] = {"Id": contact_id, "Email": email, "AccountId": account_id}
        return contact_id

    def expire_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    @property
    def token_requests(self) -> list[Seen]:
        return self.requests("/services/oauth2/token")

    def answer(self, seen: Seen) -> Answer:
        url = urlsplit(seen.path)
        if url.path == "/services/oauth2/token":
            return self._token(seen)
        prefix = f"/services/data/{self.version}/"
        if not url.path.startswith(prefix):
            return sf_error(404, "NOT_FOUND", "The requested resource does not exist")
        if self.queued and (queued := self.queued.pop(0)) is not None:
            return queued
        auth = seen.headers.get("authorization", "")
        if self.refuse_sessions or auth.removeprefix("Bearer ") not in self.sessions:
            return sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        parts = [unquote(p) for p in url.path.removeprefix(prefix).split("/")]
        query = parse_qs(url.query)
        if seen.method == "GET" and parts == ["query"] and len(query.get("q", [])) == 1:
            return self._query(query["q"][0])
        if len(parts) == 4 and parts[:2] == ["sobjects", "Task"] and parts[2] == self.key_field:
            if seen.method == "PATCH":
                return self._upsert(parts[3], seen)
            if seen.method == "GET":
                task = self.tasks.get(parts[3].casefold())
                if task is not None:
                    return 200, {}, {"attributes": {"type": "Task"}, **task}
        return sf_error(404, "NOT_FOUND", "The requested resource does not exist")

    def _token(self, seen: Seen) -> Answer:
        if seen.method != "POST":
            return 405, {}, None
        if not seen.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return oauth_error("unsupported_grant_type", "grant type not supported")
        form = parse_qs(seen.body.decode(), keep_blank_values=True)
        one = {k: v[0] for k, v in form.items() if len(v) == 1}
        if one.get("grant_type") != "refresh_token":
            return oauth_error("unsupported_grant_type", "grant type not supported")
        if one.get("client_id") != self.client_id:
            return oauth_error("invalid_client_id", "client identifier invalid")
        if one.get("client_secret") != self.client_secret:
            return oauth_error("invalid_client", "invalid client credentials")
        if one.get("refresh_token") != self.refresh_token:
            return oauth_error("invalid_grant", "expired access/refresh token")
        token = f"00D000000000001!{uuid.uuid4().hex}"
        self.sessions.add(token)
        return (
            200,
            {},
            {
                "access_token": token,
                "signature": "c2lnbmF0dXJl",
                "scope": "refresh_token api",
                "instance_url": self.url,
                "id": f"{self.url}/id/00D000000000001AAA/005000000000001AAA",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
            },
        )

    def _query(self, soql: str) -> Answer:
        match = _SOQL.fullmatch(soql.strip())
        literal = _soql_literal(match["rest"]) if match else None
        limit = re.fullmatch(r"\s*(?:LIMIT\s+(\d+))?\s*", literal[1], re.I) if literal else None
        if match is None or literal is None or limit is None:
            return sf_error(400, "MALFORMED_QUERY", f"unexpected token in: {soql}")
        sobject = match["object"].lower()
        if sobject not in _LOOKUPS:
            return sf_error(
                400, "INVALID_TYPE", f"sObject type '{match['object']}' is not supported."
            )
        by, known = _LOOKUPS[sobject]
        fields = [f.strip() for f in match["fields"].split(",")]
        for name in [*fields, match["field"]]:
            if name not in known:
                message = f"No such column '{name}' on entity '{match['object']}'."
                return sf_error(400, "INVALID_FIELD", message)
        if match["field"] != by:
            return sf_error(400, "INVALID_FIELD", "the stand-in looks up by Name / Email only")
        table = self.accounts if sobject == "account" else self.contacts
        found = [r for r in table.values() if (r[by] or "").casefold() == literal[0].casefold()]
        found = found[: int(limit[1])] if limit[1] else found
        records = [
            {"attributes": {"type": match["object"]}, **{f: r[f] for f in fields}} for r in found
        ]
        return 200, {}, {"totalSize": len(records), "done": True, "records": records}

    def _upsert(self, key: str, seen: Seen) -> Answer:
        if not seen.headers.get("content-type", "").startswith("application/json"):
            message = "Content-Type header specified in HTTP request is not supported"
            return sf_error(415, "UNSUPPORTED_MEDIA_TYPE", message)
        try:
            body = json.loads(seen.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return sf_error(400, "JSON_PARSER_ERROR", "The request body is not a JSON object")
        if problem := self._task_problem(body):
            return problem
        task = self.tasks.get(key.casefold())
        if task is not None:
            task.update(body)
            if self.updates_answer_204:
                return 204, {}, None
            return 200, {}, {"id": task["Id"], "success": True, "errors": [], "created": False}
        task_id = f"00T{self.next_id():012d}AAA"
        self.tasks[key.casefold()] = {"Id": task_id, "Status": "Not Started", **body}
        self.tasks[key.casefold()][self.key_field] = key
        return 201, {}, {"id": task_id, "success": True, "errors": [], "created": True}

    def _task_problem(self, body: dict[str, Any]) -> Answer | None:
        for name, value in body.items():
            if name in ("Id", self.key_field):
                message = f"Unable to create/update fields: {name}."
                return sf_error(400, "INVALID_FIELD_FOR_INSERT_UPDATE", message, name)
            if name not in TASK_FIELDS:
                message = f"No such column '{name}' on sobject of type Task"
                return sf_error(400, "INVALID_FIELD", message)
            if not isinstance(value, str):
                return sf_error(400, "JSON_PARSER_ERROR", f"{name}: expected a string")
        date = body.get("ActivityDate")
        if date is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
            message = f"Cannot deserialize instance of date from VALUE_STRING value {date}"
            return sf_error(400, "JSON_PARSER_ERROR", message, "ActivityDate")
        if len(body.get("Subject", "")) > 255:
            return sf_error(400, "STRING_TOO_LONG", "Subject: data value too large", "Subject")
        status = body.get("Status")
        if status is not None and status not in TASK_STATUSES:
            message = f"Status: bad value for restricted picklist field: {status}"
            return sf_error(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", message, "Status")
        for name, known in (
            ("OwnerId", self.users),
            ("WhatId", self.accounts),
            ("WhoId", self.contacts),
        ):
            if name in body and body[name] not in known:
                return sf_error(
                    400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", name
                )
        return None


# --- HubSpot -----------------------------------------------------------------------------------

HS_TASK_PROPERTIES = {
    "hs_timestamp",
    "hs_task_subject",
    "hs_task_body",
    "hs_task_status",
    "hs_task_type",
    "hs_task_priority",
    "hubspot_owner_id",
}
HS_STATUSES = {"NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED"}
HS_TYPES = {"EMAIL", "CALL", "TODO", "LINKED_IN"}
# associationTypeId (HUBSPOT_DEFINED) of a task to ... -> the object it must point at
HS_TASK_ASSOCIATIONS = {192: "companies", 204: "contacts"}
_HS_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?Z|\d{10,13}")


def hs_error(status: int, category: str, message: str) -> Answer:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4())}
    return status, {}, body | {"category": category}


@dataclass
class HubSpotPeer(Peer):
    token: str = "pat-na1-00000000-0000-0000-0000-000000000000"
    key_property: str = "workflowbot_key"
    companies: dict[str, dict[str, str]] = field(default_factory=dict)
    contacts: dict[str, dict[str, str]] = field(default_factory=dict)
    owners: set[str] = field(default_factory=lambda: {"64492917"})
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    unique_key: bool = False  # the key property "requires unique values"
    search_lag: bool = False  # a new task is not searchable until `index()`
    unindexed: set[str] = field(default_factory=set)

    def add_company(self, name: str, domain: str | None = None) -> str:
        company_id = str(9000 + self.next_id())
        self.companies[company_id] = {"name": name, "domain": domain or ""}
        return company_id

    def add_contact(self, email: str) -> str:
        contact_id = str(100 + self.next_id())
        self.contacts[contact_id] = {"email": email}
        return contact_id

    def index(self) -> None:
        with self.lock:
            self.unindexed.clear()

    def answer(self, seen: Seen) -> Answer:
        if self.queued and (queued := self.queued.pop(0)) is not None:
            return queued
        if seen.headers.get("authorization") != f"Bearer {self.token}":
            message = (
                "Authentication credentials not found. This API supports OAuth 2.0 "
                "authentication and you can find more details at https://developers.hubspot.com"
            )
            return hs_error(401, "INVALID_AUTHENTICATION", message)
        if seen.method != "POST":
            return hs_error(405, "METHOD_NOT_ALLOWED", f"{seen.method} is not allowed")
        if not seen.headers.get("content-type", "").startswith("application/json"):
            return hs_error(415, "UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json")
        try:
            body = json.loads(seen.body)
        except ValueError:
            return hs_error(400, "VALIDATION_ERROR", "Invalid input JSON on line 1")
        if not isinstance(body, dict):
            return hs_error(400, "VALIDATION_ERROR", "Invalid input JSON: expected an object")
        match = re.fullmatch(r"/crm/v3/objects/(tasks|companies|contacts)(/search)?", seen.path)
        if match and match[2]:
            return self._search(match[1], body)
        if match and match[1] == "tasks":
            return self._create(body)
        return hs_error(404, "OBJECT_NOT_FOUND", f"No route for {seen.path}")

    def _searchable(self, object_type: str) -> dict[str, dict[str, Any]]:
        if object_type == "tasks":
            visible = {i: t for i, t in self.tasks.items() if i not in self.unindexed}
            return {i: t["properties"] for i, t in visible.items()}
        return self.companies if object_type == "companies" else self.contacts

    def _search(self, object_type: str, body: dict[str, Any]) -> Answer:
        known = {
            "tasks": HS_TASK_PROPERTIES | {self.key_property},
            "companies": {"name", "domain"},
            "contacts": {"email"},
        }[object_type]
        groups = body.get("filterGroups")
        limit = body.get("limit", 10)
        if not isinstance(groups, list) or not 1 <= len(groups) <= 5:
            return hs_error(400, "VALIDATION_ERROR", "filterGroups: between 1 and 5 groups")
        if not isinstance(limit, int) or not 0 < limit <= 200:
            return hs_error(400, "VALIDATION_ERROR", "limit: must be between 1 and 200")
        matches: set[str] = set()
        for group in groups:
            filters = group.get("filters") if isinstance(group, dict) else None
            if not isinstance(filters, list) or not 1 <= len(filters) <= 6:
                return hs_error(400, "VALIDATION_ERROR", "filters: between 1 and 6 per group")
            hits = set(self._searchable(object_type))
            for f in filters:
                if not isinstance(f, dict) or f.get("operator") != "EQ":
                    return hs_error(400, "VALIDATION_ERROR", f"unsupported filter {f!r}")
                prop, value = f.get("propertyName"), f.get("value")
                if prop not in known or not isinstance(value, str):
                    message = f"There was a problem with the request: property {prop!r}"
                    return hs_error(400, "VALIDATION_ERROR", message)
                hits &= {
                    i
                    for i, props in self._searchable(object_type).items()
                    if str(props.get(prop, "")).casefold() == value.casefold()
                }
            matches |= hits
        results = [
            {"id": i, "properties": {"hs_object_id": i}, "archived": False} for i in sorted(matches)
        ]
        return 200, {}, {"total": len(results), "results": results[:limit]}

    def _create(self, body: dict[str, Any]) -> Answer:
        properties = body.get("properties")
        if set(body) - {"properties", "associations", "objectWriteTraceId"}:
            return hs_error(400, "VALIDATION_ERROR", f"Unrecognized field {sorted(body)!r}")
        if not isinstance(properties, dict):
            return hs_error(400, "VALIDATION_ERROR", "properties: an object is required")
        if problem := self._property_problem(properties):
            return hs_error(400, "VALIDATION_ERROR", f"Property values were not valid: {problem}")
        if problem := self._association_problem(body.get("associations", [])):
            return hs_error(400, "VALIDATION_ERROR", problem)
        key = properties.get(self.key_property)
        if self.unique_key and key is not None:
            for task_id, task in self.tasks.items():
                if task["properties"].get(self.key_property) == key:
                    message = f"{self.key_property} {key!r} already exists on task {task_id}"
                    return hs_error(409, "CONFLICT", message)
        task_id = str(50_000 + self.next_id())
        self.tasks[task_id] = {"properties": properties, "associations": body.get("associations")}
        if self.search_lag:
            self.unindexed.add(task_id)
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        created = {"id": task_id, "properties": properties, "archived": False}
        return 201, {}, created | {"createdAt": now, "updatedAt": now}

    def _property_problem(self, properties: dict[str, Any]) -> str | None:
        for name, value in properties.items():
            if name not in HS_TASK_PROPERTIES | {self.key_property}:
                return f'Property "{name}" does not exist'
            if not isinstance(value, str):
                return f"{name}: expected a string"
        stamp = properties.get("hs_timestamp")
        if stamp is None:
            return "hs_timestamp is required"
        if not _HS_TIME.fullmatch(stamp):
            return f"{stamp} was not a valid long or ISO 8601 datetime (hs_timestamp)"
        if properties.get("hs_task_status", "NOT_STARTED") not in HS_STATUSES:
            return f"{properties['hs_task_status']} was not one of the allowed options"
        if properties.get("hs_task_type", "TODO") not in HS_TYPES:
            return f"{properties['hs_task_type']} was not one of the allowed options"
        owner = properties.get("hubspot_owner_id")
        if owner is not None and owner not in self.owners:
            return f"{owner} is not a valid owner id (hubspot_owner_id)"
        return None

    def _association_problem(self, associations: Any) -> str | None:
        if not isinstance(associations, list):
            return "associations: a list is required"
        for item in associations:
            to = item.get("to") if isinstance(item, dict) else None
            types = item.get("types") if isinstance(item, dict) else None
            if not isinstance(to, dict) or not isinstance(types, list) or not types:
                return "associations: each needs `to` {id} and `types`"
            target = str(to.get("id"))
            for typ in types:
                if not isinstance(typ, dict) or typ.get("associationCategory") not in (
                    "HUBSPOT_DEFINED",
                    "USER_DEFINED",
                    "INTEGRATOR_DEFINED",
                ):
                    return f"associations: bad associationCategory in {typ!r}"
                type_id = typ.get("associationTypeId")
                object_type = (
                    HS_TASK_ASSOCIATIONS.get(type_id) if isinstance(type_id, int) else None
                )
                if object_type is None:
                    return f"invalid association type {type_id!r} from task"
                if target not in self._searchable(object_type):
                    return f"One or more associations are invalid: no {object_type} {target}"
        return None
