"""Partitions at scale in real Airflow: mapped drift checks profile three partitions of one window in
the warehouse, each storing its profile keyed by partition; ``DriftMergeOperator`` adds them up and
gives the verdict that profiling the whole window at once gives."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.profile import load_baseline
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.sources.baseline_sql import build_baseline_sql
from airflow_mlobs.store import ResultsStore
from tests.e2e.airflow_runner import run_dag

pytestmark = pytest.mark.e2e

FIRST_DAY = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 7
DRIFT_DAY = datetime(2026, 11, 5, tzinfo=UTC)
REGIONS = {"eu": 120, "us": 200, "apac": 80}  # rows per day
LOGICAL_DATE = "2026-11-07"  # judges [11-06, 11-07): a drifted day
WINDOW = (datetime(2026, 11, 6, tzinfo=UTC), datetime(2026, 11, 7, tzinfo=UTC))
DAG_ID = "mlobs_mapped_partitions"

DAG_FILE = f"""
from datetime import UTC, datetime
from airflow.sdk import DAG, CronDataIntervalTimetable
from airflow_mlobs.operators import DriftCheckOperator, DriftMergeOperator

REGIONS = {sorted(REGIONS)!r}
common = dict(
    baseline="events", baseline_version="v1", conn_id="wh", table="events", timestamp_column="ts",
    on_breach="continue",
)
with DAG(
    {DAG_ID!r},
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=datetime(2026, 10, 1, tzinfo=UTC),
    catchup=False,
):
    # Mapped over a condition: each task's partition is its map index.
    by_where = DriftCheckOperator.partial(task_id="drift_by_where", dataset="wh:events", **common).expand(
        where=[f"region = '{{r}}'" for r in REGIONS]
    )
    merge_where = DriftMergeOperator(
        task_id="merge_by_where", dataset="wh:events", baseline="events", baseline_version="v1",
        on_breach="continue",
    )
    by_where >> merge_where

    # Mapped over named partitions; the condition is templated from the partition.
    by_region = DriftCheckOperator.partial(
        task_id="drift_by_region", dataset="wh:events_by_region",
        where="region = '{{{{ task.partition }}}}'", **common,
    ).expand(partition=REGIONS)
    merge_region = DriftMergeOperator(
        task_id="merge_by_region", dataset="wh:events_by_region", baseline="events",
        baseline_version="v1", partitions=REGIONS, on_breach="continue",
    )
    by_region >> merge_region

    # The whole window at once, to compare with.
    DriftCheckOperator(task_id="drift_whole", dataset="wh:events_whole", **common)

    # Nothing stored under this name, and a partition that never ran: error results that say so.
    DriftMergeOperator(task_id="merge_nothing", dataset="wh:no_such_events", baseline="events")
    missing = DriftMergeOperator(
        task_id="merge_missing_partition", dataset="wh:events_by_region", baseline="events",
        partitions=[*REGIONS, "latam"],
    )
    by_region >> missing
"""


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A SQLite warehouse table ``events`` (three regions, daily rows, drifting from DRIFT_DAY on)
    and a baseline ``events/v1`` over its first three days, built in the database."""
    root = tmp_path_factory.mktemp("partitions")
    rng = np.random.default_rng(20261107)
    rows: list[dict[str, Any]] = []
    for d in range(DAYS):
        day = FIRST_DAY + timedelta(days=d)
        drifted = day >= DRIFT_DAY
        for shift, (region, n) in enumerate(REGIONS.items()):
            x1 = rng.normal((0.8 if drifted else 0.0) + shift * 0.1, 1.0, n)
            x2 = rng.exponential(1.5 if drifted else 1.0, n)
            plan = rng.choice(["basic", "plus", "pro"], n, p=[0.3, 0.3, 0.4] if drifted else [0.6, 0.3, 0.1])
            step = 86400 / n
            rows += [
                {
                    "ts": (day + timedelta(seconds=i * step + 1)).strftime("%Y-%m-%d %H:%M:%S.%f"),
                    "region": region,
                    "x1": float(x1[i]),
                    "x2": float(x2[i]),
                    "plan": str(plan[i]),
                }
                for i in range(n)
            ]
    db = root / "wh.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (ts TIMESTAMP, region TEXT, x1 REAL, x2 REAL, plan TEXT)"))
        conn.execute(sa.text("INSERT INTO events VALUES (:ts, :region, :x1, :x2, :plan)"), rows)
    baseline = build_baseline_sql(
        engine,
        name="events",
        version="v1",
        table=parse_table_name("events"),
        columns=["x1", "x2", "plan"],
        timestamp_column="ts",
        window_start=FIRST_DAY,
        window_end=FIRST_DAY + timedelta(days=3),
        source="wh:events",
    )
    engine.dispose()
    baselines = root / "baselines"
    baseline.save(baselines)
    return db, baselines


