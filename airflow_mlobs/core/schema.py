"""Schema contracts: columns, logical types, nullability and forbidden columns, judged from a catalog.

A contract is a Great Expectations 1.x expectation suite (JSON), so the same file later serves full
data validation. The schema check reads these expectation types:

- ``expect_table_columns_to_match_set``: ``column_set`` are required; with ``exact_match: true`` any
  other column is a breach, otherwise extra columns are allowed.
- ``expect_column_to_exist``: the column is required.
- ``expect_column_values_to_be_of_type`` (``type_``) and ``expect_column_values_to_be_in_type_list``
  (``type_list``): the column's logical type must be one of these (the column is then required).
- ``expect_column_values_to_not_be_null`` (without ``mostly`` below 1): the catalog should declare
  the column NOT NULL; a nullable declaration is a warning, since only a data scan can tell whether
  NULLs actually occur.

and, because Great Expectations has no expectation for it, forbidden column patterns from the suite's
``meta``: ``{"meta": {"mlobs": {"forbidden_columns": ["pii_*"]}}}`` (shell-style globs, matched
case-insensitively). Other expectation types are ignored by the schema check and left to the data
quality check.

Logical types (``integer``, ``float``, ``decimal``, ``string``, ``boolean``, ``timestamp``, ``date``,
``binary``) compare by family: an ``int32`` column satisfies ``INTEGER``/``BIGINT``; a ``VARCHAR``
satisfies ``TEXT``. Type names are read from SQL (``DOUBLE PRECISION``, ``TIMESTAMP WITH TIME ZONE``),
pandas / numpy (``int64``, ``datetime64[ns]``) and Arrow (``large_string``, ``timestamp[us, tz=UTC]``).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.jsonio import read_json_file
from airflow_mlobs.core.result import CheckResult, Finding, Status, worst
from airflow_mlobs.core.types import ColumnInfo, LogicalType, logical_type_from_name

CHECK = "schema"


@dataclass(frozen=True)
class ColumnRule:
    """What the contract says of one column."""

    name: str
    types: frozenset[LogicalType] = frozenset()
    type_names: tuple[str, ...] = ()
    not_null: bool = False
    severity: Status = Status.FAIL
    type_severity: Status = Status.FAIL


@dataclass(frozen=True)
class SchemaContract:
    """A parsed schema contract; see the module docstring for the expectation types it reads."""

    name: str
    columns: Mapping[str, ColumnRule]
    exact: bool = False
    forbidden: tuple[str, ...] = ()
    source: str = ""
    ignored_expectations: tuple[str, ...] = field(default=())


class ContractError(MlobsInputError):
    """A contract file that cannot be used; the message names the file and what is wrong."""


SCHEMA_EXPECTATIONS: tuple[str, ...] = (
    "expect_table_columns_to_match_set",
    "expect_column_to_exist",
    "expect_column_values_to_be_of_type",
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_not_be_null",
)
"""The expectation types the schema check reads; a contract needs at least one (or forbidden
column patterns), else it would "match" any table."""


def _misspelt_schema_kind(kind: str) -> str | None:
    """The schema expectation type ``kind`` is most likely a misspelling of, if any."""
    if kind in SCHEMA_EXPECTATIONS:
        return None
    close = difflib.get_close_matches(kind, SCHEMA_EXPECTATIONS, n=1, cutoff=0.9)
    return close[0] if close else None


def _check_mostly(kwargs: Mapping[str, Any], where: str) -> None:
    mostly = kwargs.get("mostly")
    if mostly is None:
        return
    if isinstance(mostly, bool) or not isinstance(mostly, int | float) or not 0 <= float(mostly) <= 1:
        raise ContractError(f"{where}: kwargs.mostly must be a number between 0 and 1, got {mostly!r}")


_GE_SEVERITY = {"critical": Status.FAIL, "warning": Status.WARN, "info": Status.WARN}


def _severity(expectation: Mapping[str, Any], where: str) -> Status:
    """``meta.severity`` (``warn``/``fail``) wins over Great Expectations' own ``severity`` field."""
    meta = expectation.get("meta") or {}
    raw = meta.get("severity") if isinstance(meta, Mapping) else None
    if raw is not None:
        if raw not in ("warn", "fail"):
            raise ContractError(f"{where}: meta.severity must be 'warn' or 'fail', got {raw!r}")
        return Status(raw)
    return _GE_SEVERITY.get(str(expectation.get("severity", "critical")), Status.FAIL)


