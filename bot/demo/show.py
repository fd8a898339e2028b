"""What the demo prints as it plays: what each peer received and what the engine did, one
readable line each, stamped with the simulated time (`[day 3 10:00] #cs-alerts ← "…"`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select

from bot.demo.stage import Stage
from engine.runtime import Runtime
from storage.action_models import Draft
from storage.db import session_scope
from storage.models import Account, Contact
from storage.workflow_models import Enrollment, EnrollmentLog, Workflow

WIDTH = 90


def clip(text: str, width: int = WIDTH) -> str:
    """One line of at most `width` characters."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


class Narrator:
    """Prints what happened since it last looked: peers' records and the engine's logs."""

    def __init__(self, rt: Runtime, stage: Stage, say: Callable[[str], None]) -> None:
        self.rt, self.stage, self.say = rt, stage, say
        self.hour = 0
        self.seen = {"slack": 0, "smtp": 0, "sink": 0, "gmail": 0, "hs": 0, "sf": 0}
        self.log_id = 0
        self.draft_id = 0

    def stamp(self) -> str:
        now = self.rt.clock.now()
        return f"[day {(self.hour - 1) // 24 + 1:>2} {now:%H:%M}]"

    def line(self, text: str) -> None:
        self.say(f"{self.stamp()} {text}")

    # -- the engine's side ----------------------------------------------------------------------
    def drafts_posted(self) -> None:
        """Drafts made since the last look, now waiting in the approval channel."""
        with session_scope(self.rt.db) as session:
            made = list(
                session.scalars(select(Draft).where(Draft.id > self.draft_id).order_by(Draft.id))
            )
            for d in made:
                self.draft_id = d.id
                if d.kind == "team":
                    continue
                to = ", ".join(d.to)
                self.line(
                    f'draft #{d.id} ({d.kind}) to {to} "{clip(d.subject, 50)}" '
                    f"(waiting for approval in {self.rt.settings.approval_channel})"
                )

    def decided(self, draft: Draft, by: str) -> None:
        hours = (self.rt.clock.now() - _aware(draft.created_at)).total_seconds() / 3600
        if draft.status == "approved":
            how = "Gmail" if draft.kind == "gmail" else "SMTP"
            self.line(f"draft #{draft.id} approved by {by} {hours:.0f}h later → sending via {how}")
        else:
            self.line(f"draft #{draft.id} DISCARDED by {by} {hours:.0f}h later: not sent")

    def flush(self) -> None:
        """Everything the peers received and the engine logged since the last look."""
        self._logs()
        self._slack()
        self._mail()
        self._webhooks()
        self._tasks()

    def _logs(self) -> None:
        with session_scope(self.rt.db) as session:
            rows = session.execute(
                select(EnrollmentLog, Enrollment, Workflow.name)
                .join(Enrollment, Enrollment.id == EnrollmentLog.enrollment_id)
                .join(Workflow, Workflow.id == Enrollment.workflow_id)
                .where(EnrollmentLog.id > self.log_id)
                .order_by(EnrollmentLog.id)
            ).all()
            for log, e, workflow in rows:
                self.log_id = log.id
                text = self._log_text(log, workflow, real_slack=self.stage.slack is None)
                if text is not None:
                    model = Account if e.object_type == "account" else Contact
                    name = session.scalar(select(model.name).where(model.id == e.object_id))
                    self.line(text.format(record=name or f"{e.object_type} {e.object_id}"))

    @staticmethod
    def _log_text(log: EnrollmentLog, workflow: str, *, real_slack: bool) -> str | None:
        """The line a log entry makes ({record} stands for the record's name), if any; with
        a real workspace (no stand-in to watch) the Slack steps are told from the log."""
        message = log.message.replace("{", "{{").replace("}", "}}")
        if real_slack and log.kind == "run" and "(slack): " in log.message:
            return "{record}: " + message.split("): ", 1)[1]
        if log.kind == "enrolled":
            return f'{{record}} enrolled in "{workflow}"'
        if log.kind == "run" and "(owner): owner set to " in log.message:
            who = message.split("owner set to ", 1)[1].split(" <", 1)[0]
            return f"owner of {{record}} → {who} (round robin)"
        if log.kind == "run" and "(update): " in log.message:
            return "{record}: " + message.split("): ", 1)[1]
        if log.kind in ("exited", "completed", "failed") or "skipped:" in log.message:
            return f"{{record}} ({workflow}): {clip(message, 70)}"
        return None

    # -- the peers' side ------------------------------------------------------------------------
    def _slack(self) -> None:
        peer = self.stage.slack
        if peer is None:
            return
        with peer.lock:
            calls = peer.calls[self.seen["slack"] :]
            self.seen["slack"] = len(peer.calls)
            names = {c.id: c.name for c in peer.channels.values()}
        approvals = (self.rt.settings.approval_channel or "").lstrip("#")
        for call in calls:
            channel = str(call.params.get("channel", ""))
            if call.method != "chat.postMessage" or names.get(channel, channel) == approvals:
                continue  # drafts' approval messages are told as drafts
            text = clip(str(call.params.get("text", "")), 80)
            self.line(f'#{names.get(channel, channel.lstrip("#"))} ← "{text}"')

    def _mail(self) -> None:
        smtp = self.stage.smtp
        got = smtp.received[self.seen["smtp"] :]
        self.seen["smtp"] = len(smtp.received)
        for mail in got:
            message = mail.message
            self.line(f'✉ SMTP → {", ".join(mail.rcpt_tos)} "{clip(str(message["Subject"]), 60)}"')
        google = self.stage.google
        sent = google.sent[self.seen["gmail"] :]
        self.seen["gmail"] = len(google.sent)
        for item in sent:
            m = item.message
            self.line(f'✉ Gmail ({item.account}) → {m["To"]} "{clip(str(m["Subject"]), 60)}"')

    def _webhooks(self) -> None:
        sink = self.stage.sink
        with sink.lock:
            got = sink.received[self.seen["sink"] :]
            self.seen["sink"] = len(sink.received)
        for r in got:
            body = json.dumps(r.json, separators=(",", ":"))
            self.line(f"webhook POST {r.path} ← {clip(body, 70)}")

    def _tasks(self) -> None:
        hs = list(self.stage.hubspot.tasks.values())
        for task in hs[self.seen["hs"] :]:
            self.line(f'HubSpot task "{task["properties"]["hs_task_subject"]}" created')
        self.seen["hs"] = len(hs)
        sf = list(self.stage.salesforce.tasks.values())
        for task in sf[self.seen["sf"] :]:
            self.line(f'Salesforce task "{task["Subject"]}" created')
        self.seen["sf"] = len(sf)


def _aware(at: datetime) -> datetime:
    from datetime import UTC

    return at if at.tzinfo else at.replace(tzinfo=UTC)
