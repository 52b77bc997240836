"""The attribution-drift check as a plain spec: a prediction log's per-prediction feature
attributions in a window, summed in SQL (:mod:`airflow_mlobs.sources.attribution_sql`) and judged
by :func:`airflow_mlobs.core.attribution.judge_attribution` against one of three references."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_mlobs.core.attribution import AttributionRules, Reference, judge_attribution
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.timeutil import get_zone
from airflow_mlobs.core.types import parse_table_name
from airflow_mlobs.specs.base import (
    Connector,
    checked_input,
    connector_or_default,
    source_label,
    window_bounds,
)

if TYPE_CHECKING:
    from airflow_mlobs.sources.attribution_sql import AttributionSource

#: The prediction log's layout as PredictionLogger writes it (airflow_mlobs.recorder.layout; a
#: unit test holds them equal): read when the arguments name no other table or columns.
DEFAULT_TABLE = "mlobs_prediction_log"
PREDICTED_AT = "predicted_at"
MODEL_VERSION = "model_version"


@dataclass(frozen=True)
class AttributionSpec:
    """What to measure and the rules, as plain values (templates already rendered).

    References (exactly one): ``reference_window=(start, end)`` of the same log;
    ``baseline_importances={feature: importance}`` (a stored baseline); or ``importances_table``
    (columns ``model_version, feature, importance``) read for ``reference_model_version``.
    """

    conn_id: str
    table: str = DEFAULT_TABLE
    timestamp_column: str = PREDICTED_AT
    attribution_columns: Mapping[str, str] = field(default_factory=dict)
    model_version_column: str | None = MODEL_VERSION
    model_version: str | None = None
    reference_window: tuple[datetime | str, ...] | None = None
    baseline_importances: Mapping[str, float] = field(default_factory=dict)
    importances_table: str | None = None
    reference_model_version: str | None = None
    ndcg_fail: float = 0.9
    ndcg_warn: float = 0.95
    spearman_warn: float | None = 0.5
    min_share_change: float = 0.05
    z: float = 3.0
    min_rows: int = 30
    timezone: str = "UTC"
    dataset: str | None = None

    def rules(self) -> AttributionRules:
        """The levels as :class:`AttributionRules`."""
        return AttributionRules(
            ndcg_fail=self.ndcg_fail,
            ndcg_warn=self.ndcg_warn,
            spearman_warn=self.spearman_warn,
            min_share_change=self.min_share_change,
            z=self.z,
            min_rows=self.min_rows,
        )

    def validate(self, task_id: str) -> None:
        """Raise ``ValueError`` naming the task for impossible arguments."""
        for name in ("conn_id", "table", "timestamp_column"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{task_id}: {name} must be a non-empty string, got {value!r}")
        self.check_settings(task_id)

    def check_settings(self, where: str) -> None:
        """Raise ``ValueError`` naming ``where`` for a setting out of range."""
        given = [
            n
            for n, v in (
                ("reference_window", self.reference_window),
                ("baseline_importances", self.baseline_importances),
                ("importances_table", self.importances_table),
            )
            if v
        ]
        if len(given) != 1:
            raise ValueError(
                f"{where}: give exactly one of reference_window, baseline_importances, importances_table; got {given or 'none'}"
            )
        if self.importances_table and not self.reference_model_version:
            raise ValueError(f"{where}: importances_table needs reference_model_version")
        if self.reference_window is not None and len(self.reference_window) != 2:
            raise ValueError(f"{where}: reference_window must be (start, end), got {self.reference_window!r}")
        for key, value in self.baseline_importances.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(
                    f"{where}: baseline_importances[{key!r}] must be a number >= 0, got {value!r}"
                )
        try:
            get_zone(self.timezone)
        except ValueError as exc:
            raise ValueError(f"{where}: timezone: {exc}") from exc
        self.rules().check(where)

    def dataset_name(self) -> str:
        """``conn_id:table`` unless ``dataset`` names it."""
        return self.dataset or source_label(self.conn_id, table=self.table, sql=None)

    def to_kwargs(self) -> dict[str, Any]:
        """Plain dict; ``AttributionSpec(**kwargs)`` rebuilds it."""
        return asdict(self)

    def source(self) -> AttributionSource:
        """The gatherer's view of the log."""
        # SQLAlchemy and numpy load when the check runs, never when a DAG imports the spec.
        from airflow_mlobs.sources.attribution_sql import AttributionSource

        return AttributionSource(
            table=parse_table_name(self.table),
            timestamp_column=self.timestamp_column,
            attribution_columns=dict(self.attribution_columns) or None,
            model_version_column=self.model_version_column,
            model_version=self.model_version,
            naive_zone=get_zone(self.timezone),
        )

    def reference_bounds(self) -> tuple[datetime, datetime] | None:
        """The rendered ``reference_window`` as aware moments (start < end)."""
        if self.reference_window is None:
            return None
        if len(self.reference_window) != 2:
            raise MlobsInputError(
                f"{self.dataset_name()}: reference_window must be (start, end), got {self.reference_window!r}"
            )
        return window_bounds(self.dataset_name(), *self.reference_window, what="reference_window")

    def evaluate(
        self, *, window_start: datetime, window_end: datetime, connect: Connector | None = None
    ) -> CheckResult:
        """Gather ``[window_start, window_end)`` (and the reference) and judge it."""
        dataset = self.dataset_name()
        checked_input(dataset, self.check_settings)
        start, end = window_bounds(dataset, window_start, window_end)
        from airflow_mlobs.sources.attribution_sql import gather_attributions, read_importances

        bounds = self.reference_bounds()
        with connector_or_default(connect)(self.conn_id) as engine:
            current, ref_summary, _ = gather_attributions(
                engine, self.source(), start=start, end=end, reference=bounds
            )
            reference: Reference | None
            if ref_summary is not None and bounds is not None:
                label = f"reference window {bounds[0].isoformat()} to {bounds[1].isoformat()}"
                reference = (
                    Reference(ref_summary.importances(), label, ref_summary)
                    if ref_summary.rows >= self.min_rows
                    else Reference({}, f"{label} ({ref_summary.rows} rows, fewer than min_rows)")
                )
            elif self.importances_table:
                values, _ = read_importances(
                    engine, parse_table_name(self.importances_table), str(self.reference_model_version)
                )
                reference = Reference(
                    values, f"{self.importances_table} (model_version {self.reference_model_version})"
                )
            else:
                reference = Reference(dict(self.baseline_importances), "the given baseline_importances")
        return judge_attribution(
            dataset=dataset,
            current=current,
            reference=reference,
            rules=self.rules(),
            window_start=start,
            window_end=end,
        )
