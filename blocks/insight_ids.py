"""The ids of Insight's own elements — the logs' Next / Previous, the View report link — shared
by blocks.workflows / blocks.stats and bot.listeners.insight, and what a page button carries.

A page button's value is JSON: the workflow id, the record (object type, external id) or
none, and the offset of the page it shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum


class InsightAction(StrEnum):
    LOGS_NEXT = "insight_logs_next"
    LOGS_PREVIOUS = "insight_logs_previous"
    REPORT_LINK = "insight_report_link"  # a link button: Slack still sends the click, only acked


class InsightBlock(StrEnum):
    LOGS_PAGES = "insight_logs_pages"  # the actions block of Next / Previous
    REPORT = "insight_report"  # the actions block of View report


@dataclass(frozen=True)
class LogsPage:
    """Which page of a workflow's enrollments a Next or Previous button shows."""

    workflow_id: int
    record: tuple[str, str] | None  # (object type, external id)
    offset: int

    def value(self) -> str:
        found: dict[str, object] = {"w": self.workflow_id, "o": self.offset}
        if self.record is not None:
            found["r"] = list(self.record)
        return json.dumps(found, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def parse(cls, value: str) -> LogsPage:
        """The page a button's value names; ValueError if it is not one of ours."""
        try:
            data = json.loads(value)
            workflow_id, offset = data["w"], data["o"]
            record = data.get("r")
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a logs page value: {value[:100]!r}") from exc
        if not (isinstance(workflow_id, int) and isinstance(offset, int) and offset >= 0):
            raise ValueError(f"not a logs page value: {value[:100]!r}")
        if record is not None:
            if not (
                isinstance(record, list)
                and len(record) == 2
                and all(isinstance(part, str) for part in record)
            ):
                raise ValueError(f"not a logs page value: {value[:100]!r}")
            return cls(workflow_id, (record[0], record[1]), offset)
        return cls(workflow_id, None, offset)
