"""Retention and erasure on PostgreSQL: a prediction log, its labels and the results history's own
tables aged in batches; people erased by raw id and by pseudonym, with an audit record free of
personal data; bad input named. Everything lives in a schema of its own (``h4_retention_*``).
The batched deletes, the history purge and the erasure also run on MySQL/MariaDB when the PyMySQL
driver is installed and a server answers (``MLOBS_TEST_MYSQL_URL``, default root on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_mlobs.connections import pseudonym_key
from airflow_mlobs.core.errors import MlobsInputError, SourceError
from airflow_mlobs.core.privacy import PseudonymKey, pseudonym
from airflow_mlobs.core.retention import retention_cutoff
from airflow_mlobs.erasure import erase
from airflow_mlobs.sources.retention_sql import ErasureTarget, dated_table, delete_before
from airflow_mlobs.store import ERASURES_TABLE, ResultsStore
from tests.conftest import pg_connection_fields
from tests.unit.test_retention import fill_history, history_counts

AS_OF = datetime(2026, 12, 1, tzinfo=UTC)
KEY = PseudonymKey(b"h4-retention-integration-key")
# Raw ids distinctive enough that finding their text anywhere in the audit would mean a leak.
PEOPLE = ["cust-7f3a91", "cust-b20c44", "cust-e91d07", "cust-0a6f58"]


@pytest.fixture
def schema(pg_engine: sa.Engine) -> Iterator[str]:
    name = f"h4_retention_{uuid.uuid4().hex[:10]}"
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    yield name
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))


@pytest.fixture
def store(pg_engine: sa.Engine, schema: str) -> Iterator[ResultsStore]:
    """A results history in the test's schema (its tables are unqualified, found by search_path)."""
    engine = sa.create_engine(pg_engine.url, connect_args={"options": f"-csearch_path={schema}"})
    yield ResultsStore(engine)
    engine.dispose()


def count(engine: sa.Engine, table: str, where: str = "TRUE", **params: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table} WHERE {where}"), params).scalar_one())


