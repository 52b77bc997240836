"""Sampling as a first-class choice (issue 17 part 2): sampled findings carry their sampling error
and decisions account for it (core/sampling.py ``sampled_level``); the stated error holds on a
known PostgreSQL table (the acceptance test); baselines are built from samples (in memory, in SQL
on PostgreSQL and MariaDB, from the command line) and say so; DuckDB block-samples, and the
Snowflake and BigQuery block-sample statements are compiled and checked as text."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.drift import compare
from airflow_mlobs.core.drift_settings import DriftSettings, Threshold
from airflow_mlobs.core.errors import SourceError
from airflow_mlobs.core.profile import Baseline, NumericProfile, Profile, load_baseline
from airflow_mlobs.core.result import Status
from airflow_mlobs.core.sampling import (
    SampleInfo,
    bootstrap_standard_error,
    keep_key,
    parse_sample,
    sampled_level,
)
from airflow_mlobs.core.stats import psi
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.baseline_sql import build_baseline_sql
from airflow_mlobs.sources.dialect import BigqueryDialect, DuckdbDialect, SnowflakeDialect
from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame
from airflow_mlobs.sources.drift_sql import profile_sql

ROWS_INFO = SampleInfo(rate=0.02, method="rows", seed=0, sampled_rows=0)


def _reference(n: int = 100_000) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    return pd.DataFrame(
        {"x": rng.normal(0.0, 1.0, n), "c": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])}
    )


def _window(n: int, seed: int, shift: float = 0.25) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {"x": rng.normal(shift, 1.0, n), "c": rng.choice(["a", "b", "c", "d"], n, p=[0.3, 0.3, 0.25, 0.15])}
    )


@pytest.fixture(scope="module")
def baseline() -> Baseline:
    return build_baseline(_reference(), name="known", version="v1")


def _sampled(profile: Profile) -> Profile:
    return replace(profile, sample=replace(ROWS_INFO, sampled_rows=profile.row_count))


# --- the decision rule ------------------------------------------------------------------------------


def test_the_rule_fails_only_past_the_threshold_by_its_error() -> None:
    assert sampled_level(0.31, 0.02, 0.1, 0.3) == ("warn", True)  # 0.31 - 1.96 * 0.02 < 0.3
    assert sampled_level(0.40, 0.02, 0.1, 0.3) == ("fail", False)
    assert sampled_level(0.15, 0.20, 0.1, 0.3) == ("warn", False)  # never raised or lowered below fail
    assert sampled_level(0.05, 0.20, 0.1, 0.3) == ("pass", False)
    assert sampled_level(0.31, None, 0.1, 0.3) == ("fail", False)  # unsampled: the point estimate


def test_a_sampled_column_just_past_its_threshold_is_a_borderline_warn(baseline: Baseline) -> None:
    window = _sampled(profile_frame(_window(2_000, 5), list(baseline.columns.values())))
    psi_only = DriftSettings(methods={"x": "psi"}, drift_share=0.5)
    effect = compare(baseline, replace(window, sample=None), psi_only, columns=["x"]).metrics["columns"]["x"][
        "psi"
    ]
    # Just past the threshold, with a 2,000-row sample's error: borderline, a warn.
    near = replace(psi_only, thresholds={"x": Threshold(warn=effect * 0.5, fail=effect * 0.95)})
    result = compare(baseline, window, near, columns=["x"])
    column = result.metrics["columns"]["x"]
    error = column["standard_error"]
    assert error > 0.05 * effect  # large enough that 5% above the threshold is within it
    finding = next(f for f in result.findings if f.subject == "x" and f.metric == "psi")
    assert finding.status is Status.WARN and column["borderline"] is True
    assert f"psi {effect:.4g} ± {error:.2g} (sampled)" in finding.reason
    assert "borderline" in finding.reason and "within its sampling error" in finding.reason
    assert result.status is Status.WARN and result.metrics["columns_drifted"] == 0
    # Far past it: a fail.
    far = replace(psi_only, thresholds={"x": Threshold(warn=effect * 0.2, fail=effect * 0.4)})
    failed = compare(baseline, window, far, columns=["x"])
    assert failed.status is Status.FAIL and failed.metrics["columns"]["x"]["borderline"] is False
    # The same counts unsampled: judged on the point estimate, as before (a fail, no error).
    unsampled = compare(baseline, replace(window, sample=None), near, columns=["x"])
    assert unsampled.status is Status.FAIL
    assert "standard_error" not in unsampled.metrics["columns"]["x"]
    assert "±" not in " ".join(f.reason for f in unsampled.findings)


def test_stated_error_matches_the_spread_over_repeated_samples(baseline: Baseline) -> None:
    """The bootstrap error of one sample against numpy: the spread of the effect over 300 fresh
    samples of the same population, for the default methods (Wasserstein, Jensen-Shannon)."""
    specs = list(baseline.columns.values())
    settings = DriftSettings()
    effects: dict[str, list[float]] = {"x": [], "c": []}
    for seed in range(300):
        result = compare(baseline, profile_frame(_window(3_000, 1000 + seed), specs), settings)
        for name in effects:
            effects[name].append(result.metrics["columns"][name][settings.method_for(baseline.columns[name])])
    stated = compare(baseline, _sampled(profile_frame(_window(3_000, 7), specs)), settings)
    for name, values in effects.items():
        spread = float(np.std(values, ddof=1))
        assert stated.metrics["columns"][name]["standard_error"] == pytest.approx(spread, rel=0.3), name


def test_bootstrap_error_of_psi_against_the_delta_method() -> None:
    rng = np.random.default_rng(3)
    expected = np.array([0.1, 0.2, 0.3, 0.4])
    counts = rng.multinomial(20_000, [0.15, 0.25, 0.3, 0.3])
    error = bootstrap_standard_error(
        psi, list(expected * 1e6), list(counts), reference_sampled=False, current_sampled=True, draws=400
    )
    from airflow_mlobs.core.sampling import psi_standard_error

    delta = psi_standard_error(list(expected), list(counts / counts.sum()), 20_000)
    assert error == pytest.approx(delta, rel=0.15)
    assert (
        bootstrap_standard_error(psi, [1, 2], [3, 4], reference_sampled=False, current_sampled=False) is None
    )
    assert (
        bootstrap_standard_error(psi, [1, 2], [0, 0], reference_sampled=False, current_sampled=True) is None
    )


# --- the acceptance test: a known table on PostgreSQL -------------------------------------------------

KNOWN_ROWS = 200_000
SEEDS = 40


def _known_table(engine: sa.Engine, schema: str) -> TableRef:
    """200,000 rows generated in the database: ``id`` 1..N, ``x`` normal(0.25, 1) by Box-Muller, ``c``
    one of four categories with shares 0.3/0.3/0.25/0.15; inserted in an order unrelated to the
    values (by ``md5(id)``: ``ORDER BY random()`` would sort by ``u1``, the same expression as a
    selected column, and store the table sorted by ``x``)."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT setseed(0.17)"))
        conn.execute(
            sa.text(
                f'CREATE TABLE "{schema}".known AS '
                "SELECT id, 0.25 + sqrt(-2 * ln(1 - u1)) * cos(2 * pi() * u2) AS x, "
                "CASE WHEN u3 < 0.3 THEN 'a' WHEN u3 < 0.6 THEN 'b' WHEN u3 < 0.85 THEN 'c' ELSE 'd' END AS c "
                f"FROM (SELECT g AS id, random() AS u1, random() AS u2, random() AS u3 "
                f"FROM generate_series(1, {KNOWN_ROWS}) g ORDER BY md5(g::text)) s"
            )
        )
        conn.execute(sa.text(f'ANALYZE "{schema}".known'))
    return TableRef(name="known", schema=schema)


