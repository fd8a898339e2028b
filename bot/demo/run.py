"""The demo: a month of Lumen's customer-success work played on a fast clock.

The dataset (bot/demo/data/lumen.jsonl) is loaded as history without signals, the workspace
file (bot/demo/demo-workflows.yml) is applied, then every simulated hour the hour's calls go
through ingestion and the engine does, synchronously, what its workers and scheduler do:
evaluate the changes, run the due steps, post drafts to Slack, expire and update them. A
simulated teammate decides each draft a few hours after it was posted (approves nine in ten,
discards the tenth) through the same transitions as the Slack buttons.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bot.demo import show
from bot.demo.stage import GMAIL_CALLBACK, TEAM, Stage
from engine import draft_messages, drafts, runner, runtime, signals, stats, workspace
from engine import users as people
from engine.definitions import parse_document
from engine.email import gmail
from engine.fileload import load_text
from engine.ingest.schema import parse_call
from engine.ingest.writer import commit_changes
from engine.lifecycle import load_stages
from engine.runtime import Runtime
from engine.scheduler import Scheduler
from engine.secrets import Vault
from engine.settings import Settings
from storage.action_models import Draft
from storage.db import session_scope
from storage.queries import steps as step_rows
from storage.queries import users as user_rows

HERE = Path(__file__).parent
DATASET = HERE / "data" / "lumen.jsonl"
WORKFLOWS = HERE / "demo-workflows.yml"
SEED = 7
DISCARD_EVERY = 10  # the teammate discards one draft in ten


class DemoClock:
    """The demo's fast clock: the engine reads it, the simulation moves it."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current


@dataclass
class Played:
    """What the run did, for the closing summary and the tests."""

    start: datetime
    end: datetime
    summaries: list[stats.Summary] = field(default_factory=list)
    decisions: dict[int, str] = field(default_factory=dict)  # draft id -> approved | discarded
    events: int = 0


def read_dataset(path: Path = DATASET) -> list[dict[str, Any]]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def _at(start: datetime, call: dict[str, Any]) -> dict[str, Any]:
    """The call with its real timestamp (its `at` is minutes from the month's start)."""
    body = {k: v for k, v in call.items() if k != "at"}
    body["timestamp"] = (start + timedelta(minutes=call["at"])).isoformat()
    return body