@pytest.fixture(scope="module")
def mapped_run(
    airflow_db: Path, warehouse: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """One ``airflow dags test`` run of the DAG above (shared by the tests of this module)."""
    db, baselines = warehouse
    dags = tmp_path_factory.mktemp("partition_dags")
    (dags / "mapped_partitions.py").write_text(textwrap.dedent(DAG_FILE))
    env = {
        "AIRFLOW_CONN_WH": json.dumps({"conn_type": "sqlite", "host": str(db)}),
        "MLOBS_BASELINE_DIR": str(baselines),
    }
    return run_dag(airflow_db, dags, DAG_ID, LOGICAL_DATE, env)


def _store(airflow_home: Path) -> ResultsStore:
    return ResultsStore(sa.create_engine(f"sqlite:///{airflow_home / 'mlobs_results.db'}"))


def _results(airflow_home: Path) -> dict[tuple[str, int], CheckResult]:
    found: dict[tuple[str, int], CheckResult] = {}
    for s in _store(airflow_home).history(dag_id=DAG_ID, start=WINDOW[1]):
        found.setdefault((s.run.task_id or "", s.run.map_index), s.result)
    return found


def _task_instances(airflow_home: Path) -> dict[tuple[str, int], tuple[str, str | None]]:
    engine = sa.create_engine(f"sqlite:///{airflow_home / 'airflow.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT task_id, map_index, state, rendered_map_index FROM task_instance WHERE dag_id = :d"
            ),
            {"d": DAG_ID},
        ).all()
    engine.dispose()
    return {(str(t), int(m)): (str(s), r) for t, m, s, r in rows}


def _verdict(result: CheckResult) -> dict[str, Any]:
    """What a drift verdict says about the data (not how the dataset is named or was gathered)."""
    metrics = {
        k: v
        for k, v in result.metrics.items()
        if k not in ("partitions_merged", "partitions", "partition_rows", "partition")
    }
    return {
        "status": result.status,
        "findings": [(f.subject, f.metric, f.status, f.value, f.threshold) for f in result.findings],
        "metrics": metrics,
    }


def test_mapped_partitions_are_stored_apart_and_labelled(
    airflow_db: Path, warehouse: tuple[Path, Path], mapped_run: Any
) -> None:
    instances = _task_instances(airflow_db)
    for task_id in ("drift_by_where", "drift_by_region"):
        assert sorted(m for t, m in instances if t == task_id) == [0, 1, 2], instances
        assert all(instances[(task_id, m)][0] == "success" for m in range(3)), instances
    # Readable map index labels: the partition, else the table and condition.
    assert {instances[("drift_by_region", m)][1] for m in range(3)} == set(REGIONS)
    assert {instances[("drift_by_where", m)][1] for m in range(3)} == {
        f"events where region = '{r}'" for r in REGIONS
    }

    store = _store(airflow_db)
    baseline = load_baseline(warehouse[1], "events", "v1")
    by_where = store.window_profiles(
        "wh:events", edges_key=baseline.key, window_start=WINDOW[0], window_end=WINDOW[1]
    )
    by_region = store.window_profiles(
        "wh:events_by_region", edges_key=baseline.key, window_start=WINDOW[0], window_end=WINDOW[1]
    )
    (whole,) = store.window_profiles(
        "wh:events_whole", edges_key=baseline.key, window_start=WINDOW[0], window_end=WINDOW[1]
    )
    assert [p for p, _ in by_where] == ["0", "1", "2"]
    assert sorted(p for p, _ in by_region) == sorted(REGIONS)
    assert {p: prof.row_count for p, prof in by_region} == REGIONS
    assert whole[0] is None and whole[1].row_count == sum(REGIONS.values())
    assert sorted(prof.row_count for _, prof in by_where) == sorted(REGIONS.values())
    assert store.skipped_rows == 0

    # The stored partition profiles add up to the whole window's profile, count for count.
    merged = by_region[0][1]
    for _, profile in by_region[1:]:
        merged = merged.merge(profile)
    for name, column in whole[1].columns.items():
        other = merged.columns[name]
        if column.kind == "categorical":
            assert other.counts == column.counts, name  # type: ignore[union-attr]
        else:
            assert (other.bins, other.count, other.nulls) == (column.bins, column.count, column.nulls), name  # type: ignore[union-attr]
            assert (other.min, other.max) == (column.min, column.max), name  # type: ignore[union-attr]
            assert other.total == pytest.approx(column.total, rel=1e-12), name  # type: ignore[union-attr]


