"""The window a run judges, for every schedule and run type (airflow_mlobs.core.window)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_mlobs.core.window import DATA_INTERVAL, EXPLICIT, RunTimes, WindowError, resolve_window

D23 = datetime(2026, 11, 23, tzinfo=UTC)
D24 = datetime(2026, 11, 24, tzinfo=UTC)
DAY = timedelta(days=1)

# What Airflow 3 gives each kind of run.
INTERVAL = RunTimes(interval_start=D23, interval_end=D24, logical_date=D23, run_after=D24)  # CronDataInterval
ZERO = RunTimes(interval_start=D24, interval_end=D24, logical_date=D24, run_after=D24)  # "@daily"
MANUAL_NO_DATE = RunTimes(run_after=D24 + timedelta(hours=3, minutes=7))  # dags trigger, no logical date
ASSET = RunTimes(logical_date=None, run_after=D24 + timedelta(minutes=5))


def test_a_data_interval_is_judged_as_it_is() -> None:
    window = resolve_window(INTERVAL)
    assert (window.start, window.end, window.basis) == (D23, D24, DATA_INTERVAL)


def test_window_ends_at_the_interval_end() -> None:
    window = resolve_window(INTERVAL, window=timedelta(days=7))
    assert (window.start, window.end) == (D24 - timedelta(days=7), D24)
    assert "7d before the data interval end" in window.basis


def test_daily_zero_length_interval_without_window_is_an_error_that_says_what_to_write() -> None:
    with pytest.raises(WindowError) as caught:
        resolve_window(ZERO)
    message = str(caught.value)
    assert "zero-length data interval" in message
    assert "CronTriggerTimetable" in message
    assert 'window="1d"' in message
    assert "CronDataIntervalTimetable" in message


def test_daily_with_window_judges_the_day_before_the_run() -> None:
    window = resolve_window(ZERO, window=DAY)
    assert (window.start, window.end) == (D23, D24)


def test_manual_run_without_logical_date_anchors_on_run_after() -> None:
    with pytest.raises(WindowError, match="no data interval"):
        resolve_window(MANUAL_NO_DATE)
    window = resolve_window(MANUAL_NO_DATE, window=DAY)
    assert window.end == MANUAL_NO_DATE.run_after
    assert window.start == MANUAL_NO_DATE.run_after - DAY  # type: ignore[operator]
    assert "run-after time" in window.basis


def test_asset_triggered_run_without_window_is_an_error_not_the_whole_table() -> None:
    with pytest.raises(WindowError, match="asset-triggered"):
        resolve_window(ASSET)


def test_logical_date_without_interval_anchors_there() -> None:
    times = RunTimes(logical_date=D24, run_after=D24 + timedelta(hours=5))
    window = resolve_window(times, window=DAY)
    assert (window.start, window.end) == (D23, D24)
    assert "logical date" in window.basis


def test_explicit_bounds_win_and_are_checked() -> None:
    window = resolve_window(ZERO, start=D23 - DAY, end=D23)
    assert (window.start, window.end, window.basis) == (D23 - DAY, D23, EXPLICIT)
    # Only an end: the start comes from the window length.
    window = resolve_window(ZERO, window=DAY, end=D23)
    assert (window.start, window.end) == (D23 - DAY, D23)
    with pytest.raises(WindowError, match="must be before"):
        resolve_window(INTERVAL, start=D24, end=D23)


def test_not_required_gives_the_whole_source_with_a_reason() -> None:
    window = resolve_window(ASSET, required=False)
    assert window.is_whole
    assert "no data interval" in window.basis
    # A real interval is still used when there is one.
    assert resolve_window(INTERVAL, required=False).start == D23


def test_non_positive_window_is_rejected() -> None:
    with pytest.raises(WindowError, match="positive"):
        resolve_window(INTERVAL, window=timedelta(0))


def test_airflow_pendulum_times_give_aware_window_bounds() -> None:
    """Airflow hands tasks pendulum datetimes; pendulum 3 dropped the zone of ``end - window``, so
    stored window starts were naive and a gate's streak crashed comparing them."""
    import pendulum

    from airflow_mlobs.operators.base import judged_window

    day = pendulum.datetime(2026, 11, 24, tz="UTC")
    context = {"data_interval_start": day, "data_interval_end": day, "logical_date": day}
    window = judged_window(context, "1d")  # type: ignore[arg-type]
    assert window.start is not None and window.end is not None
    assert window.start.utcoffset() == timedelta(0) and window.end.utcoffset() == timedelta(0)
    assert (window.start, window.end) == (D23, D24)
    assert type(window.start) is datetime


def test_the_gate_tells_mapped_upstream_tasks_from_plain_ones() -> None:
    """Every Airflow 3 operator has ``operator_class``; only ``is_mapped`` tells a mapped task."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from airflow_mlobs.operators.gate import _task_kind

    with DAG("mapped_or_not", schedule=None) as dag:
        EmptyOperator(task_id="plain")
        EmptyOperator.partial(task_id="mapped").expand(doc=["a", "b"])
    assert _task_kind(dag, "plain") == (False, False)
    assert _task_kind(dag, "mapped") == (True, False)
    assert _task_kind(dag, "no_such_task") == (False, False)


def test_pendulum_window_bounds_given_as_arguments_are_plain_and_aware() -> None:
    import pendulum

    from airflow_mlobs.operators.base import judged_window, parse_moment

    end = pendulum.datetime(2026, 11, 24, tz="UTC")
    moment = parse_moment(end, "window_end")
    assert type(moment) is datetime and moment == D24
    window = judged_window({}, "1d", end=end)  # type: ignore[arg-type]
    assert (window.start, window.end) == (D23, D24)


def test_window_without_a_timestamp_column_is_a_dag_import_error() -> None:
    """A window selects rows by time: without a timestamp column the whole table would be judged
    under a window's name."""
    from airflow_mlobs.operators import DriftCheckOperator, ExpectationSuiteOperator

    with pytest.raises(ValueError, match="needs timestamp_column"):
        DriftCheckOperator(task_id="d", conn_id="wh", table="events", baseline="b", window="1d")
    with pytest.raises(ValueError, match="needs timestamp_column"):
        ExpectationSuiteOperator(task_id="q", conn_id="wh", table="events", suite="s.json", window="1d")
    ok = DriftCheckOperator(
        task_id="d", conn_id="wh", table="events", baseline="b", window="1d", timestamp_column="ts"
    )
    assert ok.window == "1d"


def test_merge_partitions_rendered_from_a_template() -> None:
    from airflow_mlobs.specs.drift import partition_list

    assert partition_list("['eu', 'us']") == ["eu", "us"]
    assert partition_list("eu, us") == ["eu", "us"]
    assert partition_list(("eu", 3)) == ["eu", "3"]
