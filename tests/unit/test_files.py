"""Gathering from files: modification times, partitions and schemas from file metadata."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.freshness import judge_freshness
from airflow_mlobs.core.result import Status
from airflow_mlobs.core.types import LogicalType
from airflow_mlobs.sources.files import newest_modification, partition_files, read_file_schema

AS_OF = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)


def _touch(path: Path, when: datetime, content: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "events"
    _touch(root / "dt=2026-11-23" / "part-0000.parquet", AS_OF - timedelta(days=2))
    _touch(root / "dt=2026-11-24" / "part-0000.parquet", AS_OF - timedelta(hours=3))
    _touch(root / "dt=2026-11-24" / "part-0001.csv", AS_OF - timedelta(hours=5))
    # written after as_of: counted, never the newest
    _touch(root / "dt=2026-11-25" / "part-0000.parquet", AS_OF + timedelta(hours=1))
    _touch(root / "dt=2026-11-25" / "part-0001.parquet", AS_OF + timedelta(hours=2))
    # markers and hidden files, newest of all but not data
    _touch(root / "dt=2026-11-24" / "_SUCCESS", AS_OF - timedelta(minutes=1))
    _touch(root / "dt=2026-11-24" / ".part-0000.parquet.crc", AS_OF - timedelta(minutes=1))
    _touch(root / ".x", AS_OF - timedelta(minutes=2))
    return root


def test_newest_modification_at_or_before_as_of(tree: Path) -> None:
    observation = newest_modification(tree, as_of=AS_OF)
    assert observation.newest == AS_OF - timedelta(hours=3)
    assert observation.newest is not None and observation.newest.tzinfo is UTC
    assert observation.row_count == 5
    assert observation.non_null_count == 5
    assert observation.rows_after_as_of == 2


def test_file_exactly_at_as_of_counts(tmp_path: Path) -> None:
    _touch(tmp_path / "a.parquet", AS_OF)
    observation = newest_modification(tmp_path, as_of=AS_OF)
    assert observation.newest == AS_OF
    assert observation.rows_after_as_of == 0


def test_hidden_files_are_ignored(tmp_path: Path) -> None:
    _touch(tmp_path / "data.parquet", AS_OF - timedelta(days=1))
    _touch(tmp_path / "_SUCCESS", AS_OF - timedelta(seconds=5))
    _touch(tmp_path / ".x", AS_OF - timedelta(seconds=5))
    observation = newest_modification(tmp_path, as_of=AS_OF)
    assert observation.newest == AS_OF - timedelta(days=1)
    assert observation.row_count == 1


def test_only_hidden_files_is_like_empty(tmp_path: Path) -> None:
    _touch(tmp_path / "_SUCCESS", AS_OF - timedelta(seconds=5))
    observation = newest_modification(tmp_path, as_of=AS_OF)
    assert observation.newest is None
    assert observation.row_count == 0


def test_pattern_filter(tree: Path) -> None:
    observation = newest_modification(tree, as_of=AS_OF, pattern="*.csv")
    assert observation.newest == AS_OF - timedelta(hours=5)
    assert observation.row_count == 1
    assert observation.rows_after_as_of == 0
    parquet = newest_modification(tree, as_of=AS_OF, pattern="*.parquet")
    assert parquet.newest == AS_OF - timedelta(hours=3)
    assert parquet.row_count == 4
    assert parquet.rows_after_as_of == 2


def test_as_of_in_the_past_judges_that_time(tree: Path) -> None:
    past = AS_OF - timedelta(days=1)
    observation = newest_modification(tree, as_of=past)
    assert observation.newest == AS_OF - timedelta(days=2)
    assert observation.rows_after_as_of == 4


def test_all_files_after_as_of(tree: Path) -> None:
    observation = newest_modification(tree, as_of=AS_OF - timedelta(days=10))
    assert observation.newest is None
    assert observation.row_count == 5
    assert observation.rows_after_as_of == 5
    result = judge_freshness(
        dataset="files", observation=observation, as_of=AS_OF - timedelta(days=10), max_age=timedelta(hours=6)
    )
    assert result.status is Status.FAIL
    assert "5 rows are newer" in result.findings[0].reason


def test_empty_directory(tmp_path: Path) -> None:
    observation = newest_modification(tmp_path, as_of=AS_OF)
    assert observation.newest is None
    assert observation.row_count == 0
    result = judge_freshness(
        dataset="files", observation=observation, as_of=AS_OF, max_age=timedelta(hours=1)
    )
    assert result.findings[0].reason == "no rows"


def test_single_file_path(tmp_path: Path) -> None:
    file = _touch(tmp_path / "snapshot.csv", AS_OF - timedelta(hours=1))
    observation = newest_modification(file, as_of=AS_OF, pattern="*.parquet")
    assert observation.newest == AS_OF - timedelta(hours=1)
    assert observation.row_count == 1


def test_missing_path_raises_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir"
    with pytest.raises(SourceError) as info:
        newest_modification(path, as_of=AS_OF)
    assert str(path) in str(info.value)
    assert "does not exist" in str(info.value)


def test_partition_files(tree: Path, tmp_path: Path) -> None:
    assert partition_files(tree / "dt=2026-11-24") == (True, 2)
    assert partition_files(tree / "dt=2026-11-24", pattern="*.parquet") == (True, 1)
    assert partition_files(tree / "dt=2026-11-30") == (False, 0)
    marker_only = tmp_path / "dt=2026-11-26"
    _touch(marker_only / "_SUCCESS", AS_OF)
    assert partition_files(marker_only) == (True, 0)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert partition_files(empty) == (True, 0)
    single = tree / "dt=2026-11-23" / "part-0000.parquet"
    assert partition_files(single) == (True, 1)


# --- schemas ------------------------------------------------------------------------------------


def test_read_parquet_schema(tmp_path: Path) -> None:
    schema = pa.schema(
        [
            pa.field("i32", pa.int32(), nullable=False),
            pa.field("i64", pa.int64()),
            pa.field("f64", pa.float64()),
            pa.field("s", pa.string()),
            pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("d", pa.date32()),
            pa.field("b", pa.bool_()),
        ]
    )
    table = pa.table(
        {
            "i32": pa.array([1, 2], pa.int32()),
            "i64": pa.array([1, None], pa.int64()),
            "f64": pa.array([1.5, None]),
            "s": pa.array(["a", None]),
            "ts": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC")),
            "d": pa.array([date(2026, 1, 1), None], pa.date32()),
            "b": pa.array([True, None]),
        },
        schema=schema,
    )
    path = tmp_path / "features.parquet"
    pq.write_table(table, path)
    columns = read_file_schema(path)
    assert [c.name for c in columns] == ["i32", "i64", "f64", "s", "ts", "d", "b"]
    assert {c.name: c.logical_type for c in columns} == {
        "i32": LogicalType.INTEGER,
        "i64": LogicalType.INTEGER,
        "f64": LogicalType.FLOAT,
        "s": LogicalType.STRING,
        "ts": LogicalType.TIMESTAMP,
        "d": LogicalType.DATE,
        "b": LogicalType.BOOLEAN,
    }
    assert {c.name: c.nullable for c in columns} == {
        "i32": False,
        "i64": True,
        "f64": True,
        "s": True,
        "ts": False,
        "d": True,
        "b": True,
    }
    by_name = {c.name: c for c in columns}
    assert by_name["i32"].physical_type == "int32"
    assert by_name["ts"].physical_type == "timestamp[us, tz=UTC]"


def test_read_parquet_dataset_directory(tmp_path: Path) -> None:
    directory = tmp_path / "dataset"
    directory.mkdir()
    pq.write_table(pa.table({"id": pa.array([1], pa.int64())}), directory / "part-0.parquet")
    columns = read_file_schema(directory)
    assert [(c.name, c.logical_type) for c in columns] == [("id", LogicalType.INTEGER)]


def test_read_feather_schema(tmp_path: Path) -> None:
    import pyarrow.feather as feather

    path = tmp_path / "t.feather"
    feather.write_feather(pa.table({"name": pa.array(["a"], pa.large_string())}), path)
    assert [(c.name, c.logical_type) for c in read_file_schema(path)] == [("name", LogicalType.STRING)]


def test_read_csv_schema(tmp_path: Path) -> None:
    path = tmp_path / "features.csv"
    path.write_text(
        "customer_id,monthly_spend,region,active,updated_at\n"
        "1,10.5,north,true,2026-01-01 10:00:00\n"
        "2,20.25,south,false,2026-01-02 11:00:00\n",
        encoding="utf-8",
    )
    columns = read_file_schema(path)
    assert [(c.name, c.logical_type) for c in columns] == [
        ("customer_id", LogicalType.INTEGER),
        ("monthly_spend", LogicalType.FLOAT),
        ("region", LogicalType.STRING),
        ("active", LogicalType.BOOLEAN),
        ("updated_at", LogicalType.TIMESTAMP),
    ]


def test_read_tsv_schema(tmp_path: Path) -> None:
    path = tmp_path / "features.tsv"
    path.write_text("a\tb\n1\tx\n", encoding="utf-8")
    assert [(c.name, c.logical_type) for c in read_file_schema(path)] == [
        ("a", LogicalType.INTEGER),
        ("b", LogicalType.STRING),
    ]


def test_read_schema_of_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.parquet"
    with pytest.raises(SourceError) as info:
        read_file_schema(path)
    assert str(path) in str(info.value)
    assert "does not exist" in str(info.value)


def test_read_schema_unsupported_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        read_file_schema(path)
    assert str(path) in str(info.value)
    assert "unsupported format '.json'" in str(info.value)


@pytest.mark.parametrize("content", [b"this is not parquet at all", b"", b"PAR1garbagePAR1"])
def test_read_schema_corrupt_parquet(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.parquet"
    path.write_bytes(content)
    with pytest.raises(SourceError) as info:
        read_file_schema(path)
    assert str(path) in str(info.value)
    assert "cannot be read" in str(info.value)


def test_read_schema_empty_csv(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(SourceError) as info:
        read_file_schema(path)
    assert str(path) in str(info.value)


def test_files_under_temporary_folders_are_not_data(tmp_path: Path) -> None:
    # Regression: Spark's in-progress output under _temporary/ made a partition look complete.
    done = tmp_path / "part-0.parquet"
    done.write_bytes(b"x")
    os.utime(done, (AS_OF.timestamp() - 7200, AS_OF.timestamp() - 7200))
    pending = tmp_path / "_temporary" / "0" / "part-1.parquet"
    pending.parent.mkdir(parents=True)
    pending.write_bytes(b"x")
    os.utime(pending, (AS_OF.timestamp() - 60, AS_OF.timestamp() - 60))
    observation = newest_modification(tmp_path, as_of=AS_OF)
    assert observation.newest == AS_OF - timedelta(hours=2)
    assert partition_files(tmp_path) == (True, 1)
    assert partition_files(tmp_path / "_temporary") == (True, 1)  # the root itself is not judged
