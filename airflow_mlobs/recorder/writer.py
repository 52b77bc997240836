"""Writing buffered columns into one table: created on first use, batched, COPY where the driver has it.

The fastest path is chosen by duck typing the DBAPI cursor under the SQLAlchemy connection, never
by the database's name: a cursor with ``copy_expert`` (psycopg2) or ``copy`` (psycopg 3) gets one
``COPY ... FROM STDIN (FORMAT csv)`` per batch; any other driver gets one ``executemany`` insert
(SQLAlchemy's ``insertmanyvalues`` where the dialect has it). Table creation is serialised across
processes with the dialect's table-creation lock (``sources.dialect``), and a writer that loses the
race reads the table the winner made.
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine

from airflow_mlobs.core.errors import SourceError, SourceUnavailable
from airflow_mlobs.core.types import TableRef
from airflow_mlobs.sources.dberrors import db_cause, is_transient, sqlstate
from airflow_mlobs.sources.dialect import dialect_for

log = logging.getLogger(__name__)

#: The advisory-lock class of the recorder's table creation ("mlpr"), apart from the results store's.
LOCK_KEY = 0x6D6C7072
#: What stands for NULL in the COPY text: quoted text never matches it, so "" stays an empty string.
COPY_NULL = "\\N"

#: Builds the table from the first batch: (column -> its values) to a ``sa.Table`` not yet created.
TableFactory = Callable[[dict[str, list[Any]]], sa.Table]
#: Types a column that is new to an existing table (``new_columns="add"``).
ColumnTyper = Callable[[str, list[Any]], sa.types.TypeEngine[Any]]


class TableWriter:
    """Appends column batches to ``ref``, creating it (from ``factory``) when it does not exist.

    ``required`` names the columns an existing table must have to be taken for this kind of table.
    ``new_columns`` says what a batch column the table lacks does: ``"error"`` (a ``SourceError``
    naming the table and the column) or ``"add"`` (``ALTER TABLE ... ADD COLUMN``, nullable, typed
    by ``typer``). ``fast`` allows COPY when the driver has it.
    """

    def __init__(
        self,
        engine: Engine,
        ref: TableRef,
        *,
        factory: TableFactory,
        required: Sequence[str],
        new_columns: str = "error",
        typer: ColumnTyper | None = None,
        fast: bool = True,
    ) -> None:
        self.engine = engine
        self.ref = ref
        self.factory = factory
        self.required = tuple(required)
        self.new_columns = new_columns
        self.typer = typer
        self.fast = fast
        self.table: sa.Table | None = None
        #: How the last batch went in: ``"copy"`` or ``"executemany"`` (for tests and benchmarks).
        self.last_path = ""

    # -- the table ---------------------------------------------------------------------------

    def known_columns(self) -> set[str] | None:
        """The table's columns when it is known (created or read), else ``None``."""
        return None if self.table is None else {c.name for c in self.table.columns}

    def look(self) -> set[str] | None:
        """Read the table if it exists already (so a caller can check columns before buffering)."""
        if self.table is None:
            try:
                with self.engine.connect() as conn:
                    if sa.inspect(conn).has_table(self.ref.name, schema=self.ref.schema):
                        self.table = self._reflect(conn)
            except sa_exc.SQLAlchemyError as exc:
                raise self._failure(exc, "reading the table") from exc
        return self.known_columns()

    def _reflect(self, conn: Connection) -> sa.Table:
        table = sa.Table(self.ref.name, sa.MetaData(), schema=self.ref.schema, autoload_with=conn)
        missing = [name for name in self.required if name not in table.c]
        if missing:
            raise SourceError(
                f"table {self.ref} exists but has no column {missing[0]!r}, so it is not a table this "
                "logger wrote; give another table name"
            )
        return table

    def _ensure(self, conn: Connection, columns: dict[str, list[Any]]) -> sa.Table:
        """The table, created from ``columns`` under the creation lock when it does not exist."""
        if self.table is not None:
            return self.table
        dialect_for(conn).lock_table_creation(conn, LOCK_KEY)
        if sa.inspect(conn).has_table(self.ref.name, schema=self.ref.schema):
            table = self._reflect(conn)
        else:
            table = self.factory(columns)
            table.create(conn, checkfirst=True)
            log.info("Created table %s (%s)", self.ref, ", ".join(c.name for c in table.columns))
        return table

    def _add_columns(self, conn: Connection, table: sa.Table, columns: dict[str, list[Any]]) -> sa.Table:
        unknown = [name for name in columns if name not in table.c]
        if not unknown:
            return table
        if self.new_columns != "add" or self.typer is None:
            raise unknown_column(self.ref, unknown[0], table)
        preparer = conn.dialect.identifier_preparer
        for name in unknown:
            kind = self.typer(name, columns[name])
            conn.execute(
                sa.text(
                    f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN "
                    f"{preparer.quote(name)} {kind.compile(dialect=conn.dialect)}"
                )
            )
            log.info("Added column %s to table %s", name, self.ref)
        return self._reflect(conn)

    def check_columns(self, names: Sequence[str]) -> None:
        """``SourceError`` for a column the known table lacks, when new columns are not added."""
        if self.table is not None and self.new_columns != "add":
            for name in names:
                if name not in self.table.c:
                    raise unknown_column(self.ref, name, self.table)

    # -- writing -----------------------------------------------------------------------------

    def write(self, chunks: Sequence[dict[str, list[Any]]]) -> int:
        """Write ``chunks`` (each column name -> equal-length value lists) in one transaction;
        returns the rows written. ``SourceUnavailable`` when the database is away for now (the
        caller keeps the rows), ``SourceError`` naming the table otherwise."""
        chunks = [chunk for chunk in chunks if chunk and len(next(iter(chunk.values())))]
        if not chunks:
            return 0
        first = dict(chunks[0])
        for chunk in chunks[1:]:  # the union of columns decides a new table's layout
            for name, values in chunk.items():
                if name not in first or not any(v is not None for v in first[name]):
                    first[name] = values
        written = 0
        try:
            with self.engine.begin() as conn:
                table = self._ensure(conn, first)
                for chunk in chunks:
                    table = self._add_columns(conn, table, chunk)
                    written += self._write_chunk(conn, table, chunk)
            self.table = table
        except (SourceError, SourceUnavailable):
            raise
        except Exception as exc:
            raise self._failure(
                exc, f"writing {sum(len(next(iter(c.values()))) for c in chunks)} rows"
            ) from exc
        return written

    def _write_chunk(self, conn: Connection, table: sa.Table, chunk: dict[str, list[Any]]) -> int:
        names = list(chunk)
        rows = len(chunk[names[0]])
        raw = conn.connection.dbapi_connection if self.fast else None
        cursor = raw.cursor() if raw is not None else None
        try:
            if (
                cursor is not None
                and (hasattr(cursor, "copy_expert") or hasattr(cursor, "copy"))
                # Text that reads as the NULL marker would come back NULL: such a batch is inserted.
                and not any(COPY_NULL in column for column in chunk.values())
            ):
                self._copy(conn, cursor, table, chunk)
                self.last_path = "copy"
                return rows
        finally:
            if cursor is not None:
                cursor.close()
        conn.execute(
            table.insert(), [dict(zip(names, row, strict=True)) for row in zip(*chunk.values(), strict=True)]
        )
        self.last_path = "executemany"
        return rows

    def _copy(self, conn: Connection, cursor: Any, table: sa.Table, chunk: dict[str, list[Any]]) -> None:
        preparer = conn.dialect.identifier_preparer
        columns = ", ".join(preparer.quote(name) for name in chunk)
        statement = (
            f"COPY {preparer.format_table(table)} ({columns}) FROM STDIN "
            f"WITH (FORMAT csv, NULL E'{COPY_NULL.replace(chr(92), chr(92) * 2)}')"
        )
        stream = CsvStream([copy_text(column) for column in chunk.values()])
        if hasattr(cursor, "copy_expert"):  # psycopg2: reads the stream in pieces as it sends
            cursor.copy_expert(statement, stream, size=CsvStream.PIECE)
        else:  # psycopg 3
            with cursor.copy(statement) as copy:
                while piece := stream.read(CsvStream.PIECE):
                    copy.write(piece)

    def _failure(self, exc: BaseException, doing: str) -> SourceError | SourceUnavailable:
        cause = db_cause(exc)
        if is_transient(exc):
            return SourceUnavailable(f"table {self.ref} ({doing})", cause)
        if isinstance(exc, sa_exc.IntegrityError) or sqlstate(exc) == "23505":
            return SourceError(
                f"table {self.ref}: {doing} failed, a prediction_id is already in the table or given "
                f"twice (ids are unique): {cause}"
            )
        return SourceError(f"table {self.ref}: {doing} failed: {cause}")


