"""Data quality: Great Expectations 1.x validation results judged as a :class:`CheckResult`.

Pure: no Airflow, no Great Expectations import. The gatherer
(:mod:`airflow_mlobs.sources.quality`) runs the suite where the data lives and hands over the dict
form of an ``ExpectationSuiteValidationResult``; this module turns it into findings a person reads.

Mapping
-------
Each expectation becomes one finding. Its ``subject`` is the column (``kwargs.column``; for
multi-column expectations the columns joined by ``+``) or ``table``; ``metric`` is the expectation
type; ``value`` is the observed value (aggregate expectations) or the percentage of unexpected values
(column map expectations); ``threshold`` says what was expected in words (``18..100, mostly 99%``).

- A passed expectation is a ``pass`` finding.
- A failed one is ``fail`` or ``warn`` by its severity: ``meta.severity`` (``"warn"`` / ``"fail"``)
  wins; otherwise Great Expectations' own ``severity`` (``critical`` -> fail, ``warning`` and
  ``info`` -> warn). ``mostly`` is applied by Great Expectations; it is kept in the threshold text.
- An expectation that raised (``exception_info``), such as one naming a column the data does not
  have, is an ``error`` finding naming the column: the suite could not be evaluated as written.

The result's status is the worst finding's; metrics carry the evaluated / successful / failed /
errored counts and the success percentage.

A starter suite can be written from a stored drift baseline with :func:`suite_from_baseline`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.jsonio import read_json_file
from airflow_mlobs.core.profile import Baseline, CategoricalProfile, NumericProfile
from airflow_mlobs.core.result import CheckResult, Finding, Status, worst
from airflow_mlobs.core.types import LogicalType, logical_type_from_name

CHECK = "quality"

_GE_SEVERITY = {"critical": Status.FAIL, "warning": Status.WARN, "info": Status.WARN}
_MISSING_COLUMN = re.compile(r'column "(?P<column>[^"]+)" in BatchData does not exist', re.IGNORECASE)
_MAX_EXAMPLES = 5


class SuiteError(MlobsInputError):
    """A suite file that cannot be used; the message names the file and what is wrong."""


def load_suite_file(path: str | Path) -> dict[str, Any]:
    """Read an expectation suite JSON file. Raises :class:`SuiteError` naming the file for a
    missing file, invalid JSON (with line and column) or a document that is not a suite."""
    suite = read_json_file(path, what="suite file", error=SuiteError, document="an expectation suite")
    check_suite_dict(suite, source=str(path))
    return dict(suite)


def check_suite_dict(suite: Any, *, source: str = "<suite>") -> None:
    """Raise :class:`SuiteError` unless ``suite`` looks like a suite: an object with an
    ``expectations`` list whose items each have a ``type`` (or ``expectation_type``) and ``kwargs``."""
    if not isinstance(suite, Mapping) or not isinstance(suite.get("expectations"), list):
        raise SuiteError(f"{source}: not an expectation suite (no 'expectations' list)")
    for index, expectation in enumerate(suite["expectations"]):
        where = f"{source}: expectation #{index + 1}"
        if not isinstance(expectation, Mapping):
            raise SuiteError(f"{where}: must be an object")
        kind = expectation.get("type") or expectation.get("expectation_type")
        if not isinstance(kind, str) or not isinstance(expectation.get("kwargs", {}), Mapping):
            raise SuiteError(f"{where}: needs a 'type' and 'kwargs'")
        meta = expectation.get("meta") or {}
        if isinstance(meta, Mapping) and meta.get("severity") not in (None, "warn", "fail"):
            raise SuiteError(
                f"{where} ({kind}): meta.severity must be 'warn' or 'fail', got {meta.get('severity')!r}"
            )
        mostly = (expectation.get("kwargs") or {}).get("mostly")
        # A {"$PARAMETER": ...} mostly is Great Expectations' to check once it is filled in.
        if (
            mostly is not None
            and not isinstance(mostly, Mapping)
            and (isinstance(mostly, bool) or not isinstance(mostly, int | float) or not 0 <= mostly <= 1)
        ):
            raise SuiteError(
                f"{where} ({kind}): kwargs.mostly must be a number between 0 and 1, got {mostly!r}"
            )


def expectation_severity(config: Mapping[str, Any]) -> Status:
    """What a failure of this expectation means: ``meta.severity`` (``warn``/``fail``) wins over
    Great Expectations' ``severity`` (``critical`` -> fail, ``warning``/``info`` -> warn)."""
    meta = config.get("meta") or {}
    raw = meta.get("severity") if isinstance(meta, Mapping) else None
    if raw in ("warn", "fail"):
        return Status(raw)
    return _GE_SEVERITY.get(str(config.get("severity") or "critical").lower(), Status.FAIL)


