"""bot/email_web.py on real PostgreSQL: the open pixel, click redirects (RELIABILITY 25) and
unsubscribe with RFC 8058 one-click (RELIABILITY 24)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from bot import email_web
from engine import secrets
from engine.email import tracking
from engine.runtime import Runtime
from storage.action_models import Draft, EmailEvent
from storage.db import session_scope
from storage.queries import drafts, suppressions
from storage.workflow_models import Enrollment, StepRun, Suppression
from tests.conftest import LiveServer, ManualClock
from tests.engine.flow import Flow
from tests.helpers import serve

KEYS = ["web-test-secret"]
PUBLIC = "https://bot.example.com"
ANN = "ann@example.com"


@pytest.fixture
def tracked(rt: Runtime) -> Runtime:
    """The runtime with SECRET_KEY and PUBLIC_URL set (the routes are on)."""
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(
        update={
            "secret_key": KEYS,
            "public_url": PUBLIC,
            "webhook_allowed_hosts": ["127.0.0.1"],
        }
    )
    return rt


@pytest.fixture
def client(tracked: Runtime) -> Iterator[httpx.Client]:
    """HTTP to just these routes, served by uvicorn on 127.0.0.1."""
    with (
        serve(Starlette(routes=email_web.make_routes(tracked))) as url,
        httpx.Client(base_url=url, follow_redirects=False, timeout=10) as http,
    ):
        yield http


@pytest.fixture
def draft_id(tracked: Runtime) -> int:
    """A sent draft of a real enrollment's step (a workflow applied through the Flow harness)."""
    flow = Flow(tracked)
    flow.workflow(
        name="Trial ending",
        trigger={"event": "login"},
        steps=[{"action": "webhook", "url": "http://127.0.0.1:9/x", "delay": "1d"}],
    )
    flow.group("acme", "ann")
    flow.track("ann", "login")
    flow.evaluate()
    now = tracked.clock.now()
    with session_scope(tracked.db) as s:
        step = s.scalars(select(StepRun)).one()
        enrollment = s.get(Enrollment, step.enrollment_id)
        assert enrollment is not None
        draft = drafts.create(
            s,
            values={
                "step_run_id": step.id,
                "enrollment_id": enrollment.id,
                "workflow_id": enrollment.workflow_id,
                "step_index": step.step_index,
                "kind": "html",
                "status": "sent",
                "object_type": enrollment.object_type,
                "object_id": enrollment.object_id,
                "record_name": "Acme",
                "sender": "bot@example.com",
                "to": [ANN],
                "cc": [],
                "reply_to": None,
                "subject": "Your trial",
                "body": "<p>Hi</p>",
                "message_id": "<draft-1@example.com>",
                "approval_channel": None,
                "expires_at": None,
                "edited": False,
                "decided_by": "auto",
                "decided_at": now,
                "sent_at": now,
                "created_at": now,
                "updated_at": now,
            },
        )
        return draft.id


def events(rt: Runtime) -> list[tuple[int, str, dict[str, Any]]]:
    with session_scope(rt.db) as s:
        rows = s.scalars(select(EmailEvent).order_by(EmailEvent.id))
        return [(e.draft_id, e.kind, e.detail) for e in rows]


def pixel_path(draft_id: int) -> str:
    url = tracking.pixel_url(public_url=PUBLIC, secret_keys=KEYS, draft_id=draft_id)
    return url.removeprefix(PUBLIC)


def click_path(draft_id: int, url: str) -> str:
    token = secrets.sign(KEYS, "click", {"d": draft_id, "u": url})  # any target, signed
    return f"/t/c/{token}"


def unsubscribe_path(draft_id: int, email: str = ANN) -> str:
    url = tracking.unsubscribe_url(
        public_url=PUBLIC, secret_keys=KEYS, draft_id=draft_id, email=email
    )
    return url.removeprefix(PUBLIC)


def tamper(path: str) -> str:
    """The same link with one character of its payload changed."""
    head, _, token = path.rpartition("/")
    i = 3
    changed = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
    return f"{head}/{changed}"


# -- open pixel ------------------------------------------------------------------------------


