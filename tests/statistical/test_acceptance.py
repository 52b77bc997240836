"""Statistical acceptance tests of the drift engine: ``compare(baseline, profile)`` with default
:class:`DriftSettings` and default baselines (20 quantile bins), on raw samples profiled by the real
in-memory gatherer (:func:`profile_frame` on pandas DataFrames).

Criteria (from the issue):

(a) No drift, 25 features, 100,000 reference and 100,000 current rows, 200 repetitions, plus a few
    repetitions at 1,000,000 rows: the dataset status is ``fail`` in at most 1% of repetitions.
    The ``warn`` rate (any column drifted) is reported separately and asserted at most 1% as well.
(b) Power at 10,000 current rows (reference 100,000 rows, the baselines of (a)), at least 100
    repetitions: a 0.1-sigma mean shift, a +10% scale change, a category mix change of
    Jensen-Shannon distance 0.05 (base 2, on the true probabilities) and a new category with a 1%
    share each make the changed column ``fail`` (listed in ``metrics["drifted_columns"]``) in at
    least 99% of repetitions. One column is changed at a time; the other 24 stay undrifted, so the
    Benjamini-Hochberg correction sees a realistic family.
(c) A 0.005-sigma mean shift at 1,000,000 rows is not flagged (column status not ``fail``) in at
    least 99% of (column, repetition) trials.

Design notes

- The baseline is built once per repetition from a fresh reference draw (not once overall): the
  false-alarm rate a user meets is averaged over the reference they happen to have, and reference
  noise (quantile edges, a heavy tail's maximum that bounds the last bin) is part of what triggers
  an alarm. One baseline for all 200 windows would estimate the rate conditional on a single
  reference draw and make the 200 outcomes dependent, so the binomial reading of the count would
  be wrong.
- For the 100,000-row repetitions :func:`build_baseline` gets the column kinds (``kinds=``) instead
  of inferring them: the inference's per-column ``nunique`` costs about a quarter of a repetition.
  ``test_kinds_inferred_as_declared`` checks that inference gives the same kinds and the same
  baseline, and the 1,000,000-row repetitions use :func:`build_baseline` with inference. Profiles
  always come from :func:`profile_frame` on DataFrames. In (b) only the changed column of the
  10,000-row window is re-profiled; the other 24 keep the undrifted window's profile.
- The repetitions run in two spawned worker processes with ``OPENBLAS_NUM_THREADS=1``
  (``numeric_profile``'s ``np.dot`` otherwise starts OpenBLAS threads that fight the two workers).
- Rates are printed (``pytest -s`` shows them) with a 95% Clopper-Pearson interval; the assertions
  are on the observed rates, as the criteria are stated.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import optimize
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from airflow_mlobs.core.drift import DEFAULT_THRESHOLDS, compare
from airflow_mlobs.core.profile import Baseline, ColumnKind
from airflow_mlobs.core.result import CheckResult, Status, worst
from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame

SEED = 20_251_126
N_REF = 100_000
N_CUR = 100_000
N_REPS_NULL = 200
N_POWER = 10_000
N_REPS_POWER = 100  # the issue asks for at least 100 at n = 10k
N_BIG = 1_000_000
N_REPS_BIG = 3
MAX_FALSE_ALARM = 0.01
MIN_POWER = 0.99
TINY_SHIFT = 0.005  # in standard deviations, criterion (c)
WORKERS = max(1, min(2, os.cpu_count() or 1))


# --------------------------------------------------------------------------------------------------
# The 25 features: 20 numeric, 5 categorical.


@dataclass(frozen=True)
class Numeric:
    draw: Callable[[np.random.Generator, int], np.ndarray]
    mean: float
    sd: float
    continuous: bool = True


@dataclass(frozen=True)
class Categorical:
    labels: tuple[Any, ...]
    probs: tuple[float, ...]
    dtype: str  # "category", "object" or "bool"


def _lognormal(mu: float, s: float) -> Numeric:
    mean = math.exp(mu + s * s / 2)
    return Numeric(lambda rng, n: rng.lognormal(mu, s, n), mean, mean * math.sqrt(math.expm1(s * s)))


def _normal(mu: float, s: float) -> Numeric:
    return Numeric(lambda rng, n: rng.normal(mu, s, n), mu, s)


def _uniform(a: float, b: float) -> Numeric:
    return Numeric(lambda rng, n: rng.uniform(a, b, n), (a + b) / 2, (b - a) / math.sqrt(12))


def _with_nulls(rng: np.random.Generator, n: int) -> np.ndarray:
    values = rng.normal(20.0, 5.0, n)
    values[rng.random(n) < 0.05] = np.nan
    return values


def _bimodal(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.where(rng.random(n) < 0.3, rng.normal(-2.0, 0.5, n), rng.normal(2.0, 1.0, n))


def _skewed(k: int, power: float) -> tuple[float, ...]:
    weights = 1.0 / np.arange(1, k + 1) ** power
    return tuple(weights / weights.sum())


NUMERIC: dict[str, Numeric] = {
    "normal_0": _normal(0.0, 1.0),
    "normal_1": _normal(35.0, 12.0),
    "normal_2": _normal(100.0, 15.0),
    "normal_3": _normal(-3.0, 0.2),
    "normal_4": _normal(50_000.0, 8_000.0),
    "normal_5": _normal(0.5, 2.0),
    "normal_nulls": Numeric(_with_nulls, 20.0, 5.0),  # 5% NULL (NaN)
    "lognormal_0": _lognormal(3.0, 0.5),
    "lognormal_1": _lognormal(3.0, 0.75),
    "lognormal_2": _lognormal(3.0, 1.0),
    "uniform_0": _uniform(0.0, 1.0),
    "uniform_1": _uniform(-5.0, 5.0),
    "uniform_2": _uniform(100.0, 250.0),
    "exponential": Numeric(lambda rng, n: rng.exponential(30.0, n), 30.0, 30.0),
    "gamma": Numeric(lambda rng, n: rng.gamma(2.5, 4.0, n), 10.0, math.sqrt(2.5) * 4.0),
    "beta": Numeric(lambda rng, n: rng.beta(2.0, 8.0, n), 0.2, math.sqrt(16 / (100 * 11))),
    "bimodal": Numeric(_bimodal, 0.8, math.sqrt(4.775 - 0.64)),
    "student_t5": Numeric(lambda rng, n: rng.standard_t(5, n), 0.0, math.sqrt(5 / 3)),
    # integer counts (int64): geometric-like (mean ~5.5, long tail) and binomial(60, 0.3)
    "count_geometric": Numeric(
        lambda rng, n: np.floor(rng.exponential(6.0, n)).astype(np.int64), 5.54, 6.0, continuous=False
    ),
    "count_binomial": Numeric(
        lambda rng, n: rng.binomial(60, 0.3, n), 18.0, math.sqrt(60 * 0.3 * 0.7), continuous=False
    ),
}
CATEGORICAL: dict[str, Categorical] = {
    "segment": Categorical(tuple(f"seg_{i:02d}" for i in range(20)), _skewed(20, 1.2), "category"),
    "country": Categorical(tuple(f"country_{i}" for i in range(8)), _skewed(8, 1.5), "object"),
    "plan": Categorical(
        ("basic", "plus", "pro", "team", "enterprise"), (0.55, 0.25, 0.12, 0.06, 0.02), "category"
    ),
    "device": Categorical(("web", "ios", "android"), (0.7, 0.2, 0.1), "category"),
    "is_returning": Categorical((False, True), (0.7, 0.3), "bool"),
}
assert len(NUMERIC) == 20 and len(CATEGORICAL) == 5


def _draw_categorical(rng: np.random.Generator, n: int, spec: Categorical) -> Any:
    codes = rng.choice(len(spec.probs), size=n, p=np.asarray(spec.probs))
    if spec.dtype == "bool":
        return codes.astype(bool)  # labels are (False, True)
    if spec.dtype == "category":
        return pd.Categorical.from_codes(codes, categories=list(spec.labels))
    return np.asarray(spec.labels, dtype=object)[codes]


def _frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    columns: dict[str, Any] = {name: spec.draw(rng, n) for name, spec in NUMERIC.items()}
    columns.update({name: _draw_categorical(rng, n, spec) for name, spec in CATEGORICAL.items()})
    return pd.DataFrame(columns)


KINDS: dict[str, ColumnKind] = {
    **dict.fromkeys(NUMERIC, "numeric"),
    **dict.fromkeys(CATEGORICAL, "categorical"),
}


def _baseline(frame: pd.DataFrame) -> Baseline:
    """``build_baseline`` with the kinds given rather than inferred (the inference's per-column
    ``nunique`` costs about a quarter of a repetition); ``test_kinds_inferred_as_declared`` checks
    that inference gives the same kinds, so this is the default baseline."""
    return build_baseline(frame, name="acceptance", version="1", kinds=KINDS)


# --------------------------------------------------------------------------------------------------
# Drift scenarios for (b): each changes one column of an undrifted 10,000-row window.


def _js_target(probs: tuple[float, ...], distance: float) -> tuple[float, ...]:
    """Probabilities at Jensen-Shannon distance ``distance`` (base 2) from ``probs``: the mix
    flattened, ``q ~ p ** (1 - t)``, with ``t`` solved so that scipy's ``jensenshannon`` matches."""
    p = np.asarray(probs)

    def flattened(t: float) -> np.ndarray:
        q = p ** (1.0 - t)
        return q / q.sum()

    def gap(t: float) -> float:  # scipy gives NaN (and warns) for a divergence rounding below zero
        with np.errstate(invalid="ignore"):
            return float(np.nan_to_num(jensenshannon(p, flattened(t), base=2))) - distance

    t = optimize.brentq(gap, 0.0, 1.0, xtol=1e-14)
    q = flattened(t)
    assert abs(jensenshannon(p, q, base=2) - distance) < 1e-9
    return tuple(q)


