"""Named databases for the table nodes: SQLAlchemy engines from URLs kept outside the specs.

A spec names a connection (``connection: warehouse``); the URL comes from this resource's
config or from the environment (``DP_DB_WAREHOUSE_URL``), so credentials never sit in a spec.

User SQL (``CustomSQLQuery``) gets its own connection (V2). Unless the connection is listed in
``writable_sql``, it runs in a read-only transaction with a statement timeout, as a single
statement, under a login that must not be a superuser: the deployment gives a read-only login's
URL (``DP_DB_WAREHOUSE_QUERY_URL``). A superuser session could switch back to any role from
inside a query (``set_config('role', ...)``), so ``SET ROLE`` alone is not a guard and such a
session is refused.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr


class DatabaseNotConfigured(RuntimeError):
    pass


class UnsafeUserSQL(PermissionError):
    """User SQL refused before it reached the database (several statements, unsafe login)."""


def _env_name(name: str, suffix: str) -> str:
    return f"DP_DB_{name.upper()}_{suffix}"


class DatabasesResource(dg.ConfigurableResource):
    """SQLAlchemy engines by connection name, made on first use and disposed after the run."""

    urls: dict[str, str] = Field(
        default_factory=dict,
        description="Connection name -> SQLAlchemy URL. A name not listed reads DP_DB_<NAME>_URL.",
    )
    query_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Connection name -> URL of a read-only login used for user SQL "
        "(CustomSQLQuery). Default DP_DB_<NAME>_QUERY_URL, else the main URL.",
    )
    writable_sql: list[str] = Field(
        default_factory=list,
        description="Connections whose user SQL may write: no read-only transaction, main login.",
    )
    read_only_role: str | None = Field(
        default=None,
        description="PostgreSQL role to SET LOCAL ROLE to for user SQL, on top of the read-only "
        "transaction (the login must be a member of it).",
    )
    statement_timeout_ms: int = Field(
        default=60_000, gt=0, description="Longest a user SQL statement may run, in ms."
    )

    _engines: dict[tuple[str, bool], Any] = PrivateAttr(default_factory=dict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # --- URLs and engines ----------------------------------------------------------------

    def url(self, name: str, *, query: bool = False) -> str:
        if query:
            url = self.query_urls.get(name) or os.environ.get(_env_name(name, "QUERY_URL"))
            if url:
                return url
        url = self.urls.get(name) or os.environ.get(_env_name(name, "URL"))
        if not url:
            raise DatabaseNotConfigured(
                f"database connection '{name}' is not configured: set {_env_name(name, 'URL')} "
                "or list it in the databases resource's `urls`"
            )
        return url

    def get_engine(self, name: str, *, query: bool = False) -> Any:
        """The engine of a named connection (``query=True``: the one for user SQL)."""
        import sqlalchemy as sa

        key = (name, query)
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = sa.create_engine(self.url(name, query=query), pool_pre_ping=True)
                if engine.dialect.name == "sqlite":
                    _transactional_sqlite(engine)
                self._engines[key] = engine
        return engine

    @contextmanager
    def connect(self, name: str) -> Iterator[Any]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        with self.get_engine(name).begin() as conn:
            yield conn

    def dispose(self) -> None:
        with self._lock:
            engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            engine.dispose()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.dispose()

    # --- user SQL ------------------------------------------------------------------------

    def is_writable(self, name: str) -> bool:
        return name in self.writable_sql

    @contextmanager
    def user_sql_connection(self, name: str) -> Iterator[Any]:
        """A connection for user SQL: read-only with a statement timeout unless writable."""
        writable = self.is_writable(name)
        engine = self.get_engine(name, query=not writable)
        dialect = engine.dialect.name
        with engine.connect() as conn:
            if dialect == "postgresql":
                with conn.begin():
                    if not writable:
                        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                        self._refuse_superuser(conn, name)
                        if self.read_only_role:
                            quoted = engine.dialect.identifier_preparer.quote(self.read_only_role)
                            conn.exec_driver_sql(f"SET LOCAL ROLE {quoted}")
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}")
                    yield conn
            elif dialect == "sqlite":
                with _sqlite_guard(conn, read_only=not writable, timeout_ms=self.statement_timeout_ms):
                    with conn.begin():
                        yield conn
            elif writable:
                with conn.begin():
                    yield conn
            else:
                raise UnsafeUserSQL(
                    f"read-only user SQL is supported on PostgreSQL and SQLite, not {dialect}; "
                    f"list '{name}' in writable_sql only if its login has read rights alone"
                )

    def _refuse_superuser(self, conn: Any, name: str) -> None:
        superuser = conn.exec_driver_sql(
            "SELECT rolsuper FROM pg_roles WHERE rolname = session_user"
        ).scalar()
        if superuser:
            raise UnsafeUserSQL(
                f"user SQL on connection '{name}' would run as a superuser, which can leave any "
                f"read-only role; give a read-only login's URL in {_env_name(name, 'QUERY_URL')}"
            )


def _transactional_sqlite(engine: Any) -> None:
    """Let SQLAlchemy, not the sqlite3 module, begin transactions, so DDL is transactional too.

    The documented pysqlite recipe: without it, ``CREATE``/``ALTER`` run outside the transaction
    and a failed table swap could leave a half-made table behind.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


@contextmanager
def _sqlite_guard(conn: Any, *, read_only: bool, timeout_ms: int) -> Iterator[None]:
    raw = conn.connection.driver_connection
    deadline = time.monotonic() + timeout_ms / 1000
    raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    if read_only:
        raw.execute("PRAGMA query_only = ON")
    try:
        yield
    finally:
        raw.set_progress_handler(None, 0)
        if read_only:
            raw.execute("PRAGMA query_only = OFF")


def single_statement(sql: str) -> str:
    """The SQL without a trailing ``;``; raise ``UnsafeUserSQL`` if it holds several statements.

    Quotes, quoted identifiers, dollar quotes and comments are skipped, so a ``;`` inside them
    does not count.
    """
    text = sql.strip()
    i, n = 0, len(text)
    last_code = -1
    while i < n:
        ch = text[i]
        if ch in "'\"":
            end = text.find(ch, i + 1)
            while end != -1 and end + 1 < n and text[end + 1] == ch:
                end = text.find(ch, end + 2)
            i = n if end == -1 else end + 1
            last_code = i - 1
            continue
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end == -1 else end + 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end == -1 else end + 2
            continue
        if ch == "$":
            tag_end = text.find("$", i + 1)
            tag = text[i : tag_end + 1] if tag_end != -1 else ""
            if tag and (tag == "$$" or tag[1:-1].replace("_", "a").isalnum()) and not tag[1].isdigit():
                end = text.find(tag, tag_end + 1)
                i = n if end == -1 else end + len(tag)
                last_code = i - 1
                continue
        if ch == ";":
            rest = text[i + 1 :].strip()
            if rest and not _only_comments(rest):
                raise UnsafeUserSQL("user SQL must be a single statement; remove the ';' between statements")
            return text[: i].strip()
        if not ch.isspace():
            last_code = i
        i += 1
    return text[: last_code + 1].strip() if last_code >= 0 else text


def _only_comments(text: str) -> bool:
    while text:
        text = text.lstrip()
        if text.startswith("--"):
            end = text.find("\n")
            text = "" if end == -1 else text[end + 1 :]
        elif text.startswith("/*"):
            end = text.find("*/")
            text = "" if end == -1 else text[end + 2 :]
        elif text.startswith(";"):
            text = text[1:]
        else:
            return False
    return True