def test_merged_verdict_equals_profiling_the_whole_window(airflow_db: Path, mapped_run: Any) -> None:
    results = _results(airflow_db)
    whole = results[("drift_whole", -1)]
    assert whole.status.value == "fail", whole.summary  # the drifted day is caught
    assert whole.metrics["columns_judged"] == 3 and whole.metrics["reference_rows"] == 3 * sum(
        REGIONS.values()
    )
    for task_id, names in (("merge_by_where", ["0", "1", "2"]), ("merge_by_region", sorted(REGIONS))):
        merged = results[(task_id, -1)]
        assert merged.check == "drift"
        assert (merged.window_start, merged.window_end) == WINDOW
        assert sorted(merged.metrics["partitions"]) == names
        assert merged.metrics["partitions_merged"] == 3
        assert sum(merged.metrics["partition_rows"].values()) == sum(REGIONS.values())
        assert merged.summary.startswith("3 partitions merged (")
        assert all(name in merged.summary.split(":")[0] for name in names)
        assert _verdict(merged) == _verdict(whole), task_id
        assert mapped_run.xcoms[task_id]["status"] == "fail"
    # The mapped tasks record their partition on their own results.
    assert {results[("drift_by_region", m)].metrics["partition"] for m in range(3)} == set(REGIONS)
    assert {results[("drift_by_where", m)].metrics["partition"] for m in range(3)} == {"0", "1", "2"}


def test_merging_nothing_or_a_missing_partition_is_an_error(airflow_db: Path, mapped_run: Any) -> None:
    assert mapped_run.returncode != 0  # the two error merges fail their tasks
    states = _task_instances(airflow_db)
    assert states[("merge_nothing", -1)][0] == "failed"
    assert states[("merge_missing_partition", -1)][0] == "failed"
    assert states[("merge_by_where", -1)][0] == states[("merge_by_region", -1)][0] == "success"
    results = _results(airflow_db)
    nothing = results[("merge_nothing", -1)]
    assert nothing.status.value == "error"
    assert "no partition profiles stored for wh:no_such_events" in nothing.summary
    assert "2026-11-06T00:00:00+00:00 .. 2026-11-07T00:00:00+00:00" in nothing.summary
    missing = results[("merge_missing_partition", -1)]
    assert missing.status.value == "error"
    assert "'latam' of 4 expected" in missing.summary
    assert nothing.summary in mapped_run.output


def test_mapped_drift_checks_get_a_readable_map_index_template() -> None:
    """At DAG parse time: the default template goes into the mapped task, a given one is kept, and an
    unmapped drift check has none (Airflow would otherwise label a task that is not mapped)."""
    from airflow.sdk import DAG

    from airflow_mlobs.operators import DriftCheckOperator

    common: dict[str, Any] = {"baseline": "events", "conn_id": "wh", "table": "events"}
    with DAG("mlobs_map_index_template", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=UTC)):
        default = DriftCheckOperator.partial(task_id="default", **common).expand(where=["a = 1", "a = 2"])
        given = DriftCheckOperator.partial(
            task_id="given", map_index_template="{{ task.where }}", **common
        ).expand(where=["a = 1"])
        plain = DriftCheckOperator(task_id="plain", **common)
    assert default.map_index_template == DriftCheckOperator.default_map_index_template
    assert given.map_index_template == "{{ task.where }}"
    assert plain.map_index_template is None
    labelled = DriftCheckOperator(task_id="one", where="region = 'eu'", **common)
    assert labelled.map_index_label() == "events where region = 'eu'"
    assert DriftCheckOperator(task_id="two", partition="eu", **common).map_index_label() == "eu"
    assert len(DriftCheckOperator(task_id="long", where="x" * 500, **common).map_index_label()) == 200
