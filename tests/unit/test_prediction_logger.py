"""The prediction logger on SQLite: layout made on first use, privacy (pseudonyms, redaction,
sampling) applied before anything is stored, bad input named, and the performance check reading
what it wrote. PostgreSQL (COPY, concurrent writers): tests/integration/test_prediction_logger_pg.py.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from scipy import stats

from airflow_mlobs.core.errors import MlobsInputError, SourceError, SourceUnavailable
from airflow_mlobs.core.privacy import REDACTED, PseudonymKey, is_pseudonym, pseudonym, sampled
from airflow_mlobs.recorder import PERFORMANCE_DEFAULTS, PredictionLogger

ROOT = Path(__file__).resolve().parents[2]
KEY = "unit-test-key-0123456789abcdef"
OTHER_KEY = "another-key-fedcba9876543210"
DAY = datetime(2026, 11, 22, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    yield engine
    engine.dispose()


def _rows(engine: sa.Engine, table: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(f'SELECT * FROM "{table}"'))]


def _customers(n: int, seed: int = 3) -> dict[str, list[Any]]:
    rng = np.random.default_rng(seed)
    return {
        "customer_id": (10_000 + np.arange(n)).tolist(),
        "customer_age": rng.integers(18, 80, n).tolist(),
        "monthly_spend": rng.gamma(2.0, 30.0, n).round(2).tolist(),
        "region": rng.choice(["north", "south", "east", "west"], n).tolist(),
        "email": [f"person{i}@example.com" for i in range(n)],
    }


# -- importing and layout ----------------------------------------------------------------------


def test_importing_and_logging_loads_no_airflow(tmp_path: Path) -> None:
    """A model service imports the logger, pseudonymizes and writes without any Airflow module."""
    probe = (
        "import sys, json\n"
        "from airflow_mlobs.recorder import PredictionLogger\n"
        "with PredictionLogger(sys.argv[1], pseudonymize=['customer_id'], key='k' * 20) as logger:\n"
        "    logger.log({'customer_id': 7, 'x': 1.5}, score=0.5)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, f"sqlite:///{tmp_path / 'a.db'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = json.loads(done.stdout)
    assert "airflow" not in loaded, loaded
    assert "sqlalchemy" in loaded and "airflow_mlobs" in loaded  # the probe really ran


def test_table_is_made_on_first_use_with_the_documented_layout(engine: sa.Engine) -> None:
    assert not sa.inspect(engine).has_table("mlobs_prediction_log")
    at = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
    with PredictionLogger(engine, model_version="v3") as logger:
        first = logger.log(
            {"age": 40, "spend": 12.5, "region": "west", "active": True, "joined": DAY},
            score=0.75,
            predicted_class=1,
            predicted_at=at,
        )
        assert not sa.inspect(engine).has_table("mlobs_prediction_log")  # buffered until flush
        before = datetime.now(UTC).replace(tzinfo=None)
        logger.log({"age": 41, "spend": 3.0, "region": "east", "active": False, "joined": DAY}, score=0.2)
        after = datetime.now(UTC).replace(tzinfo=None)
    columns = {c["name"]: c for c in sa.inspect(engine).get_columns("mlobs_prediction_log")}
    assert list(columns) == [
        "prediction_id",
        "predicted_at",
        "model_version",
        "score",
        "predicted_class",
        "age",
        "spend",
        "region",
        "active",
        "joined",
    ]
    kinds = {name: type(c["type"]).__name__ for name, c in columns.items()}
    assert kinds["age"] == "BIGINT" and kinds["spend"] in ("DOUBLE", "FLOAT") and kinds["region"] == "TEXT"
    assert (
        kinds["active"] == "BOOLEAN"
        and kinds["joined"] == "DATETIME"
        and kinds["predicted_class"] == "BIGINT"
    )
    unique = sa.inspect(engine).get_unique_constraints("mlobs_prediction_log")
    indexes = sa.inspect(engine).get_indexes("mlobs_prediction_log")
    assert ["prediction_id"] in [u["column_names"] for u in unique] + [
        i["column_names"] for i in indexes if i["unique"]
    ]
    rows = _rows(engine, "mlobs_prediction_log")
    assert len(rows) == 2
    assert rows[0]["prediction_id"] == first and len(first) == 32 and int(first, 16) >= 0
    assert (
        rows[0]["model_version"] == "v3" and rows[0]["score"] == 0.75 and rows[1]["predicted_class"] is None
    )
    assert rows[0]["predicted_at"] == "2026-11-22 10:30:00.000000"  # UTC, as SQLite stores it
    assert before <= datetime.fromisoformat(rows[1]["predicted_at"]) <= after  # default: now, in UTC
    # No label was logged: no labels table; no treatment: no meta table.
    assert not sa.inspect(engine).has_table("mlobs_labels")
    assert not sa.inspect(engine).has_table("mlobs_prediction_log_meta")


def test_batch_size_flushes_on_its_own_and_close_writes_the_rest(engine: sa.Engine) -> None:
    logger = PredictionLogger(engine, table="log", batch_size=10)
    for i in range(25):
        logger.log({"x": float(i)}, score=0.1, prediction_id=i)
    assert len(_rows(engine, "log")) == 20 and logger.rows_written == 20
    assert logger.flush() == 5
    assert logger.flush() == 0
    logger.log({"x": 99.0}, prediction_id=99)
    logger.close()
    logger.close()  # idempotent
    assert sorted(int(r["prediction_id"]) for r in _rows(engine, "log")) == [*range(25), 99]
    with pytest.raises(MlobsInputError, match=r"table log: this PredictionLogger is closed"):
        logger.log({"x": 1.0})


def test_flush_every_writes_a_quiet_loggers_rows_in_the_background(engine: sa.Engine) -> None:
    import time

    logger = PredictionLogger(engine, table="log", flush_every=0.1)
    logger.log({"x": 1.0}, prediction_id="a")
    deadline = time.monotonic() + 10
    while logger.rows_written == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [r["prediction_id"] for r in _rows(engine, "log")] == ["a"]  # without flush() or close()
    logger.log({"x": 2.0}, prediction_id="b")
    logger.close()
    assert logger._flusher is not None and not logger._flusher.is_alive()
    assert len(_rows(engine, "log")) == 2
    with pytest.raises(MlobsInputError, match=r"flush_every must be a number of seconds > 0"):
        PredictionLogger(engine, flush_every=0)


def test_a_dataframe_batch_keeps_types_and_missing_values(engine: sa.Engine) -> None:
    frame = pd.DataFrame(
        {
            "age": np.array([30, 40, 50], dtype=np.int64),
            "spend": [1.5, np.nan, 3.0],
            "region": ["n", None, np.nan],
            "seen": pd.to_datetime(["2026-11-01", None, "2026-11-03"]),
        }
    )
    with PredictionLogger(engine, table="log") as logger:
        ids = logger.log_batch(
            frame, scores=np.array([0.1, 0.6, 0.9]), prediction_ids=["a", "b", "c"], predicted_at=DAY
        )
    assert ids == ["a", "b", "c"]
    rows = {r["prediction_id"]: r for r in _rows(engine, "log")}
    assert rows["a"]["age"] == 30 and rows["a"]["region"] == "n" and rows["b"]["region"] is None
    assert rows["c"]["region"] is None and rows["b"]["seen"] is None
    assert rows["b"]["spend"] is None or np.isnan(rows["b"]["spend"])
    assert rows["c"]["score"] == 0.9


# -- privacy ----------------------------------------------------------------------------------


def test_pseudonyms_are_the_core_pseudonyms_stable_across_processes_and_keyed(tmp_path: Path) -> None:
    """Two processes with one key write the same pseudonym for a customer; another key another."""
    script = (
        "import sys\n"
        "from airflow_mlobs.recorder import PredictionLogger\n"
        "with PredictionLogger(sys.argv[1], pseudonymize=['customer_id'], key=sys.argv[2]) as logger:\n"
        "    logger.log_batch({'customer_id': [1, 2, 3], 'x': [0.1, 0.2, 0.3]}, prediction_ids=['a', 'b', 'c'])\n"
    )
    tables = {}
    for name, key in (("one", KEY), ("two", KEY), ("other", OTHER_KEY)):
        url = f"sqlite:///{tmp_path / name}.db"
        subprocess.run([sys.executable, "-c", script, url, key], cwd=ROOT, check=True, capture_output=True)
        engine = sa.create_engine(url)
        tables[name] = {r["prediction_id"]: r["customer_id"] for r in _rows(engine, "mlobs_prediction_log")}
        engine.dispose()
    key = PseudonymKey.from_text(KEY)
    assert (
        tables["one"]
        == tables["two"]
        == {"a": pseudonym(1, key), "b": pseudonym(2, key), "c": pseudonym(3, key)}
    )
    assert set(tables["other"].values()).isdisjoint(tables["one"].values())
    assert all(v.startswith("ps_") and len(v) == 35 for v in tables["other"].values())


def test_no_raw_identifier_reaches_any_column_of_any_row(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOBS_PSEUDONYM_KEY", KEY)
    data = _customers(300)
    with PredictionLogger(
        engine, pseudonymize=["customer_id", "prediction_id"], redact=["email"], model_version="v1"
    ) as logger:
        ids = logger.log_batch(data, scores=[0.5] * 300, prediction_ids=[f"req-{i}" for i in range(300)])
        logger.log_labels(ids, [1] * 300, labelled_at=DAY)
    assert ids[0] == "req-0"  # the caller gets its own ids back, to log the labels with
    raw = {str(v) for v in data["customer_id"]} | set(data["email"]) | set(ids)
    seen = 0
    for table in ("mlobs_prediction_log", "mlobs_labels", "mlobs_prediction_log_meta"):
        for row in _rows(engine, table):
            for value in row.values():
                seen += 1
                text = str(value)
                assert text not in raw, (table, value)
                assert not any(r in text for r in raw if len(r) > 6), (table, value)
                assert KEY not in text
    assert seen > 300 * 8
    # Labels join predictions on the same pseudonymous id.
    with engine.connect() as conn:
        joined = conn.execute(
            sa.text("SELECT count(*) FROM mlobs_prediction_log p JOIN mlobs_labels l USING (prediction_id)")
        ).scalar()
    assert joined == 300
    meta = _rows(engine, "mlobs_prediction_log_meta")
    key_id = PseudonymKey.from_text(KEY).key_id
    assert {(m["column_name"], m["treatment"], m["key_id"]) for m in meta} == {
        ("customer_id", "pseudonym", key_id),
        ("prediction_id", "pseudonym", key_id),
        ("email", "dropped", ""),
    }


def test_meta_rows_are_written_once_per_treatment(engine: sa.Engine) -> None:
    for _ in range(3):
        with PredictionLogger(engine, pseudonymize=["customer_id"], key=KEY) as logger:
            logger.log({"customer_id": 5})
    assert len(_rows(engine, "mlobs_prediction_log_meta")) == 1
    with PredictionLogger(engine, pseudonymize=["customer_id"], key=OTHER_KEY) as logger:
        logger.log({"customer_id": 5})
    assert {m["key_id"] for m in _rows(engine, "mlobs_prediction_log_meta")} == {
        PseudonymKey.from_text(KEY).key_id,
        PseudonymKey.from_text(OTHER_KEY).key_id,
    }


def test_redaction_drops_the_column_or_replaces_every_value(engine: sa.Engine) -> None:
    with PredictionLogger(engine, table="dropped", redact=["email"]) as logger:
        logger.log_batch({"email": ["a@x", "b@x"], "x": [1, 2]})
    assert "email" not in {c["name"] for c in sa.inspect(engine).get_columns("dropped")}
    with PredictionLogger(engine, table="replaced", redact=["email"], redact_mode="replace") as logger:
        logger.log_batch({"email": ["a@x", None], "x": [1, 2]})
    assert [r["email"] for r in _rows(engine, "replaced")] == [REDACTED, None]
    assert {m["treatment"] for m in _rows(engine, "replaced_meta")} == {"redacted"}


def test_sampling_is_deterministic_across_processes_and_binomially_sized(tmp_path: Path) -> None:
    n, rate = 4_000, 0.1
    script = (
        "import sys\n"
        "from airflow_mlobs.recorder import PredictionLogger\n"
        "with PredictionLogger(sys.argv[1], sample=0.1) as logger:\n"
        f"    logger.log_batch({{'x': list(range({n}))}}, prediction_ids=[f'p{{i}}' for i in range({n})])\n"
        f"    logger.log_labels([f'p{{i}}' for i in range({n})], [1] * {n})\n"
    )
    kept = []
    for name in ("first", "second"):
        url = f"sqlite:///{tmp_path / name}.db"
        subprocess.run([sys.executable, "-c", script, url], cwd=ROOT, check=True, capture_output=True)
        engine = sa.create_engine(url)
        predictions = {r["prediction_id"] for r in _rows(engine, "mlobs_prediction_log")}
        labels = {r["prediction_id"] for r in _rows(engine, "mlobs_labels")}
        assert labels == predictions  # labels sampled by the same ids
        meta = _rows(engine, "mlobs_prediction_log_meta")
        assert [(m["column_name"], m["treatment"], m["detail"]) for m in meta] == [
            ("prediction_id", "sampled", "0.1")
        ]
        engine.dispose()
        kept.append(predictions)
    assert kept[0] == kept[1] == {f"p{i}" for i in range(n) if sampled(f"p{i}", rate)}
    low, high = stats.binom.interval(0.999, n, rate)
    assert low <= len(kept[0]) <= high, len(kept[0])


def test_sampling_by_subject_keeps_a_persons_rows_together(engine: sa.Engine) -> None:
    people = np.repeat(np.arange(500), 4).tolist()  # 4 predictions per customer
    with PredictionLogger(
        engine, pseudonymize=["customer_id"], key=KEY, sample=0.3, sample_by="customer_id"
    ) as logger:
        ids = logger.log_batch({"customer_id": people, "x": list(range(2000))})
        logger.log_labels(ids, [0] * 2000, subjects=people)
        with pytest.raises(MlobsInputError, match=r"sampled by 'customer_id'.*subject"):
            logger.log_labels(ids[:3], [0, 0, 0])
    rows = _rows(engine, "mlobs_prediction_log")
    per_person = pd.Series([r["customer_id"] for r in rows]).value_counts()
    assert set(per_person) == {4}  # all of a person's rows or none
    low, high = stats.binom.interval(0.999, 500, 0.3)
    assert low <= len(per_person) <= high
    labels = {r["prediction_id"] for r in _rows(engine, "mlobs_labels")}
    assert labels == {r["prediction_id"] for r in rows}


# -- bad input --------------------------------------------------------------------------------


def test_no_key_short_key_and_bad_settings_are_clear_errors(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLOBS_PSEUDONYM_KEY", raising=False)
    with pytest.raises(
        SourceError,
        match=r"table mlobs_prediction_log: pseudonymize=\['customer_id'\]: no pseudonym key.*MLOBS_PSEUDONYM_KEY",
    ):
        PredictionLogger(engine, pseudonymize=["customer_id"])
    with pytest.raises(SourceError, match=r"MY_KEY") as short:
        monkeypatch.setenv("MY_KEY", "short-secret")
        PredictionLogger(engine, pseudonymize=["customer_id"], key_env_var="MY_KEY")
    assert "short-secret" not in str(short.value)
    for rate in (0, 1.5, -0.1, "x", True, float("nan")):
        with pytest.raises(MlobsInputError, match=r"table log: sample must be a share in \(0, 1\]"):
            PredictionLogger(engine, table="log", sample=rate)  # type: ignore[arg-type]
    with pytest.raises(MlobsInputError, match=r"column 'email' is both pseudonymized and redacted"):
        PredictionLogger(engine, pseudonymize=["email"], redact=["email"], key=KEY)
    with pytest.raises(MlobsInputError, match=r"column 'score' is the log's own column"):
        PredictionLogger(engine, redact=["score"])
    with pytest.raises(MlobsInputError, match=r"batch_size must be an integer >= 1"):
        PredictionLogger(engine, batch_size=0)
    with pytest.raises(MlobsInputError, match=r"redact_mode must be 'drop' or 'replace'"):
        PredictionLogger(engine, redact_mode="hide")  # type: ignore[arg-type]
    # A key never shows in the logger's repr.
    logger = PredictionLogger(engine, pseudonymize=["customer_id"], key=KEY)
    assert KEY not in repr(logger) and PseudonymKey.from_text(KEY).key_id in repr(logger)


def test_missing_ids_and_wrong_lengths_name_the_table_and_column(engine: sa.Engine) -> None:
    with PredictionLogger(engine, table="log", sample=0.5, sample_by="customer_id") as logger:
        with pytest.raises(
            MlobsInputError, match=r"table log: column 'customer_id' \(sample_by\) has a missing value"
        ):
            logger.log({"customer_id": None, "x": 1})
        with pytest.raises(MlobsInputError, match=r"table log: sample_by column 'customer_id' is not among"):
            logger.log({"x": 1})
        with pytest.raises(MlobsInputError, match=r"table log: column 'x' has 2 values, expected 3"):
            logger.log_batch({"customer_id": [1, 2, 3], "x": [1, 2]})
        with pytest.raises(
            MlobsInputError, match=r"table log: feature 'score' has the name of the log's own column"
        ):
            logger.log({"customer_id": 1, "score": 1})
        with pytest.raises(MlobsInputError, match=r"table log: score must be a number"):
            logger.log({"customer_id": 1}, score="high")  # type: ignore[arg-type]
        with pytest.raises(MlobsInputError, match=r"table mlobs_labels: a prediction_id is missing"):
            logger.log_label(None, 1, subject=1)
        with pytest.raises(MlobsInputError, match=r"table log: predicted_at: expected an ISO 8601"):
            logger.log({"customer_id": 1}, predicted_at=12)  # type: ignore[arg-type]
    assert logger.rows_seen == 0


def test_an_unknown_later_column_is_an_error_naming_it_or_is_added(engine: sa.Engine) -> None:
    with PredictionLogger(engine, table="log") as logger:
        logger.log({"age": 30}, prediction_id="a")
    with PredictionLogger(engine, table="log") as logger:  # a later process: reads the table
        with pytest.raises(
            SourceError,
            match=r"table log has no column 'agee' \(it has prediction_id.*age\).*new_columns='add'",
        ):
            logger.log({"agee": 31}, prediction_id="b")
        logger.log({"age": 32}, prediction_id="c")
    with PredictionLogger(engine, table="log", new_columns="add") as logger:
        logger.log({"age": 33, "tenure": 4}, prediction_id="d")
    rows = {r["prediction_id"]: r for r in _rows(engine, "log")}
    assert sorted(rows) == ["a", "c", "d"] and rows["d"]["tenure"] == 4 and rows["a"]["tenure"] is None


def test_a_first_batch_without_a_columns_values_asks_for_its_type(engine: sa.Engine) -> None:
    logger = PredictionLogger(engine, table="log")
    logger.log({"age": None, "x": 1})
    with pytest.raises(
        SourceError,
        match=r"table log: column 'age' has no value in the first batch.*column_types=\{'age': float\}",
    ):
        logger.flush()
    with PredictionLogger(engine, table="log", column_types={"age": int}) as typed:
        typed.log({"age": None, "x": 1})
        typed.log({"age": 7, "x": 2})
    assert [r["age"] for r in _rows(engine, "log")] == [None, 7]
    mixed = PredictionLogger(engine, table="other")
    mixed.log_batch({"x": [1, "two"]})
    with pytest.raises(SourceError, match=r"table other: column 'x' mixes values of types int, str"):
        mixed.flush()
    with pytest.raises(SourceError, match=r"table log: column_types\['y'\] = 'complex' is not a type"):
        PredictionLogger(engine, table="log", column_types={"y": "complex"})


def test_a_table_of_something_else_is_refused(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE log (id INTEGER, x REAL)"))
    with pytest.raises(SourceError, match=r"table log exists but has no column 'prediction_id'"):
        PredictionLogger(engine, table="log").log({"x": 1.0})


def test_a_duplicate_prediction_id_is_an_error_and_the_batch_is_not_half_written(engine: sa.Engine) -> None:
    with PredictionLogger(engine, table="log") as logger:
        logger.log({"x": 1}, prediction_id=1)
    logger = PredictionLogger(engine, table="log")
    logger.log_batch({"x": [2, 3]}, prediction_ids=[2, 1])
    with pytest.raises(
        SourceError, match=r"table log: writing 2 rows failed, a prediction_id is already in the table"
    ):
        logger.flush()
    assert [r["prediction_id"] for r in _rows(engine, "log")] == ["1"]
    assert logger.flush() == 0  # the failed batch was dropped, not retried forever


def test_a_locked_database_keeps_the_rows_for_the_next_flush(tmp_path: Path) -> None:
    """SQLite busy (another writer holds the lock): SourceUnavailable, nothing lost."""
    path = tmp_path / "busy.db"
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    with PredictionLogger(engine, table="log") as logger:
        logger.log({"x": 1}, prediction_id="a")
    holder = sqlite3.connect(path, timeout=0.1)
    holder.execute("BEGIN EXCLUSIVE")
    logger = PredictionLogger(engine, table="log")
    logger.log_batch({"x": [2, 3]}, prediction_ids=["b", "c"])
    with pytest.raises(SourceUnavailable) as away:
        logger.flush()
    assert "table log" in str(away.value.what)
    holder.rollback()
    holder.close()
    assert logger.flush() == 2
    assert sorted(r["prediction_id"] for r in _rows(engine, "log")) == ["a", "b", "c"]
    engine.dispose()


# -- the performance check reads the log --------------------------------------------------------


def test_the_performance_check_reads_the_logged_predictions_and_labels(tmp_path: Path) -> None:
    """A day of logged predictions and their later labels, judged by PerformanceSpec with the
    layout's defaults: the accuracy and coverage are the ones counted here with numpy."""
    from airflow_mlobs.specs.base import url_connected
    from airflow_mlobs.specs.performance import PerformanceSpec

    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    rng = np.random.default_rng(5)
    n = 2_000
    score = rng.random(n)
    truth = (rng.random(n) < score).astype(int)
    at = [DAY + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 86_400, n))]
    labelled = rng.random(n) < 0.9
    with PredictionLogger(url, pseudonymize=["customer_id"], key=KEY, model_version="v1") as logger:
        ids = logger.log_batch(
            {"customer_id": rng.integers(1, 300, n).tolist(), "age": rng.integers(18, 80, n).tolist()},
            scores=score.tolist(),
            predicted_classes=(score >= 0.5).astype(int).tolist(),
            predicted_at=at,
        )
        chosen = np.flatnonzero(labelled)
        logger.log_labels(
            [ids[i] for i in chosen],
            truth[chosen].tolist(),
            labelled_at=[at[i] + timedelta(days=1) for i in chosen],
        )
    spec = PerformanceSpec(
        conn_id=url,
        **PERFORMANCE_DEFAULTS,
        predicted_column="predicted_class",
        model_version="v1",
        label_delay="2d",
    )
    spec.validate("check")
    result = spec.evaluate(
        window_start=DAY + timedelta(days=2), window_end=DAY + timedelta(days=3), connect=url_connected
    )
    want = float(np.mean((score >= 0.5)[labelled] == truth[labelled].astype(bool)))
    assert result.metrics["metrics"]["accuracy"]["value"] == pytest.approx(want, rel=1e-12)
    coverage = result.metrics["label_coverage"]
    assert coverage == pytest.approx(labelled.mean(), rel=1e-12), result.metrics