class Simulation:
    """The engine's duties, run synchronously on the demo clock, and the teammate."""

    def __init__(self, rt: Runtime, stage: Stage, say: Callable[[str], None]) -> None:
        assert isinstance(rt.clock, DemoClock)
        self.rt, self.stage, self.clock = rt, stage, rt.clock
        self.outbox: list[int] = []
        self.steps: list[int] = []
        self.svc = runner.services(rt, enqueue_evaluation=self.outbox.extend)
        self.scheduler = Scheduler(rt, enqueue=self.outbox.extend, enqueue_steps=self.steps.extend)
        self.rng = random.Random(SEED)
        self.decide_at: dict[int, datetime] = {}
        self.decided = 0
        self.show = show.Narrator(rt, stage, say)
        self.lease = timedelta(seconds=rt.settings.step_lease_seconds)

    # -- set-up -------------------------------------------------------------------------------
    def setup(self, calls: Sequence[dict[str, Any]], start: datetime) -> None:
        """Stages and health first, then the history (no signals), then the workspace."""
        text = WORKFLOWS.read_text().replace("DEMO_WEBHOOK_URL", self.stage.sink.url)
        document = load_text(text, source=str(WORKFLOWS))
        lifecycle_only = {k: document[k] for k in ("version", "stages", "health")}
        with session_scope(self.rt.db) as session:
            workspace.apply(session, parse_document(lifecycle_only), now=start, by="demo")
        self._users(start)
        stages = load_stages(self.rt.db)
        history = [c for c in calls if c["at"] < 0]
        for i in range(0, len(history), 500):
            changes = [
                parse_call(_at(start, c), now=start, stages=stages) for c in history[i : i + 500]
            ]
            commit_changes(self.rt.db, changes, clock=self.clock, signals=False)
        for call in calls:
            if call["type"] == "group" and "domain" in call.get("traits", {}):
                self.stage.add_account(call["traits"]["name"], call["traits"]["domain"])
        with session_scope(self.rt.db) as session:
            workspace.apply(
                session,
                parse_document(document),
                now=start,
                by="demo",
                allowed_hosts=self.rt.settings.webhook_allowed_hosts,
                settings=self.rt.settings,
                resolver=self.rt.resolver,
            )

    def _users(self, now: datetime) -> None:
        """The CS team, with their CRM ids; Dana's Gmail is connected (the Google stand-in)."""
        dana = TEAM[0]
        with gmail.GmailClient(self.rt.settings, self.rt.resolver) as client:
            code = self.stage.google.grant(dana.email, GMAIL_CALLBACK)
            tokens = client.exchange_code(code, GMAIL_CALLBACK, now)
        with session_scope(self.rt.db) as session:
            for person in TEAM:
                user = people.set_user(
                    session,
                    person.email,
                    now=now,
                    slack_id=self.stage.slack_ids.get(person.email),
                    name=person.name,
                    crm_ids={"salesforce": person.salesforce, "hubspot": person.hubspot},
                )
                if person is dana:
                    user_rows.save_connection(
                        session,
                        user_id=user.id,
                        provider="gmail",
                        account=dana.email,
                        secret=Vault(self.rt.settings.secret_key).encrypt_json(tokens.as_dict()),
                        now=now,
                    )

    # -- one simulated hour ---------------------------------------------------------------------
    def hour(self, calls: Sequence[dict[str, Any]], start: datetime) -> None:
        now = self.clock.now()
        if calls:
            stages = load_stages(self.rt.db)
            changes = [parse_call(_at(start, c), now=now, stages=stages) for c in calls]
            self.outbox += commit_changes(self.rt.db, changes, clock=self.clock).outbox_ids
        self.work()
        self.scheduler.expire_drafts()
        self.scheduler.refresh_segments()
        self.work()
        draft_messages.sync(self.rt.db, self.rt.settings, now)
        self.show.flush()
        self.show.drafts_posted()
        if self.teammate():
            self.work()
            draft_messages.sync(self.rt.db, self.rt.settings, now)
            self.show.flush()

    def work(self) -> None:
        """Evaluate what changed and run what is due, as the workers would, until quiet."""
        for _ in range(100):
            self.dispatch()
            if self.outbox:
                ids, self.outbox = self.outbox, []
                with session_scope(self.rt.db) as session:
                    done = signals.evaluate(
                        session, outbox_ids=ids, now=self.clock.now(), lease=self.lease
                    )
                self.steps += done.due_steps
                continue
            if not self.steps:
                return
            batch, self.steps = sorted(set(self.steps)), []
            self.steps += runner.run_steps(self.svc, batch)
        raise RuntimeError("the demo's work did not settle")

    def dispatch(self) -> None:
        """Take the steps due now, as the scheduler's dispatch does."""
        while True:
            with session_scope(self.rt.db) as session:
                ids = step_rows.dispatch_due(
                    session, now=self.clock.now(), lease=self.lease, limit=1000
                )
            if not ids:
                return
            self.steps += ids

    def teammate(self) -> int:
        """Decide the drafts whose time has come (posted 2 to 6 hours ago); how many."""
        now = self.clock.now()
        with session_scope(self.rt.db) as session:
            pending = list(session.scalars(select(Draft.id).where(Draft.status == "pending")))
        for draft_id in pending:
            self.decide_at.setdefault(draft_id, now + timedelta(hours=self.rng.randint(2, 6)))
        due = [d for d in pending if self.decide_at[d] <= now]
        approver = TEAM[0]
        by = self.stage.slack_ids.get(approver.email, approver.email)
        for draft_id in due:
            self.decided += 1
            move = drafts.discard if self.decided % DISCARD_EVERY == 0 else drafts.approve
            with session_scope(self.rt.db) as session:
                try:
                    decision = move(session, draft_id, by=by, now=now)
                except drafts.DraftError:
                    continue  # an exit withdrew it meanwhile
                self.steps.append(decision.step_id)
                self.show.decided(decision.draft, approver.name)
        return len(due)


