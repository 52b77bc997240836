"""Airflow connections to SQLAlchemy engines, with errors that name the connection."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from airflow_mlobs import settings
from airflow_mlobs.core.errors import MlobsInputError, SourceError, SourceUnavailable
from airflow_mlobs.core.privacy import PseudonymKey


def engine_for_connection(conn_id: str) -> Engine:
    """A SQLAlchemy engine for an Airflow connection, through the connection type's SQL hook.

    Raises ``SourceError`` naming the connection when it is not defined or is not a SQL connection.
    Called at task run time only, never at DAG parse time.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException as exc:
        env = "AIRFLOW_CONN_" + conn_id.upper()
        raise SourceError(
            f"connection {conn_id!r} is not defined; add it in the Airflow UI, with "
            f"`airflow connections add {conn_id} ...`, or as the {env} environment variable"
        ) from exc
    try:
        hook: Any = connection.get_hook()  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise SourceError(
            f"connection {conn_id!r} (type {connection.conn_type!r}) has no usable hook: {exc}; "
            "install the Airflow provider for that database"
        ) from exc
    if not hasattr(hook, "get_sqlalchemy_engine"):
        raise SourceError(
            f"connection {conn_id!r} is of type {connection.conn_type!r}, which is not a SQL database connection"
        )
    try:
        return hook.get_sqlalchemy_engine()  # type: ignore[no-any-return]
    except Exception as exc:
        from airflow_mlobs.sources.dberrors import db_cause, is_transient

        # A hook that connects to build its engine may meet the database down: that is worth a retry.
        if is_transient(exc):
            raise SourceUnavailable("building its engine", db_cause(exc), connection=conn_id) from exc
        raise SourceError(f"connection {conn_id!r}: cannot build a SQLAlchemy engine: {exc}") from exc


def default_results_url() -> str:
    """``sqlite:///$AIRFLOW_HOME/mlobs_results.db``: the results history when no connection is set."""
    return settings.default_results_url()


def results_engine(results_conn_id: str | None) -> Engine:
    """The engine of the results history: the given connection, else ``[mlobs] results_conn_id``,
    else the default SQLite file (an error under a distributed executor: see :mod:`.settings`)."""
    conn_id = settings.results_conn_id(results_conn_id)
    if conn_id:
        return engine_for_connection(conn_id)
    # A busy timeout: parallel tasks of one LocalExecutor write the same file.
    return sa.create_engine(default_results_url(), connect_args={"timeout": 30})


def _about_a_file(message: str) -> bool:
    """Whether a ``SourceError`` message is about a file or path, not something read through a
    connection (``file x.csv does not exist``, ``path /data does not exist``, ``baseline file ...``)."""
    head = message.split(" ", 2)
    return bool(head) and (head[0] in ("file", "path", "directory") or " ".join(head[:2]) == "baseline file")


@contextmanager
def connected(conn_id: str) -> Iterator[Engine]:
    """An engine for ``conn_id`` for the duration of one check, disposed afterwards (sensors and
    triggers evaluate repeatedly). Bad-input errors raised inside name the connection."""
    engine = engine_for_connection(conn_id)
    try:
        yield engine
    except SourceError as exc:
        # A table, column or query read through the connection: name the connection. Errors about
        # anything else (a suite or contract file, a baseline file, a setting: other MlobsInputError
        # kinds, or a SourceError about a file or path) go on unprefixed.
        message = str(exc)
        if repr(conn_id) not in message and not _about_a_file(message):
            raise SourceError(f"connection {conn_id!r}: {message}") from exc
        raise
    except SourceUnavailable as exc:
        # The gatherers know the table, not the connection: name it, so the retry says which one.
        if exc.connection is None:
            raise exc.on_connection(conn_id) from exc
        raise
    finally:
        engine.dispose()


#: Where the pseudonym key is looked for when no key or connection is given.
PSEUDONYM_KEY_ENV = "MLOBS_PSEUDONYM_KEY"


def pseudonym_key(
    key: PseudonymKey | bytes | str | None = None,
    *,
    conn_id: str | None = None,
    env_var: str = PSEUDONYM_KEY_ENV,
) -> PseudonymKey:
    """The key for keyed pseudonyms (:mod:`airflow_mlobs.core.privacy`): ``key`` if given, else the
    password of Airflow connection ``conn_id``, else the environment variable ``env_var``
    (``MLOBS_PSEUDONYM_KEY``). Never stored or logged; a missing or short key is a ``SourceError``
    naming where it was looked for. Usable without Airflow when no ``conn_id`` is given."""
    if isinstance(key, PseudonymKey):
        return key
    if isinstance(key, bytes):
        return PseudonymKey(key)
    if isinstance(key, str) and key:
        return PseudonymKey.from_text(key)
    if conn_id:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            connection = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException as exc:
            raise SourceError(
                f"connection {conn_id!r} (the pseudonym key) is not defined; add it with the key as "
                f"its password, or set {env_var}"
            ) from exc
        if not connection.password:
            raise SourceError(
                f"connection {conn_id!r} (the pseudonym key) has no password: put the key there"
            )
        try:
            return PseudonymKey.from_text(connection.password)
        except MlobsInputError as exc:
            raise SourceError(f"connection {conn_id!r}: {exc}") from None
    text = os.environ.get(env_var, "")
    if not text:
        raise SourceError(
            f"no pseudonym key: set the {env_var} environment variable (or give key= or a key_conn_id "
            "whose password is the key); it is never stored"
        )
    try:
        return PseudonymKey.from_text(text)
    except MlobsInputError as exc:
        raise SourceError(f"{env_var}: {exc}") from None
