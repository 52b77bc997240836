"""``PredictionLogger``: the flight recorder of a model, with pseudonyms, redaction and sampling.

Writes each prediction (inputs, score, predicted class, model version, id, time) and later its
label into SQL tables through SQLAlchemy, in batches, in the layout of :mod:`.layout` that the
drift and performance checks read. Airflow-free: usable in a model service or a batch-scoring task
(the key is read from an Airflow connection only when ``key_conn_id`` is given, and then lazily).

Privacy, applied before anything is buffered, so a raw value never reaches the database:

- ``pseudonymize``: the values of these columns become keyed pseudonyms
  (:func:`airflow_mlobs.core.privacy.pseudonym`, HMAC-SHA256): stable across processes for one
  key, so predictions still join with labels and a person's rows can be found again; not
  reversible without the key. A missing value stays NULL. The key's fingerprint (``key_id``) is
  written once to the meta table, never the key.
- ``redact``: these columns are dropped (``redact_mode="drop"``, the default: nothing is stored) or
  kept with every value replaced by ``[redacted]`` (``redact_mode="replace"``: the column shows a
  field existed).
- ``sample``: a share in (0, 1]; a row is kept when ``core.privacy.sampled`` keeps the raw value of
  ``sample_by`` (default the prediction id). Deterministic: the same rows are kept in every
  process and run. Sampling by a subject column (``sample_by="customer_id"``) keeps all or none of
  a person's rows. Labels are sampled the same way: by their prediction id, or by the ``subject``
  value given with each label when sampling by a subject column.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_mlobs.core.errors import MlobsInputError, SourceError, SourceUnavailable
from airflow_mlobs.core.privacy import REDACTED, PseudonymKey, check_rate, id_text, pseudonym, sampled
from airflow_mlobs.core.timeutil import parse_moment
from airflow_mlobs.core.types import TableRef, parse_table_name
from airflow_mlobs.recorder import layout
from airflow_mlobs.recorder.writer import TableWriter

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 10_000
RedactMode = Literal["drop", "replace"]
NewColumns = Literal["error", "add"]
_MISSING_TYPES = frozenset({"NaTType", "NAType"})


class PredictionLogger:
    """Log predictions and labels to ``table`` and ``labels_table`` on ``engine`` (an Engine or a
    SQLAlchemy URL; a URL's engine is disposed at :meth:`close`).

    Rows are buffered and written every ``batch_size`` rows, at :meth:`flush`, and at :meth:`close`
    (also on leaving a ``with`` block). Thread-safe: one logger can serve many request threads.

    ``pseudonymize``, ``redact``/``redact_mode``, ``sample``/``sample_by``: see the module docstring.
    The key comes from :func:`airflow_mlobs.connections.pseudonym_key` (``key``, else the password
    of Airflow connection ``key_conn_id``, else the environment variable ``key_env_var``), read once
    when the logger is made; a missing or short key is a ``SourceError`` then.

    The tables are created on first write, from the first batch's columns and value types
    (``column_types`` declares a column's type instead, and is needed for a feature whose values
    are all missing in the first batch). A later column the table lacks is an error naming the
    table and the column (``new_columns="error"``, the default: a typo does not grow the table), or
    is added as a nullable column (``new_columns="add"``). ``fast_copy`` allows PostgreSQL's COPY.

    ``flush_every`` (seconds) starts a background thread that flushes at that interval, so a quiet
    model service's rows do not wait in memory for the next batch; its failures are logged (a
    database that is away keeps the rows for the next try), and :meth:`close` stops it.
    """

    def __init__(
        self,
        engine: Engine | str,
        *,
        table: str = layout.DEFAULT_TABLE,
        labels_table: str = layout.DEFAULT_LABELS_TABLE,
        schema: str | None = None,
        model_version: str | None = None,
        pseudonymize: Sequence[str] = (),
        redact: Sequence[str] = (),
        redact_mode: RedactMode = "drop",
        sample: float = 1.0,
        sample_by: str = layout.PREDICTION_ID,
        key: PseudonymKey | bytes | str | None = None,
        key_conn_id: str | None = None,
        key_env_var: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        column_types: Mapping[str, Any] | None = None,
        new_columns: NewColumns = "error",
        fast_copy: bool = True,
        flush_every: float | None = None,
    ) -> None:
        self.ref = parse_table_name(table, schema)
        self.labels_ref = parse_table_name(labels_table, self.ref.schema if schema is None else schema)
        where = f"table {self.ref}"
        self.pseudonymized = tuple(dict.fromkeys(_names(pseudonymize, "pseudonymize", where)))
        self.redacted = tuple(dict.fromkeys(_names(redact, "redact", where)))
        both = set(self.pseudonymized) & set(self.redacted)
        if both:
            raise MlobsInputError(f"{where}: column {sorted(both)[0]!r} is both pseudonymized and redacted")
        reserved = set(layout.RESERVED) - {layout.PREDICTION_ID}
        for name in (*self.pseudonymized, *self.redacted):
            if name in reserved or (name == layout.PREDICTION_ID and name in self.redacted):
                raise MlobsInputError(
                    f"{where}: column {name!r} is the log's own column; it cannot be hidden"
                )
        if redact_mode not in ("drop", "replace"):
            raise MlobsInputError(f"{where}: redact_mode must be 'drop' or 'replace', got {redact_mode!r}")
        if new_columns not in ("error", "add"):
            raise MlobsInputError(f"{where}: new_columns must be 'error' or 'add', got {new_columns!r}")
        try:
            check_rate(sample)
        except MlobsInputError as exc:
            raise MlobsInputError(f"{where}: {exc}") from None
        if not isinstance(sample_by, str) or not sample_by:
            raise MlobsInputError(f"{where}: sample_by must be a column name, got {sample_by!r}")
        if sample_by in reserved:
            raise MlobsInputError(
                f"{where}: sample_by={sample_by!r}: sample by the prediction id or a feature column"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise MlobsInputError(f"{where}: batch_size must be an integer >= 1, got {batch_size!r}")
        self.redact_mode: RedactMode = redact_mode
        self.sample = float(sample)
        self.sample_by = sample_by
        self.batch_size = batch_size
        self.model_version = model_version
        self.column_types = {
            name: layout.declared_type(kind, column=name, table=str(self.ref))
            for name, kind in (column_types or {}).items()
        }
        self.key: PseudonymKey | None = None
        if self.pseudonymized:
            from airflow_mlobs.connections import PSEUDONYM_KEY_ENV, pseudonym_key

            try:
                self.key = pseudonym_key(key, conn_id=key_conn_id, env_var=key_env_var or PSEUDONYM_KEY_ENV)
            except MlobsInputError as exc:
                raise SourceError(f"{where}: pseudonymize={list(self.pseudonymized)}: {exc}") from None
        self.owns_engine = isinstance(engine, str)
        self.engine: Engine = sa.create_engine(engine) if isinstance(engine, str) else engine
        self.predictions = TableWriter(
            self.engine,
            self.ref,
            factory=self._log_table,
            required=(layout.PREDICTION_ID, layout.PREDICTED_AT),
            new_columns=new_columns,
            typer=self._column_type,
            fast=fast_copy,
        )
        self.labels = TableWriter(
            self.engine,
            self.labels_ref,
            factory=self._labels_table,
            required=(layout.PREDICTION_ID, layout.LABEL, layout.LABELLED_AT),
            typer=self._column_type,
            fast=fast_copy,
        )
        self._lock = threading.RLock()
        self._pending: list[dict[str, list[Any]]] = []
        self._pending_labels: list[dict[str, list[Any]]] = []
        self._pending_rows = 0
        self._looked = False
        self._meta_written = False
        self.closed = False
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        #: Rows given to :meth:`log`/:meth:`log_batch`, kept by sampling, and written so far.
        self.rows_seen = 0
        self.rows_kept = 0
        self.rows_written = 0
        self.labels_written = 0
        # Last: the thread may flush as soon as it starts.
        if flush_every is not None:
            if (
                isinstance(flush_every, bool)
                or not isinstance(flush_every, int | float)
                or not flush_every > 0
            ):
                raise MlobsInputError(
                    f"{where}: flush_every must be a number of seconds > 0, got {flush_every!r}"
                )
            self._flusher = threading.Thread(
                target=self._flush_periodically,
                args=(float(flush_every),),
                name=f"mlobs-flush-{self.ref}",
                daemon=True,
            )
            self._flusher.start()

    def __repr__(self) -> str:
        key = f", key_id={self.key.key_id}" if self.key is not None else ""
        return f"PredictionLogger(table={self.ref}, sample={self.sample}{key})"

    # -- logging -------------------------------------------------------------------------------

    def log(
        self,
        features: Mapping[str, Any],
        *,
        score: float | None = None,
        predicted_class: Any = None,
        prediction_id: Any = None,
        predicted_at: datetime | str | None = None,
        model_version: str | None = None,
        attributions: Mapping[str, float | None] | None = None,
    ) -> str:
        """Log one prediction; returns its prediction id (the given one as text, or a new uuid4
        hex), also when sampling leaves the row out, so the caller can log its label later.
        ``attributions``: one attribution (SHAP value or similar) per feature, see :meth:`log_batch`."""
        ids = self.log_batch(
            {name: [value] for name, value in features.items()},
            scores=[score],
            predicted_classes=[predicted_class],
            prediction_ids=[prediction_id],
            predicted_at=predicted_at,
            model_version=model_version,
            attributions=None if attributions is None else {f: [a] for f, a in attributions.items()},
        )
        return ids[0]

    def log_batch(
        self,
        features: Mapping[str, Collection[Any]] | Any,
        *,
        scores: Collection[Any] | None = None,
        predicted_classes: Collection[Any] | None = None,
        prediction_ids: Collection[Any] | None = None,
        predicted_at: datetime | str | Collection[Any] | None = None,
        model_version: str | None = None,
        attributions: Mapping[str, Collection[Any]] | Any = None,
    ) -> list[str]:
        """Log many predictions given by column: ``features`` maps a column to its values (or is a
        pandas DataFrame); the other sequences have one value per row (``None`` for none).
        ``predicted_at`` is one moment for all rows, one per row, or ``None`` (now, UTC). Returns
        the prediction ids in row order.

        ``attributions`` maps a feature to one attribution per row (numbers or ``None``; or is a
        DataFrame), stored in the column ``attr__<feature>``
        (:func:`~airflow_mlobs.recorder.layout.attribution_column`), which
        ``AttributionDriftCheckOperator`` reads. An attribution can reveal its feature's value (a
        linear model's SHAP value is ``w (x - mean)``), so the attribution of a redacted feature is
        redacted with it (dropped, or ``[redacted]``); ``redact=["attr__x"]`` redacts one alone."""
        self._check_open()
        columns = _columns(features, f"table {self.ref}")
        if attributions is not None:
            columns.update(self._attribution_columns(attributions, columns))
        n = (
            len(next(iter(columns.values())))
            if columns
            else _length(scores, predicted_classes, prediction_ids)
        )
        where = f"table {self.ref}"
        for name, values in columns.items():
            if name in layout.RESERVED:
                raise MlobsInputError(
                    f"{where}: feature {name!r} has the name of the log's own column; rename it"
                )
            if len(values) != n:
                raise MlobsInputError(f"{where}: column {name!r} has {len(values)} values, expected {n}")
        ids = self._ids(prediction_ids, n)
        raw_by: Collection[Any] | None = (
            ids if self.sample_by == layout.PREDICTION_ID else columns.get(self.sample_by)
        )
        if raw_by is None and self.sample < 1.0:
            raise MlobsInputError(
                f"{where}: sample_by column {self.sample_by!r} is not among the logged columns"
            )
        keep = self._keep(raw_by, where, self.sample_by) if raw_by is not None and self.sample < 1.0 else None
        row: dict[str, list[Any]] = {
            layout.PREDICTION_ID: ids,
            layout.PREDICTED_AT: self._moments(predicted_at, n, layout.PREDICTED_AT),
            layout.MODEL_VERSION: [model_version or self.model_version] * n,
            layout.SCORE: _values(scores, n, layout.SCORE, where, number=True),
            layout.PREDICTED_CLASS: _values(predicted_classes, n, layout.PREDICTED_CLASS, where),
        }
        for name, values in columns.items():
            if name not in self.redacted or self.redact_mode == "replace":
                row[name] = _clean(values)
        if keep is not None:
            # Sample first: only the kept rows are pseudonymized.
            row = {name: [v for v, k in zip(values, keep, strict=True) if k] for name, values in row.items()}
        for name in row:
            if name in self.redacted:
                row[name] = [None if v is None else REDACTED for v in row[name]]
            elif name in self.pseudonymized:
                row[name] = self._pseudonyms(row[name])
        kept = len(row[layout.PREDICTION_ID])
        with self._lock:
            self._check_columns(list(row))
            self.rows_seen += n
            self.rows_kept += kept
            if kept:
                self._append(self._pending, row)
                self._pending_rows += kept
            if self._pending_rows >= self.batch_size:
                self._flush_locked()
        return [str(v) for v in ids]

    def _attribution_columns(
        self, attributions: Any, features: Mapping[str, list[Any]]
    ) -> dict[str, list[Any]]:
        """The ``attr__<feature>`` columns of ``attributions``, checked to be numbers, with the
        attributions of redacted features redacted (see :meth:`log_batch`)."""
        where = f"table {self.ref}"
        given = _columns(attributions, where)
        n = len(next(iter(features.values()))) if features else len(next(iter(given.values()), []))
        out: dict[str, list[Any]] = {}
        for feature, values in given.items():
            column = layout.attribution_column(feature)
            if column in features:
                raise MlobsInputError(
                    f"{where}: feature {column!r} clashes with the attribution column of {feature!r}"
                )
            checked = _values(values, n, f"attribution of {feature!r}", where, number=True)
            if feature in self.redacted and column not in self.redacted:
                if self.redact_mode == "drop":
                    continue
                checked = [None if v is None else REDACTED for v in checked]
            out[column] = checked
        return out

    def log_label(
        self,
        prediction_id: Any,
        label: Any,
        *,
        labelled_at: datetime | str | None = None,
        subject: Any = None,
    ) -> None:
        """Log the label of one prediction (``subject``: the ``sample_by`` value of its prediction,
        needed when sampling by a subject column)."""
        self.log_labels(
            [prediction_id], [label], labelled_at=labelled_at, subjects=None if subject is None else [subject]
        )

    def log_labels(
        self,
        prediction_ids: Collection[Any],
        labels: Collection[Any],
        *,
        labelled_at: datetime | str | Collection[Any] | None = None,
        subjects: Collection[Any] | None = None,
    ) -> None:
        """Log labels into the labels table; ids are pseudonymized like the predictions' ids, and
        sampled like them (by prediction id, or by ``subjects`` when sampling by a subject column)."""
        self._check_open()
        where = f"table {self.labels_ref}"
        n = len(prediction_ids)
        if len(labels) != n:
            raise MlobsInputError(f"{where}: {len(labels)} labels for {n} prediction ids")
        ids = [self._given_id(v, where) for v in prediction_ids]
        keep = None
        if self.sample < 1.0:
            if self.sample_by == layout.PREDICTION_ID:
                keep = self._keep(ids, where, layout.PREDICTION_ID)
            elif subjects is None or len(subjects) != n:
                raise MlobsInputError(
                    f"{where}: the predictions are sampled by {self.sample_by!r}: give each label's "
                    f"{self.sample_by} value as subject (subjects=[...], one per label)"
                )
            else:
                keep = self._keep(list(subjects), where, self.sample_by)
        row = {
            layout.PREDICTION_ID: ids,
            layout.LABEL: _clean(labels.tolist() if hasattr(labels, "tolist") else list(labels)),
            layout.LABELLED_AT: self._moments(labelled_at, n, layout.LABELLED_AT),
        }
        if keep is not None:
            row = {name: [v for v, k in zip(values, keep, strict=True) if k] for name, values in row.items()}
        if layout.PREDICTION_ID in self.pseudonymized:
            row[layout.PREDICTION_ID] = self._pseudonyms(row[layout.PREDICTION_ID])
        with self._lock:
            if row[layout.PREDICTION_ID]:
                self._append(self._pending_labels, row)
                self._pending_rows += len(row[layout.PREDICTION_ID])
            if self._pending_rows >= self.batch_size:
                self._flush_locked()

    # -- writing -------------------------------------------------------------------------------

    def flush(self) -> int:
        """Write everything buffered; returns the prediction rows written. A database that is
        away (``SourceUnavailable``) keeps the rows buffered for the next flush; any other failure
        (``SourceError`` naming the table) drops the failed batch, and says how many rows."""
        with self._lock:
            return self._flush_locked()

    def close(self) -> None:
        """Flush, then release the engine when the logger made it. Idempotent."""
        if self.closed:
            return
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        try:
            self.flush()
        finally:
            self.closed = True
            if self.owns_engine:
                self.engine.dispose()

    def _flush_periodically(self, seconds: float) -> None:
        while not self._stop.wait(seconds):
            try:
                self.flush()
            except (SourceError, SourceUnavailable) as exc:
                log.warning("Background flush of %s failed: %s", self.ref, exc)
            except Exception:
                log.exception("Background flush of %s failed", self.ref)

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _flush_locked(self) -> int:
        try:
            written = self._write(self.predictions, "_pending")
            if written:
                self.rows_written += written
                self._write_meta()
            self.labels_written += self._write(self.labels, "_pending_labels")
        finally:
            self._pending_rows = sum(_rows(c) for c in self._pending + self._pending_labels)
        return written

    def _write(self, writer: TableWriter, attribute: str) -> int:
        """Write the chunks buffered in ``attribute``: kept for the next flush when the database
        is away (``SourceUnavailable``), dropped on any other failure (bad input: it would fail
        again)."""
        chunks: list[dict[str, list[Any]]] = getattr(self, attribute)
        if not chunks:
            return 0
        setattr(self, attribute, [])
        try:
            return writer.write(chunks)
        except SourceUnavailable:
            setattr(self, attribute, chunks + getattr(self, attribute))
            raise

    def _write_meta(self) -> None:
        """One row per treatment in ``<table>_meta``, once per logger (duplicates are skipped)."""
        if self._meta_written:
            return
        entries = [
            (name, "pseudonym", self.key.key_id if self.key else "", "") for name in self.pseudonymized
        ]
        entries += [
            (name, "redacted" if self.redact_mode == "replace" else "dropped", "", "")
            for name in self.redacted
        ]
        if self.sample < 1.0:
            entries.append((self.sample_by, "sampled", "", repr(self.sample)))
        if entries:
            meta_ref = TableRef(self.ref.name + layout.META_SUFFIX, self.ref.schema)
            table = layout.meta_table(meta_ref.name, meta_ref.schema)
            # Another writer may create it in the meantime: the inserts below tell.
            with contextlib.suppress(sa.exc.SQLAlchemyError):
                table.create(self.engine, checkfirst=True)
            now = datetime.now(UTC)
            for name, treatment, key_id, detail in entries:
                values = {
                    "log_table": self.ref.name,
                    "column_name": name,
                    "treatment": treatment,
                    "key_id": key_id,
                    "detail": detail,
                }
                try:
                    with self.engine.begin() as conn:
                        found = conn.execute(
                            sa.select(sa.func.count())
                            .select_from(table)
                            .where(*(table.c[k] == v for k, v in values.items()))
                        ).scalar()
                        if not found:
                            conn.execute(table.insert().values(**values, recorded_at=now))
                except sa.exc.IntegrityError:
                    pass  # another writer recorded the same treatment at the same moment
                except sa.exc.SQLAlchemyError as exc:
                    # The predictions are in; the note of their treatment is tried again next flush.
                    log.warning(
                        "Could not record the treatments in %s (next flush tries again): %s", meta_ref, exc
                    )
                    return
        self._meta_written = True

    def _append(self, pending: list[dict[str, list[Any]]], row: dict[str, list[Any]]) -> None:
        last = pending[-1] if pending else None
        if last is not None and list(last) == list(row):
            for name, values in row.items():
                last[name].extend(values)
        else:
            pending.append({name: list(values) for name, values in row.items()})

    def _check_columns(self, names: list[str]) -> None:
        if not self._looked:
            try:
                self.predictions.look()
                self._looked = True
            except SourceUnavailable:
                pass  # the database is away: buffer anyway, the flush checks (and retries) later
        self.predictions.check_columns(names)

    def _check_open(self) -> None:
        if self.closed:
            raise MlobsInputError(f"table {self.ref}: this PredictionLogger is closed")

    # -- values --------------------------------------------------------------------------------

    def _pseudonyms(self, values: list[Any]) -> list[Any]:
        """The keyed pseudonyms of ``values`` (a missing value stays ``None``)."""
        key = self.key
        assert key is not None  # pseudonymized columns need the key, read in __init__
        return [None if v is None else pseudonym(v, key) for v in values]

    def _ids(self, given: Collection[Any] | None, n: int) -> list[str]:
        if given is None:
            return new_ids(n)
        if len(given) != n:
            raise MlobsInputError(f"table {self.ref}: {len(given)} prediction ids for {n} rows")
        return [uuid.uuid4().hex if v is None else self._given_id(v, f"table {self.ref}") for v in given]

    def _given_id(self, value: Any, where: str) -> str:
        try:
            text = id_text(value)
        except MlobsInputError:
            text = ""
        if not text:
            raise MlobsInputError(f"{where}: a prediction_id is missing or empty ({value!r})")
        return text

    def _keep(self, raw: Collection[Any], where: str, column: str) -> list[bool]:
        keep = []
        for value in raw:
            try:
                keep.append(sampled(value, self.sample))
            except MlobsInputError:
                raise MlobsInputError(
                    f"{where}: column {column!r} (sample_by) has a missing value; every row needs one "
                    "to be sampled"
                ) from None
        return keep

    def _moments(self, value: datetime | str | Collection[Any] | None, n: int, name: str) -> list[datetime]:
        where = f"table {self.ref}: {name}"
        if value is None:
            return [datetime.now(UTC)] * n
        if isinstance(value, datetime | date | str):
            return [_moment(value, where)] * n
        if not hasattr(value, "__len__"):
            raise MlobsInputError(f"{where}: expected an ISO 8601 timestamp, got {type(value).__name__}")
        values = value.tolist() if hasattr(value, "tolist") else list(value)
        if len(values) != n:
            raise MlobsInputError(f"{where}: {len(values)} moments for {n} rows")
        now = datetime.now(UTC)
        return [now if v is None else _moment(v, where) for v in values]

    def _column_type(self, name: str, values: list[Any]) -> sa.types.TypeEngine[Any]:
        if name in self.column_types:
            return self.column_types[name]
        if name in self.redacted:
            return sa.Text()
        if name in self.pseudonymized:
            return sa.Text()
        kind = layout.inferred_type(_kinds(values), column=name, table=str(self.ref))
        if kind is None:
            raise SourceError(
                f"table {self.ref}: column {name!r} has no value in the first batch, so its type is "
                f"unknown; declare it: column_types={{{name!r}: float}} (or int, str, bool, datetime)"
            )
        return kind

    def _log_table(self, columns: dict[str, list[Any]]) -> sa.Table:
        features = {
            name: self._column_type(name, values)
            for name, values in columns.items()
            if name not in layout.RESERVED
        }
        classes = columns.get(layout.PREDICTED_CLASS, [])
        predicted = self.column_types.get(layout.PREDICTED_CLASS) or layout.inferred_type(
            _kinds(classes), column=layout.PREDICTED_CLASS, table=str(self.ref)
        )
        return layout.log_table(self.ref.name, self.ref.schema, features, predicted or sa.Text())

    def _labels_table(self, columns: dict[str, list[Any]]) -> sa.Table:
        label = self.column_types.get(layout.LABEL) or layout.inferred_type(
            _kinds(columns.get(layout.LABEL, [])), column=layout.LABEL, table=str(self.labels_ref)
        )
        return layout.labels_table(self.labels_ref.name, self.labels_ref.schema, label or sa.Text())


_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def new_ids(n: int) -> list[str]:
    """``n`` random uuid4 ids as hex (what ``uuid.uuid4().hex`` gives), from one ``os.urandom``
    call: the version digit set to 4 and the variant digit to 8-b, five times faster than
    ``uuid4()`` per id."""
    if n < 8:
        return [uuid.uuid4().hex for _ in range(n)]
    digits = os.urandom(16 * n).hex()
    return [
        f"{digits[i : i + 12]}4{digits[i + 13 : i + 16]}{_VARIANT[digits[i + 16]]}{digits[i + 17 : i + 32]}"
        for i in range(0, 32 * n, 32)
    ]


def _names(value: Sequence[str], argument: str, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    names = list(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise MlobsInputError(f"{where}: {argument} must list column names, got {name!r}")
    return names


def _columns(features: Any, where: str) -> dict[str, list[Any]]:
    """Column name -> list of values, from a mapping of sequences or a DataFrame."""
    if (
        hasattr(features, "columns")
        and hasattr(features, "__getitem__")
        and not isinstance(features, Mapping)
    ):
        return {str(name): features[name].tolist() for name in features.columns}
    if not isinstance(features, Mapping):
        raise MlobsInputError(
            f"{where}: features must map column names to values, got {type(features).__name__}"
        )
    out = {}
    for name, values in features.items():
        if not isinstance(name, str) or not name:
            raise MlobsInputError(f"{where}: a feature column name must be text, got {name!r}")
        out[name] = values.tolist() if hasattr(values, "tolist") else list(values)
    return out


def _length(*sequences: Collection[Any] | None) -> int:
    for sequence in sequences:
        if sequence is not None:
            return len(sequence)
    return 0


def _values(
    values: Collection[Any] | None, n: int, name: str, where: str, *, number: bool = False
) -> list[Any]:
    if values is None:
        return [None] * n
    out = _clean(values.tolist() if hasattr(values, "tolist") else list(values))
    if len(out) != n:
        raise MlobsInputError(f"{where}: {len(out)} values of {name} for {n} rows")
    if number:
        for value in out:
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise MlobsInputError(f"{where}: {name} must be a number or None, got {value!r}")
    return out


def _kinds(values: Iterable[Any]) -> set[type]:
    kinds = set(map(type, values))  # map: about twice as fast as a comprehension with a test
    kinds.discard(type(None))
    return kinds


def _clean(values: list[Any]) -> list[Any]:
    """Plain Python values: numpy scalars as Python ones, pandas' NaT/NA and the NaN of a
    non-float column as ``None``, aware datetimes in UTC (naive ones taken as UTC)."""
    kinds = _kinds(values)
    if kinds <= {int, float, bool, str}:
        if float in kinds and kinds & {str}:
            return [None if isinstance(v, float) and math.isnan(v) else v for v in values]
        return values
    out: list[Any] = []
    for v in values:
        if v is None or type(v).__name__ in _MISSING_TYPES:
            out.append(None)
        elif isinstance(v, datetime):
            out.append(v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC))
        elif hasattr(v, "item") and callable(v.item) and not isinstance(v, bytes | str):
            out.append(v.item())
        else:
            out.append(v)
    if float in _kinds(out) and _kinds(out) - {int, float, bool}:
        out = [None if isinstance(v, float) and math.isnan(v) else v for v in out]
    return out


def _moment(value: Any, where: str) -> datetime:
    if isinstance(value, datetime) and not isinstance(value, str):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    moment = parse_moment(value, where)
    if moment is None:
        raise MlobsInputError(f"{where}: an empty moment")
    return moment


def _rows(chunk: dict[str, list[Any]]) -> int:
    return len(next(iter(chunk.values()))) if chunk else 0