def _with_new_category(spec: Categorical, share: float) -> Categorical:
    probs = (*(p * (1.0 - share) for p in spec.probs), share)
    return Categorical((*spec.labels, "__new__"), probs, spec.dtype)


Scenario = Callable[[pd.Series, np.random.Generator], Any]


def _mean_shift(column: str, sds: float) -> Scenario:
    return lambda series, rng: series + sds * NUMERIC[column].sd


def _scale(column: str, factor: float) -> Scenario:
    mean = NUMERIC[column].mean
    return lambda series, rng: mean + factor * (series - mean)


def _redraw(spec: Categorical) -> Scenario:
    return lambda series, rng: _draw_categorical(rng, len(series), spec)


# The criteria name no feature; each is tried on a few shapes (a normal one first).
MEAN_SHIFT_COLUMNS = ("normal_0", "normal_nulls", "lognormal_2", "uniform_1", "gamma")
SCALE_COLUMNS = ("normal_1", "lognormal_1", "uniform_2")
JS_COLUMNS = tuple(CATEGORICAL)
NEW_CATEGORY_COLUMNS = ("country", "plan")

SCENARIOS: dict[str, tuple[str, str, Scenario]] = {}  # name -> (criterion, column, change)
for _c in MEAN_SHIFT_COLUMNS:
    SCENARIOS[f"mean +0.1 sd: {_c}"] = ("mean shift 0.1 sd", _c, _mean_shift(_c, 0.1))
