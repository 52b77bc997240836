"""What every message about a result shows, whatever the channel: links and the worst findings."""

from __future__ import annotations

from dataclasses import dataclass

from airflow_mlobs.core.result import CheckResult, Finding
from airflow_mlobs.render.text import aligned, short

#: Findings shown in a message (the task log has them all).
MAX_TABLE_ROWS = 5
TABLE_HEADER = ("subject", "metric", "value", "threshold", "status")


@dataclass(frozen=True)
class Links:
    """Where to look next: the task's log in the Airflow UI and the "Report": the result's page in
    the Airflow UI (:func:`airflow_mlobs.render.links.result_page_url`) or a URL the notifier was
    given."""

    log_url: str | None = None
    report_url: str | None = None
    #: More ``(label, url)`` links after those two, e.g. a grouped message's breached checks'
    #: result pages ("drift report"); at most :data:`MAX_EXTRA_LINKS` are shown.
    extra: tuple[tuple[str, str], ...] = ()

    def labelled(self) -> list[tuple[str, str]]:
        """``(label, url)`` of the links that are set, in the order messages show them."""
        own = [
            (label, url) for label, url in (("Task log", self.log_url), ("Report", self.report_url)) if url
        ]
        return own + [(label, url) for label, url in self.extra[:MAX_EXTRA_LINKS] if url]


#: Extra links shown per message (Slack allows 25 buttons, PagerDuty and readers fewer).
MAX_EXTRA_LINKS = 5


#: No links (a message without a task log or report to point to).
NO_LINKS = Links()


def top_rows(result: CheckResult, limit: int = MAX_TABLE_ROWS) -> list[tuple[str, str, str, str, str]]:
    """The worst findings as ``(subject, metric, value, threshold, status)`` rows, most severe and
    largest first (drift: the most drifted features; schema: the missing and renamed columns)."""

    def size(f: Finding) -> float:
        return abs(f.value) if isinstance(f.value, int | float) and not isinstance(f.value, bool) else 0.0

    ordered = sorted(result.breaches(), key=lambda f: (-f.status.severity, -size(f)))[:limit]
    return [
        (f.subject, f.metric, short(f.value, 32), short(f.threshold, 32), f.status.value) for f in ordered
    ]


def rows_text(rows: list[tuple[str, str, str, str, str]]) -> str:
    """``rows`` under :data:`TABLE_HEADER` as aligned plain text."""
    return "\n".join(aligned([TABLE_HEADER, *rows]))
