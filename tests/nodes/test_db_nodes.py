"""TableReader, CustomSQLQuery and TableWriter on the real PostgreSQL and on SQLite.

Reads are compared with ``pd.read_sql_table`` / ``pd.read_sql_query``; writes are read back and
compared with the frame written. V2 (user SQL under a read-only login with a statement timeout)
and E4 (a failing replace with a concurrent reader) are here too.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from node_helpers import make_ctx, run_node

pytestmark = pytest.mark.postgres


def frame(n: int = 5, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(offset, offset + n),
            "region": [["EU", "US", None][i % 3] for i in range(n)],
            "amount": [float(i) * 1.5 if i % 4 else None for i in range(n)],
        }
    )


def table_name() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def seed(databases: Any, df: pd.DataFrame) -> str:
    name = table_name()
    with databases.connect("default") as conn:
        df.to_sql(name, conn, index=False)
    return name


def ctx_for(databases: Any, **flow_params: Any) -> Any:
    return make_ctx(resources={"databases": databases}, flow_params=flow_params)


def read_back(databases: Any, name: str) -> pd.DataFrame:
    with databases.get_engine("default").connect() as conn:
        return pd.read_sql_table(name, conn)


def tables(databases: Any) -> list[str]:
    with databases.get_engine("default").connect() as conn:
        return sa.inspect(conn).get_table_names()


READS = [
    pytest.param({}, lambda t, e: pd.read_sql_table(t, e), id="TableReader-whole-table"),
    pytest.param(
        {"columns": ["amount", "id"]},
        lambda t, e: pd.read_sql_table(t, e, columns=["amount", "id"]),
        id="TableReader-columns",
    ),
    pytest.param(
        {"where": [{"column": "region", "op": "==", "value": "EU"}, {"column": "id", "op": ">=", "value": 1}]},
        lambda t, e: pd.read_sql_query(f"SELECT * FROM {t} WHERE region = 'EU' AND id >= 1", e),
        id="TableReader-where-bound",
    ),
    pytest.param(
        {"where": [{"column": "region", "op": "is null"}], "order_by": ["id"], "limit": 2},
        lambda t, e: pd.read_sql_query(f"SELECT * FROM {t} WHERE region IS NULL ORDER BY id LIMIT 2", e),
        id="TableReader-nulls-limit",
    ),
    pytest.param(
        {"where": [{"column": "id", "op": "in", "value": [1, 3, 99]}], "chunksize": 1, "order_by": ["id"]},
        lambda t, e: pd.read_sql_query(f"SELECT * FROM {t} WHERE id IN (1, 3, 99) ORDER BY id", e),
        id="TableReader-chunked",
    ),
    pytest.param(
        {"where": [{"column": "id", "op": "<", "value": -1}]},
        lambda t, e: pd.read_sql_query(f"SELECT * FROM {t} WHERE id < -1", e),
        id="TableReader-empty",
    ),
]


@pytest.mark.parametrize(("params", "expected"), READS)
def test_table_reader_matches_pandas(databases: Any, params: dict, expected: Any) -> None:
    name = seed(databases, frame(12))
    result = run_node("TableReader", {"table": name, **params}, {}, ctx_for(databases))
    with databases.get_engine("default").connect() as conn:
        pd.testing.assert_frame_equal(result, expected(name, conn))


def test_table_reader_names_a_missing_table_or_column(databases: Any) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        run_node("TableReader", {"table": "no_such_table"}, {}, ctx_for(databases))
    name = seed(databases, frame())
    with pytest.raises(ValueError, match="has no column"):
        run_node("TableReader", {"table": name, "columns": ["nope"]}, {}, ctx_for(databases))


def test_custom_sql_query_matches_pandas_with_binds(databases: Any) -> None:
    """CustomSQLQuery-binds: `:name` binds take flow params, `binds` override them."""
    name = seed(databases, frame(10))
    sql = f"SELECT region, count(*) AS n FROM {name} WHERE id >= :low AND id < :high GROUP BY region ORDER BY region"
    result = run_node(
        "CustomSQLQuery", {"sql": sql + ";", "binds": {"high": 8}}, {}, ctx_for(databases, low=2, high=100)
    )
    with databases.get_engine("default").connect() as conn:
        expected = pd.read_sql_query(sa.text(sql), conn, params={"low": 2, "high": 8})
    pd.testing.assert_frame_equal(result, expected)
    with pytest.raises(ValueError, match=":low"):
        run_node("CustomSQLQuery", {"sql": sql}, {}, ctx_for(databases))


# --- V2: user SQL is read-only, time-limited, single-statement -------------------------------

# Refused by the parser first (V2, "may only read"); tests/security/test_user_sql.py shows the
# database refuses each of them too when the parser is taken away.
PG_REFUSED = [
    pytest.param("INSERT INTO {t} (id) VALUES (99)", "may only read", id="V2-insert"),
    pytest.param("UPDATE {t} SET amount = 0", "may only read", id="V2-update"),
    pytest.param("CREATE TABLE evil (x int)", "may only read", id="V2-create"),
    pytest.param("COPY (SELECT 1) TO PROGRAM 'touch /tmp/dp_v2_pwned'", "may only read", id="V2-copy-program"),
    pytest.param("SELECT pg_read_file('/etc/passwd')", "permission denied", id="V2-pg-read-file"),
    pytest.param(
        "SELECT set_config('role', 'postgres', true), pg_read_file('/etc/hostname')",
        "may only read",
        id="V2-set-config-role",
    ),
    pytest.param("SET ROLE postgres", "may only read", id="V2-set-role"),
    pytest.param("SELECT 1; DELETE FROM {t}", "single statement", id="V2-two-statements"),
    pytest.param("SELECT pg_sleep(30)", "statement timeout", id="V2-statement-timeout"),
    pytest.param("WITH d AS (DELETE FROM {t} RETURNING *) SELECT * FROM d", "may only read", id="V2-writing-cte"),
]


@pytest.mark.parametrize(("sql", "reason"), PG_REFUSED)
def test_user_sql_cannot_write_or_escape_on_postgres(pg_databases: Any, sql: str, reason: str) -> None:
    name = seed(pg_databases, frame())
    with pytest.raises(Exception, match=reason):
        run_node("CustomSQLQuery", {"sql": sql.format(t=name)}, {}, ctx_for(pg_databases))
    pd.testing.assert_frame_equal(read_back(pg_databases, name), frame())
    assert "evil" not in tables(pg_databases)


def test_V2_user_sql_refuses_a_superuser_login(postgres_url: str) -> None:
    """V2: without a read-only login, user SQL is refused rather than run as a superuser."""
    from dp_resources.databases import DatabasesResource, UnsafeUserSQL

    resource = DatabasesResource(urls={"default": postgres_url})
    try:
        with pytest.raises(UnsafeUserSQL, match="superuser"):
            run_node("CustomSQLQuery", {"sql": "SELECT 1 AS x"}, {}, ctx_for(resource))
    finally:
        resource.dispose()


def test_writable_connection_may_write(databases: Any) -> None:
    name = seed(databases, frame())
    run_node(
        "CustomSQLQuery",
        {"sql": f"UPDATE {name} SET amount = 0 RETURNING id", "connection": "rw"},
        {},
        ctx_for(databases),
    )
    assert read_back(databases, name)["amount"].eq(0).all()


@pytest.mark.parametrize("sql", ["INSERT INTO {t} (id) VALUES (99)", "DROP TABLE {t}", "SELECT 1; DROP TABLE {t}"])
def test_V2_user_sql_is_read_only_on_sqlite(sqlite_databases: Any, sql: str) -> None:
    """V2 on SQLite: SQLite's authorizer (reads only) and its one-statement-per-call rule."""
    name = seed(sqlite_databases, frame())
    with pytest.raises(Exception, match=r"may only read|one statement at a time"):
        run_node("CustomSQLQuery", {"sql": sql.format(t=name)}, {}, ctx_for(sqlite_databases))
    pd.testing.assert_frame_equal(read_back(sqlite_databases, name), frame())


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1 ; ",
        "SELECT ';' AS x; -- done",
        "SELECT $$a;b$$ /* ; */",
        'SELECT "a;b" FROM t',
    ],
)
def test_V2_one_statement_with_semicolons_in_quotes_and_comments(sql: str) -> None:
    """V2: a ';' inside quotes or comments, or one at the end, leaves one statement (pglast)."""
    from dp_resources.user_sql import check_postgres_sql

    check_postgres_sql(sql, read_only=True)