for _c in SCALE_COLUMNS:
    SCENARIOS[f"scale +10%: {_c}"] = ("scale +10%", _c, _scale(_c, 1.1))
for _c in JS_COLUMNS:
    _target = replace(CATEGORICAL[_c], probs=_js_target(CATEGORICAL[_c].probs, 0.05))
    SCENARIOS[f"mix JS 0.05: {_c}"] = ("category mix JS 0.05", _c, _redraw(_target))
for _c in NEW_CATEGORY_COLUMNS:
    SCENARIOS[f"new category 1%: {_c}"] = (
        "new category 1%",
        _c,
        _redraw(_with_new_category(CATEGORICAL[_c], 0.01)),
    )


# --------------------------------------------------------------------------------------------------
# Repetitions (run in worker processes; they return small picklable summaries).


def _column_status(result: CheckResult, column: str) -> str:
    return worst((f.status for f in result.findings if f.subject == column), default=Status.SKIPPED).value


def _summary(result: CheckResult) -> dict[str, Any]:
    columns = result.metrics["columns"]
    return {
        "status": result.status.value,
        "drifted": [d["column"] for d in result.metrics["drifted_columns"]],
        "warned": sorted({f.subject for f in result.findings if f.status is Status.WARN}),
        "effect": {
            name: values.get("wasserstein") if name in NUMERIC else values.get("js")
            for name, values in columns.items()
        },
        "p_adjusted": {name: values.get("p_value_adjusted") for name, values in columns.items()},
    }


