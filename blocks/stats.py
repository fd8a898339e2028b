"""Insight's Slack messages — `/workflow stats` (every workflow, a line each), `/workflow stats
NAME` (one workflow's numbers, funnel, exits, steps and emails) and `/workflow report NAME` —
built from engine.stats' dataclasses: plain data in, a message (`text` and `blocks`) out, within
Slack's limits, every user-supplied value escaped. Charts are text: ▇ bars in code blocks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from blocks import kit
from blocks import workflows as workflow_blocks
from blocks.ids import COMMAND
from blocks.insight_ids import InsightBlock
from engine.stats import EmailStats, Range, Rate, StepStats, Summary, WorkflowStats

Message = dict[str, Any]
Block = kit.Block

BAR = "▇"
BAR_WIDTH = 20  # characters of the longest bar
SPARKS = "▁▂▃▄▅▆▇█"
LABEL_WIDTH = 24  # of a funnel row's label, padded so the bars line up
NAME_MAX = 100  # of a workflow name in a line
LABEL_MAX = 150  # of a step label in a line
REASON_MAX = 60  # of an exit or skip reason
FUNNEL_BLOCKS_MAX = 3
STEP_BLOCKS_MAX = 10
EMAIL_BLOCKS_MAX = 20
LIST_BLOCKS_MAX = kit.MESSAGE_BLOCKS_MAX - 4  # header, range, "… more", the hint


# -- words and numbers -----------------------------------------------------------------------
def _esc(value: str, limit: int) -> str:
    return kit.truncate(kit.escape(value), limit)


def trend_text(trend: float | None) -> str:
    """▲ 25% / ▼ 10%, or — when there is nothing to compare with or no change."""
    if trend is None:
        return "—"
    percent = round(trend * 100)
    if percent == 0:
        return "— 0%"
    return f"▲ {percent:,}%" if percent > 0 else f"▼ {-percent:,}%"


def percent(rate: Rate) -> str:
    """The share as a whole percent (one decimal under 10%), — when its base is 0."""
    share = rate.share
    if share is None:
        return "—"
    value = share * 100
    return f"{value:.1f}%" if 0 < value < 10 else f"{value:.0f}%"


def duration(seconds: float | None) -> str:
    """A human duration: 45 s, 12 min, 3.5 h, 2.1 d; — when unknown."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{_one_decimal(seconds / 3600)} h"
    return f"{_one_decimal(seconds / 86400)} d"


def _one_decimal(value: float) -> str:
    shown = f"{value:,.1f}"
    return shown.removesuffix(".0")


def _days(in_range: Range) -> int:
    return round((in_range.end - in_range.start).total_seconds() / 86400)


def range_text(in_range: Range) -> str:
    """ "the last 30 days (31 Jan to 2 Mar 2026)", the end being now."""
    start, end = in_range.start, in_range.end
    year = end.year != start.year
    return f"the last {_days(in_range):,} days ({_day(start, year)} to {_day(end, True)})"


def _day(at: date, year: bool = False) -> str:
    return f"{at.day} {at:%b}" + (f" {at.year}" if year else "")


def bar(value: int, most: int, width: int = BAR_WIDTH) -> str:
    """`value` as a bar of ▇, `most` being `width` long; at least one ▇ for any value."""
    if value <= 0 or most <= 0:
        return ""
    return BAR * max(1, round(width * min(value, most) / most))


def sparkline(values: Sequence[int]) -> str:
    """One character per value, ▁ (none) to █ (the most)."""
    most = max(values, default=0)
    if most <= 0:
        return SPARKS[0] * len(values)
    top = len(SPARKS) - 1
    return "".join(SPARKS[0 if v <= 0 else max(1, round(top * v / most))] for v in values)


def _packed(lines: Sequence[str], most: int, title: str | None = None) -> tuple[list[Block], int]:
    """mrkdwn `lines` in as few sections as fit (each within Slack's limit; a line too long
    for one is cut), at most `most` of them, `title` first; and how many lines did not fit."""
    blocks: list[Block] = []
    current: list[str] = [title] if title else []
    size = len(title) if title else -1
    room = kit.SECTION_TEXT_MAX - size - 1  # the first line shares its section with the title
    for index, raw in enumerate(lines):
        line = kit.truncate(raw, room)
        room = kit.SECTION_TEXT_MAX
        if current and size + 1 + len(line) > kit.SECTION_TEXT_MAX:
            blocks.append(kit.section("\n".join(current)))
            current, size = [], -1
            if len(blocks) == most:
                return blocks, len(lines) - index
        current.append(line)
        size += 1 + len(line)
    if current:
        blocks.append(kit.section("\n".join(current)))
    return blocks, 0