def make_log(engine: sa.Engine, schema: str, *, old: int, young: int, pseudonymised: bool = True) -> None:
    """``prediction_log`` (naive ``predicted_at``) and ``churn_labels`` (aware ``labelled_at``).

    ``old`` predictions 100 days and more before AS_OF, ``young`` ones within 10 days, spread over
    PEOPLE in turn; each prediction has a label 2 days later."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {schema}.prediction_log (prediction_id INTEGER PRIMARY KEY, "
                "customer_id TEXT NOT NULL, predicted_at TIMESTAMP WITHOUT TIME ZONE, churn_score REAL)"
            )
        )
        conn.execute(
            sa.text(
                f"CREATE TABLE {schema}.churn_labels (prediction_id INTEGER NOT NULL, churned INTEGER, "
                "labelled_at TIMESTAMP WITH TIME ZONE)"
            )
        )
        rows, labels = [], []
        for i in range(old + young):
            person = PEOPLE[i % len(PEOPLE)]
            at = AS_OF - (timedelta(days=100 + i) if i < old else timedelta(days=1 + i - old, hours=3))
            rows.append(
                {
                    "p": i,
                    "c": pseudonym(person, KEY) if pseudonymised else person,
                    "t": at.replace(tzinfo=None),
                }
            )
            labels.append({"p": i, "t": at + timedelta(days=2)})
        conn.execute(sa.text(f"INSERT INTO {schema}.prediction_log VALUES (:p, :c, :t, 0.5)"), rows)
        conn.execute(sa.text(f"INSERT INTO {schema}.churn_labels VALUES (:p, 1, :t)"), labels)


# --------------------------------------------------------------------------------------------------
# Retention
# --------------------------------------------------------------------------------------------------


def test_retention_of_log_labels_and_history_in_batches(
    pg_engine: sa.Engine, schema: str, store: ResultsStore
) -> None:
    make_log(pg_engine, schema, old=25, young=7)
    fill_history(store)
    cutoff = retention_cutoff(AS_OF, "90d")
    log = dated_table(pg_engine, f"{schema}.prediction_log", "predicted_at")
    labels = dated_table(pg_engine, f"{schema}.churn_labels", "labelled_at")
    assert log.naive and not labels.naive
    # Labels are 2 days after their predictions: the old ones are 98+ days old, all before the cutoff.
    assert delete_before(pg_engine, log, cutoff, batch_size=4, dry_run=True).rows == 25
    assert count(pg_engine, f"{schema}.prediction_log") == 32
    done = delete_before(pg_engine, log, cutoff, batch_size=4)
    assert (done.rows, done.batches) == (25, 7)
    done_labels = delete_before(pg_engine, labels, cutoff, batch_size=4)
    assert (done_labels.rows, done_labels.batches) == (25, 7)
    assert count(pg_engine, f"{schema}.prediction_log") == 7
    assert count(pg_engine, f"{schema}.churn_labels") == 7
    assert (
        count(pg_engine, f"{schema}.prediction_log", "predicted_at < :c", c=cutoff.replace(tzinfo=None)) == 0
    )
    history = store.purge_before(cutoff, batch_size=2)
    assert {d.table: d.rows for d in history} == {
        "mlobs_check_results": 3,
        "mlobs_profiles": 1,
        "mlobs_deliveries": 2,
        "mlobs_alert_state": 1,
    }
    assert history_counts(store) == {
        "mlobs_check_results": 2,
        "mlobs_profiles": 1,
        "mlobs_deliveries": 1,
        "mlobs_alert_state": 2,  # the young one and the open incident
        "mlobs_schema_version": 1,
    }
    # A rerun deletes nothing more.
    assert delete_before(pg_engine, log, cutoff, batch_size=4).rows == 0
    assert delete_before(pg_engine, labels, cutoff, batch_size=4).rows == 0
    assert [d.rows for d in store.purge_before(cutoff, batch_size=2)] == [0, 0, 0, 0]


def test_retention_operator_evaluates_against_connections(
    pg_engine: sa.Engine, schema: str, airflow_connection: Any, tmp_path: Any
) -> None:
    from airflow_mlobs.operators.retention import RetentionOperator

    make_log(pg_engine, schema, old=9, young=3)
    warehouse = airflow_connection("h4_retention_wh", **pg_connection_fields())
    results = airflow_connection(
        "h4_retention_results", conn_type="sqlite", host=str(tmp_path / "results.db")
    )
    ResultsStore(sa.create_engine(f"sqlite:///{tmp_path / 'results.db'}")).save_alert_state(
        "slack", "drift", "x", {"open": False}
    )
    operator = RetentionOperator(
        task_id="housekeeping",
        keep="90d",
        conn_id=warehouse,
        tables=[
            {"table": f"{schema}.prediction_log", "timestamp_column": "predicted_at"},
            (f"{schema}.churn_labels", "labelled_at"),
        ],
        results_conn_id=results,
        batch_size=2,
    )
    context: Any = {"data_interval_start": AS_OF - timedelta(days=1), "data_interval_end": AS_OF}
    operator.count_only = "True"  # as rendered from a template
    dry = operator.evaluate(context)
    assert dry.metrics["rows_would_delete"] == 18 and dry.metrics["rows_deleted"] == 0
    assert [f.metric for f in dry.findings][:2] == ["rows_would_delete"] * 2
    assert count(pg_engine, f"{schema}.prediction_log") == 12
    operator.count_only = False
    result = operator.evaluate(context)
    assert result.check == "retention" and result.status.value == "pass"
    cutoff = (AS_OF - timedelta(days=90)).isoformat()
    assert result.metrics["cutoff"] == cutoff
    assert [(f.subject, f.value, f.threshold) for f in result.findings] == [
        (f"{schema}.prediction_log", 9, cutoff),
        (f"{schema}.churn_labels", 9, cutoff),
        ("mlobs_check_results", 0, cutoff),
        ("mlobs_profiles", 0, cutoff),
        ("mlobs_deliveries", 0, cutoff),
        ("mlobs_alert_state", 0, cutoff),  # stored just now: young
    ]
    again = operator.evaluate(context)
    assert again.metrics["rows_deleted"] == 0 and "deleted 0 row(s)" in again.summary
    # Bad input: a missing column names table and column; nothing of the first table was deleted.
    bad = RetentionOperator(
        task_id="bad",
        keep="1d",
        conn_id=warehouse,
        tables=[(f"{schema}.prediction_log", "predicted_at"), (f"{schema}.churn_labels", "label_time")],
        results_history=False,
    )
    with pytest.raises(SourceError, match=rf"column 'label_time' not found in table {schema}.churn_labels"):
        bad.evaluate(context)
    assert count(pg_engine, f"{schema}.prediction_log") == 3
    missing = RetentionOperator(
        task_id="missing", keep="1d", conn_id=warehouse, tables=[("nope_table", "ts")], results_history=False
    )
    with pytest.raises(SourceError, match="connection 'h4_retention_wh': table nope_table does not exist"):
        missing.evaluate(context)


# --------------------------------------------------------------------------------------------------
# Erasure
# --------------------------------------------------------------------------------------------------


def audit_text(store: ResultsStore) -> str:
    """Every column of every audit row, as text."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {ERASURES_TABLE}")).mappings().all()
    return json.dumps([dict(r) for r in rows], default=str)


