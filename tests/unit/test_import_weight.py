"""DAG files that use our operators must parse fast: no numpy, pandas, pyarrow, scipy or Great
Expectations at import time (GitHub issue 11: 4.75 s per DAG file, three imports past the 30 s
``dagbag_import_timeout`` under load). Those load in ``execute`` only.

The checks run in one fresh interpreter (this test process has long imported everything), step by
step: Airflow, each package, each example DAG's imports, DagBag over dags/ and over DAG files with
misspelt arguments. A finder at the front of ``sys.meta_path`` records, for the first import of each
heavy package, the step and the chain of frames under the repository (``airflow_mlobs/...:line``,
``dags/...``) that asked for it, so a failure names the module that pulled it in.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
HEAVY = ("numpy", "pandas", "pyarrow", "scipy", "great_expectations")
PACKAGES = (
    "airflow_mlobs.operators",
    "airflow_mlobs.sensors",
    "airflow_mlobs.notifiers",
    "airflow_mlobs.triggers",
)

# Installed before anything else in the child. find_spec is only asked for modules not yet
# imported, so the first request for a heavy top-level package is the one that loads it.
PROBE = textwrap.dedent(
    """
    import importlib.abc, json, sys

    HEAVY = set(json.loads(sys.argv[1]))
    ROOT = sys.argv[2]
    pulled = {}

    class HeavyImportRecorder(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            top = name.partition(".")[0]
            if top in HEAVY and top not in pulled:
                chain, frame = [], sys._getframe(1)
                while frame is not None:
                    filename = frame.f_code.co_filename
                    if filename.startswith(ROOT) and "importlib" not in filename:
                        chain.append(f"{filename[len(ROOT) + 1:]}:{frame.f_lineno}")
                    frame = frame.f_back
                pulled[top] = {"by": chain or ["(not our code)"], "while": CURRENT}
            return None

    CURRENT = "interpreter start"
    sys.meta_path.insert(0, HeavyImportRecorder())

    def report(extra):
        print("MLOBS-PROBE " + json.dumps({"pulled": pulled, **extra}))
    """
)


def run_probe(body: str) -> dict[str, Any]:
    """Run ``PROBE`` + ``body`` in a fresh interpreter and return what its ``report`` printed."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE + textwrap.dedent(body), json.dumps(HEAVY), str(ROOT)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        cwd=str(ROOT),
        timeout=300,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("MLOBS-PROBE ")]
    assert done.returncode == 0 and lines, f"probe failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("MLOBS-PROBE "))
    return result


def module_level_imports(dag_file: Path) -> list[str]:
    """The DAG file's module-level ``airflow_mlobs`` import statements, as source. Imports inside
    functions (``@task`` bodies importing pandas) run in tasks, not at parse time, so they are left out."""
    tree = ast.parse(dag_file.read_text(), filename=str(dag_file))
    statements = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            ours = (node.module or "").startswith("airflow_mlobs")
        elif isinstance(node, ast.Import):
            ours = any(a.name.startswith("airflow_mlobs") for a in node.names)
        else:
            continue
        if ours:
            statements.append(ast.unparse(node))
    return statements


def describe(pulled: dict[str, Any]) -> str:
    """One line per heavy package: what was being imported and the chain of our frames."""
    return "\n".join(
        f"  {name} loaded while importing {info['while']}, by {' <- '.join(info['by'])}"
        for name, info in sorted(pulled.items())
    )


# Import steps, one per package and per example DAG: the first step that loads a heavy package is
# named. Then DagBag steps, which also run the operators' constructors.
TARGETS: list[tuple[str, str]] = [(p, f"import {p}") for p in PACKAGES] + [
    (f"dags/{f.name}", "\n".join(module_level_imports(f))) for f in DAG_FILES
]
CONTROL = "airflow_mlobs.sources.drift_frame (control)"

BAD_DAGS = {
    # file name -> (an operator call with a misspelt literal, text its import error must contain)
    "bad_freshness.py": (
        'FreshnessCheckOperator(task_id="f", conn_id="c", table="t", timestamp_column="ts", max_age="6 hours")',
        "max_age",
    ),
    "bad_drift.py": (
        'DriftCheckOperator(task_id="d", conn_id="c", table="t", baseline="b", correction="bhh")',
        "correction must be one of none, bonferroni, bh, by",
    ),
    "bad_performance.py": (
        'PerformanceCheckOperator(task_id="p", conn_id="c", predictions_table="p", labels_table="l", '
        'prediction_time_column="pt", label_time_column="lt", score_column="s", max_drop={"acuracy": 0.05})',
        "unknown classification metric 'acuracy'",
    ),
}


