"""Airflow-facing exceptions."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_mlobs.core.errors import MlobsInputError, SourceError, SourceUnavailable
from airflow_mlobs.core.result import CheckResult

__all__ = ["CheckBreachError", "CheckRetryableError", "MlobsInputError", "SourceError", "SourceUnavailable"]


class CheckBreachError(AirflowFailException):
    """A check breached (status ``fail`` with ``on_breach="fail"``) or could not run (``error``).

    Subclasses ``AirflowFailException``, so the task fails without retrying (retrying does not make
    stale data fresh), downstream tasks do not run, and ``on_failure_callback`` fires. The structured
    result is on ``.result``.
    """

    def __init__(self, result: CheckResult) -> None:
        super().__init__(f"{result.check} check {result.status.value}: {result.summary}")
        self.result = result


class CheckRetryableError(AirflowException):
    """A check could not run because a database (a source or the results history) is unavailable
    for now: connection refused or dropped, a timeout, a lock, a serialization failure.

    Subclasses ``AirflowException`` but not ``AirflowFailException``, so the task's ``retries``
    apply. Raised only while the task has tries left, and nothing is stored for such a try; on the
    last try the outage becomes an ``error`` result like any check that cannot run
    (:class:`CheckBreachError`). The message names the connection and the cause, never credentials.
    """
