"""Check operators. Import from here: ``from airflow_mlobs.operators import FreshnessCheckOperator``."""

from __future__ import annotations

from airflow_mlobs.operators.base import BaseCheckOperator
from airflow_mlobs.operators.freshness import FreshnessCheckOperator
from airflow_mlobs.operators.schema import SchemaCheckOperator

__all__ = ["BaseCheckOperator", "FreshnessCheckOperator", "SchemaCheckOperator"]
