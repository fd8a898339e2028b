"""`workflowbot doctor` against real local services: the test PostgreSQL and Redis, the Slack
Web API stand-in, a real SMTP server, the Salesforce and HubSpot stand-ins; what it prints,
in plain words, and its exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine

from bot import cli_doctor, doctor_checks
from bot.cli import main
from storage import migrate
from storage.action_models import Connection
from storage.db import make_engine, session_scope
from storage.models import User
from tests.conftest import PG_URL, REDIS_URL, ensure_pg_database, reset_pg_schema, unavailable
from tests.crm_peers import HubSpotPeer, SalesforcePeer, serve
from tests.slack_peer import SlackPeer, slack_peer
from tests.smtp_peer import SmtpPeer, free_port, smtp_peer

# The SMTP stand-in logs in without TLS (the doctor trusts only real certificates).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SECRET = "doctor-secret-key-0123456789-abcdefghijkl"
SIGNING = "doctor-signing-secret-4242"
SMTP_PASSWORD = "smtp-pass-7d1c"

DOCTOR_TOKEN = "fake-bot-token-" + "doctor"  # not token-shaped: no scanner flags it


@pytest.fixture
def slack() -> Iterator[SlackPeer]:
    with slack_peer(token=DOCTOR_TOKEN) as peer:
        yield peer


@pytest.fixture
def smtp() -> Iterator[SmtpPeer]:
    with smtp_peer(users={"mailer": SMTP_PASSWORD}) as peer:
        yield peer


@pytest.fixture
def salesforce() -> Iterator[SalesforcePeer]:
    with serve(SalesforcePeer()) as peer:
        yield peer  # type: ignore[misc]


@pytest.fixture
def hubspot() -> Iterator[HubSpotPeer]:
    with serve(HubSpotPeer()) as peer:
        yield peer  # type: ignore[misc]


@pytest.fixture
def env(
    db: Engine,
    redis_client: Any,
    slack: SlackPeer,
    smtp: SmtpPeer,
    salesforce: SalesforcePeer,
    hubspot: HubSpotPeer,
) -> dict[str, str]:
    """A deployment where everything is right."""
    return {
        "DATABASE_URL": db.url.render_as_string(hide_password=False),
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": SECRET,
        "PUBLIC_URL": "https://bot.example.com",
        "INGEST_WRITE_KEYS": "wk_doctor_write_key",
        "SLACK_BOT_TOKEN": slack.token,
        "SLACK_SIGNING_SECRET": SIGNING,
        "SLACK_API_URL": slack.url,
        "SMTP_URL": smtp.url("mailer", SMTP_PASSWORD),
        "EMAIL_FROM": "CS <cs@example.com>",
        "SALESFORCE_CLIENT_ID": salesforce.client_id,
        "SALESFORCE_CLIENT_SECRET": salesforce.client_secret,
        "SALESFORCE_REFRESH_TOKEN": salesforce.refresh_token,
        "SALESFORCE_LOGIN_URL": salesforce.url,
        "HUBSPOT_TOKEN": hubspot.token,
        "HUBSPOT_API_URL": hubspot.url,
    }


def doctor(env: dict[str, str], *args: str) -> Result:
    return CliRunner().invoke(main, ["doctor", *args], env=env)


def lines(result: Result) -> dict[str, tuple[str, str]]:
    """name -> (status, message) of each printed check."""
    found = {}
    for line in result.output.splitlines():
        status, _, rest = line.partition("  ")
        if status.strip() in ("ok", "warn", "FAIL"):
            name, _, message = rest.strip().partition("  ")
            found[name] = (status.strip(), message.strip())
    return found


def test_a_right_deployment_is_ok_everywhere_and_no_secret_is_printed(
    env: dict[str, str],
    slack: SlackPeer,
    smtp: SmtpPeer,
    salesforce: SalesforcePeer,
    hubspot: HubSpotPeer,
) -> None:
    result = doctor(env)

    assert result.exit_code == 0, result.output
    checks = lines(result)
    assert {name: status for name, (status, _) in checks.items()} == {
        "SECRET_KEY": "ok",
        "PUBLIC_URL": "ok",
        "INGEST_WRITE_KEYS": "ok",
        "WEBHOOK_ALLOWED_HOSTS": "ok",
        "retention": "ok",
        "database": "ok",
        "broker": "ok",
        "Slack": "ok",
        "SMTP": "ok",
        "Gmail": "ok",
        "Salesforce": "ok",
        "HubSpot": "ok",
    }
    assert "every scope of slack-manifest.yml is granted" in checks["Slack"][1]
    assert f"migrated to {migrate.head()}" in checks["database"][1]
    assert "EHLO, login succeed (nothing sent)" in checks["SMTP"][1]
    assert "0 failed" in result.output
    # Each service was really asked, and nothing was sent.
    assert len(slack.calls_to("auth.test")) == 1
    assert smtp.logins == ["mailer"] and smtp.received == []
    assert len(salesforce.token_requests) == 1
    assert [s.path for s in hubspot.requests()] == ["/crm/v3/objects/tasks/search"]
    for secret in (SECRET, SIGNING, SMTP_PASSWORD, slack.token, hubspot.token):
        assert secret not in result.output
    assert salesforce.client_secret not in result.output
    assert salesforce.refresh_token not in result.output


def test_the_scopes_come_from_the_manifest_and_the_stand_in_grants_them_all() -> None:
    from bot.demo.slack_peer import SCOPES

    assert doctor_checks.manifest_scopes() == SCOPES


def test_a_missing_scope_fails_naming_it(env: dict[str, str], slack: SlackPeer) -> None:
    slack.scopes = [s for s in slack.scopes if s not in ("files:read", "users:read.email")]

    result = doctor(env)

    assert result.exit_code == 1
    status, message = lines(result)["Slack"]
    assert status == "FAIL"
    assert "lacks the scope(s) users:read.email, files:read" in message
    assert "reinstall the app" in message


def test_a_refused_token_and_a_missing_signing_secret_fail(
    env: dict[str, str], slack: SlackPeer
) -> None:
    env = env | {"SLACK_BOT_TOKEN": "revoked-" + DOCTOR_TOKEN, "SLACK_SIGNING_SECRET": ""}

    result = doctor(env)

    assert result.exit_code == 1
    checks = lines(result)
    assert checks["Slack"][0] == "FAIL"
    assert "Slack refused SLACK_BOT_TOKEN (invalid_auth)" in checks["Slack"][1]
    assert checks["SLACK_SIGNING_SECRET"][0] == "FAIL"
    assert "refuses to start" in checks["SLACK_SIGNING_SECRET"][1]


def test_slack_unreachable_fails_in_plain_words(env: dict[str, str]) -> None:
    port = free_port()

    result = doctor(env | {"SLACK_API_URL": f"http://127.0.0.1:{port}/api/"})

    status, message = lines(result)["Slack"]
    assert (status, result.exit_code) == ("FAIL", 1)
    assert f"nothing accepts connections on 127.0.0.1:{port} (connection refused)" in message


def test_smtp_on_a_closed_port_fails_in_plain_words(env: dict[str, str]) -> None:
    port = free_port()

    result = doctor(env | {"SMTP_URL": f"smtp://127.0.0.1:{port}?tls=none"})

    assert result.exit_code == 1
    status, message = lines(result)["SMTP"]
    assert status == "FAIL"
    assert message == (
        f"nothing accepts connections on 127.0.0.1:{port} (connection refused): is it "
        "running?; check SMTP_URL"
    )


def test_smtp_with_a_wrong_password_fails_naming_smtp_url(env: dict[str, str]) -> None:
    url = env["SMTP_URL"].replace(SMTP_PASSWORD, "wrong-password")

    result = doctor(env | {"SMTP_URL": url})

    status, message = lines(result)["SMTP"]
    assert status == "FAIL"
    assert "refused the user and password in SMTP_URL" in message
    assert "wrong-password" not in result.output


@pytest.fixture
def empty_database() -> Iterator[Engine]:
    """A second PostgreSQL database with no schema at all."""
    from sqlalchemy.engine import make_url

    url = make_url(PG_URL)
    url = url.set(database=f"{url.database}_doctor_empty")
    try:
        ensure_pg_database(url.render_as_string(hide_password=False))
        engine = make_engine(url.render_as_string(hide_password=False))
        reset_pg_schema(engine)
    except Exception as exc:
        unavailable("PostgreSQL", exc)
    yield engine
    engine.dispose()


def test_an_unmigrated_database_fails_saying_to_upgrade(
    env: dict[str, str], empty_database: Engine
) -> None:
    env = env | {"DATABASE_URL": empty_database.url.render_as_string(hide_password=False)}

    result = doctor(env)

    assert result.exit_code == 1
    status, message = lines(result)["database"]
    assert status == "FAIL"
    assert "has no schema: run `workflowbot db upgrade`" in message
    # Who connected Gmail cannot be known then; the other checks still ran.
    assert lines(result)["Gmail"][0] == "warn"
    assert lines(result)["Slack"][0] == "ok"

    migrate.upgrade(empty_database, "0001")
    result = doctor(env)

    status, message = lines(result)["database"]
    assert status == "FAIL"
    assert f"is at revision 0001, this code needs {migrate.head()}" in message
    assert "run `workflowbot db upgrade`" in message


def test_an_unreachable_database_and_redis_fail_in_plain_words(env: dict[str, str]) -> None:
    db_port, redis_port = free_port(), free_port()
    env = env | {
        "DATABASE_URL": f"postgresql://postgres:pgpass-9f8e@127.0.0.1:{db_port}/nowhere",
        "REDIS_URL": f"redis://:redispass-5a5a@127.0.0.1:{redis_port}/0",
    }

    result = doctor(env)

    assert result.exit_code == 1
    checks = lines(result)
    assert checks["database"][0] == "FAIL"
    assert checks["database"] == (
        "FAIL",
        f"cannot connect to postgresql+psycopg://postgres:***@127.0.0.1:{db_port}/nowhere: "
        f"nothing accepts connections on 127.0.0.1:{db_port} (connection refused): is it "
        "running?; check DATABASE_URL",
    )
    assert checks["broker"] == (
        "FAIL",
        f"Redis (REDIS_URL): nothing accepts connections on 127.0.0.1:{redis_port} "
        "(connection refused): is it running?",
    )
    assert "pgpass-9f8e" not in result.output and "redispass-5a5a" not in result.output


def test_without_a_broker_the_in_process_one_is_noted(env: dict[str, str]) -> None:
    result = doctor(env | {"REDIS_URL": ""})

    assert result.exit_code == 0, result.output
    status, message = lines(result)["broker"]
    assert status == "warn"
    assert "in-process broker works only when everything runs in one process" in message


def test_crm_credentials_that_are_refused_or_incomplete_fail(
    env: dict[str, str], salesforce: SalesforcePeer
) -> None:
    env = env | {"SALESFORCE_REFRESH_TOKEN": "5Aep-revoked", "HUBSPOT_TOKEN": "pat-na1-revoked"}

    result = doctor(env)

    assert result.exit_code == 1
    checks = lines(result)
    assert checks["Salesforce"][0] == "FAIL"
    assert "Salesforce refused SALESFORCE_REFRESH_TOKEN" in checks["Salesforce"][1]
    assert checks["HubSpot"][0] == "FAIL"
    assert "HubSpot refused HUBSPOT_TOKEN" in checks["HubSpot"][1]
    assert "5Aep-revoked" not in result.output and "pat-na1-revoked" not in result.output

    result = doctor(env | {"SALESFORCE_CLIENT_SECRET": "", "SALESFORCE_REFRESH_TOKEN": ""})

    assert lines(result)["Salesforce"] == (
        "FAIL",
        "SALESFORCE_CLIENT_SECRET, SALESFORCE_REFRESH_TOKEN not set: Salesforce tasks fail",
    )


def test_a_hubspot_key_property_tasks_lack_fails_saying_so(env: dict[str, str]) -> None:
    result = doctor(env | {"HUBSPOT_TASK_KEY_PROPERTY": "no_such_property"})

    status, message = lines(result)["HubSpot"]
    assert status == "FAIL"
    assert message.endswith("check that tasks have the property no_such_property")


def test_connected_gmail_users_need_the_google_client(env: dict[str, str], db: Engine) -> None:
    now = datetime.now(UTC)
    with session_scope(db) as session:
        user = User(slack_id="U1", email="ann@example.com", created_at=now)
        session.add(user)
        session.flush()
        session.add(
            Connection(
                user_id=user.id,
                provider="gmail",
                account="ann@example.com",
                secret="encrypted",
                created_at=now,
                updated_at=now,
            )
        )

    result = doctor(env)

    assert result.exit_code == 1
    assert lines(result)["Gmail"] == (
        "FAIL",
        "1 user(s) connected Gmail but GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET not set: "
        "their Gmail steps fail; set both from the Google Cloud OAuth client",
    )

    result = doctor(env | {"GOOGLE_CLIENT_ID": "id", "GOOGLE_CLIENT_SECRET": "google-secret"})

    assert lines(result)["Gmail"] == ("ok", "OAuth client set; 1 user(s) connected")


def test_missing_deployment_settings_fail_with_the_fix(env: dict[str, str]) -> None:
    env = env | {
        "SECRET_KEY": "",
        "INGEST_WRITE_KEYS": "",
        "PUBLIC_URL": "",
        "WEBHOOK_ALLOWED_HOSTS": "https://crm.internal/hook,hooks.internal:8443",
    }

    result = doctor(env)

    assert result.exit_code == 1
    checks = lines(result)
    assert checks["SECRET_KEY"][0] == "FAIL"
    assert "secrets.token_urlsafe(32)" in checks["SECRET_KEY"][1]
    assert checks["INGEST_WRITE_KEYS"][0] == "FAIL"
    assert checks["PUBLIC_URL"][0] == "warn"
    assert checks["WEBHOOK_ALLOWED_HOSTS"] == (
        "FAIL",
        "'https://crm.internal/hook' is not a host or host:port (no scheme, path or *): list "
        "bare host names, e.g. crm.internal:8443",
    )


def test_a_metadata_address_in_allowed_hosts_is_a_warning() -> None:
    checks = list(cli_doctor.check_webhook_hosts(["169.254.169.254", "crm.internal"]))

    assert [c.status for c in checks] == ["warn"]
    assert "cloud metadata address" in checks[0].message


def test_settings_that_do_not_load_are_named(env: dict[str, str]) -> None:
    result = doctor(env | {"TIMEZONE": "Mars/Olympus", "PORT": "0"})

    assert result.exit_code == 1
    checks = lines(result)
    assert checks["TIMEZONE"][0] == "FAIL"
    assert "unknown time zone 'Mars/Olympus'" in checks["TIMEZONE"][1]
    assert checks["PORT"][0] == "FAIL"
    assert "fix the variable PORT" in checks["PORT"][1]


def test_json_output(env: dict[str, str], slack: SlackPeer) -> None:
    slack.scopes = [s for s in slack.scopes if s != "commands"]

    result = doctor(env, "--json")

    assert result.exit_code == 1
    found = {c["name"]: c for c in json.loads(result.output)}
    assert found["Slack"]["status"] == "FAIL"
    assert "commands" in found["Slack"]["message"]
    assert found["database"]["status"] == "ok"
