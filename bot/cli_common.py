"""Helpers every `workflowbot` command shares: settings, logging, connecting, failing."""

from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

import click

from engine.settings import Settings, SettingsError, load


def fail(message: str) -> NoReturn:
    click.echo(f"workflowbot: {message}", err=True)
    sys.exit(2)


def load_settings() -> Settings:
    try:
        return load()
    except SettingsError as exc:
        fail(str(exc))


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr as LOG_FORMAT says (text, or JSON one object a line), secrets redacted.
    A wrong setting is reported by `load_settings` right after; until then lines are text."""
    from engine import logs

    try:
        settings: Settings | None = load()
    except SettingsError:
        settings = None
    logs.setup(
        settings.log_format if settings else "text",
        level=logging.DEBUG if verbose else logging.INFO,
        secrets=logs.secrets_of(settings) if settings else (),
    )


def connect(settings: Settings, application_name: str) -> Any:
    """Set up broker and runtime for this process, checking both are reachable."""
    from engine import broker

    b = broker.setup(settings, application_name=application_name)
    from engine import runtime

    rt = runtime.get()
    try:
        with rt.db.connect():
            pass
    except Exception as exc:
        fail(f"DATABASE_URL: cannot connect ({type(exc).__name__}: {first_line(exc)})")
    from storage import migrate

    at, needed = migrate.current(rt.db), migrate.head()
    if at != needed:
        state = "has no schema" if at is None else f"is at revision {at}, this code needs {needed}"
        fail(f"DATABASE_URL: the database {state}; run `workflowbot db upgrade`")
    try:
        broker.ping(b)
    except Exception as exc:
        name = broker.setting_name(settings) or "the broker"
        fail(f"{name}: cannot connect ({type(exc).__name__}: {first_line(exc)})")
    return rt


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url

    return make_url(settings.database_url).render_as_string(hide_password=True)
