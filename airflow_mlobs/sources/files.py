"""Gathering from files: modification times, partitions, and schemas read from file metadata."""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.freshness import FreshnessObservation
from airflow_mlobs.core.types import ColumnInfo, logical_type_from_name


def _is_marker(relative: Path) -> bool:
    """Hidden and temporary paths (``.x``, ``_SUCCESS``, ``_temporary/...``) are not data: Spark and
    Hive writers leave them, and files under ``_temporary`` are still being written."""
    return any(part.startswith((".", "_")) for part in relative.parts)


def _files(path: Path, pattern: str) -> list[Path]:
    """Data files under ``path`` whose names match ``pattern`` (``path`` itself if it is a file)."""
    if path.is_file():
        return [path]
    return [
        p
        for p in path.rglob("*")
        if p.is_file() and fnmatch.fnmatch(p.name, pattern) and not _is_marker(p.relative_to(path))
    ]


def newest_modification(path: str | Path, *, as_of: datetime, pattern: str = "*") -> FreshnessObservation:
    """The newest modification time of the files under ``path`` (recursive, names matching
    ``pattern``) at or before ``as_of``. Hidden and temporary files (``.*``, ``_*``) are ignored, as
    Spark and Hive writers leave markers such as ``_SUCCESS`` that are not data.
    """
    root = Path(path)
    if not root.exists():
        raise SourceError(f"path {root} does not exist")
    times: list[datetime] = []
    for file in _files(root, pattern):
        times.append(datetime.fromtimestamp(file.stat().st_mtime, tz=UTC))
    if not times:
        return FreshnessObservation(newest=None, row_count=0, non_null_count=0)
    eligible = [t for t in times if t <= as_of]
    return FreshnessObservation(
        newest=max(eligible) if eligible else None,
        row_count=len(times),
        non_null_count=len(times),
        rows_after_as_of=len(times) - len(eligible),
    )


def partition_files(path: str | Path, pattern: str = "*") -> tuple[bool, int]:
    """Whether the partition directory (or file) exists, and how many data files it holds."""
    root = Path(path)
    if not root.exists():
        return False, 0
    return True, len(_files(root, pattern))


def read_file_schema(path: str | Path) -> list[ColumnInfo]:
    """Columns of a Parquet, Feather/Arrow or CSV file from its metadata (CSV: inferred from the
    first block only). Raises ``SourceError`` naming the file when it is missing or unreadable."""
    import pyarrow as pa

    file = Path(path)
    if not file.exists():
        raise SourceError(f"file {file} does not exist")
    suffix = file.suffix.lower()
    try:
        if suffix in (".parquet", ".pq") or file.is_dir():
            import pyarrow.parquet as pq

            schema = pq.read_schema(file) if file.is_file() else pq.ParquetDataset(file).schema
        elif suffix in (".feather", ".arrow", ".ipc"):
            import pyarrow.feather as feather

            schema = feather.read_table(file, memory_map=True).schema
        elif suffix in (".csv", ".tsv"):
            import pyarrow.csv as pacsv

            options = pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",")
            with pacsv.open_csv(file, parse_options=options) as reader:
                schema = reader.schema
        else:
            raise SourceError(
                f"file {file}: unsupported format {suffix!r}; use Parquet, Feather/Arrow or CSV"
            )
    except SourceError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"file {file} cannot be read: {exc}") from exc
    return [
        ColumnInfo(
            name=field.name,
            logical_type=logical_type_from_name(str(field.type)),
            physical_type=str(field.type),
            nullable=field.nullable,
        )
        for field in schema
    ]


def read_window(
    path: str | Path,
    columns: list[str] | None = None,
    *,
    timestamp_column: str | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> Any:
    """Read the rows of a Parquet/Feather/CSV file or dataset directory in ``[start, end)`` of
    ``timestamp_column``, only the requested columns, as a pandas DataFrame. The window filter is
    pushed into the Arrow scan (row groups outside it are skipped for Parquet). Columns missing from
    the file are left out of the frame (the profile records them as missing)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    location = Path(path)
    if not location.exists():
        raise SourceError(f"path {location} does not exist")
    suffix = location.suffix.lower() if location.is_file() else ".parquet"
    file_format = {
        ".parquet": "parquet",
        ".pq": "parquet",
        ".feather": "feather",
        ".arrow": "feather",
        ".ipc": "feather",
        ".csv": "csv",
    }.get(suffix)
    if file_format is None:
        raise SourceError(
            f"file {location}: unsupported format {suffix!r}; use Parquet, Feather/Arrow or CSV"
        )
    try:
        dataset = ds.dataset(location, format=file_format)
        names = set(dataset.schema.names)
        wanted = [c for c in (columns or dataset.schema.names) if c in names]
        expression = None
        if timestamp_column is not None:
            if timestamp_column not in names:
                raise SourceError(
                    f"timestamp column {timestamp_column!r} not found in {location}; it has: {', '.join(sorted(names))}"
                )
            field_type = dataset.schema.field(timestamp_column).type
            for bound, compare in ((window_start, pc.greater_equal), (window_end, pc.less)):
                if bound is None:
                    continue
                value = (
                    bound if getattr(field_type, "tz", None) else bound.astimezone(UTC).replace(tzinfo=None)
                )
                condition = compare(ds.field(timestamp_column), pa.scalar(value, type=field_type))
                expression = condition if expression is None else expression & condition
        return dataset.to_table(columns=wanted, filter=expression).to_pandas()
    except SourceError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise SourceError(f"cannot read {location}: {exc}") from exc
