"""Schema contracts: type names, reading Great Expectations suites, comparing observed columns."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.result import CheckResult, Status
from airflow_mlobs.core.schema import (
    ContractError,
    compare_schema,
    contract_from_columns,
    load_contract,
    parse_contract,
)
from airflow_mlobs.core.types import ColumnInfo, LogicalType, logical_type_from_name

ROOT = Path(__file__).resolve().parents[2]
REPO_CONTRACT = ROOT / "expectations" / "customer_features.schema.json"
REPO_SUITES = sorted((ROOT / "expectations").glob("*.json"))

L = LogicalType


# --- type names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("INTEGER", L.INTEGER),
        ("BIGINT", L.INTEGER),
        ("int32", L.INTEGER),
        ("Int64", L.INTEGER),
        ("smallint", L.INTEGER),
        ("DOUBLE PRECISION", L.FLOAT),
        ("float64", L.FLOAT),
        ("double", L.FLOAT),
        ("REAL", L.FLOAT),
        ("NUMERIC(10,2)", L.DECIMAL),
        ("decimal128(10, 2)", L.DECIMAL),
        ("VARCHAR(20)", L.STRING),
        ("character varying(64)", L.STRING),
        ("large_string", L.STRING),
        ("TEXT", L.STRING),
        ("object", L.STRING),
        ("BOOLEAN", L.BOOLEAN),
        ("bool", L.BOOLEAN),
        ("TIMESTAMP WITH TIME ZONE", L.TIMESTAMP),
        ("TIMESTAMP WITHOUT TIME ZONE", L.TIMESTAMP),
        ("timestamp[us, tz=UTC]", L.TIMESTAMP),
        ("timestamp[ns]", L.TIMESTAMP),
        ("datetime64[ns]", L.TIMESTAMP),
        ("datetime64[ns, UTC]", L.TIMESTAMP),
        ("DATE", L.DATE),
        ("date32[day]", L.DATE),
        ("BYTEA", L.BINARY),
        ("large_binary", L.BINARY),
        ("geometry", L.OTHER),
        ("json", L.OTHER),
        ("not a type", L.OTHER),
        # logical names themselves, as written by contract_from_columns
        ("integer", L.INTEGER),
        ("STRING", L.STRING),
        ("decimal", L.DECIMAL),
        ("  float  ", L.FLOAT),
    ],
)
def test_logical_type_from_name(name: str, expected: LogicalType) -> None:
    assert logical_type_from_name(name) is expected


# --- reading contracts ---------------------------------------------------------------------------


def _suite(*expectations: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    suite: dict[str, Any] = {"name": "features", "expectations": list(expectations)}
    if meta is not None:
        suite["meta"] = meta
    return suite


def _of_type(column: str, type_: str, **meta: Any) -> dict[str, Any]:
    return {
        "type": "expect_column_values_to_be_of_type",
        "kwargs": {"column": column, "type_": type_},
        "meta": meta,
    }


def _match_set(columns: list[str], exact: bool = False) -> dict[str, Any]:
    return {
        "type": "expect_table_columns_to_match_set",
        "kwargs": {"column_set": columns, "exact_match": exact},
        "meta": {},
    }


def _not_null(column: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": column, **kwargs}, "meta": {}}


def test_load_repo_contract() -> None:
    contract = load_contract(REPO_CONTRACT)
    assert contract.name == "customer_features.schema"
    assert contract.source == str(REPO_CONTRACT)
    assert set(contract.columns) == {
        "customer_id",
        "customer_age",
        "tenure_months",
        "monthly_spend",
        "region",
        "updated_at",
    }
    assert contract.exact is False
    assert contract.forbidden == ("pii_*", "*_ssn")
    assert contract.columns["customer_id"].types == frozenset({L.INTEGER})
    assert contract.columns["customer_id"].not_null is True
    assert contract.columns["monthly_spend"].types == frozenset({L.FLOAT, L.DECIMAL})
    assert contract.columns["monthly_spend"].type_names == ("FLOAT", "DECIMAL")
    assert contract.columns["region"].types == frozenset({L.STRING})
    assert contract.columns["region"].not_null is False
    assert contract.columns["updated_at"].types == frozenset({L.TIMESTAMP})
    assert contract.columns["updated_at"].not_null is True
    assert all(rule.severity is Status.FAIL for rule in contract.columns.values())


def test_parse_contract_reads_expectation_kinds() -> None:
    suite = _suite(
        _match_set(["a", "b"], exact=True),
        {"type": "expect_column_to_exist", "kwargs": {"column": "c"}},
        {
            "type": "expect_column_values_to_be_in_type_list",
            "kwargs": {"column": "d", "type_list": ["INTEGER", "DOUBLE"]},
        },
        _not_null("a"),
        _not_null("b", mostly=0.95),
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "a", "min_value": 0}},
        meta={"mlobs": {"forbidden_columns": ["pii_*"]}},
    )
    contract = parse_contract(suite, source="suite.json")
    assert contract.exact is True
    assert set(contract.columns) == {"a", "b", "c", "d"}
    assert contract.columns["a"].not_null is True
    assert contract.columns["b"].not_null is False
    assert contract.columns["c"].types == frozenset()
    assert contract.columns["d"].types == frozenset({L.INTEGER, L.FLOAT})
    assert contract.ignored_expectations == ("expect_column_values_to_be_between",)
    assert contract.forbidden == ("pii_*",)


def test_match_set_defaults_to_exact_like_great_expectations() -> None:
    suite = _suite({"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["a"]}})
    assert parse_contract(suite).exact is True


def test_legacy_expectation_type_key_is_read() -> None:
    suite = _suite({"expectation_type": "expect_column_to_exist", "kwargs": {"column": "a"}})
    assert set(parse_contract(suite).columns) == {"a"}


def test_contract_name_defaults_to_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "orders.schema.json"
    path.write_text(json.dumps({"expectations": [_of_type("id", "INTEGER")]}), encoding="utf-8")
    assert load_contract(path).name == "orders.schema"


def test_missing_contract_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ContractError) as info:
        load_contract(path)
    assert str(path) in str(info.value)
    assert "does not exist" in str(info.value)
    assert isinstance(info.value, MlobsInputError)


def test_invalid_json_contract_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "expectations": [\n    {"type": "x",}\n  ]\n}\n', encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_contract(path)
    message = str(info.value)
    assert str(path) in message
    assert "is not valid JSON" in message
    assert "line 3, column" in message


@pytest.mark.parametrize(
    "content",
    [[], {"name": "x"}, {"expectations": {}}, "just text"],
    ids=["list", "no-expectations", "expectations-not-list", "string"],
)
def test_not_a_suite(tmp_path: Path, content: object) -> None:
    path = tmp_path / "notasuite.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_contract(path)
    assert str(path) in str(info.value)
    assert "not an expectation suite" in str(info.value)


def test_unknown_type_name(tmp_path: Path) -> None:
    path = tmp_path / "types.json"
    path.write_text(json.dumps(_suite(_of_type("geom", "GEOMETRY"))), encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_contract(path)
    message = str(info.value)
    assert str(path) in message
    assert "expectation #1" in message
    assert "unknown type 'GEOMETRY' for column 'geom'" in message
    assert "integer" in message and "timestamp" in message


@pytest.mark.parametrize("severity", ["error", "WARN", "critical", 1])
def test_bad_meta_severity(tmp_path: Path, severity: object) -> None:
    path = tmp_path / "sev.json"
    suite = _suite(_match_set(["a"]), _of_type("a", "INTEGER", severity=severity))
    path.write_text(json.dumps(suite), encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_contract(path)
    message = str(info.value)
    assert str(path) in message
    assert "expectation #2" in message
    assert "meta.severity must be 'warn' or 'fail'" in message
    assert repr(severity) in message


@pytest.mark.parametrize("forbidden", ["pii_*", [1, 2], {"a": 1}])
def test_bad_forbidden_columns(tmp_path: Path, forbidden: object) -> None:
    path = tmp_path / "forbidden.json"
    suite = _suite(_of_type("a", "INTEGER"), meta={"mlobs": {"forbidden_columns": forbidden}})
    path.write_text(json.dumps(suite), encoding="utf-8")
    with pytest.raises(ContractError) as info:
        load_contract(path)
    assert str(path) in str(info.value)
    assert "forbidden_columns must be a list of glob patterns" in str(info.value)


@pytest.mark.parametrize(
    ("expectation", "fragment"),
    [
        ("not an object", "must be an object"),
        ({"kwargs": {}}, "needs a 'type' and 'kwargs'"),
        ({"type": "expect_column_to_exist", "kwargs": {}}, "kwargs.column must be a column name"),
        (
            {"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": "a,b"}},
            "column_set must be a list",
        ),
        ({"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "a"}}, "needs a type name"),
    ],
)
def test_malformed_expectations(expectation: object, fragment: str) -> None:
    with pytest.raises(ContractError) as info:
        parse_contract({"expectations": [expectation]}, source="contract.json")
    assert str(info.value).startswith("contract.json: expectation #1")
    assert fragment in str(info.value)


# --- comparing ----------------------------------------------------------------------------------


def _col(name: str, physical: str, nullable: bool | None = True) -> ColumnInfo:
    return ColumnInfo(
        name=name, logical_type=logical_type_from_name(physical), physical_type=physical, nullable=nullable
    )


def _customer_columns() -> list[ColumnInfo]:
    return [
        _col("customer_id", "BIGINT", nullable=False),
        _col("customer_age", "INTEGER"),
        _col("tenure_months", "INTEGER"),
        _col("monthly_spend", "NUMERIC(10,2)"),
        _col("region", "VARCHAR(20)"),
        _col("updated_at", "TIMESTAMP WITH TIME ZONE", nullable=False),
    ]


def _compare(observed: list[ColumnInfo], contract: dict[str, Any] | None = None) -> CheckResult:
    parsed = load_contract(REPO_CONTRACT) if contract is None else parse_contract(contract)
    return compare_schema(dataset="warehouse:customer_features", observed=observed, contract=parsed)


def _not_passing(result: CheckResult) -> list[tuple[str, str, Status]]:
    return [(f.subject, f.metric, f.status) for f in result.findings if f.status is not Status.PASS]


def test_exact_match_passes() -> None:
    result = _compare(_customer_columns())
    assert result.status is Status.PASS
    assert _not_passing(result) == []
    assert result.findings == ()
    assert (
        result.summary == "warehouse:customer_features matches contract customer_features.schema (6 columns)"
    )
    assert result.metrics["missing"] == []
    assert result.metrics["added"] == []


def test_missing_column() -> None:
    observed = [c for c in _customer_columns() if c.name != "tenure_months"]
    result = _compare(observed)
    assert result.status is Status.FAIL
    assert _not_passing(result) == [("tenure_months", "missing", Status.FAIL)]
    assert result.findings[0].reason == "`tenure_months` missing"
    assert result.metrics["missing"] == ["tenure_months"]
    assert "`tenure_months` missing" in result.summary


def test_rename_hint_from_the_product_story() -> None:
    observed = [c for c in _customer_columns() if c.name != "customer_age"] + [_col("age", "INTEGER")]
    result = _compare(observed)
    assert result.status is Status.FAIL
    missing = [f for f in result.findings if f.metric == "missing"]
    assert len(missing) == 1
    assert missing[0].subject == "customer_age"
    assert missing[0].reason == "`customer_age` missing; `age` appeared with the same type: renamed?"
    added = [f for f in result.findings if f.metric == "added"]
    assert [f.subject for f in added] == ["age"]
    assert added[0].status is Status.PASS
    assert "possible rename" in added[0].reason
    assert result.metrics["added"] == ["age"]


def test_no_rename_hint_when_type_family_differs() -> None:
    observed = [c for c in _customer_columns() if c.name != "customer_age"] + [_col("age", "VARCHAR")]
    result = _compare(observed)
    missing = [f for f in result.findings if f.metric == "missing"]
    assert [f.reason for f in missing] == ["`customer_age` missing"]
    added = [f for f in result.findings if f.metric == "added"]
    assert "possible rename" not in added[0].reason


def test_no_rename_hint_for_unrelated_name() -> None:
    observed = [c for c in _customer_columns() if c.name != "customer_age"] + [_col("zip_code", "INTEGER")]
    result = _compare(observed)
    missing = [f for f in result.findings if f.metric == "missing"]
    assert [f.reason for f in missing] == ["`customer_age` missing"]


def test_added_column_allowed_when_extras_allowed() -> None:
    result = _compare([*_customer_columns(), _col("churn_score", "float64")])
    assert result.status is Status.PASS
    added = [f for f in result.findings if f.metric == "added"]
    assert len(added) == 1
    assert added[0].subject == "churn_score"
    assert added[0].status is Status.PASS
    assert result.metrics["added"] == ["churn_score"]


def test_added_column_fails_with_exact_match() -> None:
    suite = _suite(_match_set(["id", "name"], exact=True))
    result = _compare([_col("id", "int64"), _col("name", "string"), _col("extra", "string")], suite)
    assert result.status is Status.FAIL
    assert _not_passing(result) == [("extra", "added", Status.FAIL)]
    assert result.findings[0].threshold == "exact column set"


def test_int32_satisfies_bigint() -> None:
    suite = _suite(_of_type("id", "BIGINT"), _of_type("n", "int64"))
    result = _compare([_col("id", "int32"), _col("n", "SMALLINT")], suite)
    assert result.status is Status.PASS
    assert result.findings == ()


def test_float_where_integer_expected_is_a_type_finding() -> None:
    observed = [
        _col("tenure_months", "DOUBLE PRECISION") if c.name == "tenure_months" else c
        for c in _customer_columns()
    ]
    result = _compare(observed)
    assert result.status is Status.FAIL
    assert _not_passing(result) == [("tenure_months", "type", Status.FAIL)]
    finding = result.findings[0]
    assert finding.value == "float (DOUBLE PRECISION)"
    assert finding.threshold == "integer"
    assert finding.reason == "`tenure_months` is DOUBLE PRECISION (float), contract expects integer"
    assert result.metrics["retyped"] == ["tenure_months"]


def test_nullable_column_where_not_null_expected_warns() -> None:
    observed = [
        _col("customer_id", "BIGINT", nullable=True) if c.name == "customer_id" else c
        for c in _customer_columns()
    ]
    result = _compare(observed)
    assert result.status is Status.WARN
    assert not result.is_breach
    assert _not_passing(result) == [("customer_id", "nullable", Status.WARN)]


def test_unknown_nullability_does_not_warn() -> None:
    observed = [
        _col("customer_id", "BIGINT", nullable=None) if c.name == "customer_id" else c
        for c in _customer_columns()
    ]
    assert _compare(observed).status is Status.PASS


def test_forbidden_glob_is_case_insensitive() -> None:
    result = _compare([*_customer_columns(), _col("PII_email", "VARCHAR")])
    assert result.status is Status.FAIL
    assert _not_passing(result) == [("PII_email", "forbidden", Status.FAIL)]
    assert result.findings[0].reason == "`PII_email` matches forbidden pattern 'pii_*'"
    assert result.metrics["forbidden"] == ["PII_email"]


def test_forbidden_suffix_pattern() -> None:
    result = _compare([*_customer_columns(), _col("customer_SSN", "VARCHAR")])
    assert ("customer_SSN", "forbidden", Status.FAIL) in _not_passing(result)


def test_non_matching_names_are_not_forbidden() -> None:
    result = _compare([*_customer_columns(), _col("api_key_count", "INTEGER")])
    assert result.status is Status.PASS


def test_warn_severity_expectation_yields_warn() -> None:
    suite = _suite(
        _of_type("score", "FLOAT", severity="warn"),
        {"type": "expect_column_to_exist", "kwargs": {"column": "label"}, "meta": {"severity": "warn"}},
    )
    retyped = _compare([_col("score", "VARCHAR"), _col("label", "INTEGER")], suite)
    assert retyped.status is Status.WARN
    assert _not_passing(retyped) == [("score", "type", Status.WARN)]
    missing = _compare([_col("score", "float64")], suite)
    assert missing.status is Status.WARN
    assert _not_passing(missing) == [("label", "missing", Status.WARN)]
    fail_suite = copy.deepcopy(suite)
    fail_suite["expectations"][0]["meta"]["severity"] = "fail"
    assert _compare([_col("score", "VARCHAR"), _col("label", "INTEGER")], fail_suite).status is Status.FAIL


def test_great_expectations_severity_field() -> None:
    suite = _suite({**_of_type("score", "FLOAT"), "severity": "warning"})
    assert _compare([_col("score", "VARCHAR")], suite).status is Status.WARN


def test_dropped_added_and_retyped_are_separate_findings() -> None:
    observed = [
        _col("customer_id", "BIGINT", nullable=False),
        _col("customer_age", "INTEGER"),
        _col("tenure_months", "VARCHAR"),  # retyped
        _col("monthly_spend", "float64"),
        # region dropped
        _col("updated_at", "timestamp[us, tz=UTC]", nullable=False),
        _col("segment", "BOOLEAN"),  # added, unrelated to region
    ]
    result = _compare(observed)
    assert result.status is Status.FAIL
    assert sorted((f.subject, f.metric) for f in result.findings) == [
        ("region", "missing"),
        ("segment", "added"),
        ("tenure_months", "type"),
    ]
    assert result.metrics["missing"] == ["region"]
    assert result.metrics["added"] == ["segment"]
    assert result.metrics["retyped"] == ["tenure_months"]
    assert result.findings[-1].subject == "segment"  # passing finding sorted after the breaches
    assert CheckResult.from_json(result.to_json()) == result


def test_case_folded_names_match() -> None:
    observed = [
        ColumnInfo(c.name.upper(), c.logical_type, c.physical_type, c.nullable) for c in _customer_columns()
    ]
    result = _compare(observed)
    assert result.status is Status.PASS
    assert result.metrics["added"] == []


# --- generated contracts -------------------------------------------------------------------------


def _observed_for_generation() -> list[ColumnInfo]:
    return [
        _col("customer_id", "int64", nullable=False),
        _col("age", "int32"),
        _col("spend", "decimal128(10, 2)"),
        _col("ratio", "double"),
        _col("region", "large_string"),
        _col("active", "bool", nullable=False),
        _col("signup", "date32[day]"),
        _col("updated_at", "timestamp[us, tz=UTC]", nullable=False),
        _col("blob", "binary"),
        _col("shape", "geometry"),
    ]


def test_contract_from_columns_round_trips() -> None:
    observed = _observed_for_generation()
    suite = contract_from_columns("generated", observed, exact=True, forbidden=["pii_*"])
    contract = parse_contract(json.loads(json.dumps(suite)), source="generated.json")
    assert contract.name == "generated"
    assert contract.exact is True
    assert contract.forbidden == ("pii_*",)
    assert list(contract.columns) == [c.name for c in observed]
    for column in observed:
        rule = contract.columns[column.name]
        expected_types = frozenset() if column.logical_type is L.OTHER else frozenset({column.logical_type})
        assert rule.types == expected_types
        assert rule.not_null is (column.nullable is False)
    result = compare_schema(dataset="t", observed=observed, contract=contract)
    assert result.status is Status.PASS
    assert result.findings == ()
    # and it still catches a change
    changed = [c for c in observed if c.name != "age"]
    assert compare_schema(dataset="t", observed=changed, contract=contract).status is Status.FAIL


def test_great_expectations_accepts_the_generated_suite() -> None:
    import great_expectations as gx

    gx.get_context(mode="ephemeral")
    suite_dict = contract_from_columns("generated", _observed_for_generation(), forbidden=["pii_*"])
    suite = gx.ExpectationSuite(**copy.deepcopy(suite_dict))
    # GX logs and drops expectations it cannot build instead of raising: count them.
    assert len(suite.expectations) == len(suite_dict["expectations"])
    assert {e.expectation_type for e in suite.expectations} == {
        "expect_table_columns_to_match_set",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_not_be_null",
    }


@pytest.mark.parametrize("path", REPO_SUITES, ids=[p.name for p in REPO_SUITES])
def test_great_expectations_accepts_the_repo_suites(path: Path) -> None:
    import great_expectations as gx

    gx.get_context(mode="ephemeral")
    suite_dict = json.loads(path.read_text(encoding="utf-8"))
    suite = gx.ExpectationSuite(**copy.deepcopy(suite_dict))
    assert len(suite.expectations) == len(suite_dict["expectations"])
    assert suite.name == suite_dict["name"]
    # and the schema check reads the same file
    assert load_contract(path).columns


def test_repo_suites_exist() -> None:
    assert REPO_CONTRACT in REPO_SUITES


# Regression tests for review findings (each failed before its fix).


def test_type_severity_is_separate_from_existence_severity() -> None:
    contract = _suite(_match_set(["a", "b"], exact=False), _of_type("b", "INTEGER", severity="warn"))
    result = _compare([_col("b", "TEXT")], contract)
    assert ("b", "type", Status.WARN) in _not_passing(result)
    assert ("a", "missing", Status.FAIL) in _not_passing(result)


def test_forbidden_column_is_caught_even_when_the_contract_names_it() -> None:
    contract = _suite(_match_set(["id", "pii_email"]), meta={"mlobs": {"forbidden_columns": ["pii_*"]}})
    result = _compare([_col("id", "INTEGER"), _col("pii_email", "TEXT")], contract)
    assert ("pii_email", "forbidden", Status.FAIL) in _not_passing(result)


def test_rename_hint_names_the_type_when_the_contract_gives_none() -> None:
    contract = _suite(_match_set(["customer_age"]))
    result = _compare([_col("age", "INTEGER")], contract)
    missing = next(f for f in result.findings if f.metric == "missing")
    assert missing.reason == "`customer_age` missing; `age` appeared with type integer: renamed?"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("halffloat", LogicalType.FLOAT),
        ("dictionary<values=string, indices=int8, ordered=0>", LogicalType.STRING),
        ("dictionary<values=int64, indices=int32, ordered=1>", LogicalType.INTEGER),
    ],
)
def test_arrow_halffloat_and_dictionary_types(name: str, expected: LogicalType) -> None:
    assert logical_type_from_name(name) is expected


@pytest.mark.parametrize(
    ("suite", "fragment"),
    [
        (_suite(_not_null("a", mostly="most")), "mostly must be a number"),
        (_suite(_match_set(["a"]), meta={"mlobs": ["pii_*"]}), "meta.mlobs must be an object"),
    ],
)
def test_malformed_contract_values_are_contract_errors(suite: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ContractError, match=fragment):
        parse_contract(suite, source="contract.json")


# --- the spec, without Airflow ---------------------------------------------------------------------


def test_schema_spec_on_a_file_records_then_compares(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Record a file's schema as a starting contract, then check the file against it, the contract
    found through $MLOBS_EXPECTATIONS_DIR (relative path)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlobs.specs.schema import EXPECTATIONS_DIR_ENV, SchemaSpec

    data = tmp_path / "features.parquet"
    pq.write_table(pa.table({"id": pa.array([1], pa.int64()), "score": pa.array([0.5])}), data)
    contracts = tmp_path / "expectations"
    record = SchemaSpec(path=str(data), write_observed_contract=str(contracts / "features.json"))
    record.validate("s")
    recorded = record.evaluate()
    assert recorded.status is Status.PASS and recorded.metrics["columns_observed"] == 2
    assert recorded.dataset == str(data)
    assert "wrote the observed schema (2 columns)" in recorded.findings[0].reason

    monkeypatch.setenv(EXPECTATIONS_DIR_ENV, str(contracts))
    checked = SchemaSpec(contract="features.json", path=str(data), forbidden_columns=("sco*",)).evaluate()
    assert checked.status is Status.FAIL  # forbidden by the spec, not the recorded contract
    assert [f.subject for f in checked.findings if f.status is Status.FAIL] == ["score"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"contract": "c.json"}, "exactly one of table"),
        ({"contract": "c.json", "table": "t", "path": "p"}, "exactly one of table"),
        ({"contract": "c.json", "table": "t"}, "needs conn_id"),
        ({"path": "p"}, "give a contract"),
    ],
)
def test_schema_spec_rejects_impossible_arguments(kwargs: dict[str, Any], message: str) -> None:
    from airflow_mlobs.specs.schema import SchemaSpec

    with pytest.raises(ValueError, match=f"s: .*{message}"):
        SchemaSpec(**kwargs).validate("s")
