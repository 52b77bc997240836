"""The service-health definitions and rules at their edges (pure: no database)."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime

import numpy as np
import pytest
from scipy import stats

from airflow_mlobs.core.health import (
    CHECK,
    BurnWindow,
    GroupHealth,
    HealthObservation,
    HealthRules,
    HealthSummary,
    burn_rate,
    interpolate_rank,
    judge_health,
    rank_position,
)
from airflow_mlobs.core.intervals import wilson_interval
from airflow_mlobs.core.readings import HealthReading
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.render.headline import headline

RULES = HealthRules()
END = datetime(2024, 1, 2, tzinfo=UTC)
START = datetime(2024, 1, 1, tzinfo=UTC)


def summary(**values: object) -> HealthSummary:
    base: dict[str, object] = {
        "requests": 1000,
        "errors": 10,
        "latency_count": 1000,
        "latency_mean_ms": 100.0,
        "p50_ms": 90.0,
        "p95_ms": 120.0,
        "p99_ms": 150.0,
        "max_ms": 400.0,
        "peak_per_minute": 3,
        "window_minutes": 1440.0,
    }
    base.update(values)
    return HealthSummary(**base)  # type: ignore[arg-type]


def judged(current: HealthSummary, **kwargs: object) -> CheckResult:
    observation = kwargs.pop("observation", None) or HealthObservation(current=current)
    rules = kwargs.pop("rules", RULES)
    return judge_health(
        dataset="svc",
        observation=observation,  # type: ignore[arg-type]
        rules=rules,  # type: ignore[arg-type]
        baseline=kwargs.pop("baseline", {"p95_ms": 120.0, "throughput_per_min": 1000 / 1440}),  # type: ignore[arg-type]
        window_start=START,
        window_end=END,
    )


def finding(result: CheckResult, metric: str, subject: str | None = None):  # type: ignore[no-untyped-def]
    return next(
        f for f in result.findings if f.metric == metric and (subject is None or f.subject == subject)
    )


# --- Wilson ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "k,n", [(0, 1), (1, 1), (0, 100), (7, 100), (71, 1000), (500, 1000), (1000, 1000), (3, 7)]
)
def test_wilson_equals_scipy(k: int, n: int) -> None:
    low, high = wilson_interval(k, n)  # type: ignore[misc]
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert low == pytest.approx(ci.low, abs=1e-12)
    assert high == pytest.approx(ci.high, abs=1e-12)


def test_wilson_by_hand() -> None:
    # 7 of 100, z = 1.96: centre (0.07 + 0.019208) / 1.038416 = 0.0859077,
    # half 1.96 / 1.038416 * sqrt(0.000651 + 0.00009604) = 0.0515889
    low, high = wilson_interval(7, 100, z=1.96)  # type: ignore[misc]
    assert low == pytest.approx(0.0343188, abs=1e-6)
    assert high == pytest.approx(0.1374966, abs=1e-6)
    assert wilson_interval(0, 0) is None


# --- percentiles -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 21, 101, 1000])
def test_rank_interpolation_equals_numpy(n: int) -> None:
    values = np.sort(np.random.default_rng(n).lognormal(4, 1, n))
    for q in (0.0, 0.5, 0.95, 0.99, 1.0):
        k, t = rank_position(n, q)
        high = values[k] if k < n else None
        assert interpolate_rank(values[k - 1], high, t) == np.percentile(values, q * 100, method="linear")


# --- rules at their edges ------------------------------------------------------------------------


def test_min_requests_edge() -> None:
    errors = 20  # 20% errors: a breach whenever judged
    below = judged(summary(requests=99, latency_count=99, errors=errors))
    at = judged(summary(requests=100, latency_count=100, errors=errors))
    assert finding(below, "error_rate").status is Status.SKIPPED
    assert "fewer than min_requests (100)" in finding(below, "error_rate").reason
    assert finding(at, "error_rate").status is Status.FAIL


def test_error_rate_uses_the_wilson_lower_bound() -> None:
    # 7 of 100: 7% > 5% but the lower bound 3.4% is not: warn. 71 of 1000: lower bound 5.7%: fail.
    assert (
        finding(judged(summary(requests=100, latency_count=100, errors=7)), "error_rate").status
        is Status.WARN
    )
    result = judged(summary(errors=71))
    assert finding(result, "error_rate").status is Status.FAIL
    assert result.status is Status.FAIL
    assert finding(judged(summary(errors=50)), "error_rate").status is Status.PASS


@pytest.mark.parametrize(
    "p95,status",
    [
        (119.9 * 2 - 0.01, Status.WARN),
        (120 * 1.99, Status.WARN),
        (120 * 2.01, Status.FAIL),
        (240.0, Status.FAIL),
        (179.0, Status.PASS),
        (180.0, Status.WARN),
    ],
)
def test_p95_ratio_edges(p95: float, status: Status) -> None:
    result = judged(summary(p95_ms=p95))
    assert finding(result, "p95_ratio").status is status


def test_throughput_rule() -> None:
    base = {"p95_ms": 120.0, "throughput_per_min": 1.0}
    assert (
        finding(judged(summary(requests=719, latency_count=719), baseline=base), "throughput_ratio").status
        is Status.FAIL
    )
    assert (
        finding(judged(summary(requests=720, latency_count=720), baseline=base), "throughput_ratio").status
        is Status.PASS
    )


# --- burn rates --------------------------------------------------------------------------------


def burn_result(errors_1h: int, errors_5m: int, errors_6h: int, errors_30m: int) -> CheckResult:
    n = 10_000 if errors_1h > 100 else 1000
    burn = (
        BurnWindow(5, requests=n, errors=errors_5m),
        BurnWindow(30, requests=n, errors=errors_30m),
        BurnWindow(60, requests=n, errors=errors_1h),
        BurnWindow(360, requests=n, errors=errors_6h),
    )
    rules = HealthRules(slo_availability=0.999)
    return judged(summary(), observation=HealthObservation(current=summary(), burn=burn), rules=rules)


def test_burn_rate_definition() -> None:
    assert burn_rate(1, 1000, 0.999) == pytest.approx(1.0)
    assert burn_rate(0, 0, 0.999) is None


@pytest.mark.parametrize(
    "counts,status",
    [
        ((15, 15, 0, 0), Status.FAIL),  # 1h and 5m at 15x: page
        ((15, 14, 0, 0), Status.PASS),  # 5m at 14x only: no page (and 6h/30m quiet)
        ((14, 15, 0, 0), Status.PASS),  # 1h below: the short window alone never pages
        ((0, 0, 6, 6), Status.WARN),  # 6h and 30m at exactly 6x: ticket
        ((144, 144, 0, 0), Status.FAIL),  # exactly 14.4x over 1h and 5m (of 10,000 below): page
        ((0, 0, 6, 5), Status.PASS),
        ((0, 0, 5, 6), Status.PASS),
    ],
)
def test_burn_rate_pairs(counts: tuple[int, int, int, int], status: Status) -> None:
    found = finding(burn_result(*counts), "burn_rate", "slo:availability")
    assert found.status is status, found.reason


def test_latency_slo_burn() -> None:
    burn = tuple(BurnWindow(m, requests=100, latency_count=100, slow=20) for m in (5, 30, 60, 360))
    rules = HealthRules(slo_latency_ms=300, slo_latency_target=0.99)  # 20% slow = 20x
    result = judged(summary(), observation=HealthObservation(current=summary(), burn=burn), rules=rules)
    assert finding(result, "burn_rate", "slo:latency").status is Status.FAIL
    assert result.metrics["burn_rates"]["latency"]["1h"] == pytest.approx(20.0)


# --- degenerate input --------------------------------------------------------------------------


def test_empty_window_is_a_result() -> None:
    empty = HealthSummary(window_minutes=1440.0, peak_per_minute=0)
    result = judged(empty, baseline={"p95_ms": 120.0})
    assert result.status is Status.SKIPPED
    assert "no requests" in result.summary
    result.to_json()  # strict JSON: no NaN or infinity anywhere
    with_traffic = judged(empty)  # with a baseline throughput, no traffic is an outage
    assert with_traffic.status is Status.FAIL


def test_all_latencies_null_and_single_request() -> None:
    null = judged(
        summary(latency_count=0, latency_mean_ms=None, p50_ms=None, p95_ms=None, p99_ms=None, max_ms=None)
    )
    assert "none of the 1,000 requests has a latency" in finding(null, "p95_ratio").reason
    single = judged(summary(requests=1, errors=1, latency_count=1, p95_ms=5000.0))
    assert single.status in (Status.SKIPPED, Status.FAIL)  # throughput may fail; no exception
    assert finding(single, "error_rate").status is Status.SKIPPED
    zero_base = judged(summary(), baseline={"p95_ms": 0.0})
    assert finding(zero_base, "p95_ratio").status is Status.SKIPPED
    zero_base.to_json()


# --- groups, reading, headline -------------------------------------------------------------------


def test_moved_most_names_segment_and_version() -> None:
    segments = (
        GroupHealth("eu", summary(p95_ms=130.0), summary(p95_ms=120.0)),
        GroupHealth("us", summary(p95_ms=900.0, errors=80), summary(p95_ms=110.0)),
    )
    versions = (GroupHealth("v1", summary(errors=5)), GroupHealth("v2", summary(errors=120)))
    observation = HealthObservation(current=summary(p95_ms=500.0), segments=segments, versions=versions)
    result = judged(summary(), observation=observation)
    seg = finding(result, "p95_ratio", "segment=us")
    assert "'us'" in seg.reason and "900 ms" in seg.reason and seg.value == pytest.approx(900 / 110)
    assert "reference window's 110 ms" in seg.reason
    ver = finding(result, "error_rate_rise", "model_version=v2")
    assert "12.0%" in ver.reason
    assert result.metrics["worst_segment_p95"]["value"] == "us"
    assert "segment 'us'" in result.summary


def test_a_service_slow_everywhere_names_no_slowest_segment() -> None:
    """Every region 7x slower: the slowest region is no finding to act on; a region whose errors
    stand out against the rest of the window (z >= 3) is."""
    segments = (
        GroupHealth("eu", summary(requests=1000, p95_ms=880.0, errors=50), summary(p95_ms=120.0)),
        GroupHealth("us", summary(requests=1000, p95_ms=900.0, errors=140), summary(p95_ms=120.0)),
    )
    observation = HealthObservation(
        current=summary(requests=2000, p95_ms=890.0, errors=190), segments=segments
    )
    result = judged(summary(requests=2000, p95_ms=890.0, errors=190), observation=observation)
    latency = finding(result, "p95_ratio", "segment=us")
    assert latency.status is Status.PASS and "every segment moved alike" in latency.reason
    errors = finding(result, "error_rate_rise", "segment=us")
    assert errors.status is Status.WARN and "the rest of the window 5.0%" in errors.reason
    assert "slowest" not in result.summary and "most errors: segment 'us'" in result.summary
    # Errors high everywhere alike: named in the findings, not warned on.
    even = (
        GroupHealth("eu", summary(requests=1000, errors=95)),
        GroupHealth("us", summary(requests=1000, errors=100)),
    )
    flat = judged(
        summary(requests=2000, errors=195),
        observation=HealthObservation(current=summary(requests=2000, errors=195), segments=even),
    )
    assert finding(flat, "error_rate_rise", "segment=us").status is Status.PASS
    assert "most errors" not in flat.summary


def test_reading_and_headline() -> None:
    result = judged(summary(requests=1234, latency_count=1234, errors=88, p95_ms=900.0))
    reading = HealthReading.of(result)
    assert reading is not None and reading.p95_ratio == pytest.approx(7.5)
    assert result.check == CHECK
    low, high = wilson_interval(88, 1234)  # type: ignore[misc]
    assert headline(result) == (
        f"p95 900 ms (7.5x baseline 120 ms), errors 7.1% [{low:.1%}, {high:.1%}] of 1,234 requests"
    )
    assert not math.isinf(reading.error_rate or 0)


# --- arguments at parse time, sensitive groups ----------------------------------------------------


@pytest.mark.parametrize(
    "changes,words",
    [
        ({"sql": "SELECT 1"}, "exactly one of table or sql"),
        ({"latency_unit": "us"}, "latency_unit must be 'ms' or 's'"),
        ({"baseline": {"p99": 1}}, "baseline has unknown keys ['p99']"),
        ({"min_requests": 0}, "min_requests must be an integer >= 1"),
        ({"p95_warn_ratio": 3.0}, "p95_warn_ratio <= p95_fail_ratio"),
        ({"slo_availability": 1.0}, "slo_availability must be in (0, 1)"),
        ({"error_kind": "http"}, "error_kind must be one of"),
        ({"model_version": "v2"}, "model_version needs model_version_column"),
        ({"window": "often"}, "window"),
    ],
)
def test_operator_refuses_bad_arguments_at_parse_time(changes: dict[str, object], words: str) -> None:
    from airflow_mlobs.operators.health import ServiceHealthCheckOperator

    arguments: dict[str, object] = {
        "task_id": "health",
        "conn_id": "wh",
        "table": "requests",
        "timestamp_column": "ts",
        "latency_column": "latency_ms",
    }
    arguments.update(changes)
    with pytest.raises(ValueError, match="health") as raised:
        ServiceHealthCheckOperator(**arguments)  # type: ignore[arg-type]
    assert words in str(raised.value)


def test_operator_stores_arguments_only() -> None:
    from airflow_mlobs.operators.health import ServiceHealthCheckOperator

    op = ServiceHealthCheckOperator(
        task_id="health",
        conn_id="no_such_connection",  # nothing is read at parse time
        table="{{ params.table }}",
        timestamp_column="ts",
        latency_column="latency_s",
        latency_unit="s",
        error_statuses=[500, 503],
        window="1h",
        reference_window=["2024-01-01", "2024-01-08"],
    )
    assert {"conn_id", "table", "sql", "window", "reference_window", "model_version"} <= set(
        op.template_fields
    )
    spec = op.spec()
    assert spec.error_statuses == (500, 503) and spec.reference_window == ("2024-01-01", "2024-01-08")
    assert spec.to_kwargs()["latency_unit"] == "s"


def test_sensitive_groups_are_renamed() -> None:
    from airflow_mlobs.core.privacy import REDACTED, PseudonymKey, is_pseudonym
    from airflow_mlobs.specs.health import HealthSpec

    spec = HealthSpec(
        conn_id="wh",
        table="requests",
        timestamp_column="ts",
        latency_column="latency_ms",
        segment_column="customer",
        sensitive_columns=("customer",),
    )
    observation = HealthObservation(
        current=summary(),
        segments=(GroupHealth("alice@example.com", summary()), GroupHealth("(null)", summary())),
        versions=(GroupHealth("v1", summary()),),
    )
    redacted = spec.renamed_groups(observation)
    assert [g.value for g in redacted.segments] == [f"{REDACTED} #1", "(null)"]
    assert [g.value for g in redacted.versions] == ["v1"]
    keyed = dataclasses.replace(spec, pseudonym_key=PseudonymKey(b"k" * 32)).renamed_groups(observation)
    assert is_pseudonym(keyed.segments[0].value) and keyed.segments[1].value == "(null)"
    result = judge_health(dataset="svc", observation=redacted, rules=RULES, baseline={"p95_ms": 100.0})
    assert "alice" not in result.to_json()


def test_slack_and_email_carry_the_headline() -> None:
    import json

    from airflow_mlobs.render.email import email_message
    from airflow_mlobs.render.slack import slack_message

    result = judged(summary(requests=1234, latency_count=1234, errors=88, p95_ms=900.0))
    line = headline(result)
    assert line is not None and line.startswith("p95 900 ms (7.5x baseline 120 ms), errors 7.1% [")
    assert line in json.dumps(slack_message(result, kind="alert"))
    assert line in str(email_message(result, kind="alert"))


def test_one_group_alone_is_not_named() -> None:
    observation = HealthObservation(
        current=summary(p95_ms=900.0), versions=(GroupHealth("v1", summary(p95_ms=900.0)),)
    )
    result = judged(summary(), observation=observation)
    assert not [f for f in result.findings if f.subject.startswith("model_version=")]
    assert "worst_model_version_p95" not in result.metrics
