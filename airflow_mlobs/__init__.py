"""airflow-mlobs: ML observability checks as Airflow operators.

Importing the package does not import Airflow; operators live in :mod:`airflow_mlobs.operators`.
"""

from __future__ import annotations

__version__ = "0.1.0"
