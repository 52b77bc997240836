"""Drift over partitions: ``DriftMergeOperator`` adds up the profiles that mapped
:class:`~airflow_mlobs.operators.drift.DriftCheckOperator` tasks stored for one window (one per
partition) and judges the whole dataset once. The partitions are profiled where they live, in
parallel; this step only adds counts (:meth:`Profile.merge`) and compares
(:func:`airflow_mlobs.core.drift.compare`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_mlobs import settings
from airflow_mlobs.connections import results_engine
from airflow_mlobs.core.drift_settings import CHECK
from airflow_mlobs.core.profile import Profile, load_baseline
from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.operators.base import (
    BaseCheckOperator,
    judged_window,
    parse_window_arg,
    with_window_basis,
)
from airflow_mlobs.operators.drift import DriftJudgeArgs
from airflow_mlobs.specs.drift import (
    checked_baseline,
    checked_sensitive,
    judge_profile,
    merge_partitions,
    partition_list,
    with_partitions,
    with_sample,
)
from airflow_mlobs.store import ResultsStore

if TYPE_CHECKING:
    from airflow.sdk import Context


def _moment(value: datetime | None) -> str:
    return value.isoformat() if value is not None else "(open)"


class DriftMergeOperator(DriftJudgeArgs):
    """Merge the stored partition profiles of the run's window and compare the sum with a baseline.

    Put it downstream of a mapped drift check, e.g.
    ``DriftCheckOperator.partial(..., dataset="wh:events").expand(where=[...])``: each mapped task
    stores its partition's profile (keyed by its ``partition``, by default the map index), and this
    task reads every partition's profile of exactly the same window from the results history,
    adds them, and judges the dataset as if it had been profiled at once. The result names how many
    partitions were merged and which; none found is an ``error`` result saying so.

    :param dataset: the dataset name the mapped drift tasks stored their profiles under (their
        ``dataset``, or ``conn_id:table``). Templated.
    :param baseline, baseline_version: which baseline (default: its newest version); it must be the
        one the partitions were profiled against. Templated.
    :param baseline_dir: where baselines live (as for ``DriftCheckOperator``). Templated.
    :param partitions: the partitions to merge (e.g. the list the drift check was expanded over);
        any of them missing is an ``error``. Default: every partition stored for the window.
        Templated.
    :param window, window_start, window_end: the window, as given to the drift check (default: the
        run's data interval). Templated.
    :param segment: merge the profiles of this segment value only (default: unsegmented ones).
    :param columns, prediction_columns, methods, thresholds, correction, drift_share, warn_share,
        importances, min_rows, max_categories: as for ``DriftCheckOperator``; ``min_rows`` counts the
        merged window's rows.
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        "baseline",
        "baseline_version",
        "baseline_dir",
        "partitions",
        "window",
        "window_start",
        "window_end",
    )

    def __init__(
        self,
        *,
        dataset: str,
        partitions: Sequence[str] | None = None,
        segment: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset=dataset, **kwargs)
        # Kept as given: it is templated (a Jinja string rendered to a list, or an XComArg).
        self.partitions = list(partitions) if isinstance(partitions, list | tuple) else partitions
        self.segment = segment
        parse_window_arg(self.window, self.task_id)

    def stored_partitions(
        self, dataset: str, edges_key: str, start: datetime | None, end: datetime | None
    ) -> list[tuple[str, Profile]]:
        """The partition profiles stored for this window (an unpartitioned profile is left out)."""
        engine = results_engine(self.results_conn_id)
        try:
            store = ResultsStore(engine)
            found = store.window_profiles(
                dataset, edges_key=edges_key, window_start=start, window_end=end, segment=self.segment
            )
            if store.skipped_rows:
                self.log.warning(
                    "%d stored profile(s) of %s could not be read and were left out",
                    store.skipped_rows,
                    dataset,
                )
        finally:
            engine.dispose()
        return [(partition, profile) for partition, profile in found if partition is not None]

    def evaluate(self, context: Context) -> CheckResult:
        """Read the window's partition profiles, merge them, compare the sum with the baseline."""

        dataset = self.dataset_name()
        # Not required: a drift check without a timestamp column stored its profile under the same
        # (possibly open) window this resolves to.
        judged = judged_window(
            context, self.window, start=self.window_start, end=self.window_end, required=False
        )
        start, end = judged.start, judged.end
        baseline = checked_baseline(
            load_baseline(settings.baseline_dir(self.baseline_dir), self.baseline, self.baseline_version),
            [*(self.columns or []), *self.prediction_columns],
        )
        # The stored partition profiles were gathered with the baseline's sensitivity (pseudonyms,
        # no extremes): no key is needed to add them, only a baseline built with sensitive_columns.
        baseline = checked_sensitive(baseline, self.sensitive_columns, None, key_needed=False)
        found = self.stored_partitions(dataset, baseline.key, start, end)
        where = (
            f"for {dataset} over the window {_moment(start)} .. {_moment(end)} against baseline "
            f"{baseline.name} {baseline.version}" + (f", segment {self.segment!r}" if self.segment else "")
        )
        wanted = partition_list(self.partitions) if self.partitions is not None else None
        chosen, merged = merge_partitions(
            found, wanted, where=where, dataset=dataset, max_categories=self.max_categories
        )
        self.log.info("Merged %d partition profiles %s (%d rows)", len(chosen), where, merged.row_count)
        result = judge_profile(
            baseline,
            merged,
            self.settings,
            dataset=dataset,
            columns=self.columns,
            prediction_columns=self.prediction_columns,
            window_start=start,
            window_end=end,
        )
        # A sampled baseline says so (merged partition profiles hold no sample of their own).
        result = with_sample(result, merged, baseline)
        return with_window_basis(with_partitions(result, chosen), judged)
