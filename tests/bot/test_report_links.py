"""engine/report_links.py: signed, expiring links to the report pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from engine import report_links
from engine.secrets import SecretsError
from engine.settings import Settings

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
PATH = "/reports/workflows/7"


def settings(*keys: str, public_url: str | None = "https://bot.example.com/") -> Settings:
    return Settings(secret_key=list(keys), public_url=public_url)


def parts(url: str) -> tuple[str, str, str]:
    """(path, exp, sig) of a link."""
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path, query["exp"][0], query["sig"][0]


def test_a_link_is_absolute_signed_and_verifies_until_it_expires() -> None:
    s = settings("k1")
    url = report_links.link(s, path=PATH, now=NOW)
    assert url.startswith("https://bot.example.com/reports/workflows/7?exp=")
    path, exp, sig = parts(url)
    assert int(exp) == int((NOW + timedelta(days=7)).timestamp())  # the default: 7 days
    assert report_links.verify(s, path, exp, sig, NOW)
    assert report_links.verify(s, path, exp, sig, NOW + timedelta(days=6, hours=23))
    assert not report_links.verify(s, path, exp, sig, NOW + timedelta(days=7))  # expired
    assert not report_links.verify(s, path, exp, sig, NOW + timedelta(days=30))


def test_a_shorter_ttl_is_honoured() -> None:
    s = settings("k1")
    _, exp, sig = parts(report_links.link(s, path=PATH, now=NOW, ttl=timedelta(hours=1)))
    assert report_links.verify(s, PATH, exp, sig, NOW + timedelta(minutes=59))
    assert not report_links.verify(s, PATH, exp, sig, NOW + timedelta(minutes=61))


def test_a_tampered_path_exp_or_sig_is_refused() -> None:
    s = settings("k1")
    _, exp, sig = parts(report_links.link(s, path=PATH, now=NOW))
    assert not report_links.verify(s, "/reports/workflows/8", exp, sig, NOW)
    assert not report_links.verify(s, "/reports/enrollments/7", exp, sig, NOW)
    assert not report_links.verify(s, PATH, str(int(exp) + 86400), sig, NOW)  # extended
    assert not report_links.verify(s, PATH, exp, sig[:-1] + ("A" if sig[-1] != "A" else "B"), NOW)
    assert not report_links.verify(s, PATH, exp, "", NOW)
    assert not report_links.verify(s, PATH, None, sig, NOW)
    assert not report_links.verify(s, PATH, exp, None, NOW)
    assert not report_links.verify(s, PATH, "soon", sig, NOW)
    assert not report_links.verify(s, PATH, exp, "é" + sig, NOW)


def test_another_key_does_not_verify() -> None:
    _, exp, sig = parts(report_links.link(settings("k1"), path=PATH, now=NOW))
    assert not report_links.verify(settings("k2"), PATH, exp, sig, NOW)
    assert not report_links.verify(settings(), PATH, exp, sig, NOW)  # no key: nothing verifies


def test_rotation_signs_with_the_first_key_and_accepts_any() -> None:
    _, old_exp, old_sig = parts(report_links.link(settings("old"), path=PATH, now=NOW))
    rotated = settings("new", "old")
    assert report_links.verify(rotated, PATH, old_exp, old_sig, NOW)  # handed out before
    _, exp, sig = parts(report_links.link(rotated, path=PATH, now=NOW))
    assert report_links.verify(settings("new"), PATH, exp, sig, NOW)  # signed with "new"
    assert not report_links.verify(settings("old"), PATH, exp, sig, NOW)


def test_no_secret_key_or_public_url_is_a_clear_error() -> None:
    with pytest.raises(SecretsError, match="SECRET_KEY"):
        report_links.link(settings(), path=PATH, now=NOW)
    with pytest.raises(SecretsError, match="PUBLIC_URL"):
        report_links.link(settings("k1", public_url=None), path=PATH, now=NOW)
