"""Airflow-facing exceptions."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

from airflow_mlobs.core.errors import MlobsInputError, SourceError
from airflow_mlobs.core.result import CheckResult

__all__ = ["CheckBreachError", "MlobsInputError", "SourceError"]


class CheckBreachError(AirflowFailException):
    """A check breached (status ``fail`` with ``on_breach="fail"``) or could not run (``error``).

    Subclasses ``AirflowFailException``, so the task fails without retrying (retrying does not make
    stale data fresh), downstream tasks do not run, and ``on_failure_callback`` fires. The structured
    result is on ``.result``.
    """

    def __init__(self, result: CheckResult) -> None:
        super().__init__(f"{result.check} check {result.status.value}: {result.summary}")
        self.result = result
