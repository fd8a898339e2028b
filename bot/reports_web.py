"""The report pages: `/reports/workflows/{id}` (a workflow's statistics) and
`/reports/enrollments/{id}` (one enrollment's timeline), HTML made on the server.

Both need a link signed by engine.report_links (`?exp=…&sig=…`); anything else gets 403
before the database is touched. Links inside a page are signed with the page's own expiry,
so following them never extends access. The statistics come from the `stats` function
given to `make_routes` (engine.stats.workflow_stats in the product).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from bot import charts
from engine import report_links
from engine import stats as engine_stats
from engine.runtime import Runtime
from storage.db import session_scope
from storage.models import Account, Contact
from storage.queries import enrollments as enrollments_q
from storage.workflow_models import Enrollment, Workflow, WorkflowVersion

log = logging.getLogger(__name__)

WORKFLOW_PATH = "/reports/workflows/{id}"
ENROLLMENT_PATH = "/reports/enrollments/{id}"
RANGES = {"7d": 7, "30d": 30, "90d": 90}
DEFAULT_RANGE = "30d"
RECENT = 20
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
}


class StatsFunction(Protocol):
    def __call__(
        self,
        session: Session,
        *,
        workflow_id: int,
        range: engine_stats.Range,
        now: datetime,
        timezone: str = "UTC",
    ) -> engine_stats.WorkflowStats: ...


def duration(seconds: float | None) -> str:
    """`3 d 4 h`, `2 h 5 min`, `12 min`, `40 s`; `—` for no figure."""
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def share(rate: engine_stats.Rate) -> str:
    """`40%` of the rate's base, `—` when the base is 0."""
    value = rate.share
    return "—" if value is None else f"{value:.0%}"


# Our own templates; the sandbox because everything they show (names, labels, log lines)
# is user text, which autoescaping keeps inert.
_env = ImmutableSandboxedEnvironment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(duration=duration, share=share)


def render(template: str, **values: Any) -> str:
    """A page of bot/templates, autoescaped."""
    return _env.get_template(template).render(**values)


def _page(template: str, status: int = 200, **values: Any) -> HTMLResponse:
    return HTMLResponse(render(template, **values), status, HEADERS)


def _refused() -> HTMLResponse:
    return _page("refused.html", 403, title="Link not valid")


def _not_found(what: str) -> HTMLResponse:
    return _page("not_found.html", 404, title="Not found", what=what)


def _unavailable(exc: SQLAlchemyError) -> HTMLResponse:
    log.error("report page not served: %s", exc)
    return _page("unavailable.html", 503, title="Try again")


def make_routes(rt: Runtime, *, stats: StatsFunction = engine_stats.workflow_stats) -> list[Route]:
    """The two report routes on `rt`'s database and settings, figures from `stats`."""
    routes = _ReportRoutes(rt, stats)
    return [
        Route("/reports/workflows/{id:int}", routes.workflow, methods=["GET"]),
        Route("/reports/enrollments/{id:int}", routes.enrollment, methods=["GET"]),
    ]


@dataclass(frozen=True)
class _Signed:
    exp: int

    def path(self, rt: Runtime, path: str, **query: str) -> str:
        signed = report_links.signed_path(rt.settings.secret_key, path=path, exp=self.exp)
        extra = "".join(f"&{k}={v}" for k, v in query.items())
        return signed + extra


