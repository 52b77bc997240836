"""Service health gathered in SQL: one aggregate statement per window, only aggregate rows fetched.

For the judged window one statement returns the request count, errors, the latency mean, max and
percentiles, the peak minute and (with an SLO) the burn-window counts, as one row. A reference
window is one more statement of the same shape; each grouping (``segment_column``, and
``model_version_column`` when no ``model_version`` is picked) one more per window, one row per
group. So at most ``(1 + groupings) x (1 + reference)`` statements: 1 to 6.

Percentiles are exact. Where the database has ``percentile_cont`` (PostgreSQL) it computes them;
elsewhere (SQLite) the statement ranks the window's latencies with ``ROW_NUMBER()`` and fetches
only the two values around each percentile's rank, ``floor(q (n - 1)) + 1`` and the next, which
:func:`~airflow_mlobs.core.health.interpolate_rank` interpolates as ``percentile_cont`` defines.
Every database difference is asked of :mod:`airflow_mlobs.sources.dialect`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.health import (
    BURN_WINDOWS,
    QUANTILES,
    UNIT_MS,
    BurnWindow,
    ErrorKind,
    GroupHealth,
    HealthObservation,
    HealthSummary,
    interpolate_rank,
    rank_position,
)
from airflow_mlobs.core.timeutil import to_naive_in
from airflow_mlobs.core.types import TIME_TYPES, LogicalType, TableRef
from airflow_mlobs.sources.dberrors import source_failure, unsupported_dialect
from airflow_mlobs.sources.dialect import SqlDialect, database_name, dialect_for
from airflow_mlobs.sources.sqlkit import DOUBLE, QueryStats, catalog_columns, db_message

#: How far back the burn windows reach before the judged window's end.
BURN_LOOKBACK = timedelta(minutes=max(BURN_WINDOWS))
#: A NULL segment or model version, as findings name it.
NULL_GROUP = "(null)"
LATENCY_TYPES = (LogicalType.INTEGER, LogicalType.FLOAT, LogicalType.DECIMAL)


@dataclass(frozen=True)
class HealthSource:
    """Where the request log is and what its columns mean.

    Exactly one of ``table`` and ``sql``. The error rule (``error_kind``): ``"boolean"`` counts a
    true ``error_column`` as an error; ``"status"`` counts an HTTP status in ``error_statuses``, or
    (without them) one >= ``error_status_min`` (500); ``"auto"`` reads the table's catalog
    (boolean or a number) and means ``"status"`` for a query. A NULL is never an error.
    """

    timestamp_column: str
    latency_column: str
    table: TableRef | None = None
    sql: str | None = None
    latency_unit: str = "ms"
    error_column: str | None = None
    error_kind: ErrorKind = "auto"
    error_statuses: tuple[int, ...] | None = None
    error_status_min: int = 500
    model_version_column: str | None = None
    model_version: str | None = None
    segment_column: str | None = None
    naive_zone: tzinfo = UTC

    def error_rule(self, kind: str) -> str:
        """The rule in words, as results state it."""
        if self.error_column is None:
            return "no error column: no request counts as an error"
        if kind == "boolean":
            return f"{self.error_column} is true"
        if self.error_statuses:
            return f"{self.error_column} in ({', '.join(str(s) for s in self.error_statuses)})"
        return f"{self.error_column} >= {self.error_status_min}"


@dataclass
class _Resolved:
    source: sa.FromClause
    where: str
    columns: dict[str, sa.ColumnElement[Any]]
    ts_type: Any
    naive: bool | None
    latency_exact: bool
    error_kind: str
    zone: tzinfo
    binds: list[int] = field(default_factory=lambda: [0])

    def bind(self, value: datetime) -> Any:
        """``value`` as a uniquely named bind parameter in the timestamp column's convention."""
        self.binds[0] += 1
        bound = to_naive_in(value, self.zone) if self.naive else value
        return sa.bindparam(f"health_t{self.binds[0]}", bound, type_=self.ts_type)


