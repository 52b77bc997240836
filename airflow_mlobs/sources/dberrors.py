"""Which database failures are worth retrying: an outage passes, a missing table does not.

:func:`is_transient` classifies a SQLAlchemy or DBAPI exception (psycopg2, psycopg 3, sqlite3):

- **transient** (a later try may succeed): the server refused or dropped the connection, a connect
  or statement timeout, a serialization failure or deadlock (SQLSTATE 40001, 40P01), a lock
  timeout, the server shutting down or starting up (57P01..57P03), too many connections (53300),
  SQLite's "database is locked" (``SQLITE_BUSY``, ``SQLITE_LOCKED``);
- **final** (the same input fails again): a missing table or column, a syntax error, permission
  denied, bad credentials, a type error, and anything not recognised as transient.

The SQLSTATE decides when the driver gives one (``orig.pgcode`` in psycopg2, ``orig.sqlstate`` in
psycopg 3); errors raised while connecting carry none in psycopg2, so then the exception class and
the server's message decide. :func:`source_failure` turns a failure into the error the gatherers
raise: ``SourceUnavailable`` (the operator retries the task) or ``SourceError`` (an ``error``
result, final).
"""

from __future__ import annotations

import re

from sqlalchemy import exc as sa_exc

from airflow_mlobs.core.errors import SourceError, SourceUnavailable

__all__ = [
    "TRANSIENT_SQLSTATES",
    "db_cause",
    "find_db_error",
    "is_out_of_range",
    "is_syntax_error",
    "is_transient",
    "is_value_error",
    "source_failure",
    "unsupported_dialect",
]

#: SQLSTATEs of failures that a later try can get past (PostgreSQL's codes; most are standard).
TRANSIENT_SQLSTATES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock_timeout)
        "57014",  # query_canceled (statement_timeout)
        "57P01",  # admin_shutdown
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now (starting up, shutting down, recovery)
        "53300",  # too_many_connections
        "25P03",  # idle_in_transaction_session_timeout
        "25P04",  # transaction_timeout
        "58P03",  # system error on a standby: recovery conflict (PostgreSQL 17 reports 40001 too)
    }
)
#: SQLSTATE classes whose every code is transient: 08 is "connection exception".
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08"})

# SQLite's result codes (Python 3.11+ puts the name on sqlite3 errors): busy or locked by another
# connection; SQLITE_BUSY_SNAPSHOT and the other extended codes start with these names.
_SQLITE_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED")

# Without an SQLSTATE: messages that say the credentials or the target are wrong (checked first,
# so "connection to server ... failed: FATAL: password authentication failed" is final) ...
_FINAL_MESSAGES = re.compile(
    r"authentication failed|password|no pg_hba\.conf entry|permission denied|"
    r"does not exist|unable to open database file|not authorized|access denied",
    re.IGNORECASE,
)
# ... and messages of an outage, a timeout or a lock.
_TRANSIENT_MESSAGES = re.compile(
    r"connection refused|could not connect|server closed the connection|"
    r"terminating connection|connection reset|broken pipe|connection timed out|timeout expired|"
    r"timed out|could not receive data|could not send data|no connection to the server|"
    r"connection (?:is |was |already )?closed|connection not open|lost connection|"
    r"server has gone away|the database system is (?:starting up|shutting down|in recovery mode)|"
    r"too many (?:clients|connections)|sorry, too many clients|database is locked|"
    r"database table is locked|temporary failure in name resolution|consuming input failed|"
    r"ssl syscall error|eof detected|canceling statement due to",
    re.IGNORECASE,
)
# SQLAlchemy's own errors that mean "the pool or the connection went away", not "your query".
_TRANSIENT_SQLALCHEMY = (sa_exc.DisconnectionError, sa_exc.TimeoutError)
# DBAPI classes that can carry an outage; a ProgrammingError or DataError never does.
_DBAPI_CONNECTION_CLASSES = ("OperationalError", "InterfaceError", "DatabaseError", "ConnectionTimeout")


