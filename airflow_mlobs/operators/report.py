"""The HTML report a check operator writes when ``report_dir`` is set.

After the result is stored (and notified), :func:`write_result_report` writes
``<report_dir>/<dag_id>/<run_id>/<task_id>[.<map_index>].html``: the self-contained report of
:func:`airflow_mlobs.render.report.render_result_report` (for a drift result with the reference vs
current distributions of each column from the stored profile and the baseline), with a link to
the result page in the Airflow UI. ``report_dir`` is a local path or an object-storage URL
(``s3://...``, an ``ObjectStoragePath``). Writing never fails the task and never loses the result:
a failure is logged as a warning naming the path.
"""

from __future__ import annotations

import os
from typing import Any

from airflow_mlobs import settings
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.history import History
from airflow_mlobs.operators.links import airflow_base_url
from airflow_mlobs.render.links import result_page_url
from airflow_mlobs.render.report import DeliveryInfo, RunInfo, distributions, render_result_report
from airflow_mlobs.store import ResultsStore, RunKey


def _part(text: str | None) -> str:
    """A path segment from a DAG, run or task id (``/`` and ``\\`` would make new directories)."""
    return (text or "-").replace("/", "_").replace("\\", "_")


def report_path(report_dir: str | os.PathLike[str] | Any, run: RunKey) -> Any:
    """``<report_dir>/<dag_id>/<run_id>/<task_id>[.<map_index>].html`` as a path object (a
    ``pathlib.Path``, or an ``ObjectStoragePath`` for a URL)."""
    base = settings.storage_path(report_dir)
    name = _part(run.task_id) + (f".{run.map_index}" if run.map_index >= 0 else "") + ".html"
    return base / _part(run.dag_id) / _part(run.run_id) / name


def build_report(result: CheckResult, store: ResultsStore, run: RunKey, *, baseline_dir: Any = None) -> str:
    """The report of a stored result: its deliveries from the store, its distributions (drift)."""
    found = []
    if result.check == "drift":
        try:
            directory = settings.baseline_dir(baseline_dir)
        except Exception:  # no baseline dir here: the report goes without distributions
            directory = None
        window = History(store.engine).drift_window(result, directory)
        if not isinstance(window, str):
            found = distributions(*window)
    deliveries = [
        DeliveryInfo(d.channel, d.kind, d.delivered, d.attempts, d.error)
        for d in store.deliveries(result, run)
    ]
    links: dict[str, str] = {}
    if run.dag_id and run.run_id and run.task_id:
        links["Result page in the Airflow UI"] = result_page_url(
            airflow_base_url(),
            dag_id=run.dag_id,
            run_id=run.run_id,
            task_id=run.task_id,
            map_index=run.map_index,
        )
    return render_result_report(
        result,
        run=RunInfo(dag_id=run.dag_id, run_id=run.run_id, task_id=run.task_id, map_index=run.map_index),
        distributions=found,
        deliveries=deliveries,
        links=links,
    )


def write_result_report(operator: Any, result: CheckResult, store: ResultsStore, run: RunKey) -> Any:
    """Write the report of ``result`` under ``operator.report_dir`` (nothing when unset); returns
    the path written, or ``None``. Never raises: a failure is a warning in the task log."""
    report_dir = getattr(operator, "report_dir", None)
    if not report_dir:
        return None
    path: Any = None
    try:
        path = report_path(report_dir, run)
        text = build_report(result, store, run, baseline_dir=getattr(operator, "baseline_dir", None))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except Exception as exc:  # the result is stored already: a report is never worth failing for
        operator.log.warning(
            "Could not write the HTML report to %s: %s: %s", path or report_dir, type(exc).__name__, exc
        )
        return None
    operator.log.info("Wrote the HTML report %s (%d bytes)", path, len(text.encode()))
    return path
