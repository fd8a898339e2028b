"""Charts for the report pages, drawn on the server: plain data in, an SVG string out.

Every text is XML-escaped, every chart has a viewBox (it scales to its container's width)
and a <title> for screen readers; no script, no external reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

from engine.stats import Day

ENROLLED_COLOR = "#4a6fa5"
COMPLETED_COLOR = "#3d9970"
GRID_COLOR = "#d9dde3"
TEXT_COLOR = "#374151"


def nice_max(value: int) -> int:
    """The axis top for `value`: 1, 2 or 5 times a power of ten, at least `value` (and 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover  (the loop always returns)


def _text(x: float, y: float, body: str, *, anchor: str = "start", size: int = 12) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
        f'fill="{TEXT_COLOR}">{escape(body)}</text>'
    )


def _open(width: int, height: int, title: str, testid: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" data-testid={quoteattr(testid)} '
        f'font-family="system-ui, sans-serif" preserveAspectRatio="xMidYMid meet">'
        f"<title>{escape(title)}</title>"
    )


def daily_bars(days: Sequence[Day], *, title: str = "Enrolled and completed per day") -> str:
    """Two bars a day (enrolled, completed) on a shared y axis, with dates below and a legend."""
    width, height = 720, 280
    left, right, top, bottom = 44, 12, 48, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [_open(width, height, title, "daily-chart"), _text(left, 18, title, size=15)]
    for i, (name, color) in enumerate(
        (("enrolled", ENROLLED_COLOR), ("completed", COMPLETED_COLOR))
    ):
        x = left + i * 110
        parts.append(f'<rect x="{x}" y="28" width="10" height="10" fill="{color}"/>')
        parts.append(_text(x + 14, 37, name, size=12))
    if not days:
        parts.append(_text(width / 2, top + plot_h / 2, "No days in this range", anchor="middle"))
        return "".join([*parts, "</svg>"])
    top_value = nice_max(max(max(d.enrolled, d.completed) for d in days))
    base = top + plot_h
    half = top_value // 2 if top_value % 2 == 0 else None  # whole numbers only
    for tick in (t for t in (0, half, top_value) if t is not None):
        y = base - plot_h * tick / top_value
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
            f'stroke="{GRID_COLOR}" stroke-width="1"/>'
        )
        parts.append(_text(left - 6, y + 4, str(tick), anchor="end", size=12))
    slot = plot_w / len(days)
    bar = max(slot * 0.38, 0.5)
    label_every = max(1, math.ceil(len(days) / 8))
    for i, day in enumerate(days):
        x0 = left + i * slot + (slot - 2 * bar) / 2
        for j, (kind, value, color) in enumerate(
            (
                ("enrolled", day.enrolled, ENROLLED_COLOR),
                ("completed", day.completed, COMPLETED_COLOR),
            )
        ):
            h = plot_h * value / top_value
            parts.append(
                f'<rect class="bar bar-{kind}" data-day="{day.day.isoformat()}" '
                f'data-value="{value}" x="{x0 + j * bar:.1f}" y="{base - h:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{color}">'
                f"<title>{escape(f'{_short(day)}: {value} {kind}')}</title></rect>"
            )
        if i % label_every == 0:
            parts.append(
                _text(
                    left + (i + 0.5) * slot,
                    height - bottom + 18,
                    _short(day),
                    anchor="middle",
                    size=11,
                )
            )
    parts.append(
        f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="{TEXT_COLOR}"/>'
    )
    return "".join([*parts, "</svg>"])


def _short(day: Day) -> str:
    return f"{day.day:%b} {day.day.day}"


def _clip(label: str, limit: int = 64) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def funnel(steps: Sequence[tuple[str, int]], *, title: str = "Funnel") -> str:
    """One horizontal bar per (label, count), its label above it, widths in proportion to the
    largest count, each with its count and its share of the first."""
    width, top, label_h, bar_h, gap, count_w = 480, 34, 18, 20, 10, 96
    row = label_h + bar_h + gap
    bar_w = width - count_w
    height = top + max(len(steps), 1) * row
    parts = [_open(width, height, title, "funnel-chart"), _text(0, 18, title, size=15)]
    if not steps:
        parts.append(_text(width / 2, top + row / 2, "No steps", anchor="middle"))
        return "".join([*parts, "</svg>"])
    biggest = max(max(count for _, count in steps), 1)
    first = steps[0][1]
    for i, (label, count) in enumerate(steps):
        y = top + i * row
        w = bar_w * count / biggest
        share = f" ({count / first:.0%})" if first and i else ""
        parts.append(_text(0, y + 13, _clip(label), size=13))
        parts.append(
            f'<rect class="funnel-bar" data-value="{count}" x="0" y="{y + label_h}" '
            f'width="{w:.1f}" height="{bar_h}" rx="3" fill="{ENROLLED_COLOR}">'
            f"<title>{escape(f'{label}: {count}')}</title></rect>"
        )
        parts.append(_text(w + 6, y + label_h + 15, f"{count}{share}", size=13))
    return "".join([*parts, "</svg>"])
