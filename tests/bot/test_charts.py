"""bot/charts.py: SVG drawn on the server parses, scales with the data and escapes text."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

from bot import charts
from engine.stats import Day

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML or it raises
    assert root.tag == f"{SVG}svg"
    assert root.get("viewBox", "").startswith("0 0 ")
    assert root.find(f"{SVG}title") is not None
    assert "<script" not in svg and "href" not in svg
    return root


def bars(root: ET.Element, cls: str) -> list[ET.Element]:
    return [r for r in root.iter(f"{SVG}rect") if cls in (r.get("class") or "").split()]


def days(*pairs: tuple[int, int]) -> list[Day]:
    start = date(2026, 11, 1)
    return [
        Day(day=start + timedelta(days=i), enrolled=e, completed=c, exited=0)
        for i, (e, c) in enumerate(pairs)
    ]


def test_daily_bars_draws_two_bars_a_day_in_proportion() -> None:
    root = parse(charts.daily_bars(days((10, 0), (5, 5), (0, 2))))
    enrolled, completed = bars(root, "bar-enrolled"), bars(root, "bar-completed")
    assert [b.get("data-value") for b in enrolled] == ["10", "5", "0"]
    assert [b.get("data-value") for b in completed] == ["0", "5", "2"]
    heights = [float(b.get("height", "0")) for b in enrolled]
    assert heights[0] == 2 * heights[1] > 0 and heights[2] == 0
    assert float(completed[2].get("height", "0")) == heights[0] / 5
    # Bars stand on one baseline, and days go left to right.
    assert len({round(float(b.get("y", 0)) + float(b.get("height", 0)), 1) for b in enrolled}) == 1
    xs = [float(b.get("x", 0)) for b in enrolled]
    assert xs == sorted(xs)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "Enrolled and completed per day" in texts
    assert {"Nov 1", "Nov 2", "Nov 3", "0", "10"} <= set(texts)


def test_daily_bars_thins_date_labels_and_handles_no_data() -> None:
    root = parse(charts.daily_bars(days(*[(1, 0)] * 90)))
    assert len(bars(root, "bar-enrolled")) == 90
    dates = [
        t.text for t in root.iter(f"{SVG}text") if (t.text or "").startswith(("Nov", "Dec", "Jan"))
    ]
    assert 0 < len(dates) <= 8
    empty = parse(charts.daily_bars([]))
    assert bars(empty, "bar") == []
    assert "No days in this range" in [t.text for t in empty.iter(f"{SVG}text")]
    zeros = parse(charts.daily_bars(days((0, 0), (0, 0))))
    assert all(float(b.get("height", "1")) == 0 for b in bars(zeros, "bar"))


def test_nice_max_rounds_the_axis_up() -> None:
    assert [charts.nice_max(v) for v in (0, 1, 3, 10, 11, 47, 120, 999)] == [
        1, 1, 5, 10, 20, 50, 200, 1000,
    ]  # fmt: skip


def test_funnel_bars_scale_with_the_counts() -> None:
    root = parse(charts.funnel([("Enrolled", 40), ("1. email", 30), ("2. slack", 10)]))
    found = bars(root, "funnel-bar")
    assert [b.get("data-value") for b in found] == ["40", "30", "10"]
    widths = [float(b.get("width", "0")) for b in found]
    assert widths[0] > widths[1] > widths[2] > 0
    assert abs(widths[1] / widths[0] - 0.75) < 0.01 and abs(widths[2] / widths[0] - 0.25) < 0.01
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert "30 (75%)" in texts and "10 (25%)" in texts
    assert bars(parse(charts.funnel([])), "funnel-bar") == []
    nothing = parse(charts.funnel([("Enrolled", 0), ("1. email", 0)]))
    assert [float(b.get("width", "1")) for b in bars(nothing, "funnel-bar")] == [0, 0]


def test_user_text_is_escaped() -> None:
    label = '1. email: “<script>alert(1)</script>” & <b onload="x">'
    svg = charts.funnel([("Enrolled", 3), (label, 2)], title="A & <B>")
    assert "<script>" not in svg and "<b " not in svg
    root = parse(svg)
    assert root.findtext(f"{SVG}title") == "A & <B>"
    assert any("<script>" in (t.text or "") for t in root.iter(f"{SVG}text"))  # shown, inert
    long = charts.funnel([("x" * 300, 1)])
    assert max(len(t.text or "") for t in parse(long).iter(f"{SVG}text")) <= 64