def expectation_subject(kwargs: Mapping[str, Any]) -> str:
    """The column an expectation is about, ``a+b`` for several, or ``table``."""
    column = kwargs.get("column")
    if isinstance(column, str) and column:
        return column
    if isinstance(kwargs.get("column_list"), list):
        return "+".join(str(c) for c in kwargs["column_list"])
    if kwargs.get("column_A") and kwargs.get("column_B"):
        return f"{kwargs['column_A']}+{kwargs['column_B']}"
    return "table"


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _values(values: Any, limit: int = 8) -> str:
    items = list(values) if isinstance(values, list | tuple | set | frozenset) else [values]
    shown = ", ".join(_num(v) for v in items[:limit])
    return "{" + shown + (f", ... {len(items) - limit} more" if len(items) > limit else "") + "}"


def _range(kwargs: Mapping[str, Any]) -> str | None:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    if low is None and high is None:
        return None
    if low is not None and high is not None:
        return f"{_num(low)}..{_num(high)}"
    if low is not None:
        return f"{'>' if kwargs.get('strict_min') else '>='} {_num(low)}"
    return f"{'<' if kwargs.get('strict_max') else '<='} {_num(high)}"


def describe_expected(kind: str, kwargs: Mapping[str, Any]) -> str:
    """What an expectation expects, in a few words (``18..100, mostly 99%``)."""
    parts: list[str] = []
    if "value_set" in kwargs:
        parts.append(("not in " if "not_be_in_set" in kind else "in ") + _values(kwargs["value_set"]))
    elif "column_set" in kwargs:
        parts.append(
            ("exactly " if kwargs.get("exact_match", True) else "at least ") + _values(kwargs["column_set"])
        )
    elif "regex" in kwargs:
        parts.append(("not matching /" if "not_match" in kind else "matching /") + f"{kwargs['regex']}/")
    elif "type_" in kwargs:
        parts.append(f"type {kwargs['type_']}")
    elif "type_list" in kwargs:
        parts.append("type in " + _values(kwargs["type_list"]))
    elif "value" in kwargs:
        parts.append(f"= {_num(kwargs['value'])}")
    span = _range(kwargs)
    if span is not None:
        parts.append(span)
    if kind.endswith("to_not_be_null"):
        parts.append("not null")
    elif kind.endswith("to_be_null"):
        parts.append("null")
    elif "unique" in kind:
        parts.append("unique")
    mostly = kwargs.get("mostly")
    if isinstance(mostly, int | float) and not isinstance(mostly, bool) and mostly < 1:
        parts.append(f"mostly {mostly * 100:.4g}%")
    return ", ".join(parts)


def _what_is_unexpected(kind: str, expected: str, kwargs: Mapping[str, Any]) -> str:
    """How the unexpected values are described: ``outside 18..100``, ``null``, ``duplicated``."""
    bare = describe_expected(kind, {k: v for k, v in kwargs.items() if k != "mostly"})
    if kind.endswith("to_not_be_null"):
        return "null"
    if kind.endswith("to_be_null"):
        return "not null"
    if "unique" in kind:
        return "duplicated"
    if "between" in kind:
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if low is not None and high is None:
            return f"{'at or below' if kwargs.get('strict_min') else 'below'} {_num(low)}"
        if high is not None and low is None:
            return f"{'at or above' if kwargs.get('strict_max') else 'above'} {_num(high)}"
        return f"outside {bare}"
    if "not_be_in_set" in kind:
        return f"in {_values(kwargs.get('value_set', []))}"
    if "in_set" in kind:
        return f"not {bare}"
    if "not_match" in kind:
        return f"matching /{kwargs.get('regex')}/"
    if "match" in kind:
        return f"not matching /{kwargs.get('regex')}/"
    return f"unexpected ({bare or kind})"