def test_erasure_by_raw_id_and_by_pseudonym(pg_engine: sa.Engine, schema: str, store: ResultsStore) -> None:
    make_log(pg_engine, schema, old=6, young=6)  # 3 predictions (and labels) per person
    target = ErasureTarget(
        table=f"{schema}.prediction_log",
        subject_column="customer_id",
        pseudonymized=True,
        labels_table=f"{schema}.churn_labels",
    )
    by_raw = PEOPLE[0]
    by_pseudonym = pseudonym(PEOPLE[2], KEY)
    audit, result = erase(
        [by_raw, by_pseudonym],
        engine=pg_engine,
        target=target,
        store=store,
        key=KEY,
        requested_by="dpo@example.com",
        reason="ticket GDPR-1234",
        dag_id="mlobs_erasure",
        run_id="manual__1",
    )
    assert audit.deleted == {f"{schema}.churn_labels": 6, f"{schema}.prediction_log": 6}
    assert result.metrics["rows_deleted"] == 12 and result.metrics["key_id"] == KEY.key_id
    with pg_engine.connect() as conn:
        left = dict(
            conn.execute(
                sa.text(f"SELECT customer_id, COUNT(*) FROM {schema}.prediction_log GROUP BY customer_id")
            ).all()
        )
        orphans = conn.execute(
            sa.text(
                f"SELECT COUNT(*) FROM {schema}.churn_labels l WHERE NOT EXISTS "
                f"(SELECT 1 FROM {schema}.prediction_log p WHERE p.prediction_id = l.prediction_id)"
            )
        ).scalar_one()
    assert left == {pseudonym(PEOPLE[1], KEY): 3, pseudonym(PEOPLE[3], KEY): 3}
    assert count(pg_engine, f"{schema}.churn_labels") == 6 and orphans == 0
    # The audit: who, why, how many; no id and no pseudonym in any column, nor in the result.
    [stored] = store.erasures()
    assert (stored.requested_by, stored.reason, stored.ids_requested, stored.key_id) == (
        "dpo@example.com",
        "ticket GDPR-1234",
        2,
        KEY.key_id,
    )
    assert (stored.dag_id, stored.run_id, stored.rows_deleted) == ("mlobs_erasure", "manual__1", 12)
    text = audit_text(store) + result.to_json()
    for person in PEOPLE:
        assert person not in text and pseudonym(person, KEY) not in text
    # A rerun deletes 0 and records that.
    again, _ = erase([by_raw, by_pseudonym], engine=pg_engine, target=target, store=store, key=KEY)
    assert again.rows_deleted == 0 and again.deleted == {
        f"{schema}.churn_labels": 0,
        f"{schema}.prediction_log": 0,
    }
    assert [a.rows_deleted for a in store.erasures()] == [0, 12]


