"""`workflowbot doctor`: checks a deployment's settings and every service it talks to, and says
what is wrong in plain words with the fix; exits 1 when any check fails.

Each check is `ok`, `warn` (works, but probably not what production wants) or `FAIL` (something
will break). The service checks live in `bot.doctor_checks`; every message is scrubbed of the
configured secrets before it is shown.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from urllib.parse import unquote, urlsplit

import click
from pydantic import ValidationError

from bot.doctor_checks import (
    LOOPBACK,
    Check,
    check_broker,
    check_database,
    check_gmail,
    check_hubspot,
    check_salesforce,
    check_slack,
    check_smtp,
    failed,
    ok,
    warn,
)
from engine.settings import Settings

KEYGEN = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def check_settings(env_error: ValidationError) -> list[Check]:
    """One FAIL per setting that does not load, named as in the environment."""
    found = []
    for error in env_error.errors():
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        found.append(failed(name, f"{message}; fix the variable {name} (README, Configuration)"))
    return found


def check_basics(settings: Settings) -> Iterator[Check]:
    """The settings every deployment needs: SECRET_KEY, PUBLIC_URL, write keys, webhooks."""
    if not settings.secret_key:
        yield failed(
            "SECRET_KEY",
            "not set: Gmail tokens and webhook secrets cannot be stored, and report, tracking "
            f"and unsubscribe links cannot be signed; generate one with {KEYGEN}",
        )
    elif any(len(key) < 32 for key in settings.secret_key):
        yield warn("SECRET_KEY", f"a key is shorter than 32 characters; generate one with {KEYGEN}")
    else:
        many = len(settings.secret_key)
        extra = f" ({many} keys: the first encrypts, all decrypt)" if many > 1 else ""
        yield ok("SECRET_KEY", f"set{extra}")
    if not settings.public_url:
        yield warn(
            "PUBLIC_URL",
            "not set: emails carry no tracking or unsubscribe links, and report links and "
            "Gmail connection links cannot be made; set it to the https URL of `workflowbot web`",
        )
    else:
        parts = urlsplit(settings.public_url)
        local = parts.hostname in LOOPBACK
        if parts.scheme != "https" and not local:
            yield warn("PUBLIC_URL", "is not https: Slack and Google require https in production")
        else:
            yield ok("PUBLIC_URL", settings.public_url)
    if not settings.ingest_write_keys:
        yield failed(
            "INGEST_WRITE_KEYS",
            f"not set: `workflowbot web` refuses to start; set one or more, e.g. wk_ + {KEYGEN}",
        )
    else:
        yield ok("INGEST_WRITE_KEYS", f"{len(settings.ingest_write_keys)} write key(s)")
    yield from check_webhook_hosts(settings.webhook_allowed_hosts)
    days = settings.retention_events_days, settings.retention_enrollments_days
    kept = [f"{d} days" if d else "forever" for d in days]
    yield ok("retention", f"events kept {kept[0]}, finished enrollments {kept[1]}")


_METADATA_HOSTS = {"169.254.169.254", "metadata.google.internal", "fd00:ec2::254"}


def check_webhook_hosts(hosts: list[str]) -> Iterator[Check]:
    """Each entry must be a bare host or host:port; a cloud metadata address is a warning."""
    name = "WEBHOOK_ALLOWED_HOSTS"
    if not hosts:
        yield ok(name, "none: webhooks go to public https addresses only")
        return
    problems, risky = [], []
    for entry in hosts:
        parts = urlsplit("//" + entry)
        try:
            parts.port  # noqa: B018 (parsing the port is the check)
        except ValueError:
            problems.append(f"{entry!r} has a bad port")
            continue
        if "://" in entry or "/" in entry or "@" in entry or "*" in entry or not parts.hostname:
            problems.append(f"{entry!r} is not a host or host:port (no scheme, path or *)")
        elif parts.hostname in _METADATA_HOSTS:
            risky.append(entry)
    if problems:
        yield failed(name, "; ".join(problems) + ": list bare host names, e.g. crm.internal:8443")
    elif risky:
        yield warn(
            name,
            f"{', '.join(risky)} is a cloud metadata address: workflow authors could read "
            "instance credentials through a webhook; remove it",
        )
    else:
        yield ok(name, f"webhooks may also reach {', '.join(hosts)}")


def run_checks(settings: Settings, *, smtp_context: ssl.SSLContext | None = None) -> list[Check]:
    """Every check, in the order they are shown."""
    from storage.db import make_engine

    found = list(check_basics(settings))
    engine = make_engine(settings.database_url, application_name="workflowbot-doctor")
    try:
        database = check_database(settings, engine)
        found.append(database)
        found.append(check_broker(settings))
        found.extend(check_slack(settings))
        found.extend(check_smtp(settings, smtp_context))
        usable = database.status != "FAIL"
        found.append(check_gmail(settings, engine if usable else None))
    finally:
        engine.dispose()
    found.extend(c for c in (check_salesforce(settings), check_hubspot(settings)) if c)
    return found


def secrets_of(settings: Settings) -> list[str]:
    """Every configured value that must never be printed."""
    values: list[str | None] = [
        *settings.secret_key,
        *settings.ingest_write_keys,
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.google_client_secret,
        settings.salesforce_client_secret,
        settings.salesforce_refresh_token,
        settings.hubspot_token,
        settings.webhook_secret,
    ]
    for url in (
        settings.database_url,
        settings.redis_url,
        settings.rabbitmq_url,
        settings.smtp_url,
    ):
        password = urlsplit(url).password if url else None
        if password:
            values += [password, unquote(password)]
    return [v for v in values if v and len(v) >= 4]


def scrub(checks: Iterable[Check], secrets: list[str]) -> list[Check]:
    """The checks with every secret replaced by ***."""
    clean = []
    for check in checks:
        message = check.message
        for secret in sorted(secrets, key=len, reverse=True):
            message = message.replace(secret, "***")
        clean.append(Check(check.name, check.status, message))
    return clean


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per check, in a list.")
def doctor(as_json: bool) -> None:
    """Check settings, database, broker, Slack, email and CRM; say what is wrong and the fix.

    Exits 1 when any check FAILs. Nothing is sent and no secret is printed.
    """
    try:
        settings = Settings()
    except ValidationError as exc:
        checks = check_settings(exc)
    else:
        checks = scrub(run_checks(settings), secrets_of(settings))
    if as_json:
        click.echo(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            click.echo(f"{c.status:<4}  {c.name:<{width}}  {c.message}")
        fails = sum(c.status == "FAIL" for c in checks)
        warns = sum(c.status == "warn" for c in checks)
        click.echo(f"\n{fails} failed, {warns} warning(s), {len(checks) - fails - warns} ok")
    raise SystemExit(1 if any(c.status == "FAIL" for c in checks) else 0)