# -- `/workflow stats` ---------------------------------------------------------------------------
def summary_line(found: Summary) -> str:
    """One workflow's key numbers in the range, and its trend (mrkdwn)."""
    numbers = (
        f"{found.enrolled:,} enrolled · {found.active:,} active · {found.completed:,} completed · "
        f"{found.exited:,} exited · {found.failed:,} failed · {found.sent:,} sent · "
        f"{percent(found.opened)} opened"
    )
    return f"*{_esc(found.name, NAME_MAX)}*  _{found.status}_  {trend_text(found.trend)}\n{numbers}"


def stats_list_message(summaries: Sequence[Summary], in_range: Range) -> Message:
    """`/workflow stats`: every workflow in a line with its numbers in the range and its trend
    (enrolled against the same length before); past what fits, "…and N more"."""
    when = range_text(in_range)
    blocks: list[Block] = [kit.header("Workflow stats"), kit.context(f"In {when}, UTC.")]
    if not summaries:
        blocks.append(kit.section("No workflows yet."))
        return {"text": f"Workflow stats: no workflows yet ({when})", "blocks": blocks}
    lines = [summary_line(s) for s in summaries]
    shown, hidden = _packed(lines, LIST_BLOCKS_MAX)
    blocks += shown
    if hidden:
        blocks.append(
            kit.context(f"{kit.ELLIPSIS}and {hidden:,} more: `{COMMAND} stats NAME` shows any one.")
        )
    blocks.append(
        kit.context(
            f"Trend: enrolled against the {_days(in_range):,} days before. "
            f"`{COMMAND} stats NAME` shows one workflow's funnel, steps and emails; "
            "`--since 7d`, `30d` or `90d` another range."
        )
    )
    text = f"Workflow stats, {when}: {len(summaries):,} workflows"
    return {"text": text, "blocks": blocks}


# -- `/workflow stats NAME` ------------------------------------------------------------------------
def _funnel_rows(stats: WorkflowStats) -> list[str]:
    """Enrolled, then each step's run, as aligned rows of ▇ bars (plain text, for a code
    block: escaped there)."""
    rows = [(f"{s.index + 1}. {s.label}", s.run) for s in stats.steps]
    most = max([stats.enrolled, *(count for _, count in rows)])
    width = max(len(f"{count:,}") for count in [stats.enrolled, *(c for _, c in rows)])

    def row(label: str, count: int, share: str) -> str:
        shown = kit.truncate(" ".join(label.split()), LABEL_WIDTH).ljust(LABEL_WIDTH)
        return f"{shown} {count:>{width},} {share:>4} {bar(count, most)}".rstrip()

    out = [row("Enrolled", stats.enrolled, "")]
    for label, count in rows:
        out.append(row(label, count, f"{count / stats.enrolled:.0%}" if stats.enrolled else ""))
    return out


def _counted(counts: Mapping[str, int]) -> str:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{_esc(reason, REASON_MAX)} {count:,}" for reason, count in ordered)


def _step_line(step: StepStats) -> str:
    parts = [f"{step.run:,} run"]
    skipped = sum(step.skipped.values())
    if skipped:
        parts.append(f"{skipped:,} skipped ({_counted(step.skipped)})")
    if step.failed:
        parts.append(f"{step.failed:,} failed")
    if step.pending:
        parts.append(f"{step.pending:,} waiting now")
    wait = (
        f"wait median {duration(step.wait.median_seconds)}, p95 {duration(step.wait.p95_seconds)}"
    )
    if step.wait.resolution != "exact":
        wait += f" (≈ {_esc(step.wait.resolution, REASON_MAX)})"
    parts.append(wait)
    label = _esc(" ".join(step.label.split()), LABEL_MAX)
    return f"`{step.index + 1}` *{label}* _{kit.escape(step.action)}_\n" + " · ".join(parts)


def _email_lines(email: EmailStats, label: str) -> list[str]:
    funnel = f"{email.drafted:,} drafted → {email.approved:,} approved → {email.sent:,} sent"
    ended = [
        f"{count:,} {what}"
        for what, count in (
            ("edited before sending", email.edited),
            ("discarded", email.discarded),
            ("expired", email.expired),
            ("failed", email.failed),
        )
        if count
    ]
    opened = f"opened {percent(email.opened)} ({email.opened.count:,}"
    if email.machine_opened:
        opened += f"; {email.machine_opened:,} more by machines only, not counted"
    clicked = f"clicked {percent(email.clicked)} ({email.clicked.count:,}"
    if email.scanner_clicked:
        clicked += f"; {email.scanner_clicked:,} more by link scanners only, not counted"
    return [
        f"*Step {email.index + 1} · {_esc(label, LABEL_MAX)}*",
        funnel + (f" · {', '.join(ended)}" if ended else ""),
        f"{opened}) · {clicked})",
        f"unsubscribed {percent(email.unsubscribed)} ({email.unsubscribed.count:,}) · "
        f"median approval {duration(email.approval_median_seconds)}",
    ]