# -- the example DAG ------------------------------------------------------------------------------


def test_the_scoring_dag_logs_the_days_customers_pseudonymised(
    tmp_path: Path, airflow_connection: Any
) -> None:
    """dags/model_scoring.py's task on the demo warehouse: one row per active customer of the day,
    the customer ids as pseudonyms under the connection's key, a re-run logging nothing."""
    from airflow.dag_processing.dagbag import DagBag

    from demo.warehouse import ROWS_PER_DAY, build

    url = build(tmp_path / "warehouse.db")
    airflow_connection("mlobs_warehouse", conn_type="sqlite", host=str(tmp_path / "warehouse.db"))
    airflow_connection("mlobs_pseudonym_key", conn_type="generic", password=KEY)
    bag = DagBag(dag_folder=str(ROOT / "dags" / "model_scoring.py"))
    assert bag.import_errors == {}
    score = bag.dags["model_scoring"].task_dict["score_and_log"].python_callable  # type: ignore[attr-defined]
    start = DAY
    assert score(data_interval_start=start, data_interval_end=start + timedelta(days=1)) == ROWS_PER_DAY
    assert score(data_interval_start=start, data_interval_end=start + timedelta(days=1)) == 0  # re-run
    engine = sa.create_engine(url)
    rows = _rows(engine, "mlobs_prediction_log")
    with engine.connect() as conn:
        raw = (
            conn.execute(
                sa.text(
                    "SELECT customer_id FROM customer_activity WHERE event_time >= :s AND event_time < :e"
                ),
                {"s": start.replace(tzinfo=None), "e": (start + timedelta(days=1)).replace(tzinfo=None)},
            )
            .scalars()
            .all()
        )
    engine.dispose()
    key = PseudonymKey.from_text(KEY)
    assert len(rows) == ROWS_PER_DAY
    assert sorted(r["customer_id"] for r in rows) == sorted(pseudonym(c, key) for c in raw)
    assert all(r["model_version"] == "v1" and 0 < r["score"] < 1 for r in rows)
    assert all(r["predicted_class"] == int(r["score"] >= 0.5) for r in rows)
    assert all(is_pseudonym(r["customer_id"]) for r in rows)


