"""Charts as server-side SVG: pure Python text, no JavaScript, nothing fetched.

Each function returns one ``<svg>`` element (an XML fragment, embeddable in HTML as it is): a
status timeline, a line chart with a band and reference lines, a heatmap with a threshold, a label
coverage heatmap (prediction window x run), and paired bars (reference vs current distribution). Every mark carries a ``<title>`` (a tooltip and
what a screen reader reads), every chart a ``<title>``/``<desc>`` and labelled axes; every text
that comes from data is XML-escaped. Sizes are bounded by what is drawn (cells, points, bins),
never by the rows of the data. Colours are the status colours of :data:`STATUS_COLOURS`.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

#: Fill of each status (matching the Airflow grid's family: green, amber, red, purple, grey).
STATUS_COLOURS: Mapping[str, str] = {
    "pass": "#2e7d32",
    "warn": "#f9a825",
    "fail": "#c62828",
    "error": "#6a1b9a",
    "skipped": "#9e9e9e",
}
_NO_DATA = "#e0e0e0"
_FONT = 'font-family="system-ui, sans-serif" font-size="11"'
_SERIES = ("#1565c0", "#ef6c00", "#00897b", "#8e24aa")


def esc(text: object) -> str:
    """``text`` escaped for XML/HTML element content and attribute values (``&``, ``<``, ``>``,
    both quotes)."""
    return html.escape(str(text), quote=True)


def _attr(text: object) -> str:
    return f'"{html.escape(str(text), quote=True)}"'


def fmt(value: float | None, digits: int = 3) -> str:
    """A number as a person reads it: ``g`` format with ``digits`` significant digits; ``-`` for None."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


def _open(width: int, height: int, title: str, desc: str, css_class: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class={_attr("mlobs-chart " + css_class)} '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" {_FONT}>',
        f"<title>{esc(title)}</title>",
        f"<desc>{esc(desc)}</desc>",
    ]


def _when(moment: datetime) -> str:
    # isoformat is several times faster than strftime, and strips draw thousands of cells.
    return moment.isoformat(" ", "minutes")[:16]


# --------------------------------------------------------------------------------------------------
# Status timeline
# --------------------------------------------------------------------------------------------------


class TimelineCell(NamedTuple):
    """One window of a status strip: its moment, status, a tooltip and an optional link (a named
    tuple: an overview draws thousands)."""

    moment: datetime
    status: str
    label: str = ""
    href: str | None = None


