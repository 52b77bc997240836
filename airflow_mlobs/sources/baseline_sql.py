"""Drift baselines built from a SQL table or query, in the database.

The reference data never leave the database: kinds come from the catalog (and a distinct-count
aggregate), bin edges from the same "lower" quantile definition as the in-memory builder
(``numpy.quantile(method="lower")``: the value at 1-based position ``floor(q * (n - 1)) + 1`` of
the sorted finite values), picked by ``ROW_NUMBER()`` so only the edge values cross the wire, and
the reference profile from :func:`airflow_mlobs.sources.drift_sql.profile_sql`. A baseline built here
equals :func:`airflow_mlobs.sources.drift_frame.build_baseline` on the same rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from airflow_mlobs.core.covariance import FOLDS, JointDriftModel, build_joint_model
from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.privacy import PseudonymKey
from airflow_mlobs.core.profile import (
    DEFAULT_BINS,
    DEFAULT_CATEGORICAL_MAX_DISTINCT,
    DEFAULT_MAX_CATEGORIES,
    Baseline,
    CategoricalProfile,
    ColumnKind,
    ColumnSpec,
    Profile,
    check_baseline_args,
    constant_split,
    quantile_levels,
    reference_joint_inputs,
    sensitive_key,
)
from airflow_mlobs.core.sampling import SampleInfo, SampleRequest
from airflow_mlobs.core.types import NUMERIC_TYPES, LogicalType, TableRef
from airflow_mlobs.sources.covariance_sql import gather_covariance_row_folds
from airflow_mlobs.sources.dberrors import (
    db_cause,
    is_transient,
    is_value_error,
    source_failure,
    unsupported_dialect,
)
from airflow_mlobs.sources.dialect import SqlDialect, database_name, dialect_for
from airflow_mlobs.sources.drift_sql import failing_columns, profile_sql, sampled_source, short_sql
from airflow_mlobs.sources.sqlkit import DOUBLE, catalog_columns, window_conditions


def quantile_positions(n: int, bins: int, *, sensitive: bool = False) -> list[int]:
    """1-based positions of the "lower" quantiles at :func:`~airflow_mlobs.core.profile.quantile_levels`
    among ``n`` sorted values, computed exactly as ``numpy.quantile(method="lower")`` does
    (``floor((n - 1) * q)``), so both builders pick the same values (for a ``sensitive`` column
    none at the extremes: :func:`~airflow_mlobs.core.profile.quantile_levels`)."""
    if n <= 0:
        return []
    levels = quantile_levels(bins, sensitive=sensitive)
    return sorted({int(p) + 1 for p in np.floor((n - 1) * levels)})


def build_baseline_sql(
    engine: Engine,
    *,
    name: str,
    version: str,
    table: TableRef | None = None,
    sql: str | None = None,
    columns: Iterable[str] | None = None,
    kinds: Mapping[str, ColumnKind] | None = None,
    timestamp_column: str | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    naive_zone: tzinfo = UTC,
    where: str | None = None,
    bins: int = DEFAULT_BINS,
    categorical_max_distinct: int = DEFAULT_CATEGORICAL_MAX_DISTINCT,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    source: str = "",
    dialect: SqlDialect | None = None,
    sensitive_columns: Iterable[str] = (),
    pseudonym_key: PseudonymKey | None = None,
    sampling: SampleRequest | None = None,
) -> Baseline:
    """Build a baseline from a table (kinds from the catalog) or a query (``kinds`` required).

    ``columns`` defaults to the table's numeric, boolean and text columns (timestamps, dates and
    binary columns are left out). ``dialect`` defaults to
    :func:`~airflow_mlobs.sources.dialect.dialect_for` the engine. Raises ``SourceError`` naming the
    table or columns on bad input, and a column with no finite value in the reference (which
    would otherwise become the category ``inf``, or a column skipped at every run).
    ``sensitive_columns`` are stored without any value, as by the in-memory builder
    (:func:`~airflow_mlobs.sources.drift_frame.build_baseline`): categorical ones by pseudonyms made
    with ``pseudonym_key`` right where their counts are fetched, numeric ones without extreme edges.

    ``sampling`` builds the baseline from a sample (block sampling of a table where the database has
    it, else the hash of ``sampling.key``; :func:`~airflow_mlobs.sources.drift_sql.sampled_source`):
    kinds, bin edges (the sample's quantiles), the reference counts and the joint model all come from
    it, and the reference profile's ``sample`` records the rate, method, seed and rows.
    """
    check_baseline_args(name, bins, max_categories)
    sensitive = set(sensitive_columns)
    dialect = dialect or dialect_for(engine)
    explicit = set(kinds or {})
    kinds = dict(kinds or {})
    logical: dict[str, LogicalType] = {}
    if table is not None:
        catalog = {info.name: info for info, _ in catalog_columns(engine, table)}
        names = (
            list(columns)
            if columns is not None
            else [
                n
                for n, info in catalog.items()
                if n != timestamp_column and info.logical_type in (*NUMERIC_TYPES, LogicalType.STRING)
            ]
        )
        unknown = [n for n in names if n not in catalog]
        if unknown:
            raise SourceError(f"baseline {name!r}: columns not in table {table}: {', '.join(unknown)}")
        logical = {n: catalog[n].logical_type for n in names}
        from_clause: sa.FromClause = sa.table(
            table.name,
            *(
                sa.column(n, t)
                for info, t in catalog_columns(engine, table)
                if (n := info.name) in set(names) | {timestamp_column}
            ),
            schema=table.schema,
        )
        where_label = f"table {table}"
    else:
        if sql is None or columns is None:
            raise SourceError(f"baseline {name!r}: a sql source needs `columns` and `kinds` for them")
        names = list(columns)
        missing_kinds = [n for n in names if n not in kinds]
        if missing_kinds:
            raise SourceError(
                f"baseline {name!r}: a sql source needs `kinds` for: {', '.join(missing_kinds)}"
            )
        query = sql.strip().rstrip(";").rstrip() + "\n"
        declared = [
            *names,
            *([timestamp_column] if timestamp_column and timestamp_column not in names else []),
        ]
        if sampling is not None and sampling.key and sampling.key not in declared:
            declared.append(sampling.key)
        from_clause = sa.text(query).columns(*(sa.column(n) for n in declared)).subquery("mlobs_src")
        where_label = "query"

    sample_info: SampleInfo | None = None
    sample_condition: sa.ColumnElement[bool] | None = None
    if sampling is not None:
        typed = (
            {info.name: (info, t) for info, t in catalog_columns(engine, table)} if table is not None else {}
        )
        from_clause, sample_info, sample_condition, _ = sampled_source(
            engine, dialect, from_clause, table, sampling, typed, where_label
        )

    conditions: list[sa.ColumnElement[bool]] = []
    if timestamp_column:
        ts = from_clause.c[timestamp_column]
        naive = None
        if table is not None:
            ts_type = ts.type
            naive = not bool(getattr(ts_type, "timezone", False))
        conditions += window_conditions(ts, naive, naive_zone, window_start, window_end)
    if where:
        conditions.append(sa.text(f"({where})"))  # type: ignore[arg-type]
    if sample_condition is not None:
        conditions.append(sample_condition)

    for n in names:
        if n in kinds:
            continue
        kind = logical.get(n)
        if kind in (LogicalType.BOOLEAN, LogicalType.STRING):
            kinds[n] = "categorical"
        elif kind in NUMERIC_TYPES:
            kinds[n] = "numeric"  # may become categorical below (few distinct values)
        else:
            raise SourceError(
                f"baseline {name!r}: column {n!r} of {where_label} is {kind}; give its kind in `kinds`"
            )

    numeric = [n for n in names if kinds[n] == "numeric"]
    # Values that may not fit a double (DECIMAL, or a query's column of unknown type) are tested
    # against exact bounds before any cast.
    exact = {n for n in numeric if table is None or logical.get(n) is LogicalType.DECIMAL}

    def kind_statement(columns: list[str]) -> sa.Select[Any]:
        aggregates: list[sa.ColumnElement[Any]] = []
        for n in columns:
            x = sa.cast(from_clause.c[n], DOUBLE)
            finite = dialect.finite(from_clause.c[n], exact=n in exact)
            aggregates += [
                sa.func.count().label(f"{n}__rows"),
                sa.func.count(from_clause.c[n]).label(f"{n}__nonnull"),
                dialect.filtered(sa.func.count, None, finite).label(f"{n}__n"),
                sa.func.count(sa.distinct(sa.case((finite, x)))).label(f"{n}__distinct"),
            ]
        return sa.select(*aggregates).select_from(from_clause).where(*conditions)

    specs: dict[str, ColumnSpec] = {}
    try:
        with engine.connect() as conn:
            if numeric:
                stats = conn.execute(kind_statement(numeric)).one()._mapping
                for n in numeric:
                    finite_n, distinct = int(stats[f"{n}__n"] or 0), int(stats[f"{n}__distinct"] or 0)
                    if not finite_n:
                        rows, nonnull = int(stats[f"{n}__rows"] or 0), int(stats[f"{n}__nonnull"] or 0)
                        raise _no_reference_values(name, n, where_label, rows, rows - nonnull, nonnull)
                    if n not in explicit and distinct <= categorical_max_distinct:
                        kinds[n] = "categorical"
                        continue
                    x = sa.cast(from_clause.c[n], DOUBLE)
                    finite = dialect.finite(from_clause.c[n], exact=n in exact)
                    ordered = (
                        sa.select(x.label("v"), sa.func.row_number().over(order_by=x).label("rn"))
                        .select_from(from_clause)
                        .where(*conditions, finite)
                        .subquery("ordered")
                    )
                    positions = quantile_positions(finite_n, bins, sensitive=n in sensitive)
                    values = (
                        conn.execute(
                            sa.select(ordered.c.v).where(ordered.c.rn.in_(positions)).order_by(ordered.c.rn)
                        )
                        .scalars()
                        .all()
                        if positions
                        else []
                    )
                    edges = constant_split(tuple(sorted({float(v) for v in values})))
                    specs[n] = ColumnSpec(
                        n,
                        "numeric",
                        edges=edges,
                        source_type=str(logical.get(n, "")),
                        sensitive=n in sensitive,
                    )
    except SQLAlchemyError as exc:
        if (unsupported := unsupported_dialect(exc, database_name(engine), what=where_label)) is not None:
            raise unsupported from exc
        if is_transient(exc):
            raise source_failure(exc, "", what=where_label) from exc
        culprits = (
            failing_columns(engine, dialect, numeric, lambda n: kind_statement([n]))
            if is_value_error(exc)
            else []
        )
        target = where_label if sql is None else f"query {short_sql(sql)!r}"
        names_text = ", ".join(repr(c) for c in culprits)
        on_columns = f" for column{'s' if len(culprits) > 1 else ''} {names_text}" if culprits else ""
        raise SourceError(
            f"baseline {name!r}: query on {target} failed{on_columns}: {db_cause(exc)}"
        ) from exc

    categorical = [n for n in names if kinds[n] == "categorical"]
    keys = {n: sensitive_key(name, n, pseudonym_key) for n in categorical if n in sensitive}

    def categorical_spec(n: str, categories: tuple[str, ...] = ()) -> ColumnSpec:
        key = keys.get(n)
        return ColumnSpec(
            n,
            "categorical",
            categories=categories,
            source_type=str(logical.get(n, "")),
            sensitive=key is not None,
            pseudonym_key_id=key.key_id if key is not None else None,
        )

    provisional = [*specs.values(), *(categorical_spec(n) for n in categorical)]
    reference, _ = profile_sql(
        engine,
        provisional,
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
        # The rate resolved once: the reference counts read the sample the edges came from.
        sampling=None
        if sample_info is None or sampling is None
        else SampleRequest(rate=sample_info.rate, seed=sampling.seed, key=sampling.key),
    )
    if sample_info is not None:
        reference = replace(reference, sample=replace(sample_info, sampled_rows=reference.row_count))
    for n in categorical:
        profile = reference.columns.get(n)
        if isinstance(profile, CategoricalProfile) and not profile.count:
            raise _no_reference_values(name, n, where_label, profile.rows, profile.nulls, 0)
        categories = tuple(profile.to_dict()["counts"]) if isinstance(profile, CategoricalProfile) else ()
        specs[n] = categorical_spec(n, categories)
    ordered_specs = {n: specs[n] for n in names if n in specs}
    joint = _joint_model(engine, from_clause, ordered_specs, reference, conditions, where_label, dialect)
    return Baseline(
        name=name,
        version=version,
        columns=ordered_specs,
        reference=reference,
        created_at=datetime.now(UTC),
        source=source or where_label,
        joint=joint if isinstance(joint, JointDriftModel) else None,
        joint_reason=joint if isinstance(joint, str) else "",
    )


def _joint_model(
    engine: Engine,
    from_clause: sa.FromClause,
    specs: Mapping[str, ColumnSpec],
    reference: Profile,
    conditions: list[sa.ColumnElement[bool]],
    where_label: str,
    dialect: SqlDialect,
) -> JointDriftModel | str:
    """The joint-drift model from ONE more statement: the reference's covariance profile in
    :data:`~airflow_mlobs.core.covariance.FOLDS` folds by ``ROW_NUMBER() OVER () % K``, shifted by
    the reference means (the twin of :func:`~airflow_mlobs.sources.drift_frame.joint_model_of`)."""
    chosen = reference_joint_inputs(specs, reference)
    if isinstance(chosen, str):
        return chosen
    columns, shift = chosen
    try:
        folds, _ = gather_covariance_row_folds(
            engine, from_clause, columns, FOLDS, shift, conditions, dialect=dialect
        )
    except SQLAlchemyError as exc:
        raise SourceError(
            f"joint drift: covariance statement on {where_label} failed: {db_cause(exc)}"
        ) from exc
    return build_joint_model(folds)


def _no_reference_values(
    name: str, column: str, where_label: str, rows: int, nulls: int, non_finite: int
) -> SourceError:
    """A baseline cannot describe a column its reference has no finite value for."""
    detail = f"{nulls} NULL" + (f", {non_finite} infinite, NaN or beyond double range" if non_finite else "")
    return SourceError(
        f"baseline {name!r}: column {column!r} of {where_label} has no finite values in the reference "
        f"({rows} rows: {detail}); fix the reference data or leave the column out of `columns`"
    )
