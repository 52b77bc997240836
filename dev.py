#!/usr/bin/env python3
"""Set up and run airflow-mlobs from a fresh clone, with nothing but Python 3.11+.

    python3 dev.py demo   # create .venv, install, run the demo (the example DAG in real Airflow)
    python3 dev.py demo --serve   # ... then serve the Airflow UI with the dashboard on 127.0.0.1:8080
    python3 dev.py test   # create .venv, install, run ruff, mypy and the whole test suite

The virtual environment is ``.venv`` in the repository. Installation uses the pinned versions in
``constraints-<python>.txt`` when one exists for this Python, and is skipped when pyproject.toml and
the constraints are unchanged since the last install. Extra arguments after ``test`` go to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".mlobs-installed"


def run(*args: str | Path, env: dict[str, str] | None = None) -> None:
    """Run a command, stopping this script with its exit code if it fails."""
    print("+", " ".join(str(a) for a in args), flush=True)
    code = subprocess.call([str(a) for a in args], cwd=ROOT, env=env)
    if code != 0:
        raise SystemExit(code)


def setup() -> None:
    """Create .venv and install the package with its test extras (pinned), if not already done."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        raise SystemExit(f"airflow-mlobs needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    constraints = ROOT / f"constraints-{sys.version_info.major}.{sys.version_info.minor}.txt"
    digest = hashlib.sha256()
    for file in (ROOT / "pyproject.toml", constraints):
        if file.exists():
            digest.update(file.read_bytes())
    if STAMP.exists() and STAMP.read_text() == digest.hexdigest() and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"Creating the virtual environment {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    extra = ["-c", constraints] if constraints.exists() else []
    if not extra:
        print(f"note: no {constraints.name}; installing the newest matching versions", flush=True)
    run(*pip, "--upgrade", "pip")
    run(*pip, *extra, "-e", ".[test]")
    STAMP.write_text(digest.hexdigest())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "setup"):
        print(__doc__)
        return 2
    setup()
    env = dict(os.environ, GX_ANALYTICS_ENABLED="false", PYTHONPATH=str(ROOT))
    if argv[0] == "demo":
        run(PYTHON, ROOT / "demo" / "run_demo.py", *argv[1:], env=env)
    elif argv[0] == "test":
        run(PYTHON, "-m", "ruff", "check", ".", env=env)
        run(PYTHON, "-m", "ruff", "format", "--check", ".", env=env)
        run(PYTHON, "-m", "mypy", env=env)
        run(PYTHON, "-m", "pytest", *argv[1:], env=env)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