def exception_message(info: Any) -> str | None:
    """The message of an expectation that raised, from either form of ``exception_info``: flat
    (``raised_exception`` / ``exception_message``) or keyed by metric; ``None`` when nothing raised."""
    if not isinstance(info, Mapping):
        return None
    if "raised_exception" in info:
        if info.get("raised_exception"):
            return str(info.get("exception_message") or "raised an exception").strip()
        return None
    for value in info.values():
        message = exception_message(value)
        if message:
            return message
    return None


def _missing_column(message: str) -> str | None:
    match = _MISSING_COLUMN.search(message)
    return match.group("column") if match else None


#: Aggregates whose observed value is a statistic over many rows, never one row's value: shown for
#: a sensitive column too (a minimum, maximum, median or most common value is one person's value).
SAFE_AGGREGATES = frozenset(
    {"mean", "stdev", "sum", "unique value count", "proportion of unique values", "row count", "column count"}
)
#: The parts of an expectation's result that hold data values (samples of unexpected values).
VALUE_RESULT_KEYS = (
    "partial_unexpected_list",
    "partial_unexpected_counts",
    "partial_unexpected_index_list",
    "unexpected_list",
    "unexpected_index_list",
    "unexpected_index_query",
    "details",
)
#: What a withheld example list or observed value says instead.
WITHHELD = " (examples withheld: sensitive column)"


def sensitive_subject(subject: str, sensitive: Collection[str]) -> bool:
    """Whether an expectation's subject (``col``, ``a+b``) names a sensitive column."""
    return bool(sensitive) and any(part in sensitive for part in subject.split("+"))


def withhold_values(result: Mapping[str, Any], sensitive: Collection[str]) -> dict[str, Any]:
    """An expectation's result (dict form) without the values of sensitive columns: the unexpected
    value samples (:data:`VALUE_RESULT_KEYS`) dropped, the observed value of an aggregate that is one
    row's value (not in :data:`SAFE_AGGREGATES`) removed, only counts and percentages kept. Applied
    before anything else reads the validation, so no value reaches a finding, log or store."""
    config = result.get("expectation_config") or {}
    kind = str(config.get("type") or config.get("expectation_type") or "expectation")
    kwargs = config.get("kwargs") or {}
    if not sensitive_subject(expectation_subject(kwargs), sensitive):
        return dict(result)
    outcome = {k: v for k, v in (result.get("result") or {}).items() if k not in VALUE_RESULT_KEYS}
    if "observed_value" in outcome and _aggregate_label(kind) not in SAFE_AGGREGATES:
        outcome["observed_value"] = None
        outcome["observed_withheld"] = True
    cleaned = {**result, "result": outcome}
    message = exception_message(cleaned.get("exception_info"))
    if message:
        # A database's or Great Expectations' error text can quote the offending value.
        missing = _missing_column(message)
        cleaned["exception_info"] = {
            "raised_exception": True,
            "exception_message": (
                message.splitlines()[0]
                if missing is not None
                else "the error text is withheld (it may quote a value of a sensitive column)"
            ),
        }
    return cleaned


