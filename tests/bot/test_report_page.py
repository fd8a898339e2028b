"""The report pages (bot/reports_web.py) served by the real web app on 127.0.0.1: a signed
link gets the page with the numbers, a tampered or expired one 403, an unknown id 404; and the
page rendered by a real headless Chromium, its DOM checked and screenshots taken at laptop
and phone sizes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.applications import Starlette

from bot import reports_web
from bot.web import create_web_app
from engine import report_links
from engine.runtime import Runtime
from engine.stats import Day, EmailStats, Range, Rate, StepStats, Wait, WorkflowStats
from storage.db import session_scope
from storage.workflow_models import Enrollment, Workflow
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.engine.test_stats import onboarding as stats_onboarding
from tests.helpers import serve
from tests.sink import Sink

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PUBLIC = "https://bot.example.com"
KEYS = ["report-test-key"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VOID = {"meta", "link", "br", "img", "input", "hr", "source", "wbr", "col", "area", "base"}


class Dom(HTMLParser):
    """What the tests read in a page: the text of each data-testid element, every element."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.texts: dict[str, str] = {}
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        self.elements.append((tag, found))
        if tag in VOID:
            return
        testid = found.get("data-testid")
        if testid is not None:
            self.texts.setdefault(testid, "")
        self.stack.append((tag, testid))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, testid in self.stack:
            if testid is not None:
                self.texts[testid] += " " + data

    def text(self, testid: str) -> str:
        return " ".join(self.texts[testid].split())

    def with_class(self, name: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if name in a.get("class", "").split()]

    def links(self) -> list[str]:
        return [a["href"] for tag, a in self.elements if tag == "a" and "href" in a]


def path_of(url: str) -> str:
    """The path and query of a link made for PUBLIC_URL, to request on 127.0.0.1."""
    split = urlsplit(url)
    return f"{split.path}?{split.query}"


@pytest.fixture
def reporting(rt: Runtime) -> Runtime:
    """The runtime with SECRET_KEY and PUBLIC_URL set and a clock in the test's hand."""
    rt.clock = ManualClock(T0)
    rt.settings = rt.settings.model_copy(
        update={"secret_key": KEYS, "public_url": PUBLIC, "webhook_allowed_hosts": ["127.0.0.1"]}
    )
    return rt


def onboarding(rt: Runtime, sink: Sink) -> int:
    """tests/engine/test_stats.py's onboarding (four trials: two complete, one exits, one
    waits at step 2) under a name to escape; returns the workflow's id."""
    stats_onboarding(Flow(rt), sink, name="Onboarding <trials>")
    clock = rt.clock
    assert isinstance(clock, ManualClock)
    clock.advance(minutes=5)  # the page's range ends now, exclusive
    with session_scope(rt.db) as s:
        return int(s.scalars(select(Workflow.id)).one())


@pytest.fixture
def web(reporting: Runtime) -> Iterator[httpx.Client]:
    """The real web app (bot.web), with the real statistics, over HTTP on 127.0.0.1."""
    app = create_web_app(reporting, enqueue=lambda ids: None, inprocess_worker=False)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield http


def signed(rt: Runtime, path: str, ttl: timedelta = report_links.DEFAULT_TTL) -> str:
    return path_of(report_links.link(rt.settings, path=path, now=rt.clock.now(), ttl=ttl))


def assert_private(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    )
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-robots-tag"] == "noindex"
    assert response.headers["cache-control"] == "private, no-store"


def test_a_signed_link_shows_the_real_figures_and_the_logs(
    reporting: Runtime, sink: Sink, web: httpx.Client
) -> None:
    workflow_id = onboarding(reporting, sink)
    page = web.get(signed(reporting, f"/reports/workflows/{workflow_id}"))
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert_private(page)
    dom = Dom(page.text)
    assert dom.text("workflow-name") == "Onboarding <trials>"  # escaped, shown as typed
    assert "<trials>" not in page.text
    assert {k: dom.text(k) for k in ("enrolled", "active", "completed", "exited", "failed")} == {
        "enrolled": "4",
        "active": "1",
        "completed": "2",
        "exited": "1",
        "failed": "0",
    }
    assert (dom.text("status"), dom.text("version")) == ("live", "version 1")
    assert "exit condition 1" in dom.text("exits")
    assert len(dom.with_class("bar-enrolled")) == 30  # the default range: 30 days
    assert sum(int(b["data-value"]) for b in dom.with_class("bar-enrolled")) == 4
    assert [b["data-value"] for b in dom.with_class("funnel-bar")] == ["4", "4", "1", "2"]
    rows = dom.text("recent")
    assert all(f"Acme {n}" in rows for n in ("a1", "a2", "a3"))
    # Newest first; a record with no name shows its id.
    assert rows.index(" a4 active") < rows.index("Acme a3 exited")
    logs = [href for href in dom.links() if href.startswith("/reports/enrollments/")]
    assert len(logs) == 4
    # A log link is signed with the page's own expiry and opens the enrollment's timeline.
    with session_scope(reporting.db) as s:
        a3 = s.scalars(select(Enrollment).where(Enrollment.status == "exited")).one()
        a3_id = a3.id
    href = next(h for h in logs if h.startswith(f"/reports/enrollments/{a3_id}?"))
    assert re.findall(r"exp=(\d+)", href) == re.findall(r"exp=(\d+)", str(page.url))
    timeline = web.get(href)
    assert timeline.status_code == 200
    assert_private(timeline)
    tdom = Dom(timeline.text)
    assert (tdom.text("record"), tdom.text("status")) == ("Acme a3", "exited")
    assert "exit" in tdom.text("timeline").lower()
    back = [h for h in tdom.links() if h.startswith(f"/reports/workflows/{workflow_id}?")]
    assert len(back) == 1 and web.get(back[0]).status_code == 200
    # Other ranges are offered, signed the same way.
    week = next(h for h in dom.links() if "since=7d" in h)
    assert len(Dom(web.get(week).text).with_class("bar-enrolled")) == 7


