"""Keyed pseudonyms, id text and sampling (airflow_mlobs.core.privacy, connections.pseudonym_key)."""

from __future__ import annotations

import hashlib
import hmac
import subprocess
import sys

import numpy as np
import pytest

from airflow_mlobs.connections import pseudonym_key
from airflow_mlobs.core.errors import MlobsInputError, SourceError
from airflow_mlobs.core.privacy import (
    PseudonymKey,
    id_text,
    is_pseudonym,
    pseudonym,
    sample_position,
    sampled,
)

KEY = PseudonymKey(b"k" * 32)


def test_pseudonym_is_the_documented_hmac() -> None:
    expected = "ps_" + hmac.new(b"k" * 32, b"42", hashlib.sha256).hexdigest()[:32]
    assert pseudonym(42, KEY) == expected
    assert is_pseudonym(expected)
    assert not is_pseudonym("42") and not is_pseudonym("ps_xyz")


def test_one_id_one_pseudonym_whatever_its_python_type() -> None:
    forms = [42, 42.0, "42", " 42 ", np.int64(42), np.float64(42.0)]
    assert {pseudonym(v, KEY) for v in forms} == {pseudonym(42, KEY)}
    assert id_text(True) == "1" and id_text(b"\x01\xff") == "01ff" and id_text(1.5) == "1.5"


def test_another_key_gives_another_pseudonym() -> None:
    assert pseudonym(42, KEY) != pseudonym(42, PseudonymKey(b"j" * 32))


def test_pseudonyms_are_stable_across_processes() -> None:
    code = (
        "from airflow_mlobs.core.privacy import PseudonymKey, pseudonym;"
        "print(pseudonym('cust-7', PseudonymKey(b'k' * 32)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == pseudonym("cust-7", KEY)


def test_the_key_never_shows() -> None:
    secret = b"s3cr3t-key-material-0123456789"
    key = PseudonymKey(secret)
    assert secret.decode() not in repr(key) and secret.decode() not in str(key)
    assert len(key.key_id) == 12 and key.key_id not in secret.hex()


def test_short_key_and_missing_id_are_bad_input() -> None:
    with pytest.raises(MlobsInputError, match="at least 16"):
        PseudonymKey(b"short")
    with pytest.raises(MlobsInputError, match="missing"):
        pseudonym(None, KEY)
    with pytest.raises(MlobsInputError, match="missing"):
        pseudonym(float("nan"), KEY)


def test_sampling_is_deterministic_and_uniform() -> None:
    ids = range(100_000)
    kept = [i for i in ids if sampled(i, 0.1)]
    assert kept == [i for i in ids if sampled(i, 0.1)]
    # Binomial(100000, 0.1): sd 95; 5 sd either side.
    assert abs(len(kept) - 10_000) < 475
    assert all(sampled(i, 0.2) for i in kept)  # nested: a larger rate keeps every row a smaller kept
    assert sampled("x", 1.0) and 0.0 <= sample_position("x") < 1.0
    for rate in (0.0, -0.1, 1.5, True):
        with pytest.raises(MlobsInputError, match="sample"):
            sampled(1, rate)  # type: ignore[arg-type]


def test_key_resolution_order_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOBS_PSEUDONYM_KEY", "e" * 20)
    assert pseudonym_key().secret == b"e" * 20
    assert pseudonym_key("g" * 20).secret == b"g" * 20
    assert pseudonym_key(b"h" * 20).secret == b"h" * 20
    monkeypatch.setenv("MLOBS_PSEUDONYM_KEY", "short")
    with pytest.raises(SourceError, match=r"MLOBS_PSEUDONYM_KEY.*at least 16"):
        pseudonym_key()
    monkeypatch.delenv("MLOBS_PSEUDONYM_KEY")
    with pytest.raises(SourceError, match=r"no pseudonym key.*MLOBS_PSEUDONYM_KEY"):
        pseudonym_key()
    monkeypatch.setenv("AIRFLOW_CONN_MLOBS_KEY", '{"conn_type": "generic", "password": "' + "c" * 24 + '"}')
    assert pseudonym_key(conn_id="mlobs_key").secret == b"c" * 24
    with pytest.raises(SourceError, match=r"'no_such_key' .*not defined"):
        pseudonym_key(conn_id="no_such_key")
