"""Every file in dags/ imports without errors, and the package is a registered Airflow provider."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


def test_there_are_example_dags() -> None:
    assert DAG_FILES


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_errors(dag_file: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dag_file))
    assert bag.import_errors == {}
    assert bag.dags, f"{dag_file.name} defines no DAG"
    for dag in bag.dags.values():
        assert dag.tags, f"{dag.dag_id} has no tags"


def test_airflow_providers_list_shows_the_package() -> None:
    cli = Path(sys.executable).parent / "airflow"
    done = subprocess.run(
        [str(cli), "providers", "list", "--output", "plain"],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "airflow-mlobs" in done.stdout


def test_provider_info_names_importable_modules() -> None:
    import importlib

    from airflow_mlobs.get_provider_info import get_provider_info

    info = get_provider_info()
    modules = [
        m
        for key in ("operators", "sensors", "triggers")
        for entry in info[key]
        for m in entry["python-modules"]
    ]
    for module in modules:
        importlib.import_module(module)
