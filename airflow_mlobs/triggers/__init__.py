"""Triggers (run in ``airflow triggerer``). Import from here: ``from airflow_mlobs.triggers import
FreshnessTrigger``; Airflow itself refers to a trigger by its module path,
``airflow_mlobs.triggers.freshness.FreshnessTrigger``."""

from __future__ import annotations

from airflow_mlobs.triggers.freshness import FreshnessTrigger

__all__ = ["FreshnessTrigger"]
