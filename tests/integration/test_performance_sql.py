"""The pushed-down performance join (``performance_summary_sql``) against the in-memory summary of the
same rows (``summarize_classification`` / ``summarize_regression``, numpy).

Counts must be exact (confusion counts, every score-histogram bin, coverage, duplicates, late and
orphan labels), sums equal within 1e-9 relative, and the AUC within 0.005 of the exact
Mann-Whitney value, under both duplicate-label rules (``"latest"``, ``"earliest"``). One test joins
1,000,000 predictions and proves that only aggregate rows cross the wire (counted with a SQLAlchemy
cursor event). The last ones compare the grouped classification statement (no window function) with
the ranked one (``ROW_NUMBER()``) row by row, on every kind of tie and duplicate, in PostgreSQL and
SQLite, under both rules, and check every prediction's winning label there in each path (grouped,
ranked, in memory).
"""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import sqlalchemy as sa
from scipy import stats as sps

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.performance.judge import judge_performance
from airflow_mlobs.core.performance.metrics import classification_metrics, regression_metrics
from airflow_mlobs.core.performance.summary import (
    ClassificationSummary,
    MulticlassSummary,
    RegressionSummary,
    summarize_classification,
    summarize_regression,
)
from airflow_mlobs.core.performance.window import evaluation_window, winning_labels
from airflow_mlobs.core.performance_settings import DuplicateLabels, PerformanceSettings
from airflow_mlobs.core.result import Status
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.performance_frame import performance_summary_join
from airflow_mlobs.sources.performance_sql import (
    PerformanceQuery,
    PerformanceSource,
    performance_statement,
    performance_summary_sql,
)

pytestmark = pytest.mark.postgres

INTERVAL = (datetime(2026, 3, 10, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC))
DELAY = timedelta(days=7)
WINDOW = evaluation_window(*INTERVAL, DELAY)
SEGMENTS = np.array(["north", "south", "east"])
RULES: tuple[DuplicateLabels, ...] = ("latest", "earliest")


def _data(rng: np.random.Generator, n: int = 6000) -> dict[str, Any]:
    """Predictions over three days around the judged window, labels arriving 0-10 days later, some
    duplicated (conflicting), some only after the cut-off, some for unknown ids."""
    start = WINDOW.prediction_start - timedelta(days=1)
    times = [start + timedelta(seconds=float(s)) for s in rng.uniform(0, 3 * 86400, n)]
    ids = np.arange(1, n + 1)
    y = rng.random(n) < 0.3
    score = np.clip(np.where(y, rng.beta(4, 2, n), rng.beta(2, 4, n)), 0, 1)
    score[rng.random(n) < 0.01] = np.nan  # NULL scores
    score[:3] = [0.0, 1.0, 0.5]  # edges of the bins
    predicted = (np.nan_to_num(score) >= 0.5).astype(int)
    segment = rng.choice(SEGMENTS, n)
    label_ids, label_values, label_times = [], [], []
    for i in range(n):
        if rng.random() < 0.85:
            t = times[i] + timedelta(days=float(rng.uniform(0, 10)))
            label_ids.append(int(ids[i]))
            label_values.append(int(y[i]))
            label_times.append(t)
            if rng.random() < 0.05:  # a correction, earlier or later, with the other label
                label_ids.append(int(ids[i]))
                label_values.append(int(not y[i]))
                label_times.append(t + timedelta(hours=float(rng.uniform(-12, 12))))
    for k in range(40):  # labels for ids the log never had, some inside the arrivals window
        label_ids.append(n + 1000 + k)
        label_values.append(1)
        label_times.append(INTERVAL[0] + timedelta(hours=k - 10))
    return {
        "ids": ids,
        "times": times,
        "score": score,
        "predicted": predicted,
        "segment": segment,
        "label_ids": label_ids,
        "label_values": label_values,
        "label_times": label_times,
    }