def judge_expectation(result: Mapping[str, Any], dataset: str, sensitive: Collection[str] = ()) -> Finding:
    """One expectation's result (dict form of ``ExpectationValidationResult``) as a finding.

    About a ``sensitive`` column, the finding holds counts and percentages only: no example of an
    unexpected value, no observed value that is one row's value (:func:`withhold_values`)."""
    result = withhold_values(result, sensitive)
    config = result.get("expectation_config") or {}
    kind = str(config.get("type") or config.get("expectation_type") or "expectation")
    kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
    subject = expectation_subject(kwargs)
    withheld = sensitive_subject(subject, sensitive)
    expected = describe_expected(kind, kwargs)
    message = exception_message(result.get("exception_info"))
    if message:
        missing = _missing_column(message)
        first_line = message.splitlines()[0]
        if missing is not None:
            reason = f"`{missing}` does not exist in {dataset} ({kind} cannot run)"
            subject = missing
        else:
            reason = f"`{subject}`: {kind} could not be evaluated: {first_line}"
        return Finding(
            subject=subject, metric=kind, status=Status.ERROR, threshold=expected or None, reason=reason
        )
    outcome = result.get("result") or {}
    observed = outcome.get("observed_value")
    percent = outcome.get("unexpected_percent")
    value: Any = observed if observed is not None else percent
    if result.get("success"):
        return Finding(
            subject=subject, metric=kind, status=Status.PASS, value=value, threshold=expected or None
        )
    status = expectation_severity(config)
    label = subject if subject == "table" else f"`{subject}`"
    if percent is not None and observed is None:
        count = outcome.get("unexpected_count")
        shown = _examples(
            outcome.get("partial_unexpected_list"),
            count if isinstance(count, int) else None,
            # NULLs are never unexpected values of a map expectation (they are "missing"), so a null
            # example is a NaN that the JSON form of the result turned into null.
            nan_from_null=not kind.endswith("_null"),
        )
        if withheld and count and not kind.endswith("_null"):
            shown = WITHHELD
        counted = f" ({count} row{'' if count == 1 else 's'})" if isinstance(count, int) else ""
        reason = (
            f"{label}: {_pct(float(percent))} of values{counted} "
            f"{_what_is_unexpected(kind, expected, kwargs)}{shown}"
        )
        mostly = kwargs.get("mostly")
        if isinstance(mostly, int | float) and not isinstance(mostly, bool) and mostly < 1:
            reason += f"; at most {_pct((1 - float(mostly)) * 100)} allowed (mostly {_num(mostly)})"
    elif observed is not None:
        reason = f"{label}: {_aggregate_label(kind)} {_short(observed)}, expected {expected or kind}"
    elif outcome.get("observed_withheld"):
        reason = (
            f"{label}: {_aggregate_label(kind)} withheld (one row's value of a sensitive column), "
            f"expected {expected or kind}"
        )
    else:
        reason = f"{label}: {kind} failed" + (f" (expected {expected})" if expected else "")
    return Finding(
        subject=subject, metric=kind, status=status, value=value, threshold=expected or None, reason=reason
    )


def _example_key(value: Any) -> str:
    """Equal examples share a key; NaN is one value here (``NaN != NaN``), ``1`` and ``'1'`` two."""
    if isinstance(value, float) and math.isnan(value):
        return "float:nan"
    return f"{type(value).__name__}:{value!r}"


def _examples(sample: Any, unexpected: int | None, *, nan_from_null: bool = False) -> str:
    """`` (e.g. 150, 7)``: the distinct unexpected values of Great Expectations' sample, in the
    order first seen, at most five. When the sample holds every unexpected row, each value says how
    often it occurs (``150 x3``): those counts are then exact, not a sample's. ``nan_from_null``
    shows a null in the sample as ``NaN`` (see the caller); otherwise nulls are not shown."""
    if not isinstance(sample, list):
        return ""
    counts: dict[str, int] = {}
    first: dict[str, Any] = {}
    for value in sample:
        if value is None and nan_from_null:
            value = math.nan
        if value is None:
            continue
        key = _example_key(value)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, value)
    if not counts:
        return ""
    exact = unexpected is not None and unexpected == len(sample)
    shown = [
        _num(first[key]) + (f" x{counts[key]}" if exact and counts[key] > 1 else "")
        for key in list(first)[:_MAX_EXAMPLES]
    ]
    more = len(first) - _MAX_EXAMPLES
    return f" (e.g. {', '.join(shown)}" + (f", and {more} more distinct" if more > 0 else "") + ")"


def _aggregate_label(kind: str) -> str:
    """``expect_column_mean_to_be_between`` -> ``mean``; ``expect_table_row_count_...`` -> ``row count``."""
    core = kind.removeprefix("expect_").removeprefix("column_").removeprefix("table_")
    return core.split("_to_")[0].replace("_", " ") if "_to_" in core else "observed"


