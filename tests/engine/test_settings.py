"""Settings: one typed object from the environment; a bad value names its variable."""

from __future__ import annotations

import pytest

from engine.settings import SettingsError, load
from storage.db import normalize_url


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/d", "postgresql+psycopg://u:p@h:5432/d"),
        ("postgresql://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:///workflowbot.db", "sqlite:///workflowbot.db"),
    ],
)
def test_database_urls_always_mean_psycopg_3(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


def test_defaults_need_no_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "INGEST_WRITE_KEYS", "PORT", "TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    settings = load()
    assert settings.database_url == "sqlite:///workflowbot.db"
    assert settings.redis_url is None
    assert (settings.port, settings.timezone, settings.ingest_write_keys) == (8000, "UTC", [])


def test_comma_separated_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_WRITE_KEYS", "k1, k2,,k3")
    monkeypatch.setenv("SLACK_ADMINS", "U1,U2")
    settings = load()
    assert settings.ingest_write_keys == ["k1", "k2", "k3"]
    assert settings.slack_admins == ["U1", "U2"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/x"),
        ("REDIS_URL", "localhost:6379"),
        ("PORT", "eighty"),
        ("TIMEZONE", "Mars/Olympus"),
        ("STEP_LEASE_SECONDS", "1"),
    ],
)
def test_a_wrong_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load()
    message = str(caught.value)
    assert message.startswith(f"{name}: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "value", "ok"),
    [
        ("GMAIL_API_URL", "https://gmail.googleapis.com/", True),
        ("GOOGLE_TOKEN_URL", "http://127.0.0.1:9000/token", True),
        ("SLACK_API_URL", "http://localhost:3000/api/", True),
        ("GOOGLE_TOKEN_URL", "http://oauth2.googleapis.com/token", False),
        ("SALESFORCE_LOGIN_URL", "ftp://login.salesforce.com/", False),
        ("HUBSPOT_API_URL", "http://10.0.0.5/", False),
    ],
)
def test_provider_urls_carry_tokens_only_over_https_or_to_this_machine(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, ok: bool
) -> None:
    monkeypatch.setenv(name, value)
    if ok:
        assert getattr(load(), name.lower()) == value
    else:
        with pytest.raises(SettingsError, match=f"{name}: .*https://"):
            load()