def test_tampered_expired_or_missing_signatures_get_403_and_unknown_ids_404(
    reporting: Runtime, sink: Sink, web: httpx.Client
) -> None:
    workflow_id = onboarding(reporting, sink)
    good = signed(reporting, f"/reports/workflows/{workflow_id}")
    exp = re.search(r"exp=(\d+)", good)
    assert exp is not None
    tampered = [
        good.replace(f"/workflows/{workflow_id}?", f"/workflows/{workflow_id + 1}?"),
        good.replace(f"exp={exp[1]}", f"exp={int(exp[1]) + 86400}"),
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        f"/reports/workflows/{workflow_id}",
        f"/reports/workflows/{workflow_id}?exp={exp[1]}",
        good.replace("/reports/workflows/", "/reports/enrollments/"),
    ]
    for url in tampered:
        refused = web.get(url)
        assert refused.status_code == 403, url
        assert_private(refused)
        assert "invalid or has expired" in refused.text and "/workflow report NAME" in refused.text
        assert "Onboarding" not in refused.text
    short = signed(reporting, f"/reports/workflows/{workflow_id}", ttl=timedelta(hours=1))
    assert web.get(short).status_code == 200
    assert web.get(good).status_code == 200
    clock = reporting.clock
    assert isinstance(clock, ManualClock)
    clock.advance(hours=2)
    assert web.get(short).status_code == 403  # expired
    assert web.get(good).status_code == 200
    clock.advance(days=7)
    assert web.get(good).status_code == 403  # the default 7 days are over
    # A valid signature for an id that does not exist: 404, not a 500.
    for path in ("/reports/workflows/999999", "/reports/enrollments/999999"):
        missing = web.get(signed(reporting, path))
        assert missing.status_code == 404 and "No such" in missing.text
    # A deleted workflow's pages are gone too, whatever links were handed out.
    with session_scope(reporting.db) as s:
        workflow = s.get(Workflow, workflow_id)
        assert workflow is not None
        workflow.deleted_at = reporting.clock.now()
        enrollment_id = s.scalars(select(Enrollment.id)).first()
    for path in (f"/reports/workflows/{workflow_id}", f"/reports/enrollments/{enrollment_id}"):
        assert web.get(signed(reporting, path)).status_code == 404


def test_a_database_error_is_a_503_page_not_a_500(reporting: Runtime, sink: Sink) -> None:
    workflow_id = onboarding(reporting, sink)

    def failing(session: Session, **_: object) -> WorkflowStats:
        raise OperationalError("SELECT 1", {}, ConnectionError("server closed the connection"))

    app = Starlette(routes=reports_web.make_routes(reporting, stats=failing))
    with serve(app) as url, httpx.Client(base_url=url) as http:
        answer = http.get(signed(reporting, f"/reports/workflows/{workflow_id}"))
    assert answer.status_code == 503 and "try the same link again" in answer.text
    assert_private(answer)


# -- in a real browser ---------------------------------------------------------------------