def _pct(value: float) -> str:
    if value == 0 or value >= 10:
        return f"{value:.0f}%" if value.is_integer() else f"{value:.1f}%"
    return f"{value:.2g}%"


def _short(value: Any) -> str:
    text = _num(value) if not isinstance(value, list | dict) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def judge_validation(
    validation: Mapping[str, Any],
    *,
    dataset: str,
    suite_name: str | None = None,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    row_count: int | None = None,
    data_label: str | None = None,
    sensitive_columns: Collection[str] = (),
) -> CheckResult:
    """Judge a Great Expectations 1.x suite validation result (its dict form: ``success``,
    ``results``, ``statistics``, ``suite_name``); see the module docstring for the mapping.

    ``row_count`` is how many rows were validated, when the gatherer knows. With none (an empty
    window or table) every expectation about values would pass vacuously, so the result is
    ``skipped`` with the reason ``no rows in <data_label> in the window <start> .. <end>``; only the
    expectations that mean something without rows are judged (:data:`ROWLESS_EXPECTATIONS`: row and
    column counts, column sets and types, and a column the data lacks). So a suite that asks for rows
    (``expect_table_row_count_to_be_between`` with a minimum above 0) fails on an empty window.

    ``sensitive_columns``: expectations about them are judged on counts and percentages only
    (:func:`withhold_values`): no unexpected example, observed extreme or error text quoting a value."""
    results = validation.get("results")
    if not isinstance(results, list):
        raise MlobsInputError("not a suite validation result: no 'results' list")
    name = suite_name or str(validation.get("suite_name") or "suite")
    sensitive = frozenset(sensitive_columns)
    results = [withhold_values(r, sensitive) for r in results]
    findings = [judge_expectation(r, dataset, sensitive) for r in results]
    if row_count == 0:
        return _judge_no_rows(
            results,
            findings,
            dataset=dataset,
            name=name,
            label=data_label or dataset,
            window_start=window_start,
            window_end=window_end,
        )
    order = {Status.ERROR: 0, Status.FAIL: 1, Status.WARN: 2, Status.PASS: 3, Status.SKIPPED: 4}
    findings.sort(key=lambda f: order[f.status])
    evaluated = len(findings)
    errored = sum(f.status is Status.ERROR for f in findings)
    failed = sum(f.status in (Status.FAIL, Status.WARN) for f in findings)
    successful = evaluated - errored - failed
    status = worst((f.status for f in findings), default=Status.PASS)
    metrics: dict[str, Any] = {
        "suite": name,
        "evaluated_expectations": evaluated,
        "successful_expectations": successful,
        "unsuccessful_expectations": failed + errored,
        "failed_expectations": sum(f.status is Status.FAIL for f in findings),
        "warned_expectations": sum(f.status is Status.WARN for f in findings),
        "errored_expectations": errored,
        "success_percent": round(100.0 * successful / evaluated, 2) if evaluated else 100.0,
    }
    if row_count is None:
        row_count = next(
            (
                f.value
                for f in findings
                if f.metric == "expect_table_row_count_to_be_between" and isinstance(f.value, int)
            ),
            None,
        )
    if row_count is not None:
        metrics["row_count"] = row_count
    bad = [f for f in findings if f.status is not Status.PASS]
    if not evaluated:
        summary = f"{dataset}: suite {name} has no expectations"
    elif errored:
        summary = (
            f"{dataset}: suite {name}: {errored} of {evaluated} expectations could not run: "
            + "; ".join(f.reason for f in bad if f.status is Status.ERROR)[:400]
        )
    elif bad:
        summary = f"{dataset}: suite {name}: {len(bad)} of {evaluated} expectations failed: " + "; ".join(
            f.reason for f in bad[:3]
        )
        if len(bad) > 3:
            summary += f"; and {len(bad) - 3} more"
    else:
        summary = f"{dataset}: suite {name}: all {evaluated} expectations passed"
    return CheckResult(
        check=CHECK,
        dataset=dataset,
        status=status,
        summary=summary,
        window_start=window_start,
        window_end=window_end,
        metrics=metrics,
        findings=tuple(findings),
    )


