"""Errors raised by the pure core and the gatherers (no Airflow here)."""

from __future__ import annotations


class MlobsInputError(ValueError):
    """Bad input that makes a check impossible to evaluate; the message says what to fix.

    Operators turn it into a ``CheckResult`` with status ``error`` (stored like any other result)
    and a failed task carrying the same message.
    """


class SourceError(MlobsInputError):
    """A table, column, query, file or connection that cannot be read as the check needs."""
