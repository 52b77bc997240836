"""The covariance profile against numpy; merges; JSON; the closed-form reconstruction error
against the per-row errors computed directly."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from airflow_mlobs.core.covariance import (
    CovarianceProfile,
    JointDriftModel,
    build_joint_model,
    fit_pca,
    judge_joint,
    reconstruction_error,
)
from airflow_mlobs.sources.covariance_frame import (
    covariance_folds_of_array,
    covariance_profile_of,
    covariance_profile_of_array,
)

COLS = ("a", "b", "c", "d")


def _data(n: int, seed: int = 0, rho: float = 0.8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cov = np.eye(4)
    cov[0, 1] = cov[1, 0] = rho
    return rng.multivariate_normal([1e6, -3.0, 0.0, 5.0], cov, size=n)


def test_profile_matches_numpy_and_drops_incomplete_rows() -> None:
    x = _data(2000)
    x[5, 1] = np.nan
    x[7, 2] = np.inf
    frame = pd.DataFrame(x, columns=list(COLS))
    frame.loc[9, "d"] = None
    prof = covariance_profile_of(frame, COLS, shift=[1e6, -3.0, 0.0, 5.0])
    keep = np.all(np.isfinite(frame.to_numpy()), axis=1)
    assert prof.n == int(keep.sum()) == 1997 and prof.dropped == 3
    cov = prof.covariance()
    assert cov is not None
    np.testing.assert_allclose(cov, np.cov(frame.to_numpy()[keep], rowvar=False), rtol=1e-9)
    np.testing.assert_allclose(prof.mean(), frame.to_numpy()[keep].mean(axis=0), rtol=1e-12)
    corr = prof.correlation()
    assert corr is not None
    np.testing.assert_allclose(corr, np.corrcoef(frame.to_numpy()[keep], rowvar=False), atol=1e-12)


def test_shift_keeps_precision_at_a_million_rows() -> None:
    rng = np.random.default_rng(1)
    x = 1.7e9 + rng.normal(0, 30, size=(1_000_000, 2))
    shifted = covariance_profile_of_array(x, ("p", "q"), shift=[1.7e9, 1.7e9]).covariance()
    assert shifted is not None
    expected = np.cov(x - 1.7e9, rowvar=False)  # numpy on the centred values: the exact digits
    np.testing.assert_allclose(shifted, expected, rtol=1e-9, atol=1e-9 * float(np.abs(expected).max()))
    unshifted = covariance_profile_of_array(x, ("p", "q")).covariance()
    assert unshifted is not None  # without the shift the cancellation loses the digits
    assert abs(unshifted[0, 0] - expected[0, 0]) > 1e-9 * expected[0, 0]


def test_merge_equals_union_and_reshift_is_exact() -> None:
    x = _data(3000, seed=2)
    whole = covariance_profile_of_array(x, COLS, shift=[1e6, 0, 0, 0])
    left = covariance_profile_of_array(x[:1000], COLS, shift=[1e6, 0, 0, 0])
    right = covariance_profile_of_array(x[1000:], COLS, shift=[1e6 + 2.5, -3, 0.5, 5])  # other shift
    merged = left.merge(right)
    assert merged.n == whole.n
    cov = whole.covariance()
    assert cov is not None
    np.testing.assert_allclose(merged.covariance(), cov, rtol=1e-9, atol=1e-9 * float(np.abs(cov).max()))  # type: ignore[arg-type]
    np.testing.assert_allclose(merged.mean(), whole.mean(), rtol=1e-12)


def test_json_round_trip() -> None:
    prof = covariance_profile_of_array(_data(100), COLS, shift=[1e6, 0, 0, 0])
    assert CovarianceProfile.from_json(json.loads(json.dumps(prof.to_json()))) == prof
    model = build_joint_model(covariance_folds_of_array(_data(4000), COLS, 8, shift=[1e6, 0, 0, 0]))
    assert isinstance(model, JointDriftModel)
    assert JointDriftModel.from_json(json.loads(json.dumps(model.to_json()))) == model


def test_reconstruction_error_from_sums_equals_per_row_errors() -> None:
    ref = covariance_profile_of_array(_data(5000), COLS, shift=[1e6, 0, 0, 0])
    model = fit_pca(ref)
    assert not isinstance(model, str)
    win = _data(700, seed=9, rho=-0.5)
    z = (win - model.mean) / model.std
    direct = float(np.mean(np.sum((z @ model.residual_projector) * z, axis=1))) / 4
    from_sums = reconstruction_error(
        model, covariance_profile_of_array(win, COLS, shift=[1e6 + 3.0, 4, 5, 6])
    )
    assert from_sums is not None
    np.testing.assert_allclose(from_sums, direct, rtol=1e-9)
    # the components are numpy's eigenvectors of the reference correlation, 90% of the trace kept
    values = np.sort(np.linalg.eigvalsh(np.corrcoef(_data(5000), rowvar=False)))[::-1]
    q = model.components.shape[1]
    assert values[:q].sum() / 4 >= 0.9 > values[: q - 1].sum() / 4


def test_judge_flags_flip_and_names_the_pair() -> None:
    model = build_joint_model(covariance_folds_of_array(_data(20000), COLS, 8, shift=[1e6, 0, 0, 0]))
    assert isinstance(model, JointDriftModel)
    flipped = judge_joint(model, covariance_profile_of_array(_data(10000, seed=5, rho=-0.8), COLS))
    assert flipped.drifted is True
    assert (flipped.pairs[0].left, flipped.pairs[0].right) == ("a", "b")
    assert "correlation of a and b changed from +0.8" in flipped.message()
    same = judge_joint(model, covariance_profile_of_array(_data(10000, seed=6), COLS))
    assert same.drifted is False


def test_degenerate_inputs_give_reasons() -> None:
    const = np.column_stack([np.ones(50), np.arange(50.0)])
    assert "non-constant" in str(fit_pca(covariance_profile_of_array(const, ("u", "v"))))
    assert "more complete reference rows" in str(fit_pca(covariance_profile_of_array(const[:2], ("u", "v"))))
    model = build_joint_model(covariance_folds_of_array(_data(4000), COLS, 8, shift=[1e6, 0, 0, 0]))
    assert isinstance(model, JointDriftModel)
    empty = judge_joint(model, CovarianceProfile.empty(COLS))
    assert empty.drifted is None and empty.reason is not None
    assert "joint drift not judged" in empty.message()
    other = judge_joint(model, CovarianceProfile.empty(("a", "b")))
    assert other.drifted is None and "missing" in str(other.reason)
