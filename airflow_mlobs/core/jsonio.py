"""Reading the project's JSON files (contracts, suites, baselines) with errors that name the file.

Every way a file can be unusable is an ``MlobsInputError`` (or the subclass the caller names) whose
message names the file and says what to do: missing, unreadable, not UTF-8 text (UTF-16, Latin-1,
binary), not valid JSON (with line and column), or, unless ``require_object=False``, a document
whose top level is not a JSON object. A UTF-8 byte order mark is accepted.
"""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
_UTF32_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)


def _json_kind(value: Any) -> str:
    """How a JSON value is called in a message: ``an array``, ``a string``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    return type(value).__name__


def decode_utf8(data: bytes, *, path: Path, what: str, error: type[MlobsInputError]) -> str:
    """``data`` as UTF-8 text (a leading byte order mark dropped); anything else raises ``error``
    naming the file, what it looks like (UTF-16, UTF-32, binary, a legacy 8-bit encoding) and how
    to fix it."""
    fix = "save it as UTF-8"
    if data.startswith(_UTF32_BOMS):
        raise error(f"{what} {path} is UTF-32 text, not UTF-8; {fix}")
    if data.startswith(_UTF16_BOMS):
        raise error(f"{what} {path} is UTF-16 text, not UTF-8; {fix}")
    if b"\x00" in data:
        # UTF-16 without a byte order mark decodes as "UTF-8" with a NUL after every ASCII letter.
        looks = "UTF-16 text or binary data" if data[:2].count(b"\x00") == 1 else "binary data"
        raise error(f"{what} {path} is not UTF-8 text (it holds NUL bytes: {looks}); {fix}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise error(
            f"{what} {path} is not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}, "
            f"offset {exc.start}; Latin-1 or another legacy encoding?); {fix}"
        ) from exc


def read_json_file(
    path: str | Path,
    *,
    what: str,
    error: type[MlobsInputError] = MlobsInputError,
    require_object: bool = True,
    document: str | None = None,
) -> Any:
    """Parse ``path``; a missing, unreadable, non-UTF-8 or invalid file raises ``error`` saying which
    ``what`` (``"contract file"``, ``"suite file"``...) and, for bad JSON, the line and column. With
    ``require_object`` (the default) a top level other than a JSON object is an ``error`` too, saying
    it is not a ``document`` (``"an expectation suite"``) when given."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise error(f"{what} {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise error(f"{what} {path} is a directory, not a JSON file") from exc
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from exc
    text = decode_utf8(data, path=path, what=what, error=error)
    if not text.strip():
        raise error(f"{what} {path} is empty; it must hold a JSON object")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise error(f"{what} {path} is nested too deeply to read as JSON") from exc
    if require_object and not isinstance(value, dict):
        if document:
            raise error(
                f"{what} {path} is not {document}: its top level is {_json_kind(value)}, not a JSON object"
            )
        raise error(f"{what} {path} must hold a JSON object at the top level, not {_json_kind(value)}")
    return value
