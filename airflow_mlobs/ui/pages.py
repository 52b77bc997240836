"""The dashboard's pages, assembled from the history queries (:mod:`airflow_mlobs.history`) and
the charts (:mod:`airflow_mlobs.render`): HTML text, every value escaped. No Airflow import: the
app (:mod:`.app`) passes in the links' base paths and the history, so these functions are plain.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from airflow_mlobs.core.readings import number
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.history import History, OpenAlert
from airflow_mlobs.render import charts
from airflow_mlobs.render.charts import esc
from airflow_mlobs.render.report import (
    DeliveryInfo,
    Distribution,
    RunInfo,
    badge,
    deliveries_table,
    distribution_chart,
    distributions,
    html_page,
    result_section,
    when,
)
from airflow_mlobs.store import StoredResult

log = logging.getLogger(__name__)

#: The trend ranges the overview offers, in days.
RANGES = (30, 90)
#: The longest range a dataset page reads, in days.
MAX_DAYS = 366
STATUS_CHOICES = tuple(s.value for s in Status)


@dataclass(frozen=True)
class Links:
    """Where pages point: ``base`` is the plugin's mount path (``/mlobs``), ``airflow`` the Airflow
    UI's root path (``""`` when Airflow is served at the root)."""

    base: str
    airflow: str = ""

    def overview(self, **query: Any) -> str:
        """The overview, with filters as query parameters (``None`` values left out)."""
        params = {k: v for k, v in query.items() if v not in (None, "")}
        return f"{self.base}/" + (f"?{urlencode(params)}" if params else "")

    def dataset(self, dataset: str, **query: Any) -> str:
        """A dataset page."""
        params = {k: v for k, v in query.items() if v not in (None, "")}
        return f"{self.base}/datasets/{quote(dataset, safe='')}" + (f"?{urlencode(params)}" if params else "")

    def result(self, result_id: int) -> str:
        """A stored result by id."""
        return f"{self.base}/results/{result_id}"

    def task_log(
        self, dag_id: str | None, run_id: str | None, task_id: str | None, map_index: int
    ) -> str | None:
        """The task instance page of the Airflow UI (its log tab), when the result names a run."""
        if not (dag_id and run_id and task_id):
            return None
        url = f"{self.airflow}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}/tasks/{quote(task_id, safe='')}"
        return url + (f"/mapped/{map_index}" if map_index >= 0 else "")


