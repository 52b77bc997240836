"""Where a result is shown in the Airflow UI: the ML observability plugin's result page.

One function builds the URL for the operators' extra link and the notifiers' "Report" button:
``<airflow base url>/mlobs/result?dag_id=..&run_id=..&task_id=..&map_index=..`` with every value
URL-encoded (a ``run_id`` such as ``scheduled__2026-11-26T00:00:00+00:00`` keeps its ``+``).
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

#: Where the ML observability plugin is mounted in the Airflow API server.
PLUGIN_PATH = "/mlobs"


def result_page_url(
    base_url: str, *, dag_id: str, run_id: str, task_id: str, map_index: int | None = -1
) -> str:
    """The plugin's result page of one task instance (``map_index`` -1 for a task that is not mapped)."""
    query = urlencode(
        {
            "dag_id": dag_id,
            "run_id": run_id,
            "task_id": task_id,
            "map_index": -1 if map_index is None else int(map_index),
        },
        quote_via=quote,
    )
    return f"{base_url.rstrip('/')}{PLUGIN_PATH}/result?{query}"