def _effects(baseline: Baseline, profile: Profile) -> dict[str, tuple[float, float | None]]:
    """Per (column, method): the effect and its stated error, for the gating methods and PSI."""
    out: dict[str, tuple[float, float | None]] = {}
    for label, settings in (
        ("default", DriftSettings()),
        ("psi", DriftSettings(methods={"x": "psi", "c": "psi"})),
    ):
        result = compare(baseline, profile, settings)
        for name in ("x", "c"):
            column = result.metrics["columns"][name]
            method = settings.method_for(baseline.columns[name])
            if method == "wasserstein" and name == "c":
                method = "js"
            out[f"{name}:{method if label == 'default' else 'psi'}"] = (
                column[method],
                column.get("standard_error"),
            )
    return out


def _within(
    engine: sa.Engine, table: TableRef, baseline: Baseline, sample: str, key: str | None
) -> dict[str, int]:
    specs = list(baseline.columns.values())
    full, _ = profile_sql(engine, specs, table=table)
    truth = _effects(baseline, full)
    hits = dict.fromkeys(truth, 0)
    for seed in range(SEEDS):
        profile, _ = profile_sql(engine, specs, table=table, sampling=parse_sample(sample, None, seed, key))
        assert profile.sample is not None
        for label, (value, error) in _effects(baseline, profile).items():
            assert error is not None and error > 0
            hits[label] += abs(value - truth[label][0]) <= 3 * error
    return hits