def find_db_error(exc: BaseException) -> BaseException | None:
    """The SQLAlchemy or DBAPI exception in ``exc``'s cause chain (itself included), if any.

    Libraries that wrap database errors (Great Expectations, our own ``SourceError``) keep the
    original as ``__cause__`` or ``__context__``.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.SQLAlchemyError) or _is_dbapi_error(current):
            return current
        current = current.__cause__ or current.__context__
    return None


def _is_dbapi_error(exc: BaseException) -> bool:
    # PEP 249 drivers define their errors in their own module; match by module, not by import, so
    # drivers that are not installed cost nothing.
    module = type(exc).__module__ or ""
    return module.split(".")[0] in {"psycopg2", "psycopg", "sqlite3", "pymysql", "MySQLdb", "oracledb"}


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a DBAPI error (or of the one a SQLAlchemy error wraps), ``None`` when the
    driver gave none (psycopg2 gives none for errors raised while connecting)."""
    orig = getattr(exc, "orig", None) or exc
    for attribute in ("pgcode", "sqlstate"):
        code = getattr(orig, attribute, None)
        if isinstance(code, str) and len(code) == 5:
            return code
    diag = getattr(orig, "diag", None)
    code = getattr(diag, "sqlstate", None)
    return code if isinstance(code, str) and len(code) == 5 else None


def is_transient(exc: BaseException) -> bool:
    """Whether the database failure ``exc`` may pass by itself, so retrying the task makes sense.

    ``exc`` is a SQLAlchemy error, a DBAPI error, or an error whose cause chain holds one; anything
    else is not a database failure and is not transient. See the module docstring for the rules.
    """
    found = find_db_error(exc)
    if found is None:
        return False
    if isinstance(found, _TRANSIENT_SQLALCHEMY):
        return True
    code = sqlstate(found)
    if code is not None:
        return code in TRANSIENT_SQLSTATES or code[:2] in TRANSIENT_SQLSTATE_CLASSES
    orig = getattr(found, "orig", None) or found
    name = getattr(orig, "sqlite_errorname", None)
    if isinstance(name, str):
        return name.startswith(_SQLITE_TRANSIENT)
    # SQLAlchemy flags a DBAPI error the dialect recognised as a dropped connection.
    if getattr(found, "connection_invalidated", False):
        return True
    if type(orig).__name__ not in _DBAPI_CONNECTION_CLASSES and not isinstance(
        found, sa_exc.OperationalError | sa_exc.InterfaceError
    ):
        return False
    message = str(orig)
    if _FINAL_MESSAGES.search(message):
        return False
    return _TRANSIENT_MESSAGES.search(message) is not None


#: SQLSTATEs of a failure caused by one column's values or name, beyond the whole class 22 (data
#: exception: "value out of range: overflow" 22003, "invalid input syntax for type double
#: precision" 22P02, division by zero 22012 ...): an ambiguous (duplicate) or undefined column, a
#: type mismatch, no operator for the column's type.
_COLUMN_SQLSTATES = frozenset({"42702", "42703", "42804", "42883"})
_COLUMN_MESSAGES = re.compile(
    r"out of range|overflow|invalid input syntax|ambiguous|no such column|does not exist|"
    r"datatype mismatch|operator does not exist|could not convert",
    re.IGNORECASE,
)


def is_value_error(exc: BaseException) -> bool:
    """Whether the database failure ``exc`` is about a column's values or name (a data exception,
    SQLSTATE class 22; an ambiguous or undefined column; a type mismatch), so the gatherer can look
    for the column that causes it. Never true for an outage (:func:`is_transient`)."""
    found = find_db_error(exc)
    if found is None or is_transient(found):
        return False
    code = sqlstate(found)
    if code is not None:
        return code[:2] == "22" or code in _COLUMN_SQLSTATES
    orig = getattr(found, "orig", None) or found
    return _COLUMN_MESSAGES.search(str(orig)) is not None