def parse_contract(suite: Mapping[str, Any], *, source: str = "<suite>") -> SchemaContract:
    """Read a schema contract from a Great Expectations 1.x suite dict. Raises ``ContractError``."""
    if not isinstance(suite, Mapping) or not isinstance(suite.get("expectations"), list):
        raise ContractError(f"{source}: not an expectation suite (no 'expectations' list)")
    rules: dict[str, dict[str, Any]] = {}
    exact = False
    ignored: list[str] = []

    def rule(column: Any, where: str) -> dict[str, Any]:
        if not isinstance(column, str) or not column:
            raise ContractError(f"{where}: kwargs.column must be a column name")
        return rules.setdefault(
            column, {"types": set(), "names": [], "not_null": False, "sev": [], "type_sev": []}
        )

    for index, expectation in enumerate(suite["expectations"]):
        where = f"{source}: expectation #{index + 1}"
        if not isinstance(expectation, Mapping):
            raise ContractError(f"{where}: must be an object")
        kind = expectation.get("type") or expectation.get("expectation_type")
        kwargs = expectation.get("kwargs") or {}
        if not isinstance(kind, str) or not isinstance(kwargs, Mapping):
            raise ContractError(f"{where}: needs a 'type' and 'kwargs'")
        where = f"{where} ({kind})"
        severity = _severity(expectation, where)
        _check_mostly(kwargs, where)
        misspelt = _misspelt_schema_kind(kind)
        if misspelt is not None:
            raise ContractError(f"{where}: unknown expectation type {kind!r}; did you mean {misspelt!r}?")
        if kind == "expect_table_columns_to_match_set":
            column_set = kwargs.get("column_set")
            if not isinstance(column_set, list) or not all(isinstance(c, str) for c in column_set):
                raise ContractError(f"{where}: kwargs.column_set must be a list of column names")
            exact_match = kwargs.get("exact_match", True)
            if not isinstance(exact_match, bool):
                raise ContractError(f"{where}: kwargs.exact_match must be true or false, got {exact_match!r}")
            for column in column_set:
                rule(column, where)["sev"].append(severity)
            exact = exact or exact_match
        elif kind == "expect_column_to_exist":
            rule(kwargs.get("column"), where)["sev"].append(severity)
        elif kind in ("expect_column_values_to_be_of_type", "expect_column_values_to_be_in_type_list"):
            names = [kwargs.get("type_")] if kind.endswith("of_type") else kwargs.get("type_list")
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                raise ContractError(f"{where}: needs a type name ('type_' or 'type_list')")
            entry = rule(kwargs.get("column"), where)
            for type_name in names:
                logical = logical_type_from_name(type_name)
                if logical is LogicalType.OTHER:
                    raise ContractError(
                        f"{where}: unknown type {type_name!r} for column {kwargs.get('column')!r}; use a "
                        "SQL, pandas or Arrow type name or one of: "
                        + ", ".join(t.value for t in LogicalType if t is not LogicalType.OTHER)
                    )
                entry["types"].add(logical)
                entry["names"].append(type_name)
            entry["type_sev"].append(severity)
        elif kind == "expect_column_values_to_not_be_null":
            mostly = kwargs.get("mostly", 1.0)
            entry = rule(kwargs.get("column"), where)
            if mostly is None or float(mostly) >= 1.0:
                entry["not_null"] = True
        else:
            ignored.append(kind)

    suite_meta = suite.get("meta") or {}
    mlobs_meta = suite_meta.get("mlobs") if isinstance(suite_meta, Mapping) else None
    mlobs_meta = mlobs_meta or {}
    if not isinstance(mlobs_meta, Mapping):
        raise ContractError(f"{source}: meta.mlobs must be an object")
    forbidden = mlobs_meta.get("forbidden_columns", [])
    if not isinstance(forbidden, list) or not all(isinstance(p, str) for p in forbidden):
        raise ContractError(f"{source}: meta.mlobs.forbidden_columns must be a list of glob patterns")
    if not rules and not forbidden:
        found = f" (it has only {', '.join(sorted(set(ignored)))})" if ignored else ""
        raise ContractError(
            f"{source}: no schema expectations{found}, so it would match any table; a schema contract "
            f"needs at least one of {', '.join(SCHEMA_EXPECTATIONS)} (or meta.mlobs.forbidden_columns). "
            "A data-quality suite belongs to ExpectationSuiteOperator"
        )
    columns = {
        name: ColumnRule(
            name=name,
            types=frozenset(entry["types"]),
            type_names=tuple(entry["names"]),
            not_null=entry["not_null"],
            # A column only named by type expectations is required with their severity.
            severity=worst(entry["sev"] or entry["type_sev"], default=Status.FAIL),
            type_severity=worst(entry["type_sev"], default=Status.FAIL),
        )
        for name, entry in rules.items()
    }
    return SchemaContract(
        name=str(suite.get("name") or Path(source).stem),
        columns=columns,
        exact=exact,
        forbidden=tuple(forbidden),
        source=source,
        ignored_expectations=tuple(ignored),
    )


