"""Retention and erasure: the pure definitions, the batched deletes and the history purge on SQLite,
and ``python -m airflow_mlobs erase`` run as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_mlobs.core.errors import MlobsInputError, SourceError
from airflow_mlobs.core.privacy import PseudonymKey, pseudonym
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.core.retention import (
    ErasureAudit,
    RetentionTarget,
    TableDeletion,
    as_target,
    clean_ids,
    erasure_result,
    match_values,
    parse_keep,
    retention_cutoff,
    retention_result,
)
from airflow_mlobs.core.types import LogicalType
from airflow_mlobs.sources.retention_sql import dated_table, delete_before
from airflow_mlobs.store import ERASURES_TABLE, Delivery, ResultsStore, RunKey

KEY = PseudonymKey(b"unit-test-key-0123456789")
AS_OF = datetime(2026, 12, 1, tzinfo=UTC)

# --------------------------------------------------------------------------------------------------
# Pure parts
# --------------------------------------------------------------------------------------------------


def test_cutoff_is_keep_back_from_as_of() -> None:
    assert retention_cutoff(AS_OF, "90d") == datetime(2026, 9, 2, tzinfo=UTC)
    assert retention_cutoff(AS_OF, timedelta(hours=6)) == datetime(2026, 11, 30, 18, tzinfo=UTC)


@pytest.mark.parametrize("keep", ["0d", 0, "ninety days", -5, True])
def test_bad_keep_names_keep(keep: object) -> None:
    with pytest.raises(MlobsInputError, match="keep"):
        parse_keep(keep)  # type: ignore[arg-type]


def test_naive_as_of_is_refused() -> None:
    with pytest.raises(MlobsInputError, match="time zone"):
        retention_cutoff(datetime(2026, 12, 1), "1d")


def test_targets_from_dicts_and_pairs() -> None:
    assert as_target({"table": "s.t", "timestamp_column": "ts"}) == RetentionTarget("s.t", "ts")
    assert as_target(("t", "ts")) == RetentionTarget("t", "ts")
    with pytest.raises(MlobsInputError, match=r"table prediction_log.*timestamp_column"):
        as_target({"table": "prediction_log"})
    with pytest.raises(MlobsInputError, match=r"unknown keys \['column'\]"):
        as_target({"table": "t", "column": "ts"})
    with pytest.raises(MlobsInputError, match="pair"):
        as_target("t")  # type: ignore[arg-type]


def test_clean_ids_dedupes_by_canonical_text_and_splits_text() -> None:
    assert clean_ids([42, "42", 42.0, " 7 ", None, ""]) == [42, " 7 "]
    assert clean_ids("1, 2\n3 2") == ["1", "2", "3"]
    # A list rendered by a template without | join.
    assert clean_ids("['cust a', 'b', 7]") == ["cust a", "b", 7]
    assert clean_ids("[1, 2") == ["[1", "2"]  # not a list literal: split as text
    with pytest.raises(MlobsInputError, match="no subject ids"):
        clean_ids([])
    with pytest.raises(MlobsInputError, match="no subject ids"):
        clean_ids("  ,  ")


def test_match_values_pseudonymises_raw_ids_and_keeps_pseudonyms() -> None:
    given = pseudonym(9, KEY)
    values = match_values(["42", given], column="customer_id", pseudonymized=True, key=KEY)
    assert values == [pseudonym(42, KEY), given]
    # The key is not needed when every id is already a pseudonym.
    assert match_values([given], column="customer_id", pseudonymized=True, key=None) == [given]


def test_match_values_errors_name_the_column_never_the_id() -> None:
    with pytest.raises(MlobsInputError, match=r"'customer_id' is pseudonymised.*key") as missing:
        match_values(["secret-id-1"], column="customer_id", pseudonymized=True, key=None)
    assert "secret-id-1" not in str(missing.value)
    given = pseudonym("secret-id-2", KEY)
    with pytest.raises(MlobsInputError, match="id #1 is a pseudonym but column 'customer_id'") as raw:
        match_values([given], column="customer_id", pseudonymized=False, key=KEY)
    assert given not in str(raw.value)
    with pytest.raises(MlobsInputError, match=r"id #2 is not an integer.*'customer_id'") as typed:
        match_values(
            ["5", "x-secret"],
            column="customer_id",
            pseudonymized=False,
            key=None,
            logical_type=LogicalType.INTEGER,
        )
    assert "x-secret" not in str(typed.value)


def test_match_values_reads_ids_as_the_column_type() -> None:
    assert match_values(
        ["42", 42.0], column="c", pseudonymized=False, key=None, logical_type=LogicalType.INTEGER
    ) == [42]
    assert match_values([42], column="c", pseudonymized=False, key=None) == ["42"]


def test_retention_result_one_finding_per_table() -> None:
    cutoff = retention_cutoff(AS_OF, "30d")
    result = retention_result(
        "retention:wh",
        keep=parse_keep("30d"),
        as_of=AS_OF,
        cutoff=cutoff,
        deletions=[
            TableDeletion("prediction_log", "predicted_at", 12, 3),
            TableDeletion("churn_labels", "labelled_at", 0, 0),
        ],
    )
    assert result.status is Status.PASS and result.check == "retention"
    assert [(f.subject, f.value, f.threshold) for f in result.findings] == [
        ("prediction_log", 12, cutoff.isoformat()),
        ("churn_labels", 0, cutoff.isoformat()),
    ]
    assert result.metrics["rows_deleted"] == 12 and result.metrics["tables"] == {
        "prediction_log": 12,
        "churn_labels": 0,
    }
    assert "deleted 12 row(s)" in result.summary
    dry = retention_result(
        "r",
        keep=parse_keep("30d"),
        as_of=AS_OF,
        cutoff=cutoff,
        deletions=[TableDeletion("t", "ts", 4)],
        dry_run=True,
    )
    assert dry.metrics["rows_deleted"] == 0 and dry.metrics["rows_would_delete"] == 4
    assert "would delete 4" in dry.summary and "dry run" in dry.summary
    assert CheckResult.from_json(result.to_json()) == result


def test_erasure_result_holds_counts_only() -> None:
    audit = ErasureAudit(
        erased_at=AS_OF, ids_requested=2, deleted={"churn_labels": 3, "prediction_log": 5}, key_id=KEY.key_id
    )
    result = erasure_result("wh:prediction_log", audit, {"prediction_log": "customer_id"})
    assert result.metrics["rows_deleted"] == 8 and result.metrics["key_id"] == KEY.key_id
    assert [f.value for f in result.findings] == [3, 5]


# --------------------------------------------------------------------------------------------------
# Batched deletes on SQLite
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> sa.Engine:
    return sa.create_engine(f"sqlite:///{tmp_path / 'wh.db'}")


def _log_table(
    engine: sa.Engine, days: list[float], *, kind: sa.types.TypeEngine[object] | None = None
) -> None:
    """``events(id, ts)``: one row per entry of ``days`` (days before AS_OF; naive UTC)."""
    meta = sa.MetaData()
    table = sa.Table(
        "events",
        meta,
        sa.Column("id", sa.Integer),
        sa.Column("ts", kind or sa.DateTime),
        sa.Column("note", sa.String),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        rows = []
        for i, d in enumerate(days):
            moment = (AS_OF - timedelta(days=d)).replace(tzinfo=None)
            rows.append({"id": i, "ts": moment.date() if isinstance(kind, sa.Date) else moment, "note": "x"})
        conn.execute(table.insert(), rows)


def _count(engine: sa.Engine, table: str = "events") -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def test_batches_smaller_than_the_rows_and_rerun_deletes_nothing(engine: sa.Engine) -> None:
    _log_table(engine, [100 + i for i in range(10)] + [10, 20, 30, 89.9, 0])
    target = dated_table(engine, "events", "ts")
    cutoff = retention_cutoff(AS_OF, "90d")
    assert delete_before(engine, target, cutoff, batch_size=3, dry_run=True).rows == 10
    assert _count(engine) == 15
    done = delete_before(engine, target, cutoff, batch_size=3)
    assert (done.rows, done.batches) == (10, 4)  # 3 + 3 + 3 + 1
    assert _count(engine) == 5
    again = delete_before(engine, target, cutoff, batch_size=3)
    assert (again.rows, again.batches) == (0, 0)
    assert _count(engine) == 5


def test_ties_at_a_batch_boundary_go_in_that_batch(engine: sa.Engine) -> None:
    _log_table(engine, [200, 200, 200, 200, 150, 1])
    done = delete_before(
        engine, dated_table(engine, "events", "ts"), retention_cutoff(AS_OF, "90d"), batch_size=2
    )
    assert (done.rows, done.batches) == (5, 2)
    assert _count(engine) == 1


def test_row_exactly_at_the_cutoff_is_kept(engine: sa.Engine) -> None:
    _log_table(engine, [90, 90.0001])
    delete_before(engine, dated_table(engine, "events", "ts"), retention_cutoff(AS_OF, "90d"), batch_size=10)
    assert _count(engine) == 1


def test_naive_column_read_in_its_zone(engine: sa.Engine) -> None:
    # Stored as naive UTC. Read as Asia/Tokyo wall-clock time (UTC+9) those rows are 9 hours older:
    # the row 89.7 days old (89 days 16.8 h) becomes 90 days 1.8 h old and goes.
    _log_table(engine, [89.7, 89.2])
    target = dated_table(engine, "events", "ts", "Asia/Tokyo")
    assert delete_before(engine, target, retention_cutoff(AS_OF, "90d"), batch_size=10).rows == 1
    assert _count(engine) == 1


def test_date_column(engine: sa.Engine) -> None:
    _log_table(engine, [91, 90, 89], kind=sa.Date())
    target = dated_table(engine, "events", "ts")
    assert target.bound(retention_cutoff(AS_OF, "90d")) == date(2026, 9, 2)
    assert delete_before(engine, target, retention_cutoff(AS_OF, "90d"), batch_size=1).rows == 1
    assert _count(engine) == 2


def test_bad_targets_name_table_and_column(engine: sa.Engine) -> None:
    _log_table(engine, [1])
    with pytest.raises(SourceError, match="table nope does not exist"):
        dated_table(engine, "nope", "ts")
    with pytest.raises(
        SourceError, match="timestamp column 'when' not found in table events; it has: id, note, ts"
    ):
        dated_table(engine, "events", "when")
    with pytest.raises(SourceError, match=r"column 'note' of table events is .*not a timestamp"):
        dated_table(engine, "events", "note")
    with pytest.raises(SourceError, match="table events: timestamp_timezone: unknown time zone 'Mars/Base'"):
        dated_table(engine, "events", "ts", "Mars/Base")
    with pytest.raises(MlobsInputError, match="batch_size must be a positive integer, got 0"):
        delete_before(engine, dated_table(engine, "events", "ts"), AS_OF, batch_size=0)


# --------------------------------------------------------------------------------------------------
# The results history's own tables
# --------------------------------------------------------------------------------------------------


def fill_history(store: ResultsStore) -> None:
    """On each side of a 90-day cutoff from AS_OF: results (with and without a window), profiles,
    deliveries, closed and open alert states. Old: 3 results, 1 profile, 2 deliveries, 2 alert
    states of which 1 is open. Young: 2 results, 1 profile, 1 delivery, 1 alert state."""
    from airflow_mlobs.core.profile import Profile

    def result(days: float | None, name: str) -> CheckResult:
        end = None if days is None else AS_OF - timedelta(days=days)
        return CheckResult(
            check="freshness",
            dataset=name,
            status=Status.PASS,
            summary="ok",
            window_start=end and end - timedelta(days=1),
            window_end=end,
        )

    for days, name in ((200, "a"), (120, "b"), (None, "c"), (30, "d"), (None, "e")):
        store.save(result(days, name), RunKey(dag_id="dag", task_id=name, run_id=f"run_{name}"))
    for days, name in ((150, "p_old"), (1, "p_new")):
        end = AS_OF - timedelta(days=days)
        store.save_profile(
            name,
            "base",
            Profile(
                row_count=3, columns={}, edges_key="e", window_start=end - timedelta(days=1), window_end=end
            ),
        )
    old = result(200, "a")
    for _ in range(2):
        store.record_delivery(
            old, RunKey(dag_id="dag", task_id="a", run_id="run_a"), Delivery("slack", "alert", True, 1)
        )
    store.record_delivery(
        result(30, "d"),
        RunKey(dag_id="dag", task_id="d", run_id="run_d"),
        Delivery("slack", "alert", True, 1),
    )
    store.save_alert_state("slack", "freshness", "closed_old", {"open": False})
    store.save_alert_state("slack", "freshness", "open_old", {"open": True, "fingerprint": "f"})
    store.save_alert_state("slack", "freshness", "young", {"open": False})
    long_ago = AS_OF - timedelta(days=300)
    with store.engine.begin() as conn:
        # "c" was stored long ago; "e" (no window either) just now.
        conn.execute(
            sa.text("UPDATE mlobs_check_results SET recorded_at = :t WHERE dataset = 'c'"), {"t": long_ago}
        )
        conn.execute(
            sa.text("UPDATE mlobs_check_results SET recorded_at = :t WHERE dataset <> 'c'"), {"t": AS_OF}
        )
        conn.execute(sa.text("UPDATE mlobs_profiles SET recorded_at = :t"), {"t": AS_OF})
        conn.execute(
            sa.text("UPDATE mlobs_deliveries SET recorded_at = :t WHERE result_key LIKE 'dag|a|%'"),
            {"t": long_ago},
        )
        conn.execute(
            sa.text("UPDATE mlobs_deliveries SET recorded_at = :t WHERE result_key LIKE 'dag|d|%'"),
            {"t": AS_OF},
        )
        conn.execute(
            sa.text("UPDATE mlobs_alert_state SET updated_at = :t WHERE dataset <> 'young'"), {"t": long_ago}
        )
        conn.execute(
            sa.text("UPDATE mlobs_alert_state SET updated_at = :t WHERE dataset = 'young'"), {"t": AS_OF}
        )


def history_counts(store: ResultsStore) -> dict[str, int]:
    tables = (
        "mlobs_check_results",
        "mlobs_profiles",
        "mlobs_deliveries",
        "mlobs_alert_state",
        "mlobs_schema_version",
    )
    with store.engine.connect() as conn:
        return {t: int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one()) for t in tables}


def test_history_purge_ages_each_table_and_keeps_open_incidents(engine: sa.Engine) -> None:
    store = ResultsStore(engine)
    fill_history(store)
    cutoff = retention_cutoff(AS_OF, "90d")
    dry = store.purge_before(cutoff, batch_size=2, dry_run=True)
    assert {d.table: d.rows for d in dry} == {
        "mlobs_check_results": 3,
        "mlobs_profiles": 1,
        "mlobs_deliveries": 2,
        "mlobs_alert_state": 1,
    }
    done = store.purge_before(cutoff, batch_size=2)
    assert [d.rows for d in done] == [3, 1, 2, 1]
    assert history_counts(store) == {
        "mlobs_check_results": 2,
        "mlobs_profiles": 1,
        "mlobs_deliveries": 1,
        "mlobs_alert_state": 2,
        "mlobs_schema_version": 1,
    }
    assert sorted(r.result.dataset for r in store.history()) == ["d", "e"]
    assert store.alert_state("slack", "freshness", "open_old") == {"open": True, "fingerprint": "f"}
    assert [d.rows for d in store.purge_before(cutoff, batch_size=2)] == [0, 0, 0, 0]


def test_erasure_audit_round_trip_and_table_created(engine: sa.Engine) -> None:
    store = ResultsStore(engine)
    audit = ErasureAudit(
        erased_at=AS_OF,
        ids_requested=3,
        deleted={"t": 4},
        requested_by="dpo",
        reason="TICKET-1",
        key_id="abc",
    )
    store.record_erasure(audit)
    assert ERASURES_TABLE in sa.inspect(engine).get_table_names()
    assert store.erasures() == [audit]


# --------------------------------------------------------------------------------------------------
# The command line, on SQLite files
# --------------------------------------------------------------------------------------------------


def run_cli(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_mlobs", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        input=stdin,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), **(env or {})},
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> tuple[str, str]:
    """(warehouse URL, results URL): a pseudonymised prediction log and labels of customers 1-4
    (customer n has n predictions, each labelled), and an empty results history."""
    url = f"sqlite:///{tmp_path / 'wh.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE prediction_log (prediction_id INTEGER PRIMARY KEY, customer_id TEXT, predicted_at TIMESTAMP)"
            )
        )
        conn.execute(
            sa.text(
                "CREATE TABLE churn_labels (prediction_id INTEGER, churned INTEGER, labelled_at TIMESTAMP)"
            )
        )
        pid = 0
        for customer in range(1, 5):
            for _ in range(customer):
                pid += 1
                conn.execute(
                    sa.text("INSERT INTO prediction_log VALUES (:p, :c, '2026-11-01 00:00:00')"),
                    {"p": pid, "c": pseudonym(customer, KEY)},
                )
                conn.execute(
                    sa.text("INSERT INTO churn_labels VALUES (:p, 1, '2026-11-03 00:00:00')"), {"p": pid}
                )
    engine.dispose()
    return url, f"sqlite:///{tmp_path / 'results.db'}"


def _erase_args(urls: tuple[str, str], *extra: str) -> list[str]:
    return [
        "erase", "--url", urls[0], "--results-url", urls[1], "--table", "prediction_log", "--column", "customer_id",
        "--pseudonymized", "--labels-table", "churn_labels", "--reason", "GDPR-77", *extra,
    ]  # fmt: skip


def test_cli_erases_raw_and_pseudonymised_ids_and_audits(warehouse: tuple[str, str]) -> None:
    env = {"MLOBS_PSEUDONYM_KEY": KEY.secret.decode()}
    # Customer 2 by raw id, customer 3 by pseudonym from stdin.
    done = run_cli(*_erase_args(warehouse, "--ids-file", "-", "2"), stdin=pseudonym(3, KEY) + "\n", env=env)
    assert done.returncode == 0, done.stderr
    assert "erasure of 2 subject id(s): deleted 10 row(s) from 2 table(s)" in done.stdout
    assert f"pseudonym key: {KEY.key_id}" in done.stdout
    assert pseudonym(3, KEY) not in done.stdout + done.stderr
    engine = sa.create_engine(warehouse[0])
    with engine.connect() as conn:
        left = conn.execute(
            sa.text("SELECT customer_id, COUNT(*) FROM prediction_log GROUP BY customer_id")
        ).all()
        labels = conn.execute(sa.text("SELECT COUNT(*) FROM churn_labels")).scalar_one()
    assert dict(left) == {pseudonym(1, KEY): 1, pseudonym(4, KEY): 4}
    assert labels == 5
    again = run_cli(*_erase_args(warehouse, "2", pseudonym(3, KEY)), env=env)
    assert again.returncode == 0, again.stderr
    assert "deleted 0 row(s)" in again.stdout
    audits = ResultsStore(sa.create_engine(warehouse[1])).erasures()
    assert [a.rows_deleted for a in audits] == [0, 10]
    assert audits[1].deleted == {"churn_labels": 5, "prediction_log": 5}
    assert audits[1].reason == "GDPR-77" and audits[1].key_id == KEY.key_id and audits[1].ids_requested == 2
    with sa.create_engine(warehouse[1]).connect() as conn:
        stored = json.dumps(
            [list(r) for r in conn.execute(sa.text(f"SELECT * FROM {ERASURES_TABLE}")).all()], default=str
        )
    assert pseudonym(2, KEY) not in stored and pseudonym(3, KEY) not in stored


def test_cli_bad_input_exits_2_naming_it(warehouse: tuple[str, str], tmp_path: Path) -> None:
    no_key = {"MLOBS_PSEUDONYM_KEY": ""}
    done = run_cli(*_erase_args(warehouse, "2"), env=no_key)
    assert done.returncode == 2
    assert "no pseudonym key" in done.stderr and "MLOBS_PSEUDONYM_KEY" in done.stderr
    wrong = run_cli(
        "erase",
        "--url",
        warehouse[0],
        "--results-url",
        warehouse[1],
        "--table",
        "prediction_log",
        "--column",
        "cust",
        "2",
    )
    assert wrong.returncode == 2
    assert "subject column 'cust' not found in table prediction_log" in wrong.stderr
    missing = run_cli(*_erase_args(warehouse, "--ids-file", str(tmp_path / "none.txt")), env=no_key)
    assert missing.returncode == 2 and "--ids-file" in missing.stderr
    nobody = run_cli(*_erase_args(warehouse), env=no_key)
    assert nobody.returncode == 2 and "no subject ids" in nobody.stderr
    # Nothing was deleted or audited by any of them.
    with sa.create_engine(warehouse[0]).connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM prediction_log")).scalar_one() == 10
    assert ResultsStore(sa.create_engine(warehouse[1])).erasures() == []


def test_v3_history_gets_the_erasures_table(engine: sa.Engine) -> None:
    from airflow_mlobs.store import SCHEMA_VERSION

    ResultsStore(engine).ensure_table()
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE {ERASURES_TABLE}"))
        conn.execute(sa.text("UPDATE mlobs_schema_version SET version = 3"))
    upgraded = ResultsStore(engine)
    assert upgraded.schema_version() == 3
    upgraded.ensure_table()
    assert upgraded.schema_version() == SCHEMA_VERSION >= 4
    assert ERASURES_TABLE in sa.inspect(engine).get_table_names()


# --------------------------------------------------------------------------------------------------
# Operators: arguments checked when the DAG is parsed, no I/O
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"keep": "0d"}, r"ret: keep: must be longer than zero"),
        ({"keep": "ninety"}, r"ret: keep: 'ninety' is not a duration"),
        ({"keep": "90d", "tables": [("t", "ts")]}, r"ret: tables=\['t'\] need conn_id"),
        ({"keep": "90d", "conn_id": "wh", "tables": [{"table": "t"}]}, r"ret: retention target .*table t"),
        ({"keep": "90d", "results_history": False}, r"ret: nothing to age"),
        ({"keep": "90d", "batch_size": 0}, r"ret: batch_size must be a positive integer"),
    ],
)
def test_retention_operator_rejects_bad_arguments_at_parse_time(
    kwargs: dict[str, object], message: str
) -> None:
    from airflow_mlobs.operators.retention import RetentionOperator

    with pytest.raises(ValueError, match=message):
        RetentionOperator(task_id="ret", **kwargs)  # type: ignore[arg-type]


def test_operators_accept_templates_and_do_no_io() -> None:
    from airflow_mlobs.operators.retention import ErasureOperator, RetentionOperator

    retention = RetentionOperator(
        task_id="ret", keep="{{ params.keep }}", conn_id="no_such_conn", tables=[("t", "ts")]
    )
    assert retention.dataset_name() == "retention:no_such_conn"
    erasure = ErasureOperator(
        task_id="erase",
        subject_ids="{{ dag_run.conf['ids'] | join(',') }}",
        conn_id="no_such_conn",
        table="t",
        subject_column="customer_id",
        pseudonymized=["customer_id"],
    )
    assert erasure.target().is_pseudonymized("customer_id") and erasure.target().needs_key()
    assert {"subject_ids", "reason", "requested_by", "count_only"} <= set(ErasureOperator.template_fields)
    with pytest.raises(ValueError, match="subject_column"):
        ErasureOperator(task_id="e", subject_ids=["1"], conn_id="c", table="t", subject_column="")
