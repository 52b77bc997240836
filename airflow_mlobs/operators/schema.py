"""``SchemaCheckOperator``: columns, types, nullability and renames against a contract, from the catalog."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlobs.connections import connected
from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.core.schema import CHECK, compare_schema, contract_from_columns, load_contract
from airflow_mlobs.core.types import ColumnInfo, parse_table_name
from airflow_mlobs.operators.base import BaseCheckOperator
from airflow_mlobs.sources import files as file_source
from airflow_mlobs.sources.sqlkit import read_columns

if TYPE_CHECKING:
    from airflow.sdk import Context

EXPECTATIONS_DIR_ENV = "MLOBS_EXPECTATIONS_DIR"


def resolve_contract_path(contract: str, dag_file: str | None) -> Path:
    """Find a contract file: an absolute path; else relative to ``$MLOBS_EXPECTATIONS_DIR``, the
    working directory, the DAG file's folder, or an ``expectations/`` folder beside or above it.
    Returns the first that exists, or the path as given (so the error names it)."""
    path = Path(contract)
    if path.is_absolute():
        return path
    bases: list[Path] = []
    if os.environ.get(EXPECTATIONS_DIR_ENV):
        bases.append(Path(os.environ[EXPECTATIONS_DIR_ENV]))
    bases.append(Path.cwd())
    if dag_file:
        folder = Path(dag_file).resolve().parent
        bases += [folder, folder / "expectations", folder.parent, folder.parent / "expectations"]
    for base in bases:
        if (base / path).is_file():
            return base / path
    return path


class SchemaCheckOperator(BaseCheckOperator):
    """Compare a table's or file's schema with a contract (a Great Expectations suite JSON).

    The table's schema comes from the database catalog through SQLAlchemy's inspector (no data is
    scanned); a file's from its metadata (Parquet, Feather/Arrow; CSV header and first block). Each
    missing, added, retyped, nullable or forbidden column is its own finding, and a missing column
    with a similarly named new column of the same type family is flagged as a likely rename
    ("`customer_age` missing; `age` appeared with the same type: renamed?").

    :param contract: path of the suite JSON (see :mod:`airflow_mlobs.core.schema` for the expectation
        types read); relative paths are looked up in ``$MLOBS_EXPECTATIONS_DIR``, the working
        directory, and ``expectations/`` beside or above the DAG file. Templated.
    :param conn_id: Airflow connection of the database (with ``table``).
    :param table: table name, ``schema.table`` or ``"Quoted"."Name"``. Templated.
    :param path: a Parquet, Feather/Arrow or CSV file instead of a table. Templated.
    :param write_observed_contract: when set, also write the observed schema as a starting contract
        to this path (an existing file is never overwritten). Without ``contract`` the check then
        only records the schema and passes. Templated.
    :param forbidden_columns: glob patterns (e.g. ``["pii_*"]``) added to the contract's own.

    Plus ``dataset``, ``results_conn_id`` and ``on_breach`` from :class:`BaseCheckOperator`.
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        "conn_id",
        "table",
        "path",
        "contract",
        "write_observed_contract",
    )

    def __init__(
        self,
        *,
        contract: str | None = None,
        conn_id: str | None = None,
        table: str | None = None,
        path: str | None = None,
        write_observed_contract: str | None = None,
        forbidden_columns: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if bool(table) == bool(path):
            raise ValueError(f"{self.task_id}: give exactly one of table (with conn_id) or path")
        if table and not conn_id:
            raise ValueError(f"{self.task_id}: a table source needs conn_id")
        if not contract and not write_observed_contract:
            raise ValueError(f"{self.task_id}: give a contract, write_observed_contract, or both")
        self.contract = contract
        self.conn_id = conn_id
        self.table = table
        self.path = path
        self.write_observed_contract = write_observed_contract
        self.forbidden_columns = list(forbidden_columns)

    def dataset_name(self) -> str:
        """``conn_id:table`` or the file path, unless ``dataset`` names it."""
        if self.dataset:
            return self.dataset
        return f"{self.conn_id}:{self.table}" if self.table else str(self.path)

    def observed_columns(self) -> list[ColumnInfo]:
        """Read the schema from the catalog or the file."""
        if self.path:
            return file_source.read_file_schema(self.path)
        assert self.table is not None and self.conn_id is not None
        with connected(self.conn_id) as engine:
            return read_columns(engine, parse_table_name(self.table))

    def evaluate(self, context: Context) -> CheckResult:
        """Read the schema, optionally write it out, and compare it with the contract."""
        dataset = self.dataset_name()
        dag = context.get("dag")
        dag_file = getattr(dag, "fileloc", None)
        contract = None
        if self.contract:
            contract = load_contract(resolve_contract_path(self.contract, dag_file))
        observed = self.observed_columns()
        written: Finding | None = None
        if self.write_observed_contract:
            written = self._write_contract(dataset, observed, contract.forbidden if contract else ())
        if contract is None:
            return CheckResult(
                check=CHECK,
                dataset=dataset,
                status=Status.PASS,
                summary=f"{dataset}: recorded {len(observed)} columns as a starting contract",
                metrics={"columns_observed": len(observed)},
                findings=(written,) if written else (),
            )
        if self.forbidden_columns:
            contract = replace(contract, forbidden=(*contract.forbidden, *self.forbidden_columns))
        result = compare_schema(dataset=dataset, observed=observed, contract=contract)
        if written:
            result = replace(result, findings=(*result.findings, written))
        return result

    def _write_contract(self, dataset: str, observed: list[ColumnInfo], forbidden: Sequence[str]) -> Finding:
        assert self.write_observed_contract is not None
        target = Path(self.write_observed_contract)
        if target.exists():
            return Finding(
                subject=str(target),
                metric="observed_contract",
                status=Status.PASS,
                reason=f"{target} already exists; not overwritten",
            )
        suite = contract_from_columns(target.stem, observed, forbidden=[*forbidden, *self.forbidden_columns])
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(suite, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise MlobsInputError(f"cannot write observed contract {target}: {exc}") from exc
        self.log.info("Wrote the observed schema of %s to %s", dataset, target)
        return Finding(
            subject=str(target),
            metric="observed_contract",
            status=Status.PASS,
            reason=f"wrote the observed schema ({len(observed)} columns) to {target}",
        )
