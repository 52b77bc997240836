"""Statistical acceptance bank on production shapes (issue 19): heavy tails, zero-inflated counts,
few-level integers, near-constant columns, a large offset, Zipf categoricals over 500 and 5,000
levels, a high-cardinality id column, NULLs, and unequal reference and window sizes.

Everything goes through the real path with default settings: ``build_baseline`` (kinds inferred)
-> ``profile_frame`` -> ``compare``. Each repetition draws a fresh reference (its quantile edges,
tail maxima and unseen categories are part of the noise a user meets) and fresh windows.

Criteria (the issue's "done when"), asserted on 95% Wilson intervals so that a reduced
repetition count cannot pass by luck:

- **No drift**: a dataset alarm (``warn`` or ``fail``) in at most 1% of dataset runs, asserted as
  the interval's upper bound <= 2% (at 300 runs: at most one alarm; at 600, five), at 10k vs 10k
  (600 runs), 10k against a 100k reference and 100k vs 100k (300 runs each). At 1M rows (a few runs: each profiles 2M rows x 17 columns)
  the count is reported and at most one alarm is allowed.
- **Power at 10k** (against a 100k reference): each claimed change makes its column ``fail`` in
  at least 99% of runs, asserted as the interval's lower bound >= 98% (at 300 runs: at most one
  miss). Changes measured but not claimed are printed (``pytest -s``) and listed in the README
  with their rates.

The repetitions run in two spawned worker processes with one BLAS thread each.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlobs.core.drift import compare
from airflow_mlobs.core.profile import Baseline
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame
from tests.statistical.test_acceptance import _js_target

SEED = 20_261_203
REPS = int(os.environ.get("MLOBS_SHAPES_REPS", "300"))
REPS_SMALL = 2 * REPS  # 10k vs 10k: cheap, and the noisiest case
REPS_BIG = 4
WORKERS = max(1, min(2, os.cpu_count() or 1))
MAX_ALARM_UPPER = 0.02  # upper 95% Wilson bound of the no-drift alarm rate (target 1%)
MIN_POWER_LOWER = 0.98  # lower 95% Wilson bound of the power (target 99%)


# --------------------------------------------------------------------------------------------------
# The shapes.

Draw = Callable[[np.random.Generator, int], Any]


def _zipf_probs(levels: int, power: float = 1.0) -> np.ndarray:
    weights = 1.0 / np.arange(1, levels + 1) ** power
    return weights / weights.sum()


def _labels(prefix: str, levels: int) -> np.ndarray:
    return np.asarray([f"{prefix}{i:05d}" for i in range(levels)], dtype=object)


@dataclass(frozen=True)
class Cat:
    labels: np.ndarray
    probs: np.ndarray
    nulls: float = 0.0

    def draw(self, rng: np.random.Generator, n: int) -> Any:
        """A pandas Categorical (codes drawn, -1 for NULL): value counts without text conversion."""
        codes = rng.choice(len(self.probs), size=n, p=self.probs)
        if self.nulls:
            codes[rng.random(n) < self.nulls] = -1
        return pd.Categorical.from_codes(codes, categories=list(self.labels))


def _normal_nulls(rng: np.random.Generator, n: int, share: float = 0.01) -> np.ndarray:
    values = rng.normal(20.0, 5.0, n)
    values[rng.random(n) < share] = np.nan
    return values


NUMERIC: dict[str, Draw] = {
    "normal": lambda rng, n: rng.normal(50.0, 10.0, n),
    "nulls_1pct": _normal_nulls,
    "lognormal_wide": lambda rng, n: rng.lognormal(0.0, 1.5, n),
    "student_t3": lambda rng, n: rng.standard_t(3, n),
    "pareto": lambda rng, n: rng.pareto(2.5, n) + 1.0,
    "exponential": lambda rng, n: rng.exponential(30.0, n),
    "zero_inflated": lambda rng, n: np.where(rng.random(n) < 0.7, 0, rng.poisson(3.0, n)).astype(np.int64),
    "few_levels": lambda rng, n: rng.binomial(20, 0.3, n).astype(np.int64),
    "near_constant": lambda rng, n: np.where(rng.random(n) < 0.995, 7.0, rng.normal(7.0, 1.0, n)),
    "offset": lambda rng, n: 1.7e9 + rng.normal(0.0, 30.0, n),
}
CATEGORICAL: dict[str, Cat] = {
    "churn_flag": Cat(np.asarray(["no", "yes"], dtype=object), np.asarray([0.9, 0.1])),
    "plan": Cat(
        np.asarray(["basic", "plus", "pro", "team", "enterprise"], dtype=object),
        np.asarray([0.55, 0.25, 0.12, 0.06, 0.02]),
    ),
    "segment20": Cat(_labels("seg", 20), _zipf_probs(20, 1.2)),
    "region_nulls": Cat(_labels("region", 8), _zipf_probs(8, 1.5), nulls=0.03),
    "zipf500": Cat(_labels("z", 500), _zipf_probs(500)),
    "zipf5000": Cat(_labels("w", 5000), _zipf_probs(5000)),
    "ids": Cat(_labels("id", 20_000), np.full(20_000, 1 / 20_000)),
}
COLUMNS = (*NUMERIC, *CATEGORICAL)


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    data: dict[str, Any] = {name: draw(rng, n) for name, draw in NUMERIC.items()}
    data.update({name: cat.draw(rng, n) for name, cat in CATEGORICAL.items()})
    return pd.DataFrame(data)


def _baseline(frame: pd.DataFrame) -> Baseline:
    return build_baseline(frame, name="shapes", version="1")


# --------------------------------------------------------------------------------------------------
# Changes at 10k rows, one column at a time.

Change = Callable[[pd.Series, np.random.Generator], Any]


def _shift(sd: float) -> Change:
    return lambda s, rng: s + 0.1 * sd


def _scale_about(center: float) -> Change:
    return lambda s, rng: center + 1.1 * (s - center)


def _tail_times_3(threshold: float) -> Change:
    return lambda s, rng: np.where(s > threshold, 3 * s, s)


def _with_probs(cat: Cat, probs: np.ndarray) -> Change:
    return lambda s, rng: Cat(cat.labels, probs, cat.nulls).draw(rng, len(s))


def _new_category(cat: Cat, share: float = 0.01) -> Change:
    labels = np.append(cat.labels, "__new__")
    probs = np.append(cat.probs * (1 - share), share)
    return lambda s, rng: Cat(labels, probs, cat.nulls).draw(rng, len(s))


def _missing_5pct(s: pd.Series, rng: np.random.Generator) -> Any:
    return _normal_nulls(rng, len(s), 0.05)


LOGNORMAL_SD = math.exp(1.125) * math.sqrt(math.expm1(2.25))
NORMAL_Q98 = 50.0 + 10.0 * 2.053749
EXPONENTIAL_Q98 = 30.0 * math.log(50.0)

# name -> (column, change, claimed)
CHANGES: dict[str, tuple[str, Change, bool]] = {
    "mean +0.1 sd: normal": ("normal", _shift(10.0), True),
    "mean +0.1 sd: student_t3": ("student_t3", _shift(math.sqrt(3.0)), True),
    "mean +0.1 sd: lognormal_wide": ("lognormal_wide", _shift(LOGNORMAL_SD), False),
    "scale +10%: normal": ("normal", _scale_about(50.0), True),
    "scale +10%: student_t3": ("student_t3", _scale_about(0.0), False),  # 98% (README)
    "scale x1.1: lognormal_wide": ("lognormal_wide", _scale_about(0.0), False),  # 85% (README)
    "scale x1.1: exponential": ("exponential", _scale_about(0.0), True),
    "tail top 2% x3: normal": ("normal", _tail_times_3(NORMAL_Q98), True),
    "tail top 2% x3: exponential": ("exponential", _tail_times_3(EXPONENTIAL_Q98), True),
    "new category 1%: plan": ("plan", _new_category(CATEGORICAL["plan"]), True),
    "new category 1%: segment20": ("segment20", _new_category(CATEGORICAL["segment20"]), True),
    "new category 1%: zipf500": ("zipf500", _new_category(CATEGORICAL["zipf500"]), True),
    "new category 1%: zipf5000": ("zipf5000", _new_category(CATEGORICAL["zipf5000"]), False),
    "mix JS 0.05: plan": (
        "plan",
        _with_probs(CATEGORICAL["plan"], np.asarray(_js_target(tuple(CATEGORICAL["plan"].probs), 0.05))),
        True,
    ),
    "mix JS 0.05: segment20": (
        "segment20",
        _with_probs(
            CATEGORICAL["segment20"], np.asarray(_js_target(tuple(CATEGORICAL["segment20"].probs), 0.05))
        ),
        True,
    ),
    "mix JS 0.05: churn_flag": (
        "churn_flag",
        _with_probs(
            CATEGORICAL["churn_flag"], np.asarray(_js_target(tuple(CATEGORICAL["churn_flag"].probs), 0.05))
        ),
        True,
    ),
    "mix JS 0.05: zipf500": (
        "zipf500",
        _with_probs(
            CATEGORICAL["zipf500"], np.asarray(_js_target(tuple(CATEGORICAL["zipf500"].probs), 0.05))
        ),
        False,
    ),
    "missing 1% -> 5%": ("nulls_1pct", _missing_5pct, True),
}


# --------------------------------------------------------------------------------------------------
# Repetitions.


def _alarmed(result: CheckResult) -> dict[str, Any]:
    columns = {
        f.subject for f in result.findings if f.status in (Status.WARN, Status.FAIL) and f.subject in COLUMNS
    }
    return {"status": result.status.value, "alarm_columns": sorted(columns)}


def _column_failed(result: CheckResult, column: str) -> bool:
    return any(f.subject == column and f.status is Status.FAIL for f in result.findings)


def _null_rep(args: tuple[int, int, int]) -> dict[str, Any]:
    rep, n_ref, n_cur = args
    rng = np.random.default_rng([SEED, n_ref, n_cur, rep])
    baseline = _baseline(_frame(rng, n_ref))
    result = compare(baseline, profile_frame(_frame(rng, n_cur), baseline.columns.values()))
    return _alarmed(result)


def _power_rep(rep: int) -> dict[str, Any]:
    rng = np.random.default_rng([SEED, 7, rep])
    baseline = _baseline(_frame(rng, 100_000))
    window = _frame(rng, 10_000)
    specs = list(baseline.columns.values())
    undrifted = profile_frame(window, specs)
    out: dict[str, Any] = {"null": _alarmed(compare(baseline, undrifted))}
    for name, (column, change, _) in CHANGES.items():
        changed = window.copy()
        changed[column] = change(window[column], rng)
        spec = baseline.columns[column]
        one = profile_frame(changed[[column]], [spec])
        profile = undrifted.__class__(
            row_count=undrifted.row_count,
            columns={**undrifted.columns, column: one.columns[column]},
            edges_key=undrifted.edges_key,
        )
        result = compare(baseline, profile)
        out[name] = {
            "caught": _column_failed(result, column),
            "effect": result.metrics["columns"][column].get("js" if column in CATEGORICAL else "wasserstein"),
        }
    return out


def _run(func: Callable[[Any], dict[str, Any]], args: list[Any]) -> list[dict[str, Any]]:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    if WORKERS == 1:
        return [func(a) for a in args]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=WORKERS, mp_context=context) as pool:
        return list(pool.map(func, args, chunksize=max(1, len(args) // (4 * WORKERS))))


def wilson(hits: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of a binomial proportion."""
    if trials == 0:
        return 0.0, 1.0
    p = hits / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def _report(label: str, hits: int, trials: int) -> tuple[float, float]:
    low, high = wilson(hits, trials)
    print(f"[shapes] {label}: {hits}/{trials} = {hits / trials:.1%} (95% Wilson {low:.1%}-{high:.1%})")
    return low, high