def _load(engine: sa.Engine, schema: str, data: dict[str, Any], label_type: str = "INTEGER") -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f'CREATE TABLE "{schema}".predictions (prediction_id BIGINT PRIMARY KEY, '
                "predicted_at TIMESTAMPTZ, predicted_class INTEGER, score DOUBLE PRECISION, "
                "model_version TEXT, segment TEXT)"
            )
        )
        conn.execute(
            sa.text(
                f'CREATE TABLE "{schema}".labels (prediction_id BIGINT, label {label_type}, labelled_at TIMESTAMPTZ)'
            )
        )
        conn.execute(
            sa.text(f'INSERT INTO "{schema}".predictions VALUES (:i, :t, :c, :s, :v, :g)'),
            [
                {
                    "i": int(i),
                    "t": t,
                    "c": int(c),
                    "s": None if math.isnan(s) else float(s),
                    "v": "v1",
                    "g": str(g),
                }
                for i, t, c, s, g in zip(
                    data["ids"], data["times"], data["predicted"], data["score"], data["segment"], strict=True
                )
            ],
        )
        conn.execute(
            sa.text(f'INSERT INTO "{schema}".labels VALUES (:i, :y, :t)'),
            [
                {"i": i, "y": y, "t": t}
                for i, y, t in zip(data["label_ids"], data["label_values"], data["label_times"], strict=True)
            ],
        )


def _source(schema: str, **extra: Any) -> PerformanceSource:
    return PerformanceSource(
        predictions=TableRef("predictions", schema),
        labels=TableRef("labels", schema),
        id_column="prediction_id",
        prediction_time_column="predicted_at",
        label_column="label",
        label_time_column="labelled_at",
        score_column="score",
        **extra,
    )


def _rule_winners(data: dict[str, Any], duplicate_labels: DuplicateLabels = "latest") -> Any:
    """The winning label per prediction id by the cut-off (the pure reference of the rule)."""
    return winning_labels(
        data["label_ids"],
        data["label_values"],
        data["label_times"],
        WINDOW.label_cutoff,
        duplicate_labels=duplicate_labels,
    )


def _reference(
    data: dict[str, Any],
    *,
    regression: bool = False,
    mask: Any = None,
    duplicate_labels: DuplicateLabels = "latest",
    score_decides: bool = False,
) -> Any:
    """The in-memory summary of the judged window (the numpy reference); ``score_decides``: the
    predicted class is ``score >= threshold`` (no predicted column)."""
    in_window = np.array([WINDOW.prediction_start <= t < WINDOW.prediction_end for t in data["times"]])
    if mask is not None:
        in_window &= mask
    labels, counts, late = _rule_winners(data, duplicate_labels)
    known = set(int(i) for i in data["ids"])
    orphans = sum(
        1
        for i, t in zip(data["label_ids"], data["label_times"], strict=True)
        if i not in known and WINDOW.arrivals_start < t <= WINDOW.label_cutoff
    )
    ids = data["ids"][in_window]
    if regression:
        return summarize_regression(
            ids, data["score"][in_window], labels, label_counts=counts, late_ids=late, orphan_labels=orphans
        )
    return summarize_classification(
        ids,
        data["predicted"][in_window],
        data["score"][in_window],
        labels,
        label_counts=counts,
        late_ids=late,
        orphan_labels=orphans,
        score_decides=score_decides,
    )


def _assert_same(got: Any, want: Any) -> None:
    for f in fields(want):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-9), f.name
        else:
            assert a == b, f.name