def test_the_pixel_records_an_open_and_answers_an_uncached_gif(
    client: httpx.Client, tracked: Runtime, draft_id: int
) -> None:
    response = client.get(pixel_path(draft_id), headers={"User-Agent": "Mail/1.0"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    assert "no-store" in response.headers["cache-control"]
    assert events(tracked) == [(draft_id, "open", {"user_agent": "Mail/1.0"})]


def test_a_bad_pixel_token_still_gets_the_gif_and_records_nothing(
    client: httpx.Client, tracked: Runtime, draft_id: int
) -> None:
    for path in (tamper(pixel_path(draft_id)), "/t/o/garbage.gif", pixel_path(draft_id + 99)):
        response = client.get(path)
        assert response.status_code == 200
        assert response.content.startswith(b"GIF89a")
    assert events(tracked) == []


# -- clicks ------------------------------------------------------------------------------------


def test_a_click_is_recorded_and_redirected(
    client: httpx.Client, tracked: Runtime, draft_id: int
) -> None:
    target = "https://example.com/pricing?plan=pro&ref=email#top"
    response = client.get(click_path(draft_id, target), headers={"User-Agent": "Browser/2"})
    assert response.status_code == 302
    assert response.headers["location"] == target
    assert events(tracked) == [
        (draft_id, "click", {"url": target, "user_agent": "Browser/2"}),
    ]


def test_a_tampered_click_link_is_400_without_a_redirect(
    client: httpx.Client, tracked: Runtime, draft_id: int
) -> None:
    response = client.get(tamper(click_path(draft_id, "https://example.com/")))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "not valid" in response.text
    assert events(tracked) == []


def test_a_link_signed_for_another_purpose_or_key_is_400(
    client: httpx.Client, draft_id: int
) -> None:
    as_open = secrets.sign(KEYS, "open", {"d": draft_id, "u": "https://example.com/"})
    other_key = secrets.sign(["old"], "click", {"d": draft_id, "u": "https://example.com/"})
    for token in (as_open, other_key, "no-dot", "%00"):
        response = client.get(f"/t/c/{token}")
        assert response.status_code == 400
        assert "location" not in response.headers


@pytest.mark.parametrize(
    "target",
    [
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "//evil.example/",
        "/relative",
        "ftp://files.example.com/",
        "https://",
        "https://example.com/\r\nSet-Cookie: x=1",
    ],
)
def test_a_validly_signed_non_http_target_is_400_without_a_redirect(
    client: httpx.Client, tracked: Runtime, draft_id: int, target: str
) -> None:
    response = client.get(click_path(draft_id, target))
    assert response.status_code == 400
    assert "location" not in response.headers
    assert events(tracked) == []


def test_a_click_for_a_deleted_draft_still_redirects(
    client: httpx.Client, tracked: Runtime, draft_id: int
) -> None:
    with session_scope(tracked.db) as s:
        s.delete(s.get(Draft, draft_id))
    response = client.get(click_path(draft_id, "https://example.com/"))
    assert response.status_code == 302
    assert events(tracked) == []


# -- unsubscribe -------------------------------------------------------------------------------


def suppressed(rt: Runtime, email: str = ANN) -> set[str]:
    with session_scope(rt.db) as s:
        return suppressions.suppressed(s, emails=[email])


def test_the_unsubscribe_page_changes_nothing(
    client: httpx.Client, tracked: Runtime, draft_id: int
) -> None:
    response = client.get(unsubscribe_path(draft_id))
    assert response.status_code == 200
    assert "Unsubscribe a***@example.com?" in response.text
    assert '<form method="post">' in response.text
    assert ANN not in response.text
    assert suppressed(tracked) == set()
    assert events(tracked) == []


def test_one_click_post_suppresses_the_address_once(
    client: httpx.Client, tracked: Runtime, draft_id: int
) -> None:
    path = unsubscribe_path(draft_id, "Ann@Example.com")
    for _ in range(2):
        response = client.post(
            path,
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 200
        assert "You are unsubscribed" in response.text
    assert suppressed(tracked) == {"ann@example.com"}
    with session_scope(tracked.db) as s:
        row = s.scalars(select(Suppression)).one()
        assert (row.reason, row.created_by) == ("unsubscribe", "recipient")
    assert events(tracked) == [(draft_id, "unsubscribe", {"email": "Ann@Example.com"})]


def test_the_pages_button_posts_and_unsubscribes(
    client: httpx.Client, tracked: Runtime, draft_id: int
) -> None:
    response = client.post(unsubscribe_path(draft_id), data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert suppressed(tracked) == {ANN}


def test_a_bad_unsubscribe_token_is_400_and_changes_nothing(
    client: httpx.Client, tracked: Runtime, draft_id: int
) -> None:
    path = tamper(unsubscribe_path(draft_id))
    assert client.get(path).status_code == 400
    assert client.post(path, content=b"List-Unsubscribe=One-Click").status_code == 400
    click_token = click_path(draft_id, "https://example.com/").rpartition("/")[2]
    assert client.post(f"/u/{click_token}").status_code == 400
    assert suppressed(tracked) == set()
    assert events(tracked) == []


# -- switched off ------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["secret_key", "public_url"])
def test_without_secret_key_or_public_url_the_routes_are_404(
    client: httpx.Client, tracked: Runtime, draft_id: int, missing: str
) -> None:
    paths = [
        pixel_path(draft_id),
        click_path(draft_id, "https://example.com/"),
        unsubscribe_path(draft_id),
    ]
    tracked.settings = tracked.settings.model_copy(
        update={missing: [] if missing == "secret_key" else None}
    )
    for path in paths:
        assert client.get(path).status_code == 404
    assert client.post(paths[2]).status_code == 404
    assert suppressed(tracked) == set()
    assert events(tracked) == []


# -- mounted in the web app ------------------------------------------------------------------


def test_the_web_app_serves_them_over_http(
    tracked: Runtime, draft_id: int, live_api: LiveServer
) -> None:
    with httpx.Client(base_url=live_api.url, follow_redirects=False, timeout=10) as http:
        assert http.get(pixel_path(draft_id)).headers["content-type"] == "image/gif"
        clicked = http.get(click_path(draft_id, "https://example.com/x"))
        assert (clicked.status_code, clicked.headers["location"]) == (302, "https://example.com/x")
        assert (
            http.post(unsubscribe_path(draft_id), content=b"List-Unsubscribe=One-Click").status_code
            == 200
        )
    assert [kind for _, kind, _ in events(tracked)] == ["open", "click", "unsubscribe"]
    assert suppressed(tracked) == {ANN}
