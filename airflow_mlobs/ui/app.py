"""The dashboard's FastAPI app, mounted by the plugin at ``/mlobs`` in Airflow's api-server.

Authentication is Airflow's own: every route depends on
``airflow.api_fastapi.core_api.security.requires_authenticated``, which resolves the user from an
``Authorization: Bearer <JWT>`` header (API clients, tokens from ``POST /auth/token``) or from the
``_token`` cookie the Airflow UI sets at login (the iframe of an external view sends it, being of the
same origin). A request without either is refused exactly as Airflow's API refuses it (401
``{"detail": "Not authenticated"}``; 403 for an invalid token).

Routes (relative to the mount):

- ``/``: the overview (``?dag_id=&dataset=&status=&days=&run_id=&task_id=&end=``);
- ``/datasets/{dataset}``: one dataset (``?days=&window=<ISO window end>&end=``);
  ``end`` (ISO 8601) ends the range (default: now), to look at the past;
- ``/result?dag_id=&run_id=&task_id=&map_index=``: the latest stored result of one task run (a
  contract: operators' extra links and notifiers' "Report" buttons are built on it; ``map_index``
  defaults to -1);
- ``/results/{id}``: one stored result;

  both result pages also ask Airflow's auth manager whether the user may read the DAG's task
  instances (``requires_access_dag("GET", TASK_INSTANCE)``; 403 ``Forbidden`` otherwise). The
  overview and dataset pages show only the results of the DAGs the user may read, as Airflow's
  ``GET /api/v2/dags`` lists DAGs: the readable DAG ids come from the auth manager
  (``get_authorized_dag_ids(user=..., method="GET")``, what Airflow's
  ``permitted_dag_filter_factory("GET")`` dependency asks) and go into the history queries as
  ``dag_id IN (...)``; results without a DAG stay visible to every authenticated user, and a result
  of a DAG no longer in Airflow's metadata is not listed;
- ``/healthz``: unauthenticated liveness (``{"status": "ok"}``), for probes.

The results history is read through ``[mlobs] results_conn_id`` (``AIRFLOW__MLOBS__RESULTS_CONN_ID``),
defaulting as the operators do (:func:`airflow_mlobs.connections.results_engine`); one engine per
app process. Page rendering runs in FastAPI's thread pool (the routes are plain functions), so
database reads do not block the api-server's event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy.engine import Engine

from airflow_mlobs.connections import results_engine
from airflow_mlobs.history import History
from airflow_mlobs.settings import baseline_dir
from airflow_mlobs.ui import pages

log = logging.getLogger(__name__)

#: Response header with the server time of a page in milliseconds (read by the benchmark).
TIMING_HEADER = "Server-Timing"


class _Engines:
    """The results engine of this process, built on first use (not at plugin import: the
    api-server imports plugins before connections may be read)."""

    def __init__(self) -> None:
        self._engine: Engine | None = None
        self._lock = threading.Lock()

    def history(self) -> History:
        with self._lock:
            if self._engine is None:
                self._engine = results_engine(None)
            return History(self._engine)


def _baseline_dir() -> Any:
    try:
        return baseline_dir(None)
    except Exception as exc:  # a distributed executor without a configured dir: pages say so
        log.info("No baseline directory for the dashboard's distributions: %s", exc)
        return None


def _links(request: Request) -> pages.Links:
    base = str(request.scope.get("root_path", "")).rstrip("/")
    airflow = base.removesuffix("/mlobs")
    return pages.Links(base=base, airflow=airflow)


def _html(text: str, started: float, status_code: int = 200) -> HTMLResponse:
    elapsed = (time.perf_counter() - started) * 1000
    return HTMLResponse(text, status_code=status_code, headers={TIMING_HEADER: f"app;dur={elapsed:.1f}"})


def _days(value: int | None) -> int:
    return value if value in pages.RANGES else pages.RANGES[0]


def _auth_dependency() -> Any:
    from airflow.api_fastapi.core_api.security import requires_authenticated

    return Depends(requires_authenticated())


def _task_instance_access() -> Any:
    """Airflow's own check that the user may read the task instances of the ``dag_id`` query
    parameter (403 ``Forbidden`` otherwise)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))


