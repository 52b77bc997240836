"""The reduced label table: one row per prediction id with its winning label, kept beside the label
table so that the delayed-label join is a plain (parallel) hash join instead of a per-prediction
group.

Definition (``duplicate_labels="latest"``, the default rule of the performance check): for each id
of the label table, the winning label is the one with the latest label time, then the larger label
(the ranked order of :func:`airflow_mlobs.sources.performance_sql.performance_statement`); the row
keeps that label, its time and the number of labels of the id (``n_labels``).

When it answers exactly. A window's cut-off ``c`` picks, per prediction, the latest label with
``label_time <= c``. The reduced table keeps the latest label overall, so it gives the same cells
only when *no* label is later than ``c``: the table answers a cut-off when

* its watermark (the largest label time it has seen) is ``<= c``, and
* it is fresh: the label table's ``max(label_time)`` and ``count(*)`` equal those recorded at the
  last build or refresh (two aggregates; a backdated or deleted label changes the count).

Otherwise (a backfill with an older cut-off, labels written since the last refresh, another label
source) the check must use today's statement. :func:`label_table_state` says which and why.

Rows with a NULL id, a NULL label time or a NULL label are left out of the reduced table: their
ordering differs between dialects (see the NULL-order notes in ``performance_sql``); a label table
holding any makes :func:`label_table_state` refuse (``reason`` says so), so the fallback is taken.

Upkeep: :func:`rebuild_label_table` (full) and :func:`refresh_label_table` (only the ids whose labels
have a label time above the watermark, or the ids given by the writer): both give the same table as
a full rebuild when labels only arrive with times above the watermark or their ids are passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from airflow_mlobs.sources.dialect import dialect_for

#: Suffix of the one-row bookkeeping table beside the reduced table.
META_SUFFIX = "_meta"


@dataclass(frozen=True)
class LabelTableSpec:
    """Where the labels are and where their reduced table goes (same schema)."""

    labels: str
    id_column: str
    label_column: str
    label_time_column: str
    reduced: str
    schema: str | None = None

    @property
    def meta(self) -> str:
        return self.reduced + META_SUFFIX


@dataclass(frozen=True)
class LabelTableState:
    """Whether the reduced table can answer a cut-off: ``usable`` and the ``reason`` (text)."""

    usable: bool
    reason: str
    watermark: Any = None


def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _t(conn: Connection, spec: LabelTableSpec, name: str) -> str:
    quoted = _q(conn, name)
    return f"{_q(conn, spec.schema)}.{quoted}" if spec.schema else quoted


def _ranked_select(conn: Connection, spec: LabelTableSpec, where: str = "") -> str:
    i, lab, tm = (_q(conn, c) for c in (spec.id_column, spec.label_column, spec.label_time_column))
    src = _t(conn, spec, spec.labels)
    cond = f"{i} IS NOT NULL AND {tm} IS NOT NULL AND {lab} IS NOT NULL"
    if where:
        cond += f" AND ({where})"
    return (
        f"SELECT lid, label, label_time, n_labels FROM ("
        f"SELECT {i} AS lid, {lab} AS label, {tm} AS label_time,"
        f" COUNT(*) OVER (PARTITION BY {i}) AS n_labels,"
        f" ROW_NUMBER() OVER (PARTITION BY {i} ORDER BY {tm} DESC, {lab} DESC) AS rn"
        f" FROM {src} WHERE {cond}) ranked WHERE rn = 1"
    )


def _source_marks(conn: Connection, spec: LabelTableSpec) -> tuple[Any, int, int]:
    i, lab, tm = (_q(conn, c) for c in (spec.id_column, spec.label_column, spec.label_time_column))
    row = conn.execute(
        sa.text(
            f"SELECT MAX({tm}), COUNT(*),"
            f" SUM(CASE WHEN {i} IS NULL OR {tm} IS NULL OR {lab} IS NULL THEN 1 ELSE 0 END)"
            f" FROM {_t(conn, spec, spec.labels)}"
        )
    ).one()
    return row[0], int(row[1]), int(row[2] or 0)


def _write_meta(conn: Connection, spec: LabelTableSpec, rows: int | None = None) -> None:
    """Record the label table's marks; ``rows``: the row count to record instead of today's (a
    refresh by watermark vouches only for the rows above it)."""
    watermark, count, nulls = _source_marks(conn, spec)
    if rows is not None:
        count = rows
    meta = _t(conn, spec, spec.meta)
    conn.execute(sa.text(f"DELETE FROM {meta}"))
    conn.execute(
        sa.text(f"INSERT INTO {meta} (watermark, source_rows, null_rows) VALUES (:w, :c, :n)"),
        {"w": watermark, "c": count, "n": nulls},
    )


def rebuild_label_table(engine: Engine, spec: LabelTableSpec) -> None:
    """Drop and build the reduced table and its bookkeeping row from the whole label table."""
    catalog = {
        c["name"]: c["type"] for c in dialect_for(engine).get_columns(engine, spec.labels, spec.schema)
    }
    with engine.begin() as conn:
        red, meta = _t(conn, spec, spec.reduced), _t(conn, spec, spec.meta)
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {red}"))
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {meta}"))
        id_type, label_type, time_type = (
            _column_type(conn, spec, catalog, c)
            for c in (spec.id_column, spec.label_column, spec.label_time_column)
        )
        # declared types (CREATE TABLE AS loses them in SQLite): the check reads the time's type
        conn.execute(
            sa.text(
                f"CREATE TABLE {red} (lid {id_type}, label {label_type}, "
                f"label_time {time_type}, n_labels BIGINT)"
            )
        )
        conn.execute(
            sa.text(f"INSERT INTO {red} (lid, label, label_time, n_labels) {_ranked_select(conn, spec)}")
        )
        conn.execute(sa.text(f"CREATE INDEX {_q(conn, spec.reduced + '_lid')} ON {red} (lid)"))
        conn.execute(
            sa.text(f"CREATE TABLE {meta} (watermark {time_type}, source_rows BIGINT, null_rows BIGINT)")
        )
        _write_meta(conn, spec)


def _column_type(conn: Connection, spec: LabelTableSpec, catalog: dict[str, Any], column: str) -> str:
    if column in catalog:
        return str(catalog[column].compile(dialect=conn.dialect))
    raise ValueError(f"label table {spec.labels} has no column {column}")


def refresh_label_table(engine: Engine, spec: LabelTableSpec, ids: Iterable[Any] | None = None) -> int:
    """Recompute the reduced rows of the ids given (the label writer knows them), or, without
    ``ids``, of the ids with a label time above the watermark. Returns the number of ids redone.
    A label written with a time at or below the watermark is only caught with its id passed (or by
    a rebuild); :func:`label_table_state` then refuses the table because the count moved (a refresh
    without ``ids`` records the old count plus the rows above the watermark, so it keeps refusing
    until a rebuild or a refresh naming the id)."""
    with engine.begin() as conn:
        red, meta = _t(conn, spec, spec.reduced), _t(conn, spec, spec.meta)
        i, tm = _q(conn, spec.id_column), _q(conn, spec.label_time_column)
        src = _t(conn, spec, spec.labels)
        vouched: int | None = None
        if ids is None:
            watermark, recorded = conn.execute(sa.text(f"SELECT watermark, source_rows FROM {meta}")).one()
            rows = conn.execute(
                sa.text(f"SELECT DISTINCT {i} FROM {src} WHERE {tm} > :w"), {"w": watermark}
            ).all()
            wanted: Sequence[Any] = [r[0] for r in rows]
            newer = conn.execute(
                sa.text(f"SELECT COUNT(*) FROM {src} WHERE {tm} > :w"), {"w": watermark}
            ).scalar()
            vouched = int(recorded) + int(newer or 0)
        else:
            wanted = sorted(set(ids))
        for start in range(0, len(wanted), 500):
            chunk = list(wanted[start : start + 500])
            params = {f"i{k}": v for k, v in enumerate(chunk)}
            marks = ", ".join(f":i{k}" for k in range(len(chunk)))
            conn.execute(sa.text(f"DELETE FROM {red} WHERE lid IN ({marks})"), params)
            conn.execute(
                sa.text(
                    f"INSERT INTO {red} (lid, label, label_time, n_labels) "
                    + _ranked_select(conn, spec, f"{i} IN ({marks})")
                ),
                params,
            )
        _write_meta(conn, spec, vouched)
        return len(wanted)


def label_table_state(engine: Engine, spec: LabelTableSpec, cutoff: Any) -> LabelTableState:
    """Whether the reduced table gives the same cells as the full statement for ``cutoff``."""
    with engine.connect() as conn:
        insp = sa.inspect(conn)
        if not (
            insp.has_table(spec.reduced, schema=spec.schema) and insp.has_table(spec.meta, schema=spec.schema)
        ):
            return LabelTableState(False, f"no reduced label table {spec.reduced}")
        meta = conn.execute(
            sa.text(f"SELECT watermark, source_rows FROM {_t(conn, spec, spec.meta)}")
        ).first()
        if meta is None:
            return LabelTableState(False, f"reduced label table {spec.reduced} was never built")
        watermark, source_rows = meta[0], int(meta[1])
        now_mark, now_rows, nulls = _source_marks(conn, spec)
        # compared in the database: the watermark keeps the label time's type and text form
        later = conn.execute(
            sa.text(f"SELECT COUNT(*) FROM {_t(conn, spec, spec.meta)} WHERE watermark > :c").bindparams(
                sa.bindparam("c", type_=sa.DateTime())
            ),
            {"c": cutoff},
        ).scalar()
    if nulls:
        return LabelTableState(False, f"{nulls} label rows with a NULL id, time or label", watermark)
    if now_mark != watermark or now_rows != source_rows:
        return LabelTableState(
            False,
            f"reduced label table is stale ({source_rows} rows up to {watermark}; "
            f"the label table has {now_rows} up to {now_mark})",
            watermark,
        )
    if later:
        return LabelTableState(
            False, f"cut-off {cutoff} is before the reduced table's watermark {watermark}", watermark
        )
    return LabelTableState(True, f"reduced label table {spec.reduced} (watermark {watermark})", watermark)


@dataclass(frozen=True)
class LabelTableUpkeep:
    """What :func:`keep_label_table` did: ``action`` (``"rebuilt"`` or ``"refreshed"``), ``ids``
    (the ids recomputed by a refresh; every id for a rebuild: ``None``), ``why`` (text), and the
    bookkeeping after it: ``watermark`` (latest label time), ``source_rows`` (label rows)."""

    action: str
    why: str
    ids: int | None
    watermark: Any
    source_rows: int


def keep_label_table(engine: Engine, spec: LabelTableSpec, *, rebuild: bool = False) -> LabelTableUpkeep:
    """Bring the reduced table up to date, the cheapest exact way: a refresh of the ids labelled
    after the watermark when the label table only grew by such labels (its row count is the
    recorded one plus the labels above the watermark), otherwise (``rebuild``, no table yet, a
    backdated or deleted label) a full rebuild. Labels updated in place are not seen: pass
    ``rebuild=True`` for a label table that is not append-only."""
    why = "rebuild requested" if rebuild else ""
    if not why:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            present = insp.has_table(spec.reduced, schema=spec.schema) and insp.has_table(
                spec.meta, schema=spec.schema
            )
            meta = (
                conn.execute(
                    sa.text(f"SELECT watermark, source_rows FROM {_t(conn, spec, spec.meta)}")
                ).first()
                if present
                else None
            )
            if meta is None:
                why = f"no reduced label table {spec.reduced} yet"
            else:
                tm = _q(conn, spec.label_time_column)
                newer = conn.execute(
                    sa.text(f"SELECT COUNT(*) FROM {_t(conn, spec, spec.labels)} WHERE {tm} > :w"),
                    {"w": meta[0]},
                ).scalar()
                rows = conn.execute(sa.text(f"SELECT COUNT(*) FROM {_t(conn, spec, spec.labels)}")).scalar()
                if int(rows or 0) != int(meta[1]) + int(newer or 0):
                    why = (
                        f"label rows at or before the watermark {meta[0]} changed "
                        f"({int(meta[1])} recorded, {int(rows or 0) - int(newer or 0)} now)"
                    )
    if why:
        rebuild_label_table(engine, spec)
        redone: int | None = None
        action = "rebuilt"
    else:
        redone = refresh_label_table(engine, spec)
        action, why = "refreshed", "labels only added after the watermark"
    with engine.connect() as conn:
        row = conn.execute(sa.text(f"SELECT watermark, source_rows FROM {_t(conn, spec, spec.meta)}")).one()
    return LabelTableUpkeep(action, why, redone, row[0], int(row[1]))
