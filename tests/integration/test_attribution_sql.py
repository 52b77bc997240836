"""Attribution sums pushed down on PostgreSQL (and SQLite) equal the in-memory gatherer's; only
the aggregate rows are fetched; the whole check fails on the swapped model on PostgreSQL too."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.result import Status
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.recorder.layout import attribution_column
from airflow_mlobs.sources.attribution_frame import gather_attribution_frame
from airflow_mlobs.sources.attribution_sql import AttributionSource, gather_attributions
from airflow_mlobs.specs.attribution import AttributionSpec
from tests.unit.test_attribution import T0, T1, T2, linear_model_log


def write(engine: sa.Engine, frame: pd.DataFrame, schema: str | None) -> None:
    frame.to_sql(
        "mlobs_prediction_log",
        engine,
        schema=schema,
        index=False,
        dtype={"predicted_at": sa.DateTime(timezone=True)},
    )


@pytest.fixture
def frame() -> pd.DataFrame:
    data, _ = linear_model_log(n=400)
    data.loc[5, attribution_column("x2")] = None
    data.loc[450, attribution_column("x3")] = None
    return data


def assert_equal_to_memory(engine: sa.Engine, frame: pd.DataFrame, table: str) -> None:
    src = AttributionSource(table=parse_table_name(table), timestamp_column="predicted_at")
    current, reference, qs = gather_attributions(engine, src, start=T1, end=T2, reference=(T0, T1))
    assert (qs.statements, qs.rows_fetched) == (2, 2)  # one aggregate row per window, not 800 rows
    assert reference is not None
    for got, (lo, hi) in ((current, (T1, T2)), (reference, (T0, T1))):
        want = gather_attribution_frame(frame, timestamp_column="predicted_at", start=lo, end=hi)
        assert got.rows == want.rows == 400
        assert set(got.features) == {"x1", "x2", "x3"}
        for f, s in want.features.items():
            assert got.features[f].n == s.n
            assert got.features[f].sum_abs == pytest.approx(s.sum_abs, rel=1e-12)
            assert got.features[f].sum_sq == pytest.approx(s.sum_sq, rel=1e-12)


def test_postgres_equals_in_memory(pg_engine: sa.Engine, pg_schema: str, frame: pd.DataFrame) -> None:
    write(pg_engine, frame, pg_schema)
    assert_equal_to_memory(pg_engine, frame, f"{pg_schema}.mlobs_prediction_log")


def test_sqlite_equals_in_memory(tmp_path: Path, frame: pd.DataFrame) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    write(engine, frame, None)
    assert_equal_to_memory(engine, frame, "mlobs_prediction_log")
    engine.dispose()


def test_postgres_check_fails_naming_the_features(
    pg_engine: sa.Engine, pg_schema: str, frame: pd.DataFrame
) -> None:
    from contextlib import contextmanager

    write(pg_engine, frame, pg_schema)

    @contextmanager
    def connect(_: str):  # type: ignore[no-untyped-def]
        yield pg_engine

    spec = AttributionSpec(
        conn_id="pg",
        table=f"{pg_schema}.mlobs_prediction_log",
        model_version_column=None,
        reference_window=(T0, T1),
    )
    result = spec.evaluate(window_start=T1, window_end=T2, connect=connect)
    assert result.status is Status.FAIL
    assert (result.metrics["gained"], result.metrics["lost"]) == (["x2"], ["x1"])


def test_missing_attribution_column_names_table_and_column(pg_engine: sa.Engine, pg_schema: str) -> None:
    from airflow_mlobs.core.errors import SourceError

    write(pg_engine, pd.DataFrame({"predicted_at": [T0], "attr__a": [1.0]}), pg_schema)
    src = AttributionSource(
        table=parse_table_name(f"{pg_schema}.mlobs_prediction_log"),
        timestamp_column="predicted_at",
        attribution_columns={"b": "shap_b"},
    )
    with pytest.raises(SourceError, match=r"shap_b.*mlobs_prediction_log"):
        gather_attributions(pg_engine, src, start=T0, end=T1)
