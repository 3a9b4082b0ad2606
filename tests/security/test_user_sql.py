"""V2: user SQL (``CustomSQLQuery``) cannot write, on the real PostgreSQL and SQLite.

A private schema holds a canary table owned by a writer login (not a superuser); a reader login
may only SELECT it. Generated SQL built from PostgreSQL's lexical and statement grammar runs
through the real node and resource; whatever it is, the canary keeps its rows, nothing is made
beside it, the answer is rows or a clear refusal, and it comes back within the statement
timeout. The layers are also tested one by one: with the parser taken away, the server-side
session (read-only, timed) still holds; with a writer's login, the resource refuses to run.

``DP_FUZZ_EXAMPLES=20 pytest tests/security/test_user_sql.py -k generated`` is the long run.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import fuzz_settings

TIMEOUT_MS = 500
#: The longest a refused or timed-out query may take, connection and checks included.
BOUND_SECONDS = TIMEOUT_MS / 1000 + 4


@dataclass(frozen=True)
class Lab:
    """Two logins and a canary table in a private schema of the session's database."""

    admin_url: str
    writer_url: str
    reader_url: str
    writer: str
    reader: str
    schema: str
    database: str
    probe_file: str

    @property
    def canary(self) -> str:
        return f"{self.schema}.canary"


CANARY_ROWS = [(1, "one"), (2, "two; DELETE"), (3, "three")]


def _login_url(admin_url: str, role: str) -> str:
    prefix, rest = admin_url.split("://", 1)
    return f"{prefix}://{role}@{rest.split('@', 1)[1]}"


@pytest.fixture(scope="module")
def lab(postgres_url: str) -> Iterator[Lab]:
    suffix = uuid.uuid4().hex[:8]
    writer, reader, schema = f"dp_v2w_{suffix}", f"dp_v2r_{suffix}", f"v2_{suffix}"
    database = postgres_url.rsplit("/", 1)[1]
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        for role in (writer, reader):
            conn.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
            conn.exec_driver_sql(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
        conn.exec_driver_sql(f'GRANT "{reader}" TO "{writer}"')  # the old SET ROLE mode needs it
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}" AUTHORIZATION "{writer}"')
        conn.exec_driver_sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{reader}"')
    the_lab = Lab(
        postgres_url,
        _login_url(postgres_url, writer),
        _login_url(postgres_url, reader),
        writer,
        reader,
        schema,
        database,
        f"/tmp/dp_v2_{suffix}",
    )
    writer_engine = sa.create_engine(the_lab.writer_url, poolclass=sa.pool.NullPool)
    with writer_engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {the_lab.canary} (id int PRIMARY KEY, note text)")
        conn.execute(
            sa.text(f"INSERT INTO {the_lab.canary} VALUES (:id, :note)"), [{"id": i, "note": n} for i, n in CANARY_ROWS]
        )
        conn.exec_driver_sql(f'GRANT SELECT ON {the_lab.canary} TO "{reader}"')
    writer_engine.dispose()
    try:
        yield the_lab
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.exec_driver_sql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN ('{writer}', '{reader}')"
            )
            for role in (writer, reader):
                conn.exec_driver_sql(f'REVOKE ALL ON DATABASE "{database}" FROM "{role}"')
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        admin.dispose()