def test_sampled_profiles_stay_within_their_stated_error_on_a_known_table(
    pg_engine: sa.Engine, pg_schema: str, baseline: Baseline
) -> None:
    """|sampled - full| <= 3 standard errors for at least 95% of 40 seeds, for every judged effect
    (Wasserstein and PSI on x, Jensen-Shannon and PSI on c): the key-hash sample of 5% (10,000
    rows). Block sampling (TABLESAMPLE SYSTEM) of the randomly ordered table: at least 90% (whole
    pages are drawn, so the row count varies more; on a table loaded in an order that tracks a
    column the error is wider still, see core/sampling.py)."""
    table = _known_table(pg_engine, pg_schema)
    hashed = _within(pg_engine, table, baseline, "5%", "id")
    assert all(hits >= 0.95 * SEEDS for hits in hashed.values()), hashed
    blocks = _within(pg_engine, table, baseline, "5%", None)
    assert all(hits >= 0.90 * SEEDS for hits in blocks.values()), blocks


# --- sampled baselines ------------------------------------------------------------------------------


def test_a_baseline_built_from_a_block_sample_on_postgres_says_so(
    pg_engine: sa.Engine, pg_schema: str, tmp_path: Path
) -> None:
    from airflow_mlobs.specs.drift import BaselineSpec, DriftSpec

    table = _known_table(pg_engine, pg_schema)
    built = build_baseline_sql(
        pg_engine,
        name="b",
        version="v1",
        table=table,
        columns=["x", "c"],
        sampling=parse_sample("10%", None, 4),
    )
    sample = built.reference.sample
    assert sample is not None and sample.method == "system" and sample.rate == pytest.approx(0.1)
    assert sample.sampled_rows == built.reference.row_count
    assert abs(built.reference.row_count - 0.1 * KNOWN_ROWS) < 0.03 * KNOWN_ROWS
    built.save(tmp_path)
    assert load_baseline(tmp_path, "b", "v1").reference.sample == sample  # stored and read back

    def connect(_: str):  # type: ignore[no-untyped-def]
        from contextlib import nullcontext

        return nullcontext(pg_engine)

    spec = BaselineSpec(
        conn_id="pg", table=f"{pg_schema}.known", baseline="c", version="v1", sample="10%", sample_seed=4
    )
    ensured = spec.ensure(tmp_path, connect=connect)
    assert ensured.metrics["sample"]["method"] == "system" and "sampled 10.0000% by system" in ensured.summary
    check = DriftSpec(conn_id="pg", table=f"{pg_schema}.known", baseline="c")
    result = check.evaluate(tmp_path, window_start=None, window_end=None, connect=connect)
    assert "(baseline sampled 10.0000% by system (seed 4)" in result.summary
    assert result.metrics["baseline_sample"]["rate"] == pytest.approx(0.1)
    assert set(result.metrics["sampling_error"]["standard_error"]) == {"x", "c", "id"}


def test_a_baseline_built_from_a_key_hash_sample_on_mariadb(mysql_engine: sa.Engine) -> None:
    import uuid

    name = f"known_{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(8)
    frame = pd.DataFrame({"id": np.arange(20_000), "x": rng.normal(size=20_000)})
    frame.to_sql(name, mysql_engine, index=False)
    try:
        table = TableRef(name=name, schema=None)
        with pytest.raises(SourceError, match=r"needs sample_key= .*has no block sampling"):
            build_baseline_sql(
                mysql_engine, name="m", version="v1", table=table, sampling=parse_sample("10%", None)
            )
        built = build_baseline_sql(
            mysql_engine,
            name="m",
            version="v1",
            table=table,
            columns=["x"],
            sampling=parse_sample("10%", None, 2, "id"),
        )
        sample = built.reference.sample
        assert sample is not None and (sample.method, sample.key) == ("key-hash", "id")
        assert built.reference.row_count == sum(keep_key(i, 0.10, 2) for i in range(20_000))
        # the in-memory builder on the same key hash: the same baseline
        kept = frame[[keep_key(int(i), 0.10, 2) for i in frame["id"]]]
        assert (
            build_baseline(kept[["x"]], name="m", version="v1").columns["x"].edges == built.columns["x"].edges
        )
        # a sampled window on MariaDB, against it: findings carry the error
        window, _ = profile_sql(
            mysql_engine,
            list(built.columns.values()),
            table=table,
            sampling=parse_sample("20%", None, 1, "id"),
        )
        result = compare(built, window)
        assert result.metrics["columns"]["x"]["standard_error"] > 0
        assert "(sampled)" in result.findings[0].reason
    finally:
        with mysql_engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE `{name}`"))