def _replicate(rep: int) -> dict[str, Any]:
    """One repetition of (a) at 100,000 rows and, for the first N_REPS_POWER, of (b)."""
    rng = np.random.default_rng([SEED, 1, rep])
    baseline = _baseline(_frame(rng, N_REF))
    specs = list(baseline.columns.values())
    out: dict[str, Any] = {"null": _summary(compare(baseline, profile_frame(_frame(rng, N_CUR), specs)))}
    if rep < N_REPS_POWER:
        window = _frame(rng, N_POWER)
        undrifted = profile_frame(window, specs)
        out["null_10k"] = _summary(compare(baseline, undrifted))
        power: dict[str, dict[str, Any]] = {}
        for name, (_, column, change) in SCENARIOS.items():
            changed = profile_frame(
                pd.DataFrame({column: change(window[column], rng)}), [baseline.columns[column]]
            )
            # Only the changed column is re-profiled; the other 24 keep the undrifted window's profile.
            profile = replace(undrifted, columns={**undrifted.columns, column: changed.columns[column]})
            result = compare(baseline, profile)
            power[name] = {
                "status": _column_status(result, column),
                "drifted": column in {d["column"] for d in result.metrics["drifted_columns"]},
                "effect": _summary(result)["effect"][column],
                "unseen_share": next(
                    (
                        f.status.value
                        for f in result.findings
                        if f.subject == column and f.metric == "unseen_share"
                    ),
                    "pass",
                ),
                "others_drifted": [
                    d["column"] for d in result.metrics["drifted_columns"] if d["column"] != column
                ],
            }
        out["power"] = power
    return out


def _replicate_big(rep: int) -> dict[str, Any]:
    """(a) at 1,000,000 rows through ``build_baseline``, and (c) on the same window shifted."""
    rng = np.random.default_rng([SEED, 2, rep])
    started = time.perf_counter()
    baseline = build_baseline(_frame(rng, N_BIG), name="acceptance", version="1")
    specs = list(baseline.columns.values())
    kinds = {name: spec.kind for name, spec in baseline.columns.items()}
    window = _frame(rng, N_BIG)
    null = compare(baseline, profile_frame(window, specs))
    shifted_columns = [name for name, spec in NUMERIC.items() if spec.continuous]
    shifted = window.assign(
        **{name: window[name] + TINY_SHIFT * NUMERIC[name].sd for name in shifted_columns}
    )
    tiny = compare(baseline, profile_frame(shifted, specs))
    return {
        "kinds": kinds,
        "null": _summary(null),
        "tiny": {name: _column_status(tiny, name) for name in shifted_columns},
        "tiny_summary": _summary(tiny),
        "seconds": time.perf_counter() - started,
    }


@dataclass
class Simulation:
    null: list[dict[str, Any]]
    big: list[dict[str, Any]]
    seconds: float


@pytest.fixture(scope="module")
def simulation() -> Iterator[Simulation]:
    started = time.perf_counter()
    previous = os.environ.get("OPENBLAS_NUM_THREADS")
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # inherited by the spawned workers
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(WORKERS, mp_context=context) as pool:
            big = [pool.submit(_replicate_big, rep) for rep in range(N_REPS_BIG)]  # longest first
            null = list(pool.map(_replicate, range(N_REPS_NULL), chunksize=5))
            big_results = [f.result() for f in big]
    finally:
        if previous is None:
            os.environ.pop("OPENBLAS_NUM_THREADS", None)
        else:
            os.environ["OPENBLAS_NUM_THREADS"] = previous
    simulation = Simulation(null, big_results, time.perf_counter() - started)
    print(f"\n[acceptance] simulation: {simulation.seconds:.1f} s on {WORKERS} worker(s)")
    yield simulation


