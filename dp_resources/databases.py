"""Named databases for the table nodes: SQLAlchemy engines from URLs kept outside the specs.

A spec names a connection (``connection: warehouse``); the URL comes from this resource's
config or from the environment (``DP_DB_WAREHOUSE_URL``), so credentials never sit in a spec.

User SQL (``CustomSQLQuery``) gets its own engine (V2). Unless the connection is listed in
``writable_sql`` (or ``DP_DB_WRITABLE_SQL``), it is read-only three times over:

- the text is one read statement, judged by the database's grammar (``dp_resources.user_sql``);
- on PostgreSQL it runs under a dedicated read-only login (``DP_DB_WAREHOUSE_QUERY_URL``): not a
  superuser, not the writer's login, with no write right on any table. A superuser can leave
  any role from inside a query (``set_config('role', ...)``) and a statement that ends the
  transaction leaves ``SET LOCAL ROLE`` behind, so neither is a guard by itself;
- the server applies ``default_transaction_read_only`` and ``statement_timeout`` from the
  moment the session starts (libpq ``options``), on a connection used once (no pool), so even a
  statement that managed to end the transaction would still be read-only and timed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from dp_resources.user_sql import (
    UnsafeUserSQL,
    check_postgres_sql,
    rendered_postgres_sql,
    sqlite_reads_only,
)
from dp_settings import current, load

__all__ = ["DatabaseNotConfigured", "DatabasesResource", "UnsafeUserSQL", "writable_sql_from_env"]

#: Connections whose user SQL may write, comma-separated (the deployment's ``writable_sql``).
WRITABLE_SQL_ENV = "DP_DB_WRITABLE_SQL"


class DatabaseNotConfigured(RuntimeError):
    pass


def writable_sql_from_env(environ: Any = None) -> set[str]:
    """``DP_DB_WRITABLE_SQL`` of ``environ`` (default: the settings in force)."""
    return set((current() if environ is None else load(environ)).db.writable_sql)


def _env_name(name: str, suffix: str) -> str:
    return f"DP_DB_{name.upper()}_{suffix}"


class DatabasesResource(dg.ConfigurableResource):
    """SQLAlchemy engines by connection name, made on first use and disposed after the run.

    A connection not listed here follows the settings in force when it is used
    (:func:`dp_settings.current`: Dagster calls resources in the run, with no settings of ours).
    """

    urls: dict[str, str] = Field(
        default_factory=dict,
        description="Connection name -> SQLAlchemy URL. A name not listed reads DP_DB_<NAME>_URL.",
    )
    query_urls: dict[str, str] = Field(
        default_factory=dict,
        description="Connection name -> URL of the read-only login used for user SQL "
        "(CustomSQLQuery). Default DP_DB_<NAME>_QUERY_URL; required on PostgreSQL unless the "
        "connection is writable (SQLite falls back to the main URL, opened read-only).",
    )
    writable_sql: list[str] = Field(
        default_factory=list,
        description="Connections whose user SQL may write: no read-only transaction, main login. "
        "DP_DB_WRITABLE_SQL (comma-separated) adds to it.",
    )
    read_only_role: str | None = Field(
        default=None,
        description="PostgreSQL role to SET LOCAL ROLE to for user SQL, an extra layer on top of "
        "the read-only login (never instead of it: the login must itself be read-only).",
    )
    statement_timeout_ms: int = Field(default=60_000, gt=0, description="Longest a user SQL statement may run, in ms.")

    _engines: dict[tuple[str, Any], Any] = PrivateAttr(default_factory=dict)
    _checked_logins: set[str] = PrivateAttr(default_factory=set)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    # --- URLs and engines ----------------------------------------------------------------

    def url(self, name: str, *, query: bool = False) -> str:
        if query:
            url = self.query_urls.get(name) or current().db.query_url(name)
            if url:
                return url
        url = self.urls.get(name) or current().db.url(name)
        if not url:
            raise DatabaseNotConfigured(
                f"database connection '{name}' is not configured: set {_env_name(name, 'URL')} "
                "or list it in the databases resource's `urls`"
            )
        return url

    def get_engine(self, name: str) -> Any:
        """The engine of a named connection, for the nodes' own statements (never user SQL)."""
        import sqlalchemy as sa

        key = (name, "main")
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                engine = sa.create_engine(self.url(name), pool_pre_ping=True)
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
        return name in self.writable_sql or name in writable_sql_from_env()

    def has_query_login(self, name: str) -> bool:
        """Whether a separate login is configured for the connection's user SQL."""
        return bool(self.query_urls.get(name) or current().db.query_url(name))

    def _user_sql_engine(self, name: str, writable: bool) -> Any:
        """The engine of a connection's user SQL: its own login, server-side limits, no pool.

        Each query gets a fresh session, so nothing a query sets (``set_config(..., false)``, an
        advisory lock) reaches the next one, and the session's settings come from the server at
        start, whatever the query does within its transaction.
        """
        import sqlalchemy as sa

        key = (name, "writable" if writable else "read-only")
        with self._lock:
            engine = self._engines.get(key)
            if engine is None:
                url = self.url(name, query=not writable)
                options: dict[str, Any] = {"poolclass": sa.pool.NullPool}
                if sa.make_url(url).get_backend_name() == "postgresql":
                    options["connect_args"] = {"options": self._session_options(writable)}
                engine = sa.create_engine(url, **options)
                if engine.dialect.name == "sqlite":
                    _transactional_sqlite(engine)
                self._engines[key] = engine
        return engine

    def _session_options(self, writable: bool) -> str:
        """libpq ``options``: settings the server applies when the session starts.

        ``standard_conforming_strings=on`` makes the server lex quotes as the checker's parser
        does; a URL's own ``options`` are replaced, so a URL cannot turn these off.
        """
        settings = {"statement_timeout": int(self.statement_timeout_ms), "standard_conforming_strings": "on"}
        if not writable:
            settings["default_transaction_read_only"] = "on"
        return " ".join(f"-c {key}={value}" for key, value in settings.items())

    @contextmanager
    def user_sql_connection(self, name: str) -> Iterator[Any]:
        """A connection for user SQL: read-only with a statement timeout unless writable.

        A read-only transaction is rolled back at the end, never committed: a read has nothing
        to keep, and anything a query queued for commit (a notification) is dropped.
        """
        writable = self.is_writable(name)
        engine = self._user_sql_engine(name, writable)
        dialect = engine.dialect.name
        if dialect not in ("postgresql", "sqlite") and not writable:
            raise UnsafeUserSQL(
                f"read-only user SQL is supported on PostgreSQL and SQLite, not {dialect}; "
                f"list '{name}' in writable_sql only if its login has read rights alone"
            )
        with engine.connect() as conn:
            transaction = conn.begin()
            try:
                if dialect == "postgresql":
                    if not writable:
                        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {int(self.statement_timeout_ms)}")
                    if not writable:
                        self._check_query_login(conn, name)
                        if self.read_only_role:
                            quoted = engine.dialect.identifier_preparer.quote(self.read_only_role)
                            conn.exec_driver_sql(f"SET LOCAL ROLE {quoted}")
                    yield conn
                elif dialect == "sqlite":
                    with _sqlite_guard(conn, name, read_only=not writable, timeout_ms=self.statement_timeout_ms):
                        yield conn
                else:
                    yield conn
            except BaseException:
                transaction.rollback()
                raise
            if writable:
                transaction.commit()
            else:
                transaction.rollback()

    def user_sql_statement(self, conn: Any, name: str, sql: str, binds: dict[str, Any]) -> tuple[Any, Any]:
        """``(statement, params)`` of user SQL, checked by the database's grammar (V2).

        PostgreSQL: the text as the server will receive it, binds rendered, parsed with pglast and
        sent as is. SQLite: ``text(sql)`` with its binds; SQLite checks it (one statement per
        call, the authorizer of ``user_sql_connection``).
        """
        import sqlalchemy as sa

        if conn.dialect.name == "postgresql":
            rendered = rendered_postgres_sql(conn, sql, binds)
            check_postgres_sql(rendered, read_only=not self.is_writable(name))
            # psycopg2 formats every statement SQLAlchemy hands it, even one without parameters:
            # with each '%' doubled it gives back exactly the text that was checked.
            return rendered.replace("%", "%%"), None
        return sa.text(sql), binds

    def _check_query_login(self, conn: Any, name: str) -> None:
        """Refuse a login that could write: a superuser, the writer's login, or any write right.

        Checked once per connection name and resource (a run), inside the read-only transaction.
        """
        if name in self._checked_logins:
            return
        variable = _env_name(name, "QUERY_URL")
        row = conn.exec_driver_sql(
            "SELECT session_user, rolsuper, rolcreaterole FROM pg_roles WHERE rolname = session_user"
        ).one()
        login, superuser, creates_roles = row[0], bool(row[1]), bool(row[2])
        if superuser or creates_roles:
            raise UnsafeUserSQL(
                f"user SQL on connection '{name}' would run as a "
                f"{'superuser' if superuser else 'login that may create roles'} ('{login}'), which "
                f"can leave any read-only setting; give a read-only login's URL in {variable}"
            )
        if not self.has_query_login(name):
            raise UnsafeUserSQL(
                f"user SQL on connection '{name}' would run under the writer's login '{login}': "
                f"give a dedicated read-only login's URL in {variable} (docs/deploy.md, "
                "'A read-only login for user SQL')"
            )
        writer = self.urls.get(name) or current().db.url(name)
        if writer and _same_login(writer, self.url(name, query=True)):
            raise UnsafeUserSQL(
                f"{variable} logs in as the writer of connection '{name}' ('{login}'): "
                "give it a separate login with SELECT rights only"
            )
        writable_table = conn.exec_driver_sql(WRITE_RIGHTS_QUERY).first()
        if writable_table:
            raise UnsafeUserSQL(
                f"the user SQL login '{login}' of connection '{name}' may write to "
                f"{writable_table[1]} (through role '{writable_table[0]}'); grant it SELECT only"
            )
        self._checked_logins.add(name)


