"""The result page URL of the extra link and the notifiers' "Report" button."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_mlobs.operators import FreshnessCheckOperator
from airflow_mlobs.operators.links import MlobsResultLink
from airflow_mlobs.render.links import result_page_url


def test_result_page_url_encodes_every_value() -> None:
    url = result_page_url(
        "https://airflow.example.com/base/",
        dag_id="model monitoring",
        run_id="scheduled__2026-11-26T00:00:00+00:00",
        task_id="group.drift&x",
        map_index=3,
    )
    assert url == (
        "https://airflow.example.com/base/mlobs/result?dag_id=model%20monitoring"
        "&run_id=scheduled__2026-11-26T00%3A00%3A00%2B00%3A00&task_id=group.drift%26x&map_index=3"
    )
    query = parse_qs(urlsplit(url).query)
    assert query["run_id"] == ["scheduled__2026-11-26T00:00:00+00:00"]
    assert query["task_id"] == ["group.drift&x"]


def test_extra_link_on_every_check_operator_points_at_the_result_page(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.models.taskinstancekey import TaskInstanceKey

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.internal:8080")
    task = FreshnessCheckOperator(
        task_id="freshness", conn_id="wh", table="t", timestamp_column="ts", max_age="6h"
    )
    (link,) = [link for link in task.operator_extra_links if isinstance(link, MlobsResultLink)]
    assert link.name == "ML observability result"
    key = TaskInstanceKey(
        dag_id="d", task_id="freshness", run_id="manual__2026-11-26", try_number=1, map_index=-1
    )
    assert link.get_link(task, ti_key=key) == (
        "http://airflow.internal:8080/mlobs/result?dag_id=d&run_id=manual__2026-11-26&task_id=freshness&map_index=-1"
    )


def test_provider_info_registers_the_link() -> None:
    from airflow_mlobs.get_provider_info import get_provider_info

    assert get_provider_info()["extra-links"] == ["airflow_mlobs.operators.links.MlobsResultLink"]