def is_out_of_range(exc: BaseException) -> bool:
    """Whether ``exc`` is a double overflow or underflow the database raised ("value out of range:
    overflow", SQLSTATE 22003) instead of returning an infinity or 0."""
    found = find_db_error(exc)
    if found is None:
        return False
    code = sqlstate(found)
    if code is not None:
        return code == "22003"
    orig = getattr(found, "orig", None) or found
    return re.search(r"out of range", str(orig), re.IGNORECASE) is not None


_CREDENTIALS_IN_URL = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
_PASSWORD_SETTING = re.compile(r"(password\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def db_cause(exc: BaseException) -> str:
    """The database's own message in one line (the driver's, without SQLAlchemy's SQL and
    parameters), with any password in a URL or a ``password=`` setting replaced by ``***``."""
    found = find_db_error(exc) or exc
    orig = getattr(found, "orig", None)
    text = str(orig if orig is not None else found)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # psycopg2 puts "connection to server at ... failed:" and the reason on one line, and a hint
    # ("Is the server running ...?") on the next: keep both.
    line = " ".join(lines[:2]) if lines else type(found).__name__
    line = _CREDENTIALS_IN_URL.sub(r"\1***@", line)
    return _PASSWORD_SETTING.sub(r"\1***", line)


#: The drivers' codes for "the statement is not SQL this database speaks": SQLSTATE 42601
#: (syntax_error; PostgreSQL, Redshift, DuckDB) and 42000 (MySQL's syntax class), MySQL/MariaDB's
#: errors 1064 (ER_PARSE_ERROR) and 1149 (ER_SYNTAX_ERROR).
_SYNTAX_SQLSTATES = frozenset({"42601", "42000"})
_MYSQL_SYNTAX_ERRNOS = frozenset({1064, 1149})
_SYNTAX_MESSAGES = re.compile(
    r"syntax error|parser error|near \S+: syntax|error in your SQL syntax", re.IGNORECASE
)


def is_syntax_error(exc: BaseException) -> bool:
    """Whether the database refused ``exc``'s statement as SQL it does not speak (a syntax error),
    as opposed to a missing table, bad values or an outage."""
    found = find_db_error(exc)
    if found is None or is_transient(found):
        return False
    orig = getattr(found, "orig", None) or found
    code = sqlstate(found)
    if code is not None and code in _SYNTAX_SQLSTATES:
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and type(orig).__module__.split(".")[0] in {"pymysql", "MySQLdb"}:
        return args[0] in _MYSQL_SYNTAX_ERRNOS
    return _SYNTAX_MESSAGES.search(str(orig)) is not None


def unsupported_dialect(exc: BaseException, dialect: str, *, what: str) -> SourceError | None:
    """The clear error for a statement the database refused as a syntax error: it names the
    SQLAlchemy dialect, what was being read and the database's own message, and says which
    dialects are tested; ``None`` when ``exc`` is no syntax error (the caller handles it). Use as
    ``if (error := unsupported_dialect(exc, database_name(engine), what=...)): raise error from exc``."""
    if not is_syntax_error(exc):
        return None
    return SourceError(
        f"{what}: the database (SQLAlchemy dialect {dialect!r}) rejected the statement as a syntax "
        f"error: {db_cause(exc)}. Dialect {dialect!r} lacks a construct this check's SQL uses; the "
        "tested dialects are postgresql, sqlite, mysql/mariadb and duckdb (redshift compiled only)"
    )


def source_failure(exc: BaseException, message: str, *, what: str) -> SourceError | SourceUnavailable:
    """The error a gatherer raises for the database failure ``exc`` while reading ``what`` (e.g.
    ``"table public.events"``): ``SourceUnavailable`` when it is transient (the task is retried),
    else ``SourceError(message)`` (an ``error`` result). Use as ``raise source_failure(...) from exc``.
    """
    if is_transient(exc):
        return SourceUnavailable(what, db_cause(exc))
    return SourceError(message)