# --- TableWriter ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["fail", "append", "replace", "upsert"])
def test_table_writer_new_table_matches_pandas(databases: Any, mode: str) -> None:
    name = table_name()
    df = frame(7)
    params = {"table": name, "if_exists": mode, **({"keys": ["id"]} if mode == "upsert" else {})}
    out = run_node("TableWriter", params, {"input": df}, ctx_for(databases))
    assert out is df
    pd.testing.assert_frame_equal(read_back(databases, name), df)
    assert not [t for t in tables(databases) if t.startswith("_dp_stage")]


def test_table_writer_append_replace_upsert(databases: Any) -> None:
    """TableWriter-modes: append adds rows, replace swaps the table, upsert is idempotent."""
    name = seed(databases, frame(4))
    ctx = ctx_for(databases)
    run_node("TableWriter", {"table": name, "if_exists": "append"}, {"input": frame(2, offset=10)}, ctx)
    pd.testing.assert_frame_equal(read_back(databases, name), pd.concat([frame(4), frame(2, 10)], ignore_index=True))
    with pytest.raises(ValueError, match="already exists"):
        run_node("TableWriter", {"table": name}, {"input": frame(1)}, ctx)
    changed = frame(3, offset=2).assign(amount=[100.0, None, 300.0])
    for _ in range(2):  # the second run changes nothing: idempotent
        run_node("TableWriter", {"table": name, "if_exists": "upsert", "keys": ["id"]}, {"input": changed}, ctx)
        got = read_back(databases, name).sort_values("id", ignore_index=True)
        expected = pd.concat([frame(4), frame(2, 10)]).set_index("id")
        expected = pd.concat([expected.drop(index=[2, 3]), changed.set_index("id")]).sort_index().reset_index()
        pd.testing.assert_frame_equal(got, expected)
    new = pd.DataFrame({"other": ["x", None]})
    run_node("TableWriter", {"table": name, "if_exists": "replace"}, {"input": new}, ctx)
    pd.testing.assert_frame_equal(read_back(databases, name), new)
    assert not [t for t in tables(databases) if t.startswith("_dp_stage")]


