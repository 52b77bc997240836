"""``FairnessCheckOperator``: bias creep across groups, per window.

The check itself is :class:`~airflow_mlobs.specs.fairness.FairnessSpec`; this module turns the
operator's arguments into that spec and gives it the run's window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from datetime import datetime, timedelta
from typing import Any

from airflow_mlobs.core.fairness import CHECK
from airflow_mlobs.operators.base import WindowSpecOperator, parse_window_arg
from airflow_mlobs.recorder.layout import PERFORMANCE_DEFAULTS
from airflow_mlobs.specs.fairness import FairnessSpec

SPEC_ARGUMENTS = frozenset(f.name for f in fields(FairnessSpec)) - {"dataset"}
_D = PERFORMANCE_DEFAULTS


class FairnessCheckOperator(WindowSpecOperator):
    """Compare a classifier's groups: selection rates from the predictions alone (the same day),
    and once labels mature true/false positive rates and accuracy; judge the disparate impact
    ratio (four-fifths rule) and the growth of the gaps over a reference window. Definitions:
    :mod:`airflow_mlobs.core.fairness`. Pushed down through the performance check's
    prediction-label join, one aggregate statement per group column; only aggregates are fetched.

    :param conn_id: Airflow SQL connection of the prediction log and labels. Templated.
    :param group_columns: the prediction log's columns whose groups are compared (e.g.
        ``["region", "age_band"]``). Not ``sensitive_columns``, which means "never reveal values".
    :param predictions_table, labels_table, id_column, prediction_time_column, label_column,
        label_time_column, score_column, model_version_column: default to the prediction recorder's
        layout (:data:`~airflow_mlobs.recorder.layout.PERFORMANCE_DEFAULTS`).
    :param predicted_column: the predicted class; without it the class is ``score >= threshold``.
    :param threshold, positive_label: as for the performance check.
    :param model_version: judge one version only (with ``model_version_column``). Templated.
    :param reference_window: ``(start, end)`` of a period whose gaps are the baseline. Templated.
    :param warn_ratio, fail_ratio: disparate impact ratio levels (0.8, off).
    :param ratio_rule: ``"interval"`` (default): the ratio breaches a level only when its 95%
        interval lies below it (adverse impact beyond sampling error); ``"estimate"``: the point
        estimate alone.
    :param warn_growth, fail_growth: how much a gap may grow over the reference's (beyond its
        sampling error) before warning / failing (0.05, 0.10).
    :param min_group_size: smaller groups are reported as skipped (30).
    :param window, window_start, window_end: as for the other checks. Templated.
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *WindowSpecOperator.template_fields,
        "conn_id",
        "predictions_table",
        "labels_table",
        "window",
        "window_start",
        "window_end",
        "model_version",
        "reference_window",
    )

    def __init__(
        self,
        *,
        conn_id: str,
        group_columns: Sequence[str],
        predictions_table: str = _D["predictions_table"],
        labels_table: str = _D["labels_table"],
        id_column: str = _D["id_column"],
        prediction_time_column: str = _D["prediction_time_column"],
        label_column: str = _D["label_column"],
        label_time_column: str = _D["label_time_column"],
        score_column: str | None = _D["score_column"],
        predicted_column: str | None = None,
        threshold: float = 0.5,
        positive_label: Any = 1,
        model_version_column: str | None = None,
        model_version: str | None = None,
        reference_window: Sequence[datetime | str] | None = None,
        warn_ratio: float | None = 0.8,
        fail_ratio: float | None = None,
        ratio_rule: str = "interval",
        warn_growth: float | None = 0.05,
        fail_growth: float | None = 0.10,
        min_group_size: int = 30,
        window: timedelta | str | None = None,
        window_start: datetime | str | None = None,
        window_end: datetime | str | None = None,
        **kwargs: Any,
    ) -> None:
        arguments = {name: value for name, value in locals().items() if name in SPEC_ARGUMENTS}
        super().__init__(**kwargs)
        for name, value in arguments.items():
            setattr(self, name, value)
        self.group_columns = tuple(group_columns)
        self.window = window
        self.window_start = window_start
        self.window_end = window_end
        self.spec().validate(self.task_id)
        parse_window_arg(window, self.task_id, prediction_time_column)

    def spec(self) -> FairnessSpec:
        """The rendered arguments as a :class:`FairnessSpec`."""
        values = {name: getattr(self, name) for name in SPEC_ARGUMENTS}
        values["group_columns"] = tuple(values["group_columns"])
        if values["reference_window"] is not None:
            values["reference_window"] = tuple(values["reference_window"])
        return FairnessSpec(**values, dataset=self.dataset)