def status_timeline(
    cells: Sequence[TimelineCell],
    *,
    title: str,
    width: int = 300,
    height: int = 18,
    axis: bool = False,
    max_cells: int = 400,
    start: datetime | None = None,
    end: datetime | None = None,
) -> str:
    """A strip of coloured cells, oldest left, one per window (the newest ``max_cells`` when more).

    With ``start`` and ``end`` each cell sits at its moment on that time axis (a gap in the strip
    is a gap in the results: the moment a pipeline stopped shows); otherwise cells follow each
    other. Cells are at most 24 px wide. With ``axis`` the range (or the first and last moments)
    labels the time axis below the strip."""
    shown = sorted(cells, key=lambda c: c.moment)[-max_cells:]
    axis_height = 14 if axis else 0
    parts = _open(
        width,
        height + axis_height,
        title,
        f"{len(shown)} windows, oldest left; colour is the status",
        "mlobs-timeline",
    )
    if not shown:
        parts.append(
            f'<rect class="mark nodata" x="0" y="0" width="{width}" height="{height}" fill="{_NO_DATA}">'
            "<title>no results in this range</title></rect>"
        )
    timed = start is not None and end is not None and end > start
    step = min(width / max(len(shown), 1), 24.0)
    positions: list[float] = []
    if timed:
        assert start is not None and end is not None
        span = (end - start).total_seconds()
        positions = [min(max((c.moment - start).total_seconds() / span, 0.0), 1.0) * width for c in shown]
        gaps = sorted(b - a for a, b in itertools.pairwise(positions) if b > a)
        # A cell is as wide as the usual spacing of the windows (2 to 24 px), so daily windows touch.
        step = min(max(gaps[len(gaps) // 2], 2.0), 24.0) if gaps else step
        positions = [min(x, width - step) for x in positions]
    if shown and timed:
        parts.append(f'<rect x="0" y="0" width="{width}" height="{height}" fill="#f5f5f5"/>')
    # Touching cells of one status without labels are drawn as one run (one mark, its tooltip the
    # span and the count; its link the newest cell's): a year of passes is a few marks, not 365.
    runs: list[tuple[float, float, list[TimelineCell]]] = []  # (x, right edge, first and last cell)
    counts: list[int] = []
    for i, cell in enumerate(shown):
        x = positions[i] if timed else i * step
        if runs and not cell.label:
            run_x, right, members = runs[-1]
            previous = members[-1]
            if previous.status == cell.status and not previous.label and x <= right + 0.5:
                runs[-1] = (run_x, x + step, [*members, cell] if len(members) < 2 else [members[0], cell])
                counts[-1] += 1
                continue
        runs.append((x, x + step, [cell]))
        counts.append(1)
    styles: dict[str, tuple[str, str]] = {}
    for (x, right, members), count in zip(runs, counts, strict=True):
        first_cell, last_cell = members[0], members[-1]
        style = styles.get(last_cell.status)
        if style is None:
            style = styles[last_cell.status] = (
                esc(last_cell.status),
                STATUS_COLOURS.get(last_cell.status, _NO_DATA),
            )
        status, colour = style
        if count == 1:
            tip = f"{_when(last_cell.moment)}: {status}" + (
                f" ({esc(last_cell.label)})" if last_cell.label else ""
            )
        else:
            tip = f"{_when(first_cell.moment)} to {_when(last_cell.moment)}: {status} ({count} windows)"
        rect = (
            f'<rect class="mark status-{status}" x="{x:.2f}" y="0" '
            f'width="{max(right - x - 1, 1):.2f}" height="{height}" fill="{colour}"><title>{tip}</title></rect>'
        )
        if last_cell.href:
            rect = f"<a href={_attr(last_cell.href)}>{rect}</a>"
        parts.append(rect)
    if axis and shown:
        y = height + 11
        axis_from = start if timed and start is not None else shown[0].moment
        axis_to = end if timed and end is not None else shown[-1].moment
        parts.append(f'<text x="0" y="{y}">{esc(_when(axis_from))}</text>')
        parts.append(f'<text x="{width}" y="{y}" text-anchor="end">{esc(_when(axis_to))}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------------
# Line chart with a band
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    """A line over time; ``None`` values break it. ``dashed`` for limits and baselines."""

    name: str
    points: Sequence[tuple[datetime, float | None]]
    dashed: bool = False
    colour: str | None = None


@dataclass(frozen=True)
class Band:
    """A shaded range over time (e.g. the metric +/- 3 SE): ``(moment, low, high)`` points."""

    name: str
    points: Sequence[tuple[datetime, float, float]]


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    y_label: str,
    x_label: str = "window end (UTC)",
    band: Band | None = None,
    reference_lines: Sequence[tuple[str, float]] = (),
    width: int = 640,
    height: int = 220,
    statuses: Sequence[tuple[datetime, str]] = (),
) -> str:
    """Lines over time with an optional shaded band and horizontal reference lines (a baseline, a
    limit); ``statuses`` colour the point markers of the first series by the result's status."""
    left, right, top, bottom = 56, 12, 12, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [t for s in series for t, v in s.points if v is not None]
    ys = [v for s in series for _, v in s.points if v is not None]
    if band is not None:
        xs += [t for t, _, _ in band.points]
        ys += [v for _, lo, hi in band.points for v in (lo, hi) if math.isfinite(v)]
    ys += [v for _, v in reference_lines if math.isfinite(v)]
    parts = _open(width, height, title, f"{y_label} over {x_label}", "mlobs-line")
    if not xs or not ys:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(parts)
    x0, x1 = min(xs).timestamp(), max(xs).timestamp()
    y0, y1 = min(ys), max(ys)
    if y0 == y1:
        y0, y1 = y0 - (abs(y0) or 1) * 0.1, y1 + (abs(y1) or 1) * 0.1
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def px(t: datetime) -> float:
        return left + (0.5 if x1 == x0 else (t.timestamp() - x0) / (x1 - x0)) * plot_w

    def py(v: float) -> float:
        return top + (1 - (v - y0) / (y1 - y0)) * plot_h

    # Axes, ticks and labels.
    parts.append(
        f'<g class="axes" stroke="#555"><line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
        f'y2="{top + plot_h}"/><line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"/></g>'
    )
    for i in range(5):
        v = y0 + (y1 - y0) * i / 4
        parts.append(
            f'<text class="tick" x="{left - 4}" y="{py(v) + 4:.1f}" text-anchor="end">{esc(fmt(v))}</text>'
            f'<line x1="{left}" x2="{left + plot_w}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#eee"/>'
        )
    first, last = min(xs), max(xs)
    parts.append(f'<text class="tick" x="{left}" y="{top + plot_h + 14}">{esc(_when(first))}</text>')
    parts.append(
        f'<text class="tick" x="{left + plot_w}" y="{top + plot_h + 14}" text-anchor="end">{esc(_when(last))}</text>'
    )
    parts.append(
        f'<text class="axis-label" x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">{esc(x_label)}</text>'
    )
    parts.append(
        f'<text class="axis-label" transform="translate(12 {top + plot_h / 2}) rotate(-90)" '
        f'text-anchor="middle">{esc(y_label)}</text>'
    )
    if band is not None and band.points:
        pts = sorted(band.points, key=lambda p: p[0])
        upper = " ".join(f"{px(t):.1f},{py(hi):.1f}" for t, _, hi in pts)
        lower = " ".join(f"{px(t):.1f},{py(lo):.1f}" for t, lo, _ in reversed(pts))
        parts.append(
            f'<polygon class="mark band" points="{upper} {lower}" fill="#1565c0" fill-opacity="0.15">'
            f"<title>{esc(band.name)}</title></polygon>"
        )
    for name, value in reference_lines:
        if math.isfinite(value):
            parts.append(
                f'<line class="mark reference" x1="{left}" x2="{left + plot_w}" y1="{py(value):.1f}" '
                f'y2="{py(value):.1f}" stroke="#c62828" stroke-dasharray="6 3">'
                f"<title>{esc(f'{name}: {fmt(value)}')}</title></line>"
            )
    status_at = dict(statuses)
    for n, s in enumerate(series):
        colour = s.colour or _SERIES[n % len(_SERIES)]
        dash = ' stroke-dasharray="4 3"' if s.dashed else ""
        runs: list[list[tuple[datetime, float]]] = [[]]
        for t, maybe in sorted(s.points, key=lambda p: p[0]):
            if maybe is None or not math.isfinite(maybe):
                runs.append([])
            else:
                runs[-1].append((t, maybe))
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{px(t):.1f},{py(v):.1f}" for t, v in run)
                parts.append(
                    f'<polyline class="mark line" points="{points}" fill="none" stroke="{colour}" '
                    f'stroke-width="1.5"{dash}><title>{esc(s.name)}</title></polyline>'
                )
        if not s.dashed:
            for t, value_at in s.points:
                if value_at is None or not math.isfinite(value_at):
                    continue
                v = value_at
                fill = STATUS_COLOURS.get(status_at.get(t, ""), colour) if n == 0 else colour
                parts.append(
                    f'<circle class="mark point" cx="{px(t):.1f}" cy="{py(v):.1f}" r="3" fill="{fill}">'
                    f"<title>{esc(f'{s.name} at {_when(t)}: {fmt(v, 4)}')}</title></circle>"
                )
    # Legend.
    legend = [(s.name, s.colour or _SERIES[n % len(_SERIES)]) for n, s in enumerate(series)]
    legend += [(name, "#c62828") for name, _ in reference_lines]
    if band is not None:
        legend.append((band.name, "#90caf9"))
    x = left + 8
    for name, colour in legend:
        parts.append(
            f'<g class="legend"><rect x="{x}" y="{top + 2}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{top + 11}">{esc(name)}</text></g>'
        )
        x += 24 + 6 * len(name)
    parts.append("</svg>")
    return "".join(parts)


# --------------------------------------------------------------------------------------------------
# Heatmap
# --------------------------------------------------------------------------------------------------


def heatmap(
    rows: Sequence[str],
    columns: Sequence[datetime],
    values: Mapping[tuple[str, datetime], float | None],
    *,
    title: str,
    thresholds: Mapping[str, float | None] | None = None,
    value_label: str = "effect size",
    hrefs: Mapping[datetime, str] | None = None,
    cell: int = 14,
    max_columns: int = 120,
) -> str:
    """Rows (columns of the data) x columns (windows, oldest left) of values, darker when larger
    relative to the row's threshold; a cell at or past its threshold is outlined in red (the
    threshold is in each cell's tooltip). The newest ``max_columns`` windows are drawn."""
    shown = list(columns)[-max_columns:]
    label_w = min(220, 8 + 7 * max((len(r) for r in rows), default=4))
    width = max(label_w + cell * max(len(shown), 1) + 10, label_w + 300)
    height = 16 + cell * max(len(rows), 1) + 34
    parts = _open(
        width,
        height,
        title,
        f"{value_label} of {len(rows)} columns over {len(shown)} windows; red outline: at or past the threshold",
        "mlobs-heatmap",
    )
    thresholds = thresholds or {}
    for r, row in enumerate(rows):
        y = 16 + r * cell
        parts.append(
            f'<text class="row-label" x="{label_w - 4}" y="{y + cell - 3}" text-anchor="end">{esc(row)}</text>'
        )
        limit = thresholds.get(row)
        for c, moment in enumerate(shown):
            x = label_w + c * cell
            value = values.get((row, moment))
            if value is None or not math.isfinite(value):
                fill, tip, outline = _NO_DATA, f"{row} at {_when(moment)}: no value", ""
            else:
                scale = value / limit if limit else min(abs(value), 1.0)
                shade = max(0.0, min(1.0, abs(scale)))
                fill = _shade(shade)
                breach = limit is not None and abs(value) >= limit
                outline = ' stroke="#c62828" stroke-width="2"' if breach else ""
                tip = f"{row} at {_when(moment)}: {value_label} {fmt(value, 4)}" + (
                    f" (threshold {fmt(limit)}{', breached' if breach else ''})" if limit is not None else ""
                )
            rect = (
                f'<rect class="mark cell" x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{fill}"{outline}><title>{esc(tip)}</title></rect>'
            )
            if hrefs and moment in hrefs:
                rect = f"<a href={_attr(hrefs[moment])}>{rect}</a>"
            parts.append(rect)
    bottom = 16 + cell * max(len(rows), 1)
    if shown:
        parts.append(f'<text class="tick" x="{label_w}" y="{bottom + 12}">{esc(_when(shown[0]))}</text>')
        parts.append(
            f'<text class="tick" x="{label_w + cell * len(shown)}" y="{bottom + 12}" text-anchor="end">'
            f"{esc(_when(shown[-1]))}</text>"
        )
    parts.append(
        f'<text class="axis-label" x="{label_w}" y="{bottom + 28}">window end (UTC); shade: {esc(value_label)} '
        "relative to the column's threshold</text>"
    )
    parts.append(f'<text class="axis-label" x="{label_w}" y="11">column</text>')
    parts.append("</svg>")
    return "".join(parts)


def coverage_heatmap(
    rows: Sequence[str],
    columns: Sequence[datetime],
    values: Mapping[tuple[str, datetime], float | None],
    *,
    title: str,
    minimum: float | None = None,
    hrefs: Mapping[tuple[str, datetime], str] | None = None,
    cell: int = 12,
    max_rows: int = 120,
    max_columns: int = 120,
) -> str:
    """Label coverage of prediction windows (``rows``, oldest on top) as judged by the check's runs
    (``columns``: the label cut-off of each run, oldest left): a cell per (window, run) that judged
    it, darker the larger the share labelled (0 white, 1 deep teal); a cell below ``minimum`` (the
    check's ``min_label_coverage``) is outlined with a dashed grey line (labels not mature). Reading
    a row left to right shows one window maturing. The newest ``max_rows`` windows and
    ``max_columns`` runs are drawn."""
    shown_rows = list(rows)[-max_rows:]
    shown = list(columns)[-max_columns:]
    label_w = min(220, 8 + 7 * max((len(r) for r in shown_rows), default=4))
    width = max(label_w + cell * max(len(shown), 1) + 10, label_w + 320)
    height = 16 + cell * max(len(shown_rows), 1) + 34
    parts = _open(
        width,
        height,
        title,
        f"label coverage of {len(shown_rows)} prediction windows over {len(shown)} runs"
        + (f"; dashed outline: below the minimum {fmt(minimum)}" if minimum is not None else ""),
        "mlobs-coverage",
    )
    for r, row in enumerate(shown_rows):
        y = 16 + r * cell
        parts.append(
            f'<text class="row-label" x="{label_w - 4}" y="{y + cell - 2}" text-anchor="end">{esc(row)}</text>'
        )
        for c, moment in enumerate(shown):
            value = values.get((row, moment))
            if value is None or not math.isfinite(value):
                continue  # this run did not judge this window
            x = label_w + c * cell
            low = minimum is not None and value < minimum
            outline = ' stroke="#616161" stroke-width="1.5" stroke-dasharray="2 1"' if low else ""
            tip = f"predictions {row}: {value:.0%} labelled at the run of {_when(moment)}" + (
                f" (minimum {minimum:.0%}{': not mature' if low else ''})" if minimum is not None else ""
            )
            rect = (
                f'<rect class="mark cell" x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="{_teal(max(0.0, min(1.0, value)))}"{outline}><title>{esc(tip)}</title></rect>'
            )
            if hrefs and (row, moment) in hrefs:
                rect = f"<a href={_attr(hrefs[(row, moment)])}>{rect}</a>"
            parts.append(rect)
    bottom = 16 + cell * max(len(shown_rows), 1)
    if shown:
        parts.append(f'<text class="tick" x="{label_w}" y="{bottom + 12}">{esc(_when(shown[0]))}</text>')
        parts.append(
            f'<text class="tick" x="{label_w + cell * len(shown)}" y="{bottom + 12}" text-anchor="end">'
            f"{esc(_when(shown[-1]))}</text>"
        )
    parts.append(
        f'<text class="axis-label" x="{label_w}" y="{bottom + 28}">run (label cut-off, UTC); shade: share of '
        "predictions labelled</text>"
    )
    parts.append(f'<text class="axis-label" x="{label_w}" y="11">prediction window</text>')
    parts.append("</svg>")
    return "".join(parts)


def _teal(fraction: float) -> str:
    """White (0) to deep teal (1)."""
    start, end = (247, 252, 251), (0, 105, 92)
    r, g, b = (round(a + (b_ - a) * fraction) for a, b_ in zip(start, end, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _shade(fraction: float) -> str:
    """White (0) to deep orange-red (1)."""
    start, end = (255, 247, 236), (179, 0, 0)
    r, g, b = (round(a + (b_ - a) * fraction) for a, b_ in zip(start, end, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


# --------------------------------------------------------------------------------------------------
# Paired bars
# --------------------------------------------------------------------------------------------------


def paired_bars(
    labels: Sequence[str],
    reference: Sequence[float],
    current: Sequence[float],
    *,
    title: str,
    x_label: str,
    y_label: str = "share of rows",
    width: int = 460,
    height: int = 200,
    names: tuple[str, str] = ("reference", "current"),
) -> str:
    """Two distributions over the same bins or categories, side by side per bin: each bar's height
    is the bin's share of its distribution (counts are normalised here)."""
    if not (len(labels) == len(reference) == len(current)):
        raise ValueError("paired_bars: labels, reference and current must have the same length")
    left, right, top, bottom = 48, 8, 22, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    ref_total, cur_total = sum(reference) or 1.0, sum(current) or 1.0
    ref = [v / ref_total for v in reference]
    cur = [v / cur_total for v in current]
    top_value = max([*ref, *cur, 0.0]) or 1.0
    parts = _open(
        width,
        height,
        title,
        f"{names[0]} vs {names[1]} {y_label} per {x_label} ({len(labels)} bins)",
        "mlobs-bars",
    )
    parts.append(
        f'<g class="axes" stroke="#555"><line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
        f'y2="{top + plot_h}"/><line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"/></g>'
    )
    for i in range(3):
        v = top_value * i / 2
        y = top + plot_h - plot_h * i / 2
        parts.append(f'<text class="tick" x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{v:.0%}</text>')
    group = plot_w / max(len(labels), 1)
    bar = max(group / 2 - 1, 0.5)
    for i, label in enumerate(labels):
        for k, (share, name, colour) in enumerate(
            ((ref[i], names[0], "#90a4ae"), (cur[i], names[1], "#1565c0"))
        ):
            h = plot_h * share / top_value
            x = left + i * group + k * bar
            parts.append(
                f'<rect class="mark bar {esc(name)}" x="{x:.2f}" y="{top + plot_h - h:.2f}" width="{bar:.2f}" '
                f'height="{h:.2f}" fill="{colour}"><title>{esc(f"{label}: {name} {share:.1%}")}</title></rect>'
            )
    # Every label when each group has room for a few characters (categories); else the two ends.
    room = int(group // 6)
    if labels and room >= 4:
        for i, label in enumerate(labels):
            text = label if len(label) <= room else label[: room - 1] + "…"
            parts.append(
                f'<text class="tick" x="{left + (i + 0.5) * group:.1f}" y="{top + plot_h + 12}" '
                f'text-anchor="middle">{esc(text)}</text>'
            )
    elif labels:
        parts.append(f'<text class="tick" x="{left}" y="{top + plot_h + 12}">{esc(labels[0])}</text>')
        if len(labels) > 1:
            parts.append(
                f'<text class="tick" x="{left + plot_w}" y="{top + plot_h + 12}" text-anchor="end">'
                f"{esc(labels[-1])}</text>"
            )
    parts.append(
        f'<text class="axis-label" x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{esc(x_label)}</text>'
    )
    parts.append(
        f'<text class="axis-label" transform="translate(11 {top + plot_h / 2}) rotate(-90)" '
        f'text-anchor="middle">{esc(y_label)}</text>'
    )
    for k, (name, colour) in enumerate(((names[0], "#90a4ae"), (names[1], "#1565c0"))):
        x = left + 8 + k * 90
        parts.append(
            f'<g class="legend"><rect x="{x}" y="4" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="13">{esc(name)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def bin_labels(edges: Sequence[float]) -> list[str]:
    """Labels of the histogram bins cut at ``edges`` (interior cut points): ``< e0``, ``[e0, e1)``,
    ..., ``>= en`` (len(edges) + 1 bins)."""
    if not edges:
        return ["all"]
    labels = [f"< {fmt(edges[0])}"]
    labels += [f"[{fmt(a)}, {fmt(b)})" for a, b in itertools.pairwise(edges)]
    labels.append(f">= {fmt(edges[-1])}")
    return labels