def _columns_alarmed(runs: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        for column in run["alarm_columns"]:
            counts[column] = counts.get(column, 0) + 1
    return ", ".join(f"{c} {n}" for c, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "none"


@dataclass
class Bank:
    power: list[dict[str, Any]]
    seconds: float


@pytest.fixture(scope="module")
def bank() -> Iterator[Bank]:
    started = time.perf_counter()
    power = _run(_power_rep, list(range(REPS)))
    yield Bank(power, time.perf_counter() - started)


def test_wilson_interval_matches_the_textbook() -> None:
    # Wilson (1927) as in Agresti & Coull (1998), table 1-style check values.
    low, high = wilson(0, 300)
    assert low == pytest.approx(0.0, abs=1e-12) and high == pytest.approx(0.01264, abs=5e-5)
    low, high = wilson(300, 300)
    assert low == pytest.approx(1 - 0.01264, abs=5e-5) and high == pytest.approx(1.0, abs=1e-12)
    low, high = wilson(10, 100)
    assert (low, high) == (pytest.approx(0.05523, abs=5e-5), pytest.approx(0.17437, abs=5e-5))


@pytest.mark.parametrize(("n_ref", "n_cur"), [(10_000, 10_000), (100_000, 100_000)])
def test_no_drift_dataset_alarm_rate(n_ref: int, n_cur: int) -> None:
    reps = REPS_SMALL if n_ref <= 10_000 else REPS
    runs = _run(_null_rep, [(rep, n_ref, n_cur) for rep in range(reps)])
    alarms = sum(run["status"] != "pass" for run in runs)
    _, high = _report(f"no drift {n_ref} vs {n_cur}: dataset alarms", alarms, len(runs))
    print(f"[shapes]   columns alarmed: {_columns_alarmed(runs)}")
    assert high <= MAX_ALARM_UPPER, _columns_alarmed(runs)


def test_no_drift_10k_against_100k_reference(bank: Bank) -> None:
    runs = [rep["null"] for rep in bank.power]
    alarms = sum(run["status"] != "pass" for run in runs)
    _, high = _report("no drift 100000 vs 10000: dataset alarms", alarms, len(runs))
    print(f"[shapes]   columns alarmed: {_columns_alarmed(runs)}")
    assert high <= MAX_ALARM_UPPER, _columns_alarmed(runs)


def test_no_drift_1m() -> None:
    runs = _run(_null_rep, [(rep, 1_000_000, 1_000_000) for rep in range(REPS_BIG)])
    alarms = sum(run["status"] != "pass" for run in runs)
    _report("no drift 1M vs 1M: dataset alarms", alarms, len(runs))
    print(f"[shapes]   columns alarmed: {_columns_alarmed(runs)}")
    assert alarms <= 1, _columns_alarmed(runs)


@pytest.mark.parametrize("change", [name for name, (_, _, claimed) in CHANGES.items() if claimed])
def test_power_at_10k(bank: Bank, change: str) -> None:
    caught = sum(rep[change]["caught"] for rep in bank.power)
    effects = [rep[change]["effect"] for rep in bank.power if rep[change]["effect"] is not None]
    low, _ = _report(f"power {change}", caught, len(bank.power))
    print(f"[shapes]   effect median {np.median(effects):.4g}")
    assert low >= MIN_POWER_LOWER


#: Changes the check does not see at 10k rows, as the README says: a new category holding 1% of a
#: window whose reference folded its tail (5,000 levels) is "(other)" growing by one point, inside
#: that cell's noise.
BLIND = {"new category 1%: zipf5000"}


def test_unclaimed_changes_reported(bank: Bank) -> None:
    """The changes the README does not claim at 99%: their rates are printed for the README's
    table; the ones never caught are exactly those it names as blind spots."""
    print(f"[shapes] power bank: {len(bank.power)} repetitions in {bank.seconds:.0f} s")
    never = set()
    for change, (_, _, claimed) in CHANGES.items():
        if claimed:
            continue
        caught = sum(rep[change]["caught"] for rep in bank.power)
        _report(f"power (not claimed) {change}", caught, len(bank.power))
        if caught == 0:
            never.add(change)
    assert never == BLIND