def _readable_dags_dependency() -> Any:
    """The DAG ids the user may read, as ``GET /api/v2/dags`` gets them
    (``permitted_dag_filter_factory("GET")``: the auth manager's ``get_authorized_dag_ids``). That
    factory's own dependency reads the auth manager from ``request.app.state``, which a mounted
    plugin app does not have; this one asks the api-server's auth manager (``get_auth_manager()``)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import get_user

    user_dependency = Depends(get_user)

    def readable_dag_ids(user: Any = user_dependency) -> frozenset[str]:
        return frozenset(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))

    return Depends(readable_dag_ids)


def _user_dependency() -> Any:
    from airflow.api_fastapi.core_api.security import get_user

    return Depends(get_user)


def _may_read_task_instances(user: Any, dag_id: str | None) -> bool:
    """Whether ``user`` may read the task instances of ``dag_id`` (a result without a DAG, from the
    CLI or a notebook, is readable by every authenticated user)."""
    if dag_id is None:
        return True
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
    from airflow.models.dag import DagModel

    return bool(
        get_auth_manager().is_authorized_dag(
            method="GET",
            access_entity=DagAccessEntity.TASK_INSTANCE,
            details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id)),
            user=user,
        )
    )


def create_app(engines: _Engines | None = None) -> FastAPI:
    """The dashboard app (routes in the module docstring)."""
    engines = engines or _Engines()
    app = FastAPI(title="airflow-mlobs: ML observability", docs_url=None, redoc_url=None, openapi_url=None)
    auth = [_auth_dependency()]
    readable_dags = _readable_dags_dependency()

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/", response_class=HTMLResponse, dependencies=auth)
    def overview(
        request: Request,
        dag_id: str | None = None,
        dataset: str | None = None,
        status: str | None = None,
        run_id: str | None = None,
        task_id: str | None = None,
        days: int | None = None,
        end: str | None = None,
        readable: frozenset[str] = readable_dags,
    ) -> HTMLResponse:
        started = time.perf_counter()
        page = pages.overview_page(
            engines.history(),
            _links(request),
            days=_days(days),
            dag_id=dag_id or None,
            dataset=dataset or None,
            status=status if status in pages.STATUS_CHOICES else None,
            run_id=run_id or None,
            task_id=task_id or None,
            now=pages.parse_moment(end),
            readable=readable,
        )
        return _html(page, started)

    @app.get("/datasets/{dataset:path}", response_class=HTMLResponse, dependencies=auth)
    def dataset_view(
        request: Request,
        dataset: str,
        days: int | None = None,
        window: str | None = None,
        end: str | None = None,
        readable: frozenset[str] = readable_dags,
    ) -> HTMLResponse:
        started = time.perf_counter()
        links = _links(request)
        page = pages.dataset_page(
            engines.history(),
            links,
            dataset,
            days=_days(days),
            window=pages.parse_moment(window),
            baseline_dir=_baseline_dir(),
            now=pages.parse_moment(end),
            readable=readable,
        )
        if page is None:
            return _html(
                pages.not_found_page(
                    links, f"No result of dataset {dataset!r} in the last {_days(days)} days."
                ),
                started,
                404,
            )
        return _html(page, started)

    @app.get("/result", response_class=HTMLResponse, dependencies=[*auth, _task_instance_access()])
    def result_for_run(
        request: Request, dag_id: str, run_id: str, task_id: str, map_index: str | None = None
    ) -> HTMLResponse:
        started = time.perf_counter()
        links = _links(request)
        history = engines.history()
        index = pages.parse_map_index(map_index)
        stored = history.result_for_run(dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=index)
        if stored is None:
            what = f"No stored result of task {task_id!r} (map index {index}) in run {run_id!r} of DAG {dag_id!r}."
            return _html(pages.not_found_page(links, what), started, 404)
        return _html(pages.result_page(history, links, stored, baseline_dir=_baseline_dir()), started)

    user_dependency = _user_dependency()

    @app.get("/results/{result_id}", response_class=HTMLResponse, dependencies=auth)
    def result_by_id(request: Request, result_id: int, user: Any = user_dependency) -> Response:
        started = time.perf_counter()
        links = _links(request)
        history = engines.history()
        stored = history.result(result_id)
        if stored is None:
            return _html(pages.not_found_page(links, f"No stored result with id {result_id}."), started, 404)
        if not _may_read_task_instances(user, stored.run.dag_id):
            return JSONResponse({"detail": "Forbidden"}, status_code=403)  # as Airflow's own refusal
        return _html(pages.result_page(history, links, stored, baseline_dir=_baseline_dir()), started)

    return app
