"""The prediction log ("flight recorder"): what a model saw and said, and later the truth.

:class:`PredictionLogger` writes predictions and labels in batches to SQL tables, in the layout
the drift and performance checks read (:mod:`airflow_mlobs.recorder.layout`), with keyed
pseudonyms, redaction and deterministic sampling applied before anything is stored. No Airflow:
importing this package loads no ``airflow`` module.
"""

from __future__ import annotations

from airflow_mlobs.recorder.layout import (
    DEFAULT_LABELS_TABLE,
    DEFAULT_TABLE,
    PERFORMANCE_DEFAULTS,
)
from airflow_mlobs.recorder.logger import PredictionLogger

__all__ = ["DEFAULT_LABELS_TABLE", "DEFAULT_TABLE", "PERFORMANCE_DEFAULTS", "PredictionLogger"]