def test_the_performance_check_defaults_are_the_recorders_layout() -> None:
    """PerformanceSpec reads the prediction log without table or column arguments."""
    from airflow_mlobs.recorder import PERFORMANCE_DEFAULTS
    from airflow_mlobs.specs.performance import PerformanceSpec

    spec = PerformanceSpec(conn_id="warehouse")
    assert {name: getattr(spec, name) for name in PERFORMANCE_DEFAULTS if name != "model_version_column"} == {
        name: value for name, value in PERFORMANCE_DEFAULTS.items() if name != "model_version_column"
    }
    spec.validate("t")
    # A named class column is not overridden by the assumed score column; other tables are kept.
    named = PerformanceSpec(conn_id="w", predictions_table="log", labels_table="l", predicted_column="cls")
    assert (named.score_column, named.predictions_table, named.labels_table) == (None, "log", "l")
    # File sources get no table names.
    files = PerformanceSpec(predictions_path="p.parquet", labels_path="l.parquet")
    assert (files.predictions_table, files.labels_table) == ("", "")


def test_attributions_are_logged_as_attr_columns_that_the_attribution_check_reads(engine: sa.Engine) -> None:
    from airflow_mlobs.core.types import parse_table_name
    from airflow_mlobs.sources.attribution_sql import AttributionSource, gather_attributions

    with PredictionLogger(engine, model_version="v1") as logger:
        logger.log({"x1": 1.0, "x2": 2.0}, score=0.3, predicted_at=DAY, attributions={"x1": -0.5, "x2": 0.25})
        logger.log_batch(
            {"x1": [3.0, 4.0], "x2": [5.0, 6.0]},
            scores=[0.1, 0.2],
            predicted_at=DAY,
            attributions=pd.DataFrame({"x1": [1.5, None], "x2": [np.float64(-2.0), 0.5]}),
        )
    rows = _rows(engine, "mlobs_prediction_log")
    assert [r["attr__x1"] for r in rows] == [-0.5, 1.5, None]
    assert [r["attr__x2"] for r in rows] == [0.25, -2.0, 0.5]
    src = AttributionSource(table=parse_table_name("mlobs_prediction_log"), timestamp_column="predicted_at")
    current, _, _ = gather_attributions(engine, src, start=DAY, end=DAY + timedelta(days=1))
    assert current.rows == 3
    assert (current.features["x1"].n, current.features["x1"].sum_abs) == (2, 2.0)
    assert current.features["x2"].sum_sq == pytest.approx(0.0625 + 4.0 + 0.25)


