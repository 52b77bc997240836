"""One result as HTML: the dashboard's result page and the self-contained report file.

:func:`result_section` is the content (status, summary, window, run, findings, metrics, the
distributions of each column against its baseline, deliveries); :func:`render_result_report`
wraps it in a complete document with inline CSS and SVG and nothing else: no script, no font, no
image, no link that loads anything, so it opens from disk with the network off. Its size grows with
the result's columns (one findings row and one small chart each), never with the data's rows.
Pure: no Airflow, no I/O. Every text from a result is HTML-escaped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airflow_mlobs.core.profile import Baseline, CategoricalProfile, NumericProfile, Profile
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.render import charts
from airflow_mlobs.render.charts import esc

#: The style of every page and report (inline; no external stylesheet).
PAGE_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px;color:#212121;font-size:14px}
h1{font-size:20px;margin:0 0 8px}h2{font-size:16px;margin:20px 0 8px}h3{font-size:14px;margin:12px 0 4px}
table{border-collapse:collapse;margin:4px 0 12px}th,td{border-bottom:1px solid #e0e0e0;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#fafafa}td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:1px 8px;border-radius:9px;color:#fff;font-weight:600;font-size:12px}
.status-pass{background:#2e7d32}.status-warn{background:#f9a825;color:#212121}.status-fail{background:#c62828}
.status-error{background:#6a1b9a}.status-skipped{background:#9e9e9e}
.muted{color:#757575}.grid{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #e0e0e0;
border-radius:6px;padding:8px}form.filters{display:flex;gap:8px;align-items:end;flex-wrap:wrap;margin:8px 0}
form.filters label{display:flex;flex-direction:column;font-size:12px}nav a{margin-right:12px}
pre{background:#fafafa;padding:8px;overflow:auto;max-height:300px}
td.when{white-space:nowrap}table.overview td.summary{max-width:460px}
"""

#: The most category bars drawn per column (the most frequent in the reference, then "other").
MAX_CATEGORY_BARS = 20


@dataclass(frozen=True)
class Distribution:
    """One column's reference and current distribution over the same bins or categories."""

    column: str
    kind: str
    labels: tuple[str, ...]
    reference: tuple[float, ...]
    current: tuple[float, ...]


def distributions(
    baseline: Baseline, profile: Profile, columns: Sequence[str] | None = None
) -> list[Distribution]:
    """The distributions of each column of ``profile`` (or of ``columns``) against ``baseline``:
    numeric columns over the baseline's bin edges (reference counts from the baseline's reference
    profile, current counts from the window's profile), categorical columns over the reference's
    most frequent categories (at most :data:`MAX_CATEGORY_BARS`, the rest as ``other``). Columns
    missing from either side are left out. No data is read: both are stored summaries."""
    found: list[Distribution] = []
    for name in columns if columns is not None else sorted(profile.columns):
        spec = baseline.columns.get(name)
        ref = baseline.reference.columns.get(name)
        cur = profile.columns.get(name)
        if spec is None or ref is None or cur is None:
            continue
        if isinstance(ref, NumericProfile) and isinstance(cur, NumericProfile):
            if not ref.bins or len(ref.bins) != len(cur.bins):
                continue
            labels = charts.bin_labels(spec.edges)
            if len(labels) != len(ref.bins):
                labels = [f"bin {i + 1}" for i in range(len(ref.bins))]
            found.append(
                Distribution(
                    name,
                    "numeric",
                    tuple(labels),
                    tuple(float(v) for v in ref.bins),
                    tuple(float(v) for v in cur.bins),
                )
            )
        elif isinstance(ref, CategoricalProfile) and isinstance(cur, CategoricalProfile):
            ranked = sorted(ref.counts, key=lambda c: (-ref.counts[c], c))
            extra = sorted((c for c in cur.counts if c not in ref.counts), key=lambda c: (-cur.counts[c], c))
            shown = (ranked + extra)[:MAX_CATEGORY_BARS]
            ref_other = ref.other + sum(v for c, v in ref.counts.items() if c not in shown)
            cur_other = cur.other + sum(v for c, v in cur.counts.items() if c not in shown)
            labels = [*shown, *(["other"] if ref_other or cur_other else [])]
            ref_counts = [float(ref.counts.get(c, 0)) for c in shown] + (
                [float(ref_other)] if len(labels) > len(shown) else []
            )
            cur_counts = [float(cur.counts.get(c, 0)) for c in shown] + (
                [float(cur_other)] if len(labels) > len(shown) else []
            )
            found.append(
                Distribution(name, "categorical", tuple(labels), tuple(ref_counts), tuple(cur_counts))
            )
    return found


def distribution_chart(distribution: Distribution, *, width: int = 420, height: int = 180) -> str:
    """The paired bars of one column."""
    return charts.paired_bars(
        distribution.labels,
        distribution.reference,
        distribution.current,
        title=f"{distribution.column}: reference vs current ({distribution.kind})",
        x_label=distribution.column,
        width=width,
        height=height,
    )


def badge(status: str) -> str:
    """A status as a coloured badge."""
    return f'<span class="badge status-{esc(status)}">{esc(status)}</span>'


def when(moment: datetime | None) -> str:
    """A moment as UTC text (``-`` for none)."""
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _value(value: Any) -> str:
    if isinstance(value, float):
        return esc(charts.fmt(value, 4))
    if isinstance(value, dict | list):
        text = json.dumps(value, sort_keys=True, default=str)
        return f"<code>{esc(text if len(text) <= 400 else text[:400] + ' ...')}</code>"
    return esc("-" if value is None else value)


