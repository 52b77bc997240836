"""The "ML observability result" extra link of every check operator, and the Airflow base URL.

In Airflow 3 the task runner calls :meth:`MlobsResultLink.get_link` when the task ends and stores the
URL (XCom ``_link_MlobsResultLink``); the UI shows it as a button on the task instance. The URL is
:func:`~airflow_mlobs.render.links.result_page_url` on ``[api] base_url`` (as Airflow builds its own
log URLs), so the notifiers' "Report" button points at the same page.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperatorLink

from airflow_mlobs.render.links import result_page_url


def airflow_base_url() -> str:
    """``[api] base_url``, with Airflow's own fallback for task log URLs (``http://localhost:8080/``)."""
    from airflow.sdk.configuration import conf

    return str(conf.get("api", "base_url", fallback="http://localhost:8080/") or "http://localhost:8080/")


def task_instance_result_url(ti: Any) -> str | None:
    """The result page of a task instance (anything with ``dag_id``, ``run_id``, ``task_id``,
    ``map_index``); ``None`` when it lacks a run id (outside a DAG run)."""
    dag_id, run_id, task_id = (getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id"))
    if not (dag_id and run_id and task_id):
        return None
    map_index = getattr(ti, "map_index", -1)
    return result_page_url(
        airflow_base_url(),
        dag_id=str(dag_id),
        run_id=str(run_id),
        task_id=str(task_id),
        map_index=-1 if map_index is None else int(map_index),
    )


class MlobsResultLink(BaseOperatorLink):
    """The check's result page in the ML observability plugin (``/mlobs/result``)."""

    name = "ML observability result"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        """The result page of ``ti_key``'s task instance (a ``TaskInstanceKey`` or the running
        task instance); empty when it names no run."""
        return task_instance_result_url(ti_key) or ""