def _find(catalog: dict[str, Any], column: str, table: TableRef, role: str) -> Any:
    found = catalog.get(column) or next(
        (entry for name, entry in catalog.items() if name.lower() == column.lower()), None
    )
    if found is None:
        raise SourceError(
            f"{role} {column!r} not found in table {table}; it has: {', '.join(sorted(catalog))}"
        )
    return found


def _resolve(engine: Engine, src: HealthSource, dialect: SqlDialect) -> _Resolved:
    """The FROM clause and the column expressions, with catalog checks for a table."""
    roles = {
        "ts": ("timestamp_column", src.timestamp_column),
        "lat": ("latency_column", src.latency_column),
        "err": ("error_column", src.error_column),
        "ver": ("model_version_column", src.model_version_column),
        "seg": ("segment_column", src.segment_column),
    }
    wanted = {key: name for key, (_, name) in roles.items() if name}
    if src.table is not None:
        table = src.table
        catalog = {info.name: (info, sql_type) for info, sql_type in catalog_columns(engine, table)}
        if not catalog:
            raise SourceError(f"table {table} not found (or it has no columns)")
        infos = {key: _find(catalog, name, table, roles[key][0]) for key, name in wanted.items()}
        ts_info, ts_type = infos["ts"]
        if ts_info.logical_type not in TIME_TYPES:
            raise SourceError(
                f"timestamp_column {ts_info.name!r} of table {table} is {ts_info.physical_type}, not a "
                "timestamp or date"
            )
        lat_info, _ = infos["lat"]
        if lat_info.logical_type not in LATENCY_TYPES:
            raise SourceError(
                f"latency_column {lat_info.name!r} of table {table} is {lat_info.physical_type}, not a "
                f"number; give the latency in {src.latency_unit} as a numeric column (or cast it in sql=)"
            )
        kind: str = src.error_kind
        if "err" in infos:
            err_info, _ = infos["err"]
            detected = "boolean" if err_info.logical_type is LogicalType.BOOLEAN else "status"
            if err_info.logical_type not in (*LATENCY_TYPES, LogicalType.BOOLEAN):
                raise SourceError(
                    f"error_column {err_info.name!r} of table {table} is {err_info.physical_type}: "
                    "give a boolean (true = error) or an HTTP status column"
                )
            kind = detected if kind == "auto" else kind
        source = sa.table(
            table.name,
            *(
                sa.column(info.name, sql_type)
                for info, sql_type in {i.name: (i, t) for i, t in infos.values()}.values()
            ),
            schema=table.schema,
        )
        columns = {key: source.c[info.name] for key, (info, _) in infos.items()}
        naive = None
        if ts_info.logical_type is LogicalType.TIMESTAMP:
            naive = not bool(getattr(ts_type, "timezone", False))
        return _Resolved(
            source=source,
            where=f"table {table}",
            columns=columns,
            ts_type=ts_type,
            naive=naive,
            latency_exact=lat_info.logical_type is LogicalType.DECIMAL,
            error_kind="status" if kind == "auto" else kind,
            zone=src.naive_zone,
        )
    if not src.sql:
        raise SourceError("give either a table or a sql query")
    # End with a newline, so a final ``-- comment`` cannot swallow the subquery's closing parenthesis.
    query = src.sql.strip().rstrip(";").rstrip() + "\n"
    names = list(dict.fromkeys(wanted.values()))
    subquery = sa.text(query).columns(*(sa.column(name) for name in names)).subquery("mlobs_log")
    naive_text = dialect.naive_query_timestamps
    return _Resolved(
        source=subquery,
        where="query",
        columns={key: subquery.c[name] for key, name in wanted.items()},
        ts_type=sa.DateTime() if naive_text else None,
        naive=naive_text,
        latency_exact=True,
        error_kind="status" if src.error_kind == "auto" else src.error_kind,
        zone=src.naive_zone,
    )


