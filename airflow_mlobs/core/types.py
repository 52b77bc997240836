"""The shared vocabulary: logical types, column descriptions, table names, category text.

Every check and every gatherer speaks these: the schema check compares :class:`LogicalType`
families, the SQL and file gatherers describe columns as :class:`ColumnInfo`, tables are named by
:class:`TableRef`, and every gatherer writes a category value as :func:`category_text`, so a
profile built in the database equals one built in memory. Pure Python: no numpy at import time
(DAG files import the operators, which import this).
"""

from __future__ import annotations

import enum
import math
import numbers
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from airflow_mlobs.core.errors import SourceError


class LogicalType(enum.StrEnum):
    """Type families that compare equal across databases and file formats."""

    INTEGER = "integer"
    FLOAT = "float"
    DECIMAL = "decimal"
    STRING = "string"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    DATE = "date"
    BINARY = "binary"
    OTHER = "other"


# Matched against the upper-cased name with parameters removed ("VARCHAR(20)" -> "VARCHAR").
_TYPE_NAMES: dict[LogicalType, tuple[str, ...]] = {
    LogicalType.INTEGER: (
        "INTEGER",
        "INT",
        "BIGINT",
        "SMALLINT",
        "TINYINT",
        "MEDIUMINT",
        "INT2",
        "INT4",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
        "SERIAL",
        "BIGSERIAL",
        "BYTEINT",
        "LONG",
        "SHORT",
    ),
    LogicalType.FLOAT: (
        "FLOAT",
        "DOUBLE",
        "DOUBLE PRECISION",
        "REAL",
        "FLOAT4",
        "FLOAT8",
        "FLOAT16",
        "FLOAT32",
        "FLOAT64",
        "HALF_FLOAT",
        "HALFFLOAT",
        "DOUBLE_PRECISION",
    ),
    LogicalType.DECIMAL: ("DECIMAL", "NUMERIC", "NUMBER", "DECIMAL128", "DECIMAL256", "MONEY", "BIGNUMERIC"),
    LogicalType.STRING: (
        "STRING",
        "VARCHAR",
        "CHAR",
        "TEXT",
        "NVARCHAR",
        "NCHAR",
        "CHARACTER",
        "CHARACTER VARYING",
        "STR",
        "OBJECT",
        "LARGE_STRING",
        "UTF8",
        "LARGE_UTF8",
        "CLOB",
        "UUID",
        "ENUM",
        "CITEXT",
        "STRING_VIEW",
    ),
    LogicalType.BOOLEAN: ("BOOLEAN", "BOOL"),
    LogicalType.TIMESTAMP: (
        "TIMESTAMP",
        "DATETIME",
        "TIMESTAMPTZ",
        "TIMESTAMP WITH TIME ZONE",
        "TIMESTAMP WITHOUT TIME ZONE",
        "DATETIME64",
        "TIMESTAMP_NTZ",
        "TIMESTAMP_LTZ",
        "TIMESTAMP_TZ",
        "DATETIMETZ",
        "DATETIMEOFFSET",
        "DATETIME2",
        "SMALLDATETIME",
    ),
    LogicalType.DATE: ("DATE", "DATE32", "DATE64"),
    LogicalType.BINARY: ("BINARY", "VARBINARY", "BLOB", "BYTEA", "BYTES", "LARGE_BINARY", "RAW"),
}
_NAME_TO_TYPE = {name: logical for logical, names in _TYPE_NAMES.items() for name in names}
_PARAMS = re.compile(r"\s*[\(\[].*$")