def _nav(links: Links, title: str) -> str:
    return (
        f'<nav><a href="{esc(links.overview())}">ML observability: overview</a>'
        f'<a href="{esc(links.airflow or "/")}" target="_top">Airflow</a></nav><h1>{esc(title)}</h1>'
    )


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "-"
    seconds = max(0.0, (now - moment).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


# --------------------------------------------------------------------------------------------------
# Overview
# --------------------------------------------------------------------------------------------------


def overview_page(
    history: History,
    links: Links,
    *,
    days: int = 30,
    dag_id: str | None = None,
    dataset: str | None = None,
    status: str | None = None,
    run_id: str | None = None,
    task_id: str | None = None,
    now: datetime | None = None,
    readable: Collection[str] | None = None,
) -> str:
    """Every dataset x check with its latest status, its trend over ``days``, the time since its
    last breach, the open alerts of every notifier channel on it, filtered by DAG, dataset, status (and run / task, for the DAG-run and task views);
    only the results of the ``readable`` DAG ids (and results without a DAG) when given."""
    end = now.isoformat() if now is not None else None
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    latest = history.latest(
        since=since,
        until=now,
        dag_id=dag_id,
        dataset=dataset,
        status=status,
        run_id=run_id,
        task_id=task_id,
        readable=readable,
    )
    strips = history.status_strips(since=since, until=now, dag_id=dag_id, dataset=dataset, readable=readable)
    breaches = history.last_breaches(
        since=since, until=now, dag_id=dag_id, dataset=dataset, readable=readable
    )
    dags = history.dag_ids(since=since, readable=readable)
    alerts = history.open_alerts(row.dataset for row in latest)
    counts: dict[str, int] = {}
    for row in latest:
        counts[row.status.value] = counts.get(row.status.value, 0) + 1

    def option(value: str, current: str | None, label: str | None = None) -> str:
        selected = " selected" if value == (current or "") else ""
        return f'<option value="{esc(value)}"{selected}>{esc(label or value or "all")}</option>'

    form = (
        f'<form class="filters" method="get" action="{esc(links.overview())}">'
        '<label>DAG<select name="dag_id">'
        + option("", dag_id)
        + "".join(option(d, dag_id) for d in dags)
        + "</select></label>"
        f'<label>dataset<input name="dataset" value="{esc(dataset or "")}" placeholder="exact name"></label>'
        '<label>status<select name="status">'
        + option("", status)
        + "".join(option(s, status) for s in STATUS_CHOICES)
        + "</select></label>"
        '<label>trend<select name="days">'
        + "".join(option(str(d), str(days), f"{d} days") for d in RANGES)
        + "</select></label>"
        + (f'<input type="hidden" name="run_id" value="{esc(run_id)}">' if run_id else "")
        + (f'<input type="hidden" name="task_id" value="{esc(task_id)}">' if task_id else "")
        + (f'<input type="hidden" name="end" value="{esc(end)}">' if end else "")
        + '<button type="submit">Filter</button></form>'
    )
    summary = " ".join(f"{badge(s)} {counts[s]}" for s in STATUS_CHOICES if s in counts) or "no results"
    scope = " · ".join(
        f"{label} <strong>{esc(value)}</strong>"
        for label, value in (("DAG", dag_id), ("run", run_id), ("task", task_id), ("dataset", dataset))
        if value
    )
    rows = []
    for row in latest:
        cells = [
            charts.TimelineCell(p.moment, p.status.value, href=links.result(p.result_id))
            for p in strips.get(row.monitor, [])
        ]
        strip = charts.status_timeline(
            cells, title=f"{row.check} of {row.dataset}, last {days} days", width=240, start=since, end=now
        )
        breach = breaches.get(row.monitor)
        rows.append(
            f'<tr data-dataset="{esc(row.dataset)}" data-check="{esc(row.check)}" data-status="{esc(row.status.value)}">'
            f'<td><a href="{esc(links.dataset(row.dataset, days=days, end=end))}">{esc(row.dataset)}</a></td>'
            f"<td>{esc(row.check)}</td>"
            f'<td><a href="{esc(links.result(row.id))}">{badge(row.status.value)}</a></td>'
            f"<td>{strip}</td>"
            f"<td>{esc(_ago(breach, now)) if breach else f'none in {days} days'}</td>"
            f"<td>{_open_alerts_cell(alerts.get((row.dataset, row.check), []), now)}</td>"
            f'<td class="when">{esc(when(row.moment))}</td>'
            f"<td>{esc(row.run.dag_id or '-')} / {esc(row.run.task_id or '-')}</td>"
            f'<td class="summary">{esc(row.summary)}</td></tr>'
        )
    table = (
        '<table class="overview"><thead><tr><th>dataset</th><th>check</th><th>latest</th>'
        f"<th>trend ({days} days)</th><th>last breach</th><th>open alert</th><th>window end</th><th>DAG / task</th>"
        f"<th>summary</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        if rows
        else f'<p class="muted">No results in the last {days} days for these filters.</p>'
    )
    body = (
        _nav(links, "ML observability")
        + (f"<p>{scope}</p>" if scope else "")
        + form
        + f'<p class="counts">Latest status: {summary}</p>'
        + table
    )
    return html_page("ML observability", body)


def _open_alerts_cell(alerts: Sequence[OpenAlert], now: datetime) -> str:
    """One line per channel with an open alert on the row's dataset x check: since when, where,
    its status and for how many consecutive windows; ``-`` when none is open."""
    if not alerts:
        return '<span class="muted">-</span>'
    lines = []
    for alert in alerts:
        since = f"since {when(alert.since)} ({_ago(alert.since, now)})" if alert.since else "open"
        detail = f"{alert.status.value}, {alert.consecutive} window{'s' if alert.consecutive != 1 else ''}"
        if alert.escalated:
            detail += ", escalated"
        lines.append(
            f'<span class="open-alert" data-channel="{esc(alert.channel)}">{esc(since)} · '
            f"<strong>{esc(alert.channel)}</strong> ({esc(detail)})</span>"
        )
    return "<br>".join(lines)


# --------------------------------------------------------------------------------------------------
# Dataset
# --------------------------------------------------------------------------------------------------


def _by_check(results: Sequence[StoredResult]) -> dict[str, list[StoredResult]]:
    grouped: dict[str, list[StoredResult]] = {}
    for stored in results:
        grouped.setdefault(stored.result.check, []).append(stored)
    return grouped


def _moment(stored: StoredResult) -> datetime:
    return stored.result.window_end or stored.recorded_at


def _freshness_chart(results: Sequence[StoredResult]) -> str:
    age = [(_moment(s), _hours(s.result.metrics.get("age_seconds"))) for s in results]
    limit = [(_moment(s), _hours(s.result.metrics.get("max_age_seconds"))) for s in results]
    warn = [(_moment(s), _hours(s.result.metrics.get("warn_after_seconds"))) for s in results]
    series = [
        charts.Series("data age", age),
        charts.Series("limit (max age)", limit, dashed=True, colour="#c62828"),
    ]
    if any(v is not None for _, v in warn):
        series.append(charts.Series("warn after", warn, dashed=True, colour="#f9a825"))
    return charts.line_chart(
        series,
        title="Freshness: age of the newest data against its limit",
        y_label="age (hours)",
        statuses=[(_moment(s), s.result.status.value) for s in results],
    )


def _hours(value: Any) -> float | None:
    seconds = number(value)
    return None if seconds is None else seconds / 3600


def _drift_heatmap(
    results: Sequence[StoredResult], links: Links, dataset: str, days: int, end: str | None
) -> str:
    values: dict[tuple[str, datetime], float | None] = {}
    thresholds: dict[str, float | None] = {}
    columns: list[datetime] = []
    hrefs: dict[datetime, str] = {}
    method = "effect size"
    for stored in results:
        moment = _moment(stored)
        columns.append(moment)
        hrefs[moment] = links.dataset(dataset, window=moment.isoformat(), days=days, end=end)
        for finding in stored.result.findings:
            value = number(finding.value)
            if value is None and number(finding.threshold) is None:
                continue
            values[(finding.subject, moment)] = value
            limit = number(finding.threshold)
            if limit is not None:
                thresholds[finding.subject] = limit
            method = finding.metric or method
    rows = sorted({subject for subject, _ in values})
    if not rows:
        return '<p class="muted">No per-column drift values stored.</p>'
    return charts.heatmap(
        rows,
        columns,
        values,
        title="Drift per column over time",
        thresholds=thresholds,
        value_label=method,
        hrefs=hrefs,
    )


def _performance_chart(results: Sequence[StoredResult], links: Links) -> str:
    metric = str(results[-1].result.metrics.get("metric", "metric"))
    values = [(_moment(s), number(s.result.metrics.get("value"))) for s in results]
    baseline = [(_moment(s), number(s.result.metrics.get("baseline_value"))) for s in results]
    band_points = []
    for s in results:
        value, se = number(s.result.metrics.get("value")), number(s.result.metrics.get("se"))
        if value is not None and se is not None:
            band_points.append((_moment(s), value - 3 * se, value + 3 * se))
    series = [charts.Series(metric, values)]
    if any(v is not None for _, v in baseline):
        series.append(charts.Series("baseline", baseline, dashed=True, colour="#424242"))
    chart = charts.line_chart(
        series,
        title=f"Performance: {metric} per window with ±3 SE and the baseline",
        y_label=metric,
        band=charts.Band("±3 SE", band_points) if band_points else None,
        statuses=[(_moment(s), s.result.status.value) for s in results],
    )
    maturity = _coverage_maturity(results, links)
    if maturity:
        return chart + maturity
    coverage = [(_moment(s), number(s.result.metrics.get("label_coverage"))) for s in results]
    if any(v is not None for _, v in coverage):
        chart += charts.line_chart(
            [charts.Series("label coverage", coverage, colour="#00897b")],
            title="Label coverage of each window",
            y_label="share labelled",
            height=160,
        )
    return chart


def _iso_moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _window_label(start: datetime, end: datetime) -> str:
    """A prediction window as a row label: its day when it is one whole UTC day, else its ends."""
    midnight = start.time() == end.time() == datetime.min.time()
    if midnight and end - start == timedelta(days=1):
        return start.strftime("%Y-%m-%d")
    return f"{start.isoformat(' ', 'minutes')[:16]} to {end.isoformat(' ', 'minutes')[:16]}"


def coverage_maturity(
    results: Sequence[StoredResult],
) -> tuple[
    list[str],
    list[datetime],
    dict[tuple[str, datetime], float],
    dict[tuple[str, datetime], int],
    float | None,
]:
    """The label coverage of each prediction window as the performance check's runs judged it:
    from each result's ``metrics.prediction_window`` (the row), ``metrics.label_cutoff`` (the run's
    moment, the column; else the result's moment) and ``metrics.label_coverage`` (the value; results
    without a coverage are left out). Returns the rows (oldest window first), the columns (oldest
    first), the values, the result id of each cell, and the check's ``min_label_coverage`` when a
    stored "labels not mature" finding names it (the newest)."""
    windows: dict[tuple[datetime, datetime], str] = {}
    values: dict[tuple[str, datetime], float] = {}
    ids: dict[tuple[str, datetime], int] = {}
    columns: set[datetime] = set()
    minimum: float | None = None
    for stored in results:
        metrics = stored.result.metrics
        window = metrics.get("prediction_window")
        coverage = number(metrics.get("label_coverage"))
        if not (isinstance(window, list | tuple) and len(window) == 2) or coverage is None:
            continue
        start, end = _iso_moment(window[0]), _iso_moment(window[1])
        if start is None or end is None:
            continue
        label = windows.setdefault((start, end), _window_label(start, end))
        at = _iso_moment(metrics.get("label_cutoff")) or _moment(stored)
        columns.add(at)
        values[(label, at)] = coverage
        ids[(label, at)] = stored.id
        for finding in stored.result.findings:
            if finding.metric == "label_coverage" and number(finding.threshold) is not None:
                minimum = number(finding.threshold)
    rows = [windows[key] for key in sorted(windows)]
    return rows, sorted(columns), values, ids, minimum


def _coverage_maturity(results: Sequence[StoredResult], links: Links) -> str:
    rows, columns, values, ids, minimum = coverage_maturity(results)
    if not values:
        return ""
    return charts.coverage_heatmap(
        rows,
        columns,
        values,
        title="Label coverage of each prediction window as it matured",
        minimum=minimum,
        hrefs={key: links.result(result_id) for key, result_id in ids.items()},
    )


def window_distributions(
    history: History,
    drift: CheckResult,
    baseline_dir: Any,
) -> tuple[list[Distribution], str | None]:
    """The reference vs current distributions of each column of a drift result's window
    (:meth:`History.drift_window`); or a note saying why there are none."""
    found = history.drift_window(drift, baseline_dir)
    if isinstance(found, str):
        return [], found
    baseline, profile = found
    return distributions(baseline, profile), None


def dataset_page(
    history: History,
    links: Links,
    dataset: str,
    *,
    days: int = 30,
    window: datetime | None = None,
    baseline_dir: Any = None,
    now: datetime | None = None,
    readable: Collection[str] | None = None,
) -> str | None:
    """Everything about one dataset over ``days`` (``None`` when it has no result then): each check's
    timeline, freshness age vs its limit, the drift heatmap, the distributions of a chosen drift
    ``window`` (default the newest), performance with its band and the label coverage of each
    prediction window as it matured (:func:`coverage_maturity`), and the deliveries; only the results
    of the ``readable`` DAG ids (and results without a DAG) when given."""
    end = now.isoformat() if now is not None else None
    now = now or datetime.now(UTC)
    since = now - timedelta(days=min(max(days, 1), MAX_DAYS))
    results = history.results(dataset, since=since, until=now, readable=readable)
    if not results:
        return None
    grouped = _by_check(results)
    parts = [_nav(links, f"Dataset {dataset}")]
    parts.append(
        "<p>Range: "
        + " ".join(
            f'<a href="{esc(links.dataset(dataset, days=d, end=end))}">{"<strong>" if d == days else ""}{d} days'
            f"{'</strong>' if d == days else ''}</a>"
            for d in RANGES
        )
        + "</p>"
    )
    parts.append('<h2>Timeline of every check</h2><table class="timelines"><tbody>')
    for check, rows in sorted(grouped.items()):
        cells = [
            charts.TimelineCell(_moment(s), s.result.status.value, s.result.summary[:120], links.result(s.id))
            for s in rows
        ]
        parts.append(
            f'<tr data-check="{esc(check)}"><th>{esc(check)}</th><td>'
            + charts.status_timeline(
                cells, title=f"{check} of {dataset}", width=600, height=20, axis=True, start=since, end=now
            )
            + f"</td><td>{badge(rows[-1].result.status.value)}</td></tr>"
        )
    gates = history.gate_decisions(dataset, since=since, until=now, readable=readable)
    if gates:
        cells = [
            charts.TimelineCell(
                _moment(s),
                s.result.status.value,
                str(s.result.metrics.get("decision", "")),
                links.result(s.id),
            )
            for s in gates
        ]
        parts.append(
            '<tr data-check="retrain_gate"><th>retraining gate<br><span class="muted">decisions on this '
            "dataset</span></th><td>"
            + charts.status_timeline(
                cells,
                title=f"retraining gate decisions on {dataset}",
                width=600,
                height=20,
                axis=True,
                start=since,
                end=now,
            )
            + f"</td><td>{esc(gates[-1].result.metrics.get('decision', ''))}</td></tr>"
        )
    parts.append("</tbody></table>")
    if "freshness" in grouped:
        parts.append("<h2>Freshness</h2>" + _freshness_chart(grouped["freshness"]))
    if "drift" in grouped:
        drift_rows = grouped["drift"]
        parts.append("<h2>Drift per column</h2>" + _drift_heatmap(drift_rows, links, dataset, days, end))
        chosen = drift_rows[-1]
        if window is not None:
            at = [s for s in drift_rows if _moment(s) == window]
            chosen = at[-1] if at else chosen
        choices = "".join(
            f'<option value="{esc(_moment(s).isoformat())}"{" selected" if s is chosen else ""}>'
            f"{esc(when(_moment(s)))} ({esc(s.result.status.value)})</option>"
            for s in reversed(drift_rows)
        )
        parts.append(
            f"<h2>Distributions of the window ending {esc(when(_moment(chosen)))}</h2>"
            f'<form class="filters" method="get" action="{esc(links.dataset(dataset))}">'
            f'<input type="hidden" name="days" value="{days}">'
            + (f'<input type="hidden" name="end" value="{esc(end)}">' if end else "")
            + f'<label>window<select name="window">{choices}'
            '</select></label><button type="submit">Show</button></form>'
        )
        found, note = window_distributions(history, chosen.result, baseline_dir)
        if found:
            parts.append('<div class="grid distributions">')
            parts.extend(f'<div class="card">{distribution_chart(d)}</div>' for d in found)
            parts.append("</div>")
        else:
            parts.append(f'<p class="muted">No distributions: {esc(note or "")}.</p>')
    if "performance" in grouped:
        parts.append("<h2>Performance</h2>" + _performance_chart(grouped["performance"], links))
    keys = history.result_keys(dataset, since=since, until=now, readable=readable)
    records = history.deliveries(keys)
    parts.append("<h2>Notifications</h2>")
    parts.append(deliveries_table([_delivery(d) for d in records]))
    return html_page(f"{dataset}: ML observability", "".join(parts))


def _delivery(record: Any) -> DeliveryInfo:
    return DeliveryInfo(
        record.channel, record.kind, record.delivered, record.attempts, record.error, record.recorded_at
    )


# --------------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------------


def result_page(history: History, links: Links, stored: StoredResult, *, baseline_dir: Any = None) -> str:
    """One stored result in full (the same content as the report file), with links to its dataset
    and to the task log in the Airflow UI."""
    run = stored.run
    found: list[Distribution] = []
    if stored.result.check == "drift":
        found, _ = window_distributions(history, stored.result, baseline_dir)
    key = history.result_key(stored.id)
    records = history.deliveries([key] if key else [])
    section = result_section(
        stored.result,
        run=RunInfo(
            dag_id=run.dag_id,
            run_id=run.run_id,
            task_id=run.task_id,
            map_index=run.map_index,
            task_log_url=links.task_log(run.dag_id, run.run_id, run.task_id, run.map_index),
            recorded_at=stored.recorded_at,
        ),
        distributions=found,
        deliveries=[_delivery(d) for d in records],
        links={"Dataset page": links.dataset(stored.result.dataset)},
    )
    nav = f'<nav><a href="{esc(links.overview())}">ML observability: overview</a></nav>'
    return html_page(f"{stored.result.check} of {stored.result.dataset}", nav + section)


def not_found_page(links: Links, what: str) -> str:
    """The page of a missing dataset or result."""
    return html_page("Not found", _nav(links, "Not found") + f"<p>{esc(what)}</p>")


def parse_map_index(value: str | None) -> int:
    """``map_index`` from a URL: an integer, else -1 (also for the unsubstituted ``{MAP_INDEX}``
    placeholder an unmapped task's view may carry)."""
    try:
        return int(value) if value not in (None, "") else -1  # type: ignore[arg-type]
    except ValueError:
        return -1


def parse_moment(value: str | None) -> datetime | None:
    """A window moment from a URL (ISO 8601; naive is UTC), else None."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