def test_attributions_of_redacted_features_are_redacted_and_must_be_numbers(engine: sa.Engine) -> None:
    with PredictionLogger(engine, table="dropped", redact=["income"]) as logger:
        logger.log_batch(
            {"income": [10, 20], "x": [1, 2]}, attributions={"income": [0.5, 0.1], "x": [0.2, 0.3]}
        )
    names = {c["name"] for c in sa.inspect(engine).get_columns("dropped")}
    assert "income" not in names and "attr__income" not in names and "attr__x" in names
    with PredictionLogger(engine, table="replaced", redact=["income"], redact_mode="replace") as logger:
        logger.log_batch(
            {"income": [10, 20], "x": [1, 2]}, attributions={"income": [0.5, None], "x": [0.2, 0.3]}
        )
    assert [r["attr__income"] for r in _rows(engine, "replaced")] == [REDACTED, None]
    with PredictionLogger(engine, table="alone", redact=["attr__x"]) as logger:
        logger.log_batch({"x": [1, 2]}, attributions={"x": [0.2, 0.3]})
    assert [r["x"] for r in _rows(engine, "alone")] == [1, 2]
    assert "attr__x" not in {c["name"] for c in sa.inspect(engine).get_columns("alone")}
    with (
        PredictionLogger(engine, table="bad") as logger,
        pytest.raises(MlobsInputError, match="attribution of 'x'"),
    ):
        logger.log_batch({"x": [1, 2]}, attributions={"x": ["high", 0.3]})
