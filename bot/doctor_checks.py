"""The checks of `workflowbot doctor` that talk to a service: database, broker, Slack, SMTP,
Gmail's OAuth client, Salesforce and HubSpot; each says in plain words what is wrong and the fix.

Every network attempt gives up after TIMEOUT seconds. Messages may name hosts and URLs (without
their passwords); `bot.cli_doctor` scrubs every configured secret before printing.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from sqlalchemy import Engine, func, select

from bot.cli_common import first_line, safe_url
from engine.settings import Settings

TIMEOUT = 5.0
MANIFEST = Path(__file__).resolve().parent.parent / "slack-manifest.yml"

Status = Literal["ok", "warn", "FAIL"]
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, how it went, and in plain words why and what to do."""

    name: str
    status: Status
    message: str


def ok(name: str, message: str) -> Check:
    return Check(name, "ok", message)


def warn(name: str, message: str) -> Check:
    return Check(name, "warn", message)


def failed(name: str, message: str) -> Check:
    return Check(name, "FAIL", message)


# --- plain words for network failures ---------------------------------------------------------


def reach(host: str, port: int, timeout: float = TIMEOUT) -> str | None:
    """None when a TCP connection to host:port opens, else why not, in plain words."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except socket.gaierror:
        return f"the host name {host} does not resolve (a typo, or DNS from here?)"
    except ConnectionRefusedError:
        return f"nothing accepts connections on {host}:{port} (connection refused): is it running?"
    except TimeoutError:
        return f"{host}:{port} did not answer within {timeout:g} s (a firewall, or the wrong host?)"
    except OSError as exc:
        return f"cannot connect to {host}:{port} ({exc.strerror or type(exc).__name__})"


def _host_port(url: str, default_port: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "localhost", parts.port or default_port


# --- the checks -------------------------------------------------------------------------------

# --- the checks -------------------------------------------------------------------------------


def check_database(settings: Settings, engine: Engine) -> Check:
    """Reachable, and migrated to the revision this code needs."""
    from alembic.script import ScriptDirectory

    from storage import migrate

    where = safe_url(settings)
    url = engine.url
    tcp = url.get_backend_name() == "postgresql" and url.host and not url.host.startswith("/")
    if tcp and (problem := reach(url.host or "", url.port or 5432)):
        return failed("database", f"cannot connect to {where}: {problem}; check DATABASE_URL")
    try:
        with engine.connect():
            pass
    except Exception as exc:
        return failed(
            "database",
            f"cannot connect to {where} ({first_line(exc)}): check DATABASE_URL and that "
            "PostgreSQL runs and accepts connections from here",
        )
    at, head = migrate.current(engine), migrate.head()
    if at is None:
        return failed(
            "database",
            f"{where} has no schema: run `workflowbot db upgrade` (the Procfile's release "
            "step runs it on every deploy)",
        )
    if at != head:
        try:
            ScriptDirectory(str(migrate.MIGRATIONS)).get_revision(at)
            known = True
        except Exception:
            known = False
        if not known:
            return failed(
                "database",
                f"{where} is at revision {at}, which this code does not know (a newer "
                "release migrated it): deploy that release again",
            )
        return failed(
            "database",
            f"{where} is at revision {at}, this code needs {head}: run `workflowbot db upgrade`",
        )
    if engine.dialect.name == "sqlite":
        return warn(
            "database",
            f"SQLite ({where}), migrated to {head}: fine for one machine; use PostgreSQL "
            "in production (DATABASE_URL=postgresql://...)",
        )
    return ok("database", f"{where} answers and is migrated to {head}")


def check_broker(settings: Settings) -> Check:
    """Redis PING or a RabbitMQ connection; the in-process broker is noted."""
    from engine import broker

    setting = broker.setting_name(settings)
    if setting is None:
        return warn(
            "broker",
            "no REDIS_URL: the in-process broker works only when everything runs in one "
            "process (`workflowbot run`); set REDIS_URL for the Procfile's separate processes",
        )
    url = settings.redis_url or settings.rabbitmq_url or ""
    kind, default_port = ("Redis", 6379) if settings.redis_url else ("RabbitMQ", 5672)
    if url.startswith("unix://"):
        where = urlsplit(url).path
    else:
        host, port = _host_port(url, 5671 if url.startswith("amqps") else default_port)
        where = f"{host}:{port}"
        if problem := reach(host, port):
            return failed("broker", f"{kind} ({setting}): {problem}")
    made = broker.build(settings)
    # pika logs each failed attempt with a traceback; the check's one line says it all.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    try:
        broker.ping(made, timeout=TIMEOUT)
    except Exception as exc:
        detail = _broker_problem(exc, setting)
        return failed("broker", f"{kind} at {where} does not answer: {detail}; check {setting}")
    finally:
        made.close()
    return ok("broker", f"{kind} at {where} answers")


def _broker_problem(exc: Exception, setting: str) -> str:
    """A broker's refusal in plain words (pika's exceptions describe their internals)."""
    text, kind = first_line(exc), type(exc).__name__
    if kind.endswith("AuthenticationError") or "ACCESS_REFUSED" in text or "NOAUTH" in text:
        return f"it refused the user or password in {setting}"
    if kind == "ProbableAccessDeniedError":
        return f"the user in {setting} may not open its virtual host"
    if "handshake" in text.lower():
        return f"no AMQP handshake within {TIMEOUT:g} s (is it RabbitMQ, on its AMQP port?)"
    if "timeout" in text.lower() or isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT:g} s"
    return text or kind


def manifest_scopes(path: Path = MANIFEST) -> list[str] | None:
    """The bot scopes slack-manifest.yml asks for (None when the file is not here)."""
    if not path.is_file():
        return None
    from ruamel.yaml import YAML

    data: Any = YAML(typ="safe").load(path.read_text())
    return [str(s) for s in data["oauth_config"]["scopes"]["bot"]]


def check_slack(settings: Settings, manifest: Path = MANIFEST) -> Iterator[Check]:
    """auth.test answers for SLACK_BOT_TOKEN, with every scope the manifest lists."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    if settings.slack_app_token and not settings.slack_app_token.startswith("xapp-"):
        yield failed(
            "SLACK_APP_TOKEN",
            "is not an app-level token (xapp-…): make one with the connections:write scope "
            "under Basic Information → App-Level Tokens",
        )
    token = settings.slack_bot_token
    if not token:
        yield warn(
            "Slack",
            "SLACK_BOT_TOKEN not set: nothing is posted to Slack and /workflow is off; create "
            "the app from slack-manifest.yml (README, Slack app)",
        )
        return
    if not settings.slack_signing_secret and not settings.slack_app_token:
        yield failed(
            "SLACK_SIGNING_SECRET",
            "not set while SLACK_BOT_TOKEN is: `workflowbot web` refuses to start; copy it from "
            "Basic Information → App Credentials → Signing Secret",
        )
    client = WebClient(
        token=token, base_url=settings.slack_api_url, timeout=int(TIMEOUT), retry_handlers=[]
    )
    try:
        answer = client.auth_test()
    except SlackApiError as exc:
        code = exc.response.get("error") if exc.response is not None else None
        yield failed(
            "Slack",
            f"Slack refused SLACK_BOT_TOKEN ({code}): copy the Bot User OAuth Token (xoxb-…) "
            "from OAuth & Permissions after installing the app",
        )
        return
    except Exception as exc:
        host, port = _host_port(settings.slack_api_url, 443)
        why = reach(host, port) or first_line(exc) or type(exc).__name__
        yield failed("Slack", f"cannot reach Slack at {settings.slack_api_url}: {why}")
        return
    who = f"team {answer.get('team') or answer.get('team_id')}, bot user {answer.get('user_id')}"
    headers = {str(k).lower(): v for k, v in (answer.headers or {}).items()}
    raw = headers.get("x-oauth-scopes")
    raw = raw[0] if isinstance(raw, list) else raw
    needed = manifest_scopes(manifest)
    if needed is None:
        yield warn("Slack", f"auth.test answers ({who}); slack-manifest.yml not found here, so "
                   "the scopes were not checked")  # fmt: skip
        return
    if raw is None:
        yield warn("Slack", f"auth.test answers ({who}) but Slack did not say the token's scopes")
        return
    granted = {s.strip() for s in str(raw).split(",") if s.strip()}
    missing = [s for s in needed if s not in granted]
    if missing:
        yield failed(
            "Slack",
            f"the token lacks the scope(s) {', '.join(missing)} that slack-manifest.yml asks "
            "for: add them under OAuth & Permissions → Bot Token Scopes and reinstall the app",
        )
        return
    yield ok("Slack", f"auth.test answers ({who}); every scope of slack-manifest.yml is granted")


