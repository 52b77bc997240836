"""Reading the project's JSON files (contracts, suites, baselines) with errors that name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError


def read_json_file(path: str | Path, *, what: str, error: type[MlobsInputError] = MlobsInputError) -> Any:
    """Parse ``path``; a missing, unreadable or invalid file raises ``error`` saying which ``what``
    (``"contract file"``, ``"suite file"``...) and, for bad JSON, the line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise error(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
