"""Server-side SVG charts (airflow_mlobs.render.charts): valid XML, one titled mark per drawn value,
axis labels, values from data escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from airflow_mlobs.render import charts

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
EVIL = '<script>alert("x")</script>&'


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # raises on invalid XML
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None
    return root


def _marks(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter() if "mark" in (e.get("class") or "").split()]


def _texts(root: ET.Element) -> list[str]:
    return ["".join(e.itertext()) for e in root.iter(f"{SVG}text")]


def test_status_timeline_one_titled_cell_per_window() -> None:
    cells = [
        charts.TimelineCell(T0 + timedelta(days=i), status, label=EVIL, href=f"/r/{i}?a=1&b=2")
        for i, status in enumerate(["pass", "warn", "fail", "error", "skipped"])
    ]
    svg = charts.status_timeline(cells, title=f"drift of {EVIL}", axis=True)
    root = _parse(svg)
    marks = _marks(root)
    assert len(marks) == 5
    assert [m.get("fill") for m in marks] == [charts.STATUS_COLOURS[c.status] for c in cells]
    tips = ["".join(m.find(f"{SVG}title").itertext()) for m in marks]  # type: ignore[union-attr]
    assert tips[2] == f"2026-11-03 00:00: fail ({EVIL})"
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    links = list(root.iter(f"{SVG}a"))
    assert links[0].get("href") == "/r/0?a=1&b=2"
    assert _texts(root) == ["2026-11-01 00:00", "2026-11-05 00:00"]
    assert root.find(f"{SVG}title").text == f"drift of {EVIL}"  # type: ignore[union-attr]


def test_empty_timeline_says_so() -> None:
    root = _parse(charts.status_timeline([], title="nothing"))
    (mark,) = _marks(root)
    assert "no results" in "".join(mark.itertext())


def test_line_chart_with_band_reference_and_gaps() -> None:
    points = [(T0 + timedelta(days=i), v) for i, v in enumerate([0.9, 0.91, None, 0.85, 0.7])]
    band = charts.Band("±3 SE", [(t, v - 0.03, v + 0.03) for t, v in points if v is not None])
    svg = charts.line_chart(
        [charts.Series("auc", points)],
        title="AUC",
        y_label="AUC",
        band=band,
        reference_lines=[("baseline", 0.9)],
        statuses=[(points[4][0], "fail")],
    )
    root = _parse(svg)
    kinds = [m.get("class") for m in _marks(root)]
    assert kinds.count("mark point") == 4
    assert kinds.count("mark line") == 2  # the None breaks the line in two
    assert kinds.count("mark band") == 1 and kinds.count("mark reference") == 1
    circles = [m for m in _marks(root) if m.get("class") == "mark point"]
    assert circles[-1].get("fill") == charts.STATUS_COLOURS["fail"]
    assert "auc at 2026-11-05 00:00: 0.7" in svg
    assert {"AUC", "window end (UTC)"} <= set(_texts(root))


def test_line_chart_without_data() -> None:
    root = _parse(charts.line_chart([charts.Series("age", [])], title="age", y_label="s"))
    assert "no data" in _texts(root)


def test_heatmap_marks_threshold_breaches_and_escapes_column_names() -> None:
    rows = ["amount", EVIL]
    cols = [T0 + timedelta(days=i) for i in range(3)]
    values = {("amount", cols[0]): 0.05, ("amount", cols[1]): 0.3, (EVIL, cols[2]): 0.1}
    svg = charts.heatmap(rows, cols, values, title="PSI", thresholds={"amount": 0.2, EVIL: 0.2})
    root = _parse(svg)
    marks = _marks(root)
    assert len(marks) == 6
    outlined = [m for m in marks if m.get("stroke") == "#c62828"]
    assert len(outlined) == 1
    assert "breached" in "".join(outlined[0].itertext())
    assert sum("no value" in "".join(m.itertext()) for m in marks) == 3
    assert EVIL in _texts(root) and "<script>" not in svg


def test_paired_bars_normalise_and_label() -> None:
    labels = charts.bin_labels([1.0, 2.0])
    assert labels == ["< 1", "[1, 2)", ">= 2"]
    svg = charts.paired_bars(labels, [10, 20, 70], [1, 1, 2], title="amount", x_label="amount")
    root = _parse(svg)
    bars = _marks(root)
    assert len(bars) == 6
    tips = ["".join(b.itertext()) for b in bars]
    assert tips[:2] == ["< 1: reference 10.0%", "< 1: current 25.0%"]
    assert "amount" in _texts(root)
    with pytest.raises(ValueError):
        charts.paired_bars(["a"], [1, 2], [1], title="x", x_label="x")


def test_categorical_bars_with_hostile_category() -> None:
    svg = charts.paired_bars(["DE", EVIL], [5, 5], [9, 1], title="country", x_label="country")
    root = _parse(svg)
    assert any(EVIL in "".join(b.itertext()) for b in _marks(root))
    # Few categories: each is labelled under its bars (long ones cut, whole in the tooltip).
    assert "DE" in _texts(root) and EVIL in _texts(root)
    long = [f"category number {i}" for i in range(10)]
    cut = _texts(_parse(charts.paired_bars(long, [1] * 10, [1] * 10, title="c", x_label="c")))
    assert sum(t.startswith("categ") and t.endswith("…") for t in cut) == 10
    many = _parse(charts.paired_bars([str(i) for i in range(40)], [1] * 40, [1] * 40, title="n", x_label="n"))
    assert [t for t in _texts(many) if t.isdigit()] == ["0", "39"]  # many bins: the two ends


def test_timeline_on_a_time_axis_places_cells_at_their_moments() -> None:
    cells = [charts.TimelineCell(T0 + timedelta(days=d), "pass") for d in (0, 1, 9)]
    svg = charts.status_timeline(
        cells, title="t", width=200, start=T0, end=T0 + timedelta(days=10), axis=True
    )
    root = _parse(svg)
    marks = _marks(root)
    # Days 0 and 1 touch: one run; the gap of days 2..8 shows before day 9.
    assert float(marks[0].get("x") or 0) == 0 and float(marks[1].get("x") or 0) > 150
    assert "".join(marks[0].itertext()) == "2026-11-01 00:00 to 2026-11-02 00:00: pass (2 windows)"
    assert _texts(root) == ["2026-11-01 00:00", "2026-11-11 00:00"]


def test_a_long_run_of_one_status_is_one_mark_and_breaches_stay_visible() -> None:
    statuses = ["pass"] * 100 + ["fail"] + ["pass"] * 100
    cells = [charts.TimelineCell(T0 + timedelta(days=d), s, href=f"/r/{d}") for d, s in enumerate(statuses)]
    root = _parse(charts.status_timeline(cells, title="year", width=600))
    marks = _marks(root)
    assert [m.get("fill") for m in marks] == [charts.STATUS_COLOURS[s] for s in ("pass", "fail", "pass")]
    assert "(100 windows)" in "".join(marks[0].itertext())
    assert [a.get("href") for a in root.iter(f"{SVG}a")] == ["/r/99", "/r/100", "/r/200"]


def test_coverage_heatmap_one_titled_cell_per_judged_window_and_run() -> None:
    runs = [T0 + timedelta(days=i) for i in range(3)]
    rows = ["2026-10-30", EVIL]
    values = {("2026-10-30", runs[0]): 0.2, ("2026-10-30", runs[2]): 0.9, (EVIL, runs[1]): 0.6}
    svg = charts.coverage_heatmap(
        rows,
        runs,
        values,
        title=f"coverage of {EVIL}",
        minimum=0.5,
        hrefs={("2026-10-30", runs[2]): "/r/9?a=1&b=2"},
    )
    root = _parse(svg)
    marks = _marks(root)
    assert len(marks) == 3  # no cell where no run judged the window
    tips = ["".join(m.find(f"{SVG}title").itertext()) for m in marks]  # type: ignore[union-attr]
    assert (
        tips[0]
        == "predictions 2026-10-30: 20% labelled at the run of 2026-11-01 00:00 (minimum 50%: not mature)"
    )
    assert [m.get("stroke-dasharray") for m in marks] == ["2 1", None, None]
    light = [sum(int(str(m.get("fill"))[i : i + 2], 16) for i in (1, 3, 5)) for m in marks]
    assert light[0] > light[2] > light[1]  # darker the larger the share labelled: 20% > 60% > 90%
    assert [a.get("href") for a in root.iter(f"{SVG}a")] == ["/r/9?a=1&b=2"]
    assert "<script>" not in svg and EVIL in _texts(root)
    assert "prediction window" in _texts(root)
    assert _marks(_parse(charts.coverage_heatmap([], [], {}, title="nothing"))) == []