def _error_flag(src: HealthSource, resolved: _Resolved) -> sa.ColumnElement[Any]:
    """1 for a request the error rule counts, else 0 (NULL is not an error)."""
    err = resolved.columns.get("err")
    if err is None:
        return sa.literal(0, sa.Integer)
    if resolved.error_kind == "boolean":
        return sa.case((err.is_(sa.true()), 1), else_=0)
    if src.error_statuses:
        return sa.case((err.in_(list(src.error_statuses)), 1), else_=0)
    return sa.case((err >= sa.literal(src.error_status_min, sa.Integer), 1), else_=0)


def health_statement(
    dialect: SqlDialect,
    src: HealthSource,
    resolved: _Resolved,
    *,
    start: datetime,
    end: datetime,
    group: str | None = None,
    burn: bool = False,
    slo_latency_ms: float | None = None,
) -> sa.Select[Any]:
    """The one aggregate statement of a window ``[start, end)``: one row, or one row per value of
    the ``group`` column (``"seg"`` or ``"ver"``). With ``burn`` the source reaches back
    :data:`BURN_LOOKBACK` before ``end`` and the burn-window counts come in the same row."""
    cols = resolved.columns
    ts, lat = cols["ts"], cols["lat"]
    factor = UNIT_MS[src.latency_unit]
    value: sa.ColumnElement[Any] = sa.cast(lat, DOUBLE)
    if factor != 1.0:
        value = value * sa.literal(factor, sa.Float)
    lat_ms = sa.case((dialect.finite(lat, exact=resolved.latency_exact), value))
    low = min(start, end - BURN_LOOKBACK) if burn else start
    conditions: list[sa.ColumnElement[bool]] = [ts >= resolved.bind(low), ts < resolved.bind(end)]
    if src.model_version is not None and "ver" in cols:
        conditions.append(
            sa.cast(cols["ver"], sa.String) == sa.bindparam("health_version", src.model_version)
        )
    selected = [ts.label("ts"), lat_ms.label("lat"), _error_flag(src, resolved).label("err")]
    if group is not None:
        selected.append(sa.cast(cols[group], sa.String).label("grp"))
    base = sa.select(*selected).select_from(resolved.source).where(*conditions).cte("mlobs_health_src")
    current: Any = base
    if low < start:
        current = sa.select(base).where(base.c.ts >= resolved.bind(start)).cte("mlobs_health_window")
    partition = [current.c.grp] if group is not None else []
    if dialect.has_percentile_cont:
        rows = current
        percentiles = [
            sa.func.percentile_cont(sa.literal(q, sa.Float)).within_group(rows.c.lat).label(f"q{i}")
            for i, q in enumerate(QUANTILES)
        ]
    else:
        # Rank the finite latencies first (NULLs after, whatever the database's NULL order) and keep
        # only the two values around each percentile's rank.
        rank = sa.func.row_number().over(
            partition_by=partition or None,
            order_by=[sa.case((current.c.lat.is_(None), 1), else_=0), current.c.lat],
        )
        count = sa.func.count(current.c.lat).over(partition_by=partition or None)
        rows = sa.select(current, rank.label("rn"), count.label("n_lat")).subquery("mlobs_health_ranked")
        percentiles = []
        for i, q in enumerate(QUANTILES):
            below = dialect.rank_floor(sa.literal(q, sa.Float) * (rows.c.n_lat - 1)) + 1
            percentiles.append(sa.func.max(sa.case((rows.c.rn == below, rows.c.lat))).label(f"q{i}"))
            percentiles.append(sa.func.max(sa.case((rows.c.rn == below + 1, rows.c.lat))).label(f"q{i}_hi"))
    aggregates = [
        sa.func.count().label("requests"),
        sa.func.count(rows.c.lat).label("latency_count"),
        sa.func.coalesce(sa.func.sum(rows.c.err), 0).label("errors"),
        sa.func.avg(rows.c.lat).label("mean"),
        sa.func.max(rows.c.lat).label("max"),
        *percentiles,
    ]
    if group is not None:
        return sa.select(rows.c.grp, *aggregates).group_by(rows.c.grp).order_by(rows.c.grp)
    window = sa.select(*aggregates).select_from(rows).subquery("mlobs_health_agg")
    per_minute = (
        sa.select(sa.func.count().label("c"))
        .select_from(current)
        .group_by(*dialect.minute_keys(current.c.ts))
    ).subquery("mlobs_health_minutes")
    peak = sa.select(sa.func.max(per_minute.c.c).label("peak")).subquery("mlobs_health_peak")
    parts: list[Any] = [window, peak]
    burn_columns: list[Any] = []
    if burn:
        counts = []
        for minutes in BURN_WINDOWS:
            since = base.c.ts >= resolved.bind(end - timedelta(minutes=minutes))
            counts += [
                sa.func.count(sa.case((since, 1))).label(f"b{minutes}_n"),
                sa.func.count(sa.case((sa.and_(since, base.c.err == 1), 1))).label(f"b{minutes}_err"),
                sa.func.count(sa.case((sa.and_(since, base.c.lat.is_not(None)), 1))).label(f"b{minutes}_lat"),
            ]
            slow = (
                sa.and_(since, base.c.lat > sa.literal(float(slo_latency_ms), sa.Float))
                if slo_latency_ms is not None
                else sa.false()
            )
            counts.append(sa.func.count(sa.case((slow, 1))).label(f"b{minutes}_slow"))
        burned = sa.select(*counts).select_from(base).subquery("mlobs_health_burn")
        parts.append(burned)
        burn_columns = list(burned.c)
    joined = parts[0]
    for part in parts[1:]:
        joined = joined.join(part, sa.true())
    return sa.select(*window.c, peak.c.peak, *burn_columns).select_from(joined)


