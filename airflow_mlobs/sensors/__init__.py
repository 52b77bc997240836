"""Sensors. Import from here: ``from airflow_mlobs.sensors import FreshnessSensor``.

Cheap at DAG parse time: like the operators, nothing here loads numpy, pandas, pyarrow, scipy or
Great Expectations (``tests/unit/test_import_weight.py`` holds that).
"""

from __future__ import annotations

from airflow_mlobs.sensors.freshness import FreshnessSensor

__all__ = ["FreshnessSensor"]
