"""Deployment settings: [mlobs] results_conn_id and baseline_dir, and the per-worker defaults that
are an error under a distributed executor (read through Airflow's own configuration)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlobs import settings
from airflow_mlobs.connections import results_engine
from airflow_mlobs.core.errors import MlobsInputError


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("AIRFLOW__MLOBS__RESULTS_CONN_ID", "AIRFLOW__MLOBS__BASELINE_DIR", "MLOBS_BASELINE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    return monkeypatch


def test_local_executor_keeps_the_local_defaults(clean: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean.setenv("AIRFLOW_HOME", str(tmp_path))
    assert settings.results_conn_id(None) is None
    assert settings.baseline_dir(None) == tmp_path / "mlobs_baselines"
    engine = results_engine(None)
    assert engine.url.database == str(tmp_path / "mlobs_results.db")
    engine.dispose()


@pytest.mark.parametrize("executor", ["CeleryExecutor", "KubernetesExecutor", "LocalExecutor,CeleryExecutor"])
def test_distributed_executor_without_shared_settings_is_an_error_saying_what_to_set(
    clean: pytest.MonkeyPatch, executor: str
) -> None:
    clean.setenv("AIRFLOW__CORE__EXECUTOR", executor)
    with pytest.raises(MlobsInputError) as results:
        settings.results_conn_id(None)
    assert "[mlobs] results_conn_id" in str(results.value)
    assert "AIRFLOW__MLOBS__RESULTS_CONN_ID" in str(results.value)
    with pytest.raises(MlobsInputError) as baselines:
        settings.baseline_dir(None)
    assert "[mlobs] baseline_dir" in str(baselines.value) and "shared" in str(baselines.value)
    # The operator's own argument always wins, whatever the executor.
    assert settings.results_conn_id("results_pg") == "results_pg"
    assert settings.baseline_dir("/mnt/shared/baselines") == Path("/mnt/shared/baselines")


def test_configured_settings_apply_under_any_executor(clean: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    clean.setenv("AIRFLOW__MLOBS__RESULTS_CONN_ID", "mlobs_results")
    clean.setenv("AIRFLOW__MLOBS__BASELINE_DIR", f"file://{tmp_path}")
    assert settings.results_conn_id(None) == "mlobs_results"
    location = settings.baseline_dir(None)
    assert type(location).__name__ == "ObjectStoragePath"
    assert str(location).endswith(str(tmp_path))
    clean.delenv("AIRFLOW__MLOBS__BASELINE_DIR")
    clean.setenv("MLOBS_BASELINE_DIR", str(tmp_path))
    assert settings.baseline_dir(None) == tmp_path


def test_executor_names_are_read_with_aliases_and_module_paths(clean: pytest.MonkeyPatch) -> None:
    clean.setenv(
        "AIRFLOW__CORE__EXECUTOR",
        "LocalExecutor, fast:airflow.providers.celery.executors.celery_executor.CeleryExecutor",
    )
    assert settings.executors() == ["LocalExecutor", "CeleryExecutor"]
    assert settings.distributed_executor() == "CeleryExecutor"


def test_a_baseline_round_trips_through_an_object_storage_url(
    clean: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pandas as pd

    from airflow_mlobs.core.profile import load_baseline
    from airflow_mlobs.sources.drift_frame import build_baseline

    clean.setenv("AIRFLOW__MLOBS__BASELINE_DIR", f"file://{tmp_path / 'shared'}")
    frame = pd.DataFrame({"x": [float(i % 17) for i in range(200)], "c": ["a", "b"] * 100})
    baseline = build_baseline(frame, name="churn", version="v1")
    written = baseline.save(settings.baseline_dir(None))
    assert (tmp_path / "shared" / "churn" / "v1.json").is_file(), written
    loaded = load_baseline(settings.baseline_dir(None), "churn")
    assert loaded.version == "v1" and set(loaded.columns) == {"x", "c"}
