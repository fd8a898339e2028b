"""HubSpot tasks through the CRM v3 API, one per key: search by the key property, then create.

Auth is a private-app token (HUBSPOT_TOKEN, a Bearer token). The key goes into the task
property HUBSPOT_TASK_KEY_PROPERTY; a search for it first makes a repeat answer the task an
earlier attempt made. HubSpot's search index lags a few seconds behind a create, so a repeat
within that window could make a second task; giving the property "unique values" in HubSpot
closes the gap (HubSpot then answers 409, which is retried, and the next search finds it). The
task is associated with the record's company or contact: its `hubspot_id` trait, else a search
by domain (or name) or email.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

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

# HubSpot-defined association types (v4 "default association type IDs").
TASK_TO_COMPANY = 192
TASK_TO_CONTACT = 204


def timestamp(when: datetime) -> str:
    """`when` as HubSpot writes datetimes: ISO 8601 in UTC with milliseconds and a Z."""
    return utc(when).isoformat(timespec="milliseconds").removesuffix("+00:00") + "Z"


class HubSpotClient(http.UsesClient):
    """Creates HubSpot tasks; safe to share between threads. See the module docstring."""

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
        self._http = http.client(
            allowed_hosts=host_port(settings.hubspot_api_url), resolver=resolver, timeout=timeout
        )

    def create_task(self, spec: TaskSpec) -> TaskCreated:
        """The task keyed `spec.key`, made unless an earlier attempt made it."""
        if not self._settings.hubspot_token:
            raise CrmFailed("HubSpot is not connected: set HUBSPOT_TOKEN")
        key_property = self._settings.hubspot_task_key_property
        if not key_property:
            raise CrmFailed("HubSpot is not set up: set HUBSPOT_TASK_KEY_PROPERTY")
        existing = self._search("tasks", key_property, spec.key, "the task by its key")
        if existing:
            return TaskCreated(id=existing[0], created=False, link=None)
        body = self._task(spec, key_property)
        response = self._post("/crm/v3/objects/tasks", body)
        if response.status == 409:
            # The key property requires unique values and an earlier attempt's task is not
            # searchable yet: the next attempt's search finds it.
            raise CrmRetry(
                f"HubSpot already holds a task with {key_property} = {spec.key} "
                f"({_describe(response)}); it will be found on the next attempt"
            )
        if response.status not in (200, 201):
            raise self._error(response, "creating the task")
        task_id = _id(json_body(response))
        if task_id is None:
            raise CrmRetry(f"HubSpot created the task but sent no id: {snippet(response)}")
        return TaskCreated(id=task_id, created=True, link=None)

    def _task(self, spec: TaskSpec, key_property: str) -> dict[str, Any]:
        """The create body: the task's properties and its association with the record."""
        if spec.object_type == "account":
            target, association_type = self._company(spec), TASK_TO_COMPANY
        else:
            target, association_type = self._contact(spec), TASK_TO_CONTACT
        properties = {
            "hs_timestamp": timestamp(spec.due_at),
            "hs_task_subject": spec.subject,
            "hs_task_body": spec.body,
            "hs_task_status": "NOT_STARTED",
            "hs_task_type": "TODO",
            key_property: spec.key,
        }
        if spec.owner_id:
            properties["hubspot_owner_id"] = spec.owner_id
        association = {
            "associationCategory": "HUBSPOT_DEFINED",
            "associationTypeId": association_type,
        }
        return {
            "properties": properties,
            "associations": [{"to": {"id": target}, "types": [association]}],
        }

    def _company(self, spec: TaskSpec) -> str:
        if known := trait(spec.record, "hubspot_id"):
            return known
        for prop in ("domain", "name"):
            if value := trait(spec.record, prop):
                return self._one("companies", "company", prop, value, spec.object_type)
        raise CrmFailed(
            "the account has no hubspot_id trait and no domain or name to find its HubSpot "
            "company by"
        )

    def _contact(self, spec: TaskSpec) -> str:
        if known := trait(spec.record, "hubspot_id"):
            return known
        if email := trait(spec.record, "email"):
            return self._one("contacts", "contact", "email", email, spec.object_type)
        raise CrmFailed(
            "the contact has no hubspot_id trait and no email to find its HubSpot contact by"
        )

    def _one(self, object_type: str, singular: str, prop: str, value: str, ours: str) -> str:
        """The id of the one `object_type` whose `prop` is `value`; CrmFailed if none or many."""
        found = self._search(object_type, prop, value, f"the {singular}")
        if not found:
            raise CrmFailed(f"no HubSpot {singular} with {prop} {value!r}")
        if len(found) > 1:
            raise CrmFailed(
                f"several HubSpot {object_type} have {prop} {value!r}: set the {ours}'s "
                "hubspot_id trait to the right one"
            )
        return found[0]

    def _search(self, object_type: str, prop: str, value: str, what: str) -> list[str]:
        """Ids (at most two) of `object_type` records whose `prop` equals `value`."""
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": prop, "operator": "EQ", "value": value}]}
            ],
            "properties": [prop],
            "limit": 2,
        }
        response = self._post(f"/crm/v3/objects/{object_type}/search", body)
        if response.status != 200:
            raise self._error(response, f"searching {what}")
        data = json_body(response)
        results = data.get("results") if isinstance(data, Mapping) else None
        ids = [_id(item) for item in results] if isinstance(results, list) else [None]
        if None in ids:
            raise CrmRetry(f"HubSpot answered the search for {what} with {snippet(response)}")
        return [i for i in ids if i is not None]

    def _post(self, path: str, body: Mapping[str, Any]) -> http.Response:
        headers = {
            "Authorization": f"Bearer {self._settings.hubspot_token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        url = join(self._settings.hubspot_api_url, path)
        try:
            return self._http.request("POST", url, headers=headers, json=body)
        except http.UrlRefused as exc:
            raise CrmFailed(f"HUBSPOT_API_URL: {exc}") from None
        except http.TransportFailed as exc:
            raise CrmRetry(f"HubSpot did not answer: {exc}") from None

    def _error(self, response: http.Response, doing: str) -> CrmRetry | CrmFailed:
        """The exception for a failed call: 401 names the token, 429 and 5xx may pass."""
        if response.status == 401:
            return CrmFailed(f"HubSpot refused HUBSPOT_TOKEN ({_describe(response)})")
        text = f"HubSpot answered {response.status} to {doing} ({_describe(response)})"
        if http.is_permanent(response.status):
            return CrmFailed(text)
        return CrmRetry(text, self._retry_after(response.headers))

    def _retry_after(self, headers: Mapping[str, str]) -> float | None:
        """Retry-After, else the rate-limit window when none of it is left, else None."""
        wait = http.retry_after(headers, self._clock.now())
        if wait is not None:
            return wait
        lower = {name.lower(): value.strip() for name, value in headers.items()}
        interval = lower.get("x-hubspot-ratelimit-interval-milliseconds", "")
        if lower.get("x-hubspot-ratelimit-remaining") == "0" and interval.isdigit():
            return int(interval) / 1000
        return None


def _id(item: Any) -> str | None:
    value = item.get("id") if isinstance(item, Mapping) else None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value else None


def _describe(response: http.Response) -> str:
    """HubSpot's `category: message`, or the start of the body."""
    data = json_body(response)
    if isinstance(data, Mapping) and isinstance(data.get("message"), str):
        category = data.get("category") or data.get("errorType")
        return f"{category}: {data['message']}" if category else data["message"]
    return snippet(response)