def check_smtp(settings: Settings, context: ssl.SSLContext | None = None) -> Iterator[Check]:
    """Connect, EHLO, STARTTLS and log in as SMTP_URL says; nothing is sent."""
    from engine.email import smtp

    if not settings.smtp_url:
        yield warn(
            "SMTP",
            "SMTP_URL not set: email and HTML steps and team notifications cannot send "
            "(Gmail steps can)",
        )
        return
    try:
        config = smtp.parse_smtp_url(settings.smtp_url)
    except ValueError as exc:
        yield failed("SMTP", str(exc))
        return
    where = f"{config.host}:{config.port}"
    if problem := reach(config.host, config.port):
        yield failed("SMTP", f"{problem}; check SMTP_URL")
        return
    context = context or ssl.create_default_context()
    try:
        # The same connect and hello a send does (engine.email.smtp), stopping before MAIL.
        client = smtp._connect(config, TIMEOUT, context)
        try:
            smtp._hello(client, config, context)
        finally:
            smtp._close(client, polite=True)
    except smtp.SmtpError as exc:
        yield failed("SMTP", f"{where}: {exc}")
        return
    steps = ["EHLO"]
    if config.tls == "starttls":
        steps.append("STARTTLS")
    if config.username:
        steps.append("login")
    tls = {"ssl": " over TLS", "none": " without TLS"}.get(config.tls, "")
    if config.tls == "none" and config.username and config.host not in LOOPBACK:
        yield warn(
            "SMTP",
            f"{where}: the password travels unencrypted (?tls=none); use STARTTLS or smtps://",
        )
        return
    yield ok("SMTP", f"{where}{tls}: {', '.join(steps)} succeed (nothing sent)")
    if not settings.email_from:
        yield warn(
            "EMAIL_FROM",
            "not set: email and HTML steps must each name a sender, and team notifications "
            "cannot send; set it, e.g. CS Team <cs@example.com>",
        )


