"""The dashboard plugin in a real ``airflow api-server`` (issue 13).

Once per module: the example DAGs run for real (``airflow dags test``: the monitoring DAG on the
drift day, the performance DAG when the labels matured) into a results history on a SQLite
connection; then an api-server with the simple auth manager (one user, a known password) starts on
a free 127.0.0.1 port with the plugin loaded from the package's ``airflow.plugins`` entry point.
Tests authenticate as Airflow's clients do: a JWT from ``POST /auth/token`` sent as a Bearer header
(the REST API's way) or as the ``_token`` cookie (the UI's way, which the external view's iframe
sends). Browser tests drive Debian's chromium through Playwright; they skip when /usr/bin/chromium
is absent (``apt-get install -y chromium``), except under ``CI=true``, where that fails.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import sqlalchemy as sa

from airflow_mlobs.history import History
from airflow_mlobs.store import Delivery, ResultsStore
from demo import warehouse
from tests.e2e.airflow_runner import run_dag
from tests.e2e.services import Processes, free_port, wait_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "ui"
PASSWORD = "mlobs-e2e-password"
DRIFT_DATASET = "mlobs_warehouse:customer_activity"
REPORT_DAG = """
from datetime import UTC, datetime
from airflow.sdk import DAG, CronDataIntervalTimetable
from airflow_mlobs.operators import DriftCheckOperator, FreshnessCheckOperator

with DAG("mlobs_ui_reports", schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
         start_date=datetime(2026, 11, 1, tzinfo=UTC), catchup=False) as dag:
    DriftCheckOperator(
        task_id="drift_report", conn_id="mlobs_warehouse", table="customer_activity",
        timestamp_column="event_time", window="1d", baseline="churn_features",
        columns=("customer_age", "tenure_months", "monthly_spend", "region"), on_breach="continue",
        report_dir="{reports}/{{{{ ds }}}}",
    )
    FreshnessCheckOperator(
        task_id="fresh_unwritable", conn_id="mlobs_warehouse", table="customer_features",
        timestamp_column="updated_at", max_age="30d", report_dir="{broken}/reports",
    )