def chromium() -> str:
    """The browser's path; skipped on a laptop without it, a failure in CI."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    found = shutil.which("chromium")
    if found:
        return found
    message = f"{CHROMIUM} is not installed (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def browse(tmp_path: Path, *args: str) -> str:
    """Run headless Chromium with a fresh profile; its standard output."""
    profile = tempfile.mkdtemp(prefix="profile-", dir=tmp_path)
    done = subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def sample_stats(workflow_id: int, in_range: Range) -> WorkflowStats:
    """A realistic month of a three-step workflow with one email step."""
    first = in_range.start.date()
    days = [
        Day(
            day=first + timedelta(days=i),
            enrolled=(i * 7) % 11,
            completed=(i * 5) % 7,
            exited=i % 2,
        )
        for i in range((in_range.end.date() - first).days + 1)
    ]
    enrolled = sum(d.enrolled for d in days)

    def wait(median: float | None, p95: float | None) -> Wait:
        return Wait(median, p95, "exact")

    return WorkflowStats(
        workflow_id=workflow_id,
        name="Trial ending — EMEA",
        status="live",
        version=3,
        range=in_range,
        enrolled=enrolled,
        active=12,
        completed=sum(d.completed for d in days),
        exited={"exit condition": 9, "unsubscribed": 2, "withdrawn": 1},
        failed=3,
        steps=[
            StepStats(
                0, "email", "email: “Your trial ends soon” to contact.email",
                140, {}, 2, 4, wait(3600, 86400),
            ),
            StepStats(
                1, "slack", "slack: post in #cs-alerts",
                120, {"condition false": 10}, 0, 3, wait(2 * 86400, 2.5 * 86400),
            ),
            StepStats(
                2, "webhook", "webhook: call https://crm.example.com/hook",
                90, {}, 7, 0, wait(30, 120),
            ),
        ],
        emails=[
            EmailStats(
                index=0, drafted=150, approved=138, edited=21, discarded=6, expired=2, sent=136,
                failed=2, opened=Rate(61, 136), machine_opened=40, clicked=Rate(17, 136),
                scanner_clicked=5, unsubscribed=Rate(2, 136), approval_median_seconds=5400,
            )
        ],
        days=days,
        trend=0.25,
    )  # fmt: skip


@pytest.fixture
def browsed(reporting: Runtime, sink: Sink) -> Iterator[tuple[str, int]]:
    """Just the report routes with the sample figures (the recent enrollments are real), served
    on 127.0.0.1; yields (base URL, workflow id)."""
    workflow_id = onboarding(reporting, sink)

    def stats(
        session: Session, *, workflow_id: int, range: Range, now: datetime, timezone: str = "UTC"
    ) -> WorkflowStats:
        if session.get(Workflow, workflow_id) is None:
            raise LookupError(workflow_id)
        return sample_stats(workflow_id, range)

    app = Starlette(routes=reports_web.make_routes(reporting, stats=stats))
    with serve(app) as url:
        yield url, workflow_id


def test_the_page_in_headless_chromium_has_the_chart_the_numbers_and_fits_a_phone(
    reporting: Runtime, browsed: tuple[str, int], tmp_path: Path
) -> None:
    base, workflow_id = browsed
    url = base + signed(reporting, f"/reports/workflows/{workflow_id}")
    dom = Dom(browse(tmp_path, "--dump-dom", url))
    now = reporting.clock.now()
    month = sample_stats(workflow_id, reports_web.report_range(now, 30, "UTC"))  # as shown
    assert dom.text("workflow-name") == "Trial ending — EMEA"
    assert [dom.text(k) for k in ("enrolled", "active", "completed", "exited", "failed")] == [
        str(month.enrolled),
        "12",
        str(month.completed),
        "12",
        "3",
    ]
    assert dom.text("version") == "version 3"
    charts = {
        a["data-testid"]: tag for tag, a in dom.elements if "chart" in a.get("data-testid", "")
    }
    assert charts == {"daily-chart": "svg", "funnel-chart": "svg"}
    assert len(dom.with_class("bar-enrolled")) == len(dom.with_class("bar-completed")) == 30
    assert [int(b["data-value"]) for b in dom.with_class("bar-enrolled")] == [
        d.enrolled for d in month.days
    ]
    assert [b["data-value"] for b in dom.with_class("funnel-bar")][1:] == ["140", "120", "90"]
    assert dom.text("email-0-sent") == "136"
    assert dom.text("email-0-opened").startswith("61 (45%)") and "+ 40 by machines" in dom.text(
        "email-0-opened"
    )
    assert "+ 5 by link scanners" in dom.text("email-0-clicked")
    assert "2 d 0 h" in dom.text("slowest").split("slack")[1]  # the slack step waits longest
    assert dom.text("failing").index("webhook") < dom.text("failing").index("email")
    assert dom.text("trend").startswith("Enrolled +25%")
    for width, height in ((1280, 900), (390, 844)):
        shot = tmp_path / f"report-{width}.png"
        browse(tmp_path, f"--screenshot={shot}", f"--window-size={width},{height}", url)
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert int.from_bytes(data[16:20], "big") == width  # the IHDR's width
        assert len(data) > 10_000, f"a {len(data)}-byte screenshot is too plain to be the page"


def test_an_expired_link_in_the_browser_shows_the_refusal(
    reporting: Runtime, browsed: tuple[str, int], tmp_path: Path
) -> None:
    base, workflow_id = browsed
    url = base + signed(reporting, f"/reports/workflows/{workflow_id}", ttl=timedelta(minutes=5))
    clock = reporting.clock
    assert isinstance(clock, ManualClock)
    clock.advance(minutes=6)
    page = browse(tmp_path, "--dump-dom", url)
    assert "This link is invalid or has expired" in page
    assert "daily-chart" not in page and "Trial ending" not in page