def play(
    rt: Runtime, stage: Stage, *, days: int, say: Callable[[str], None], start: datetime
) -> Played:
    """Load, apply and play `days` simulated days from `start` (hour by hour)."""
    calls = read_dataset()
    sim = Simulation(rt, stage, say)
    sim.clock.current = start
    sim.setup(calls, start)
    accounts = sum(1 for c in calls if c["type"] == "group" and "domain" in c["traits"])
    contacts = sum(1 for c in calls if c["type"] == "identify")
    say(
        f"Lumen, a fictional SaaS: {accounts} accounts, {contacts} contacts; "
        f"{WORKFLOWS.name} applied (4 workflows). Playing {days} days, an hour a step…"
    )
    month = [c for c in calls if 0 <= c["at"] < days * 24 * 60]
    played = Played(start=start, end=start + timedelta(days=days), events=len(month))
    hours = _by_hour(month)
    for h in range(1, days * 24 + 1):
        sim.clock.current = start + timedelta(hours=h)
        sim.show.hour = h
        sim.hour(hours.get(h - 1, []), start)
    sim.scheduler.roll_up_stats(force=True)
    with session_scope(rt.db) as session:
        played.summaries = stats.summaries(
            session, range=stats.Range(start, played.end + timedelta(seconds=1)), now=played.end
        )
        for d in session.scalars(
            select(Draft).where(Draft.status.in_(["sent", "discarded"]), Draft.kind != "team")
        ):
            played.decisions[d.id] = d.status
    return played


def _by_hour(calls: Sequence[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    hours: dict[int, list[dict[str, Any]]] = {}
    for call in calls:
        hours.setdefault(call["at"] // 60, []).append(call)
    return hours


def month_start(days: int, now: datetime | None = None) -> datetime:
    """The simulated month ends at this hour, so the database reads as recent history."""
    now = (now or datetime.now(UTC)).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(days=days)


def connect(settings: Settings, *, marker: str) -> Runtime:
    """Migrate the demo database, set up the in-process broker and a runtime on the demo's
    clock, and mark the database as the demo's."""
    from engine import broker
    from storage import migrate
    from storage.db import make_engine
    from storage.queries import configuration

    engine = make_engine(settings.database_url, application_name="workflowbot-demo")
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    broker.setup(settings, application_name="workflowbot-demo")
    rt = runtime.get()
    rt.clock = DemoClock(datetime.now(UTC))
    with session_scope(rt.db) as session:
        configuration.put(session, key=marker, value={"dataset": DATASET.name}, now=rt.clock.now())
    return rt


def report_links(rt: Runtime, played: Played) -> dict[str, str]:
    """A signed link to each workflow's report page (valid a week from the real now)."""
    from bot.reports_web import WORKFLOW_PATH
    from engine import report_links as links

    now = datetime.now(UTC)
    return {
        s.name: links.link(rt.settings, path=WORKFLOW_PATH.format(id=s.workflow_id), now=now)
        for s in played.summaries
    }


def closing(played: Played, links: dict[str, str], elapsed: float) -> str:
    """The summary printed at the end: each workflow's numbers, the decisions, the links."""
    sent = sum(1 for v in played.decisions.values() if v == "sent")
    discarded = sum(1 for v in played.decisions.values() if v == "discarded")
    lines = [
        "",
        f"{(played.end - played.start).days} simulated days, {played.events:,} calls replayed, "
        f"in {elapsed:.1f} s. Drafts: {sent} sent after approval, {discarded} discarded.",
        "",
        "Workflows:",
    ]
    for s in played.summaries:
        lines.append(
            f"  {s.name} ({s.status}): enrolled {s.enrolled:,} · active {s.active:,} · "
            f"completed {s.completed:,} · exited {s.exited:,} · failed {s.failed:,} · "
            f"sent {s.sent:,}"
        )
    lines += ["", "Reports (start `workflowbot run` as below, then open):"]
    lines += [f"  {name}: {url}" for name, url in links.items()]
    return "\n".join(lines)