ROWLESS_EXPECTATIONS: frozenset[str] = frozenset(
    {
        "expect_table_row_count_to_be_between",
        "expect_table_row_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_table_column_count_to_equal",
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_column_to_exist",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
    }
)
"""Expectations whose verdict on zero rows means something (they are about the table's shape)."""


def window_text(start: datetime | None, end: datetime | None) -> str:
    """`` in the window 2026-11-25T00:00:00+00:00 .. 2026-11-26T00:00:00+00:00``, or nothing."""
    if start is None and end is None:
        return ""
    return f" in the window {start.isoformat() if start else '-'} .. {end.isoformat() if end else '-'}"


def _judge_no_rows(
    results: Sequence[Any],
    findings: Sequence[Finding],
    *,
    dataset: str,
    name: str,
    label: str,
    window_start: datetime | None,
    window_end: datetime | None,
) -> CheckResult:
    reason = f"no rows in {label}{window_text(window_start, window_end)}"
    judged: list[Finding] = []
    for raw, finding in zip(results, findings, strict=True):
        config = (raw.get("expectation_config") or {}) if isinstance(raw, Mapping) else {}
        kind = str(config.get("type") or config.get("expectation_type") or "")
        message = exception_message(raw.get("exception_info")) if isinstance(raw, Mapping) else None
        missing_column = message is not None and _missing_column(message) is not None
        if kind in ROWLESS_EXPECTATIONS or missing_column:
            judged.append(finding)
        else:
            judged.append(
                Finding(
                    subject=finding.subject,
                    metric=finding.metric,
                    status=Status.SKIPPED,
                    threshold=finding.threshold,
                    reason=f"not evaluated: {reason}",
                )
            )
    order = {Status.ERROR: 0, Status.FAIL: 1, Status.WARN: 2, Status.PASS: 3, Status.SKIPPED: 4}
    judged.sort(key=lambda f: order[f.status])
    status = worst((f.status for f in judged if f.status is not Status.SKIPPED), default=Status.PASS)
    bad = [f for f in judged if f.status in (Status.ERROR, Status.FAIL, Status.WARN)]
    summary = f"{dataset}: suite {name}: {reason}"
    if bad:
        summary += ": " + "; ".join(f.reason for f in bad[:3])
    else:
        status = Status.SKIPPED
        shape = sum(f.status is Status.PASS for f in judged)
        skipped = len(judged) - shape
        summary += (
            f"; the {shape} expectation(s) about the table's shape passed, the other {skipped} need rows"
            if shape
            else "; nothing to validate"
        )
    metrics: dict[str, Any] = {
        "suite": name,
        "row_count": 0,
        "evaluated_expectations": sum(f.status is not Status.SKIPPED for f in judged),
        "skipped_expectations": sum(f.status is Status.SKIPPED for f in judged),
        "failed_expectations": sum(f.status is Status.FAIL for f in judged),
        "warned_expectations": sum(f.status is Status.WARN for f in judged),
        "errored_expectations": sum(f.status is Status.ERROR for f in judged),
    }
    return CheckResult(
        check=CHECK,
        dataset=dataset,
        status=status,
        summary=summary,
        window_start=window_start,
        window_end=window_end,
        metrics=metrics,
        findings=tuple(judged),
    )


# --- A starter suite from a drift baseline ---------------------------------------------------------


def _typed_category(text: str, logical: LogicalType) -> Any:
    """A category (stored as text in the baseline) as the column's own type, so ``in_set`` matches."""
    if logical is LogicalType.BOOLEAN:
        return text.lower() in ("true", "1", "t")
    if logical in (LogicalType.INTEGER, LogicalType.FLOAT, LogicalType.DECIMAL):
        try:
            number = float(text)
        except ValueError:
            return text
        return int(number) if number.is_integer() and logical is LogicalType.INTEGER else number
    return text


