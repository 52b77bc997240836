"""The self-contained HTML report (airflow_mlobs.render.report): content, escaping, nothing loaded
from anywhere, size bounded by columns (< 1 MB for a drift result of 100 columns); the report path
of the operators' report_dir."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from airflow_mlobs.core.profile import Baseline, CategoricalProfile, ColumnSpec, NumericProfile, Profile
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.operators.report import report_path
from airflow_mlobs.render.report import DeliveryInfo, RunInfo, distributions, render_result_report
from airflow_mlobs.store import RunKey

START, END = datetime(2026, 11, 24, tzinfo=UTC), datetime(2026, 11, 25, tzinfo=UTC)
EVIL = '<img src=x onerror="alert(1)">'


def _drift_case(columns: int, bins: int = 20) -> tuple[CheckResult, Baseline, Profile]:
    specs: dict[str, ColumnSpec] = {}
    ref: dict[str, NumericProfile | CategoricalProfile] = {}
    cur: dict[str, NumericProfile | CategoricalProfile] = {}
    findings = []
    for n in range(columns):
        name = f"feature_{n:03d}" if n else EVIL
        if n % 10 == 9:
            cats = {f"cat_{k}": 100 + k for k in range(30)}
            specs[name] = ColumnSpec(name, "categorical", categories=tuple(cats))
            ref[name] = CategoricalProfile(counts=cats)
            cur[name] = CategoricalProfile(counts={**cats, "cat_new": 500, EVIL: 3})
        else:
            edges = tuple(float(e) for e in range(bins - 1))
            specs[name] = ColumnSpec(name, "numeric", edges=edges)
            ref[name] = NumericProfile(count=bins * 50, bins=tuple([50] * bins))
            cur[name] = NumericProfile(count=bins * 50, bins=tuple(range(1, bins + 1)))
        findings.append(
            Finding(
                subject=name,
                metric="psi",
                status=Status.FAIL if n < 5 else Status.PASS,
                value=0.1 * n,
                threshold=0.2,
                reason=f"psi {0.1 * n:.2f}",
            )
        )
    baseline = Baseline(
        name="features", version="v1", columns=specs, reference=Profile(row_count=1000, columns=ref)
    )
    profile = Profile(row_count=1000, columns=cur, edges_key=baseline.key, window_start=START, window_end=END)
    result = CheckResult(
        check="drift",
        dataset=f"wh:{EVIL}",
        status=Status.FAIL,
        summary=f"5 of {columns} columns drifted",
        window_start=START,
        window_end=END,
        metrics={
            "drift_share": 0.05,
            "baseline": "features/v1",
            "drifted_columns": [{"column": EVIL, "value": 1.0}],
        },
        findings=tuple(findings),
    )
    return result, baseline, profile


def test_report_of_100_columns_is_self_contained_escaped_and_under_1_mb() -> None:
    result, baseline, profile = _drift_case(100)
    found = distributions(baseline, profile)
    assert len(found) == 100
    text = render_result_report(
        result,
        run=RunInfo(dag_id="monitor", run_id="scheduled__2026-11-24T00:00:00+00:00", task_id="drift"),
        distributions=found,
        deliveries=[DeliveryInfo("slack", "alert", False, 3, f"refused {EVIL}")],
        links={"Result page": "http://airflow.example/mlobs/result?dag_id=monitor&run_id=x&task_id=drift"},
    )
    size = len(text.encode())
    print(f"\nreport of a 100-column drift result: {size / 1024:.0f} KiB")
    assert size < 1_000_000
    assert text.count('class="mlobs-chart mlobs-bars"') == 100
    assert text.count("<tr><td>") >= 100  # one findings row per column
    assert EVIL not in text and "&lt;img src=x" in text
    # Nothing that loads anything: no script, stylesheet link, image or remote URL in an attribute.
    assert not re.search(r"<script|<link|<img|<iframe|<[a-z]+[^>]*\ssrc=|url\(", text)
    assert "default-src 'none'" in text
    # Numeric bins from the baseline's edges; categories: the 20 most frequent, then "other".
    numeric = next(d for d in found if d.kind == "numeric")
    assert numeric.labels[0] == "< 0" and numeric.labels[-1] == ">= 18" and len(numeric.labels) == 20
    categorical = next(d for d in found if d.kind == "categorical")
    assert len(categorical.labels) == 21 and categorical.labels[-1] == "other"
    assert sum(categorical.current) == sum(profile.columns[categorical.column].counts.values())  # type: ignore[union-attr]


def test_size_grows_with_columns_not_rows() -> None:
    small = _drift_case(10)
    large_rows = _drift_case(10)
    scaled = Profile(
        row_count=10**9,
        columns={
            name: NumericProfile(count=10**9, bins=tuple(v * 10**6 for v in col.bins))
            if isinstance(col, NumericProfile)
            else col
            for name, col in large_rows[2].columns.items()
        },
        edges_key=large_rows[1].key,
    )
    a = render_result_report(small[0], distributions=distributions(small[1], small[2]))
    b = render_result_report(small[0], distributions=distributions(small[1], scaled))
    assert abs(len(a) - len(b)) < 0.05 * len(a)


def test_missing_columns_and_mismatched_bins_are_left_out() -> None:
    _, baseline, profile = _drift_case(3)
    partial = Profile(row_count=1, columns={"feature_001": NumericProfile(count=1, bins=(1,))})
    assert distributions(baseline, partial) == []
    assert [d.column for d in distributions(baseline, profile, ["feature_002", "absent"])] == ["feature_002"]


def test_report_path_layout(tmp_path: Path) -> None:
    run = RunKey(dag_id="monitor", task_id="drift", run_id="manual__2026/11/24", map_index=-1)
    assert report_path(tmp_path, run) == tmp_path / "monitor" / "manual__2026_11_24" / "drift.html"
    mapped = RunKey(dag_id="monitor", task_id="drift", run_id="r1", map_index=3)
    assert report_path(str(tmp_path), mapped) == tmp_path / "monitor" / "r1" / "drift.3.html"
