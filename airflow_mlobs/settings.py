"""Deployment settings: where results and baselines live, read from Airflow's configuration.

The ``[mlobs]`` section of ``airflow.cfg`` (or its ``AIRFLOW__MLOBS__*`` environment variables) sets
the defaults every operator uses when a DAG does not name them:

- ``results_conn_id``: the Airflow connection of the results history (default: a SQLite file
  ``mlobs_results.db`` under this worker's ``AIRFLOW_HOME``);
- ``baseline_dir``: where drift baselines are stored (default: ``$MLOBS_BASELINE_DIR``, else
  ``$AIRFLOW_HOME/mlobs_baselines``); a local path or an object-storage URL (``s3://...``).

Those two local defaults are per machine. Under a distributed executor (Celery, Kubernetes, Edge)
each worker would keep its own history and baselines, and cooldowns, streaks and alert
de-duplication would split silently, so there the defaults are an error that says what to set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from airflow_mlobs.core.errors import MlobsInputError

SECTION = "mlobs"
BASELINE_DIR_ENV = "MLOBS_BASELINE_DIR"
RESULTS_DB_FILENAME = "mlobs_results.db"

# Executors that run every task on the machine that runs the scheduler (or `airflow dags test`).
LOCAL_EXECUTORS = frozenset({"LocalExecutor", "SequentialExecutor", "DebugExecutor"})


def option(name: str) -> str | None:
    """``[mlobs] <name>`` from Airflow's configuration (environment variables included), or None."""
    from airflow.sdk.configuration import conf

    value = conf.get(SECTION, name, fallback=None)
    text = str(value).strip() if value is not None else ""
    return text or None


# Airflow's rule for connection ids (airflow.models.connection.RE_SANITIZE_CONN_ID), at most 250 long.
_CONN_ID = re.compile(r"^[\w#!()\-.:/\\]{1,250}$")
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def results_conn_option() -> str | None:
    """``[mlobs] results_conn_id``, checked: a connection id as Airflow spells one. Raises
    ``MlobsInputError`` naming the option and the bad value."""
    value = option("results_conn_id")
    if value is not None and not _CONN_ID.match(value):
        raise MlobsInputError(
            f"[mlobs] results_conn_id = {value!r} is not a connection id (letters, digits and "
            "_ # ! ( ) - . : / \\, at most 250 characters); set it to the id of the results database's "
            "connection"
        )
    return value


def baseline_dir_option() -> str | None:
    """``[mlobs] baseline_dir`` (else ``$MLOBS_BASELINE_DIR``), checked: a local path or a URL
    ``scheme://...``. Raises ``MlobsInputError`` naming the option and the bad value."""
    value = option("baseline_dir")
    where = "[mlobs] baseline_dir"
    if value is None:
        value = (os.environ.get(BASELINE_DIR_ENV) or "").strip() or None
        where = f"${BASELINE_DIR_ENV}"
    if value is not None and "://" in value and not _URL_SCHEME.match(value):
        raise MlobsInputError(
            f"{where} = {value!r} is not a path or a storage URL such as s3://bucket/baselines "
            "(a URL needs a scheme of letters before '://')"
        )
    if value is not None and "\x00" in value:
        raise MlobsInputError(f"{where} = {value!r} holds a NUL character")
    return value


def airflow_home() -> Path:
    """``$AIRFLOW_HOME``, else ``~/airflow`` (Airflow's own default)."""
    return Path(os.environ.get("AIRFLOW_HOME") or Path.home() / "airflow")


def executors() -> list[str]:
    """The configured executors' class names (``[core] executor`` may list several, comma-separated,
    with optional ``alias:`` prefixes and module paths)."""
    from airflow.sdk.configuration import conf

    text = str(conf.get("core", "executor", fallback="LocalExecutor") or "LocalExecutor")
    names = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        names.append(part.split(":")[-1].rsplit(".", 1)[-1])
    return names or ["LocalExecutor"]


def distributed_executor() -> str | None:
    """The first configured executor that runs tasks on other machines, or None if all are local."""
    return next((name for name in executors() if name not in LOCAL_EXECUTORS), None)


def results_conn_id(explicit: str | None) -> str | None:
    """The results connection: ``explicit`` (the operator's argument), else ``[mlobs] results_conn_id``,
    else None (the local SQLite default). Raises ``MlobsInputError`` when the local default would be
    used under a distributed executor."""
    chosen = explicit or results_conn_option()
    if chosen:
        return chosen
    executor = distributed_executor()
    if executor:
        raise MlobsInputError(
            f"the executor is {executor}, so tasks run on several machines, but no results connection "
            f"is set: the default results history is a SQLite file under each worker's AIRFLOW_HOME "
            f"({airflow_home() / RESULTS_DB_FILENAME}), and cooldowns, streaks and alert de-duplication "
            "would split between workers. Set [mlobs] results_conn_id in airflow.cfg (or "
            "AIRFLOW__MLOBS__RESULTS_CONN_ID) to a connection of a shared database such as PostgreSQL, "
            "or pass results_conn_id= to the operator"
        )
    return None


def default_results_url() -> str:
    """``sqlite:///$AIRFLOW_HOME/mlobs_results.db``: the results history when no connection is set."""
    home = airflow_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / RESULTS_DB_FILENAME}"


def storage_path(location: str | os.PathLike[str]) -> Any:
    """A path object for a baseline location: an ``ObjectStoragePath`` for a URL (``s3://``,
    ``gs://``, ``file://``...), a ``pathlib.Path`` for a local path; path objects as they are."""
    if isinstance(location, str):
        if "://" in location:
            from airflow.sdk import ObjectStoragePath

            return ObjectStoragePath(location)
        return Path(location)
    return location


def baseline_dir(explicit: str | os.PathLike[str] | None) -> Any:
    """Where baselines live: ``explicit`` (the operator's argument), else ``[mlobs] baseline_dir``,
    else ``$MLOBS_BASELINE_DIR``, else ``$AIRFLOW_HOME/mlobs_baselines``. Raises ``MlobsInputError``
    when that last, per-worker default would be used under a distributed executor."""
    if explicit:
        return storage_path(explicit)
    configured = baseline_dir_option()
    if configured:
        return storage_path(configured)
    executor = distributed_executor()
    if executor:
        raise MlobsInputError(
            f"the executor is {executor}, so tasks run on several machines, but no baseline directory "
            f"is set: the default ({airflow_home() / 'mlobs_baselines'}) is local to each worker, so a "
            "baseline built on one worker is missing on the others. Set [mlobs] baseline_dir in "
            "airflow.cfg (or AIRFLOW__MLOBS__BASELINE_DIR) to shared storage, e.g. s3://bucket/baselines "
            "or a shared file system path, or pass baseline_dir= to the operator"
        )
    return airflow_home() / "mlobs_baselines"