def test_erasure_of_raw_ids_with_labels_by_their_own_column(
    pg_engine: sa.Engine, schema: str, store: ResultsStore
) -> None:
    with pg_engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {schema}.preds (id BIGINT PRIMARY KEY, customer BIGINT)"))
        conn.execute(sa.text(f"CREATE TABLE {schema}.outcomes (customer BIGINT, churned INTEGER)"))
        conn.execute(
            sa.text(f"INSERT INTO {schema}.preds VALUES (:i, :c)"),
            [{"i": i, "c": 900_000 + i % 5} for i in range(20)],
        )
        conn.execute(
            sa.text(f"INSERT INTO {schema}.outcomes VALUES (:c, 1)"),
            [{"c": 900_000 + i % 5} for i in range(10)],
        )
    target = ErasureTarget(
        table=f"{schema}.preds",
        subject_column="customer",
        labels_table=f"{schema}.outcomes",
        labels_subject_column="customer",
    )
    # Ids as text (from a CLI or dag_run.conf) match the BIGINT column; the key is never asked for.
    audit, _ = erase(["900001", 900_004], engine=pg_engine, target=target, store=store, key=None)
    assert audit.deleted == {f"{schema}.outcomes": 4, f"{schema}.preds": 8} and audit.key_id is None
    assert count(pg_engine, f"{schema}.preds", "customer IN (900001, 900004)") == 0
    assert count(pg_engine, f"{schema}.preds") == 12 and count(pg_engine, f"{schema}.outcomes") == 6
    assert "900001" not in audit_text(store) and "900004" not in audit_text(store)
    dry, _ = erase(["900002"], engine=pg_engine, target=target, store=store, dry_run=True)
    assert dry.deleted == {f"{schema}.outcomes": 2, f"{schema}.preds": 4} and dry.dry_run
    assert count(pg_engine, f"{schema}.preds") == 12


def test_erasure_bad_input_names_it_and_changes_nothing(
    pg_engine: sa.Engine, schema: str, store: ResultsStore
) -> None:
    make_log(pg_engine, schema, old=4, young=0)
    log, labels = f"{schema}.prediction_log", f"{schema}.churn_labels"

    def attempt(target: ErasureTarget, key: Any = KEY) -> None:
        erase([PEOPLE[0]], engine=pg_engine, target=target, store=store, key=key)

    with pytest.raises(SourceError, match=f"table {schema}.no_log does not exist"):
        attempt(ErasureTarget(table=f"{schema}.no_log", subject_column="customer_id", pseudonymized=True))
    with pytest.raises(SourceError, match=f"subject column 'customer' not found in table {log}"):
        attempt(ErasureTarget(table=log, subject_column="customer", pseudonymized=True))
    with pytest.raises(SourceError, match=f"table {schema}.no_labels does not exist"):
        attempt(
            ErasureTarget(
                table=log,
                subject_column="customer_id",
                pseudonymized=True,
                labels_table=f"{schema}.no_labels",
            )
        )
    with pytest.raises(SourceError, match=f"labels prediction id column 'pred' not found in table {labels}"):
        attempt(
            ErasureTarget(
                table=log,
                subject_column="customer_id",
                pseudonymized=True,
                labels_table=labels,
                labels_prediction_column="pred",
            )
        )
    with pytest.raises(SourceError, match=f"prediction id column 'pid' not found in table {log}"):
        attempt(
            ErasureTarget(
                table=log,
                subject_column="customer_id",
                pseudonymized=True,
                labels_table=labels,
                prediction_id_column="pid",
            )
        )
    # A pseudonymised column and a raw id, but no key anywhere: the error says where it was looked for.
    with pytest.raises(
        SourceError, match="no pseudonym key: set the H4_RETENTION_NO_KEY environment variable"
    ):
        attempt(
            ErasureTarget(table=log, subject_column="customer_id", pseudonymized=True, labels_table=labels),
            key=lambda: pseudonym_key(env_var="H4_RETENTION_NO_KEY"),
        )
    # A pseudonym given for a column of raw ids cannot match anything: refused, naming the column.
    with pytest.raises(
        MlobsInputError, match=f"id #1 is a pseudonym but column '{log}.customer_id' holds raw ids"
    ):
        erase(
            [pseudonym(PEOPLE[0], KEY)],
            engine=pg_engine,
            target=ErasureTarget(table=log, subject_column="customer_id"),
            store=store,
        )
    assert count(pg_engine, log) == 4 and count(pg_engine, labels) == 4
    assert store.erasures() == []


