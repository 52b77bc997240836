"""RetentionOperator and ErasureOperator in one real Airflow run (``airflow dags test``) on a SQLite
warehouse: rows deleted, results stored, the audit record written, bad input a failed task."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.privacy import PseudonymKey, pseudonym
from airflow_mlobs.store import ResultsStore
from tests.e2e.airflow_runner import run_dag

pytestmark = pytest.mark.e2e
DAY = "2026-11-26"  # the run's data interval is [2026-11-25, 2026-11-26): cutoff 30 days before its end
KEY = PseudonymKey(b"h4-retention-e2e-key-000000")
PEOPLE = ["cust-51d0aa", "cust-8e22f1", "cust-c93b7e"]


@pytest.fixture
def warehouse_db(tmp_path: Path) -> Path:
    """Each person: 2 predictions on 2026-10-01 (old) and 2 on 2026-11-20 (young), each labelled."""
    path = tmp_path / "wh.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE prediction_log (prediction_id INTEGER, customer_id TEXT, predicted_at TIMESTAMP)"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TABLE churn_labels (prediction_id INTEGER, churned INTEGER, labelled_at TIMESTAMP)"
            )
        )
        pid = 0
        for person in PEOPLE:
            for day in ("2026-10-01", "2026-10-01", "2026-11-20", "2026-11-20"):
                pid += 1
                conn.execute(
                    sa.text("INSERT INTO prediction_log VALUES (:p, :c, :t)"),
                    {"p": pid, "c": pseudonym(person, KEY), "t": f"{day} 12:00:00.000000"},
                )
                conn.execute(
                    sa.text("INSERT INTO churn_labels VALUES (:p, 0, :t)"),
                    {"p": pid, "t": f"{day} 18:00:00.000000"},
                )
    engine.dispose()
    return path


DAG_FILE = """
from datetime import UTC, datetime
from airflow.sdk import DAG, CronDataIntervalTimetable
from airflow_mlobs.operators.retention import ErasureOperator, RetentionOperator

with DAG(
    "mlobs_retention_e2e",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    catchup=False,
    params={"ids": ["PERSON_0", "PSEUDONYM_1"]},
) as dag:
    retention = RetentionOperator(
        task_id="retention",
        keep="30d",
        conn_id="wh",
        tables=[("prediction_log", "predicted_at"), {"table": "churn_labels", "timestamp_column": "labelled_at"}],
        batch_size=2,
    )
    erase = ErasureOperator(
        task_id="erase",
        subject_ids="{{ params.ids | join(',') }}",
        conn_id="wh",
        table="prediction_log",
        subject_column="customer_id",
        pseudonymized=True,
        labels_table="churn_labels",
        reason="ticket DPO-{{ ds_nodash }}",
    )
    ErasureOperator(
        task_id="erase_bad_column",
        subject_ids=["x"],
        conn_id="wh",
        table="prediction_log",
        subject_column="customer",
    )
    retention >> erase
"""


def test_retention_and_erasure_in_a_dag_run(airflow_db: Path, tmp_path: Path, warehouse_db: Path) -> None:
    dags = tmp_path / "dags"
    dags.mkdir()
    body = DAG_FILE.replace("PERSON_0", PEOPLE[0]).replace("PSEUDONYM_1", pseudonym(PEOPLE[1], KEY))
    (dags / "retention_e2e.py").write_text(textwrap.dedent(body))
    env = {
        "AIRFLOW_CONN_WH": json.dumps({"conn_type": "sqlite", "host": str(warehouse_db)}),
        "MLOBS_PSEUDONYM_KEY": KEY.secret.decode(),
    }
    outcome = run_dag(airflow_db, dags, "mlobs_retention_e2e", DAY, env)
    assert outcome.states == {"retention": "success", "erase": "success", "erase_bad_column": "failed"}, (
        outcome.output[-4000:]
    )
    retention = outcome.xcoms["retention"]
    assert retention["check"] == "retention" and retention["status"] == "pass"
    assert retention["metrics"]["cutoff"] == "2026-10-27T00:00:00+00:00"
    assert retention["metrics"]["tables"]["prediction_log"] == 6
    assert retention["metrics"]["tables"]["churn_labels"] == 6
    erase = outcome.xcoms["erase"]
    assert erase["check"] == "erasure" and erase["metrics"]["tables"] == {
        "churn_labels": 4,
        "prediction_log": 4,
    }
    engine = sa.create_engine(f"sqlite:///{warehouse_db}")
    with engine.connect() as conn:
        left = dict(
            conn.execute(sa.text("SELECT customer_id, COUNT(*) FROM prediction_log GROUP BY 1")).all()
        )
        assert conn.execute(sa.text("SELECT COUNT(*) FROM churn_labels")).scalar_one() == 2
    assert left == {pseudonym(PEOPLE[2], KEY): 2}
    store = ResultsStore(sa.create_engine(f"sqlite:///{airflow_db / 'mlobs_results.db'}"))
    stored = {s.run.task_id: s.result for s in store.history(dag_id="mlobs_retention_e2e")}
    assert stored["retention"].status.value == "pass" and stored["erase"].status.value == "pass"
    assert stored["erase_bad_column"].status.value == "error"
    assert "subject column 'customer' not found in table prediction_log" in stored["erase_bad_column"].summary
    [audit] = [a for a in store.erasures() if a.dag_id == "mlobs_retention_e2e"]
    assert (audit.ids_requested, audit.rows_deleted, audit.key_id) == (2, 8, KEY.key_id)
    assert audit.reason == "ticket DPO-20261126" and audit.task_id == "erase" and audit.run_id
    assert audit.requested_by
    for person in PEOPLE:
        assert person not in outcome.output and pseudonym(person, KEY) not in json.dumps(erase)
    # The rendered ids Airflow stores (the "Rendered Template" view) are masked.
    meta = sa.create_engine(f"sqlite:///{airflow_db / 'airflow.db'}")
    with meta.connect() as conn:
        rendered = conn.execute(
            sa.text(
                "SELECT rendered_fields FROM rendered_task_instance_fields "
                "WHERE dag_id = 'mlobs_retention_e2e' AND task_id = 'erase'"
            )
        ).all()
    assert rendered and all("***" in str(r[0]) for r in rendered)
    assert not any(PEOPLE[0] in str(r[0]) or pseudonym(PEOPLE[1], KEY) in str(r[0]) for r in rendered)