def load_contract(path: str | Path) -> SchemaContract:
    """Read a contract file. Raises ``ContractError`` naming the file for a missing or bad file."""
    suite = read_json_file(path, what="contract file", error=ContractError, document="an expectation suite")
    return parse_contract(suite, source=str(path))


def name_similarity(a: str, b: str) -> float:
    """How alike two column names are, 0..1: the better of the character ratio and token overlap.

    Token overlap catches ``customer_age`` -> ``age`` (all of the shorter name's tokens survive),
    which a plain character ratio scores low.
    """
    a_l, b_l = a.lower(), b.lower()
    ratio = difflib.SequenceMatcher(None, a_l, b_l).ratio()
    tokens_a = {t for t in re.split(r"[^a-z0-9]+", a_l) if t}
    tokens_b = {t for t in re.split(r"[^a-z0-9]+", b_l) if t}
    if tokens_a and tokens_b:
        overlap = len(tokens_a & tokens_b) / min(len(tokens_a), len(tokens_b))
        ratio = max(ratio, overlap * 0.9)
    return ratio


RENAME_SIMILARITY = 0.6


def compare_schema(
    *,
    dataset: str,
    observed: Sequence[ColumnInfo],
    contract: SchemaContract,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> CheckResult:
    """Compare observed columns with a contract.

    Findings, one per problem: ``missing`` (a required column is absent; with a rename hint when a
    new column of the same type family and a similar name appeared), ``duplicate`` (a name that
    appears more than once, as a CSV header can have it), ``added`` (a column the contract
    does not name; a breach only for an exact contract), ``type`` (logical type outside the allowed
    families), ``nullable`` (declared nullable where the contract expects NOT NULL; a warning) and
    ``forbidden`` (a column matching a forbidden pattern). Column names compare case-insensitively
    when no exact-case match exists, since catalogs fold unquoted names.
    """
    by_name = {c.name: c for c in observed}
    by_lower = {c.name.lower(): c for c in observed}

    def lookup(name: str) -> ColumnInfo | None:
        return by_name.get(name) or by_lower.get(name.lower())

    findings: list[Finding] = []
    matched: set[str] = set()
    missing: list[ColumnRule] = []
    for rule in contract.columns.values():
        column = lookup(rule.name)
        if column is None:
            missing.append(rule)
            continue
        matched.add(column.name)
        if rule.types and column.logical_type not in rule.types:
            expected = " or ".join(sorted(t.value for t in rule.types))
            findings.append(
                Finding(
                    subject=rule.name,
                    metric="type",
                    status=rule.type_severity,
                    value=f"{column.logical_type.value} ({column.physical_type})",
                    threshold=expected,
                    reason=f"`{rule.name}` is {column.physical_type} ({column.logical_type.value}), "
                    f"contract expects {expected}",
                )
            )
        if rule.not_null and column.nullable:
            findings.append(
                Finding(
                    subject=rule.name,
                    metric="nullable",
                    status=Status.WARN,
                    value="nullable",
                    threshold="not null",
                    reason=f"`{rule.name}` is declared nullable; the contract expects no NULLs",
                )
            )

    added = [c for c in observed if c.name not in matched]
    claimed: set[str] = set()
    for rule in missing:
        hint = ""
        candidates = [
            (name_similarity(rule.name, c.name), c)
            for c in added
            if c.name not in claimed and (not rule.types or c.logical_type in rule.types)
        ]
        candidates = [(score, c) for score, c in candidates if score >= RENAME_SIMILARITY]
        if candidates:
            _, best = max(candidates, key=lambda pair: pair[0])
            claimed.add(best.name)
            kind = "the same type" if rule.types else f"type {best.logical_type.value}"
            hint = f"; `{best.name}` appeared with {kind}: renamed?"
        findings.append(
            Finding(
                subject=rule.name,
                metric="missing",
                status=rule.severity,
                threshold="present",
                value=None,
                reason=f"`{rule.name}` missing{hint}",
            )
        )

    counts: dict[str, int] = {}
    for column in observed:
        counts[column.name] = counts.get(column.name, 0) + 1
    duplicated = sorted(name for name, count in counts.items() if count > 1)
    for name in duplicated:
        findings.append(
            Finding(
                subject=name,
                metric="duplicate",
                status=Status.FAIL,
                value=counts[name],
                threshold="unique column names",
                reason=f"`{name}` appears {counts[name]} times; each column needs its own name",
            )
        )
    for column in observed:
        forbidden_by = next(
            (p for p in contract.forbidden if fnmatch.fnmatchcase(column.name.lower(), p.lower())), None
        )
        if forbidden_by is not None:
            findings.append(
                Finding(
                    subject=column.name,
                    metric="forbidden",
                    status=Status.FAIL,
                    value=column.name,
                    threshold=f"not {forbidden_by}",
                    reason=f"`{column.name}` matches forbidden pattern {forbidden_by!r}",
                )
            )
    for column in added:
        renamed_note = " (possible rename, see missing column)" if column.name in claimed else ""
        findings.append(
            Finding(
                subject=column.name,
                metric="added",
                status=Status.FAIL if contract.exact else Status.PASS,
                value=f"{column.logical_type.value} ({column.physical_type})",
                threshold="exact column set" if contract.exact else "extras allowed",
                reason=(
                    f"`{column.name}` is not in the contract{renamed_note}"
                    + ("" if contract.exact else "; extra columns are allowed")
                ),
            )
        )

    status = worst((f.status for f in findings), default=Status.PASS)
    problems = [f for f in findings if f.status.severity >= Status.WARN.severity]
    if not problems:
        summary = f"{dataset} matches contract {contract.name} ({len(observed)} columns)"
    else:
        shown = "; ".join(f.reason for f in sorted(problems, key=lambda f: -f.status.severity)[:3])
        more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
        summary = f"{dataset} breaks contract {contract.name}: {shown}{more}"
    metrics = {
        "columns_observed": len(observed),
        "columns_in_contract": len(contract.columns),
        "missing": sorted(f.subject for f in findings if f.metric == "missing"),
        "added": sorted(c.name for c in added),
        "retyped": sorted(f.subject for f in findings if f.metric == "type"),
        "forbidden": sorted(f.subject for f in findings if f.metric == "forbidden"),
        "duplicated": duplicated,
    }
    return CheckResult(
        check=CHECK,
        dataset=dataset,
        status=status,
        summary=summary,
        window_start=window_start,
        window_end=window_end,
        metrics=metrics,
        findings=tuple(sorted(findings, key=lambda f: -f.status.severity)),
    )


def contract_from_columns(
    name: str, columns: Iterable[ColumnInfo], *, exact: bool = False, forbidden: Sequence[str] = ()
) -> dict[str, Any]:
    """A starting contract (Great Expectations suite dict) describing ``columns`` as observed.

    Types are written as logical type names, which both this check and the data quality check read.
    Columns declared NOT NULL get ``expect_column_values_to_not_be_null``.
    """
    columns = list(columns)
    expectations: list[dict[str, Any]] = [
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": [c.name for c in columns], "exact_match": exact},
            "meta": {},
        }
    ]
    for column in columns:
        if column.logical_type is not LogicalType.OTHER:
            expectations.append(
                {
                    "type": "expect_column_values_to_be_of_type",
                    "kwargs": {"column": column.name, "type_": column.logical_type.value.upper()},
                    "meta": {"observed_type": column.physical_type},
                }
            )
        if column.nullable is False:
            expectations.append(
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column.name}, "meta": {}}
            )
    return {
        "name": name,
        "expectations": expectations,
        "meta": {"mlobs": {"forbidden_columns": list(forbidden), "generated_by": "airflow-mlobs"}},
    }
