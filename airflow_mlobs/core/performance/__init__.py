"""The delayed-label performance check's pure part: which predictions and labels a run judges
(:mod:`.window`), the mergeable summaries the gatherers produce (:mod:`.summary`), the metrics with
their standard errors (:mod:`.metrics`) and the judgement against the baselines (:mod:`.judge`).

Each module's docstring defines what it computes. No Airflow, SQLAlchemy or pandas here: the
gathering lives in :mod:`airflow_mlobs.sources.performance_sql` (pushed down) and
:mod:`airflow_mlobs.sources.performance_frame` (joined in memory), the settings that operators need
at DAG parse time in :mod:`airflow_mlobs.core.performance_settings`.
"""