def bad_dag_source(call: str) -> str:
    """A DAG file with one operator call."""
    return textwrap.dedent(
        f"""
        from datetime import datetime
        from airflow.sdk import DAG
        from airflow_mlobs.operators import DriftCheckOperator, FreshnessCheckOperator, PerformanceCheckOperator

        with DAG(dag_id="bad", schedule=None, start_date=datetime(2026, 1, 1)):
            {call}
        """
    )


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One fresh interpreter: Airflow, then every package and every example DAG's imports, then
    Airflow's DagBag over dags/ and over DAG files with misspelt literals, recording the heavy
    packages each step loaded; last, as a control, a module that is heavy."""
    bad_folder = tmp_path_factory.mktemp("bad_dags")
    for name, (call, _) in BAD_DAGS.items():
        (bad_folder / name).write_text(bad_dag_source(call))
    dagbag = "from airflow.dag_processing.dagbag import DagBag\n"
    steps = [
        *TARGETS,
        (
            "DagBag(dags/)",
            dagbag + f"bag = DagBag(dag_folder={str(ROOT / 'dags')!r})\n"
            "results['good'] = {'dags': sorted(bag.dags), 'errors': bag.import_errors}",
        ),
        (
            "DagBag(bad DAG files)",
            dagbag + f"bag = DagBag(dag_folder={str(bad_folder)!r})\n"
            "results['bad'] = {k.rsplit('/', 1)[-1]: v for k, v in bag.import_errors.items()}",
        ),
        (CONTROL, "import airflow_mlobs.sources.drift_frame"),
    ]
    body = f"""
    CURRENT = "airflow.sdk"
    import airflow.sdk  # Airflow's own imports first, told apart from ours
    loaded_by, results = {{}}, {{}}
    for label, source in {steps!r}:
        CURRENT = label
        before = set(pulled)
        exec(source, {{"results": results}})
        loaded_by[label] = sorted(set(pulled) - before)
    report({{"loaded_by": loaded_by, **results}})
    """
    return run_probe(body)


def loaded_during(probe: dict[str, Any], label: str) -> str:
    """The failure text: which heavy packages the step loaded, and through which of our frames."""
    names = probe["loaded_by"][label]
    return f"{label} loaded heavy packages:\n{describe({n: probe['pulled'][n] for n in names})}"


def test_every_dag_file_imports_our_code() -> None:
    assert DAG_FILES
    for dag_file in DAG_FILES:
        assert module_level_imports(dag_file), f"{dag_file.name} imports nothing from airflow_mlobs"


def test_airflow_itself_loads_none_of_them(probe: dict[str, Any]) -> None:
    early = {k: v for k, v in probe["pulled"].items() if v["while"] == "airflow.sdk"}
    assert not early, f"Airflow loaded these before our code ran:\n{describe(early)}"


@pytest.mark.parametrize("label", [label for label, _ in TARGETS])
def test_import_loads_no_heavy_package(probe: dict[str, Any], label: str) -> None:
    assert not probe["loaded_by"][label], loaded_during(probe, label)


def test_dagbag_parses_the_example_dags_without_heavy_packages(probe: dict[str, Any]) -> None:
    assert probe["good"]["errors"] == {}
    assert probe["good"]["dags"] == [
        "mlobs_erasure",
        "mlobs_housekeeping",
        "model_monitoring",
        "model_performance",
        "model_retraining",
        "model_scoring",
        "model_service",
    ]
    for label in [*(label for label, _ in TARGETS), "DagBag(dags/)"]:
        assert not probe["loaded_by"][label], loaded_during(probe, label)


@pytest.mark.parametrize("name", sorted(BAD_DAGS))
def test_misspelt_literal_is_an_import_error_without_heavy_packages(probe: dict[str, Any], name: str) -> None:
    error = probe["bad"].get(name)
    assert error is not None, f"{name} parsed although it has a misspelt argument"
    assert BAD_DAGS[name][1] in error, error[-1500:]
    assert not probe["loaded_by"]["DagBag(bad DAG files)"], loaded_during(probe, "DagBag(bad DAG files)")


def test_the_recorder_names_the_module_that_pulled_a_heavy_package_in(probe: dict[str, Any]) -> None:
    # The control step must be caught with sources/drift_frame.py named: otherwise the clean results
    # above could come from a broken recorder.
    assert "pandas" in probe["loaded_by"][CONTROL]
    assert any(
        frame.startswith("airflow_mlobs/sources/drift_frame.py:") for frame in probe["pulled"]["pandas"]["by"]
    )
