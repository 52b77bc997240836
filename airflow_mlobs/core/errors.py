"""Errors raised by the pure core and the gatherers (no Airflow here)."""

from __future__ import annotations


class MlobsInputError(ValueError):
    """Bad input that makes a check impossible to evaluate; the message says what to fix.

    Operators turn it into a ``CheckResult`` with status ``error`` (stored like any other result)
    and a failed task carrying the same message.
    """


class SourceError(MlobsInputError):
    """A table, column, query, file or connection that cannot be read as the check needs."""


class SourceUnavailable(Exception):
    """A database that did not answer for now (refused or dropped connection, timeout, lock,
    serialization failure): retrying later may succeed, so it is not bad input.

    Deliberately not an ``MlobsInputError``: operators do not turn it into an ``error`` result but
    retry the task while it has retries left. ``what`` names the table, query or store read, ``cause``
    is the database's message (without credentials), ``connection`` the Airflow connection id when
    known.
    """

    def __init__(self, what: str, cause: str, connection: str | None = None) -> None:
        self.what = what
        self.cause = cause
        self.connection = connection
        # All three in args, so the error pickles (the triggerer and the task runner pass errors on).
        super().__init__(what, cause, connection)

    @property
    def subject(self) -> str:
        """What is unavailable: ``connection 'wh' (table public.events)``, or just ``what``."""
        if self.connection is None:
            return self.what
        return (
            f"connection {self.connection!r} ({self.what})"
            if self.what
            else f"connection {self.connection!r}"
        )

    def __str__(self) -> str:
        return f"{self.subject} is unavailable: {self.cause}"

    def on_connection(self, conn_id: str) -> SourceUnavailable:
        """The same failure, naming the Airflow connection it happened on."""
        return SourceUnavailable(self.what, self.cause, connection=conn_id)
