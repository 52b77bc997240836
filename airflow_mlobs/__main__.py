"""``python -m airflow_mlobs``: see :mod:`airflow_mlobs.cli`."""

from airflow_mlobs.cli import main

raise SystemExit(main())
