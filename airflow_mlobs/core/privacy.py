"""Keyed pseudonyms, redaction and deterministic sampling: the definitions every part shares.

- A **pseudonym** is ``ps_`` + the first 32 hex digits (128 bits) of HMAC-SHA256(key, text), where
  text is the value's canonical id text (:func:`id_text`). The same value and key give the same
  pseudonym in every process and database, so logged predictions still join with labels and a
  person's rows can be found again for erasure; without the key it cannot be reversed or
  recomputed (unlike a plain hash of a small id space, which a dictionary attack inverts).
- The **key** is at least 16 bytes, never stored and never shown: :class:`PseudonymKey` hides it in
  ``repr`` and ``str``; results record only its :attr:`PseudonymKey.key_id` (a one-way fingerprint)
  so a reader can tell which key made a pseudonym.
- **Sampling** by id keeps a row when ``u(id) < rate``, where ``u`` is the first 8 bytes of
  SHA-256("mlobs-sample:" + id text) read as an unsigned integer over 2^64: deterministic (the same
  id is always in or always out, across processes and runs, so a person's predictions and labels
  are sampled together) and uniform, independent of the pseudonym key.

Pure: no Airflow, SQLAlchemy or pandas.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass, field
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError

PSEUDONYM_PREFIX = "ps_"
#: Hex digits kept of the HMAC: 128 bits, collision-free for any realistic number of subjects.
PSEUDONYM_HEX = 32
#: What a redacted value is replaced by when it is replaced rather than dropped.
REDACTED = "[redacted]"
MIN_KEY_BYTES = 16
_SAMPLE_SALT = b"mlobs-sample:"
_KEY_ID_SALT = b"mlobs-key-id:"


def id_text(value: Any) -> str:
    """The canonical text of an identifier: integral numbers without a fraction (``42``, ``42.0``
    and ``"42"`` are one id), bytes as hex, everything else ``str(value)`` stripped.

    Raises ``MlobsInputError`` for ``None``/NaN: a missing id has no pseudonym (the caller decides
    whether to keep the row with a NULL id)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise MlobsInputError("a missing (NULL) identifier has no pseudonym")
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return id_text(value.item())
    return str(value).strip()


@dataclass(frozen=True)
class PseudonymKey:
    """A secret key for pseudonyms; its bytes never appear in ``repr``, ``str`` or pickles of
    results (only :attr:`key_id` does)."""

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise MlobsInputError(
                f"the pseudonym key is {len(self.secret)} bytes; it needs at least {MIN_KEY_BYTES} "
                "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )

    @classmethod
    def from_text(cls, text: str) -> PseudonymKey:
        """The key given as text (an environment variable, a connection's password): its UTF-8 bytes."""
        return cls(text.strip().encode())

    @property
    def key_id(self) -> str:
        """A one-way fingerprint of the key (12 hex digits): which key made a pseudonym, not the key."""
        return hashlib.sha256(_KEY_ID_SALT + self.secret).hexdigest()[:12]

    def __str__(self) -> str:
        return f"PseudonymKey(key_id={self.key_id})"


def pseudonym(value: Any, key: PseudonymKey) -> str:
    """``ps_`` + 32 hex digits of HMAC-SHA256(key, :func:`id_text` (value))."""
    digest = hmac.new(key.secret, id_text(value).encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:PSEUDONYM_HEX]


def is_pseudonym(text: Any) -> bool:
    """Whether ``text`` has the form of a pseudonym (so erasure can accept either form of an id)."""
    if not isinstance(text, str) or not text.startswith(PSEUDONYM_PREFIX):
        return False
    digits = text[len(PSEUDONYM_PREFIX) :]
    return len(digits) == PSEUDONYM_HEX and all(c in "0123456789abcdef" for c in digits)


def sample_position(value: Any) -> float:
    """``u(id)`` in [0, 1): where an id falls in the sampling order (see the module docstring)."""
    digest = hashlib.sha256(_SAMPLE_SALT + id_text(value).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def sampled(value: Any, rate: float) -> bool:
    """Whether the row of id ``value`` is kept at sampling ``rate`` (0 < rate <= 1)."""
    check_rate(rate)
    return rate >= 1.0 or sample_position(value) < rate


def check_rate(rate: float) -> None:
    """A sampling rate must lie in (0, 1]; anything else is bad input naming the value."""
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0.0 < float(rate) <= 1.0:
        raise MlobsInputError(f"sample must be a share in (0, 1], got {rate!r}")