# --------------------------------------------------------------------------------------------------
# Reporting helpers.


def _interval(hits: int, trials: int) -> tuple[float, float]:
    """95% Clopper-Pearson interval of a binomial proportion."""
    low = 0.0 if hits == 0 else float(sps.beta.ppf(0.025, hits, trials - hits + 1))
    high = 1.0 if hits == trials else float(sps.beta.ppf(0.975, hits + 1, trials - hits))
    return low, high


def _rate(label: str, hits: int, trials: int) -> float:
    low, high = _interval(hits, trials)
    print(f"[acceptance] {label}: {hits}/{trials} = {hits / trials:.2%} (95% CI {low:.2%}-{high:.2%})")
    return hits / trials


def _effects(label: str, runs: list[dict[str, Any]]) -> None:
    """The largest effect per column and how often it alone reached the default fail level (the
    column then passes only because its adjusted p-value is not below alpha)."""
    names = list(runs[0]["effect"])
    level = {n: DEFAULT_THRESHOLDS["wasserstein" if n in NUMERIC else "js"].fail for n in names}
    largest = sorted(((max(run["effect"][n] or 0.0 for run in runs), n) for n in names), reverse=True)
    print(f"[acceptance] {label}: largest effects: " + ", ".join(f"{n} {v:.4f}" for v, n in largest[:6]))
    over = {n: sum((run["effect"][n] or 0.0) >= level[n] for run in runs) for n in names}
    if any(over.values()):
        shown = ", ".join(f"{n} {k}/{len(runs)}" for n, k in sorted(over.items(), key=lambda kv: -kv[1]) if k)
        print(f"[acceptance] {label}: effect at or over its fail level (held back by the p-value): {shown}")


# --------------------------------------------------------------------------------------------------
# The tests.


def test_kinds_inferred_as_declared() -> None:
    """Default kind inference agrees with KINDS, so ``_baseline`` is the default baseline."""
    frame = _frame(np.random.default_rng([SEED, 0]), 20_000)
    inferred = build_baseline(frame, name="acceptance", version="1")
    assert {name: spec.kind for name, spec in inferred.columns.items()} == KINDS
    assert inferred.columns == _baseline(frame).columns


def test_true_js_distance_of_mix_scenarios() -> None:
    for name, spec in CATEGORICAL.items():
        target = _js_target(spec.probs, 0.05)
        assert jensenshannon(spec.probs, target, base=2) == pytest.approx(0.05, abs=1e-9), name


def test_a_no_drift_100k(simulation: Simulation) -> None:
    runs = [rep["null"] for rep in simulation.null]
    assert len(runs) == N_REPS_NULL
    statuses = Counter(run["status"] for run in runs)
    print(
        f"\n[acceptance] (a) no drift, 25 features, {N_REF:,} ref / {N_CUR:,} current rows: {dict(statuses)}"
    )
    fail_rate = _rate("(a) 100k dataset fail rate", statuses["fail"], len(runs))
    warn_rate = _rate("(a) 100k dataset warn rate (any column drifted)", statuses["warn"], len(runs))
    flagged = Counter(c for run in runs for c in run["drifted"] + run["warned"])
    print(f"[acceptance] (a) 100k columns flagged: {dict(flagged.most_common())}")
    _effects("(a) 100k", runs)
    assert statuses["error"] == 0
    assert fail_rate <= MAX_FALSE_ALARM
    assert warn_rate <= MAX_FALSE_ALARM, f"warn (any column drifted) in {warn_rate:.1%}: {dict(flagged)}"