@pytest.mark.parametrize("duplicate_labels", RULES)
def test_classification_counts_equal_numpy(
    pg_engine: sa.Engine, pg_schema: str, duplicate_labels: DuplicateLabels
) -> None:
    data = _data(np.random.default_rng(5))
    _load(pg_engine, pg_schema, data)
    overall, segments, stats = performance_summary_sql(
        pg_engine,
        PerformanceQuery(
            _source(pg_schema, predicted_column="predicted_class", segment_column="segment"),
            WINDOW,
            duplicate_labels=duplicate_labels,
        ),
    )
    want = _reference(data, duplicate_labels=duplicate_labels)
    assert isinstance(overall, ClassificationSummary)
    _assert_same(overall, want)
    # the data exercise every path
    cov = overall.coverage
    assert cov.predictions > 1500 and 0 < cov.labelled < cov.predictions
    assert cov.duplicate > 0 and cov.late > 0 and cov.orphan_labels and overall.invalid_scores > 0
    assert stats.statements == 1 and stats.rows_fetched < 3 * 2 * 2 * 1000 * 3 + 1
    # per segment: the same as the reference restricted to the segment (orphans are not per segment)
    assert set(segments) == set(SEGMENTS)
    for name, summary in segments.items():
        ref = _reference(data, mask=data["segment"] == name, duplicate_labels=duplicate_labels)
        _assert_same(
            summary,
            ref.__class__(
                **{
                    **ref.__dict__,
                    "coverage": ref.coverage.__class__(
                        ref.coverage.predictions,
                        ref.coverage.labelled,
                        ref.coverage.late,
                        ref.coverage.duplicate,
                        None,
                    ),
                }
            ),
        )

    # AUC from the pushed-down histograms against the exact Mann-Whitney value of the same rows
    in_window = np.array([WINDOW.prediction_start <= t < WINDOW.prediction_end for t in data["times"]])
    labels, _, _ = _rule_winners(data, duplicate_labels)
    rows = [
        (labels[int(i)], s)
        for i, s in zip(data["ids"][in_window], data["score"][in_window], strict=True)
        if int(i) in labels and not math.isnan(s)
    ]
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    u = sps.mannwhitneyu(s[y == 1], s[y == 0]).statistic
    exact_auc = u / ((y == 1).sum() * (y == 0).sum())
    metrics = classification_metrics(overall)
    assert metrics["roc_auc"].value == pytest.approx(exact_auc, abs=0.005)
    assert metrics["accuracy"].value == pytest.approx((overall.tp + overall.tn) / overall.labelled)
    # the rule matters on these data: the conflicting corrections change the confusion counts
    other = "earliest" if duplicate_labels == "latest" else "latest"
    other_summary, _, _ = performance_summary_sql(
        pg_engine,
        PerformanceQuery(
            _source(pg_schema, predicted_column="predicted_class"), WINDOW, duplicate_labels=other
        ),
    )
    assert isinstance(other_summary, ClassificationSummary)
    assert other_summary.coverage == overall.coverage
    assert (other_summary.tp, other_summary.fn) != (overall.tp, overall.fn)
    _assert_same(other_summary, _reference(data, duplicate_labels=other))


def test_score_threshold_and_model_version_and_boolean_labels(pg_engine: sa.Engine, pg_schema: str) -> None:
    data = _data(np.random.default_rng(6), n=2000)
    data["label_values"] = [bool(v) for v in data["label_values"]]
    _load(pg_engine, pg_schema, data, label_type="BOOLEAN")
    overall, _, _ = performance_summary_sql(
        pg_engine, PerformanceQuery(_source(pg_schema), WINDOW, threshold=0.5)
    )
    # without predicted_column the class is score >= threshold: a NULL score has no predicted class
    # and is left out of the confusion counts (unscored), never counted as predicted negative
    want = _reference({**data, "label_values": [int(v) for v in data["label_values"]]}, score_decides=True)
    assert want.unscored > 0
    _assert_same(overall, want)
    other, _, _ = performance_summary_sql(
        pg_engine,
        PerformanceQuery(
            _source(pg_schema, model_version_column="model_version"), WINDOW, model_version="v2"
        ),
    )
    assert other.coverage.predictions == 0 and other.coverage.orphan_labels == want.coverage.orphan_labels


@pytest.mark.parametrize("duplicate_labels", RULES)
def test_regression_sums_equal_numpy(
    pg_engine: sa.Engine, pg_schema: str, duplicate_labels: DuplicateLabels
) -> None:
    rng = np.random.default_rng(7)
    data = _data(rng, n=3000)
    truth = rng.gamma(2.0, 10.0, len(data["ids"])).round(1)
    truth[rng.random(len(truth)) < 0.05] = 0.0  # zero labels: left out of MAPE
    data["score"] = truth + rng.normal(0.5, 3.0, len(truth))
    value_of = dict(zip(data["ids"].tolist(), truth.tolist(), strict=True))
    data["label_values"] = [
        value_of.get(i, 1.0) + (0 if k % 7 else 0.25) for k, i in enumerate(data["label_ids"])
    ]
    _load(pg_engine, pg_schema, data, label_type="DOUBLE PRECISION")
    overall, _, stats = performance_summary_sql(
        pg_engine,
        PerformanceQuery(_source(pg_schema), WINDOW, task="regression", duplicate_labels=duplicate_labels),
    )
    assert isinstance(overall, RegressionSummary)
    _assert_same(overall, _reference(data, regression=True, duplicate_labels=duplicate_labels))
    assert (
        overall.zero_labels > 0 and stats.rows_fetched <= 6
    )  # 3 states, orphans, rows without an id, repeated ids
    metrics = regression_metrics(overall)
    assert all(metrics[m].value is not None for m in ("mae", "rmse", "mape", "bias", "r2"))


