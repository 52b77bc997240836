"""OpenLineage for the check operators: the datasets a check read and what it found about them.

Two halves. :func:`lineage_facts` turns a :class:`CheckResult` (and the window's drift profile, when
there is one) into plain data: one :class:`AssertionFact` per finding and :class:`ColumnFacts` per
column. :func:`input_refs` names the task's inputs the way the OpenLineage provider and the SQL hooks
do (``postgres://host:5432`` + ``database.schema.table``; ``file`` + the path). Only
:func:`operator_lineage` imports the OpenLineage provider, inside the function: without it installed
it returns ``None`` and nothing else changes.

Definitions:

- an **assertion** is one finding: ``assertion`` is the finding's metric (``missing``, ``wasserstein``,
  ``expect_column_values_to_not_be_null``, ``age``), ``success`` is whether its status is ``pass`` or
  ``warn`` (a ``warn`` never fails a check), ``column`` the finding's subject when it names a column
  (not ``table``, ``window``, ``check``, ``newest``...), ``severity`` ``warn``/``fail``/``error`` for a
  finding that did not pass;
- **data-quality metrics**: ``rowCount`` is the rows judged (the result's ``rows`` or ``row_count``
  metric, else the profile's); per column ``nullCount`` (NULL plus non-finite values), ``min``,
  ``max`` (numeric columns), ``distinctCount`` (categorical columns whose categories were all counted,
  i.e. not folded into ``(other)``), ``count`` (values that are not missing); for a data-quality
  result the same from its expectations (:func:`columns_of_findings`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_mlobs.core.result import CheckResult, Status

#: Finding subjects that are not columns (a finding about the table, the window, the check...).
NOT_COLUMNS = frozenset(
    {"table", "window", "check", "newest", "dataset", "partition", "suite", "contract", "schema", "model"}
)


@dataclass(frozen=True)
class DatasetRef:
    """An OpenLineage dataset name: ``namespace`` (``postgres://host:5432``, ``file``) and ``name``
    (``database.schema.table``, a path)."""

    namespace: str
    name: str


@dataclass(frozen=True)
class AssertionFact:
    """One finding as an OpenLineage data-quality assertion (see the module docstring)."""

    assertion: str
    success: bool
    column: str | None = None
    severity: str | None = None
    actual: str | None = None
    expected: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class ColumnFacts:
    """What is known about one column in the judged window."""

    null_count: int | None = None
    distinct_count: int | None = None
    count: float | None = None
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class LineageFacts:
    """Everything a check can say about its (first) input dataset."""

    check: str
    status: str
    assertions: tuple[AssertionFact, ...] = ()
    row_count: int | None = None
    columns: Mapping[str, ColumnFacts] = field(default_factory=dict)
    schema: tuple[tuple[str, str | None], ...] = ()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)[:200]


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _finite(value: Any) -> float | None:
    import math

    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def assertions_of(result: CheckResult) -> tuple[AssertionFact, ...]:
    """Each finding of ``result`` as an assertion; a result without findings is one assertion named
    after the check."""
    facts = []
    for finding in result.findings:
        if finding.status is Status.SKIPPED:
            continue
        column = finding.subject if finding.subject and finding.subject not in NOT_COLUMNS else None
        passed = finding.status in (Status.PASS, Status.WARN)
        facts.append(
            AssertionFact(
                assertion=finding.metric,
                success=passed,
                column=column,
                severity=None if finding.status is Status.PASS else finding.status.value,
                actual=_text(finding.value),
                expected=_text(finding.threshold),
                description=finding.reason[:500] or None,
            )
        )
    if not facts and result.status is not Status.SKIPPED:
        facts.append(
            AssertionFact(
                assertion=result.check,
                success=result.status in (Status.PASS, Status.WARN),
                severity=None if result.status is Status.PASS else result.status.value,
                description=result.summary[:500],
            )
        )
    return tuple(facts)


def columns_of_profile(profile: Any) -> dict[str, ColumnFacts]:
    """Per-column facts from a drift :class:`~airflow_mlobs.core.profile.Profile` (duck-typed: its
    ``columns`` map of numeric and categorical column profiles)."""
    found: dict[str, ColumnFacts] = {}
    for name, column in (getattr(profile, "columns", None) or {}).items():
        nulls = int(getattr(column, "nulls", 0) or 0) + int(getattr(column, "non_finite", 0) or 0)
        if getattr(column, "kind", "") == "numeric":
            found[str(name)] = ColumnFacts(
                null_count=nulls,
                count=float(getattr(column, "count", 0) or 0),
                min=_finite(getattr(column, "min", None)),
                max=_finite(getattr(column, "max", None)),
            )
        else:
            counts = dict(getattr(column, "counts", None) or {})
            folded = bool(getattr(column, "overflow", False)) or int(getattr(column, "other", 0) or 0) > 0
            found[str(name)] = ColumnFacts(
                null_count=nulls,
                count=float(sum(counts.values()) + int(getattr(column, "other", 0) or 0)),
                distinct_count=None if folded else len(counts),
            )
    return found


#: Great Expectations expectations whose observed value is a column metric of the facet.
QUALITY_COLUMN_METRICS = {
    "expect_column_min_to_be_between": "min",
    "expect_column_max_to_be_between": "max",
    "expect_column_unique_value_count_to_be_between": "distinct_count",
}


def columns_of_findings(result: CheckResult, row_count: int | None) -> dict[str, ColumnFacts]:
    """Per-column facts a data-quality result observed: ``min``, ``max`` and ``distinctCount`` from
    the expectations that measure them, ``nullCount`` from ``expect_column_values_to_not_be_null``
    (its unexpected percent of the ``row_count`` rows)."""
    values: dict[str, dict[str, Any]] = {}
    for finding in result.findings:
        column = finding.subject
        if not column or column in NOT_COLUMNS or finding.status is Status.ERROR:
            continue
        field_name = QUALITY_COLUMN_METRICS.get(finding.metric)
        number = _finite(finding.value)
        if field_name is not None and number is not None:
            values.setdefault(column, {})[field_name] = (
                int(number) if field_name == "distinct_count" else number
            )
        elif finding.metric == "expect_column_values_to_not_be_null" and row_count is not None:
            share = _finite(finding.value)
            if share is not None:
                values.setdefault(column, {})["null_count"] = round(share * row_count / 100)
    return {column: ColumnFacts(**fields) for column, fields in values.items()}


def lineage_facts(
    result: CheckResult,
    *,
    profile: Any = None,
    schema: Sequence[tuple[str, str | None]] = (),
) -> LineageFacts:
    """The plain data behind a check's OpenLineage facets (definitions in the module docstring)."""
    metrics = result.metrics
    row_count = _int(metrics.get("rows"))
    if row_count is None:
        row_count = _int(metrics.get("row_count"))
    if row_count is None and profile is not None:
        row_count = _int(getattr(profile, "row_count", None))
    return LineageFacts(
        check=result.check,
        status=result.status.value,
        assertions=assertions_of(result),
        row_count=row_count,
        columns=columns_of_profile(profile)
        if profile is not None
        else columns_of_findings(result, row_count),
        schema=tuple(schema),
    )


def schema_of_baseline(baseline: Any) -> tuple[tuple[str, str | None], ...]:
    """``(column, type)`` of a drift baseline's columns (the source type it recorded, else its kind)."""
    columns = getattr(baseline, "columns", None) or {}
    return tuple(
        (str(name), str(getattr(spec, "source_type", "") or getattr(spec, "kind", "")) or None)
        for name, spec in columns.items()
    )


# --- naming the inputs ----------------------------------------------------------------------------


def file_ref(path: str) -> DatasetRef:
    """A file or directory as OpenLineage names local files: namespace ``file``, the absolute path;
    a URL (``s3://bucket/key``) as ``s3://bucket`` and ``key``."""
    import os
    from urllib.parse import urlsplit

    text = str(path)
    if "://" in text and not text.startswith("file://"):
        url = urlsplit(text)
        return DatasetRef(f"{url.scheme}://{url.netloc}", url.path.lstrip("/") or "/")
    if text.startswith("file://"):
        text = urlsplit(text).path
    return DatasetRef("file", os.path.abspath(text))


def sql_ref(conn_id: str, table: str) -> DatasetRef:
    """``table`` of the Airflow connection ``conn_id`` named as the OpenLineage provider names it:
    the hook's ``get_openlineage_database_info`` gives ``scheme://authority`` and the database, its
    ``get_openlineage_default_schema`` the schema of an unqualified table; a hook without them (SQLite)
    gives ``<conn_type>://<host>`` and the table as written."""
    from airflow.sdk import BaseHook

    from airflow_mlobs.core.types import parse_table_name

    ref = parse_table_name(table)
    conn = BaseHook.get_connection(conn_id)
    info = None
    hook: Any = None
    try:
        hook = conn.get_hook()  # type: ignore[no-untyped-call]
        info = hook.get_openlineage_database_info(conn)
    except Exception:  # no hook, or a hook without OpenLineage support
        info = None
    if info is None:
        host = conn.host or ""
        return DatasetRef(f"{conn.conn_type}://{host}", str(ref))
    schema = ref.schema
    if schema is None:
        try:
            schema = hook.get_openlineage_default_schema()
        except Exception:
            schema = None
    authority = getattr(info, "authority", None)
    namespace = f"{info.scheme}://{authority}" if authority else f"{info.scheme}"
    parts = [p for p in (getattr(info, "database", None), schema, ref.name) if p]
    return DatasetRef(namespace, ".".join(parts))


#: (connection attribute, table attribute) pairs of the check operators' SQL inputs, first = judged.
SQL_INPUTS = (("conn_id", "table"), ("conn_id", "predictions_table"), ("label_conn_id", "labels_table"))
#: Attributes holding the file inputs of the check operators.
FILE_INPUTS = ("path", "partition", "predictions_path", "labels_path")


def input_refs(task: Any) -> list[DatasetRef]:
    """The datasets a check task read, named as OpenLineage names them; a query (``sql=``) is not a
    named dataset and gives none. A connection that cannot be read is left out (the check's own
    result says why)."""
    refs: list[DatasetRef] = []
    for conn_attr, table_attr in SQL_INPUTS:
        table = getattr(task, table_attr, None)
        conn_id = getattr(task, conn_attr, None) or getattr(task, "conn_id", None)
        if isinstance(table, str) and table and isinstance(conn_id, str) and conn_id:
            try:
                refs.append(sql_ref(conn_id, table))
            except Exception:
                continue
    for attr in FILE_INPUTS:
        path = getattr(task, attr, None)
        if isinstance(path, str) and path:
            refs.append(file_ref(path))
    return list(dict.fromkeys(refs))


# --- the OpenLineage objects ----------------------------------------------------------------------


def operator_lineage(refs: Sequence[DatasetRef], facts: LineageFacts | None) -> Any:
    """The provider's ``OperatorLineage``: every input dataset, the first carrying the schema
    (``schema``), ``dataQualityAssertions`` and the ``dataQualityMetrics`` input facet. ``None``
    when the OpenLineage provider is not installed."""
    try:
        from airflow.providers.common.compat.openlineage.facet import (
            InputDataset,
            SchemaDatasetFacet,
            SchemaDatasetFacetFields,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.generated.data_quality_assertions_dataset import (
            Assertion,
            DataQualityAssertionsDatasetFacet,
        )
        from openlineage.client.generated.data_quality_metrics_input_dataset import (
            ColumnMetrics,
            DataQualityMetricsInputDatasetFacet,
        )
    except ImportError:
        return None
    inputs = []
    for position, ref in enumerate(refs):
        facets: dict[str, Any] = {}
        input_facets: dict[str, Any] = {}
        if position == 0 and facts is not None:
            if facts.schema:
                facets["schema"] = SchemaDatasetFacet(
                    fields=[SchemaDatasetFacetFields(name=n, type=t) for n, t in facts.schema]
                )
            if facts.assertions:
                facets["dataQualityAssertions"] = DataQualityAssertionsDatasetFacet(
                    assertions=[
                        Assertion(
                            assertion=a.assertion,
                            success=a.success,
                            column=a.column,
                            severity=a.severity,
                            name=f"{facts.check}:{a.assertion}",
                            description=a.description,
                            expected=a.expected,
                            actual=a.actual,
                        )
                        for a in facts.assertions
                    ]
                )
            if facts.row_count is not None or facts.columns:
                input_facets["dataQualityMetrics"] = DataQualityMetricsInputDatasetFacet(
                    rowCount=facts.row_count,
                    columnMetrics={
                        name: ColumnMetrics(
                            nullCount=c.null_count,
                            distinctCount=c.distinct_count,
                            count=c.count,
                            min=c.min,
                            max=c.max,
                        )
                        for name, c in facts.columns.items()
                    },
                )
        inputs.append(
            InputDataset(namespace=ref.namespace, name=ref.name, facets=facets, inputFacets=input_facets)
        )
    return OperatorLineage(inputs=inputs)


def task_lineage(task: Any) -> Any:
    """``OperatorLineage`` of a check task after it ran: its inputs (:func:`input_refs`) and, on the
    first, the facets of the result it published (``task.last_result``), with the drift profile and
    baseline schema the drift operator keeps (``task.lineage_profile``, ``task.lineage_schema``) or
    the schema a task reads on demand (``task.lineage_columns()``: the schema check's catalog)."""
    result = getattr(task, "last_result", None)
    facts = None
    if isinstance(result, CheckResult):
        schema = getattr(task, "lineage_schema", ()) or ()
        columns = getattr(task, "lineage_columns", None)
        if not schema and callable(columns):
            try:
                schema = columns()
            except Exception:  # the source is gone or unreadable: the facets without a schema
                schema = ()
        facts = lineage_facts(result, profile=getattr(task, "lineage_profile", None), schema=schema)
    return operator_lineage(input_refs(task), facts)