class _ReportRoutes:
    def __init__(self, rt: Runtime, stats: StatsFunction) -> None:
        self.rt = rt
        self.stats = stats

    def _check(self, request: Request) -> _Signed | None:
        exp, sig = request.query_params.get("exp"), request.query_params.get("sig")
        now = self.rt.clock.now()
        if not report_links.verify(self.rt.settings, request.url.path, exp, sig, now):
            return None
        return _Signed(int(exp or 0))

    async def workflow(self, request: Request) -> HTMLResponse:
        signed = self._check(request)
        if signed is None:
            return _refused()
        since = request.query_params.get("since", DEFAULT_RANGE)
        if since not in RANGES:
            since = DEFAULT_RANGE
        try:
            html = await run_in_threadpool(
                self._workflow_page, request.path_params["id"], since, signed
            )
        except LookupError:
            return _not_found("workflow")
        except SQLAlchemyError as exc:
            return _unavailable(exc)
        return HTMLResponse(html, 200, HEADERS)

    async def enrollment(self, request: Request) -> HTMLResponse:
        signed = self._check(request)
        if signed is None:
            return _refused()
        try:
            html = await run_in_threadpool(self._enrollment_page, request.path_params["id"], signed)
        except LookupError:
            return _not_found("enrollment")
        except SQLAlchemyError as exc:
            return _unavailable(exc)
        return HTMLResponse(html, 200, HEADERS)

    def _when(self, at: datetime | None) -> str:
        if at is None:
            return "—"
        return at.astimezone(ZoneInfo(self.rt.settings.timezone)).strftime("%Y-%m-%d %H:%M")

    def _workflow_page(self, workflow_id: int, since: str, signed: _Signed) -> str:
        now = self.rt.clock.now()
        tz = self.rt.settings.timezone
        in_range = report_range(now, RANGES[since], tz)
        with session_scope(self.rt.db) as session:
            _live_workflow(session, workflow_id)
            found = self.stats(
                session, workflow_id=workflow_id, range=in_range, now=now, timezone=tz
            )
            recent = _recent(session, workflow_id)
        labels = {s.index: f"{s.index + 1}. {s.label}" for s in found.steps}
        waits = [s for s in found.steps if s.wait.median_seconds is not None]
        return render(
            "report.html",
            title=f"{found.name} — report",
            s=found,
            since=since,
            start=self._when(found.range.start),
            end=self._when(found.range.end),
            ranges=[
                (name, signed.path(self.rt, request_path(workflow_id), since=name))
                for name in RANGES
            ],
            exited_total=sum(found.exited.values()),
            exits=sorted(found.exited.items(), key=lambda kv: (-kv[1], kv[0])),
            daily=Markup(charts.daily_bars(found.days)),
            funnel=Markup(
                charts.funnel(
                    [
                        ("Enrolled", found.enrolled),
                        *[(labels[s.index], s.run) for s in found.steps],
                    ],
                    title="Enrolled, then each step's runs",
                )
            ),
            labels=labels,
            slowest=sorted(
                waits,
                key=lambda s: (-(s.wait.median_seconds or 0), -(s.wait.p95_seconds or 0)),
            )[:5],
            failing=sorted(
                (s for s in found.steps if s.failed), key=lambda s: (-s.failed, s.index)
            ),
            recent=[
                {
                    "record": name,
                    "status": e.status,
                    "enrolled": self._when(e.enrolled_at),
                    "ended": self._when(e.ended_at),
                    "reason": e.end_reason or "",
                    "href": signed.path(self.rt, ENROLLMENT_PATH.format(id=e.id)),
                }
                for e, name in recent
            ],
            now=self._when(now),
        )

    def _enrollment_page(self, enrollment_id: int, signed: _Signed) -> str:
        with session_scope(self.rt.db) as session:
            enrollment = session.get(Enrollment, enrollment_id)
            if enrollment is None:
                raise LookupError(enrollment_id)
            workflow = _live_workflow(session, enrollment.workflow_id)
            version = session.get(WorkflowVersion, enrollment.version_id)
            name = _names(session, [enrollment])[enrollment.id]
            lines = enrollments_q.timeline(session, enrollment_ids=[enrollment.id])
            return render(
                "enrollment.html",
                title=f"{name} in {workflow.name}",
                e=enrollment,
                record=name,
                workflow=workflow.name,
                version=version.number if version else "?",
                enrolled=self._when(enrollment.enrolled_at),
                ended=self._when(enrollment.ended_at),
                back=signed.path(self.rt, request_path(enrollment.workflow_id)),
                lines=[
                    {
                        "at": self._when(line.at),
                        "kind": line.kind,
                        "step": "" if line.step_index is None else line.step_index + 1,
                        "message": line.message,
                    }
                    for line in lines
                ],
            )


def report_range(now: datetime, days: int, timezone: str) -> engine_stats.Range:
    """The last `days` days in `timezone`, today's so far included: the chart shows `days`
    whole bars rather than two partial ones at the edges."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    start = datetime.combine(today - timedelta(days=days - 1), time(), ZoneInfo(timezone))
    return engine_stats.Range(start=start.astimezone(UTC), end=now)


def _live_workflow(session: Session, workflow_id: int) -> Workflow:
    """The workflow, LookupError when there is none or it was deleted."""
    workflow = session.get(Workflow, workflow_id)
    if workflow is None or workflow.deleted_at is not None:
        raise LookupError(workflow_id)
    return workflow


def request_path(workflow_id: int) -> str:
    """The report page's path for a workflow (what its links sign)."""
    return WORKFLOW_PATH.format(id=workflow_id)


def _recent(session: Session, workflow_id: int) -> list[tuple[Enrollment, str]]:
    found = enrollments_q.of_workflow(session, workflow_id=workflow_id, limit=RECENT)
    names = _names(session, found)
    return [(e, names[e.id]) for e in found]


def _names(session: Session, found: Sequence[Enrollment]) -> dict[int, str]:
    """Each enrollment's record as a person reads it: its name, else its external id."""
    shown: dict[tuple[str, int], str] = {}
    for kind, model in (("account", Account), ("contact", Contact)):
        ids = [e.object_id for e in found if e.object_type == kind]
        if not ids:
            continue
        if model is Contact:
            rows = session.execute(
                select(
                    Contact.id,
                    Contact.name,
                    Contact.first_name,
                    Contact.last_name,
                    Contact.email,
                    Contact.external_id,
                ).where(Contact.id.in_(ids))
            )
            for rid, name, first, last, email, external in rows:
                person = " ".join(p for p in (first, last) if p)
                shown[(kind, rid)] = name or person or email or external
        else:
            accounts = session.execute(
                select(Account.id, Account.name, Account.external_id).where(Account.id.in_(ids))
            )
            for rid, name, external in accounts:
                shown[(kind, rid)] = name or external
    return {e.id: shown.get((e.object_type, e.object_id), f"#{e.object_id}") for e in found}