def test_naive_timestamps_are_wall_clock_in_the_given_zone(pg_engine: sa.Engine, pg_schema: str) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TABLE "{pg_schema}".p (id INT, ts TIMESTAMP, score FLOAT)'))
        conn.execute(sa.text(f'CREATE TABLE "{pg_schema}".l (id INT, y INT, lt TIMESTAMP)'))
        # 00:30 Berlin on 2026-03-03 is 23:30 UTC on 03-02: inside the Berlin-day window only.
        conn.execute(
            sa.text(
                f"INSERT INTO \"{pg_schema}\".p VALUES (1, '2026-03-03 00:30', 0.9), (2, '2026-03-04 00:30', 0.9)"
            )
        )
        conn.execute(sa.text(f"INSERT INTO \"{pg_schema}\".l VALUES (1, 1, '2026-03-09 12:00')"))
    interval = (datetime(2026, 3, 10, tzinfo=berlin), datetime(2026, 3, 11, tzinfo=berlin))
    window = evaluation_window(*interval, DELAY)
    source = PerformanceSource(
        TableRef("p", pg_schema), TableRef("l", pg_schema), "id", "ts", "y", "lt", score_column="score"
    )
    overall, _, _ = performance_summary_sql(pg_engine, PerformanceQuery(source, window, naive_zone=berlin))
    assert (overall.coverage.predictions, overall.coverage.labelled) == (1, 1)


def test_missing_columns_name_the_table(pg_engine: sa.Engine, pg_schema: str) -> None:
    _load(pg_engine, pg_schema, _data(np.random.default_rng(1), n=50))
    with pytest.raises(SourceError, match=r"label column 'outcome' not found in table .*labels"):
        performance_summary_sql(
            pg_engine,
            PerformanceQuery(
                _source(pg_schema, predicted_column=None).__class__(
                    **{**_source(pg_schema).__dict__, "label_column": "outcome"}
                ),
                WINDOW,
            ),
        )
    with pytest.raises(SourceError, match=r"table .*nope does not exist"):
        performance_summary_sql(
            pg_engine,
            PerformanceQuery(
                PerformanceSource(
                    TableRef("nope", pg_schema),
                    TableRef("labels", pg_schema),
                    "prediction_id",
                    "predicted_at",
                    "label",
                    "labelled_at",
                    score_column="score",
                ),
                WINDOW,
            ),
        )


