"""The house's layers hold: what each room may import, checked two ways.

Statically, every ``import`` in the package is read from the source (including imports inside
functions): a room imports only the rooms below it, and no name with a leading underscore crosses
from one module to another. Dynamically, a fresh interpreter imports every module of ``core``,
``sources``, ``specs`` and ``render`` and lists what got loaded: no Airflow module at all, and for
``core`` no SQLAlchemy or pandas either (core is pure: a notebook or a CLI can use it).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "airflow_mlobs"

# What each room may import from the package. Specs reach Airflow connections only through the
# connector (specs/base.py imports airflow_mlobs.connections inside a function, when a check runs).
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "sources": {"core", "sources"},
    "render": {"core", "render"},
    "specs": {"core", "sources", "specs", "settings", "connections"},
    # The dashboard: pages over the history queries and the charts; the plugin is its Airflow edge.
    "ui": {"ui", "core", "render", "store", "history", "settings", "connections", "breach_notes"},
    # The prediction logger: Airflow-free; connections only for the pseudonym key, inside a function.
    "recorder": {"core", "sources", "recorder", "connections"},
}
PURE_ROOMS = ("core", "sources", "specs", "render", "recorder")


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, module, imported names) for every import of the package in ``path``."""
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("airflow_mlobs"):
            found.append((node.lineno, node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, []) for a in node.names if a.name.startswith("airflow_mlobs")]
    return found


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _modules(room: str) -> list[str]:
    return sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in (PACKAGE / room).rglob("*.py")
    )


def test_every_room_exists() -> None:
    for room in PURE_ROOMS:
        assert (PACKAGE / room / "__init__.py").exists(), f"airflow_mlobs/{room}/ is missing"


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_rooms_import_only_the_rooms_below(room: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted((PACKAGE / room).rglob("*.py"))
        for line, module, _ in _imports(path)
        if _room(module) not in ALLOWED[room]
    ]
    assert not wrong, "imports that run up or across a layer:\n" + "\n".join(wrong)


def test_no_private_name_crosses_modules() -> None:
    crossing = [
        f"{path.relative_to(ROOT)}:{line} imports {name} from {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, module, names in _imports(path)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not crossing, "private names imported across modules:\n" + "\n".join(crossing)


def test_pure_rooms_load_no_airflow_and_core_no_sqlalchemy_or_pandas() -> None:
    probe = (
        "import importlib, json, sys\n"
        "out = {}\n"
        "for room, modules in json.loads(sys.argv[1]).items():\n"
        "    before = set(sys.modules)\n"
        "    for name in modules:\n"
        "        importlib.import_module(name)\n"
        "    out[room] = sorted({m.split('.')[0] for m in set(sys.modules) - before})\n"
        "print(json.dumps(out))\n"
    )
    # core first, alone: what it loads is measured before anything else is imported.
    rooms = {room: _modules(room) for room in PURE_ROOMS}
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe, json.dumps(rooms)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    everything = {top for tops in loaded.values() for top in tops}
    assert "airflow" not in everything, f"importing {PURE_ROOMS} loaded Airflow: {loaded}"
    assert not {"sqlalchemy", "pandas"} & set(loaded["core"]), f"core loaded {loaded['core']}"
    # The probe really imports: core's own modules are there, and sources does load SQLAlchemy.
    assert "airflow_mlobs" in loaded["core"]
    assert "sqlalchemy" in loaded["sources"]


def test_nothing_imports_the_ui() -> None:
    """The dashboard is a leaf: no other room (operators included) imports ``airflow_mlobs.ui``."""
    importing = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if "ui" not in path.relative_to(PACKAGE).parts[:1]
        for line, module, _ in _imports(path)
        if _room(module) == "ui"
    ]
    assert not importing, "the ui room is imported from:\n" + "\n".join(importing)
