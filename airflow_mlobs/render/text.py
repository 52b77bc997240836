"""Plain-text tables of results: the findings table in task logs and the demo, aligned columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_mlobs.core.result import CheckResult, json_safe


def short(value: Any, width: int = 40) -> str:
    """A table cell: ``-`` for nothing, floats to 4 significant digits, long text cut at ``width``."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(json_safe(value))
    return text if len(text) <= width else text[: width - 3] + "..."


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """``rows`` (the header first) as lines, each column padded to its widest cell."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(widths[i]) for i, c in enumerate(r)) for r in rows]


def findings_table(result: CheckResult, max_rows: int = 20) -> str:
    """A readable plain-text table of the findings, worst first, for task logs and the demo
    (the reason column is left unpadded: it is the last and often long)."""
    rows = [("subject", "metric", "status", "value", "threshold")]
    reasons = ["reason"]
    shown = sorted(result.findings, key=lambda f: -f.status.severity)[:max_rows]
    for f in shown:
        rows.append((f.subject, f.metric, f.status.value, short(f.value), short(f.threshold)))
        reasons.append(f.reason)
    lines = [line + "  " + reason for line, reason in zip(aligned(rows), reasons, strict=True)]
    if len(result.findings) > max_rows:
        lines.append(f"... {len(result.findings) - max_rows} more findings")
    return "\n".join(lines)
