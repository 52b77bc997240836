"""Bad input for the delayed-label performance check (issue 12), on SQLite and PostgreSQL (the join
pushed down) and in memory (labels on another connection: ``performance_frame``).

Each case writes a prediction log and a label table, runs :class:`PerformanceSpec` through
``url_connected`` (no Airflow), turns ``MlobsInputError`` into an ``error`` result as the
operator's ``guarded`` does, and asserts the exact status and that the summary names the culprit
(table, column, argument, count). Anything else escaping is a crash and fails the case. Every result
must be strict JSON (no NaN, no infinity).

The window: 200 predictions made on 2026-11-01 (ids 1..200, scores 0.9 for the positive class and
0.1 for the negative, every one correct), labelled on 2026-11-03; the cut-off is 2026-11-10.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.result import CheckResult, error_result
from airflow_mlobs.specs.base import url_connected
from airflow_mlobs.specs.performance import PerformanceSpec
from tests.conftest import pg_url

START = datetime(2026, 11, 1, tzinfo=UTC)
END = START + timedelta(days=1)
LABELLED_AT = datetime(2026, 11, 3, 12)
N = 200

Row = dict[str, Any]


def _predictions(n: int = N) -> list[Row]:
    return [
        {
            "prediction_id": i,
            "predicted_at": datetime(2026, 11, 1, 0, 0) + timedelta(minutes=5 * i),
            "score": 0.9 if i % 2 else 0.1,
        }
        for i in range(1, n + 1)
    ]


def _labels(n: int = N) -> list[Row]:
    return [{"prediction_id": i, "label": i % 2, "labelled_at": LABELLED_AT} for i in range(1, n + 1)]


def _with(rows: list[Row], column: str, values: dict[int, Any]) -> list[Row]:
    """``rows`` with ``column`` set to ``values[i]`` in the i-th row (0-based)."""
    return [{**row, column: values[k]} if k in values else row for k, row in enumerate(rows)]


@dataclass
class Case:
    """One bad input: the tables (column types, rows), the spec's arguments, the expected status and
    the words the summary must hold."""

    status: str
    names: tuple[str, ...]
    predictions: list[Row] = field(default_factory=_predictions)
    labels: list[Row] = field(default_factory=_labels)
    prediction_types: dict[str, Any] = field(default_factory=dict)
    label_types: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    backends: tuple[str, ...] = ("sqlite", "postgres", "memory")
    create_labels: bool = True
    #: Not fixed yet: the case is a strict xfail naming what happens today.
    known_bug: str | None = None


PRED_TYPES: dict[str, Any] = {
    "prediction_id": sa.Integer(),
    "predicted_at": sa.DateTime(),
    "score": sa.Double(),
}
LABEL_TYPES: dict[str, Any] = {
    "prediction_id": sa.Integer(),
    "label": sa.Integer(),
    "labelled_at": sa.DateTime(),
}
#: Judged against 95% accuracy with a drop of 2 points: an all-correct window passes.
JUDGE = {"baseline": {"accuracy": 0.95}, "max_drop": 0.02, "score_column": "score"}

_invalid = {k: v for k, v in zip(range(0, 40, 2), [None] * 20, strict=True)}
_nan = {k: math.nan for k in range(0, 40, 2)}
_inf = {k: (math.inf if k % 4 else -math.inf) for k in range(0, 40, 2)}
_outside = {k: (1.5 if k % 4 else -0.2) for k in range(0, 40, 2)}
_regression = {"task": "regression", "metric": "mae", "score_column": "score", "baseline": {"mae": 0.0}}

CASES: dict[str, Case] = {
    "control_all_correct": Case("pass", ("accuracy 100.0%", "200 of 200")),
    "null_scores_excluded": Case(
        "pass",
        ("20 predictions without a valid score excluded",),
        predictions=_with(_predictions(), "score", _invalid),
        metrics={"unscored": 20},
    ),
    "nan_scores_excluded": Case(
        "pass",
        ("20 predictions without a valid score excluded",),
        predictions=_with(_predictions(), "score", _nan),
        metrics={"unscored": 20},
    ),
    "infinite_scores_excluded": Case(
        "pass",
        ("20 predictions without a valid score excluded",),
        predictions=_with(_predictions(), "score", _inf),
        metrics={"unscored": 20},
    ),
    "scores_outside_0_1_excluded": Case(
        "pass",
        ("20 predictions without a valid score excluded",),
        predictions=_with(_predictions(), "score", _outside),
        metrics={"unscored": 20},
    ),
    "empty_predictions_window": Case("skipped", ("no predictions in the window",), predictions=[]),
    "empty_labels_table": Case("skipped", ("coverage", "0 of 200"), labels=[]),
    "missing_predictions_table": Case(
        "error", ("no_such_predictions",), spec={"predictions_table": "no_such_predictions"}
    ),
    "missing_labels_table": Case("error", ("labels",), create_labels=False),
    "missing_score_column": Case(
        "error", ("'probability'", "predictions"), spec={"score_column": "probability"}
    ),
    "missing_label_column": Case("error", ("'verdict'", "labels"), spec={"label_column": "verdict"}),
    "duplicate_labels_noted": Case(
        "pass",
        ("duplicate", "latest"),
        labels=[*_labels(), *[{**r, "labelled_at": LABELLED_AT - timedelta(hours=1)} for r in _labels(50)]],
    ),
    "timestamps_with_zone_on_predictions": Case(
        "pass",
        ("200 of 200",),
        predictions=[{**r, "predicted_at": r["predicted_at"].replace(tzinfo=UTC)} for r in _predictions()],
        prediction_types={"predicted_at": sa.DateTime(timezone=True)},
        backends=("sqlite", "postgres"),
    ),
    "regression_non_finite_labels_named": Case(
        "pass",
        ("30 labelled predictions with a NULL or non-finite",),
        labels=_with(
            [{**r, "label": float(r["label"])} for r in _labels()],
            "label",
            {
                **{k: math.inf for k in range(10)},
                **{k: -math.inf for k in range(10, 20)},
                **dict.fromkeys(range(20, 30)),
            },
        ),
        predictions=[{**r, "score": float(i % 2)} for i, r in enumerate(_predictions(), start=1)],
        label_types={"label": sa.Double()},
        spec={**_regression, "baseline": {"mae": 0.0}, "max_drop": 0.1},
        metrics={"invalid": 30},
    ),
    "regression_huge_values_rmse_not_inf": Case(
        "skipped",
        ("rmse undefined (not finite", "2 labelled predictions with an error or label beyond 1e70"),
        labels=_with([{**r, "label": float(r["label"])} for r in _labels()], "label", {0: 1e300, 1: -1e300}),
        predictions=[{**r, "score": float(i % 2)} for i, r in enumerate(_predictions(), start=1)],
        label_types={"label": sa.Double()},
        spec={**_regression, "metric": "rmse", "baseline": {"rmse": 0.0}},
        metrics={"huge": 2, "value": None},
    ),
    # A NULL label is no label: not labelled, not negative; all NULL is the no-labels path.
    "all_null_label_column": Case(
        "skipped",
        ("coverage", "0 of 200", "200 labels in column 'label' were NULL"),
        labels=[{**r, "label": None} for r in _labels()],
        metrics={"null_labels": 200, "labelled": 0},
    ),
    "some_null_labels_not_negative": Case(
        "pass",
        ("accuracy 100.0%", "180 of 200", "20 labels in column 'label' were NULL"),
        labels=_with(_labels(), "label", dict.fromkeys(range(20))),
        metrics={"null_labels": 20, "labelled": 180},
    ),
    "text_in_numeric_label_column": Case(
        "error",
        ("label",),
        labels=_with([{**r, "label": str(r["label"])} for r in _labels()], "label", {0: "n/a", 1: "unknown"}),
        label_types={"label": sa.Text()},
        spec=_regression,
    ),
    # Two classes, neither the positive one: certainly a configuration mistake.
    "positive_label_absent_from_labels": Case(
        "error",
        ("positive_label 'churned'", "column 'label'", "values seen: 'no', 'yes'"),
        labels=[{**r, "label": "yes" if r["label"] else "no"} for r in _labels()],
        label_types={"label": sa.Text()},
        spec={"positive_label": "churned"},
        metrics={"positive_label_absent": True},
    ),
    # One class only, not the positive one: maybe a window of negatives only: at least warn.
    "positive_label_absent_one_value_seen": Case(
        "fail",
        ("positive_label 'churned'", "column 'label'", "values seen: 'no'"),
        labels=[{**r, "label": "no"} for r in _labels()],
        label_types={"label": sa.Text()},
        spec={"positive_label": "churned"},
        metrics={"positive_label_absent": True},
    ),
    "text_in_score_column": Case(
        "error",
        ("score",),
        predictions=[{**r, "score": str(r["score"])} for r in _predictions()],
        prediction_types={"score": sa.Text()},
    ),
    "null_prediction_ids": Case(
        "pass",
        ("10 predictions without a prediction id excluded", "190 of 190"),
        predictions=_with(_predictions(), "prediction_id", dict.fromkeys(range(190, 200))),
        metrics={"unidentified_predictions": 10, "predictions": 190},
    ),
    # 100 of 200 ids logged twice, the earlier row wrong: every row is judged (the documented rule),
    # so the stale rows fail the window, and the repeat is named, never silent.
    "duplicate_prediction_ids": Case(
        "fail",
        ("100 prediction log rows repeat a 'prediction_id' already logged in the window",),
        predictions=[
            *_predictions(),
            *[
                {**r, "score": 1 - r["score"], "predicted_at": r["predicted_at"] - timedelta(minutes=1)}
                for r in _predictions(100)
            ],
        ],
        metrics={"repeated_predictions": 100, "predictions": 300},
    ),
    # The same ids logged twice with the same scores: the window passes but warns.
    "duplicate_prediction_ids_same_rows": Case(
        "warn",
        ("100 prediction log rows repeat a 'prediction_id'",),
        predictions=[*_predictions(), *_predictions(100)],
        metrics={"repeated_predictions": 100},
    ),
    # SQLite compares an INTEGER column with a TEXT one numerically (column affinity): joined.
    "id_types_differ_int_vs_text_sqlite": Case(
        "pass",
        ("200 of 200",),
        labels=[{**r, "prediction_id": str(r["prediction_id"])} for r in _labels()],
        label_types={"prediction_id": sa.Text()},
        backends=("sqlite",),
    ),
    # PostgreSQL refuses integer = text; the in-memory join names both columns and their types.
    "id_types_differ_int_vs_text": Case(
        "error",
        ("predictions", "labels"),
        labels=[{**r, "prediction_id": str(r["prediction_id"])} for r in _labels()],
        label_types={"prediction_id": sa.Text()},
        backends=("postgres", "memory"),
    ),
}

SETTINGS: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "threshold_above_1": ({"threshold": 1.5}, ("threshold", "[0, 1]")),
    "threshold_nan": ({"threshold": math.nan}, ("threshold", "[0, 1]")),
    "sigma_zero": ({"sigma": 0.0}, ("sigma", "> 0")),
    "sigma_negative": ({"sigma": -1.0}, ("sigma", "> 0")),
    "min_label_coverage_2": ({"min_label_coverage": 2.0}, ("min_label_coverage", "[0, 1]")),
    "min_segment_labels_0": ({"min_segment_labels": 0}, ("min_segment_labels", ">= 1")),
    "bins_1": ({"bins": 1}, ("bins", "[2, 1000000]")),
    "chunksize_0": ({"chunksize": 0}, ("chunksize", ">= 1")),
    "max_drop_negative": ({"max_drop": -0.1}, ("max_drop", "0 <= warn <= fail")),
    "max_drop_text": ({"max_drop": "lots%"}, ("max_drop", "'lots%'")),
    "metric_unknown_for_task": ({"metric": "rmse"}, ("'rmse'", "classification")),
    "timezone_unknown": ({"timezone": "Mars/Olympus"}, ("timezone", "'Mars/Olympus'")),
    "duplicate_labels_unknown": ({"duplicate_labels": "first"}, ("duplicate_labels", "'first'")),
    "count_orphan_labels_text": ({"count_orphan_labels": "yes"}, ("count_orphan_labels", "True or False")),
}


Connect = Callable[[str], AbstractContextManager[sa.Engine]]


@dataclass
class Backend:
    name: str
    urls: dict[str, str]
    schema: str | None

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}" if self.schema else name

    def connect(self, conn_id: str) -> AbstractContextManager[sa.Engine]:
        return url_connected(self.urls[conn_id])


@pytest.fixture(params=["sqlite", "postgres", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        schema = request.getfixturevalue("pg_schema")
        yield Backend("postgres", {"warehouse": pg_url()}, schema)
        return
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    yield Backend(request.param, {"warehouse": url, "labels_db": url}, None)


def _write(backend: Backend, case: Case) -> None:
    engine = sa.create_engine(backend.urls["warehouse"])
    try:
        metadata = sa.MetaData(schema=backend.schema)
        preds = sa.Table(
            "predictions",
            metadata,
            *(sa.Column(n, case.prediction_types.get(n, t)) for n, t in PRED_TYPES.items()),
        )
        labels = sa.Table(
            "labels", metadata, *(sa.Column(n, case.label_types.get(n, t)) for n, t in LABEL_TYPES.items())
        )
        with engine.begin() as conn:
            preds.create(conn)
            if case.predictions:
                conn.execute(preds.insert(), case.predictions)
            if case.create_labels:
                labels.create(conn)
                if case.labels:
                    conn.execute(labels.insert(), case.labels)
    finally:
        engine.dispose()


def _run(backend: Backend, spec_args: dict[str, Any]) -> CheckResult:
    args: dict[str, Any] = {
        "conn_id": "warehouse",
        "predictions_table": backend.table("predictions"),
        "labels_table": backend.table("labels"),
        "prediction_time_column": "predicted_at",
        "label_time_column": "labelled_at",
        "label_cutoff": "2026-11-10T00:00:00+00:00",
        **JUDGE,
        **spec_args,
    }
    for name in ("predictions_table", "labels_table"):
        if name in spec_args:
            args[name] = backend.table(spec_args[name])
    if backend.name == "memory":
        args["label_conn_id"] = "labels_db"
    spec = PerformanceSpec(**args)
    try:
        return spec.evaluate(window_start=START, window_end=END, connect=backend.connect)
    except MlobsInputError as exc:
        return error_result(check="performance", dataset=spec.dataset_name(), message=str(exc))


def _strict_json(result: CheckResult) -> None:
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.parametrize("case_name", list(CASES))
def test_bad_input(backend: Backend, case_name: str, request: pytest.FixtureRequest) -> None:
    case = CASES[case_name]
    if backend.name not in case.backends:
        pytest.skip(f"{case_name} is not a case for {backend.name}")
    if case.known_bug:
        request.applymarker(pytest.mark.xfail(reason=case.known_bug, strict=True))
    _write(backend, case)
    result = _run(backend, case.spec)
    assert result.status.value == case.status, result.summary
    for word in case.names:
        assert word in result.summary, (word, result.summary)
    for name, value in case.metrics.items():
        assert result.metrics[name] == value, (name, result.metrics)
    _strict_json(result)


@pytest.mark.parametrize("case_name", list(SETTINGS))
def test_bad_settings_are_an_error_naming_the_argument(backend: Backend, case_name: str) -> None:
    args, names = SETTINGS[case_name]
    _write(backend, Case("pass", ()))
    result = _run(backend, args)
    assert result.status.value == "error", result.summary
    for word in names:
        assert word in result.summary, (word, result.summary)


@pytest.mark.parametrize("case_name", list(SETTINGS))
def test_literal_bad_settings_fail_validation_naming_the_task(case_name: str) -> None:
    args, names = SETTINGS[case_name]
    spec = PerformanceSpec(
        conn_id="warehouse",
        predictions_table="predictions",
        labels_table="labels",
        prediction_time_column="predicted_at",
        label_time_column="labelled_at",
        **{**JUDGE, **args},
    )
    with pytest.raises(ValueError) as raised:
        spec.validate("perf_task")
    message = str(raised.value)
    assert message.startswith("perf_task: "), message
    for word in names:
        assert word in message, (word, message)
