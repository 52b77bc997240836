"""The dashboard's pages (airflow_mlobs.ui.pages) over a real SQLite history: every value from the
history escaped (dataset, column and summary text that is HTML), links URL-encoded, filters and the
time range applied, map_index and moments read from URLs leniently."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.performance.judge import judge_performance
from airflow_mlobs.core.performance.summary import summarize_classification
from airflow_mlobs.core.performance.window import evaluation_window
from airflow_mlobs.core.performance_settings import PerformanceSettings
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.history import History
from airflow_mlobs.render.charts import esc
from airflow_mlobs.store import Delivery, ResultsStore, RunKey
from airflow_mlobs.ui import pages

EVIL = "<script>alert('x')</script>"
DATASET = f"wh:{EVIL}/a b"
END = datetime(2026, 11, 30, tzinfo=UTC)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def _tags(page: str) -> list[str]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    store = ResultsStore(engine)
    for day in range(10):
        start = END - timedelta(days=10 - day)
        status = Status.FAIL if day == 6 else Status.PASS
        for check, metrics in (
            ("drift", {"drift_share": 0.5, "baseline": "missing/v1"}),
            ("freshness", {"age_seconds": 3600.0 * day, "max_age_seconds": 21600.0}),
            ("performance", {"metric": "auc", "value": 0.9 - day / 100, "se": 0.01, "baseline_value": 0.9}),
        ):
            result = CheckResult(
                check=check,
                dataset=DATASET,
                status=status,
                summary=f"{check}: {EVIL}",
                window_start=start,
                window_end=start + timedelta(days=1),
                metrics=metrics,
                findings=(Finding(EVIL, "psi", status, 0.1 * day, 0.2, f"reason {EVIL}"),),
            )
            run = RunKey(dag_id=f"dag_{EVIL}", task_id=check, run_id=f"scheduled__{day}")
            store.save(result, run)
            if day == 6:
                store.record_delivery(result, run, Delivery(f"slack:{EVIL}", "alert", False, 2, EVIL))
    yield History(engine)
    engine.dispose()


def _safe(page: str) -> None:
    assert EVIL not in page
    assert "script" not in _tags(page)
    assert "&lt;script&gt;" in page


def test_overview_escapes_everything_and_filters(history: History) -> None:
    links = pages.Links(base="/mlobs")
    page = pages.overview_page(history, links, now=END)
    _safe(page)
    assert page.count("<tr data-dataset=") == 3
    assert "/mlobs/datasets/wh%3A%3Cscript%3E" in page  # the dataset link, URL-encoded
    assert "3.0 d ago" in page  # the day-6 breach: window end 11-27, 3 days before END
    failing = pages.overview_page(history, links, now=END, status="fail")
    assert failing.count("<tr data-dataset=") == 0  # the latest statuses all pass
    assert "No results in the last 30 days" in pages.overview_page(
        history, links, now=END - timedelta(days=60)
    )
    _safe(pages.overview_page(history, links, now=END, dag_id=f"dag_{EVIL}"))


def test_dataset_page_escapes_and_draws_each_chart(history: History) -> None:
    links = pages.Links(base="/mlobs", airflow="")
    page = pages.dataset_page(history, links, DATASET, now=END)
    assert page is not None
    _safe(page)
    assert page.count("mlobs-timeline") == 3
    assert "mlobs-heatmap" in page and "mlobs-line" in page and "±3 SE" in page
    assert "No distributions: no baseline directory is configured here" in page
    elsewhere = pages.dataset_page(history, links, DATASET, now=END, baseline_dir=Path("/nonexistent"))
    assert elsewhere is not None and "No distributions: baseline missing/v1 is not readable here" in elsewhere
    assert "not delivered" in page
    assert pages.dataset_page(history, links, "wh:none", now=END) is None


def test_result_page_escapes_and_links_the_task_log(history: History) -> None:
    stored = history.result_for_run(dag_id=f"dag_{EVIL}", run_id="scheduled__6", task_id="drift")
    assert stored is not None
    page = pages.result_page(history, pages.Links(base="/x/mlobs", airflow="/x"), stored)
    _safe(page)
    assert (
        'href="/x/dags/dag_%3Cscript%3Ealert%28%27x%27%29%3C%2Fscript%3E/runs/scheduled__6/tasks/drift"'
        in page
    )
    assert "not delivered" in page


def test_url_values_are_read_leniently() -> None:
    assert pages.parse_map_index("{MAP_INDEX}") == -1
    assert pages.parse_map_index(None) == -1 and pages.parse_map_index("") == -1
    assert pages.parse_map_index("3") == 3
    assert pages.parse_moment("2026-11-24T00:00:00") == datetime(2026, 11, 24, tzinfo=UTC)
    assert pages.parse_moment("yesterday") is None
    assert pages.Links(base="/m").task_log("d", "r", "t", 2) == "/dags/d/runs/r/tasks/t/mapped/2"
    assert pages.Links(base="/m").task_log(None, "r", "t", -1) is None


def test_overview_and_dataset_pages_show_only_readable_dags(history: History) -> None:
    """A user who may read one DAG sees only its rows, on the overview and the dataset page."""
    store = history.store
    other = CheckResult(
        check="drift",
        dataset="wh:other",
        status=Status.FAIL,
        summary="drift of the other DAG",
        window_start=END - timedelta(days=2),
        window_end=END - timedelta(days=1),
        metrics={"drift_share": 0.9},
    )
    store.save(other, RunKey(dag_id="other_dag", task_id="drift", run_id="scheduled__x"))
    links = pages.Links(base="/mlobs")
    everything = pages.overview_page(history, links, now=END)
    assert everything.count("<tr data-dataset=") == 4
    mine = pages.overview_page(history, links, now=END, readable=frozenset({"other_dag"}))
    assert mine.count("<tr data-dataset=") == 1 and 'data-dataset="wh:other"' in mine
    assert f"dag_{EVIL}" not in mine and esc(f"dag_{EVIL}") not in mine  # nor in the DAG filter
    theirs = pages.overview_page(history, links, now=END, readable=frozenset({f"dag_{EVIL}"}))
    assert theirs.count("<tr data-dataset=") == 3 and "wh:other" not in theirs
    assert pages.dataset_page(history, links, DATASET, now=END, readable=frozenset({"other_dag"})) is None
    page = pages.dataset_page(history, links, "wh:other", now=END, readable=frozenset({"other_dag"}))
    assert page is not None and "drift of the other DAG" in page
    assert pages.dataset_page(history, links, "wh:other", now=END, readable=frozenset()) is None


def test_overview_shows_open_alerts_per_row(history: History) -> None:
    """An alert state a channel stored as open shows on its dataset x check row, escaped; a closed
    one shows nothing."""
    store = history.store
    opened = {
        "open": True,
        "fingerprint": "f",
        "status": "fail",
        "consecutive": 2,
        "escalated": False,
        "first_sent": (END - timedelta(days=2)).isoformat(),
        "last_sent": (END - timedelta(days=1)).isoformat(),
    }
    store.save_alert_state(f"slack:{EVIL}", "drift", DATASET, opened)
    store.save_alert_state("email:ops", "freshness", DATASET, {**opened, "open": False})
    page = pages.overview_page(history, pages.Links(base="/mlobs"), now=END)
    _safe(page)
    assert page.count('class="open-alert"') == 1
    assert "since 2026-11-28 00:00:00 UTC (2.0 d ago)" in page and "fail, 2 windows" in page
    assert f"slack:{esc(EVIL)}" in page


def _performance_history(store: ResultsStore) -> None:
    """Daily runs of two performance tasks on one prediction log whose labels arrive 0 to 9 days
    after each prediction: ``recent`` judges the day before its run (labels 1 day old), ``matured``
    the day 5 days before; both judged by the real performance core and stored."""
    rng = np.random.default_rng(3)
    first = END - timedelta(days=20)
    n = 200
    made = np.array(
        [
            first + timedelta(days=int(d), minutes=int(m))
            for d, m in zip(rng.integers(0, 20, n * 20), rng.integers(0, 1440, n * 20), strict=True)
        ]
    )
    arrives = made + np.array([timedelta(hours=float(h)) for h in rng.uniform(0, 216, len(made))])
    truth = (rng.random(len(made)) < 0.4).astype(int)
    scores = np.clip(truth * 0.4 + rng.random(len(made)) * 0.6, 0, 1)
    settings = PerformanceSettings(baseline={"accuracy": 0.8})
    for day in range(10):
        interval_end = END - timedelta(days=9 - day)
        for task, delay in (("recent", timedelta(days=1)), ("matured", timedelta(days=5))):
            window = evaluation_window(interval_end - timedelta(days=1), interval_end, delay)
            inside = np.nonzero((made >= window.prediction_start) & (made < window.prediction_end))[0]
            labels = {int(i): int(truth[i]) for i in inside if arrives[i] <= window.label_cutoff}
            summary = summarize_classification(
                inside, (scores[inside] >= 0.5).astype(int), scores[inside], labels
            )
            result = judge_performance(
                summary,
                settings,
                dataset="wh:predictions",
                window=window,
                window_start=interval_end - timedelta(days=1),
                window_end=interval_end,
            )
            store.save(result, RunKey(dag_id="perf", task_id=task, run_id=f"scheduled__{day}"))


def test_dataset_page_draws_label_coverage_as_each_prediction_day_matured(history: History) -> None:
    _performance_history(history.store)
    results = history.results("wh:predictions", since=END - timedelta(days=30), until=END)
    rows, columns, values, ids, minimum = pages.coverage_maturity(results)
    # Prediction days judged by "recent" (a day old) and, four days later, by "matured".
    assert len(columns) == 10 and len(values) == 20 and minimum == 0.5
    twice = [row for row in rows if sum(1 for r, _ in values if r == row) == 2]
    assert len(twice) == 6  # the days both tasks judged within the 10 runs
    for row in twice:
        young, old = (values[(row, at)] for at in columns if (row, at) in values)
        assert young < old  # the same day's coverage grew as its labels arrived
    page = pages.dataset_page(history, pages.Links(base="/mlobs"), "wh:predictions", now=END)
    assert page is not None
    assert "Label coverage of each prediction window as it matured" in page
    assert page.count('class="mark cell"') == 20
    chart = page.split('class="mlobs-chart mlobs-coverage"')[1].split("</svg>")[0]
    linked = {int(part.split('"')[0]) for part in chart.split('<a href="/mlobs/results/')[1:]}
    assert linked == set(ids.values())  # each cell links to the result that judged it
    assert ": not mature" in chart and 'stroke-dasharray="2 1"' in chart  # young days below the minimum