def test_one_million_predictions_only_aggregates_cross_the_wire(pg_engine: sa.Engine, pg_schema: str) -> None:
    rows = 1_000_000
    start = WINDOW.prediction_start
    with pg_engine.begin() as conn:
        conn.execute(sa.text("SELECT setseed(0.42)"))
        conn.execute(
            sa.text(
                f'CREATE TABLE "{pg_schema}".predictions AS SELECT g AS prediction_id, '
                "CAST(:start AS TIMESTAMPTZ) + (g % 86400) * INTERVAL '1 second' AS predicted_at, "
                "random() AS score, (g % 4)::text AS segment FROM generate_series(1, :n) g"
            ),
            {"start": start, "n": rows},
        )
        conn.execute(
            sa.text(
                f'CREATE TABLE "{pg_schema}".labels AS SELECT prediction_id, '
                "CASE WHEN random() < score * 0.8 + 0.1 THEN 1 ELSE 0 END AS label, "
                "predicted_at + INTERVAL '3 days' AS labelled_at "
                f'FROM "{pg_schema}".predictions WHERE prediction_id % 10 <> 0'
            )
        )
        conn.execute(sa.text(f'ANALYZE "{pg_schema}".predictions'))
        conn.execute(sa.text(f'ANALYZE "{pg_schema}".labels'))
    fetched: list[tuple[str, int]] = []

    def count_rows(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        fetched.append((statement, cursor.rowcount))

    sa.event.listen(pg_engine, "after_cursor_execute", count_rows)
    try:
        overall, segments, stats = performance_summary_sql(
            pg_engine, PerformanceQuery(_source(pg_schema, segment_column="segment"), WINDOW)
        )
    finally:
        sa.event.remove(pg_engine, "after_cursor_execute", count_rows)
    assert isinstance(overall, ClassificationSummary)
    assert overall.coverage.predictions == rows and overall.coverage.labelled == rows * 9 // 10
    assert sum(overall.positives) + sum(overall.negatives) == overall.labelled
    assert stats.statements == 1
    total = sum(max(n, 0) for _, n in fetched)  # catalog reads included
    assert total < 20_000, total
    assert total * 50 < rows
    assert len(segments) == 4
    # the scores are uniform and labels follow them: AUC near its known value, judged without error
    result = judge_performance(
        overall,
        PerformanceSettings(metric="roc_auc", baseline={"roc_auc": 0.76}, max_drop={}),
        dataset="big",
        window=WINDOW,
    )
    assert result.status is Status.PASS
    # P(label=1 | s) = 0.1 + 0.8 s with s ~ U(0, 1): AUC = 1/2 + (0.8/6)/(0.5 * 0.5) ... exact below
    p1 = lambda s: 0.1 + 0.8 * s  # noqa: E731
    grid = (np.arange(200_000) + 0.5) / 200_000
    w_pos, w_neg = p1(grid), 1 - p1(grid)
    expected = float(np.sum(w_pos * (np.cumsum(w_neg) - w_neg / 2)) / (w_pos.sum() * w_neg.sum()))
    assert classification_metrics(overall)["roc_auc"].value == pytest.approx(expected, abs=0.005)


# Every way a winning label is chosen: (label, hours before the cut-off; None: no time; negative:
# after the cut-off) per prediction id. Prediction 16 is logged twice; prediction 17 has no score.
_EDGE_LABELS: dict[int, list[tuple[Any, float | None]]] = {
    1: [],
    2: [(1, 30)],
    3: [(0, 30)],
    4: [(1, 30), (0, 20)],  # a later correction wins ("earliest": the first verdict, 1, wins)
    5: [(0, 30), (1, 20)],
    6: [(0, 30), (1, 30)],  # a tie: the larger label wins
    7: [(1, 30), (2, 30)],  # a tie with a larger class than the positive one
    8: [(1, 30), (None, 30)],  # a tie with a NULL label (PostgreSQL ranks NULL first)
    9: [(None, 30)],
    10: [(1, -5)],  # late only
    11: [(1, -5), (0, None)],  # late and one without a time (PostgreSQL ranks the NULL time first)
    12: [(1, None)],
    13: [(1, 30), (1, 30)],  # the very same label twice
    14: [(0, 30), (1, -5)],  # in time and late
    15: [(1, 30), (None, 20)],  # a later NULL label ("earliest": the first verdict, 1, wins)
    16: [(1, 30)],
    17: [(1, 30)],
}


def _edge_engine(request: pytest.FixtureRequest, tmp_path: Any) -> tuple[sa.Engine, str | None]:
    if request.param == "sqlite":
        return sa.create_engine(f"sqlite:///{tmp_path / 'edge.db'}"), None
    return request.getfixturevalue("pg_engine"), request.getfixturevalue("pg_schema")


@pytest.fixture(params=["postgresql", "sqlite"])
def edge_db(request: pytest.FixtureRequest, tmp_path: Any) -> tuple[sa.Engine, str | None]:
    """The edge cases in PostgreSQL (aware timestamps) or SQLite (naive UTC wall clock)."""
    engine, schema = _edge_engine(request, tmp_path)
    aware = engine.dialect.name == "postgresql"
    metadata = sa.MetaData(schema=schema)
    preds = sa.Table(
        "predictions",
        metadata,
        sa.Column("prediction_id", sa.Integer),
        sa.Column("predicted_at", sa.DateTime(timezone=aware)),
        sa.Column("predicted_class", sa.Integer),
        sa.Column("score", sa.Float),
        sa.Column("segment", sa.Text),
    )
    labels = sa.Table(
        "labels",
        metadata,
        sa.Column("prediction_id", sa.Integer),
        sa.Column("label", sa.Integer),
        sa.Column("labelled_at", sa.DateTime(timezone=aware)),
    )

    def at(moment: datetime) -> datetime:
        return moment if aware else moment.astimezone(UTC).replace(tzinfo=None)

    pred_rows = [
        {
            "prediction_id": i,
            "predicted_at": at(WINDOW.prediction_start + timedelta(hours=1, minutes=i)),
            "predicted_class": i % 2,
            "score": None if i == 17 else i / 20,
            "segment": "a" if i % 3 else "b",
        }
        for i in [*_EDGE_LABELS, 16]
    ]
    label_rows = [
        {
            "prediction_id": i,
            "label": label,
            "labelled_at": None if hours is None else at(WINDOW.label_cutoff - timedelta(hours=hours)),
        }
        for i, labels_of in _EDGE_LABELS.items()
        for label, hours in labels_of
    ]
    label_rows.append({"prediction_id": 999, "label": 1, "labelled_at": at(WINDOW.label_cutoff)})  # orphan
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(preds.insert(), pred_rows)
        conn.execute(labels.insert(), label_rows)
    return engine, schema


def _rows(engine: sa.Engine, statement: Any) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return sorted((tuple(r) for r in conn.execute(statement)), key=repr)


@pytest.mark.parametrize("duplicate_labels", RULES)
@pytest.mark.parametrize("predicted_column", [None, "predicted_class"])
def test_grouped_statement_equals_the_ranked_one(
    edge_db: tuple[sa.Engine, str | None], predicted_column: str | None, duplicate_labels: DuplicateLabels
) -> None:
    """The grouped classification statement (no window functions) returns exactly the aggregate rows of
    the ROW_NUMBER() statement, on every kind of tie and duplicate: under "latest" in each dialect's
    own NULL order, under "earliest" with NULLs last (the same in both dialects)."""
    engine, schema = edge_db
    source = _source(schema, predicted_column=predicted_column, segment_column="segment")  # type: ignore[arg-type]
    statements = {
        formulation: performance_statement(
            engine,
            PerformanceQuery(source, WINDOW, bins=10, duplicate_labels=duplicate_labels),
            formulation=formulation,
        )
        for formulation in ("grouped", "ranked")
    }
    assert "row_number" not in str(statements["grouped"]).lower()
    grouped, ranked = _rows(engine, statements["grouped"]), _rows(engine, statements["ranked"])
    assert len(grouped) == len(ranked) > 5
    for got, want in zip(grouped, ranked, strict=True):
        for a, b in zip(got, want, strict=True):
            assert a == (pytest.approx(b, rel=1e-12) if isinstance(b, float) else b), (got, want)
    overall, _, _ = performance_summary_sql(
        engine, PerformanceQuery(source, WINDOW, bins=10, duplicate_labels=duplicate_labels)
    )
    cov = overall.coverage
    postgres = engine.dialect.name == "postgresql"
    # 18 rows, the duplicated one counted once (as the ranked statement does); 2, 3, 4-8, 13-17
    # labelled (a NULL label is no label: 9 has none, 8 and 15 one each, not duplicates)
    assert (cov.predictions, cov.labelled, cov.duplicate, cov.orphan_labels) == (17, 12, 6, 1)
    assert cov.null_labels == 3  # the NULL labels of 8, 9 and 15
    assert isinstance(overall, ClassificationSummary)
    if duplicate_labels == "latest":
        assert cov.late == (1 if postgres else 2)  # prediction 11: NO_LABEL in PostgreSQL, LATE in SQLite
        positives = {2, 5, 6, 8, 13, 15, 16}  # 17 is positive but has no score
    else:
        assert cov.late == 2  # a NULL time ranks last in both dialects: 11 is LATE
        positives = {2, 4, 6, 8, 13, 15, 16}  # the first verdicts; a NULL label never wins a tie
    assert sum(overall.positives) == len(positives) and overall.invalid_scores == 1
    # the positive without a score: in the confusion counts only when a predicted column gives
    # its class; without one (score >= threshold) it is unscored, left out
    unscored = 1 if source.predicted_column is None else 0
    assert overall.unscored == unscored
    assert overall.tp + overall.fn == len(positives) + 1 - unscored


# The winning label of each edge prediction ("NONE": unlabelled, "LATE": labelled only after the
# cut-off, "NULL": a NULL label won), per rule and dialect.
_EARLIEST_WINNERS = {
    1: "NONE",
    2: "1",
    3: "0",
    4: "1",  # the first verdict; the correction 10 hours later is ignored
    5: "0",
    6: "1",
    7: "2",
    8: "1",  # a NULL label never wins a tie
    9: "NULL",
    10: "LATE",
    11: "LATE",  # the label without a time never decides
    12: "NONE",
    13: "1",
    14: "0",
    15: "1",  # the first verdict; the later NULL label is ignored
    16: "1",
    17: "1",
}
_LATEST_WINNERS = {**_EARLIEST_WINNERS, 4: "0", 5: "1", 15: "NULL"}
_WINNERS: dict[tuple[str, str], dict[int, str]] = {
    ("earliest", "postgresql"): _EARLIEST_WINNERS,
    ("earliest", "sqlite"): _EARLIEST_WINNERS,
    ("latest", "sqlite"): _LATEST_WINNERS,
    # PostgreSQL's DESC ranks NULLs first: a NULL label wins the tie, a NULL time beats a late label
    ("latest", "postgresql"): {**_LATEST_WINNERS, 8: "NULL", 11: "NONE"},
}


def _winners(summaries: dict[str, Any]) -> dict[int, str]:
    """The winning label per prediction from summaries keyed by prediction id (as the segment): the
    class for a multi-class summary, ``"1"`` or ``"not 1"`` for a binary one."""
    out: dict[int, str] = {}
    for key, summary in summaries.items():
        cov = summary.coverage
        if not cov.labelled:
            out[int(key)] = "LATE" if cov.late else "NONE"
        elif isinstance(summary, MulticlassSummary):
            assert len(summary.cells) + summary.invalid == 1, summary
            out[int(key)] = summary.cells[0][0] if summary.cells else "NULL"
        else:
            assert isinstance(summary, ClassificationSummary)
            out[int(key)] = "1" if summary.tp + summary.fn else "not 1"
    return out


@pytest.mark.parametrize("duplicate_labels", RULES)
def test_each_prediction_s_winning_label_in_every_path(
    edge_db: tuple[sa.Engine, str | None], duplicate_labels: DuplicateLabels
) -> None:
    """Every edge prediction's winner (each prediction its own segment): the grouped classification
    statement, the ranked multi-class one (which returns the winning class itself), the in-memory
    join and, for "earliest", the numpy reference agree with the table above. Under "earliest" all of
    them agree in both dialects; under "latest" PostgreSQL's NULL order is the documented exception."""
    engine, schema = edge_db
    dialect = engine.dialect.name
    source = _source(schema, predicted_column="predicted_class", segment_column="prediction_id")  # type: ignore[arg-type]
    want = _WINNERS[(duplicate_labels, dialect)]
    binary = {i: "1" if w == "1" else w if w in ("NONE", "LATE") else "not 1" for i, w in want.items()}
    # a binary classification's NULL label is no label: 8 and 15 keep their 1, 9 has none
    binary.update({8: "1", 9: "NONE", 15: "1"})
    options: dict[str, Any] = {"count_orphans": False, "duplicate_labels": duplicate_labels}
    _, grouped, _ = performance_summary_sql(engine, PerformanceQuery(source, WINDOW, bins=10, **options))
    assert _winners(grouped) == binary
    _, ranked, _ = performance_summary_sql(
        engine, PerformanceQuery(source, WINDOW, task="multiclass", **options)
    )
    assert _winners(ranked) == want
    # the in-memory join orders NULLs last in every dialect (SQLite's order)
    _, in_memory, _ = performance_summary_join(
        engine, engine, PerformanceQuery(source, WINDOW, task="multiclass", **options)
    )
    assert _winners(in_memory) == _WINNERS[(duplicate_labels, "sqlite")]
    if duplicate_labels == "earliest":  # the numpy reference (it does not take NULL times under "latest")
        ids, values, times = zip(
            *(
                (i, label, None if hours is None else WINDOW.label_cutoff - timedelta(hours=hours))
                for i, labels_of in _EDGE_LABELS.items()
                for label, hours in labels_of
            ),
            strict=True,
        )
        labels, counts, late = winning_labels(
            ids, values, times, WINDOW.label_cutoff, duplicate_labels="earliest"
        )

        def reference(i: int) -> str:
            if i in labels:
                return "NULL" if labels[i] is None else str(labels[i])
            return "LATE" if i in late else "NONE"

        assert {i: reference(i) for i in _EDGE_LABELS} == want
        assert counts[4] == 2 and labels[4] == 1  # the first verdict of prediction 4 wins


def test_grouped_formulation_is_for_classification_only(pg_engine: sa.Engine, pg_schema: str) -> None:
    _load(pg_engine, pg_schema, _data(np.random.default_rng(2), n=20))
    with pytest.raises(SourceError, match="classification only"):
        performance_statement(
            pg_engine, PerformanceQuery(_source(pg_schema), WINDOW, task="regression"), formulation="grouped"
        )