def test_the_command_line_builds_a_sampled_baseline(tmp_path: Path) -> None:
    from airflow_mlobs.cli import main

    path = tmp_path / "reference.parquet"
    frame = _reference(50_000)
    frame.insert(0, "id", np.arange(len(frame)))
    frame.to_parquet(path)
    argv = ["baseline", "--name", "cli", "--version", "v1", "--dir", str(tmp_path / "b"), "--path", str(path)]
    assert (
        main([*argv, "--columns", "x,c", "--sample", "10%", "--sample-key", "id", "--sample-seed", "5"]) == 0
    )
    stored = load_baseline(tmp_path / "b", "cli", "v1")
    assert stored.reference.sample is not None and stored.reference.sample.method == "key-hash"
    assert stored.reference.row_count == sum(keep_key(i, 0.10, 5) for i in range(50_000))
    assert "id" not in stored.columns
    assert main([*argv, "--overwrite", "--sample-rows", "5000", "--sample-seed", "1"]) == 0
    rows = load_baseline(tmp_path / "b", "cli", "v1").reference
    assert rows.sample is not None and rows.sample.method == "rows" and rows.sample.estimate == 50_000
    assert abs(rows.row_count - 5_000) < 300
    assert main([*argv, "--overwrite", "--sample", "300%"]) == 2


# --- DuckDB, Snowflake, BigQuery ----------------------------------------------------------------------


@pytest.fixture
def duckdb_engine(tmp_path: Path) -> Iterator[sa.Engine]:
    pytest.importorskip("duckdb_engine")
    engine = sa.create_engine(f"duckdb:///{tmp_path / 'sampled.duckdb'}")
    yield engine
    engine.dispose()


def test_duckdb_block_sample_is_repeatable_and_within_error(
    duckdb_engine: sa.Engine, baseline: Baseline
) -> None:
    with duckdb_engine.begin() as conn:
        conn.execute(sa.text("SELECT setseed(0.5)"))
        conn.execute(
            sa.text(
                "CREATE TABLE known AS SELECT range AS id, "
                "0.25 + sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()) AS x, "
                "CASE WHEN random() < 0.5 THEN 'a' ELSE 'b' END AS c FROM range(1000000)"
            )
        )
    specs = [baseline.columns["x"]]
    table = TableRef(name="known", schema=None)
    request = parse_sample("10%", None, seed=3)
    profile, _ = profile_sql(duckdb_engine, specs, table=table, sampling=request)
    assert profile.sample is not None and profile.sample.method == "system"
    assert not profile.sample.repeatable  # parallel scans keep other vectors from run to run
    assert "not repeatable" in profile.sample.describe()
    # whole vectors of 2,048 rows: about 10% of them
    assert profile.row_count % 2048 == 0 and abs(profile.row_count - 100_000) < 30_000
    full, _ = profile_sql(duckdb_engine, specs, table=table)
    column, truth = profile.columns["x"], full.columns["x"]
    assert isinstance(column, NumericProfile) and isinstance(truth, NumericProfile)
    shares, full_shares = np.asarray(column.bins) / column.count, np.asarray(truth.bins) / truth.count
    errors = np.sqrt(full_shares * (1 - full_shares) / column.count)
    assert np.all(np.abs(shares - full_shares) <= 5 * math.sqrt(2.0) * errors)
    # on one thread the seed fixes the sample (a file takes one configuration at a time)
    duckdb_engine.dispose()
    single = sa.create_engine(duckdb_engine.url, connect_args={"config": {"threads": 1}})
    try:
        runs = [profile_sql(single, specs, table=table, sampling=request)[0] for _ in range(2)]
    finally:
        single.dispose()
    assert runs[0].columns["x"].bins == runs[1].columns["x"].bins  # type: ignore[union-attr]


def _compiled(statement: sa.Select) -> str:  # type: ignore[type-arg]
    return " ".join(str(statement.compile(dialect=sa.engine.default.DefaultDialect())).split())


def test_snowflake_and_bigquery_block_sample_statements() -> None:
    """Their SQLAlchemy dialects are not installable here: the statements are compiled with the
    generic compiler, whose TABLESAMPLE rendering their dialects inherit."""
    table = sa.table("events", sa.column("x"), schema="prod")
    snowflake = SnowflakeDialect().block_sample(table, 0.01, 7)
    assert snowflake is not None
    assert _compiled(sa.select(sa.func.count()).select_from(snowflake)) == (
        "SELECT count(*) AS count_1 FROM prod.events AS mlobs_sample TABLESAMPLE system(1.0) REPEATABLE (7)"
    )
    bigquery = BigqueryDialect().block_sample(table, 0.05, 7)
    assert bigquery is not None and not BigqueryDialect.block_sample_repeatable
    assert _compiled(sa.select(sa.func.count()).select_from(bigquery)) == (
        "SELECT count(*) AS count_1 FROM prod.events AS mlobs_sample TABLESAMPLE system(5.0 PERCENT)"
    )
    duck = DuckdbDialect().block_sample(table, 0.25, 3)
    assert duck is not None
    assert "TABLESAMPLE system(25.0 PERCENT) REPEATABLE (3)" in _compiled(
        sa.select(sa.func.count()).select_from(duck)
    )
    info = SampleInfo(rate=0.05, method="system", seed=0, sampled_rows=10, repeatable=False)
    assert "not repeatable" in info.describe()
