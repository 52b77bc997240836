"""The result model shared by every check.

A :class:`CheckResult` is what every check produces, whatever it measured: a status, a one-line
summary a person understands, dataset-level metrics, and findings per subject (usually a column).
It is plain data: JSON-serializable (``to_dict`` / ``from_dict``) with a schema version, so it can be
stored in the results history, pushed to XCom in a compact form, and read back by later checks (the
retraining gate, notifications) without importing Airflow. How it reads to people (tables,
messages) is :mod:`airflow_mlobs.render`; its metrics are read through :mod:`airflow_mlobs.core.readings`.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

SCHEMA_VERSION = 1

JSONScalar = str | int | float | bool | None


class Status(enum.StrEnum):
    """Outcome of a check or of one finding, from best to worst (``skipped`` aside).

    - ``pass``: within limits.
    - ``warn``: past the warning level; never fails a task.
    - ``fail``: past the failure level; the breach policy decides what the task does.
    - ``error``: the check could not be evaluated (bad input, missing table, query error).
    - ``skipped``: nothing to judge (for example a subject not applicable to this window).
    """

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"

    @property
    def severity(self) -> int:
        """Rank used to combine statuses: the worst finding decides the check."""
        return _SEVERITY[self]

    @property
    def is_breach(self) -> bool:
        """``fail`` and ``error`` are breaches; ``warn`` never is."""
        return self in (Status.FAIL, Status.ERROR)


_SEVERITY = {Status.SKIPPED: 0, Status.PASS: 1, Status.WARN: 2, Status.FAIL: 3, Status.ERROR: 4}


def worst(statuses: Iterable[Status], default: Status = Status.PASS) -> Status:
    """The most severe of ``statuses``; ``default`` when there are none."""
    found = list(statuses)
    return max(found, key=lambda s: s.severity) if found else default


def json_safe(value: Any) -> Any:
    """A metric value made JSON-safe: datetimes to ISO text, non-finite floats to ``None``.

    JSON has no infinity or NaN; a stored ``Infinity`` would break other readers, so a non-finite
    value is stored as ``null`` and its meaning must be carried by the finding's reason.
    """
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return json_safe(value.item())
    return value


@dataclass(frozen=True)
class Finding:
    """One judged measurement about one subject (a column, the table, a partition).

    ``value`` and ``threshold`` are what was compared; ``reason`` says in words why the status is
    what it is (always set for anything but ``pass``).
    """

    subject: str
    metric: str
    status: Status
    value: Any = None
    threshold: Any = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict form."""
        return {
            "subject": self.subject,
            "metric": self.metric,
            "status": self.status.value,
            "value": json_safe(self.value),
            "threshold": json_safe(self.threshold),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        """Inverse of :meth:`to_dict`."""
        return cls(
            subject=str(data["subject"]),
            metric=str(data["metric"]),
            status=Status(data["status"]),
            value=data.get("value"),
            threshold=data.get("threshold"),
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check on one dataset over one window.

    Attributes:
        check: the check's name (``freshness``, ``schema``, ...).
        dataset: what was checked, as a person would name it (``warehouse:customer_features``).
        status: the overall status; by convention the worst of the findings'.
        summary: one line a person understands without reading the findings.
        window_start / window_end: the data window judged (for Airflow runs, the data interval);
            either may be ``None`` for checks that are not windowed.
        metrics: dataset-level measurements (JSON scalars, lists or dicts).
        findings: per-subject judgements, most important first.
        schema_version: version of this serialized form.
    """

    check: str
    dataset: str
    status: Status
    summary: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    findings: Sequence[Finding] = ()
    schema_version: int = SCHEMA_VERSION

    @property
    def is_breach(self) -> bool:
        """Whether the breach policy applies (status ``fail`` or ``error``)."""
        return self.status.is_breach

    def breaches(self) -> list[Finding]:
        """Findings that are not ``pass`` / ``skipped``, worst first."""
        bad = [f for f in self.findings if f.status.severity >= Status.WARN.severity]
        return sorted(bad, key=lambda f: -f.status.severity)

    def with_window(self, start: datetime | None, end: datetime | None) -> CheckResult:
        """A copy with the window set."""
        return replace(self, window_start=start, window_end=end)

    def to_dict(self) -> dict[str, Any]:
        """Full JSON-safe form, as stored in the results history."""
        return {
            "schema_version": self.schema_version,
            "check": self.check,
            "dataset": self.dataset,
            "status": self.status.value,
            "summary": self.summary,
            "window": {
                "start": json_safe(self.window_start),
                "end": json_safe(self.window_end),
            },
            "metrics": json_safe(dict(self.metrics)),
            "findings": [f.to_dict() for f in self.findings],
        }

    def to_json(self) -> str:
        """``to_dict`` as JSON text (strict: no NaN or Infinity)."""
        return json.dumps(self.to_dict(), allow_nan=False, sort_keys=True)

    def compact(self, max_findings: int = 5) -> dict[str, Any]:
        """The small form pushed to XCom: the verdict and the worst few findings only."""
        top = self.breaches()[:max_findings]
        return {
            "schema_version": self.schema_version,
            "check": self.check,
            "dataset": self.dataset,
            "status": self.status.value,
            "summary": self.summary,
            "window": {
                "start": json_safe(self.window_start),
                "end": json_safe(self.window_end),
            },
            "metrics": json_safe(dict(self.metrics)),
            "findings_total": len(self.findings),
            "findings_not_passing": len(self.breaches()),
            "top_findings": [f.to_dict() for f in top],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        """Read the full form back (also accepts the compact form, keeping its top findings)."""
        version = int(data.get("schema_version", SCHEMA_VERSION))
        if version > SCHEMA_VERSION:
            raise ValueError(
                f"check result has schema_version {version}; this airflow-mlobs reads up to "
                f"{SCHEMA_VERSION}: upgrade airflow-mlobs"
            )
        window = data.get("window") or {}
        findings = data.get("findings", data.get("top_findings", []))
        return cls(
            check=str(data["check"]),
            dataset=str(data["dataset"]),
            status=Status(data["status"]),
            summary=str(data["summary"]),
            window_start=_parse_dt(window.get("start")),
            window_end=_parse_dt(window.get("end")),
            metrics=dict(data.get("metrics") or {}),
            findings=tuple(Finding.from_dict(f) for f in findings),
            schema_version=version,
        )

    @classmethod
    def from_json(cls, text: str) -> CheckResult:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))


def _parse_dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def error_result(
    *,
    check: str,
    dataset: str,
    message: str,
    subject: str = "check",
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> CheckResult:
    """A result for a check that could not be evaluated; ``message`` names what to fix."""
    return CheckResult(
        check=check,
        dataset=dataset,
        status=Status.ERROR,
        summary=message,
        window_start=window_start,
        window_end=window_end,
        findings=(Finding(subject=subject, metric="error", status=Status.ERROR, reason=message),),
    )


#: Result keys whose values are data values of a column (examples, extremes, category names):
#: what :func:`scrub_sensitive` withholds for a sensitive column when a check forgot to.
VALUE_KEYS = frozenset(
    {
        "min",
        "max",
        "minimum",
        "maximum",
        "examples",
        "example_values",
        "partial_unexpected_list",
        "unexpected_list",
        "unexpected_values",
        "partial_unexpected_counts",
        "unseen_categories",
        "categories",
        "top_values",
        "values",
        "edges",
        "observed_value",
        "latest",
        "newest",
    }
)
_EXAMPLES = re.compile(r" \(e\.g\. .*?\)(?=;|$|,\s|\s)")
#: Where database error texts quote a row's value: ``invalid input syntax for type integer: "x"``
#: (PostgreSQL), ``Key (email)=(a@b.c) already exists``, ``... value 'x' ...`` (others).
_QUOTED_VALUES = (
    (
        re.compile(r'((?:invalid input (?:syntax|value)|malformed|out of range)[^:"\n]*:\s*)"[^"\n]*"', re.I),
        r'\1"[redacted]"',
    ),
    (re.compile(r"(\)=)\([^)\n]*\)"), r"\1([redacted])"),
    (re.compile(r"((?:value|string|literal)\s+)'[^'\n]*'", re.I), r"\1'[redacted]'"),
)


def scrub_error_text(text: str) -> str:
    """A database error message without the row values it quotes (:data:`_QUOTED_VALUES`); names of
    columns and tables stay. Applied by :func:`scrub_sensitive` to the texts of ``error`` results."""
    for pattern, replacement in _QUOTED_VALUES:
        text = pattern.sub(replacement, text)
    return text


def is_withheld_safe(value: Any) -> bool:
    """Whether ``value`` can be shown for a sensitive column: a number of values (a count or
    share), ``None``, a pseudonym or the redaction mark, or a list or mapping of only those."""
    from airflow_mlobs.core.privacy import REDACTED, is_pseudonym

    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        return value == REDACTED or is_pseudonym(value)
    if isinstance(value, list | tuple):
        return all(is_withheld_safe(v) for v in value)
    if isinstance(value, Mapping):
        return all(is_withheld_safe(k) and is_withheld_safe(v) for k, v in value.items())
    return False


def scrub_sensitive(result: CheckResult, sensitive_columns: Iterable[str]) -> CheckResult:
    """The last safety net for ``sensitive_columns`` (the checks themselves never put such a
    column's values in a result; this catches what a rule forgot): in the metrics, under a key
    naming a sensitive column, every :data:`VALUE_KEYS` entry that is not counts or pseudonyms is
    replaced by :data:`~airflow_mlobs.core.privacy.REDACTED`; a finding about a sensitive column
    keeps a numeric value only and loses ``(e.g. ...)`` examples from its reason. The result
    records the sensitive column names (names, not values) in ``metrics["sensitive_columns"]``. An
    ``error`` result's texts lose the values a database error quotes (:func:`scrub_error_text`)."""
    from airflow_mlobs.core.privacy import REDACTED

    sensitive = {str(c) for c in sensitive_columns}
    if not sensitive:
        return result

    def clean(value: Any, under_sensitive: bool) -> Any:
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for k, v in value.items():
                inner = under_sensitive or str(k) in sensitive
                if inner and str(k) in VALUE_KEYS and not is_withheld_safe(v):
                    out[str(k)] = REDACTED
                else:
                    out[str(k)] = clean(v, inner)
            if not under_sensitive and any(
                str(value.get(n)) in sensitive for n in ("column", "name", "subject") if n in value
            ):
                return clean(out, True)
            return out
        if isinstance(value, list | tuple):
            return [clean(v, under_sensitive) for v in value]
        return value

    def finding(f: Finding) -> Finding:
        if f.subject not in sensitive:
            return f
        value = f.value
        if not (isinstance(value, int | float) or is_withheld_safe(value)):
            value = REDACTED
        return replace(f, value=value, reason=_EXAMPLES.sub(" (examples withheld)", f.reason))

    metrics = clean(dict(result.metrics), False)
    metrics["sensitive_columns"] = sorted(sensitive)
    findings = tuple(finding(f) for f in result.findings)
    summary = result.summary
    if result.status is Status.ERROR:
        # A check that could not run says why in the database's words, which may quote a value.
        summary = scrub_error_text(summary)
        findings = tuple(
            replace(f, reason=scrub_error_text(f.reason)) if f.status is Status.ERROR else f for f in findings
        )
    return replace(result, summary=summary, metrics=metrics, findings=findings)