#: One table the session user may write to, directly or through a role it belongs to ('%%':
#: psycopg2 formats every statement).
WRITE_RIGHTS_QUERY = """
WITH mine AS MATERIALIZED (
    SELECT oid, rolname FROM pg_roles WHERE pg_has_role(session_user, oid, 'MEMBER')
)
SELECT mine.rolname, c.oid::regclass::text
FROM mine CROSS JOIN pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_temp\\_%%' AND n.nspname NOT LIKE 'pg\\_toast%%'
  AND has_table_privilege(mine.oid, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
LIMIT 1
"""


def _same_login(url_a: str, url_b: str) -> bool:
    import sqlalchemy as sa

    a, b = sa.make_url(url_a), sa.make_url(url_b)
    return (a.username, a.host, a.port, a.database) == (b.username, b.host, b.port, b.database)


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
def _sqlite_guard(conn: Any, name: str, *, read_only: bool, timeout_ms: int) -> Iterator[None]:
    """SQLite's own limits on user SQL: a deadline, and for reads its authorizer and query_only."""
    raw = conn.connection.driver_connection
    deadline = time.monotonic() + timeout_ms / 1000
    raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
    if read_only:
        raw.execute("PRAGMA query_only = ON")
    try:
        if not read_only:
            yield
            return
        with sqlite_reads_only(raw) as refused:
            try:
                yield
            except Exception as exc:
                if refused:
                    raise UnsafeUserSQL(
                        f"user SQL on connection '{name}' may only read; SQLite refused: "
                        f"{refused[0]}. List the connection in writable_sql if it is meant to write"
                    ) from exc
                raise
    finally:
        raw.set_progress_handler(None, 0)
        if read_only:
            raw.execute("PRAGMA query_only = OFF")