def logical_type_from_name(name: str) -> LogicalType:
    """The logical type of a SQL, pandas/numpy or Arrow type name; ``OTHER`` when unknown."""
    text = name.strip()
    try:
        return LogicalType(text.lower())
    except ValueError:
        pass
    upper = text.upper()
    dictionary = re.match(r"DICTIONARY<VALUES=([^,>]+)", upper)
    if dictionary:  # Arrow dictionary (pandas categorical): the type of its values
        return logical_type_from_name(dictionary.group(1))
    if upper in _NAME_TO_TYPE:
        return _NAME_TO_TYPE[upper]
    base = _PARAMS.sub("", upper).strip()
    if base in _NAME_TO_TYPE:
        return _NAME_TO_TYPE[base]
    # "datetime64[ns, UTC]", "timestamp[us, tz=UTC]", "Int64" (pandas nullable) ...
    base = base.replace(" ", "_")
    return _NAME_TO_TYPE.get(base, _NAME_TO_TYPE.get(base.replace("_", " "), LogicalType.OTHER))


@dataclass(frozen=True)
class ColumnInfo:
    """A column as read from a catalog or a file's schema."""

    name: str
    logical_type: LogicalType
    physical_type: str
    nullable: bool | None = None


TIME_TYPES = (LogicalType.TIMESTAMP, LogicalType.DATE)
"""Logical types a freshness or window column may have."""
NUMERIC_TYPES = (LogicalType.INTEGER, LogicalType.FLOAT, LogicalType.DECIMAL, LogicalType.BOOLEAN)
"""Logical types a numeric drift column may have."""


@dataclass(frozen=True)
class TableRef:
    """A table name with its optional schema, as the database spells them (quotes removed)."""

    name: str
    schema: str | None = None

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


_PART = re.compile(r'\s*(?:"((?:[^"]|"")*)"|([^."\s]+))\s*')


def parse_table_name(text: str, schema: str | None = None) -> TableRef:
    """Parse ``table``, ``schema.table`` or quoted parts (``"Analytics"."Features"``).

    Quoted parts keep their case; unquoted parts are passed as written (SQLAlchemy quotes names that
    need it, and PostgreSQL folds unquoted names to lower case, so write them as the catalog has them).
    """
    parts: list[str] = []
    pos = 0
    while pos < len(text):
        match = _PART.match(text, pos)
        if not match or match.end() == pos:
            raise SourceError(
                f'cannot read table name {text!r}; write table, schema.table or "Quoted"."Name"'
            )
        parts.append(match.group(1).replace('""', '"') if match.group(1) is not None else match.group(2))
        pos = match.end()
        if pos < len(text):
            if text[pos] != ".":
                raise SourceError(f"cannot read table name {text!r}")
            pos += 1
    if len(parts) == 1:
        return TableRef(name=parts[0], schema=schema)
    if len(parts) == 2:
        if schema is not None and schema != parts[0]:
            raise SourceError(
                f"table {text!r} names schema {parts[0]!r} but schema={schema!r} was also given"
            )
        return TableRef(name=parts[1], schema=parts[0])
    raise SourceError(f"cannot read table name {text!r}; write table or schema.table")


def category_text(value: Any) -> str:
    """The canonical text of a category value, shared by every gatherer.

    Booleans are ``"true"``/``"false"``; integral numbers print without a decimal point (``1.0`` and
    ``1`` are the same category ``"1"``); other floats use Python's shortest round-trip form;
    everything else is ``str(value)``. numpy scalars are read through the number tower (numpy
    registers its types there) and a boolean ``dtype``, so numpy need not be imported here.
    """
    if isinstance(value, bool) or getattr(getattr(value, "dtype", None), "kind", None) == "b":
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real | Decimal):
        number = float(value)
        if math.isfinite(number) and number == int(number):
            return str(int(number))
        return repr(number)
    return str(value)


def canonical_category(text: Any, logical: LogicalType | None) -> str:
    """Category text read back from a database, made equal to :func:`category_text` of the value
    it stands for (booleans come back as ``0``/``1``/``t``/``f``, numbers as text)."""
    if logical is LogicalType.BOOLEAN and str(text) in ("0", "1", "true", "false", "t", "f"):
        return "true" if str(text) in ("1", "true", "t") else "false"
    if logical in (LogicalType.INTEGER, LogicalType.FLOAT, LogicalType.DECIMAL):
        try:
            return category_text(float(text))
        except (TypeError, ValueError):
            return str(text)
    return category_text(text)
