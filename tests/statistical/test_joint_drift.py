"""Statistical acceptance of joint (multivariate) drift, on the in-memory path.

(a) Power: 10 features, x1 and x2 correlated +0.8, the rest independent; reference 50,000 rows in
    8 folds (a fresh reference per repetition), window 10,000 rows with the correlation flipped to
    -0.8 and every marginal unchanged: joint drift in >= 99% of 200 repetitions.
(b) No false alarm: 25 features with a fixed random correlation structure, reference 100,000
    rows, window 100,000 fresh rows from the same distribution: no alarm in >= 99% of 200
    repetitions (also checked at the 10,000-row window, where the threshold is wider).
(c) Marginal-only shifts (a 0.1-sigma mean shift of one column, correlations intact) are caught
    by the per-column drift test, which joint drift does not replace.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from airflow_mlobs.core.covariance import JointDriftModel, build_joint_model, judge_joint
from airflow_mlobs.core.drift import compare
from airflow_mlobs.sources.covariance_frame import covariance_folds_of_array, covariance_profile_of_array
from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame

SEED = 20261204
REPS = 200


def _model(x: np.ndarray, cols: tuple[str, ...]) -> JointDriftModel:
    model = build_joint_model(covariance_folds_of_array(x, cols, 8, shift=x[:1000].mean(axis=0)))
    assert isinstance(model, JointDriftModel), model
    return model


def _cov10(rho: float) -> np.ndarray:
    cov = np.eye(10)
    cov[0, 1] = cov[1, 0] = rho
    return cov


def test_correlation_flip_is_detected_at_10k_rows() -> None:
    cols = tuple(f"x{i + 1}" for i in range(10))
    hits = 0
    first = None
    for rep in range(REPS):
        rng = np.random.default_rng([SEED, 1, rep])
        ref = rng.multivariate_normal(np.zeros(10), _cov10(0.8), size=50_000)
        win = rng.multivariate_normal(np.zeros(10), _cov10(-0.8), size=10_000)
        result = judge_joint(_model(ref, cols), covariance_profile_of_array(win, cols))
        hits += bool(result.drifted)
        first = first or result
    print(f"flip detected {hits}/{REPS}; e.g. {first.message() if first else ''}")
    assert hits >= 0.99 * REPS
    assert first is not None and (first.pairs[0].left, first.pairs[0].right) == ("x1", "x2")


def _cov25() -> np.ndarray:
    rng = np.random.default_rng([SEED, 0])
    a = rng.normal(size=(25, 25)) * (rng.random((25, 25)) < 0.15)
    cov = a @ a.T + np.eye(25)
    sd = np.sqrt(np.diag(cov))
    return np.asarray(cov / np.outer(sd, sd))


def test_no_alarm_without_drift_at_100k_rows_25_columns() -> None:
    cols = tuple(f"f{i}" for i in range(25))
    chol = np.linalg.cholesky(_cov25())
    alarms = alarms_10k = 0
    for rep in range(REPS):
        rng = np.random.default_rng([SEED, 2, rep])
        ref = rng.standard_normal((100_000, 25)) @ chol.T * 3.0 + 10.0
        win = rng.standard_normal((100_000, 25)) @ chol.T * 3.0 + 10.0
        model = _model(ref, cols)
        alarms += bool(judge_joint(model, covariance_profile_of_array(win, cols)).drifted)
        alarms_10k += bool(judge_joint(model, covariance_profile_of_array(win[:10_000], cols)).drifted)
    print(f"false alarms: {alarms}/{REPS} at 100k rows, {alarms_10k}/{REPS} at 10k rows")
    assert alarms <= 0.01 * REPS
    assert alarms_10k <= 0.01 * REPS


def test_marginal_shift_is_caught_per_column_not_needed_jointly() -> None:
    rng = np.random.default_rng([SEED, 3])
    cols = tuple(f"x{i + 1}" for i in range(10))
    ref = pd.DataFrame(rng.multivariate_normal(np.zeros(10), _cov10(0.8), size=50_000), columns=list(cols))
    win = pd.DataFrame(rng.multivariate_normal(np.zeros(10), _cov10(0.8), size=10_000), columns=list(cols))
    win["x5"] += 0.1
    baseline = build_baseline(ref, name="joint", version="1")
    result = compare(baseline, profile_frame(win, list(baseline.columns.values())))
    drifted = result.metrics["drifted_columns"]
    print("per-column drifted:", drifted)
    assert "x5" in str(drifted)