def test_a_no_drift_1m(simulation: Simulation) -> None:
    assert all(run["kinds"] == KINDS for run in simulation.big)
    runs = [rep["null"] for rep in simulation.big]
    statuses = Counter(run["status"] for run in runs)
    seconds = [f"{run['seconds']:.1f}" for run in simulation.big]
    print(
        f"\n[acceptance] (a) no drift at {N_BIG:,} rows (build_baseline): {dict(statuses)}; s/rep {seconds}"
    )
    fail_rate = _rate("(a) 1M dataset fail rate", statuses["fail"], len(runs))
    warn_rate = _rate("(a) 1M dataset warn rate (any column drifted)", statuses["warn"], len(runs))
    flagged = Counter(c for run in runs for c in run["drifted"] + run["warned"])
    print(f"[acceptance] (a) 1M columns flagged: {dict(flagged)}")
    _effects("(a) 1M", runs)
    assert statuses["error"] == 0
    assert fail_rate <= MAX_FALSE_ALARM
    assert warn_rate <= MAX_FALSE_ALARM, f"warn (any column drifted) in {warn_rate:.1%}: {dict(flagged)}"


@pytest.mark.parametrize(
    "criterion", ["mean shift 0.1 sd", "scale +10%", "category mix JS 0.05", "new category 1%"]
)
def test_b_power_10k(simulation: Simulation, criterion: str) -> None:
    runs = [rep["power"] for rep in simulation.null if "power" in rep]
    assert len(runs) >= 100
    print(
        f"\n[acceptance] (b) power of '{criterion}' at {N_POWER:,} current rows ({N_REF:,} reference rows):"
    )
    misses: dict[str, float] = {}
    for name, (crit, _column, _) in SCENARIOS.items():
        if crit != criterion:
            continue
        detected = sum(run[name]["drifted"] for run in runs)
        assert all(run[name]["drifted"] == (run[name]["status"] == "fail") for run in runs)
        effects = np.array([run[name]["effect"] for run in runs], dtype=float)
        rate = _rate(f"    {name}", detected, len(runs))
        print(
            f"[acceptance]       effect mean {effects.mean():.4f}, 1st percentile {np.quantile(effects, 0.01):.4f}"
        )
        if criterion == "new category 1%":
            unseen = sum(run[name]["unseen_share"] == "fail" for run in runs)
            print(f"[acceptance]       unseen_share finding alone at fail: {unseen}/{len(runs)}")
        others = Counter(c for run in runs for c in run[name]["others_drifted"])
        if others:
            print(
                f"[acceptance]       undrifted columns drifted alongside (count of repetitions): {dict(others)}"
            )
        if rate < MIN_POWER:
            misses[name] = rate
    assert not misses, f"detected in fewer than {MIN_POWER:.0%} of repetitions: {misses}"


def test_b_no_drift_10k_reported(simulation: Simulation) -> None:
    """Not a criterion: the false-alarm rate of the undrifted 10,000-row windows used in (b)."""
    runs = [rep["null_10k"] for rep in simulation.null if "null_10k" in rep]
    statuses = Counter(run["status"] for run in runs)
    print(f"\n[acceptance] (info) no drift at {N_POWER:,} current rows: {dict(statuses)}")
    _rate("(info) 10k dataset warn rate (any column drifted)", statuses["warn"], len(runs))
    flagged = Counter(c for run in runs for c in run["drifted"] + run["warned"])
    print(f"[acceptance] (info) 10k columns flagged: {dict(flagged.most_common())}")
    _effects("(info) 10k", runs)
    assert statuses["fail"] == 0 and statuses["error"] == 0


def test_c_tiny_shift_1m_not_flagged(simulation: Simulation) -> None:
    trials = [status for run in simulation.big for status in run["tiny"].values()]
    flagged = Counter(
        name for run in simulation.big for name, status in run["tiny"].items() if status == "fail"
    )
    statuses = Counter(run["tiny_summary"]["status"] for run in simulation.big)
    print(
        f"\n[acceptance] (c) {TINY_SHIFT} sd shift of {len(simulation.big[0]['tiny'])} continuous columns "
        f"at {N_BIG:,} rows, {len(simulation.big)} repetitions: dataset statuses {dict(statuses)}"
    )
    not_flagged = _rate("(c) column trials not flagged", sum(s != "fail" for s in trials), len(trials))
    print(f"[acceptance] (c) flagged columns: {dict(flagged)}")
    _effects("(c) 1M shifted", [run["tiny_summary"] for run in simulation.big])
    assert not_flagged >= MIN_POWER, f"flagged: {dict(flagged)}"
    assert statuses["fail"] == 0
