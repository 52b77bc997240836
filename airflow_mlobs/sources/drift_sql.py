"""Drift profiles gathered in SQL: one aggregate statement and one ranked-categories statement per
window (optionally grouped by a segment column); only aggregates cross the wire.

The in-memory gatherer (:mod:`airflow_mlobs.sources.drift_frame`) produces the same
:class:`~airflow_mlobs.core.profile.Profile` for the same rows; the definitions live in
:mod:`airflow_mlobs.core.profile`. Which statement variants apply (packed bin counts, GROUPING SETS),
how a finite number is tested and which session settings run first is the engine's
:class:`~airflow_mlobs.sources.dialect.SqlDialect`'s answer; this module builds every variant.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import types as sat
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.privacy import PseudonymKey
from airflow_mlobs.core.profile import (
    DEFAULT_MAX_CATEGORIES,
    MOMENT_SHIFT,
    MOMENT_SPLIT,
    MOMENT_TINY,
    CategoricalProfile,
    ColumnProfile,
    ColumnSpec,
    NumericProfile,
    Profile,
    capped,
    check_pseudonym_key,
    count_unseen,
    edges_key,
    moment_shift,
    split_moments,
    split_sum,
    tail_edges,
    without_extremes,
)
from airflow_mlobs.core.sampling import SampleInfo, SampleRequest, hash_threshold, resolve_rate
from airflow_mlobs.core.types import (
    NUMERIC_TYPES,
    TIME_TYPES,
    ColumnInfo,
    LogicalType,
    TableRef,
    canonical_category,
    logical_type_from_name,
)
from airflow_mlobs.sources.dberrors import (
    db_cause,
    is_out_of_range,
    is_transient,
    is_value_error,
    source_failure,
    unsupported_dialect,
)
from airflow_mlobs.sources.dialect import SqlDialect, database_name, dialect_for
from airflow_mlobs.sources.sqlkit import (
    DOUBLE,
    MAX_FLOAT,
    QueryStats,
    catalog_columns,
    db_message,
    window_conditions,
)

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
    pseudonym_key: PseudonymKey | None = None,
    sampling: SampleRequest | None = None,
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
        pseudonym_key=pseudonym_key,
        sampling=sampling,
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
    pseudonym_key: PseudonymKey | None = None,
    sampling: SampleRequest | None = None,
) -> tuple[dict[str | None, Profile], QueryStats]:
    """Profile a table or query over a window in the database: only aggregates cross the wire.

    With ``segment_column``, one profile per segment value (its text; ``None`` for NULL), from the
    same two statements grouped by the segment; more than ``max_segments`` segments is an error
    naming the column. Without it, one profile under the key ``None``.

    Two statements: one aggregate row (row count; per numeric column the null, finite and
    non-finite counts, min, max, the sum and sum of squares of the values shifted by
    :func:`~airflow_mlobs.core.profile.moment_shift` of the edges, the sums of the shifted values in
    the first and the last bin, and the count below each bin edge, from which bin counts follow;
    per categorical column the non-null count), and one grouped statement with
    the ``max_categories + 1`` most frequent values of each categorical column (ranked in the
    database; where the dialect supports GROUPING SETS, all columns in one scan). Where the dialect
    packs bin counts (PostgreSQL) the first statement packs each column's bin counts into one exact
    numeric sum (:func:`_packed_profile_statement`); elsewhere it counts the rows below each edge.
    ``dialect`` defaults to :func:`~airflow_mlobs.sources.dialect.dialect_for` the engine. The
    result equals :func:`airflow_mlobs.sources.drift_frame.profile_frame` on the same rows.

    Sensitive columns (``spec.sensitive``): a pseudonymized categorical column's ranked values are
    replaced by their keyed pseudonyms (``pseudonym_key``, which must be the baseline's) as they are
    fetched, before anything else sees them; where such a column folded values its unseen count is
    not counted in the database (its category set holds pseudonyms the database cannot compute),
    so it is left unknown and the comparison reports it as approximate. A sensitive numeric
    column's min and max are dropped as the row is read.

    A ``sql`` query has no catalog: with a window, one more statement reads one non-NULL timestamp
    to learn whether the column carries a zone (naive values are wall-clock time in
    ``naive_zone``, as for tables), and categorical values are canonicalised by the baseline's
    ``source_type`` (so a boolean stored as 0/1 is still ``true``/``false``).

    Columns missing from the source are recorded in ``missing_columns``; a column whose type no
    longer fits the baseline (text where numbers were) is recorded in ``errors``. Raises
    ``SourceError`` naming the table, column or query for anything else.

    ``sampling`` (:class:`~airflow_mlobs.core.sampling.SampleRequest`) profiles a sample: block
    sampling of a table where the dialect has it, else a hash of the integer ``sampling.key`` column
    (required there, and for ``sql=`` queries); each profile's ``sample`` says how. See
    :mod:`airflow_mlobs.core.sampling` for the caveats (block sampling is clustered).
    """
    spec_list = list(specs)
    where_label = f"table {table}" if table is not None else "query"
    statements = 0
    rows_fetched = 0
    first_row: dict[str, Any] | None = None
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
        # A query has no catalog: one row of it tells its column names (a column the baseline
        # expects and the query lacks is missing, a name given twice is an error, not a silent pick
        # of one of them) and, for a window, whether the timestamps carry a zone.
        dialect = dialect or dialect_for(engine)
        query_columns, first_row = _query_columns(engine, query, where_label, sql)
        query_columns = dialect.query_column_names(query_columns)
        statements += 1
        rows_fetched += first_row is not None
        twice = sorted({n for n in query_columns if query_columns.count(n) > 1} & set(names))
        if twice:
            raise SourceError(
                f"query {short_sql(sql)!r} returns column{'s' if len(twice) > 1 else ''} "
                f"{', '.join(map(repr, twice))} more than once; give each column one name (AS ...)"
            )
        for label, extra in (("timestamp", ts_name), ("segment", segment_column)):
            if extra and extra not in query_columns:
                raise SourceError(
                    f"{label} column {extra!r} not found in query {short_sql(sql)!r}; it returns: "
                    f"{', '.join(query_columns)}"
                )
        for spec in [s for s in present if s.name not in query_columns]:
            missing.append(spec.name)
            present.remove(spec)
        names = [n for n in names if n in query_columns]
        if sampling is not None and sampling.key and sampling.key not in names:
            if sampling.key not in query_columns:
                raise SourceError(
                    f"sample_key column {sampling.key!r} not found in query {short_sql(sql)!r}; it returns: "
                    f"{', '.join(query_columns)}"
                )
            names.append(sampling.key)
        source = sa.text(query).columns(*(sa.column(n) for n in names)).subquery("mlobs_src")
    sample_info: SampleInfo | None = None
    sample_condition: sa.ColumnElement[bool] | None = None
    if sampling is not None:
        source, sample_info, sample_condition, sample_statements = sampled_source(
            engine, dialect or dialect_for(engine), source, table, sampling, catalog, where_label
        )
        statements += sample_statements

    # Columns whose values may not fit a double: compared with exact bounds before any cast.
    exact = {
        spec.name
        for spec in present
        if spec.kind == "numeric"
        and (table is None or catalog[spec.name][0].logical_type is LogicalType.DECIMAL)
    }
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

            sample = None if first_row is None else first_row.get(ts_name)
            if sample is None and first_row is not None:  # the first row had none: look further
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
    if sample_condition is not None:
        conditions.append(sample_condition)

    dialect = dialect or dialect_for(engine)
    segment = source.c[segment_column] if segment_column else None
    builder = _packed_profile_statement if dialect.packs_bin_counts else _portable_profile_statement
    aggregate_statement, layout = builder(source, present, segment, dialect, exact)

    categorical = [(i, s) for i, s in enumerate(present) if s.kind == "categorical"]
    try:
        with engine.begin() as conn:
            dialect.prepare_session(conn, "profile")
            try:
                # A savepoint where the statement may be run again (PostgreSQL's packed bins, on an
                # overflow); none elsewhere: DuckDB has no SAVEPOINT.
                with conn.begin_nested() if dialect.packs_bin_counts else contextlib.nullcontext():
                    grouped_rows = [
                        dict(r._mapping) for r in conn.execute(aggregate_statement(conditions, True))
                    ]
            except SQLAlchemyError as exc:
                if not dialect.packs_bin_counts or not is_out_of_range(exc):
                    raise
                # A square overflowed or underflowed (PostgreSQL raises): the split moments.
                statements += 1
                aggregate_statement, layout = builder(source, present, segment, dialect, exact, split=True)
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
            # Where a column's values were folded, the values not in the baseline's category set
            # are counted in the database (a rare third statement; otherwise they follow from the
            # ranked categories exactly).
            folded = _folded_columns(categorical, rows_by_segment, top)
            unseen_counts: dict[tuple[str | None, str], int] = {}
            if folded:
                unseen_statement = _unseen_statement(source, conditions, folded, catalog, segment, dialect)
                for unseen_row in conn.execute(unseen_statement):
                    counts_row = dict(unseen_row._mapping)
                    key = counts_row.pop("segment", None)
                    rows_fetched += 1
                    for index, spec in folded:
                        unseen_counts[(None if key is None else str(key), spec.name)] = int(
                            counts_row[f"u{index}"] or 0
                        )
                statements += 1
    except SQLAlchemyError as exc:
        if (unsupported := unsupported_dialect(exc, database_name(engine), what=where_label)) is not None:
            raise unsupported from exc
        if is_transient(exc):
            raise source_failure(exc, "", what=where_label) from exc
        culprits = (
            []
            if not is_value_error(exc)
            else failing_columns(
                engine,
                dialect,
                present,
                lambda spec: builder(source, [spec], None, dialect, exact, split=True)[0](conditions, False),
            )
        )
        raise SourceError(_failure_message(exc, where_label, sql, culprits)) from exc

    profiles: dict[str | None, Profile] = {}
    for spec in present:
        check_pseudonym_key(spec, pseudonym_key)
    for segment_key, row in rows_by_segment.items():
        profiles[segment_key] = _assemble_profile(
            row,
            {name: values for (key, name), values in top.items() if key == segment_key},
            {name: n for (key, name), n in unseen_counts.items() if key == segment_key},
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
            pseudonym_key,
        )
    if sample_info is not None:
        profiles = {
            key: replace(p, sample=replace(sample_info, sampled_rows=p.row_count))
            for key, p in profiles.items()
        }
    return profiles, QueryStats(statements=statements, rows_fetched=rows_fetched)


def sampled_source(
    engine: Engine,
    dialect: SqlDialect,
    source: sa.FromClause,
    table: TableRef | None,
    sample: SampleRequest,
    catalog: dict[str, tuple[ColumnInfo, sat.TypeEngine[Any]]],
    where_label: str,
) -> tuple[sa.FromClause, SampleInfo, sa.ColumnElement[bool] | None, int]:
    """The source a sample reads (block-sampled table, or the source with a key-hash condition),
    what the sample says about itself, and how many statements resolving it took. ``catalog`` maps
    a table's column names to their catalog entry and type (the key column is added to a table
    clause that lacks it). Shared with the baseline builder (``baseline_sql``)."""
    statements = 0
    estimate: int | None = None
    if sample.rate is None:
        try:
            with engine.connect() as conn:
                if isinstance(source, sa.TableClause):
                    estimate = dialect.row_estimate(conn, source)
                else:
                    estimate = int(conn.execute(sa.select(sa.func.count()).select_from(source)).scalar() or 0)
        except SQLAlchemyError as exc:
            raise SourceError(
                f"row estimate of {where_label} for sample_rows failed: {db_message(exc)}"
            ) from exc
        statements += 1
    rate = resolve_rate(sample, estimate)
    if sample.key is None and isinstance(source, sa.TableClause):
        block = dialect.block_sample(source, rate, sample.seed)
        if block is not None:
            info = SampleInfo(
                rate=rate,
                method="system",
                seed=sample.seed,
                sampled_rows=0,
                estimate=estimate,
                repeatable=dialect.block_sample_repeatable,
            )
            return block, info, None, statements
    if sample.key is None:
        what = f"{where_label} on {database_name(engine)}"
        reason = (
            "block sampling needs a table, not sql="
            if table is None
            else f"{database_name(engine)} has no block sampling (TABLESAMPLE SYSTEM)"
        )
        raise SourceError(
            f"sampling {what} needs sample_key= (an integer key column hashed to pick rows): {reason}"
        )
    if table is not None and sample.key not in catalog:
        raise SourceError(
            f"sample_key column {sample.key!r} not found in table {table}; it has: {', '.join(sorted(catalog))}"
        )
    if table is not None and isinstance(source, sa.TableClause) and sample.key not in source.c:
        source = sa.table(
            source.name,
            *(sa.column(c.name, c.type) for c in source.c),
            sa.column(sample.key, catalog[sample.key][1]),
            schema=source.schema,
        )
    condition = dialect.key_hash_keep(source.c[sample.key], hash_threshold(rate), sample.seed)
    info = SampleInfo(
        rate=rate, method="key-hash", seed=sample.seed, sampled_rows=0, key=sample.key, estimate=estimate
    )
    return source, info, condition, statements


_StatementFor = Callable[[list[sa.ColumnElement[bool]], bool], sa.Select[Any]]
#: Decimal digits per bin in PostgreSQL's packed bin counts: 10**19 > 2**63, the largest ``count()``.
_BIN_DIGITS = 19


_SCALE = 2.0**-MOMENT_SHIFT


def _double(value: float) -> sa.ColumnElement[Any]:
    """A bound double literal (``CAST(:p AS FLOAT)``): an edge or a moment shift."""
    return sa.cast(sa.literal(value, sa.Float), DOUBLE)


_Column = TypeVar("_Column", ColumnSpec, str)


def _portable_profile_statement(
    source: sa.FromClause,
    present: list[ColumnSpec],
    segment: sa.ColumnElement[Any] | None,
    dialect: SqlDialect,
    exact: set[str] = frozenset(),  # type: ignore[assignment]
    split: bool = True,
) -> tuple[_StatementFor, list[tuple[ColumnSpec, int]]]:
    """The profile aggregates for any dialect (always the split moments: ``split`` is ignored): per numeric column the finite count, min, max, the
    split moments (sum and sum of squares of the values below :data:`MOMENT_SPLIT`, and count, sum
    and sum of squares of those above it scaled by ``2**-MOMENT_SHIFT``), all of the shifted values
    ``y = x - shift``, the same split sums of ``y`` in the first (``x < e[0]``) and the last
    (``x >= e[-1]``) bin, and ``count(*) FILTER (WHERE x < edge)`` per bin edge. Databases that do not raise on a double
    overflow return an infinity or 0 for a square, so the split is not left to an error. Returns a function of the window conditions
    (and whether to group by the segment) and the numeric columns' layout. ``exact`` names the
    columns tested for finiteness before the cast (:meth:`SqlDialect.finite`).

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
        x = sa.cast(col, DOUBLE)
        finite = dialect.finite(col, exact=spec.name in exact)
        numeric_value = dialect.stored_number(col)
        if numeric_value is not None:
            aggregates.append(
                dialect.filtered(
                    sa.func.count, None, sa.and_(col.is_not(None), sa.not_(numeric_value))
                ).label(f"{prefix}_invalid")
            )
        else:
            aggregates.append(sa.literal(0).label(f"{prefix}_invalid"))
        # The moments are sums of the shifted values y = x - shift (core.profile.moment_shift).
        shift = moment_shift(spec.edges)
        y = x - _double(shift) if shift else x
        small = sa.and_(finite, y > -MOMENT_SPLIT, y < MOMENT_SPLIT)
        squared = sa.and_(small, sa.func.abs(y) >= MOMENT_TINY)
        big = sa.and_(finite, sa.or_(y <= -MOMENT_SPLIT, y >= MOMENT_SPLIT))
        # CAST groups the product: `y * s * y * s` would overflow from the left.
        scaled = sa.cast(y * sa.literal(_SCALE, sa.Float), DOUBLE)
        aggregates += [
            dialect.filtered(sa.func.count, None, finite).label(f"{prefix}_count"),
            dialect.filtered(sa.func.min, x, finite).label(f"{prefix}_min"),
            dialect.filtered(sa.func.max, x, finite).label(f"{prefix}_max"),
            dialect.filtered(sa.func.sum, y, small).label(f"{prefix}_sum"),
            dialect.filtered(sa.func.sum, y * y, squared).label(f"{prefix}_sumsq"),
            dialect.filtered(sa.func.count, None, big).label(f"{prefix}_bign"),
            dialect.filtered(sa.func.sum, scaled, big).label(f"{prefix}_bigsum"),
            dialect.filtered(sa.func.sum, scaled * scaled, big).label(f"{prefix}_bigsq"),
        ]
        if spec.edges:  # the open-ended bins' totals, split like the moments
            low_edge, high_edge = tail_edges(spec.edges) or (0.0, 0.0)
            for side, in_bin in (("low", x < _double(low_edge)), ("high", x >= _double(high_edge))):
                aggregates += [
                    dialect.filtered(sa.func.sum, y, sa.and_(small, in_bin)).label(f"{prefix}_{side}sum"),
                    dialect.filtered(sa.func.sum, scaled, sa.and_(big, in_bin)).label(f"{prefix}_{side}big"),
                ]
        if numeric_value is not None:
            below_edge = [sa.and_(finite, x < sa.literal(edge, sa.Float)) for edge in spec.edges]
            aggregates.append(sa.literal(0).label(f"{prefix}_neginf"))
        else:
            # `x < edge` is false for NULL, NaN and +inf and true for -inf, so one -inf count per
            # column replaces a finiteness test per edge (measured: half the statement's time).
            below_edge = [x < sa.literal(edge, sa.Float) for edge in spec.edges]
            aggregates.append(dialect.filtered(sa.func.count, None, x < -MAX_FLOAT).label(f"{prefix}_neginf"))
        for edge_index, condition in enumerate(below_edge):
            aggregates.append(
                dialect.filtered(sa.func.count, None, condition).label(f"{prefix}_lt{edge_index}")
            )
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
    exact: set[str] = frozenset(),  # type: ignore[assignment]
    split: bool = False,
) -> tuple[_StatementFor, list[tuple[ColumnSpec, int]]]:
    """The profile aggregates where the dialect packs bin counts (PostgreSQL), about 2.5x faster
    than the portable statement.

    * A subquery computes each numeric column's finite value once per row (``CASE WHEN x >= -max
      AND x <= max THEN x END``: NULL for NULL, NaN and +-inf) and, when the column's moment shift
      is not 0, the finite shifted value ``d = x - shift`` the same way; count, min and max
      aggregate the first, sum and sum of squares the second with no FILTER, and the first and the
      last bin's totals are ``sum(d) FILTER (WHERE f < e[0])`` and ``... (WHERE f >= e[-1])``
      (measured: cheaper than ``sum(CASE ...)``). PostgreSQL raises on a double overflow or
      underflow ("value out of range", SQLSTATE 22003, where other databases return infinity or
      0): with ``split`` (the statement run again after that error, so ordinary data pays nothing)
      the subquery also gives the shifted value when below :data:`MOMENT_SPLIT`, its square from
      :data:`MOMENT_TINY` up, and the shifted value times ``2**-MOMENT_SHIFT`` when above the split, the
      split moments of :mod:`airflow_mlobs.core.profile`. ``clock_timestamp()`` (volatile, parallel safe) in
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
            col = source.c[spec.name]
            x = sa.cast(col, DOUBLE)
            finite = dialect.finite(col, exact=spec.name in exact)
            # The moments are sums of the shifted values y = x - shift (core.profile.moment_shift),
            # computed once per row (`d`; `f` itself when the shift is 0).
            shift = moment_shift(spec.edges)
            y = x - _double(shift) if shift else x
            inner.append(sa.case((finite, x)).label(f"f{index}"))
            if shift:
                inner.append(sa.case((finite, y)).label(f"d{index}"))
            if not split:
                continue
            # |y| below the split (false for NULL, NaN and +-inf); where a value may not fit a
            # double, on the value itself (shift 0) or only once it is known to be finite. Squares
            # only from 2**-500 up: PostgreSQL raises on an underflow.
            magnitude: sa.ColumnElement[Any]
            if not shift:
                magnitude = sa.func.abs(col) if spec.name in exact else sa.func.abs(x)
                bound_type: Any = sa.Numeric if spec.name in exact else sa.Float
            else:
                magnitude = sa.case((finite, sa.func.abs(y))) if spec.name in exact else sa.func.abs(y)
                bound_type = sa.Float
            small = magnitude < sa.literal(MOMENT_SPLIT, bound_type)
            squared = sa.and_(small, magnitude >= sa.literal(MOMENT_TINY, bound_type))
            inner += [
                sa.case((small, y)).label(f"s{index}"),
                sa.case((squared, y * y)).label(f"q{index}"),
                sa.case((sa.and_(sa.not_(small), finite), y * sa.literal(_SCALE, sa.Float))).label(
                    f"b{index}"
                ),
            ]
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
                dialect.filtered(sa.func.sum, weights[bucket], f.is_not(None)).label(f"{prefix}_packed"),
            ]
            d = rows.c[f"d{index}"] if moment_shift(spec.edges) else f
            outer: list[tuple[str, sa.ColumnElement[bool]]] = (
                [("low", f < _double(tail[0])), ("high", f >= _double(tail[1]))]
                if (tail := tail_edges(spec.edges)) is not None
                else []
            )
            if split:
                big_value = rows.c[f"b{index}"]
                aggregates += [
                    sa.func.sum(rows.c[f"s{index}"]).label(f"{prefix}_sum"),
                    sa.func.sum(rows.c[f"q{index}"]).label(f"{prefix}_sumsq"),
                    sa.func.count(big_value).label(f"{prefix}_bign"),
                    sa.func.sum(big_value).label(f"{prefix}_bigsum"),
                    sa.func.sum(big_value * big_value).label(f"{prefix}_bigsq"),
                ]
                for side, in_bin in outer:  # the open-ended bins' totals, split like the moments
                    aggregates += [
                        dialect.filtered(sa.func.sum, rows.c[f"s{index}"], in_bin).label(
                            f"{prefix}_{side}sum"
                        ),
                        dialect.filtered(sa.func.sum, big_value, in_bin).label(f"{prefix}_{side}big"),
                    ]
            else:
                aggregates += [
                    sa.func.sum(d).label(f"{prefix}_sum"),
                    sa.func.sum(d * d).label(f"{prefix}_sumsq"),
                ]
                for side, in_bin in outer:  # the open-ended bins' totals
                    aggregates.append(dialect.filtered(sa.func.sum, d, in_bin).label(f"{prefix}_{side}sum"))
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
    unseen_counts: dict[str, int],
    present: list[ColumnSpec],
    catalog: dict[str, tuple[ColumnInfo, sat.TypeEngine[Any]]],
    max_categories: int,
    shell: Profile,
    pseudonym_key: PseudonymKey | None = None,
) -> Profile:
    """One segment's aggregate row and ranked categories as a :class:`Profile` (``shell`` gives
    the window, edges key, missing columns and errors); sensitive columns as
    :func:`profile_sql_segments` says."""
    columns: dict[str, ColumnProfile] = {}
    total_rows = int(row["rows"])
    for index, spec in enumerate(present):
        prefix = f"c{index}"
        nonnull = int(row[f"{prefix}_nonnull"] or 0)
        if spec.kind == "numeric":
            count = int(row[f"{prefix}_count"] or 0)
            invalid = int(row[f"{prefix}_invalid"] or 0)
            bins = row[f"{prefix}_bins"]
            low = None if row[f"{prefix}_min"] is None else float(row[f"{prefix}_min"])
            high = None if row[f"{prefix}_max"] is None else float(row[f"{prefix}_max"])
            shift = moment_shift(spec.edges)
            total, total_sq, scale_exp = split_moments(
                float(row[f"{prefix}_sum"] or 0.0),
                float(row[f"{prefix}_sumsq"] or 0.0),
                float(row.get(f"{prefix}_bigsum") or 0.0),
                float(row.get(f"{prefix}_bigsq") or 0.0),
                int(row.get(f"{prefix}_bign") or 0),
            )
            outer: list[float | None] = [
                split_sum(
                    float(row.get(f"{prefix}_{side}sum") or 0.0),
                    float(row.get(f"{prefix}_{side}big") or 0.0),
                    scale_exp,
                )
                if spec.edges
                else None
                for side in ("low", "high")
            ]
            if not scale_exp and (
                (low is not None and low - shift <= -MOMENT_SPLIT)
                or (high is not None and high - shift >= MOMENT_SPLIT)
            ):
                # Plain sums that did not overflow, in the split moments' units (as in memory).
                total = math.ldexp(total, -MOMENT_SHIFT)
                total_sq = math.ldexp(total_sq, -2 * MOMENT_SHIFT)
                outer = [None if t is None else math.ldexp(t, -MOMENT_SHIFT) for t in outer]
                scale_exp = MOMENT_SHIFT
            columns[spec.name] = NumericProfile(
                count=count,
                nulls=total_rows - nonnull,
                non_finite=nonnull - count - invalid,
                invalid=invalid,
                min=low,
                max=high,
                total=total,
                total_sq=total_sq,
                bins=tuple(bins),
                scale_exp=scale_exp,
                shift=shift,
                low_total=outer[0],
                high_total=outer[1],
            )
        else:
            if spec.name in catalog:
                logical: LogicalType | None = catalog[spec.name][0].logical_type
            else:  # a query source: the baseline's type (SQLite returns booleans as 0/1)
                logical = logical_type_from_name(spec.source_type) if spec.source_type else None
            counts: dict[str, int] = {}
            for value, count in top.get(spec.name, []):
                key = spec.category_key(canonical_category(value, logical), pseudonym_key)
                counts[key] = counts.get(key, 0) + count
            kept = capped(counts, nulls=total_rows - nonnull, max_categories=max_categories)
            folded = nonnull - kept.count
            unseen = count_unseen(counts, spec.categories)
            if folded and unseen is not None:
                # A pseudonymized column's unseen values cannot be counted in the database.
                unseen = None if spec.pseudonym_key_id else unseen_counts.get(spec.name, unseen)
            columns[spec.name] = CategoricalProfile(
                nulls=kept.nulls,
                counts=kept.counts,
                other=kept.other + folded,
                overflow=kept.overflow or folded > 0,
                unseen=unseen,
            )
    return without_extremes(replace(shell, row_count=total_rows, columns=columns), present)


def _top_categories(
    dialect: SqlDialect,
    source: sa.FromClause,
    conditions: list[sa.ColumnElement[bool]],
    categorical: list[tuple[int, ColumnSpec]],
    max_categories: int,
    segment: sa.ColumnElement[Any] | None = None,
) -> sa.Select[Any]:
    """The ``max_categories + 1`` most frequent values per categorical column (and segment), ranked
    in the database. Rows: ``(label, segment, value, n)``.

    With segments: where the dialect supports GROUPING SETS, one scan over all columns; otherwise one
    ``GROUP BY`` per column joined by ``UNION ALL``, ranked by ``row_number()``.

    Without segments the columns are split by what the baseline knows of them. A column with fewer
    baseline categories than ``max_categories`` ("narrow") is counted with the other narrow columns
    in one GROUPING SETS scan (ranking a few distinct values is free; one scan instead of one per
    column: 5 columns at 10M rows on PostgreSQL 5.4 s instead of 10.5 s). Any other column (folded
    in the baseline, or with no baseline categories: possibly 1,000,000 distinct values) gets its own
    ``GROUP BY ... ORDER BY n DESC, value LIMIT k + 1``, a top-N sort keeping k + 1 rows instead of
    ``row_number()`` over every distinct value, which sorts them all (about 3.5x faster on a column
    with 1,000,000 distinct values). Same rows either way (see benchmarks/README.md)."""
    if segment is not None:
        return _ranked_per_value(dialect, source, conditions, categorical, max_categories, segment)
    narrow = [
        (i, spec) for i, spec in categorical if spec.categories and len(spec.categories) < max_categories
    ]
    if len(narrow) < 2 or not dialect.supports_grouping_sets:
        narrow = []
    parts: list[sa.Select[Any]] = []
    if narrow:
        parts.append(_ranked_per_value(dialect, source, conditions, narrow, max_categories, None))
    for index, spec in categorical:
        if (index, spec) in narrow:
            continue
        col = source.c[spec.name]
        counted = (
            sa.select(
                sa.literal(index).label("label"),
                sa.null().label("segment"),
                sa.cast(col, sa.Text).label("value"),
                sa.func.count().label("n"),
            )
            .select_from(source)
            .where(*conditions, col.is_not(None))
            .group_by(col)
        ).subquery(f"counted_{index}")
        top_n = (
            sa.select(counted.c.label, counted.c.segment, counted.c.value, counted.c.n)
            .order_by(counted.c.n.desc(), counted.c.value)
            .limit(max_categories + 1)
        ).subquery(f"top_{index}")
        parts.append(sa.select(top_n.c.label, top_n.c.segment, top_n.c.value, top_n.c.n))
    if len(parts) == 1:
        return parts[0]
    merged = sa.union_all(*parts).subquery("top_categories")
    return sa.select(merged.c.label, merged.c.segment, merged.c.value, merged.c.n)


def _ranked_per_value(
    dialect: SqlDialect,
    source: sa.FromClause,
    conditions: list[sa.ColumnElement[bool]],
    categorical: list[tuple[int, ColumnSpec]],
    max_categories: int,
    segment: sa.ColumnElement[Any] | None,
) -> sa.Select[Any]:
    """Every distinct value's count per column (and segment), in one GROUPING SETS scan where the
    dialect has it (else one ``GROUP BY`` per column), ranked by ``row_number()``; the first
    ``max_categories + 1`` of each column. Rows: ``(label, segment, value, n)``."""
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


def _folded_columns(
    categorical: list[tuple[int, ColumnSpec]],
    rows_by_segment: dict[str | None, dict[str, Any]],
    top: dict[tuple[str | None, str], list[tuple[Any, int]]],
) -> list[tuple[int, ColumnSpec]]:
    """The categorical columns (with a baseline category set) whose ranked values do not cover all
    their non-NULL values in some segment: their unseen count must come from the database."""
    folded = []
    for index, spec in categorical:
        if not spec.categories or spec.pseudonym_key_id:
            continue
        for key, row in rows_by_segment.items():
            listed = sum(n for _, n in top.get((key, spec.name), []))
            if int(row.get(f"c{index}_nonnull") or 0) > listed:
                folded.append((index, spec))
                break
    return folded


def _unseen_statement(
    source: sa.FromClause,
    conditions: list[sa.ColumnElement[bool]],
    folded: list[tuple[int, ColumnSpec]],
    catalog: dict[str, tuple[ColumnInfo, sat.TypeEngine[Any]]],
    segment: sa.ColumnElement[Any] | None,
    dialect: SqlDialect,
) -> sa.Select[Any]:
    """Per folded column, the non-NULL values not in the baseline's category set
    (``count(*) FILTER (WHERE x NOT IN (...))``). Numbers are compared as doubles (category text
    ``"2"`` is the value 2.0 whatever the database prints), everything else as text."""
    aggregates: list[sa.ColumnElement[Any]] = []
    for index, spec in folded:
        col = source.c[spec.name]
        logical = (
            catalog[spec.name][0].logical_type
            if spec.name in catalog
            else logical_type_from_name(spec.source_type)
            if spec.source_type
            else None
        )
        numbers = _as_numbers(spec.categories) if logical in NUMERIC_TYPES else None
        known = (
            sa.cast(col, DOUBLE).in_(numbers)
            if numbers is not None
            else sa.cast(col, sa.Text).in_(list(spec.categories))
        )
        aggregates.append(
            dialect.filtered(sa.func.count, None, sa.and_(col.is_not(None), sa.not_(known))).label(
                f"u{index}"
            )
        )
    statement = sa.select(*aggregates).select_from(source).where(*conditions)
    if segment is not None:
        statement = statement.add_columns(sa.cast(segment, sa.Text).label("segment")).group_by(segment)
    return statement


def _as_numbers(categories: Sequence[str]) -> list[float] | None:
    """The categories as finite doubles, or ``None`` when one is not a finite number."""
    values = []
    for text in categories:
        try:
            value = float(text)
        except ValueError:
            return None
        if value != value or value in (float("inf"), float("-inf")):
            return None
        values.append(value)
    return values


def short_sql(sql: str, limit: int = 160) -> str:
    """A query on one line, cut to ``limit`` characters, for messages."""
    text = " ".join(sql.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def failing_columns(
    engine: Engine,
    dialect: SqlDialect,
    columns: Sequence[_Column],
    statement_for: Callable[[_Column], sa.Select[Any]],
) -> list[str]:
    """After a statement over several columns failed for its data (not an outage): which columns
    fail alone. Each column's aggregates run by themselves (one statement per column, only on this
    error path); an empty list when none or every one fails (the failure is not a column's)."""
    failing: list[str] = []
    for column in columns:
        try:
            with engine.begin() as conn:
                dialect.prepare_session(conn, "profile")
                conn.execute(statement_for(column)).all()
        except SQLAlchemyError:
            failing.append(column.name if isinstance(column, ColumnSpec) else str(column))
    if len(columns) > 1 and len(failing) == len(columns):
        return []
    return failing


def _failure_message(exc: SQLAlchemyError, where_label: str, sql: str | None, culprits: Sequence[str]) -> str:
    """``profile query on <table or query> failed [for column 'x']: <database's message>``, the
    query quoted (shortened) for a ``sql`` source."""
    target = where_label if sql is None else f"query {short_sql(sql)!r}"
    columns = ""
    if culprits:
        names = ", ".join(repr(c) for c in culprits)
        columns = f" for column{'s' if len(culprits) > 1 else ''} {names}"
    return f"profile query on {target} failed{columns}: {db_cause(exc)}"


def _query_columns(
    engine: Engine, query: str, where_label: str, sql: str
) -> tuple[list[str], dict[str, Any] | None]:
    """The column names a query returns, in order and with repeats, and its first row (``None``
    when it has none): ``SELECT * FROM (<query>) LIMIT 1``."""
    statement: sa.Select[Any] = (
        sa.select(sa.literal_column("*")).select_from(sa.text(f"({query}) AS mlobs_probe")).limit(1)
    )
    try:
        with engine.connect() as conn:
            result = conn.execute(statement)
            keys = list(map(str, result.keys()))
            row = result.first()
    except SQLAlchemyError as exc:
        if (unsupported := unsupported_dialect(exc, database_name(engine), what=where_label)) is not None:
            raise unsupported from exc
        if is_transient(exc):
            raise source_failure(exc, "", what=where_label) from exc
        raise SourceError(f"profile query on query {short_sql(sql)!r} failed: {db_cause(exc)}") from exc
    first = None if row is None else dict(zip(keys, row, strict=True))
    return keys, first