def _report_button(url: str) -> Block:
    button = workflow_blocks.report_button(url)
    return {"type": "actions", "block_id": str(InsightBlock.REPORT), "elements": [button]}


def stats_message(stats: WorkflowStats, *, report_url: str | None) -> Message:
    """`/workflow stats NAME` and Open's statistics: key numbers, enrolled per day, the funnel
    (enrolled → each step's run), exits by reason, each step's skips, failures and waits, an
    "Email stats" section per email step, and View report when `report_url` is given."""
    when = range_text(stats.range)
    exited = sum(stats.exited.values())
    blocks: list[Block] = [
        kit.header(stats.name),
        kit.context(
            f"_{stats.status}_ · v{stats.version} · {when}, UTC · enrolled "
            f"{trend_text(stats.trend)} against the {_days(stats.range):,} days before"
        ),
        kit.fields(
            [
                f"*Enrolled*\n{stats.enrolled:,}",
                f"*Active now*\n{stats.active:,}",
                f"*Completed*\n{stats.completed:,}",
                f"*Exited*\n{exited:,}",
                f"*Failed*\n{stats.failed:,}",
                f"*Trend*\n{trend_text(stats.trend)}",
            ]
        ),
    ]
    if stats.days:
        first, last = stats.days[0].day, stats.days[-1].day
        spark = sparkline([d.enrolled for d in stats.days])
        blocks.append(kit.section(f"*Enrolled per day*, {_day(first)} to {_day(last)}\n`{spark}`"))
    funnel, left = workflow_blocks.code_blocks(_funnel_rows(stats), FUNNEL_BLOCKS_MAX)
    blocks.append(kit.section("*Funnel*: enrolled, then how many ran each step"))
    blocks += funnel
    if left:
        blocks.append(kit.context(f"{left:,} more steps: the report shows them all."))
    blocks.append(
        kit.section(f"*Exits by reason*\n{_counted(stats.exited)}" if exited else "*No exits.*")
    )
    if stats.steps:
        steps, hidden = _packed([_step_line(s) for s in stats.steps], STEP_BLOCKS_MAX, "*Steps*")
        blocks += steps
        if hidden:
            blocks.append(kit.context(f"{kit.ELLIPSIS}and {hidden:,} more steps."))
    if stats.emails:
        labels = {s.index: s.label for s in stats.steps}
        lines = [
            "\n".join(_email_lines(e, " ".join(labels.get(e.index, "email").split())))
            for e in stats.emails
        ]
        emails, hidden = _packed(lines, EMAIL_BLOCKS_MAX, "*Email stats*")
        blocks += emails
        if hidden:
            blocks.append(kit.context(f"{kit.ELLIPSIS}and {hidden:,} more email steps."))
    if report_url is not None:
        blocks.append(_report_button(report_url))
    blocks.append(
        kit.context(
            f"`{COMMAND} stats {workflow_blocks.typed(stats.name)} --since 7d` (or `30d`, "
            f"`90d`) for another range; `{COMMAND} logs {workflow_blocks.typed(stats.name)}` "
            "for each enrollment's timeline."
        )
    )
    text = (
        f"{_esc(stats.name, NAME_MAX)}, {when}: {stats.enrolled:,} enrolled, "
        f"{stats.completed:,} completed"
    )
    return {"text": text, "blocks": blocks}


def open_message(detail: Message, stats: WorkflowStats) -> Message:
    """`/workflow open`: the workflow's message (description, counts, latest log lines, its
    buttons), then its statistics (`stats_message` without a second header or button), cut to
    Slack's 50 blocks with a pointer to the rest."""
    figures = stats_message(stats, report_url=None)["blocks"][1:]
    blocks = [*detail["blocks"], kit.divider(), *figures]
    if len(blocks) > kit.MESSAGE_BLOCKS_MAX:
        blocks = blocks[: kit.MESSAGE_BLOCKS_MAX - 1]
        blocks.append(
            kit.context(f"More in `{COMMAND} stats {workflow_blocks.typed(stats.name)}`.")
        )
    return {"text": detail["text"], "blocks": blocks}


# -- `/workflow report NAME` ---------------------------------------------------------------------
def report_message(name: str, url: str) -> Message:
    """The signed link to a workflow's report page, as a link button."""
    text = (
        f"*{_esc(name, NAME_MAX)}*: its report — funnel, steps, emails, day by day. The link "
        "works for 7 days."
    )
    blocks = [kit.section(text), _report_button(url)]
    return {"text": f"Report of {_esc(name, NAME_MAX)}", "blocks": blocks}