def check_gmail(settings: Settings, engine: Engine | None) -> Check:
    """Google's OAuth client is set when anyone connected Gmail (or may)."""
    from storage.action_models import Connection

    connected = None
    if engine is not None:
        from storage.db import session_scope

        with session_scope(engine) as session:
            query = select(func.count()).select_from(Connection)
            connected = session.scalar(query.where(Connection.provider == "gmail")) or 0
    both = settings.google_client_id and settings.google_client_secret
    missing = [
        name
        for name, value in (
            ("GOOGLE_CLIENT_ID", settings.google_client_id),
            ("GOOGLE_CLIENT_SECRET", settings.google_client_secret),
        )
        if not value
    ]
    if connected and missing:
        return failed(
            "Gmail",
            f"{connected} user(s) connected Gmail but {' and '.join(missing)} not set: their "
            "Gmail steps fail; set both from the Google Cloud OAuth client",
        )
    if both and not settings.public_url:
        return warn("Gmail", "PUBLIC_URL not set: users cannot connect Gmail (Google's redirect)")
    if both:
        return ok("Gmail", f"OAuth client set; {connected or 0} user(s) connected")
    if len(missing) == 1:
        return warn("Gmail", f"{missing[0]} not set: Gmail sending needs both")
    if engine is None:
        return warn("Gmail", "not set up; who connected Gmail is unknown (see database)")
    return ok("Gmail", "not set up (no user connected Gmail)")


def check_salesforce(settings: Settings) -> Check | None:
    """A token refresh and one query with the SALESFORCE_* credentials."""
    from urllib.parse import quote, urlencode

    from engine.crm import CrmFailed, CrmRetry, salesforce
    from engine.http import SystemResolver

    creds = {
        "SALESFORCE_CLIENT_ID": settings.salesforce_client_id,
        "SALESFORCE_CLIENT_SECRET": settings.salesforce_client_secret,
        "SALESFORCE_REFRESH_TOKEN": settings.salesforce_refresh_token,
    }
    if not any(creds.values()):
        return None
    missing = [name for name, value in creds.items() if not value]
    if missing:
        return failed("Salesforce", f"{', '.join(missing)} not set: Salesforce tasks fail")
    client = salesforce.SalesforceClient(settings, SystemResolver(), timeout=TIMEOUT)
    try:
        call = salesforce._Call(client)  # the refresh-token grant: a fresh access token
        soql = "SELECT Id FROM Account WHERE Name = 'workflowbot doctor' LIMIT 1"
        response = call.rest("GET", "/query?" + urlencode({"q": soql}, quote_via=quote))
        if response.status != 200:
            raise client._error(response, "a test query")
    except (CrmFailed, CrmRetry) as exc:
        return failed("Salesforce", str(exc))
    finally:
        client.close()
    return ok("Salesforce", f"token refresh and a query succeed ({call.instance_url})")


def check_hubspot(settings: Settings) -> Check | None:
    """One authenticated search for tasks by HUBSPOT_TASK_KEY_PROPERTY."""
    from engine.crm import CrmFailed, CrmRetry, hubspot
    from engine.http import SystemResolver

    if not settings.hubspot_token:
        return None
    client = hubspot.HubSpotClient(settings, SystemResolver(), timeout=TIMEOUT)
    prop = settings.hubspot_task_key_property
    try:
        client._search("tasks", prop, "workflowbot-doctor", "tasks by their key")
    except CrmFailed as exc:
        fix = "" if "HUBSPOT_TOKEN" in str(exc) else f"; check that tasks have the property {prop}"
        return failed("HubSpot", f"{exc}{fix}")
    except CrmRetry as exc:
        return failed("HubSpot", str(exc))
    finally:
        client.close()
    return ok("HubSpot", f"the token searches tasks by {prop}")
