"""Check operators. Import from here: ``from airflow_mlobs.operators import FreshnessCheckOperator``."""

from __future__ import annotations

from airflow_mlobs.operators.alerts import AlertGroupOperator
from airflow_mlobs.operators.attribution import AttributionDriftCheckOperator
from airflow_mlobs.operators.base import BaseCheckOperator
from airflow_mlobs.operators.drift import BaselineOperator, DriftCheckOperator
from airflow_mlobs.operators.drift_merge import DriftMergeOperator
from airflow_mlobs.operators.fairness import FairnessCheckOperator
from airflow_mlobs.operators.freshness import FreshnessCheckOperator
from airflow_mlobs.operators.gate import RetrainGateOperator
from airflow_mlobs.operators.health import ServiceHealthCheckOperator
from airflow_mlobs.operators.label_table import LabelTableOperator
from airflow_mlobs.operators.performance import PerformanceCheckOperator
from airflow_mlobs.operators.quality import ExpectationSuiteOperator
from airflow_mlobs.operators.retention import ErasureOperator, RetentionOperator
from airflow_mlobs.operators.schema import SchemaCheckOperator

__all__ = [
    "AlertGroupOperator",
    "AttributionDriftCheckOperator",
    "BaseCheckOperator",
    "BaselineOperator",
    "DriftCheckOperator",
    "DriftMergeOperator",
    "ErasureOperator",
    "ExpectationSuiteOperator",
    "FairnessCheckOperator",
    "FreshnessCheckOperator",
    "LabelTableOperator",
    "PerformanceCheckOperator",
    "RetentionOperator",
    "RetrainGateOperator",
    "SchemaCheckOperator",
    "ServiceHealthCheckOperator",
]
