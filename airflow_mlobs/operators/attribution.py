"""``AttributionDriftCheckOperator``: has the model started relying on different features?

The check itself is :class:`~airflow_mlobs.specs.attribution.AttributionSpec`; this module turns
the operator's arguments into that spec and gives it the run's window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from airflow_mlobs.core.attribution import CHECK
from airflow_mlobs.operators.base import WindowSpecOperator, parse_window_arg
from airflow_mlobs.specs.attribution import DEFAULT_TABLE, MODEL_VERSION, PREDICTED_AT, AttributionSpec

SPEC_ARGUMENTS = frozenset(f.name for f in fields(AttributionSpec)) - {"dataset"}


class AttributionDriftCheckOperator(WindowSpecOperator):
    """Compare a window's per-feature mean |attribution| and importance ranking with a reference.

    One aggregate statement per window (per feature: count, Σ|a|, Σa²), one row fetched.
    Definitions: :mod:`airflow_mlobs.core.attribution`. Fails when nDCG (SageMaker Clarify's
    definition for feature attribution drift,
    https://docs.aws.amazon.com/sagemaker/latest/dg/clarify-model-monitor-feature-attribution-drift.html)
    falls below ``ndcg_fail`` (0.90, Clarify's alert level); names the features that gained or lost
    weight (share of total mean |attribution|, beyond ``min_share_change`` and ``z`` standard errors).

    :param conn_id: Airflow SQL connection of the prediction log. Templated.
    :param table: the log (default ``mlobs_prediction_log``, as ``PredictionLogger`` writes it). Templated.
    :param timestamp_column: default ``predicted_at``.
    :param attribution_columns: ``{feature: column}``; default every column ``attr__<feature>``.
    :param model_version_column, model_version: judge one model version's predictions only.
    :param reference_window: ``(start, end)`` of a reference period of the same log. Templated.
    :param baseline_importances: a stored baseline ``{feature: importance}``.
    :param importances_table, reference_model_version: a table of global importances
        (``model_version, feature, importance``) and the version to read. Templated.
    :param ndcg_fail, ndcg_warn, spearman_warn, min_share_change, z, min_rows: levels
        (:class:`~airflow_mlobs.core.attribution.AttributionRules`).
    :param window, window_start, window_end: the judged window, as for the other checks. Templated.
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *WindowSpecOperator.template_fields,
        "conn_id",
        "table",
        "model_version",
        "reference_window",
        "importances_table",
        "reference_model_version",
        "window",
        "window_start",
        "window_end",
    )

    def __init__(
        self,
        *,
        conn_id: str,
        table: str = DEFAULT_TABLE,
        timestamp_column: str = PREDICTED_AT,
        attribution_columns: Mapping[str, str] | None = None,
        model_version_column: str | None = MODEL_VERSION,
        model_version: str | None = None,
        reference_window: Sequence[datetime | str] | None = None,
        baseline_importances: Mapping[str, float] | None = None,
        importances_table: str | None = None,
        reference_model_version: str | None = None,
        ndcg_fail: float = 0.9,
        ndcg_warn: float = 0.95,
        spearman_warn: float | None = 0.5,
        min_share_change: float = 0.05,
        z: float = 3.0,
        min_rows: int = 30,
        timezone: str = "UTC",
        window: timedelta | str | None = None,
        window_start: datetime | str | None = None,
        window_end: datetime | str | None = None,
        **kwargs: Any,
    ) -> None:
        arguments = {name: value for name, value in locals().items() if name in SPEC_ARGUMENTS}
        super().__init__(**kwargs)
        for name, value in arguments.items():
            setattr(self, name, value)
        self.window = window
        self.window_start = window_start
        self.window_end = window_end
        self.spec().validate(self.task_id)
        parse_window_arg(window, self.task_id, timestamp_column)

    def spec(self) -> AttributionSpec:
        """The rendered arguments as an :class:`AttributionSpec`."""
        values = {name: getattr(self, name) for name in SPEC_ARGUMENTS}
        values["attribution_columns"] = dict(values["attribution_columns"] or {})
        values["baseline_importances"] = dict(values["baseline_importances"] or {})
        if isinstance(values["reference_window"], list):
            values["reference_window"] = tuple(values["reference_window"])
        return AttributionSpec(**values, dataset=self.dataset)
