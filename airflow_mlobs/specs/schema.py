"""The schema check as a plain spec: a table's or file's columns, gathered once and judged once
against a contract (a Great Expectations suite JSON).

Used by ``SchemaCheckOperator``, and by anything that holds a database URL (the CLI, a notebook)
through :func:`~airflow_mlobs.specs.base.url_connected`. Also home of
:func:`resolve_contract_path`, how every check finds a suite or contract file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.result import CheckResult, Finding, Status
from airflow_mlobs.core.schema import CHECK, compare_schema, contract_from_columns, load_contract
from airflow_mlobs.core.types import ColumnInfo, parse_table_name
from airflow_mlobs.sources import files as file_source
from airflow_mlobs.sources.sqlkit import read_columns
from airflow_mlobs.specs.base import Connector, connector_or_default, source_label

EXPECTATIONS_DIR_ENV = "MLOBS_EXPECTATIONS_DIR"
log = logging.getLogger(__name__)


def resolve_contract_path(contract: str, dag_file: str | None) -> Path:
    """Find a contract or suite file: an absolute path; else relative to ``$MLOBS_EXPECTATIONS_DIR``,
    the working directory, the DAG file's folder, or an ``expectations/`` folder beside or above it.
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


@dataclass(frozen=True)
class SchemaSpec:
    """A schema check as plain values (templates already rendered).

    One source: ``table`` (with ``conn_id``; columns from the catalog, no data scanned) or ``path``
    (a Parquet, Feather/Arrow or CSV file's metadata). ``contract`` is the suite JSON compared with;
    ``write_observed_contract`` also writes the observed schema there as a starting contract (an
    existing file is never overwritten), and without ``contract`` the check only records it.
    ``dag_file`` is where relative contract paths are also looked up (see
    :func:`resolve_contract_path`); ``forbidden_columns`` are glob patterns added to the contract's.
    """

    contract: str | None = None
    conn_id: str | None = None
    table: str | None = None
    path: str | None = None
    write_observed_contract: str | None = None
    forbidden_columns: tuple[str, ...] = ()
    dag_file: str | None = None
    dataset: str | None = None

    def validate(self, task_id: str) -> None:
        """Raise ``ValueError`` naming the task for an impossible combination of arguments."""
        if bool(self.table) == bool(self.path):
            raise ValueError(f"{task_id}: give exactly one of table (with conn_id) or path")
        if self.table and not self.conn_id:
            raise ValueError(f"{task_id}: a table source needs conn_id")
        if not self.contract and not self.write_observed_contract:
            raise ValueError(f"{task_id}: give a contract, write_observed_contract, or both")
        self.check_values(task_id, ValueError, literal_only=True)

    def check_values(self, where: str, error: type[ValueError], *, literal_only: bool = False) -> None:
        """Raise ``error`` naming ``where`` (the task, or the dataset at run time) and the argument
        for a value it does not allow; with ``literal_only`` a templated value is left for the run."""
        for name in ("contract", "conn_id", "table", "path", "write_observed_contract"):
            value = getattr(self, name)
            if value is None or (literal_only and isinstance(value, str) and "{{" in value):
                continue
            if not isinstance(value, str) or not value.strip():
                raise error(f"{where}: {name} must be a non-empty string, got {value!r}")
        if isinstance(self.forbidden_columns, str):
            raise error(
                f"{where}: forbidden_columns must be a list of glob patterns such as ['pii_*'], "
                f"got the string {self.forbidden_columns!r}"
            )
        for pattern in self.forbidden_columns:
            if not isinstance(pattern, str) or not pattern.strip():
                raise error(
                    f"{where}: forbidden_columns must hold non-empty glob patterns such as 'pii_*', "
                    f"got {pattern!r}"
                )

    def dataset_name(self) -> str:
        """``conn_id:table`` or the file path, unless ``dataset`` names it."""
        if self.dataset:
            return self.dataset
        return source_label(self.conn_id, table=self.table, path=self.path)

    def observed_columns(self, *, connect: Connector | None = None) -> list[ColumnInfo]:
        """Gather: the schema from the catalog (through ``connect``; default Airflow connections)
        or from the file's metadata."""
        if self.path:
            return file_source.read_file_schema(self.path)
        assert self.table is not None and self.conn_id is not None
        with connector_or_default(connect)(self.conn_id) as engine:
            return read_columns(engine, parse_table_name(self.table))

    def evaluate(self, *, connect: Connector | None = None) -> CheckResult:
        """Read the schema, optionally write it out, and compare it with the contract.

        Raises ``MlobsInputError`` for bad input (a missing table, file or contract)."""
        dataset = self.dataset_name()
        self.check_values(dataset, MlobsInputError)
        contract = None
        if self.contract:
            contract = load_contract(resolve_contract_path(self.contract, self.dag_file))
        observed = self.observed_columns(connect=connect)
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
        log.info("Wrote the observed schema of %s to %s", dataset, target)
        return Finding(
            subject=str(target),
            metric="observed_contract",
            status=Status.PASS,
            reason=f"wrote the observed schema ({len(observed)} columns) to {target}",
        )