"""
#: The pages look at the history as of this moment (the demo's days are fixed dates).
END = "2026-11-28T00:00:00+00:00"


@dataclass
class Server:
    """The running api-server: its port, a token, what the history holds."""

    port: int
    token: str
    history: History
    processes: Processes
    base: Path
    report_run_output: str

    def get(
        self, path: str, *, token: str | None = "default", cookie: str | None = None
    ) -> tuple[int, str, Any]:
        """GET ``path``; returns (status, body text, headers). ``token=None`` sends no credential."""
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {self.token if token == 'default' else token}"
        if cookie is not None:
            headers["Cookie"] = f"_token={cookie}"
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, response.read().decode(), response.headers
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode(), exc.headers


def _token(port: int) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/auth/token",
        data=json.dumps({"username": "admin", "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.loads(response.read())["access_token"])


@pytest.fixture(scope="module")
def server(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = time.monotonic()
    base = tmp_path_factory.mktemp("ui")
    warehouse.build(base / "warehouse.db")
    results_db = base / "results.db"
    env = {
        "AIRFLOW_CONN_MLOBS_WAREHOUSE": json.dumps(
            {"conn_type": "sqlite", "host": str(base / "warehouse.db")}
        ),
        "AIRFLOW_CONN_MLOBS_UI_RESULTS": json.dumps({"conn_type": "sqlite", "host": str(results_db)}),
        "AIRFLOW__MLOBS__RESULTS_CONN_ID": "mlobs_ui_results",
        "MLOBS_BASELINE_DIR": str(base / "baselines"),
        "MLOBS_MODEL_DIR": str(base / "models"),
    }
    drift_day = run_dag(airflow_db, ROOT / "dags", "model_monitoring", "2026-11-24", env)
    assert drift_day.returncode == 0, drift_day.output[-3000:]
    performance = run_dag(airflow_db, ROOT / "dags", "model_performance", "2026-11-26", env)
    assert performance.returncode == 0, performance.output[-3000:]
    # Reports: a drift check writing to a templated report_dir, and a freshness check whose
    # report_dir cannot be written (its parent is a file): the task still succeeds, the result is stored.
    (base / "not_a_dir").write_text("a file")
    (base / "dags").mkdir()
    (base / "dags" / "reports.py").write_text(
        REPORT_DAG.format(reports=base / "reports", broken=base / "not_a_dir")
    )
    reports = run_dag(airflow_db, base / "dags", "mlobs_ui_reports", "2026-11-25", env)
    assert reports.returncode == 0, reports.output[-3000:]
    assert reports.states == {"drift_report": "success", "fresh_unwritable": "success"}, reports.states
    engine = sa.create_engine(f"sqlite:///{results_db}")
    history = History(engine)
    # A notification delivery on the drift result, recorded through the store as a notifier does.
    store = ResultsStore(engine)
    (drift,) = store.history(check="drift", dag_id="model_monitoring")
    store.record_delivery(drift.result, drift.run, Delivery("slack:#ml-alerts", "alert", True, 1))
    filled = time.monotonic() - started

    passwords = base / "passwords.json"
    passwords.write_text(json.dumps({"admin": PASSWORD}))
    port = free_port()
    server_env = dict(os.environ)
    server_env.update(env)
    server_env.update(
        {
            "AIRFLOW_HOME": str(airflow_db),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__API_AUTH__JWT_SECRET": "mlobs-e2e-jwt-secret-not-a-real-one-0123456789",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
    )
    processes = Processes(base / "logs")
    try:
        processes.start(
            "api-server", ["api-server", "--port", str(port), "--host", "127.0.0.1", "-w", "1"], server_env
        )

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/mlobs/healthz", timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        waited = wait_for(up, 180, "the api-server with the mlobs plugin", processes)
        print(f"\nui e2e: history filled in {filled:.1f}s, api-server up in {waited:.1f}s")
        yield Server(port, _token(port), history, processes, base, reports.output)
    finally:
        processes.stop()
        engine.dispose()


def _rows(page: str) -> list[tuple[str, str, str]]:
    """(dataset, check, status) of every overview row."""
    return re.findall(r'<tr data-dataset="([^"]*)" data-check="([^"]*)" data-status="([^"]*)">', page)


def _query(**params: Any) -> str:
    return "?" + urlencode(params)


def test_unauthenticated_requests_are_refused_as_airflow_refuses_them(server: Server) -> None:
    ours = server.get("/mlobs/", token=None)
    theirs = server.get("/api/v2/dags", token=None)
    assert ours[0] == theirs[0] == 401
    assert json.loads(ours[1]) == json.loads(theirs[1]) == {"detail": "Not authenticated"}
    bad = server.get("/mlobs/results/1", token="not-a-jwt")
    assert bad[0] == server.get("/api/v2/dags", token="not-a-jwt")[0] == 403
    for path in (
        f"/mlobs/datasets/{quote(DRIFT_DATASET, safe='')}",
        "/mlobs/result?dag_id=a&run_id=b&task_id=c",
    ):
        assert server.get(path, token=None)[0] == 401
    # The UI's way: the JWT in the _token cookie.
    assert server.get("/mlobs/", token=None, cookie=server.token)[0] == 200


def test_plugin_is_registered_with_its_views(server: Server) -> None:
    status, body, _ = server.get("/api/v2/plugins")
    assert status == 200
    (plugin,) = [p for p in json.loads(body)["plugins"] if p["name"] == "airflow_mlobs"]
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/mlobs"
    views = {v["destination"]: v["href"] for v in plugin["external_views"]}
    assert views["nav"] == "/mlobs/"
    assert views["task_instance"] == (
        "/mlobs/result?dag_id={DAG_ID}&run_id={RUN_ID}&task_id={TASK_ID}&map_index={MAP_INDEX}"
    )
    assert {"dag", "dag_run", "task"} <= set(views)


def test_overview_lists_every_dataset_and_check_with_its_status(server: Server) -> None:
    status, page, headers = server.get("/mlobs/" + _query(end=END))
    assert status == 200, page[:2000]
    assert "app;dur=" in headers["Server-Timing"]
    rows = _rows(page)
    monitoring = _rows(server.get("/mlobs/" + _query(end=END, dag_id="model_monitoring"))[1])
    assert (DRIFT_DATASET, "drift", "fail") in monitoring
    assert {c for _, c, _ in rows} >= {
        "freshness",
        "schema",
        "quality",
        "drift",
        "performance",
        "retrain_gate",
    }
    assert page.count('class="mlobs-chart mlobs-timeline"') == len(rows)
    # Filters by status and DAG, applied in SQL.
    failing = _rows(server.get("/mlobs/" + _query(end=END, status="fail"))[1])
    assert failing and {s for _, _, s in failing} == {"fail"}
    perf = _rows(server.get("/mlobs/" + _query(end=END, dag_id="model_performance"))[1])
    assert perf and "performance" in {c for _, c, _ in perf} and "drift" not in {c for _, c, _ in perf}
    # Nothing in the range before the history.
    empty = server.get("/mlobs/" + _query(end="2026-01-01T00:00:00+00:00"))[1]
    assert _rows(empty) == [] and "No results in the last 30 days" in empty


def test_dataset_page_draws_timelines_heatmap_and_distributions(server: Server) -> None:
    path = f"/mlobs/datasets/{quote(DRIFT_DATASET, safe='')}" + _query(end=END)
    status, page, _ = server.get(path)
    assert status == 200, page[:2000]
    assert "Drift per column over time" in page
    for column in warehouse.FEATURES:
        assert f">{column}</text>" in page  # a heatmap row
        assert f"{column}: reference vs current" in page  # its distribution chart
    assert page.count('class="mlobs-chart mlobs-bars"') == len(warehouse.FEATURES)
    assert 'class="mlobs-chart mlobs-heatmap"' in page
    assert '<tr data-check="retrain_gate">' in page  # the gate's decision on this dataset's drift
    assert "slack:#ml-alerts" in page  # the delivery
    missing = server.get("/mlobs/datasets/nope" + _query(end=END))
    assert missing[0] == 404


def test_performance_dataset_page_has_band_and_baseline(server: Server) -> None:
    matured = [
        r
        for r in server.history.latest(since=_ago(), check="performance")
        if r.run.task_id == "performance_matured"
    ]
    assert len(matured) == 1, matured
    status, page, _ = server.get(f"/mlobs/datasets/{quote(matured[0].dataset, safe='')}" + _query(end=END))
    assert status == 200
    assert "±3 SE" in page and 'class="mark band"' in page and "baseline" in page


def _ago() -> Any:
    from datetime import UTC, datetime

    return datetime(2026, 11, 1, tzinfo=UTC)


def test_result_page_by_run_key_and_by_id(server: Server) -> None:
    (drift,) = server.history.latest(since=_ago(), check="drift", dag_id="model_monitoring")
    params = {"dag_id": drift.run.dag_id, "run_id": drift.run.run_id, "task_id": drift.run.task_id}
    status, page, _ = server.get("/mlobs/result" + _query(**params))
    assert status == 200, page[:2000]
    assert "Findings (" in page and DRIFT_DATASET in page
    for column in warehouse.FEATURES:
        assert f"<td>{column}</td>" in page
    log_link = (
        f"/dags/model_monitoring/runs/{quote(str(drift.run.run_id), safe='')}/tasks/drift_customer_activity"
    )
    assert log_link in page
    # The UI leaves {MAP_INDEX} as it is for an unmapped task: read as -1.
    assert server.get("/mlobs/result" + _query(**params, map_index="{MAP_INDEX}"))[1] == page
    assert server.get("/mlobs/result" + _query(**params, map_index=-1))[0] == 200
    assert server.get("/mlobs/result" + _query(**params, map_index=4))[0] == 404
    by_id = server.get(f"/mlobs/results/{drift.id}")
    assert by_id[0] == 200 and "Findings (" in by_id[1]
    assert server.get("/mlobs/results/999999")[0] == 404


def _browser() -> Any:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is absent: install it with `apt-get install -y chromium`"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + " (CI=true: browser tests must run)")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    return sync_playwright()


def test_pages_in_a_real_browser(server: Server) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (drift,) = server.history.latest(since=_ago(), check="drift", dag_id="model_monitoring")
    pages = {
        "overview": "/mlobs/" + _query(end=END),
        "dataset": f"/mlobs/datasets/{quote(DRIFT_DATASET, safe='')}" + _query(end=END),
        "result": f"/mlobs/results/{drift.id}",
    }
    with _browser() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_cookies(
                [{"name": "_token", "value": server.token, "domain": "127.0.0.1", "path": "/"}]
            )
            for name, path in pages.items():
                page = context.new_page()
                errors: list[str] = []
                page.on(
                    "console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None
                )
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                response = page.goto(f"http://127.0.0.1:{server.port}{path}", wait_until="load")
                assert response is not None and response.status == 200, name
                svgs = page.locator("svg.mlobs-chart").count()
                marks = page.locator("svg.mlobs-chart .mark").count()
                # Drawn: the charts have a rendered size.
                box = page.locator("svg.mlobs-chart").first.bounding_box()
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
                assert errors == [], (name, errors)
                assert svgs >= 1 and marks >= 1, (name, svgs, marks)
                assert box is not None and box["width"] > 0 and box["height"] > 0
                if name == "dataset":
                    assert page.locator("svg.mlobs-bars").count() == len(warehouse.FEATURES)
                    assert page.locator("svg.mlobs-heatmap rect.mark").count() >= len(warehouse.FEATURES)
                page.close()
        finally:
            browser.close()


def test_operator_writes_a_self_contained_report(server: Server) -> None:
    run = server.history.latest(since=_ago(), dag_id="mlobs_ui_reports", check="drift")[0].run
    (path,) = (server.base / "reports").rglob("drift_report.html")
    # <report_dir rendered with {{ ds }}>/<dag_id>/<run_id>/<task_id>.html
    assert path.parent == path.parents[2] / "mlobs_ui_reports" / str(run.run_id)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", path.parents[2].name)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in text
    assert text.count('class="mlobs-chart mlobs-bars"') == len(warehouse.FEATURES)
    assert "/mlobs/result?dag_id=mlobs_ui_reports" in text  # the link to the result page
    assert not re.search(r"<script|<link |src=\"http|url\(http", text)
    # The unwritable report_dir: a warning naming it, the result stored all the same.
    assert "Could not write the HTML report to" in server.report_run_output
    assert "not_a_dir" in server.report_run_output
    assert server.history.latest(since=_ago(), dag_id="mlobs_ui_reports", check="freshness")


def test_report_file_opens_offline_in_the_browser(server: Server) -> None:
    (path,) = (server.base / "reports").rglob("drift_report.html")
    with _browser() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context(offline=True)
            requests: list[str] = []
            context.on("request", lambda r: requests.append(r.url))
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(path.as_uri(), wait_until="load")
            assert page.locator("svg.mlobs-bars").count() == len(warehouse.FEATURES)
            assert page.locator("svg.mlobs-bars rect.mark").count() > 0
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
            assert errors == []
            assert requests == [path.as_uri()]  # nothing but the file itself
        finally:
            browser.close()


def test_the_entry_point_plugin_notes_a_continued_breach(server: Server, airflow_db: Path) -> None:
    """The package's own plugin (no plugins folder) registers the breach-notes listener: the drift
    task that failed its check with on_breach="continue" succeeded and carries the note."""
    engine = sa.create_engine(f"sqlite:///{airflow_db / 'airflow.db'}")
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT ti.state, n.content FROM task_instance ti "
                    "LEFT JOIN task_instance_note n ON n.ti_id = ti.id "
                    "WHERE ti.dag_id = 'model_monitoring' AND ti.task_id = 'drift_customer_activity' "
                    "AND ti.run_id = :run"
                ),
                {
                    "run": server.history.latest(since=_ago(), check="drift", dag_id="model_monitoring")[
                        0
                    ].run.run_id
                },
            ).one()
    finally:
        engine.dispose()
    assert row[0] == "success"
    assert row[1] is not None and row[1].startswith("ML observability: fail (on_breach='continue'): ")
