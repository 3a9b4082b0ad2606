"""What a ``CustomSQLQuery`` may run, judged by the database's own grammar (V2).

PostgreSQL: the exact text the server will receive (binds already rendered by psycopg2) is
parsed with ``pglast``, which is PostgreSQL's own parser. A hand-written scanner cannot follow
every lexical form (``E'\\''`` escapes, dollar quotes, nested comments, ``U&''`` strings), and
one wrong guess lets a ``;`` end the read-only transaction; the parser makes no guess. The
session also has ``standard_conforming_strings=on`` from connection start, so the server lexes
quotes exactly as ``pglast`` does.

SQLite: the sqlite3 module runs one statement per call by itself, and SQLite's authorizer, asked
by the engine for every action while a statement is prepared, refuses anything but reads.

Neither check is the only guard: the login is read-only and the session read-only and timed by
the server (``dp_resources.databases``). The checks give a clear error before the database does,
and shut the door on statements the login might still be allowed (``SELECT ... FOR UPDATE`` row
locks, calls that act outside the transaction).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Longest user SQL text parsed; a query is a page, not a data file.
MAX_SQL_CHARS = 1_000_000

#: Functions that act outside the transaction, so a read-only transaction does not contain them:
#: another connection (dblink), signals to other sessions, advisory locks that outlive the
#: statement, notifications. The login's rights are the real guard; this is a clear early error.
OUTSIDE_TRANSACTION = (
    "dblink",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_advisory",
    "pg_try_advisory",
    "pg_notify",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "lo_import",
    "lo_export",
    "set_config",
)


class UnsafeUserSQL(PermissionError):
    """User SQL refused before it ran: not one statement, not a read, or an unsafe login."""


def _parse_postgres(sql: str) -> Any:
    from pglast import parse_sql
    from pglast.parser import ParseError

    if "\x00" in sql:  # the C parser and libpq would both stop there: refuse rather than rely on it
        raise UnsafeUserSQL("user SQL contains a NUL character; remove it")
    if len(sql) > MAX_SQL_CHARS:
        raise UnsafeUserSQL(f"user SQL is {len(sql)} characters; at most {MAX_SQL_CHARS} are accepted")
    try:
        return parse_sql(sql)
    except ParseError as exc:
        raise UnsafeUserSQL(f"user SQL is not valid PostgreSQL: {exc}") from None
    except RecursionError:
        raise UnsafeUserSQL("user SQL is nested too deeply to check") from None


def _nodes(root: Any) -> Iterator[Any]:
    """Every AST node under ``root``, depth first, without recursion (a query may nest deeply)."""
    from pglast import ast

    stack = [root]
    while stack:
        value = stack.pop()
        if isinstance(value, ast.Node):
            yield value
            stack.extend(getattr(value, name, None) for name in value)  # a Node iterates its field names
        elif isinstance(value, (list, tuple)):
            stack.extend(value)


def _function_name(call: Any) -> str:
    return ".".join(str(getattr(part, "sval", "")) for part in call.funcname or ()).lower()


def _refusal(node: Any) -> str | None:
    """Why ``node`` has no place in a read-only query, or None."""
    from pglast import ast

    kind = type(node).__name__
    if isinstance(node, ast.SelectStmt):
        if node.intoClause is not None:
            return "SELECT ... INTO creates a table"
        if node.lockingClause:
            return "FOR UPDATE/SHARE takes row locks"
        return None
    if kind.endswith("Stmt"):  # INSERT/UPDATE/DELETE/MERGE (also inside WITH), COPY, SET, DO, ...
        return f"PostgreSQL parses a {kind} in it, not a query"
    if isinstance(node, ast.FuncCall):
        name = _function_name(node)
        bare = name.rsplit(".", 1)[-1]
        if bare.startswith(OUTSIDE_TRANSACTION):
            return f"{name}() acts outside the read-only transaction"
    return None


def check_postgres_sql(sql: str, *, read_only: bool) -> None:
    """Raise ``UnsafeUserSQL`` unless ``sql`` is one PostgreSQL statement (a read if ``read_only``).

    ``sql`` must be the text exactly as the server receives it.
    """
    statements = _parse_postgres(sql)
    if len(statements) != 1:
        raise UnsafeUserSQL(
            f"user SQL must be a single statement, PostgreSQL reads {len(statements)}: "
            "remove the ';' between statements"
        )
    if not read_only:
        return
    for node in _nodes(statements[0].stmt):
        reason = _refusal(node)
        if reason:
            raise UnsafeUserSQL(
                f"user SQL may only read on this connection, and {reason}; list the connection "
                "in writable_sql (DP_DB_WRITABLE_SQL) if its SQL is meant to write"
            )


def rendered_postgres_sql(conn: Any, sql: str, binds: dict[str, Any]) -> str:
    """The text psycopg2 sends for ``text(sql)`` with ``binds``: what the server will parse.

    SQLAlchemy turns ``:name`` into ``%(name)s`` wherever it appears (even inside a string
    literal), and psycopg2 then writes each value into the text as a quoted literal. Checking the
    rendered text, and sending exactly it, leaves no gap between what is checked and what runs.
    """
    import sqlalchemy as sa

    if conn.dialect.driver != "psycopg2":
        raise UnsafeUserSQL(
            f"user SQL on PostgreSQL needs the psycopg2 driver, not {conn.dialect.driver}: "
            "write the URL as postgresql+psycopg2://..."
        )
    compiled = sa.text(sql).compile(dialect=conn.dialect)
    params = compiled.construct_params(binds)
    from psycopg2.extensions import encodings

    raw = conn.connection.dbapi_connection
    with raw.cursor() as cursor:
        text = cursor.mogrify(compiled.string, params)
    return text.decode(encodings.get(raw.encoding, "utf8"))


# --- SQLite ------------------------------------------------------------------------------------

#: What a read may do, in SQLite's authorizer terms; everything else is denied while it runs.
SQLITE_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)
#: Names of SQLite's authorizer action codes, for the refusal message.
SQLITE_ACTION_NAMES = {
    getattr(sqlite3, f"SQLITE_{n}"): n
    for n in (
        "CREATE_INDEX CREATE_TABLE CREATE_TEMP_INDEX CREATE_TEMP_TABLE CREATE_TEMP_TRIGGER "
        "CREATE_TEMP_VIEW CREATE_TRIGGER CREATE_VIEW DELETE DROP_INDEX DROP_TABLE DROP_TEMP_INDEX "
        "DROP_TEMP_TABLE DROP_TEMP_TRIGGER DROP_TEMP_VIEW DROP_TRIGGER DROP_VIEW INSERT PRAGMA "
        "TRANSACTION UPDATE ATTACH DETACH ALTER_TABLE REINDEX ANALYZE CREATE_VTABLE DROP_VTABLE "
        "SAVEPOINT"
    ).split()
    if hasattr(sqlite3, f"SQLITE_{n}")
}


@contextmanager
def sqlite_reads_only(raw: sqlite3.Connection) -> Iterator[list[str]]:
    """SQLite's authorizer denies every action but reads while the block runs.

    Yields the list of refused actions (for the error message). The authorizer is the engine's
    own check, made as each statement is prepared, so no text is interpreted here.
    """
    refused: list[str] = []

    def authorize(action: int, arg1: Any, arg2: Any, database: Any, trigger: Any) -> int:
        if action in SQLITE_READ_ACTIONS:
            return sqlite3.SQLITE_OK
        refused.append(" ".join(str(p) for p in (SQLITE_ACTION_NAMES.get(action, action), arg1, arg2) if p is not None))
        return sqlite3.SQLITE_DENY

    raw.set_authorizer(authorize)
    try:
        yield refused
    finally:
        raw.set_authorizer(None)
