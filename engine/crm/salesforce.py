"""Salesforce Tasks through the REST API, one per key by an upsert on an External ID field.

Auth is the OAuth 2 refresh-token flow against SALESFORCE_LOGIN_URL; the access token and the
instance URL it names are cached per client (behind a lock: clients are shared between
threads) and renewed once per `create_task` when the API answers 401. The task is linked to
its account (WhatId) or contact (WhoId) by the record's `salesforce_id` trait, else by a SOQL
lookup on the Account's Name or the Contact's Email. `PATCH .../sobjects/Task/{field}/{key}`
then creates the task (201) or updates the one made by an earlier attempt (200, or 204 before
API v46), so a repeat makes no second task.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from engine import http
from engine.clock import Clock, SystemClock
from engine.crm import (
    CrmFailed,
    CrmRetry,
    TaskCreated,
    TaskSpec,
    host_port,
    join,
    json_body,
    snippet,
    trait,
    utc,
)
from engine.settings import Settings

# Field lengths of the Task object: longer values are refused with STRING_TOO_LONG.
SUBJECT_MAX = 255
DESCRIPTION_MAX = 32_000
_REQUIRED = (
    ("salesforce_client_id", "SALESFORCE_CLIENT_ID"),
    ("salesforce_client_secret", "SALESFORCE_CLIENT_SECRET"),
    ("salesforce_refresh_token", "SALESFORCE_REFRESH_TOKEN"),
    ("salesforce_login_url", "SALESFORCE_LOGIN_URL"),
    ("salesforce_api_version", "SALESFORCE_API_VERSION"),
    ("salesforce_task_key_field", "SALESFORCE_TASK_KEY_FIELD"),
)
_SOQL_ESCAPES = {
    "\\": "\\\\",
    "'": "\\'",
    '"': '\\"',
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\b": "\\b",
    "\f": "\\f",
}


def soql_quote(value: str) -> str:
    """`value` as a SOQL string literal, quotes and backslashes escaped."""
    return "'" + "".join(_SOQL_ESCAPES.get(char, char) for char in value) + "'"


@dataclass(frozen=True)
class _Session:
    access_token: str
    instance_url: str


class SalesforceClient(http.UsesClient):
    """Creates Salesforce Tasks; safe to share between threads. See the module docstring."""

    def __init__(
        self,
        settings: Settings,
        resolver: http.Resolver,
        *,
        timeout: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        self._settings = settings
        self._clock = clock if clock is not None else SystemClock()
        # The login URL is the operator's, so it may be http or private (a test peer); the
        # instance URL comes from Salesforce and must pass the public-https checks.
        self._http = http.client(
            allowed_hosts=host_port(settings.salesforce_login_url),
            resolver=resolver,
            timeout=timeout,
        )
        self._lock = threading.Lock()
        self._session: _Session | None = None

    def create_task(self, spec: TaskSpec) -> TaskCreated:
        """The Task keyed `spec.key`, made unless an earlier attempt made it."""
        missing = [name for attr, name in _REQUIRED if not getattr(self._settings, attr)]
        if missing:
            raise CrmFailed(f"Salesforce is not connected: set {', '.join(missing)}")
        call = _Call(self)
        fields: dict[str, Any] = {
            "Subject": spec.subject[:SUBJECT_MAX],
            "Description": spec.body[:DESCRIPTION_MAX],
            "ActivityDate": utc(spec.due_at).date().isoformat(),
            "Status": "Not Started",
            **self._links(call, spec),
        }
        if spec.owner_id:
            fields["OwnerId"] = spec.owner_id
        key_field = self._settings.salesforce_task_key_field
        path = f"/sobjects/Task/{quote(key_field, safe='')}/{quote(spec.key, safe='')}"
        response = call.rest("PATCH", path, fields)
        if response.status in (200, 201):
            task_id = _field(json_body(response), "id")
            if task_id is None:
                raise CrmRetry(f"Salesforce saved the task but sent no id: {snippet(response)}")
        elif response.status == 204:
            # API versions before 46.0 answer an update with no body: read the id back.
            response = call.rest("GET", path + "?fields=Id")
            task_id = _field(json_body(response), "Id") if response.status == 200 else None
            if task_id is None:
                raise self._error(response, "reading the task back")
        elif response.status == 404:
            raise CrmFailed(
                f"Salesforce has no Task field {key_field} to key tasks by "
                f"({_describe(response)}): set SALESFORCE_TASK_KEY_FIELD to an External ID "
                "field of Task (and check SALESFORCE_API_VERSION)"
            )
        elif response.status == 300:
            raise CrmFailed(f"several Salesforce Tasks have {key_field} = {spec.key}")
        else:
            raise self._error(response, "saving the task")
        link = f"{call.instance_url}/lightning/r/Task/{task_id}/view"
        return TaskCreated(id=task_id, created=response.status == 201, link=link)

    def _links(self, call: _Call, spec: TaskSpec) -> dict[str, str]:
        """WhatId (the account) or WhoId (the contact, and WhatId when its account is known)."""
        if spec.object_type == "account":
            return {"WhatId": self._find(call, "Account", "Name", trait(spec.record, "name"), spec)}
        links = {"WhoId": self._find(call, "Contact", "Email", trait(spec.record, "email"), spec)}
        if account_id := trait(spec.record.get("account"), "salesforce_id"):
            links["WhatId"] = account_id
        return links

    def _find(
        self, call: _Call, sobject: str, field: str, value: str | None, spec: TaskSpec
    ) -> str:
        """The record's Salesforce id: its `salesforce_id` trait, else one lookup by `field`."""
        if known := trait(spec.record, "salesforce_id"):
            return known
        how = "named" if field == "Name" else "with email"
        if value is None:
            raise CrmFailed(
                f"the {spec.object_type} has no salesforce_id trait and no "
                f"{field.lower()} to find its Salesforce {sobject} by"
            )
        soql = f"SELECT Id FROM {sobject} WHERE {field} = {soql_quote(value)} LIMIT 2"
        response = call.rest("GET", "/query?" + urlencode({"q": soql}, quote_via=quote))
        if response.status != 200:
            raise self._error(response, f"looking up the {sobject}")
        data = json_body(response)
        records = data.get("records") if isinstance(data, Mapping) else None
        if not isinstance(records, list):
            raise CrmRetry(f"Salesforce answered the {sobject} lookup with {snippet(response)}")
        if not records:
            raise CrmFailed(f"no Salesforce {sobject} {how} {value!r}")
        if len(records) > 1:
            raise CrmFailed(
                f"several Salesforce {sobject}s are {how} {value!r}: set the "
                f"{spec.object_type}'s salesforce_id trait to the right one"
            )
        found = _field(records[0], "Id")
        if found is None:
            raise CrmRetry(f"Salesforce answered the {sobject} lookup with {snippet(response)}")
        return found

    # --- Session ---------------------------------------------------------------------------

    def _current(self, stale: _Session | None = None) -> _Session:
        """The cached session, or a new one if there is none or it is `stale` (refused)."""
        with self._lock:
            # Another thread may have renewed it while this one waited: use theirs.
            if self._session is None or self._session is stale:
                self._session = self._refresh()
            return self._session

    def _refresh(self) -> _Session:
        """A new access token and instance URL by the refresh-token grant."""
        s = self._settings
        form = {
            "grant_type": "refresh_token",
            "client_id": s.salesforce_client_id or "",
            "client_secret": s.salesforce_client_secret or "",
            "refresh_token": s.salesforce_refresh_token or "",
        }
        url = join(s.salesforce_login_url, "/services/oauth2/token")
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        try:
            response = self._http.request(
                "POST", url, headers=headers, content=urlencode(form).encode()
            )
        except http.UrlRefused as exc:
            raise CrmFailed(f"SALESFORCE_LOGIN_URL: {exc}") from None
        except http.TransportFailed as exc:
            raise CrmRetry(f"Salesforce login did not answer: {exc}") from None
        data = json_body(response)
        data = data if isinstance(data, Mapping) else {}
        token, instance = data.get("access_token"), data.get("instance_url")
        if response.status == 200 and isinstance(token, str) and isinstance(instance, str):
            return _Session(token, instance.rstrip("/"))
        error = data.get("error")
        detail = f"{error}: {data.get('error_description')}" if error else snippet(response)
        if error == "invalid_grant":
            raise CrmFailed(
                f"Salesforce refused SALESFORCE_REFRESH_TOKEN ({detail}): reconnect "
                "Salesforce and set the new refresh token"
            )
        if error in ("invalid_client_id", "invalid_client"):
            raise CrmFailed(
                f"Salesforce refused SALESFORCE_CLIENT_ID / SALESFORCE_CLIENT_SECRET ({detail})"
            )
        text = f"Salesforce login answered {response.status} ({detail})"
        if response.status == 200 or not http.is_permanent(response.status):
            raise CrmRetry(text, http.retry_after(response.headers, self._clock.now()))
        raise CrmFailed(text)

    def _send(
        self, session: _Session, method: str, path: str, body: Mapping[str, Any] | None
    ) -> http.Response:
        url = f"{session.instance_url}/services/data/{self._settings.salesforce_api_version}"
        headers = {"Authorization": f"Bearer {session.access_token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            return self._http.request(method, url + path, headers=headers, json=body)
        except http.UrlRefused as exc:
            raise CrmFailed(f"Salesforce's instance URL is refused: {exc}") from None
        except http.TransportFailed as exc:
            raise CrmRetry(f"Salesforce did not answer: {exc}") from None

    def _error(self, response: http.Response, doing: str) -> CrmRetry | CrmFailed:
        """The exception for a failed REST call: rate limits and 5xx may pass."""
        text = f"Salesforce answered {response.status} to {doing} ({_describe(response)})"
        limited = response.status == 403 and "REQUEST_LIMIT_EXCEEDED" in _codes(response)
        if limited or not http.is_permanent(response.status):
            return CrmRetry(text, http.retry_after(response.headers, self._clock.now()))
        return CrmFailed(text)


class _Call:
    """The REST requests of one `create_task`: one session, renewed at most once on a 401."""

    def __init__(self, client: SalesforceClient) -> None:
        self._client = client
        self._session = client._current()
        self._renewed = False

    @property
    def instance_url(self) -> str:
        return self._session.instance_url

    def rest(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> http.Response:
        """The answer to `method` on `/services/data/{version}{path}`; a 401 renews once."""
        response = self._client._send(self._session, method, path, body)
        if response.status == 401 and not self._renewed:
            self._renewed = True
            self._session = self._client._current(stale=self._session)
            response = self._client._send(self._session, method, path, body)
        if response.status == 401:
            raise CrmFailed(
                f"Salesforce refused a new access token ({_describe(response)}): check that "
                "the connected app's user may use the API"
            )
        return response


def _field(data: Any, name: str) -> str | None:
    value = data.get(name) if isinstance(data, Mapping) else None
    return value if isinstance(value, str) and value else None


def _errors(response: http.Response) -> list[Mapping[str, Any]]:
    """Salesforce's `[{"errorCode", "message"}]`, or [] if the body is something else."""
    data = json_body(response)
    if isinstance(data, Mapping):
        data = [data]
    if not isinstance(data, list):
        return []
    return [item for item in data if isinstance(item, Mapping) and "errorCode" in item]


def _codes(response: http.Response) -> set[str]:
    return {str(item.get("errorCode")) for item in _errors(response)}


def _describe(response: http.Response) -> str:
    errors = _errors(response)
    if not errors:
        return snippet(response)
    return "; ".join(f"{item.get('errorCode')}: {item.get('message')}" for item in errors)
