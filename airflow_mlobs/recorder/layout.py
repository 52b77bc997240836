"""The prediction log's layout: table and column names, and the SQL types of logged values.

The default layout, which ``PerformanceCheckOperator`` reads without configuration:

``mlobs_prediction_log`` (one row per kept prediction)
    ``prediction_id`` text, unique (given, or a generated uuid4 hex); ``predicted_at`` timestamp
    with time zone, UTC, not null; ``model_version`` text; ``score`` double, nullable;
    ``predicted_class`` nullable (the type of the first batch's classes; text when the first batch
    has none and ``column_types`` does not say); then one column per feature, each typed from the
    first batch's values, so the drift check reads them as any other table.
``mlobs_labels`` (one row per label)
    ``prediction_id`` text; ``label`` (the type of the first label); ``labelled_at`` timestamp
    with time zone, UTC, not null.
``mlobs_prediction_log_meta`` (``<table>_meta``: one row per treatment, written once)
    ``log_table``, ``column_name``, ``treatment`` (``pseudonym``, ``redacted``, ``dropped`` or
    ``sampled``), ``key_id`` (the pseudonym key's fingerprint, never the key; empty otherwise),
    ``detail`` (the sampling rate), ``recorded_at``.

Types come from Python values (numpy and pandas values are read as their Python equivalents):
``bool`` -> BOOLEAN, ``int`` -> BIGINT, ``float`` (or ints mixed with floats) -> DOUBLE, ``str``
-> TEXT, ``datetime`` -> TIMESTAMP WITH TIME ZONE, ``date`` -> DATE, ``Decimal`` -> NUMERIC,
``bytes`` -> BLOB/BYTEA.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from airflow_mlobs.core.errors import SourceError

DEFAULT_TABLE = "mlobs_prediction_log"
DEFAULT_LABELS_TABLE = "mlobs_labels"
#: The meta table is named after the log: ``<table>_meta``.
META_SUFFIX = "_meta"

PREDICTION_ID = "prediction_id"
PREDICTED_AT = "predicted_at"
MODEL_VERSION = "model_version"
SCORE = "score"
PREDICTED_CLASS = "predicted_class"
LABEL = "label"
LABELLED_AT = "labelled_at"
#: The log's own columns, in table order; features follow.
RESERVED = (PREDICTION_ID, PREDICTED_AT, MODEL_VERSION, SCORE, PREDICTED_CLASS)

#: What ``PerformanceSpec`` should be given (or default to) to read the default layout.
PERFORMANCE_DEFAULTS: dict[str, str] = {
    "predictions_table": DEFAULT_TABLE,
    "labels_table": DEFAULT_LABELS_TABLE,
    "id_column": PREDICTION_ID,
    "prediction_time_column": PREDICTED_AT,
    "label_column": LABEL,
    "label_time_column": LABELLED_AT,
    "score_column": SCORE,
    "model_version_column": MODEL_VERSION,
}

#: The names ``column_types`` accepts besides SQLAlchemy types and Python classes.
_TYPE_NAMES: dict[str, Any] = {
    "bool": sa.Boolean,
    "boolean": sa.Boolean,
    "int": sa.BigInteger,
    "integer": sa.BigInteger,
    "float": sa.Double,
    "double": sa.Double,
    "str": sa.Text,
    "text": sa.Text,
    "timestamp": lambda: sa.DateTime(timezone=True),
    "datetime": lambda: sa.DateTime(timezone=True),
    "date": sa.Date,
    "decimal": sa.Numeric,
}
_PY_TYPES: dict[type, Any] = {
    bool: sa.Boolean,
    int: sa.BigInteger,
    float: sa.Double,
    str: sa.Text,
    datetime: lambda: sa.DateTime(timezone=True),
    date: sa.Date,
    Decimal: sa.Numeric,
    bytes: sa.LargeBinary,
}


def declared_type(value: Any, *, column: str, table: str) -> sa.types.TypeEngine[Any]:
    """A ``column_types`` entry as a SQLAlchemy type: a type (class or instance), a Python class
    (``int``, ``str``...) or a name (``"float"``, ``"timestamp"``...)."""
    if isinstance(value, sa.types.TypeEngine):
        return value
    if isinstance(value, type) and issubclass(value, sa.types.TypeEngine):
        return value()
    factory = _PY_TYPES.get(value) if isinstance(value, type) else None
    if factory is None and isinstance(value, str):
        factory = _TYPE_NAMES.get(value.strip().lower())
    if factory is None:
        raise SourceError(
            f"table {table}: column_types[{column!r}] = {value!r} is not a type; give a SQLAlchemy "
            f"type, a Python class (int, float, str, bool, datetime) or one of {sorted(_TYPE_NAMES)}"
        )
    return factory()  # type: ignore[no-any-return]


def inferred_type(kinds: set[type], *, column: str, table: str) -> sa.types.TypeEngine[Any] | None:
    """The SQL type for a column whose non-missing values have the Python types ``kinds``
    (``None`` when there are none: the caller asks for ``column_types``)."""
    if not kinds:
        return None
    if kinds == {bool}:
        return sa.Boolean()
    if kinds <= {int, bool}:
        return sa.BigInteger()
    if kinds <= {int, float, bool}:
        return sa.Double()
    for base in (str, datetime, date, Decimal, bytes):
        if all(issubclass(kind, base) for kind in kinds):
            # datetime before date: a datetime is a date.
            return _PY_TYPES[base]()  # type: ignore[no-any-return]
    names = ", ".join(sorted(kind.__name__ for kind in kinds))
    raise SourceError(
        f"table {table}: column {column!r} mixes values of types {names}; log one type per column "
        f"(or declare it: column_types={{{column!r}: str}})"
    )


def log_table(
    name: str,
    schema: str | None,
    features: dict[str, sa.types.TypeEngine[Any]],
    predicted_class: sa.types.TypeEngine[Any],
) -> sa.Table:
    """The prediction log table (not yet created) with the reserved columns, then ``features``."""
    columns: list[sa.Column[Any]] = [
        sa.Column(PREDICTION_ID, sa.Text, nullable=False, unique=True),
        sa.Column(PREDICTED_AT, sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column(MODEL_VERSION, sa.Text),
        sa.Column(SCORE, sa.Double),
        sa.Column(PREDICTED_CLASS, predicted_class),
        *(sa.Column(column, kind) for column, kind in features.items()),
    ]
    return sa.Table(name, sa.MetaData(), *columns, schema=schema)


def labels_table(name: str, schema: str | None, label: sa.types.TypeEngine[Any]) -> sa.Table:
    """The labels table (not yet created)."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column(PREDICTION_ID, sa.Text, nullable=False, index=True),
        sa.Column(LABEL, label),
        sa.Column(LABELLED_AT, sa.DateTime(timezone=True), nullable=False, index=True),
        schema=schema,
    )


def meta_table(name: str, schema: str | None) -> sa.Table:
    """The meta table: which column got which treatment, with which key (its fingerprint only)."""
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("log_table", sa.Text, nullable=False),
        sa.Column("column_name", sa.Text, nullable=False),
        sa.Column("treatment", sa.Text, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("log_table", "column_name", "treatment", "key_id", "detail"),
        schema=schema,
    )


#: Per-prediction feature attributions (SHAP values or similar) are logged as one DOUBLE column per
#: feature named ``attr__<feature>``; the attribution-drift check finds them by this prefix.
from airflow_mlobs.core.attribution import ATTRIBUTION_PREFIX  # noqa: E402


def attribution_column(feature: str) -> str:
    """The log column holding ``feature``'s attribution: ``attr__<feature>``."""
    return f"{ATTRIBUTION_PREFIX}{feature}"