def copy_text(column: list[Any]) -> list[Any]:
    """A column ready for the COPY text: ``None`` as :data:`COPY_NULL`; a column holding one and
    the same value in every row (a batch's ``predicted_at``, ``model_version``) turned to text once,
    not once per row."""
    if not column:
        return column
    first = column[0]
    if first is not None and not isinstance(first, int | float | str) and column.count(first) == len(column):
        return [str(first)] * len(column)
    sample = next((v for v in column if v is not None), None)
    if isinstance(sample, bytes | bytearray | memoryview):
        # bytea's hex input form; csv would write Python's b'...' repr.
        return [COPY_NULL if v is None else "\\x" + bytes(v).hex() for v in column]
    if None in column:
        return [COPY_NULL if v is None else v for v in column]
    return column


class CsvStream:
    """A read-only text file of CSV rows made on demand from columns, so the client writes the
    next piece while the database is still reading the last one (the server runs in its own
    process), and a large batch is never held twice as text."""

    #: Bytes asked per read, and about how much text one read makes.
    PIECE = 1 << 16
    ROWS_PER_PIECE = 1_000

    def __init__(self, columns: list[list[Any]]) -> None:
        self.rows = zip(*columns, strict=True)
        self.left = ""
        self.done = False

    def read(self, size: int = -1) -> str:
        """Up to ``size`` characters (all when negative); empty at the end."""
        parts = [self.left]
        have = len(self.left)
        while not self.done and (size < 0 or have < size):
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            batch = list(itertools.islice(self.rows, self.ROWS_PER_PIECE))
            if not batch:
                self.done = True
                break
            writer.writerows(batch)
            text = buffer.getvalue()
            parts.append(text)
            have += len(text)
        data = "".join(parts)
        if size < 0 or len(data) <= size:
            self.left = ""
            return data
        self.left = data[size:]
        return data[:size]

    def readline(self) -> str:
        """Not used by the drivers' COPY; here for file-likeness."""
        return self.read()


def unknown_column(ref: TableRef, name: str, table: sa.Table) -> SourceError:
    """The error for a logged column that table ``ref`` does not have."""
    return SourceError(
        f"table {ref} has no column {name!r} (it has {', '.join(c.name for c in table.columns)}); "
        "log only those columns, or give new_columns='add' to add it"
    )