def damage(lab: Lab) -> list[str]:
    """What user SQL changed: canary rows, objects in the schema, large objects, the probe file."""
    found: list[str] = []
    admin = sa.create_engine(lab.admin_url, poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        rows = [tuple(r) for r in conn.exec_driver_sql(f"SELECT id, note FROM {lab.canary} ORDER BY id")]
        if rows != CANARY_ROWS:
            found.append(f"canary rows are now {rows}")
        made = (
            conn.exec_driver_sql(
                "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                f"WHERE nspname = '{lab.schema}' AND relname NOT IN ('canary', 'canary_pkey')"
            )
            .scalars()
            .all()
        )
        if made:
            found.append(f"objects made in the schema: {made}")
        if conn.exec_driver_sql("SELECT count(*) FROM pg_largeobject_metadata").scalar():
            found.append("a large object was imported")
        columns = conn.exec_driver_sql(
            "SELECT count(*) FROM information_schema.columns "
            f"WHERE table_schema = '{lab.schema}' AND table_name = 'canary'"
        ).scalar()
        if columns != 2:
            found.append("the canary's columns changed")
    admin.dispose()
    if os.path.exists(lab.probe_file):
        found.append(f"{lab.probe_file} was written by COPY ... PROGRAM")
    return found


def reader_resource(lab: Lab, **overrides: Any) -> Any:
    """The production setup: the writer's URL, and a read-only login for user SQL."""
    from dp_resources.databases import DatabasesResource

    return DatabasesResource(
        **{
            "urls": {"default": lab.writer_url},
            "query_urls": {"default": lab.reader_url},
            "statement_timeout_ms": TIMEOUT_MS,
            **overrides,
        }
    )


def set_role_resource(lab: Lab) -> Any:
    """The writer's login with ``SET LOCAL ROLE`` to the reader: what the issue broke through."""
    from dp_resources.databases import DatabasesResource

    return DatabasesResource(
        urls={"default": lab.writer_url}, read_only_role=lab.reader, statement_timeout_ms=TIMEOUT_MS
    )


@pytest.fixture(scope="module")
def catalog() -> Any:
    from dp_assets.catalog import default_catalog

    return default_catalog()


def run_query(
    catalog: Any, resource: Any, sql: str, flow_params: dict[str, Any] | None = None, **params: Any
) -> pd.DataFrame:
    """Run a CustomSQLQuery node as the runtime does (a stream is read to its end)."""
    from dp_assets.catalog.base import FrameStream, NodeContext

    node = catalog["CustomSQLQuery"]
    ctx = NodeContext("v2_flow", "user_query", "run-1", flow_params or {}, {"databases": resource}, catalog=catalog)
    result = node.run(ctx, node.params_model.model_validate({"sql": sql, **params}), {})
    if isinstance(result, FrameStream):
        return pd.concat(list(result), ignore_index=True)
    return result


def clear_refusals() -> tuple[type[BaseException], ...]:
    from dp_resources.databases import UnsafeUserSQL

    return (UnsafeUserSQL, sa.exc.DBAPIError, pd.errors.DatabaseError, ValueError)


# --- the property: generated SQL from PostgreSQL's grammar ----------------------------------

#: Lexical forms: each may hide a ';' from a scanner that does not know it. Paired as
#: (opening, closing) so that the rest of the text is valid again after the pair.
LEXICAL_PAIRS = [
    ("1 AS x, E'\\''", "SELECT '1'"),  # backslash escape of a quote
    ("1 AS x, E'\\\\'", "SELECT 1"),  # an escaped backslash, then a real quote
    ("1 AS a$b$", "SELECT 2 AS c$b$"),  # '$' inside identifiers, not a dollar quote
    ("$$;$$", "SELECT 1"),  # a dollar quote
    ("$t$ ; $t$", "SELECT $t$'$t$"),  # a tagged dollar quote
    ("1 /* /* */ ' */", "SELECT '1'"),  # nested comments
    ("1 /* /* ; */ ; */", "SELECT 1"),
    ("U&'d\\0061t;'", "SELECT 1"),  # Unicode escape string
    ("'it''s;'", "SELECT 1"),  # doubled quote
    ('1 AS "q;""id"', "SELECT 1"),  # quoted identifier
    ("1 -- ;\n", "SELECT 1"),  # line comment
    ("B'101'", "SELECT X'1F'"),  # bit strings
]
CONTROL = [
    "COMMIT",
    "ROLLBACK",
    "END",
    "COMMIT; BEGIN",
    "ROLLBACK; START TRANSACTION READ WRITE",
    "COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "RESET ALL",
    "DISCARD ALL",
    "SET TRANSACTION READ WRITE",
    "",
]
WRITES = [
    "DELETE FROM {c}",
    "INSERT INTO {c} VALUES (99, 'x')",
    "UPDATE {c} SET note = 'x'",
    "TRUNCATE {c}",
    "WITH d AS (DELETE FROM {c} RETURNING *) SELECT * FROM d",
    "WITH u AS (UPDATE {c} SET note = 'x' RETURNING *) SELECT * FROM u",
    "MERGE INTO {c} USING (SELECT 1 AS id) s ON {c}.id = s.id WHEN MATCHED THEN DELETE",
    "SELECT * INTO {s}.copied FROM {c}",
    "CREATE TABLE {s}.made (x int)",
    "ALTER TABLE {c} ADD COLUMN z int",
    "DROP TABLE {c}",
    "DO $$ BEGIN DELETE FROM {c}; END $$",
    "EXPLAIN ANALYZE DELETE FROM {c}",
    "COPY {c} FROM PROGRAM 'echo 7,x'",
    "COPY (SELECT 1) TO PROGRAM 'touch {f}'",
]
ESCAPES = [
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT set_config('role', '{w}', false)",
    "SET ROLE {w}",
    "SET SESSION AUTHORIZATION {w}",
    "RESET ROLE",
    "SET default_transaction_read_only = off",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT dblink_exec('dbname={d}', 'DELETE FROM {c}')",
    "SELECT * FROM {c} FOR UPDATE",
    "SELECT pg_terminate_backend(pg_backend_pid())",
    "SELECT pg_sleep(3)",
    "CALL nothing()",
    "NOTIFY x",
    "SELECT set_config('statement_timeout', '0', false), pg_sleep(3)",
]
READS = [
    "SELECT * FROM {c}",
    "SELECT 1 AS x",
    "VALUES (1)",
    "TABLE {c}",
    "WITH r AS (SELECT 1 AS x) SELECT * FROM r UNION SELECT 2",
    "SELECT count(*) FROM {c} WHERE note LIKE '%;%'",
]

PIECES = [p for pair in LEXICAL_PAIRS for p in pair] + [";", "/*", "*/", "'", '"', "$$", "E'", "U&'"]

# The shape of a break-out: a read, a lexical form, ';', transaction control, a write, a tail.
break_outs = st.builds(
    lambda pair, control, write: f"SELECT {pair[0]} ; {control + ' ;' if control else ''} {write}; {pair[1]}",
    st.sampled_from(LEXICAL_PAIRS),
    st.sampled_from(CONTROL),
    st.sampled_from(WRITES + ESCAPES),
)
# Free mixtures of the same pieces, for forms nobody listed.
mixtures = st.lists(st.sampled_from(PIECES + CONTROL + WRITES + ESCAPES + READS), min_size=1, max_size=7).map(" ".join)
generated_sql = st.one_of(break_outs, mixtures, st.sampled_from(READS))

#: Places a spec author may put a bind, some inside quotes or comments, where SQLAlchemy still
#: replaces it; the value comes from a launcher or an event.
BIND_SPOTS = [
    "SELECT :p AS x",
    "SELECT ':p' AS x",
    "SELECT E':p' AS x",
    "SELECT 1 AS x /* :p */",
    "SELECT $$:p$$ AS x",
    'SELECT 1 AS ":p"',
    "SELECT 1 AS x -- :p",
    "SELECT * FROM {c} WHERE note = ':p'",
]
# A value that closes what the spec opened around its bind, then statements, then a closing piece.
injections = st.builds(
    lambda opener, control, write, closer: f"{opener}; {control}; {write}; {closer}",
    st.sampled_from(["", "'", "$$", '"', "*/", "\n", "\\'"]),
    st.sampled_from(CONTROL),
    st.sampled_from(WRITES + ESCAPES),
    st.sampled_from(["--", "/*", "SELECT '", "SELECT $$", ""]),
)
bind_values = st.one_of(
    injections,
    st.lists(st.sampled_from(PIECES + CONTROL + WRITES + ESCAPES + ["\\", "\x00", "\n"]), max_size=6).map(" ".join),
    st.text(max_size=20),
)


def fill(template: str, lab: Lab) -> str:
    return (
        template.replace("{c}", lab.canary)
        .replace("{s}", lab.schema)
        .replace("{w}", lab.writer)
        .replace("{d}", lab.database)
        .replace("{f}", lab.probe_file)
    )


def assert_held(lab: Lab, catalog: Any, resource: Any, sql: str, flow_params: dict[str, Any] | None = None) -> None:
    """The invariant: nothing written, rows or a clear refusal, within the time bound."""
    started = time.monotonic()
    try:
        out = run_query(catalog, resource, sql, flow_params)
        assert isinstance(out, pd.DataFrame)
    except clear_refusals():
        pass
    elapsed = time.monotonic() - started
    assert not damage(lab), (sql, damage(lab))
    assert elapsed < BOUND_SECONDS, f"{sql!r} took {elapsed:.1f} s"


@pytest.mark.postgres
@pytest.mark.parametrize("setup", ["read-only-login", "set-role-mode"])
@fuzz_settings(60)
@given(template=generated_sql)
def test_V2_generated_sql_never_writes(lab: Lab, catalog: Any, setup: str, template: str) -> None:
    """V2 (property): SQL built from PostgreSQL's grammar writes nothing, through the real node.

    ``set-role-mode`` is the writer's login with SET LOCAL ROLE to a reader (refused now: a
    statement that ends the transaction ends the role change with it).
    """
    resource = reader_resource(lab) if setup == "read-only-login" else set_role_resource(lab)
    try:
        assert_held(lab, catalog, resource, fill(template, lab))
    finally:
        resource.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("setup", ["read-only-login", "set-role-mode"])
@fuzz_settings(60)
@given(template=st.sampled_from(BIND_SPOTS), value=bind_values)
def test_V2_generated_bind_values_never_write(lab: Lab, catalog: Any, setup: str, template: str, value: str) -> None:
    """V2 (property): a launch param bound anywhere in the SQL, with any text, writes nothing."""
    resource = reader_resource(lab) if setup == "read-only-login" else set_role_resource(lab)
    try:
        assert_held(lab, catalog, resource, fill(template, lab), {"p": fill(value, lab)})
    finally:
        resource.dispose()


@pytest.mark.postgres
def test_V2_nul_in_sql_is_refused(lab: Lab, catalog: Any) -> None:
    """V2: a NUL character is refused by name, not left to where C code stops reading."""
    from dp_resources.databases import UnsafeUserSQL

    resource = reader_resource(lab)
    try:
        with pytest.raises(UnsafeUserSQL, match="NUL"):
            run_query(catalog, resource, f"SELECT 1 AS x\x00; DELETE FROM {lab.canary}")
    finally:
        resource.dispose()


# --- one test per known bypass of the old scanner -------------------------------------------

BYPASSES = {
    "E-escape": "SELECT E'\\'' AS x; COMMIT; DELETE FROM {c}; SELECT '1'",
    "dollar-in-identifier": "SELECT 1 AS a$b$; COMMIT; DELETE FROM {c}; SELECT 2 AS c$b$",
    "nested-comment": "SELECT 1 /* /* */ ' */; COMMIT; DELETE FROM {c}; SELECT '1'",
}


@pytest.mark.postgres
@pytest.mark.parametrize("setup", ["read-only-login", "set-role-mode"])
@pytest.mark.parametrize("name", list(BYPASSES))
def test_V2_known_scanner_bypass_is_refused(lab: Lab, catalog: Any, name: str, setup: str) -> None:
    """V2: each form that fooled the hand-written scanner is refused, and writes nothing."""
    from dp_resources.databases import UnsafeUserSQL

    resource = reader_resource(lab) if setup == "read-only-login" else set_role_resource(lab)
    try:
        with pytest.raises(UnsafeUserSQL, match=r"single statement|writer's login"):
            run_query(catalog, resource, fill(BYPASSES[name], lab))
    finally:
        resource.dispose()
    assert not damage(lab)


@pytest.mark.postgres
def test_V2_bind_inside_a_string_literal_cannot_inject(lab: Lab, catalog: Any) -> None:
    """V2: a flow param rendered inside a quoted literal cannot end the statement.

    SQLAlchemy replaces ``:name`` even inside quotes, and psycopg2 writes the value in as a
    quoted literal, so the param's text lands outside the spec's quotes; the rendered text is
    what gets parsed, so the injected statements are seen.
    """
    from dp_resources.databases import UnsafeUserSQL

    resource = set_role_resource(lab)
    resource_ro = reader_resource(lab)
    try:
        for res in (resource, resource_ro):
            with pytest.raises(UnsafeUserSQL, match=r"single statement|writer's login"):
                run_query(
                    catalog, res, "SELECT ':p' AS x", flow_params={"p": f"; COMMIT; DELETE FROM {lab.canary}; --"}
                )
    finally:
        resource.dispose()
        resource_ro.dispose()
    assert not damage(lab)


# --- the database layer on its own ------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["plain", "chunked", "stream", "writable", "after-commit"])
def test_V2_statement_timeout_in_every_connection_mode(lab: Lab, catalog: Any, mode: str) -> None:
    """V2: pg_sleep beyond the timeout fails in every mode, even once the transaction has ended.

    ``after-commit`` takes the parser away: a COMMIT sent on the connection ends the transaction
    and its SET LOCAL settings, and the server's session settings must still time the query.
    """
    resource = reader_resource(lab, writable_sql=["default"] if mode == "writable" else [])
    params = {"chunked": {"chunksize": 1}, "stream": {"chunksize": 1, "stream": True}}.get(mode, {})
    started = time.monotonic()
    try:
        with pytest.raises((sa.exc.DBAPIError, pd.errors.DatabaseError), match="statement timeout"):
            if mode == "after-commit":
                with resource.user_sql_connection("default") as conn:
                    conn.exec_driver_sql("COMMIT")
                    conn.exec_driver_sql("SELECT pg_sleep(3)")
            else:
                run_query(catalog, resource, "SELECT pg_sleep(3) AS slept", **params)
    finally:
        resource.dispose()
    assert time.monotonic() - started < BOUND_SECONDS


@pytest.mark.postgres
@pytest.mark.parametrize(
    "write", ["DELETE FROM {c}", "INSERT INTO {c} VALUES (9, 'x')", "TRUNCATE {c}", "CREATE TABLE {s}.made (x int)"]
)
def test_V2_session_stays_read_only_after_the_transaction_ends(lab: Lab, write: str) -> None:
    """V2: with the parser taken away, a write after COMMIT is refused by the server's session."""
    resource = reader_resource(lab)
    try:
        with resource.user_sql_connection("default") as conn:
            conn.exec_driver_sql("COMMIT")
            assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
            with pytest.raises(sa.exc.DBAPIError, match=r"read-only transaction|permission denied"):
                conn.exec_driver_sql(fill(write, lab))
    finally:
        resource.dispose()
    assert not damage(lab)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "setup", ["writer-without-query-url", "query-url-is-the-writer", "superuser", "login-with-a-write-right"]
)
def test_V2_user_sql_needs_a_read_only_login(lab: Lab, catalog: Any, setup: str) -> None:
    """V2: the resource refuses a login that could write, before any user SQL runs."""
    from dp_resources.databases import DatabasesResource, UnsafeUserSQL

    urls = {"default": lab.writer_url}
    query_url = {
        "writer-without-query-url": None,
        "query-url-is-the-writer": lab.writer_url,
        "superuser": lab.admin_url,
        "login-with-a-write-right": lab.reader_url,
    }[setup]
    resource = DatabasesResource(urls=urls, query_urls={"default": query_url} if query_url else {})
    admin = sa.create_engine(lab.admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    grant = f'GRANT INSERT ON {lab.canary} TO "{lab.reader}"'
    try:
        if setup == "login-with-a-write-right":
            with admin.connect() as conn:
                conn.exec_driver_sql(grant)
        with pytest.raises(UnsafeUserSQL, match=r"superuser|writer|may write"):
            run_query(catalog, resource, f"SELECT * FROM {lab.canary}")
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(grant.replace("GRANT", "REVOKE").replace(" TO ", " FROM "))
        admin.dispose()
        resource.dispose()


@pytest.mark.postgres
def test_V2_read_only_login_reads(lab: Lab, catalog: Any) -> None:
    """V2: the safe path still answers: reads with binds, chunks and streams."""
    resource = reader_resource(lab)
    try:
        for params in ({}, {"chunksize": 1}, {"chunksize": 2, "stream": True}):
            got = run_query(
                catalog,
                resource,
                f"SELECT id, note FROM {lab.canary} WHERE id >= :low AND note NOT LIKE '%zz%' ORDER BY id",
                flow_params={"low": 2},
                **params,
            )
            assert [tuple(r) for r in got.itertuples(index=False)] == CANARY_ROWS[1:]
    finally:
        resource.dispose()


# --- SQLite ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "ATTACH DATABASE '{dir}/attached.db' AS other",
        "PRAGMA query_only = OFF",
        "CREATE TEMP TABLE t (x)",
    ],
)
def test_V2_sqlite_authorizer_allows_reads_only(tmp_path: Path, catalog: Any, sql: str) -> None:
    """V2 on SQLite: the engine's authorizer refuses what query_only lets through (ATTACH makes files)."""
    from dp_resources.databases import DatabasesResource, UnsafeUserSQL

    db = tmp_path / "db.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE canary (id int)")
        conn.execute("INSERT INTO canary VALUES (1)")
    resource = DatabasesResource(urls={"default": f"sqlite:///{db}"})
    try:
        with pytest.raises(UnsafeUserSQL, match="may only read; SQLite refused"):
            run_query(catalog, resource, sql.replace("{dir}", str(tmp_path)))
        assert run_query(catalog, resource, "SELECT id FROM canary")["id"].tolist() == [1]
    finally:
        resource.dispose()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.sqlite"]
