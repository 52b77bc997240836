"""Sensitive columns gathered in the database equal the in-memory gatherer's (pseudonyms made
where the ranked categories are fetched, no min/max for numeric ones), on PostgreSQL and SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlobs.core.drift import compare
from airflow_mlobs.core.privacy import PseudonymKey, pseudonym
from airflow_mlobs.core.profile import Baseline, CategoricalProfile, NumericProfile, Profile
from airflow_mlobs.core.result import Status
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.baseline_sql import build_baseline_sql
from airflow_mlobs.sources.drift_frame import build_baseline, profile_frame
from airflow_mlobs.sources.drift_sql import profile_sql
from tests.integration.test_drift_pushdown import assert_same_profile

KEY = PseudonymKey(b"integration-key-0123456789abcdef")
PLANTED = "PLANTED-7f3a9c1e-sql"


def frame(rows: int, seed: int, planted: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = pd.DataFrame(
        {
            "income": rng.normal(50_000, 8_000, rows).round(2),
            "city": rng.choice(["north", "south", " east", "west"], rows, p=[0.4, 0.3, 0.2, 0.1]),
            "code": rng.integers(0, 400, rows).astype(str),  # folds at max_categories=50
        }
    )
    out.loc[: planted - 1, "city"] = PLANTED
    out.loc[: planted - 1, "code"] = PLANTED
    return out


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[sa.Engine, str | None]]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'sensitive.db'}")
        yield engine, None
        engine.dispose()
        return
    pg_engine = request.getfixturevalue("pg_engine")
    schema = request.getfixturevalue("pg_schema")
    yield pg_engine, schema


def load(engine: sa.Engine, schema: str | None, name: str, data: pd.DataFrame) -> TableRef:
    data.to_sql(name, engine, schema=schema, index=False)
    return TableRef(name=name, schema=schema)


def without_unseen(profile: Profile) -> Profile:
    columns = {
        n: replace(c, unseen=None) if isinstance(c, CategoricalProfile) else c
        for n, c in profile.columns.items()
    }
    return replace(profile, columns=columns)


def shape(baseline: Baseline) -> dict[str, tuple[object, ...]]:
    """What two builders must agree on (the source type is each source's own name for it)."""
    return {
        n: (s.kind, s.edges, sorted(s.categories), s.sensitive, s.pseudonym_key_id)
        for n, s in baseline.columns.items()
    }


def test_sensitive_baseline_and_window_equal_in_memory(source: tuple[sa.Engine, str | None]) -> None:
    engine, schema = source
    ref, cur = frame(3000, 1), frame(1500, 2, planted=200)
    ref_table = load(engine, schema, "h3_ref", ref)
    cur_table = load(engine, schema, "h3_cur", cur)
    args = dict(
        name="b", version="v1", kinds={"income": "numeric", "city": "categorical", "code": "categorical"}
    )
    sensitive = ["income", "city", "code"]
    in_db = build_baseline_sql(
        engine,
        table=ref_table,
        columns=["income", "city", "code"],
        max_categories=1000,
        sensitive_columns=sensitive,
        pseudonym_key=KEY,
        **args,  # type: ignore[arg-type]
    )
    in_memory = build_baseline(
        ref,
        columns=["income", "city", "code"],
        sensitive_columns=sensitive,
        pseudonym_key=KEY,
        **args,  # type: ignore[arg-type]
    )
    assert shape(in_db) == shape(in_memory)
    assert in_db.columns["city"].categories and all(
        c.startswith("ps_") for c in in_db.columns["city"].categories
    )
    # The SQL builder profiles its reference before the category sets exist (unseen unknown there,
    # 0 in memory: as for any baseline); everything else is equal.
    assert_same_profile(in_db.reference, without_unseen(in_memory.reference))
    assert PLANTED not in in_db.to_json() and "north" not in in_db.to_json()
    specs = list(in_db.columns.values())
    window, _ = profile_sql(engine, specs, table=cur_table, pseudonym_key=KEY)
    assert_same_profile(window, profile_frame(cur, specs, pseudonym_key=KEY))
    income = window.columns["income"]
    assert isinstance(income, NumericProfile) and income.min is None and income.max is None
    city = window.columns["city"]
    assert isinstance(city, CategoricalProfile) and city.counts[pseudonym(PLANTED, KEY)] == 200
    assert city.unseen == 200
    result = compare(in_db, window, dataset="d")
    assert PLANTED not in result.to_json() + window.to_json()
    unseen = [f for f in result.findings if f.metric == "unseen_share"]
    assert unseen and unseen[0].status.severity >= Status.WARN.severity
    assert pseudonym(PLANTED, KEY) in unseen[0].reason


def test_folded_sensitive_column_has_its_unseen_count_unknown_in_sql(
    source: tuple[sa.Engine, str | None],
) -> None:
    """The database cannot test values against pseudonyms: where a sensitive column folds, its
    unseen count is left unknown (reported approximate) rather than counted wrongly."""
    engine, schema = source
    ref, cur = frame(3000, 1), frame(1500, 2, planted=200)
    ref_table = load(engine, schema, "h3_ref2", ref)
    cur_table = load(engine, schema, "h3_cur2", cur)
    baseline = build_baseline_sql(
        engine,
        name="b",
        version="v1",
        table=ref_table,
        columns=["code"],
        kinds={"code": "categorical"},
        sensitive_columns=["code"],
        pseudonym_key=KEY,
    )
    window, _ = profile_sql(
        engine, list(baseline.columns.values()), table=cur_table, max_categories=50, pseudonym_key=KEY
    )
    code = window.columns["code"]
    assert isinstance(code, CategoricalProfile) and code.overflow and code.unseen is None
    result = compare(baseline, window, dataset="d")
    assert result.metrics["columns"]["code"].get("approximate") is True
    assert PLANTED not in result.to_json() + window.to_json()


@pytest.mark.postgres
def test_postgresql_error_texts_lose_the_values_they_quote(pg_engine: sa.Engine) -> None:
    """A check that cannot run says why in PostgreSQL's words; with sensitive columns the safety
    net keeps the words and drops the quoted value."""
    from airflow_mlobs.core.result import error_result, scrub_sensitive
    from airflow_mlobs.sources.dberrors import db_cause

    with pg_engine.begin() as conn:
        conn.execute(sa.text("CREATE TEMP TABLE h3_cast (city TEXT)"))
        conn.execute(sa.text("INSERT INTO h3_cast VALUES (:v)"), {"v": PLANTED})
        with pytest.raises(sa.exc.DBAPIError) as raised:
            conn.execute(sa.text("SELECT CAST(city AS double precision) FROM h3_cast"))
    message = f"query on table h3.features failed for column 'income': {db_cause(raised.value)}"
    assert PLANTED in message  # PostgreSQL quotes the value
    result = scrub_sensitive(error_result(check="drift", dataset="d", message=message), ["income"])
    assert PLANTED not in result.to_json()
    assert "invalid input syntax for type double precision" in result.summary
    assert "'income'" in result.findings[0].reason