def suite_from_baseline(baseline: Baseline, *, rows_per_window: int | None = None) -> dict[str, Any]:
    """A starter expectation suite (Great Expectations 1.x JSON dict) from a stored drift baseline.

    Per column: it exists; numeric values lie within the reference's observed min..max (mostly 99%,
    severity warn: production data slightly outside the training range is worth a look, not a stop);
    NULLs: a column without NULLs in the reference must have none (severity fail), otherwise the
    NULL rate may be at most twice the reference rate plus one point (severity warn); categorical
    values are in the reference's category set (mostly 99%, warn), unless the reference had more
    categories than the baseline kept. A sensitive column of the baseline (no min/max, pseudonymized
    categories) gets no range or value-set expectation: the suite holds none of its values. With ``rows_per_window``, the window's row count must be
    within +-50% of it. Review and tighten it before relying on it.
    """
    expectations: list[dict[str, Any]] = []
    reference = baseline.reference
    source = f"baseline {baseline.name} {baseline.version}"

    def add(kind: str, kwargs: dict[str, Any], severity: str, note: str) -> None:
        expectations.append(
            {"type": kind, "kwargs": kwargs, "meta": {"severity": severity, "notes": f"{note} ({source})"}}
        )

    if rows_per_window is not None:
        if rows_per_window <= 0:
            raise MlobsInputError(f"rows_per_window must be positive, got {rows_per_window}")
        add(
            "expect_table_row_count_to_be_between",
            {"min_value": math.floor(rows_per_window * 0.5), "max_value": math.ceil(rows_per_window * 1.5)},
            "fail",
            f"row count within +-50% of {rows_per_window} rows per window",
        )
    for spec in baseline.columns.values():
        column = spec.name
        add("expect_column_to_exist", {"column": column}, "fail", "column in the reference data")
        profile = reference.columns.get(column)
        if profile is None:
            continue
        rows = profile.rows
        if rows:
            rate = profile.nulls / rows
            if profile.nulls == 0:
                add(
                    "expect_column_values_to_not_be_null",
                    {"column": column},
                    "fail",
                    "no NULLs in the reference",
                )
            else:
                allowed = min(1.0, 2 * rate + 0.01)
                if allowed < 1.0:
                    add(
                        "expect_column_values_to_not_be_null",
                        {"column": column, "mostly": round(1.0 - allowed, 4)},
                        "warn",
                        f"reference NULL rate {rate:.2%}; allowed up to {allowed:.2%}",
                    )
        if isinstance(profile, NumericProfile) and profile.min is not None and profile.max is not None:
            add(
                "expect_column_values_to_be_between",
                {"column": column, "min_value": profile.min, "max_value": profile.max, "mostly": 0.99},
                "warn",
                "within the reference's observed range",
            )
        elif (
            isinstance(profile, CategoricalProfile)
            and profile.counts
            and not profile.overflow
            # A sensitive column's categories are pseudonyms: no value of the data would be in them.
            and not spec.pseudonym_key_id
        ):
            logical = logical_type_from_name(spec.source_type) if spec.source_type else LogicalType.STRING
            categories = spec.categories or tuple(profile.counts)
            values = sorted(
                {_typed_category(c, logical) for c in categories}, key=lambda v: (str(type(v)), v)
            )
            add(
                "expect_column_values_to_be_in_set",
                {"column": column, "value_set": values, "mostly": 0.99},
                "warn",
                "categories seen in the reference",
            )
    return {
        "name": f"{baseline.name}.quality",
        "expectations": expectations,
        "meta": {
            "mlobs": {
                "generated_from": {"baseline": baseline.name, "version": baseline.version},
                "reference_rows": reference.row_count,
            },
            "notes": "A starter suite written from a drift baseline; review and tighten before relying on it.",
        },
    }


def suite_columns(suite: Mapping[str, Any]) -> Sequence[str]:
    """The columns a suite names (for messages and for reading only the needed columns of a file)."""
    names: list[str] = []
    for expectation in suite.get("expectations") or []:
        kwargs = expectation.get("kwargs") or {} if isinstance(expectation, Mapping) else {}
        for key in ("column", "column_A", "column_B"):
            if isinstance(kwargs.get(key), str) and kwargs[key] not in names:
                names.append(kwargs[key])
        for key in ("column_list", "column_set"):
            for name in kwargs.get(key) or []:
                if isinstance(name, str) and name not in names:
                    names.append(name)
    return names