def _summary(row: Any, dialect: SqlDialect, window_minutes: float | None, peak: bool) -> HealthSummary:
    """A fetched row as a :class:`HealthSummary` (percentiles interpolated for ranked dialects)."""
    data = row._mapping
    n = int(data["latency_count"] or 0)
    quantiles: list[float | None] = []
    for i, q in enumerate(QUANTILES):
        low = data[f"q{i}"]
        if low is None or n == 0:
            quantiles.append(None)
        elif dialect.has_percentile_cont:
            quantiles.append(float(low))
        else:
            _, t = rank_position(n, q)
            high = data[f"q{i}_hi"]
            quantiles.append(interpolate_rank(float(low), None if high is None else float(high), t))
    mean, top = data["mean"], data["max"]
    return HealthSummary(
        requests=int(data["requests"] or 0),
        errors=int(data["errors"] or 0),
        latency_count=n,
        latency_mean_ms=None if mean is None else float(mean),
        p50_ms=quantiles[0],
        p95_ms=quantiles[1],
        p99_ms=quantiles[2],
        max_ms=None if top is None else float(top),
        peak_per_minute=(int(data["peak"] or 0) if peak else None),
        window_minutes=window_minutes,
    )


def _minutes(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 60.0


def gather_health(
    engine: Engine,
    src: HealthSource,
    *,
    start: datetime,
    end: datetime,
    reference: tuple[datetime, datetime] | None = None,
    burn: bool = False,
    slo_latency_ms: float | None = None,
    dialect: SqlDialect | None = None,
) -> tuple[HealthObservation, QueryStats]:
    """Gather the window ``[start, end)`` (and the reference window, the burn windows, the
    groupings) as aggregate statements; returns the observation and what crossed the wire.

    ``dialect`` overrides the engine's (:func:`~airflow_mlobs.sources.dialect.dialect_for`), e.g.
    the generic ANSI one on PostgreSQL, to hold the ranked percentiles equal to ``percentile_cont``.
    Raises ``SourceError`` naming the table (or query) and the column for bad input, and
    ``SourceUnavailable`` for a database that is down for now.
    """
    dialect = dialect if dialect is not None else dialect_for(engine)
    where = f"table {src.table}" if src.table is not None else "query"
    columns = ", ".join(
        repr(c)
        for c in (
            src.timestamp_column,
            src.latency_column,
            src.error_column,
            src.segment_column,
            src.model_version_column,
        )
        if c
    )
    statements = rows_fetched = 0
    try:
        resolved = _resolve(engine, src, dialect)
        windows: list[tuple[datetime, datetime]] = [(start, end)] + ([reference] if reference else [])
        groups = []
        if src.segment_column:
            groups.append("seg")
        if src.model_version_column and src.model_version is None:
            groups.append("ver")
        summaries: list[HealthSummary] = []
        burn_windows: tuple[BurnWindow, ...] = ()
        grouped: dict[str, list[dict[str, HealthSummary]]] = {g: [] for g in groups}
        with engine.connect() as conn:
            for index, (lo, hi) in enumerate(windows):
                with_burn = burn and index == 0
                statement = health_statement(
                    dialect, src, resolved, start=lo, end=hi, burn=with_burn, slo_latency_ms=slo_latency_ms
                )
                row = conn.execute(statement).one()
                statements += 1
                rows_fetched += 1
                summaries.append(_summary(row, dialect, _minutes(lo, hi), peak=True))
                if with_burn:
                    data = row._mapping
                    burn_windows = tuple(
                        BurnWindow(
                            minutes=m,
                            requests=int(data[f"b{m}_n"] or 0),
                            errors=int(data[f"b{m}_err"] or 0),
                            latency_count=int(data[f"b{m}_lat"] or 0),
                            slow=int(data[f"b{m}_slow"] or 0),
                        )
                        for m in BURN_WINDOWS
                    )
                for group in groups:
                    grouped_rows = conn.execute(
                        health_statement(dialect, src, resolved, start=lo, end=hi, group=group)
                    ).all()
                    statements += 1
                    rows_fetched += len(grouped_rows)
                    grouped[group].append(
                        {
                            (NULL_GROUP if r.grp is None else str(r.grp)): _summary(
                                r, dialect, _minutes(lo, hi), peak=False
                            )
                            for r in grouped_rows
                        }
                    )
    except SQLAlchemyError as exc:
        if (unsupported := unsupported_dialect(exc, database_name(engine), what=where)) is not None:
            raise unsupported from exc
        raise source_failure(
            exc,
            f"service-health query on {where} (columns {columns}) failed: {db_message(exc)}",
            what=where,
        ) from exc
    except (ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(
            f"{where} (columns {columns}) holds a value that cannot be read "
            f"({' '.join(str(exc).split())[:200]}); cast the columns in sql="
        ) from exc

    def group_health(group: str) -> tuple[GroupHealth, ...]:
        if group not in grouped:
            return ()
        per_window = grouped[group]
        current = per_window[0]
        ref = per_window[1] if len(per_window) > 1 else {}
        return tuple(
            GroupHealth(value=k, current=v, reference=ref.get(k)) for k, v in sorted(current.items())
        )

    observation = HealthObservation(
        current=summaries[0],
        reference=summaries[1] if len(summaries) > 1 else None,
        burn=burn_windows,
        segments=group_health("seg"),
        versions=group_health("ver"),
        latency_unit=src.latency_unit,
        error_rule=src.error_rule(resolved.error_kind),
        statements=statements,
        rows_fetched=rows_fetched,
    )
    return observation, QueryStats(statements=statements, rows_fetched=rows_fetched)


def statements_for(src: HealthSource, *, reference: bool) -> int:
    """How many statements :func:`gather_health` issues for ``src``: ``(1 + groupings) x (1 +
    reference)``."""
    groupings = int(bool(src.segment_column)) + int(
        bool(src.model_version_column and src.model_version is None)
    )
    return (1 + groupings) * (2 if reference else 1)


def error_statuses_tuple(values: Sequence[int] | None) -> tuple[int, ...] | None:
    """``error_statuses`` as a tuple of integers (``None`` stays ``None``)."""
    return None if values is None else tuple(int(v) for v in values)
