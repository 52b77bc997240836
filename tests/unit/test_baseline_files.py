"""Baseline files on storage shared by several workers: a reader never sees a half-written file."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd

from airflow_mlobs.core.profile import load_baseline
from airflow_mlobs.sources.drift_frame import build_baseline


def test_a_baseline_being_rewritten_is_always_read_whole(tmp_path: Path) -> None:
    frame = pd.DataFrame({f"x{i}": [float(j % (i + 7)) for j in range(2000)] for i in range(12)})
    frame["region"] = [f"r{j % 300}" for j in range(2000)]  # a long category list: a large file
    baseline = build_baseline(frame, name="shared", version="v1")
    baseline.save(tmp_path)
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                assert load_baseline(tmp_path, "shared", "v1").version == "v1"
            except BaseException as exc:  # a truncated file shows up here
                errors.append(exc)
                return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for reader in readers:
        reader.start()
    for _ in range(60):
        baseline.save(tmp_path)
    stop.set()
    for reader in readers:
        reader.join()
    assert errors == []
    assert [p.name for p in (tmp_path / "shared").iterdir()] == ["v1.json"]  # no temporary files left


def test_a_baseline_file_that_is_not_utf8_names_the_file(tmp_path: Path) -> None:
    import codecs

    import pytest

    from airflow_mlobs.core.errors import MlobsInputError

    baseline = build_baseline(pd.DataFrame({"x": [float(j) for j in range(100)]}), name="b", version="v1")
    path = baseline.save(tmp_path)
    path.write_bytes(codecs.BOM_UTF16_LE + baseline.to_json().encode("utf-16-le"))  # re-saved by an editor
    with pytest.raises(MlobsInputError) as raised:
        load_baseline(tmp_path, "b", "v1")
    assert f"baseline file {path} is not UTF-8 text" in str(raised.value)
    assert "rebuild it with BaselineOperator" in str(raised.value)