def test_upsert_refuses_null_or_duplicate_keys(databases: Any) -> None:
    name = seed(databases, frame(3))
    for bad in (frame(2).assign(id=[1, None]), frame(2).assign(id=[1, 1])):
        with pytest.raises(ValueError, match=r"null|not unique"):
            run_node(
                "TableWriter",
                {"table": name, "if_exists": "upsert", "keys": ["id"]},
                {"input": bad},
                ctx_for(databases),
            )
    pd.testing.assert_frame_equal(read_back(databases, name), frame(3))


def failing_frame(n: int) -> pd.DataFrame:
    """A frame whose last row cannot be inserted (a dict value): the write fails mid-way."""
    amounts = frame(n)["amount"].astype(object).tolist()
    amounts[-1] = {"not": "insertable"}
    return frame(n).assign(amount=pd.Series(amounts, dtype=object))


@pytest.mark.parametrize("mode", ["replace", "append", "upsert"])
def test_E4_failed_write_leaves_the_old_table_whole(databases: Any, mode: str) -> None:
    """E4: a write failing mid-way leaves the old table as it was, and no staging table."""
    name = seed(databases, frame(5))
    bad = failing_frame(50)
    with pytest.raises((sa.exc.StatementError, pd.errors.DatabaseError)):
        run_node(
            "TableWriter",
            {"table": name, "if_exists": mode, "chunksize": 10, "keys": ["id"]},
            {"input": bad},
            ctx_for(databases),
        )
    pd.testing.assert_frame_equal(read_back(databases, name), frame(5))
    assert not [t for t in tables(databases) if t.startswith("_dp_stage")]


@pytest.mark.fault
def test_E4_replace_with_a_concurrent_reader_sees_old_or_new(pg_databases: Any) -> None:
    """E4: while replaces succeed and fail, a reader only ever sees the old or the new whole table."""
    old, new = frame(300), frame(500, offset=1000)
    name = seed(pg_databases, old)
    whole = {(len(old), int(old["id"].sum())), (len(new), int(new["id"].sum()))}
    seen: list[Any] = []
    stop = threading.Event()

    def reader() -> None:
        engine = pg_databases.get_engine("default")
        while not stop.is_set():
            with engine.connect() as conn:
                try:
                    row = conn.exec_driver_sql(f'SELECT count(*), coalesce(sum(id), 0) FROM "{name}"').one()
                    seen.append((int(row[0]), int(row[1])))
                except Exception as exc:  # noqa: BLE001 - any error is a finding
                    seen.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        ctx = ctx_for(pg_databases)
        bad = failing_frame(400)
        for _ in range(3):
            with pytest.raises((sa.exc.StatementError, pd.errors.DatabaseError)):
                run_node("TableWriter", {"table": name, "if_exists": "replace", "chunksize": 50}, {"input": bad}, ctx)
        run_node("TableWriter", {"table": name, "if_exists": "replace", "chunksize": 50}, {"input": new}, ctx)
        run_node("TableWriter", {"table": name, "if_exists": "replace", "chunksize": 50}, {"input": old}, ctx)
    finally:
        stop.set()
        thread.join()
    assert seen
    assert all(not isinstance(s, Exception) for s in seen), [s for s in seen if isinstance(s, Exception)][:3]
    assert set(seen) <= whole
