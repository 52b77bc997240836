"""``SchemaCheckOperator``: columns, types, nullability and renames against a contract, from the catalog.

The check itself is :class:`~airflow_mlobs.specs.schema.SchemaSpec`; this module turns the
operator's arguments into that spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlobs.core.result import CheckResult
from airflow_mlobs.core.schema import CHECK
from airflow_mlobs.operators.base import BaseCheckOperator
from airflow_mlobs.specs.schema import SchemaSpec

if TYPE_CHECKING:
    from airflow.sdk import Context


TABLE_OR_FILE_FIELDS: tuple[str, ...] = ("conn_id", "table", "path")
"""The templated source arguments of the checks that read a table or a file (schema, quality)."""


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
    :param sensitive_columns: accepted as by every check; the schema check reads the catalog (column
        names, types, nullability), never a value, so there is nothing of theirs to withhold.

    Plus ``dataset``, ``results_conn_id`` and ``on_breach`` from :class:`BaseCheckOperator`.
    """

    check_name = CHECK
    template_fields: tuple[str, ...] = (
        *BaseCheckOperator.template_fields,
        *TABLE_OR_FILE_FIELDS,
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
        self.contract = contract
        self.conn_id = conn_id
        self.table = table
        self.path = path
        self.write_observed_contract = write_observed_contract
        if isinstance(forbidden_columns, str):
            raise ValueError(
                f"{self.task_id}: forbidden_columns must be a list of glob patterns such as ['pii_*'], "
                f"got the string {forbidden_columns!r}"
            )
        self.forbidden_columns = list(forbidden_columns)
        self.spec().validate(self.task_id)

    def spec(self, dag_file: str | None = None) -> SchemaSpec:
        """The rendered arguments as a :class:`SchemaSpec`; ``dag_file`` is where relative contract
        paths are also looked up."""
        return SchemaSpec(
            contract=self.contract,
            conn_id=self.conn_id,
            table=self.table,
            path=self.path,
            write_observed_contract=self.write_observed_contract,
            forbidden_columns=tuple(self.forbidden_columns),
            dag_file=dag_file,
            dataset=self.dataset,
        )

    def dataset_name(self) -> str:
        """See :meth:`SchemaSpec.dataset_name`."""
        return self.spec().dataset_name()

    def lineage_columns(self) -> tuple[tuple[str, str | None], ...]:
        """``(column, type)`` as the source has them, for the OpenLineage schema facet (one more
        catalog read, made only by the OpenLineage provider after the task ran)."""
        return tuple((c.name, c.physical_type or None) for c in self.spec().observed_columns())

    def evaluate(self, context: Context) -> CheckResult:
        """Read the schema, optionally write it out, and compare it with the contract."""
        return self.spec(getattr(context.get("dag"), "fileloc", None)).evaluate()
