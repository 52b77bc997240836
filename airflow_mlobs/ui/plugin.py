"""The Airflow 3 plugin of the dashboard, registered through the ``airflow.plugins`` entry point.

``fastapi_apps`` mounts :func:`airflow_mlobs.ui.app.create_app` at ``/mlobs`` in the api-server;
``external_views`` put "ML observability" in the navigation and a view on the DAG, DAG-run, task
and task-instance pages. The UI loads an external view in an iframe and substitutes ``{DAG_ID}``,
``{RUN_ID}``, ``{TASK_ID}`` and ``{MAP_INDEX}`` in its ``href`` (an unmapped task may leave
``{MAP_INDEX}`` as it is: the app reads anything but an integer as -1). The hrefs carry the path of
``[api] base_url`` when Airflow is served under a prefix. ``listeners`` registers
:mod:`airflow_mlobs.breach_notes` (a breach let through by ``on_breach="continue"`` becomes a
task-instance note the grid shows).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin

import airflow_mlobs.breach_notes
from airflow_mlobs.ui.app import create_app

#: Where the app is mounted in the api-server.
URL_PREFIX = "/mlobs"
_BASE_PATH = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
_ROOT = f"{_BASE_PATH}{URL_PREFIX}"
_ICON = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24'>"
    "<path fill='none' stroke='currentColor' stroke-width='2' d='M3 17l5-6 4 4 8-10'/></svg>"
)


def external_views() -> list[dict[str, Any]]:
    """The views the plugin adds to the Airflow UI (navigation, DAG, run, task, task instance)."""
    return [
        {
            "name": "ML observability",
            "href": f"{_ROOT}/",
            "destination": "nav",
            "url_route": "mlobs",
            "icon": _ICON,
            "category": "browse",
        },
        {
            "name": "ML observability",
            "href": f"{_ROOT}/?dag_id={{DAG_ID}}",
            "destination": "dag",
            "url_route": "mlobs_dag",
        },
        {
            "name": "ML observability",
            "href": f"{_ROOT}/?dag_id={{DAG_ID}}&run_id={{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "mlobs_dag_run",
        },
        {
            "name": "ML observability",
            "href": f"{_ROOT}/?dag_id={{DAG_ID}}&task_id={{TASK_ID}}",
            "destination": "task",
            "url_route": "mlobs_task",
        },
        {
            "name": "Check result",
            "href": f"{_ROOT}/result?dag_id={{DAG_ID}}&run_id={{RUN_ID}}&task_id={{TASK_ID}}&map_index={{MAP_INDEX}}",
            "destination": "task_instance",
            "url_route": "mlobs_result",
        },
    ]


class MlobsPlugin(AirflowPlugin):
    """ML observability inside the Airflow UI: the dashboard app and its views."""

    name = "airflow_mlobs"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "ML observability"}]
    external_views = external_views()
    listeners = [airflow_mlobs.breach_notes]