@dataclass(frozen=True)
class RunInfo:
    """Where a result came from: the task run, and links to it (absolute or relative URLs)."""

    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    map_index: int = -1
    task_log_url: str | None = None
    recorded_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryInfo:
    """A notification delivery to list (its error never holds a secret)."""

    channel: str
    kind: str
    delivered: bool
    attempts: int
    error: str | None
    recorded_at: datetime | None = None


def deliveries_table(deliveries: Sequence[DeliveryInfo]) -> str:
    """The deliveries as a table (or a line saying there are none)."""
    if not deliveries:
        return '<p class="muted">No notification recorded.</p>'
    rows = "".join(
        f"<tr><td>{esc(when(d.recorded_at))}</td><td>{esc(d.channel)}</td><td>{esc(d.kind)}</td>"
        f"<td>{'delivered' if d.delivered else '<strong>not delivered</strong>'}</td>"
        f'<td class="num">{d.attempts}</td><td>{esc(d.error or "")}</td></tr>'
        for d in deliveries
    )
    return (
        '<table class="deliveries"><thead><tr><th>recorded</th><th>channel</th><th>kind</th><th>outcome</th>'
        f"<th>attempts</th><th>error</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def result_section(
    result: CheckResult,
    *,
    run: RunInfo | None = None,
    distributions: Sequence[Distribution] = (),
    deliveries: Sequence[DeliveryInfo] = (),
    links: Mapping[str, str] | None = None,
) -> str:
    """One result in full as an HTML fragment: headline, window, run (with the task log link),
    findings (worst first), metrics, distributions, deliveries. ``links``: extra labelled links."""
    run = run or RunInfo()
    parts = [
        f'<section class="result"><h1>{esc(result.check)} of {esc(result.dataset)} {badge(result.status.value)}</h1>',
        f'<p class="summary">{esc(result.summary)}</p>',
        '<table class="about"><tbody>',
        f"<tr><th>window</th><td>{esc(when(result.window_start))} to {esc(when(result.window_end))}</td></tr>",
    ]
    for label, value in (("DAG", run.dag_id), ("run", run.run_id), ("task", run.task_id)):
        if value is not None:
            parts.append(f"<tr><th>{label}</th><td>{esc(value)}</td></tr>")
    if run.map_index != -1:
        parts.append(f"<tr><th>map index</th><td>{run.map_index}</td></tr>")
    if run.recorded_at is not None:
        parts.append(f"<tr><th>stored</th><td>{esc(when(run.recorded_at))}</td></tr>")
    parts.append("</tbody></table>")
    anchors = [*(links or {}).items()]
    if run.task_log_url:
        anchors.insert(0, ("Task log in Airflow", run.task_log_url))
    if anchors:
        parts.append(
            "<p>"
            + " · ".join(f'<a href="{esc(url)}" target="_top">{esc(label)}</a>' for label, url in anchors)
            + "</p>"
        )
    ordered = sorted(result.findings, key=lambda f: -f.status.severity)
    parts.append(f"<h2>Findings ({len(ordered)})</h2>")
    if ordered:
        parts.append(
            '<table class="findings"><thead><tr><th>subject</th><th>metric</th><th>status</th><th>value</th>'
            "<th>threshold</th><th>reason</th></tr></thead><tbody>"
        )
        parts.extend(
            f"<tr><td>{esc(f.subject)}</td><td>{esc(f.metric)}</td><td>{badge(f.status.value)}</td>"
            f'<td class="num">{_value(f.value)}</td><td class="num">{_value(f.threshold)}</td>'
            f"<td>{esc(f.reason)}</td></tr>"
            for f in ordered
        )
        parts.append("</tbody></table>")
    else:
        parts.append('<p class="muted">No findings.</p>')
    parts.append("<h2>Metrics</h2>")
    if result.metrics:
        parts.append('<table class="metrics"><tbody>')
        parts.extend(
            f"<tr><th>{esc(key)}</th><td>{_value(value)}</td></tr>"
            for key, value in sorted(result.metrics.items())
        )
        parts.append("</tbody></table>")
    else:
        parts.append('<p class="muted">No metrics.</p>')
    if distributions:
        parts.append(f"<h2>Distributions: reference vs this window ({len(distributions)} columns)</h2>")
        parts.append('<div class="grid distributions">')
        parts.extend(f'<div class="card">{distribution_chart(d)}</div>' for d in distributions)
        parts.append("</div>")
    parts.append("<h2>Notifications</h2>")
    parts.append(deliveries_table(deliveries))
    parts.append("</section>")
    return "".join(parts)


def html_page(title: str, body: str, *, head: str = "") -> str:
    """A complete HTML document with the inline :data:`PAGE_CSS`."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{PAGE_CSS}</style>{head}</head><body>{body}</body></html>"
    )


def render_result_report(
    result: CheckResult,
    *,
    run: RunInfo | None = None,
    distributions: Sequence[Distribution] = (),
    deliveries: Sequence[DeliveryInfo] = (),
    links: Mapping[str, str] | None = None,
) -> str:
    """The self-contained HTML report of one result: :func:`result_section` in a page with inline
    CSS and SVG only (a Content-Security-Policy forbids loading anything)."""
    csp = (
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
    )
    body = result_section(result, run=run, distributions=distributions, deliveries=deliveries, links=links)
    footer = '<p class="muted">airflow-mlobs report: self-contained, opens without a network.</p>'
    return html_page(f"{result.check} of {result.dataset}: {result.status.value}", body + footer, head=csp)
