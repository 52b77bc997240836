"""Drift profiles gathered in SQL: one aggregate statement and one ranked-categories statement per
window (optionally grouped by a segment column); only aggregates cross the wire.

The in-memory gatherer (:mod:`airflow_mlobs.sources.drift_frame`) produces the same
:class:`~airflow_mlobs.core.profile.Profile` for the same rows; the definitions live in
:mod:`airflow_mlobs.core.profile`. Which statement variants apply (packed bin counts, GROUPING SETS),
how a finite number is tested and which session settings run first is the engine's
:class:`~airflow_mlobs.sources.dialect.SqlDialect`'s answer; this module builds every variant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy import types as sat
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.profile import (
    DEFAULT_MAX_CATEGORIES,
    CategoricalProfile,
    ColumnProfile,
    ColumnSpec,
    NumericProfile,
    Profile,
    capped,
    edges_key,
)
from airflow_mlobs.core.types import (
    NUMERIC_TYPES,
    TIME_TYPES,
    ColumnInfo,
    LogicalType,
    TableRef,
    canonical_category,
    logical_type_from_name,
)
from airflow_mlobs.sources.dberrors import source_failure
from airflow_mlobs.sources.dialect import SqlDialect, dialect_for
from airflow_mlobs.sources.sqlkit import MAX_FLOAT, QueryStats, catalog_columns, db_message, window_conditions

MAX_SEGMENTS = 200


def profile_sql(
    engine: Engine,
    specs: Sequence[ColumnSpec],
    *,
    table: TableRef | None = None,
    sql: str | None = None,
    timestamp_column: str | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    naive_zone: tzinfo = UTC,
    where: str | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    dialect: SqlDialect | None = None,
) -> tuple[Profile, QueryStats]:
    """Profile a table or query over a window in the database: only aggregates cross the wire.
    See :func:`profile_sql_segments` for the definitions; this is the same without segments."""
    profiles, stats = profile_sql_segments(
        engine,
        specs,
        table=table,
        sql=sql,
        timestamp_column=timestamp_column,
        window_start=window_start,
        window_end=window_end,
        naive_zone=naive_zone,
        where=where,
        max_categories=max_categories,
        dialect=dialect,
    )
    return profiles[None], stats


def profile_sql_segments(
    engine: Engine,
    specs: Sequence[ColumnSpec],
    *,
    table: TableRef | None = None,
    sql: str | None = None,
    timestamp_column: str | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    naive_zone: tzinfo = UTC,
    where: str | None = None,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    segment_column: str | None = None,
    max_segments: int = MAX_SEGMENTS,
    dialect: SqlDialect | None = None,
) -> tuple[dict[str | None, Profile], QueryStats]:
    """Profile a table or query over a window in the database: only aggregates cross the wire.

    With ``segment_column``, one profile per segment value (its text; ``None`` for NULL), from the
    same two statements grouped by the segment; more than ``max_segments`` segments is an error
    naming the column. Without it, one profile under the key ``None``.

    Two statements: one aggregate row (row count; per numeric column the null, finite and
    non-finite counts, min, max, sum, sum of squares, and the count below each bin edge, from which
    bin counts follow; per categorical column the non-null count), and one grouped statement with
    the ``max_categories + 1`` most frequent values of each categorical column (ranked in the
    database; where the dialect supports GROUPING SETS, all columns in one scan). Where the dialect
    packs bin counts (PostgreSQL) the first statement packs each column's bin counts into one exact
    numeric sum (:func:`_packed_profile_statement`); elsewhere it counts the rows below each edge.
    ``dialect`` defaults to :func:`~airflow_mlobs.sources.dialect.dialect_for` the engine. The
    result equals :func:`airflow_mlobs.sources.drift_frame.profile_frame` on the same rows.

    A ``sql`` query has no catalog: with a window, one more statement reads one non-NULL timestamp
    to learn whether the column carries a zone (naive values are wall-clock time in
    ``naive_zone``, as for tables), and categorical values are canonicalised by the baseline's
    ``source_type`` (so a boolean stored as 0/1 is still ``true``/``false``).

    Columns missing from the source are recorded in ``missing_columns``; a column whose type no
    longer fits the baseline (text where numbers were) is recorded in ``errors``. Raises
    ``SourceError`` naming the table, column or query for anything else.
    """
    spec_list = list(specs)
    where_label = f"table {table}" if table is not None else "query"
    catalog: dict[str, tuple[ColumnInfo, sat.TypeEngine[Any]]] = {}
    if table is not None:
        catalog = {info.name: (info, sql_type) for info, sql_type in catalog_columns(engine, table)}
    missing: list[str] = []
    errors: dict[str, str] = {}
    present: list[ColumnSpec] = []
    for spec in spec_list:
        if table is not None and spec.name not in catalog:
            missing.append(spec.name)
            continue
        if spec.kind == "numeric" and spec.name in catalog:
            info = catalog[spec.name][0]
            if info.logical_type not in NUMERIC_TYPES:
                errors[spec.name] = (
                    f"type changed: baseline numeric, now {info.physical_type} ({info.logical_type.value})"
                )
                continue
        present.append(spec)

    ts_name = timestamp_column
    if table is not None:
        if ts_name is not None and ts_name not in catalog:
            raise SourceError(
                f"timestamp column {ts_name!r} not found in table {table}; it has: {', '.join(sorted(catalog))}"
            )
        if segment_column is not None and segment_column not in catalog:
            raise SourceError(
                f"segment column {segment_column!r} not found in table {table}; it has: {', '.join(sorted(catalog))}"
            )
        wanted = (
            {s.name for s in present}
            | ({ts_name} if ts_name else set())
            | ({segment_column} if segment_column else set())
        )
        source: sa.FromClause = sa.table(
            table.name, *(sa.column(n, catalog[n][1]) for n in sorted(wanted)), schema=table.schema
        )
    else:
        if sql is None:
            raise SourceError("give either a table or a sql query")
        names = [s.name for s in present]
        for extra in (ts_name, segment_column):
            if extra and extra not in names:
                names.append(extra)
        query = sql.strip().rstrip(";").rstrip() + "\n"
        source = sa.text(query).columns(*(sa.column(n) for n in names)).subquery("mlobs_src")

    statements = 0
    rows_fetched = 0
    conditions: list[sa.ColumnElement[bool]] = []
    if ts_name:
        ts: sa.ColumnElement[Any] = source.c[ts_name]
        naive: bool | None = None
        if table is not None:
            ts_info, ts_type = catalog[ts_name]
            if ts_info.logical_type not in TIME_TYPES:
                raise SourceError(
                    f"column {ts_name!r} of table {table} is {ts_info.physical_type}, not a timestamp or date"
                )
            naive = ts_info.logical_type is LogicalType.DATE or not bool(getattr(ts_type, "timezone", False))
        elif window_start is not None or window_end is not None:
            # A query has no catalog: one non-NULL value tells whether the timestamps carry a zone, so
            # the bounds are bound in the column's own convention (naive ones in naive_zone).
            from datetime import date

            probe = sa.text(query).columns(sa.column(ts_name)).subquery("mlobs_probe")
            try:
                with engine.connect() as conn:
                    sample = conn.execute(
                        sa.select(probe.c[ts_name]).where(probe.c[ts_name].is_not(None)).limit(1)
                    ).scalar()
            except SQLAlchemyError as exc:
                raise source_failure(
                    exc, f"profile query on {where_label} failed: {db_message(exc)}", what=where_label
                ) from exc
            statements += 1
            rows_fetched += sample is not None
            if isinstance(sample, str):  # SQLite keeps timestamps as text
                text = sample.strip()
                for parse in (date.fromisoformat, datetime.fromisoformat):
                    try:
                        sample = parse(text)
                        break
                    except ValueError:
                        continue
            bound_type: sat.TypeEngine[Any]
            if isinstance(sample, date) and not isinstance(sample, datetime):
                naive, bound_type = True, sa.Date()
            else:
                naive = not (isinstance(sample, datetime) and sample.tzinfo is not None)
                bound_type = sa.DateTime(timezone=not naive)
            ts = sa.type_coerce(ts, bound_type)
        conditions += window_conditions(ts, naive, naive_zone, window_start, window_end)
    if where:
        conditions.append(sa.text(f"({where})"))  # type: ignore[arg-type]

    dialect = dialect or dialect_for(engine)
    segment = source.c[segment_column] if segment_column else None
    if dialect.packs_bin_counts:
        aggregate_statement, layout = _packed_profile_statement(source, present, segment, dialect)
    else:
        aggregate_statement, layout = _portable_profile_statement(source, present, segment, dialect)

    categorical = [(i, s) for i, s in enumerate(present) if s.kind == "categorical"]
    try:
        with engine.begin() as conn:
            dialect.prepare_session(conn, "profile")
            grouped_rows = [dict(r._mapping) for r in conn.execute(aggregate_statement(conditions, True))]
            statements += 1
            rows_fetched += len(grouped_rows)
            if len(grouped_rows) > max_segments:
                raise SourceError(
                    f"segment column {segment_column!r} of {where_label} has {len(grouped_rows)} values in the "
                    f"window, more than max_segments={max_segments}; choose a coarser segment"
                )
            rows_by_segment: dict[str | None, dict[str, Any]] = {}
            for row in grouped_rows:
                key = row.pop("segment", None)
                for spec, index in layout:
                    row[f"c{index}_bins"] = _bins_from_row(row, f"c{index}", len(spec.edges))
                rows_by_segment[None if key is None else str(key)] = row
            if not rows_by_segment:  # an empty window grouped by segment: one empty profile
                empty = dict(conn.execute(aggregate_statement([sa.false()], False)).one()._mapping)
                for spec, index in layout:
                    empty[f"c{index}_bins"] = _bins_from_row(empty, f"c{index}", len(spec.edges))
                rows_by_segment[None] = empty
            top: dict[tuple[str | None, str], list[tuple[Any, int]]] = {}
            if categorical:
                grouped = _top_categories(dialect, source, conditions, categorical, max_categories, segment)
                result = conn.execute(grouped)
                statements += 1
                for label, segment_value, value, count in result:
                    rows_fetched += 1
                    key = None if segment_value is None else str(segment_value)
                    top.setdefault((key, present[int(label)].name), []).append((value, int(count)))
    except SQLAlchemyError as exc:
        raise source_failure(
            exc, f"profile query on {where_label} failed: {db_message(exc)}", what=where_label
        ) from exc

    profiles: dict[str | None, Profile] = {}
    for segment_key, row in rows_by_segment.items():
        profiles[segment_key] = _assemble_profile(
            row,
            {name: values for (key, name), values in top.items() if key == segment_key},
            present,
            catalog,
            max_categories,
            Profile(
                row_count=0,
                columns={},
                edges_key=edges_key(spec_list),
                window_start=window_start,
                window_end=window_end,
                missing_columns=tuple(missing),
                errors=errors,
                segment=segment_key,
            ),
        )
    return profiles, QueryStats(statements=statements, rows_fetched=rows_fetched)


_StatementFor = Callable[[list[sa.ColumnElement[bool]], bool], sa.Select[Any]]
#: Decimal digits per bin in PostgreSQL's packed bin counts: 10**19 > 2**63, the largest ``count()``.
_BIN_DIGITS = 19


def _portable_profile_statement(
    source: sa.FromClause,
    present: list[ColumnSpec],
    segment: sa.ColumnElement[Any] | None,
    dialect: SqlDialect,
) -> tuple[_StatementFor, list[tuple[ColumnSpec, int]]]:
    """The profile aggregates for any dialect: per numeric column the finite count, min, max, sum,
    sum of squares and ``count(*) FILTER (WHERE x < edge)`` per bin edge. Returns a function of the
    window conditions (and whether to group by the segment) and the numeric columns' layout.

    Where a column can hold non-numbers (:meth:`SqlDialect.stored_number`), those are counted as
    invalid and each edge count tests finiteness; with typed columns, one -inf count per column
    replaces that test."""
    aggregates: list[sa.ColumnElement[Any]] = [sa.func.count().label("rows")]
    layout: list[tuple[ColumnSpec, int]] = []
    for index, spec in enumerate(present):
        col = source.c[spec.name]
        prefix = f"c{index}"
        aggregates.append(sa.func.count(col).label(f"{prefix}_nonnull"))
        if spec.kind != "numeric":
            continue
        x = sa.cast(col, sa.Float)
        finite = dialect.finite(col)
        numeric_value = dialect.stored_number(col)
        if numeric_value is not None:
            aggregates.append(
                sa.func.count()
                .filter(sa.and_(col.is_not(None), sa.not_(numeric_value)))
                .label(f"{prefix}_invalid")
            )
        else:
            aggregates.append(sa.literal(0).label(f"{prefix}_invalid"))
        aggregates += [
            sa.func.count().filter(finite).label(f"{prefix}_count"),
            sa.func.min(x).filter(finite).label(f"{prefix}_min"),
            sa.func.max(x).filter(finite).label(f"{prefix}_max"),
            sa.func.sum(x).filter(finite).label(f"{prefix}_sum"),
            sa.func.sum(x * x).filter(finite).label(f"{prefix}_sumsq"),
        ]
        if numeric_value is not None:
            below_edge = [sa.and_(finite, x < sa.literal(edge, sa.Float)) for edge in spec.edges]
            aggregates.append(sa.literal(0).label(f"{prefix}_neginf"))
        else:
            # `x < edge` is false for NULL, NaN and +inf and true for -inf, so one -inf count per
            # column replaces a finiteness test per edge (measured: half the statement's time).
            below_edge = [x < sa.literal(edge, sa.Float) for edge in spec.edges]
            aggregates.append(sa.func.count().filter(x < -MAX_FLOAT).label(f"{prefix}_neginf"))
        for edge_index, condition in enumerate(below_edge):
            aggregates.append(sa.func.count().filter(condition).label(f"{prefix}_lt{edge_index}"))
        layout.append((spec, index))

    def statement(conditions: list[sa.ColumnElement[bool]], by_segment: bool) -> sa.Select[Any]:
        if segment is not None and by_segment:
            return (
                sa.select(sa.cast(segment, sa.Text).label("segment"), *aggregates)
                .select_from(source)
                .where(*conditions)
                .group_by(segment)
            )
        return sa.select(*aggregates).select_from(source).where(*conditions)

    return statement, layout


def _packed_profile_statement(
    source: sa.FromClause,
    present: list[ColumnSpec],
    segment: sa.ColumnElement[Any] | None,
    dialect: SqlDialect,
) -> tuple[_StatementFor, list[tuple[ColumnSpec, int]]]:
    """The profile aggregates where the dialect packs bin counts (PostgreSQL), about 2.5x faster
    than the portable statement.

    * A subquery computes each numeric column's finite value once per row (``CASE WHEN x >= -max
      AND x <= max THEN x END``: NULL for NULL, NaN and +-inf); count, min, max, sum and sum of
      squares then aggregate it with no FILTER. ``clock_timestamp()`` (volatile, parallel safe) in
      the subquery's select list keeps the planner from flattening it, which would repeat the CASE
      in every aggregate; the plan stays a parallel aggregate.
    * All bin counts of a column come from one aggregate: ``sum(w[width_bucket(f, edges) + 1])``
      over the finite values, where ``w[k] = 10**(19 * (k - 1))``. The sum is an exact numeric in
      which bin ``k`` occupies its own 19 decimal digits (a count cannot reach ``10**19 > 2**63``),
      so the counts are read back exactly. ``width_bucket`` (the number of edges <= x) puts x in the
      same bin as the portable ``x < edge`` counts, and a row costs one binary search and one
      numeric addition per column instead of one comparison and aggregate per edge.
    * The finite count is the sum of the bins.
    """
    from sqlalchemy.dialects import postgresql

    inner: list[sa.ColumnElement[Any]] = []
    for index, spec in enumerate(present):
        inner.append(source.c[spec.name].label(f"v{index}"))
        if spec.kind == "numeric":
            x = sa.cast(source.c[spec.name], sa.Float)
            inner.append(sa.case((dialect.finite(source.c[spec.name]), x)).label(f"f{index}"))
    if segment is not None:
        inner.append(segment.label("mlobs_segment"))
    inner.append(sa.func.clock_timestamp().label("mlobs_no_flatten"))

    def statement(conditions: list[sa.ColumnElement[bool]], by_segment: bool) -> sa.Select[Any]:
        rows = sa.select(*inner).select_from(source).where(*conditions).subquery("mlobs_rows")
        aggregates: list[sa.ColumnElement[Any]] = [sa.func.count().label("rows")]
        for index, spec in enumerate(present):
            prefix = f"c{index}"
            aggregates.append(sa.func.count(rows.c[f"v{index}"]).label(f"{prefix}_nonnull"))
            if spec.kind != "numeric":
                continue
            f = rows.c[f"f{index}"]
            weights = sa.literal_column(
                "(ARRAY["
                + ", ".join(f"1e{_BIN_DIGITS * k}" for k in range(len(spec.edges) + 1))
                + "]::numeric[])",
                postgresql.ARRAY(sa.Numeric),
            )
            bucket: sa.ColumnElement[Any] = sa.literal(1)
            if spec.edges:
                edges = sa.cast(
                    postgresql.array([sa.literal(edge, sa.Float) for edge in spec.edges]),
                    postgresql.ARRAY(sa.Float),
                )
                bucket = sa.func.width_bucket(f, edges) + 1
            aggregates += [
                sa.literal(0).label(f"{prefix}_invalid"),
                sa.func.min(f).label(f"{prefix}_min"),
                sa.func.max(f).label(f"{prefix}_max"),
                sa.func.sum(f).label(f"{prefix}_sum"),
                sa.func.sum(f * f).label(f"{prefix}_sumsq"),
                sa.func.sum(weights[bucket]).filter(f.is_not(None)).label(f"{prefix}_packed"),
            ]
        if segment is not None and by_segment:
            seg = rows.c.mlobs_segment
            return sa.select(sa.cast(seg, sa.Text).label("segment"), *aggregates).group_by(seg)
        return sa.select(*aggregates)

    layout = [(spec, index) for index, spec in enumerate(present) if spec.kind == "numeric"]
    return statement, layout


def _bins_from_row(row: dict[str, Any], prefix: str, edges: int) -> list[int]:
    """A numeric column's bin counts from its aggregate row; sets ``<prefix>_count`` when the
    counts came packed (PostgreSQL)."""
    if f"{prefix}_packed" in row:
        packed = int(row[f"{prefix}_packed"] or 0)
        bins = []
        for _ in range(edges + 1):
            packed, count = divmod(packed, 10**_BIN_DIGITS)
            bins.append(count)
        row[f"{prefix}_count"] = sum(bins)
        return bins
    neginf = int(row[f"{prefix}_neginf"] or 0)
    below = [int(row[f"{prefix}_lt{i}"] or 0) - neginf for i in range(edges)]
    bins = [below[0]] if below else []
    bins += [below[i] - below[i - 1] for i in range(1, len(below))]
    bins.append(int(row[f"{prefix}_count"] or 0) - (below[-1] if below else 0))
    return bins


def _assemble_profile(
    row: dict[str, Any],
    top: dict[str, list[tuple[Any, int]]],
    present: list[ColumnSpec],
    catalog: dict[str, tuple[ColumnInfo, sat.TypeEngine[Any]]],
    max_categories: int,
    shell: Profile,
) -> Profile:
    """One segment's aggregate row and ranked categories as a :class:`Profile` (``shell`` gives
    the window, edges key, missing columns and errors)."""
    columns: dict[str, ColumnProfile] = {}
    total_rows = int(row["rows"])
    for index, spec in enumerate(present):
        prefix = f"c{index}"
        nonnull = int(row[f"{prefix}_nonnull"] or 0)
        if spec.kind == "numeric":
            count = int(row[f"{prefix}_count"] or 0)
            invalid = int(row[f"{prefix}_invalid"] or 0)
            bins = row[f"{prefix}_bins"]
            columns[spec.name] = NumericProfile(
                count=count,
                nulls=total_rows - nonnull,
                non_finite=nonnull - count - invalid,
                invalid=invalid,
                min=None if row[f"{prefix}_min"] is None else float(row[f"{prefix}_min"]),
                max=None if row[f"{prefix}_max"] is None else float(row[f"{prefix}_max"]),
                total=float(row[f"{prefix}_sum"] or 0.0),
                total_sq=float(row[f"{prefix}_sumsq"] or 0.0),
                bins=tuple(bins),
            )
        else:
            if spec.name in catalog:
                logical: LogicalType | None = catalog[spec.name][0].logical_type
            else:  # a query source: the baseline's type (SQLite returns booleans as 0/1)
                logical = logical_type_from_name(spec.source_type) if spec.source_type else None
            counts: dict[str, int] = {}
            for value, count in top.get(spec.name, []):
                key = canonical_category(value, logical)
                counts[key] = counts.get(key, 0) + count
            kept = capped(counts, nulls=total_rows - nonnull, max_categories=max_categories)
            folded = nonnull - kept.count
            columns[spec.name] = CategoricalProfile(
                nulls=kept.nulls,
                counts=kept.counts,
                other=kept.other + folded,
                overflow=kept.overflow or folded > 0,
            )
    return replace(shell, row_count=total_rows, columns=columns)


def _top_categories(
    dialect: SqlDialect,
    source: sa.FromClause,
    conditions: list[sa.ColumnElement[bool]],
    categorical: list[tuple[int, ColumnSpec]],
    max_categories: int,
    segment: sa.ColumnElement[Any] | None = None,
) -> sa.Select[Any]:
    """The ``max_categories + 1`` most frequent values per categorical column (and segment), ranked
    in the database. Rows: ``(label, segment, value, n)``. Where the dialect supports GROUPING
    SETS, one scan over all columns; otherwise one ``GROUP BY`` per column joined by ``UNION ALL``."""
    segment_text: sa.ColumnElement[Any] = sa.cast(segment, sa.Text) if segment is not None else sa.null()
    keys = [segment] if segment is not None else []
    if dialect.supports_grouping_sets:
        cols = [source.c[spec.name] for _, spec in categorical]
        value = sa.case(
            *((sa.func.grouping(col) == 0, sa.cast(col, sa.Text)) for col in cols), else_=sa.null()
        ).label("value")
        label = sa.case(
            *(
                (sa.func.grouping(col) == 0, sa.literal(index))
                for (index, _), col in zip(categorical, cols, strict=True)
            ),
            else_=sa.literal(-1),
        ).label("label")
        nonnull = sa.or_(*(col.is_not(None) for col in cols))
        grouped = (
            sa.select(label, segment_text.label("segment"), value, sa.func.count().label("n"))
            .select_from(source)
            .where(*conditions, nonnull)
            .group_by(sa.func.grouping_sets(*(sa.tuple_(*keys, col) for col in cols)))
        ).subquery("grouped")
        grouped_rows = sa.select(grouped.c.label, grouped.c.segment, grouped.c.value, grouped.c.n).where(
            grouped.c.value.is_not(None)
        )
    else:
        parts = []
        for index, spec in categorical:
            col = source.c[spec.name]
            parts.append(
                sa.select(
                    sa.literal(index).label("label"),
                    segment_text.label("segment"),
                    sa.cast(col, sa.Text).label("value"),
                    sa.func.count().label("n"),
                )
                .select_from(source)
                .where(*conditions, col.is_not(None))
                .group_by(*keys, col)
            )
        grouped_rows = sa.union_all(*parts).subquery("grouped").select()  # type: ignore[assignment]
    ranked_source = grouped_rows.subquery("per_value")
    rank = (
        sa.func.row_number()
        .over(
            partition_by=(ranked_source.c.label, ranked_source.c.segment),
            order_by=(ranked_source.c.n.desc(), ranked_source.c.value),
        )
        .label("rank")
    )
    ranked = sa.select(
        ranked_source.c.label, ranked_source.c.segment, ranked_source.c.value, ranked_source.c.n, rank
    ).subquery("ranked")
    return sa.select(ranked.c.label, ranked.c.segment, ranked.c.value, ranked.c.n).where(
        ranked.c.rank <= max_categories + 1
    )
