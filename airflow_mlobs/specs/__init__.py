"""Specs: one plain, serializable gather-and-judge object per check.

A spec holds a check's arguments as plain values (templates already rendered, durations as seconds
or text, tables as text) and knows the one place its check gathers (a function in ``sources/``) and
the one place it is judged (a pure function in ``core/``). The operator, the CLI, the sensor, the
trigger and mapped tasks all build the same spec, so they cannot disagree. Specs import no Airflow:
a database is reached through a :data:`~airflow_mlobs.specs.base.Connector` the caller passes
(Airflow connections for operators and triggers, SQLAlchemy URLs for the CLI).
"""