# --------------------------------------------------------------------------------------------------
# The same SQL on MySQL/MariaDB (where a driver and a server are at hand)
# --------------------------------------------------------------------------------------------------

MYSQL_URL = os.environ.get("MLOBS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")


@pytest.fixture
def mysql_engine() -> Iterator[sa.Engine]:
    """An engine on a fresh MySQL/MariaDB database (dropped afterwards); skips without the PyMySQL
    driver or a server."""
    pytest.importorskip("pymysql", reason="no MySQL driver (pip install pymysql) for the MariaDB run")
    server = sa.create_engine(MYSQL_URL)
    name = f"h4_retention_{uuid.uuid4().hex[:10]}"
    try:
        with server.begin() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError as exc:
        server.dispose()
        pytest.skip(f"no MySQL/MariaDB server at {MYSQL_URL}: {str(exc).splitlines()[0]}")
    engine = sa.create_engine(MYSQL_URL + name)
    yield engine
    engine.dispose()
    with server.begin() as conn:
        conn.execute(sa.text(f"DROP DATABASE {name}"))
    server.dispose()


def test_retention_and_erasure_on_mariadb(mysql_engine: sa.Engine) -> None:
    engine = mysql_engine
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE prediction_log (prediction_id INTEGER PRIMARY KEY, customer_id VARCHAR(64), "
                "predicted_at DATETIME(6))"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TABLE churn_labels (prediction_id INTEGER, churned INTEGER, labelled_at DATETIME)"
            )
        )
        for i in range(30):  # 20 old, 10 young; person i % 3
            at = (AS_OF - (timedelta(days=100 + i) if i < 20 else timedelta(days=i - 19))).replace(
                tzinfo=None
            )
            conn.execute(
                sa.text("INSERT INTO prediction_log VALUES (:p, :c, :t)"),
                {"p": i, "c": pseudonym(PEOPLE[i % 3], KEY), "t": at},
            )
            conn.execute(
                sa.text("INSERT INTO churn_labels VALUES (:p, 1, :t)"), {"p": i, "t": at + timedelta(days=2)}
            )
    cutoff = retention_cutoff(AS_OF, "90d")
    for table, column in (("prediction_log", "predicted_at"), ("churn_labels", "labelled_at")):
        done = delete_before(engine, dated_table(engine, table, column), cutoff, batch_size=3)
        assert (done.rows, done.batches) == (20, 7)
        assert delete_before(engine, dated_table(engine, table, column), cutoff, batch_size=3).rows == 0
        assert count(engine, table) == 10
    store = ResultsStore(engine)
    fill_history(store)
    assert [d.rows for d in store.purge_before(cutoff, batch_size=2)] == [3, 1, 2, 1]
    assert history_counts(store)["mlobs_alert_state"] == 2
    target = ErasureTarget(
        table="prediction_log", subject_column="customer_id", pseudonymized=True, labels_table="churn_labels"
    )
    audit, _ = erase([PEOPLE[1]], engine=engine, target=target, store=store, key=KEY)
    assert audit.deleted == {"churn_labels": 3, "prediction_log": 3}  # ids 22, 25, 28 were left
    again, _ = erase([PEOPLE[1]], engine=engine, target=target, store=store, key=KEY)
    assert again.rows_deleted == 0
    assert PEOPLE[1] not in audit_text(store) and pseudonym(PEOPLE[1], KEY) not in audit_text(store)
