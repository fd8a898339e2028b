"""The Salesforce and HubSpot task clients against local stand-ins that check every request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from engine import http
from engine.crm import CrmFailed, CrmRetry, TaskCreated, TaskSpec
from engine.crm.hubspot import HubSpotClient
from engine.crm.salesforce import SalesforceClient, soql_quote
from engine.settings import Settings
from tests.crm_peers import HubSpotPeer, SalesforcePeer, hs_error, serve, sf_error
from tests.helpers import free_port

DUE = datetime(2026, 3, 2, 16, 30, 5, 250_000, tzinfo=UTC)


def spec(key: str = "msg_1", object_type: str = "account", **record: Any) -> TaskSpec:
    return TaskSpec(
        key=key,
        subject="Renewal call with Acme",
        body="Health dropped to 41; book the call.",
        due_at=DUE,
        owner_id=record.pop("owner_id", None),
        object_type=object_type,  # type: ignore[arg-type]
        record=record,
    )


# --- Salesforce --------------------------------------------------------------------------------


def sf_settings(peer: SalesforcePeer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "salesforce_client_id": peer.client_id,
        "salesforce_client_secret": peer.client_secret,
        "salesforce_refresh_token": peer.refresh_token,
        "salesforce_login_url": peer.url + "/",
        "salesforce_api_version": peer.version,
        "salesforce_task_key_field": peer.key_field,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def sf() -> Iterator[SalesforcePeer]:
    with serve(SalesforcePeer()) as peer:
        assert isinstance(peer, SalesforcePeer)
        yield peer


@pytest.fixture
def sf_client(sf: SalesforcePeer) -> Iterator[SalesforceClient]:
    with SalesforceClient(sf_settings(sf), http.SystemResolver(), timeout=5) as client:
        yield client


def rest(peer: SalesforcePeer) -> list[str]:
    """The REST requests the peer got, as `METHOD path`."""
    return [f"{s.method} {s.path}" for s in peer.requests("/services/data/")]


def test_salesforce_creates_a_task_on_the_accounts_id(
    sf: SalesforcePeer, sf_client: SalesforceClient
) -> None:
    account = sf.add_account("Acme")
    record: dict[str, Any] = {"name": "Acme", "traits": {"salesforce_id": account}}

    made = sf_client.create_task(spec(owner_id="005000000000001AAA", **record))

    task = sf.tasks["msg_1"]
    assert made == TaskCreated(task["Id"], True, f"{sf.url}/lightning/r/Task/{task['Id']}/view")
    assert task == {
        "Id": made.id,
        "Subject": "Renewal call with Acme",
        "Description": "Health dropped to 41; book the call.",
        "ActivityDate": "2026-03-02",
        "Status": "Not Started",
        "OwnerId": "005000000000001AAA",
        "WhatId": account,
        "WorkflowBot_Key__c": "msg_1",
    }
    assert rest(sf) == ["PATCH /services/data/v61.0/sobjects/Task/WorkflowBot_Key__c/msg_1"]
    token = sf.token_requests[0]
    assert token.headers["content-type"] == "application/x-www-form-urlencoded"


def test_salesforce_repeat_with_the_same_key_makes_no_second_task(
    sf: SalesforcePeer, sf_client: SalesforceClient
) -> None:
    account = sf.add_account("Acme")
    first = sf_client.create_task(spec(salesforce_id=account))
    again = sf_client.create_task(spec(salesforce_id=account))

    assert again == TaskCreated(first.id, False, first.link)
    assert len(sf.tasks) == 1
    assert len(sf.token_requests) == 1  # the session is cached


def test_salesforce_reads_the_id_back_when_an_update_has_no_body(
    sf: SalesforcePeer, sf_client: SalesforceClient
) -> None:
    sf.updates_answer_204 = True
    account = sf.add_account("Acme")
    first = sf_client.create_task(spec(salesforce_id=account))

    again = sf_client.create_task(spec(salesforce_id=account))

    assert (again.id, again.created) == (first.id, False)
    assert (
        rest(sf)[-1] == "GET /services/data/v61.0/sobjects/Task/WorkflowBot_Key__c/msg_1?fields=Id"
    )


def test_salesforce_finds_the_account_by_name_and_the_contact_by_email(
    sf: SalesforcePeer, sf_client: SalesforceClient
) -> None:
    account = sf.add_account("Acme")
    contact = sf.add_contact("ana@acme.example", account)

    sf_client.create_task(spec("msg_a", name="acme"))
    sf_client.create_task(spec("msg_c", "contact", email="ana@acme.example"))

    assert sf.tasks["msg_a"]["WhatId"] == account
    assert sf.tasks["msg_c"]["WhoId"] == contact
    assert "WhatId" not in sf.tasks["msg_c"]
    queries = [r for r in rest(sf) if r.startswith("GET")]
    assert len(queries) == 2


def test_salesforce_links_a_contacts_task_to_its_known_account(
    sf: SalesforcePeer, sf_client: SalesforceClient
) -> None:
    account = sf.add_account("Acme")
    contact = sf.add_contact("ana@acme.example", account)
    record = {
        "email": "x",
        "salesforce_id": contact,
        "account": {"traits": {"salesforce_id": account}},
    }

    sf_client.create_task(spec("msg_c", "contact", **record))

    assert (sf.tasks["msg_c"]["WhoId"], sf.tasks["msg_c"]["WhatId"]) == (contact, account)


def test_salesforce_escapes_quotes_and_backslashes_in_soql(
    sf: SalesforcePeer, sf_client: SalesforceClient
) -> None:
    name = "O'Brien \\ Co"
    account = sf.add_account(name)
    sf.add_account("O")  # what a broken literal would stop at

    sf_client.create_task(spec(name=name))

    assert sf.tasks["msg_1"]["WhatId"] == account
    assert soql_quote(name) == "'O\\'Brien \\\\ Co'"
    assert soql_quote('a"b\nc') == "'a\\\"b\\nc'"


def test_salesforce_record_not_found(sf: SalesforcePeer, sf_client: SalesforceClient) -> None:
    sf.add_account("Acme")

    with pytest.raises(CrmFailed, match=r"no Salesforce Account named 'Globex'"):
        sf_client.create_task(spec(name="Globex"))
    with pytest.raises(CrmFailed, match=r"no Salesforce Contact with email 'x@y.example'"):
        sf_client.create_task(spec(object_type="contact", email="x@y.example"))
    with pytest.raises(CrmFailed, match=r"no salesforce_id trait and no name"):
        sf_client.create_task(spec())
    assert sf.tasks == {}


def test_salesforce_two_accounts_with_the_name_is_not_a_guess(
    sf: SalesforcePeer, sf_client: SalesforceClient
) -> None:
    sf.add_account("Acme")
    sf.add_account("ACME")

    with pytest.raises(CrmFailed, match=r"several Salesforce Accounts are named 'Acme'"):
        sf_client.create_task(spec(name="Acme"))


def test_salesforce_expired_session_is_renewed_once(
    sf: SalesforcePeer, sf_client: SalesforceClient
) -> None:
    account = sf.add_account("Acme")
    sf_client.create_task(spec("msg_1", salesforce_id=account))
    sf.expire_sessions()

    made = sf_client.create_task(spec("msg_2", salesforce_id=account))

    assert made.created
    assert len(sf.token_requests) == 2  # the first session, then exactly one renewal
    assert len(rest(sf)) == 3  # msg_1; msg_2 refused with 401, then sent again


def test_salesforce_a_refused_new_session_is_not_renewed_again(
    sf: SalesforcePeer, sf_client: SalesforceClient
) -> None:
    sf.refuse_sessions = True

    with pytest.raises(CrmFailed, match=r"refused a new access token .*INVALID_SESSION_ID"):
        sf_client.create_task(spec(salesforce_id=sf.add_account("Acme")))
    assert (len(sf.token_requests), len(rest(sf))) == (2, 2)


def test_salesforce_renews_at_most_once_per_task(
    sf: SalesforcePeer, sf_client: SalesforceClient
) -> None:
    sf.add_account("Acme")
    expired = sf_error(401, "INVALID_SESSION_ID", "Session expired or invalid")
    sf.queued += [expired, None, expired]  # the lookup, its repeat, then the upsert

    with pytest.raises(CrmFailed, match=r"refused a new access token"):
        sf_client.create_task(spec(name="Acme"))

    assert len(sf.token_requests) == 2
    assert [r.split(" ")[0] for r in rest(sf)] == ["GET", "GET", "PATCH"]


def test_salesforce_threads_share_one_session(sf: SalesforcePeer) -> None:
    account = sf.add_account("Acme")
    client = SalesforceClient(sf_settings(sf), http.SystemResolver(), timeout=5)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            client.create_task(spec(f"msg_{i}", salesforce_id=account))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    client.close()

    assert errors == []
    assert len(sf.tasks) == 8
    assert len(sf.token_requests) == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"salesforce_refresh_token": "5Aep-revoked"},
            "refused SALESFORCE_REFRESH_TOKEN .*invalid_grant.*reconnect",
        ),
        (
            {"salesforce_client_secret": "wrong"},
            "refused SALESFORCE_CLIENT_ID / SALESFORCE_CLIENT_SECRET",
        ),
        ({"salesforce_client_id": None}, "not connected: set SALESFORCE_CLIENT_ID$"),
        (
            {"salesforce_client_id": "", "salesforce_refresh_token": None},
            "set SALESFORCE_CLIENT_ID, SALESFORCE_REFRESH_TOKEN",
        ),
    ],
)
def test_salesforce_refused_or_missing_credentials(
    sf: SalesforcePeer, overrides: dict[str, Any], message: str
) -> None:
    with (
        SalesforceClient(sf_settings(sf, **overrides), http.SystemResolver()) as client,
        pytest.raises(CrmFailed, match=message),
    ):
        client.create_task(spec(salesforce_id=sf.add_account("Acme")))
    assert rest(sf) == []


def test_salesforce_wrong_key_field_names_the_setting(sf: SalesforcePeer) -> None:
    settings = sf_settings(sf, salesforce_task_key_field="Missing__c")
    with (
        SalesforceClient(settings, http.SystemResolver()) as client,
        pytest.raises(
            CrmFailed, match=r"no Task field Missing__c .*NOT_FOUND.*SALESFORCE_TASK_KEY_FIELD"
        ),
    ):
        client.create_task(spec(salesforce_id=sf.add_account("Acme")))


@pytest.mark.parametrize(
    ("answer", "retry_after"),
    [
        (sf_error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."), None),
        (
            (
                429,
                {"Retry-After": "30"},
                [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "Slow down"}],
            ),
            30.0,
        ),
        (sf_error(503, "SERVER_UNAVAILABLE", "Too many requests"), None),
        (sf_error(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred"), None),
    ],
)
def test_salesforce_rate_limits_and_outages_are_retried_later_not_now(
    sf: SalesforcePeer,
    sf_client: SalesforceClient,
    answer: tuple[int, dict[str, str], Any],
    retry_after: float | None,
) -> None:
    sf.queued.append(answer)

    with pytest.raises(CrmRetry) as caught:
        sf_client.create_task(spec(salesforce_id=sf.add_account("Acme")))

    assert caught.value.retry_after == retry_after
    assert answer[2][0]["errorCode"] in caught.value.error
    assert len(rest(sf)) == 1  # one call: no retry storm
    assert sf.tasks == {}


def test_salesforce_other_4xx_fail_with_salesforces_message(
    sf: SalesforcePeer, sf_client: SalesforceClient
) -> None:
    account = sf.add_account("Acme")

    with pytest.raises(CrmFailed) as caught:
        sf_client.create_task(spec(salesforce_id=account, owner_id="005NOSUCHUSER0AAA"))

    assert caught.value.error == (
        "Salesforce answered 400 to saving the task "
        "(INVALID_CROSS_REFERENCE_KEY: invalid cross reference id)"
    )
    assert len(rest(sf)) == 1


def test_salesforce_down_or_slow_is_retried(sf: SalesforcePeer) -> None:
    down = sf_settings(sf, salesforce_login_url=f"http://127.0.0.1:{free_port()}/")
    with (
        SalesforceClient(down, http.SystemResolver()) as client,
        pytest.raises(CrmRetry, match=r"Salesforce login did not answer"),
    ):
        client.create_task(spec(salesforce_id="001x"))

    account = sf.add_account("Acme")
    with SalesforceClient(sf_settings(sf), http.SystemResolver(), timeout=0.3) as client:
        client.create_task(spec("msg_1", salesforce_id=account))  # the session, while fast
        sf.delay = 1.0
        with pytest.raises(CrmRetry, match=r"timed out"):
            client.create_task(spec("msg_2", salesforce_id=account))


# --- HubSpot -----------------------------------------------------------------------------------


def hs_settings(peer: HubSpotPeer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "hubspot_token": peer.token,
        "hubspot_api_url": peer.url + "/",
        "hubspot_task_key_property": peer.key_property,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def hs() -> Iterator[HubSpotPeer]:
    with serve(HubSpotPeer()) as peer:
        assert isinstance(peer, HubSpotPeer)
        yield peer


@pytest.fixture
def hs_client(hs: HubSpotPeer) -> Iterator[HubSpotClient]:
    with HubSpotClient(hs_settings(hs), http.SystemResolver(), timeout=5) as client:
        yield client


def paths(peer: HubSpotPeer) -> list[str]:
    return [s.path for s in peer.requests()]


def test_hubspot_creates_a_task_associated_with_the_company(
    hs: HubSpotPeer, hs_client: HubSpotClient
) -> None:
    company = hs.add_company("Acme", "acme.example")

    made = hs_client.create_task(spec(owner_id="64492917", name="Acme", hubspot_id=company))

    assert made == TaskCreated(made.id, True, None)
    task = hs.tasks[made.id]
    assert task["properties"] == {
        "hs_timestamp": "2026-03-02T16:30:05.250Z",
        "hs_task_subject": "Renewal call with Acme",
        "hs_task_body": "Health dropped to 41; book the call.",
        "hs_task_status": "NOT_STARTED",
        "hs_task_type": "TODO",
        "hubspot_owner_id": "64492917",
        "workflowbot_key": "msg_1",
    }
    assert task["associations"] == [
        {
            "to": {"id": company},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 192}],
        }
    ]
    assert paths(hs) == ["/crm/v3/objects/tasks/search", "/crm/v3/objects/tasks"]
    search = hs.requests()[0].json
    assert search["filterGroups"] == [
        {"filters": [{"propertyName": "workflowbot_key", "operator": "EQ", "value": "msg_1"}]}
    ]


def test_hubspot_repeat_with_the_same_key_makes_no_second_task(
    hs: HubSpotPeer, hs_client: HubSpotClient
) -> None:
    company = hs.add_company("Acme")
    first = hs_client.create_task(spec(hubspot_id=company))
    hs.seen.clear()

    again = hs_client.create_task(spec(hubspot_id=company))

    assert again == TaskCreated(first.id, False, None)
    assert len(hs.tasks) == 1
    assert paths(hs) == ["/crm/v3/objects/tasks/search"]


def test_hubspot_finds_the_company_by_domain_or_name_and_the_contact_by_email(
    hs: HubSpotPeer, hs_client: HubSpotClient
) -> None:
    by_domain = hs.add_company("Acme", "acme.example")
    by_name = hs.add_company("Globex")
    contact = hs.add_contact("ana@acme.example")

    a = hs_client.create_task(spec("msg_a", name="Acme Inc", traits={"domain": "ACME.example"}))
    b = hs_client.create_task(spec("msg_b", name="Globex"))
    c = hs_client.create_task(spec("msg_c", "contact", email="ana@acme.example"))

    def target(task_id: str) -> tuple[str, int]:
        association = hs.tasks[task_id]["associations"][0]
        return association["to"]["id"], association["types"][0]["associationTypeId"]

    assert target(a.id) == (by_domain, 192)
    assert target(b.id) == (by_name, 192)
    assert target(c.id) == (contact, 204)


def test_hubspot_record_not_found(hs: HubSpotPeer, hs_client: HubSpotClient) -> None:
    with pytest.raises(CrmFailed, match=r"no HubSpot company with domain 'globex.example'"):
        hs_client.create_task(spec(domain="globex.example"))
    with pytest.raises(CrmFailed, match=r"no HubSpot contact with email 'x@y.example'"):
        hs_client.create_task(spec(object_type="contact", email="x@y.example"))
    with pytest.raises(CrmFailed, match=r"no hubspot_id trait and no email"):
        hs_client.create_task(spec(object_type="contact"))
    assert hs.tasks == {}


def test_hubspot_a_key_not_yet_searchable_but_unique_is_retried_then_found(
    hs: HubSpotPeer, hs_client: HubSpotClient
) -> None:
    hs.search_lag, hs.unique_key = True, True
    company = hs.add_company("Acme")
    first = hs_client.create_task(spec(hubspot_id=company))

    with pytest.raises(CrmRetry, match=r"already holds a task with workflowbot_key = msg_1"):
        hs_client.create_task(spec(hubspot_id=company))
    hs.index()
    again = hs_client.create_task(spec(hubspot_id=company))

    assert (again.id, again.created, len(hs.tasks)) == (first.id, False, 1)


def test_hubspot_refused_or_missing_token(hs: HubSpotPeer) -> None:
    with (
        HubSpotClient(hs_settings(hs, hubspot_token="pat-revoked"), http.SystemResolver()) as c,
        pytest.raises(CrmFailed, match=r"HubSpot refused HUBSPOT_TOKEN .*INVALID_AUTHENTICATION"),
    ):
        c.create_task(spec(hubspot_id="9001"))
    assert len(hs.requests()) == 1

    with (
        HubSpotClient(hs_settings(hs, hubspot_token=None), http.SystemResolver()) as c,
        pytest.raises(CrmFailed, match=r"set HUBSPOT_TOKEN"),
    ):
        c.create_task(spec(hubspot_id="9001"))
    assert len(hs.requests()) == 1


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"Retry-After": "7"}, 7.0),
        (
            {
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                "X-HubSpot-RateLimit-Max": "100",
                "X-HubSpot-RateLimit-Remaining": "0",
            },
            10.0,
        ),
        ({"X-HubSpot-RateLimit-Daily-Remaining": "0"}, None),
    ],
)
def test_hubspot_rate_limit_is_retried_later_not_now(
    hs: HubSpotPeer, hs_client: HubSpotClient, headers: dict[str, str], retry_after: float | None
) -> None:
    status, _, body = hs_error(429, "RATE_LIMITS", "You have reached your secondly limit.")
    hs.queued.append((status, headers, body))

    with pytest.raises(CrmRetry) as caught:
        hs_client.create_task(spec(hubspot_id=hs.add_company("Acme")))

    assert caught.value.retry_after == retry_after
    assert "You have reached your secondly limit." in caught.value.error
    assert len(hs.requests()) == 1  # no retry storm


def test_hubspot_5xx_is_retried_and_other_4xx_fail_with_hubspots_message(
    hs: HubSpotPeer, hs_client: HubSpotClient
) -> None:
    company = hs.add_company("Acme")
    hs.queued.append(hs_error(502, "INTERNAL_ERROR", "Bad gateway"))
    with pytest.raises(CrmRetry, match=r"HubSpot answered 502 .*Bad gateway"):
        hs_client.create_task(spec(hubspot_id=company))

    with pytest.raises(CrmFailed) as caught:
        hs_client.create_task(spec(hubspot_id=company, owner_id="999"))
    assert caught.value.error == (
        "HubSpot answered 400 to creating the task (VALIDATION_ERROR: Property values were "
        "not valid: 999 is not a valid owner id (hubspot_owner_id))"
    )
    assert hs.tasks == {}


def test_hubspot_down_or_slow_is_retried(hs: HubSpotPeer) -> None:
    down = hs_settings(hs, hubspot_api_url=f"http://127.0.0.1:{free_port()}/")
    with (
        HubSpotClient(down, http.SystemResolver()) as client,
        pytest.raises(CrmRetry, match=r"HubSpot did not answer"),
    ):
        client.create_task(spec(hubspot_id="9001"))

    hs.delay = 1.0
    with (
        HubSpotClient(hs_settings(hs), http.SystemResolver(), timeout=0.3) as client,
        pytest.raises(CrmRetry, match=r"timed out"),
    ):
        client.create_task(spec(hubspot_id="9001"))
