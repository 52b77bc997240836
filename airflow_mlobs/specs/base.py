"""What every spec shares: how it reaches a database without knowing about Airflow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import date, datetime
from typing import TYPE_CHECKING

from airflow_mlobs.core.errors import MlobsInputError
from airflow_mlobs.core.timeutil import parse_moment

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

Moment = datetime | date | str | None

Connector = Callable[[str], AbstractContextManager["Engine"]]
"""Opens an engine for a connection name (an Airflow ``conn_id`` or a SQLAlchemy URL) for the
duration of one check, disposing of it afterwards."""


def airflow_connector() -> Connector:
    """Airflow connections (:func:`airflow_mlobs.connections.connected`), imported only when a check
    runs, so that importing a spec never loads Airflow."""
    from airflow_mlobs.connections import connected

    return connected


@contextmanager
def url_connected(url: str) -> Iterator[Engine]:
    """An engine for a SQLAlchemy URL (the CLI's ``--url``), disposed afterwards."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def connector_or_default(connect: Connector | None) -> Connector:
    """The given connector, else Airflow connections."""
    return connect if connect is not None else airflow_connector()


def connection_label(conn_id: str | None) -> str:
    """How a result names a connection: the Airflow ``conn_id``, or for a SQLAlchemy URL (the CLI's,
    a notebook's) the URL with its password masked, so no secret reaches a stored result."""
    if conn_id is None or "://" not in conn_id:
        return str(conn_id)
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(conn_id).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: name it without what follows the scheme
        return conn_id.split("://", 1)[0] + "://..."


def source_label(
    conn_id: str | None, *, table: str | None = None, sql: str | None = None, path: object = None
) -> str:
    """How every check names its source: ``conn_id:table``, ``conn_id:query`` (the connection as
    :func:`connection_label` shows it), else the path."""
    if table:
        return f"{connection_label(conn_id)}:{table}"
    if sql:
        return f"{connection_label(conn_id)}:query"
    return str(path)


def window_bounds(
    dataset: str, start: Moment, end: Moment, what: str = "the window"
) -> tuple[datetime, datetime]:
    """``(start, end)`` parsed as aware moments (:func:`~airflow_mlobs.core.timeutil.parse_moment`);
    ``MlobsInputError`` naming ``dataset`` unless both are given and ``start < end``."""
    lo = parse_moment(start, f"{what} start")
    hi = parse_moment(end, f"{what} end")
    if lo is None or hi is None or not lo < hi:
        raise MlobsInputError(f"{dataset}: {what} must have start < end, got {start} to {end}")
    return lo, hi


def checked_input(dataset: str, check_settings: Callable[[str], None]) -> None:
    """Run ``check_settings(dataset)``; its ``ValueError`` becomes ``MlobsInputError`` (an ``error``
    result naming the dataset, not a crashed task)."""
    try:
        check_settings(dataset)
    except ValueError as exc:
        raise MlobsInputError(str(exc)) from exc
