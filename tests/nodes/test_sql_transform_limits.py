"""SqlTransform against a hostile author: any text as a query, lone surrogates included (what
undecodable bytes become in Python), is a query or a validation error, never a crash; the query's
DuckDB has the engine's memory limit and threads (``DP_DUCKDB_*``), not DuckDB's default of 80%
of the machine, as has the engine's own connection, which follows a changed setting; and a query that never ends (a recursive CTE) is stopped by the node's
``timeout_seconds`` (the machinery of every node: a forked child killed at its limit)."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from node_helpers import make_ctx, run_node
from pydantic import ValidationError

from dp_assets.catalog.base import SchemaError
from dp_assets.catalog.nodes.sql_transform import SqlTransformParams, sql_transform, sql_transform_schema
from dp_assets.compiler.timeouts import NodeTimeout, call_with_timeout

ENDLESS = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) AS n FROM r"
# every code point, lone surrogates (U+D800..U+DFFF) included
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), min_size=1, max_size=80)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prefix=st.sampled_from(["SELECT '", "SELECT 1 -- ", "", 'SELECT * FROM "']), text=ANY_TEXT)
def test_any_text_is_a_query_or_a_validation_error(prefix: str, text: str) -> None:
    try:
        SqlTransformParams.model_validate({"query": prefix + text})
    except ValidationError as exc:
        assert "query" in str(exc)


def test_a_query_with_undecodable_bytes_is_a_clear_validation_error() -> None:
    undecodable = b"SELECT '\xff' AS x".decode("utf-8", errors="surrogateescape")
    with pytest.raises(ValidationError, match="unicode"):
        SqlTransformParams.model_validate({"query": undecodable})


def test_the_query_runs_with_the_engines_memory_limit_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DP_DUCKDB_MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("DP_DUCKDB_THREADS", "1")
    query = "SELECT current_setting('memory_limit') AS m, current_setting('threads') AS t"
    got = run_node("SqlTransform", {"query": query}, {"a": pd.DataFrame({"x": [1]})})
    assert got.to_dict("records") == [{"m": "286.1 MiB", "t": 1}]  # DuckDB spells 300MB in MiB


def test_the_engines_connection_follows_a_change_of_the_settings_in_the_same_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine reads the settings in force (``dp_settings.current``, kept per process): a
    changed ``DP_DUCKDB_*`` takes effect at the next step's connection, never a stale value."""
    from dp_assets.engine.connection import connect

    seen = []
    for threads, memory in (("1", "300MB"), ("2", "500MB")):
        monkeypatch.setenv("DP_DUCKDB_THREADS", threads)
        monkeypatch.setenv("DP_DUCKDB_MEMORY_LIMIT", memory)
        connection = connect()
        try:
            (row,) = connection.execute("SELECT current_setting('threads'), current_setting('memory_limit')").fetchall()
            seen.append(row)
        finally:
            connection.close()
    assert seen == [(1, "286.1 MiB"), (2, "476.8 MiB")]  # DuckDB spells MB in MiB


def test_a_query_that_never_ends_is_stopped_by_the_nodes_timeout() -> None:
    ctx = make_ctx()
    params = SqlTransformParams.model_validate({"query": ENDLESS})
    with pytest.raises(NodeTimeout, match="timeout_seconds=2"):
        call_with_timeout(lambda: sql_transform(ctx, params, {"a": pd.DataFrame({"x": [1]})}), ctx, 2)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(
        st.sampled_from(["Group", "group", "GROUP", "Ä", "ä", "größe", "GRÖSSE", 'a "b"', "a b"]),
        min_size=1,
        max_size=4,
        unique=True,
    )
)
def test_columns_sql_cannot_tell_apart_are_refused_never_renamed(names: list[str]) -> None:
    """DuckDB folds ASCII case only and would rename one of two such columns (``group_1``):
    the node refuses them, at validation and at run, and otherwise keeps every name as it is."""
    frame = pd.DataFrame({name: [index] for index, name in enumerate(names)})
    folded = ["".join(c.lower() if c.isascii() else c for c in name) for name in names]
    if len(set(folded)) < len(folded):
        with pytest.raises(ValueError, match="cannot tell apart"):
            run_node("SqlTransform", {"query": "SELECT * FROM a"}, {"a": frame})
        with pytest.raises(SchemaError, match="cannot tell apart"):
            sql_transform_schema(SqlTransformParams(query="SELECT * FROM a"), {"a": dict.fromkeys(names, "integer")})
    else:
        got = run_node("SqlTransform", {"query": "SELECT * FROM a"}, {"a": frame})
        assert list(got.columns) == names
        described = sql_transform_schema(
            SqlTransformParams(query="SELECT * FROM a"), {"a": dict.fromkeys(names, "integer")}
        )
        assert list(described or {}) == names


def _nested(depth: int, table: str, shape: str) -> str:
    """A SELECT over ``table`` inside ``depth`` subqueries (or CTEs, or IN lists of subqueries)."""
    if shape == "from":
        return "SELECT * FROM " + "(SELECT * FROM " * depth + table + ") t" * depth
    if shape == "where":
        return f"SELECT * FROM {table} WHERE a IN " + "(SELECT a FROM " * depth + table + ")" * depth
    return "SELECT * FROM (" + "SELECT * FROM (" * depth + f"SELECT a FROM {table}" + ") t" * depth + ") u"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(depth=st.integers(1, 1200), shape=st.sampled_from(["from", "where", "parenthesised"]), known=st.booleans())
@example(depth=500, shape="from", known=True)
@example(depth=800, shape="from", known=False)
@example(depth=996, shape="from", known=True)  # where the check and the run parted (views count a level)
@example(depth=997, shape="from", known=True)
@example(depth=996, shape="where", known=True)
@example(depth=995, shape="parenthesised", known=True)
@example(depth=998, shape="from", known=False)
def test_a_deeply_nested_query_is_described_as_duckdb_runs_it(depth: int, shape: str, known: bool) -> None:
    """Any nesting of subqueries: the schema check gives the columns when the node runs the query,
    and otherwise a ``SchemaError`` naming ``query`` in DuckDB's words (an unknown table named);
    never another exception. Reading the parse tree of a query 500 deep used to hit Python's
    recursion limit, so a query DuckDB runs could not be published."""
    table = "src" if known else "missing"
    query = _nested(depth, table, shape)
    try:
        params = SqlTransformParams.model_validate({"query": query})
    except ValidationError:
        return  # DuckDB's parser refuses it: a validation error naming the query, checked above
    try:  # as the node runs it: its input a registered frame
        run_node("SqlTransform", {"query": query}, {"src": pd.DataFrame({"a": [1]})})
        runs = True
    except Exception:  # noqa: BLE001 - whatever stops the run, the check must have refused
        runs = False
    try:
        schema = sql_transform_schema(params, {"src": {"a": "integer"}})
    except SchemaError as exc:
        assert exc.field == "query" and not runs, (depth, shape, exc.message[:200])
        if not known and "expression depth" not in exc.message:  # too deep is said first, as the run says it
            assert "missing" in exc.message
    else:
        assert runs and schema == {"a": "integer"}, (depth, shape, schema)
