"""Feed calls through the real ingestion path and evaluate the outbox, synchronously."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from engine import segments, signals
from engine.ingest.schema import parse_call
from engine.ingest.writer import commit_changes
from engine.runtime import Runtime
from storage.db import session_scope
from storage.models import Account, Contact, OutboxRow, Signal

_ids = itertools.count(1)


@dataclass
class Harness:
    rt: Runtime

    def send(self, *calls: dict[str, Any], signals: bool = True) -> list[int]:
        """Store calls as the API would (in one transaction); returns the outbox ids."""
        now = self.rt.clock.now()
        changes = [
            parse_call({"messageId": f"m-{next(_ids)}", "timestamp": now.isoformat(), **c}, now=now)
            for c in calls
        ]
        return commit_changes(self.rt.db, changes, clock=self.rt.clock, signals=signals).outbox_ids

    def identify(self, user: str, signals: bool = True, **traits: Any) -> list[int]:
        return self.send({"type": "identify", "userId": user, "traits": traits}, signals=signals)

    def group(self, account: str, user: str | None = None, **traits: Any) -> list[int]:
        call: dict[str, Any] = {"type": "group", "groupId": account, "traits": traits}
        if user:
            call["userId"] = user
        return self.send(call)

    def track(
        self, user: str, event: str, at: datetime | None = None, signals: bool = True, **props: Any
    ) -> list[int]:
        call: dict[str, Any] = {
            "type": "track",
            "userId": user,
            "event": event,
            "properties": props,
        }
        if at is not None:
            call["timestamp"] = at.isoformat()
        return self.send(call, signals=signals)

    def evaluate(self, ids: list[int] | None = None) -> int:
        """Evaluate the given outbox rows, or every pending one; returns signals stored."""
        with session_scope(self.rt.db) as s:
            if ids is None:
                ids = list(s.scalars(select(OutboxRow.id).where(OutboxRow.processed_at.is_(None))))
            return signals.evaluate(s, outbox_ids=ids, now=self.rt.clock.now()).signals

    def segment(self, name: str, rule: str, object_type: str = "account") -> int:
        """Create a segment (first computation); returns its size."""
        with session_scope(self.rt.db) as s:
            return segments.create(
                s, name=name, object_type=object_type, rule=rule, now=self.rt.clock.now()
            )[1]

    def signals(self, after: int = 0) -> list[tuple[str, str, str, str]]:
        """(object type, external id, kind, key) of every signal, in order."""
        with session_scope(self.rt.db) as s:
            found = []
            for sig in s.scalars(select(Signal).where(Signal.id > after).order_by(Signal.id)):
                model = Account if sig.object_type == "account" else Contact
                external = s.scalar(select(model.external_id).where(model.id == sig.object_id))
                found.append((sig.object_type, external or "?", sig.kind, sig.key))
            return found

    def details(self) -> list[dict[str, Any]]:
        with session_scope(self.rt.db) as s:
            return [sig.detail for sig in s.scalars(select(Signal).order_by(Signal.id))]

    def members(self, name: str) -> set[str]:
        """External ids of a segment's members."""
        from storage.models import Segment, SegmentMember

        with session_scope(self.rt.db) as s:
            seg = s.scalars(select(Segment).where(Segment.name == name)).one()
            model = Account if seg.object_type == "account" else Contact
            return set(
                s.scalars(
                    select(model.external_id)
                    .join(SegmentMember, SegmentMember.record_id == model.id)
                    .where(SegmentMember.segment_id == seg.id)
                )
            )
