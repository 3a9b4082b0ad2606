"""SqlTransform: one DuckDB SELECT over the node's inputs, each a table named by its input.

DuckDB runs in the step's process, so the query is held to what a transform may do: exactly one
statement, which DuckDB's own parser says is a SELECT (not a pattern over the text); a
connection of its own per run with file and network access off (``enable_external_access``),
no extension loading, no reads of Python variables by name (``python_enable_replacements``),
and the configuration locked so that the query cannot turn any of it back on.

The output's columns are known before a run: DuckDB describes the query over empty tables of
the inputs' column schemas, so ``dp validate`` lists them and a wrong column is a validation
error naming the flow, the node and ``params.query``.

The MAX DP ``CustomSQLQuery`` (SQL against a database) is another node (``sources_db``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from dp_assets.catalog.base import ColumnSchema, InputSpec, NodeContext, NodeType, Params, SchemaError
from dp_assets.deferred import pd
from dp_assets.engine.relation import folded_name
from dp_assets.engine.sql_expressions import quote_identifier

if TYPE_CHECKING:
    import duckdb

#: Settings of every SqlTransform connection; ``lock_configuration`` comes last so that the
#: query cannot change the others (``SET`` is refused, and a SET statement is no SELECT anyway).
LOCKED_CONFIG = {
    "enable_external_access": False,
    "python_enable_replacements": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "lock_configuration": True,
}

#: A column schema's logical type as the DuckDB type of an empty table that stands for it.
DUCKDB_TYPES = {
    "integer": "BIGINT",
    "float": "DOUBLE",
    "boolean": "BOOLEAN",
    "datetime": "TIMESTAMP",
    "date": "DATE",
    "string": "VARCHAR",
    "any": "VARCHAR",
}


class SqlTransformParams(Params):
    query: str = Field(
        min_length=1,
        max_length=100_000,
        description="One DuckDB SELECT. Each input is a table named by its input: the node id "
        "for a list of inputs (quote 'node.output' ones: \"check.true\"), the key for a mapping.",
    )

    @field_validator("query")
    @classmethod
    def _one_select(cls, query: str) -> str:
        problem = select_problem(query)
        if problem:
            raise ValueError(problem)
        return query


def connect() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with no file, network or extension access, its settings locked, and
    the engine's memory limit and threads (``DP_DUCKDB_*``): without them DuckDB may take 80% of
    the machine's memory. A query that never ends is stopped by the node's ``timeout_seconds``."""
    import duckdb  # lazy: only flows with a SqlTransform pay for the import

    from dp_assets.engine.connection import EngineLimits

    return duckdb.connect(":memory:", config={**EngineLimits.from_settings().config(), **LOCKED_CONFIG})


def select_problem(query: str) -> str | None:
    """Why ``query`` is not exactly one SELECT, in DuckDB's own words; ``None`` when it is."""
    import duckdb

    if "\x00" in query:
        return "the query contains a NUL character"
    with connect() as con:
        try:
            statements = con.extract_statements(query)
        except duckdb.Error as exc:
            return f"not valid DuckDB SQL: {_first_line(exc)}"
    if len(statements) != 1:
        return f"write exactly one SELECT statement (found {len(statements)})"
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        return f"only a SELECT may run here, not a {kind.name} statement"
    return None


def sql_transform(ctx: NodeContext, params: SqlTransformParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Run one DuckDB SELECT over the inputs (each a table named by its input) and return its rows.

    Only a SELECT runs, checked by DuckDB's parser; reading files or the network, installing or
    loading extensions, and changing settings are refused. Rows come in the order the query
    gives (write ORDER BY for a defined order). The output's columns are known before a run.
    """
    import duckdb

    for name, frame in inputs.items():
        clash = _case_clash(name, [str(column) for column in frame.columns])
        if clash:
            raise ValueError(clash)
    with connect() as con:
        for name, frame in inputs.items():
            con.register(name, frame)
        try:
            result = con.execute(params.query)
            types = [str(column[1]) for column in result.description or []]
            frame = result.df()
        except duckdb.Error as exc:
            raise ValueError(f"DuckDB refused the query: {_first_line(exc)}") from None
    return _as_pandas_would(frame, types)


def _as_pandas_would(frame: pd.DataFrame, types: list[str]) -> pd.DataFrame:
    """DuckDB's integer sums are HUGEINT, which reach pandas as floats: back to integers, as
    pandas' own ``sum`` gives them, when they fit; text of an empty result is pandas' ``str``."""
    for column, kind in zip(list(frame.columns), types, strict=False):
        if kind == "VARCHAR" and frame[column].dtype == object:
            frame[column] = frame[column].astype("str")
        elif kind == "HUGEINT" and frame[column].notna().all():
            values = frame[column]
            if values.empty or (values.abs().max() < 2**63 and (values == values.round()).all()):
                frame[column] = values.astype("int64")
    return frame


def sql_transform_schema(params: SqlTransformParams, inputs: dict[str, ColumnSchema | None]) -> ColumnSchema | None:
    """The query's columns, as DuckDB binds it over empty tables of the input schemas."""
    import duckdb

    with connect() as con:
        unknown = _unknown_tables(con, params.query, list(inputs))
        if unknown:
            listed = ", ".join(inputs) or "none"
            raise SchemaError("query", f"table '{unknown[0]}' is not an input of the node (its inputs: {listed})")
        if any(schema is None for schema in inputs.values()):
            return None
        for name, schema in inputs.items():
            clash = _case_clash(name, list(schema or {}))
            if clash:
                raise SchemaError("query", clash)
        for name, schema in inputs.items():
            assert schema is not None
            columns = ", ".join(
                f"{quote_identifier(column)} {DUCKDB_TYPES.get(kind, 'VARCHAR')}" for column, kind in schema.items()
            )
            # Each input a view, as a registered frame is at run time: DuckDB counts the view's
            # level against its expression depth, so a query nested near that limit is refused
            # here exactly when the run refuses it (a table would let one level more through).
            hidden = quote_identifier(f"dp input: {name}")  # a space: no node id is spelt so
            con.execute(f"CREATE TABLE {hidden} ({columns or '_dp_no_columns INTEGER'})")
            con.execute(f"CREATE VIEW {quote_identifier(name)} AS SELECT * FROM {hidden}")
        try:
            bound = con.sql(params.query)  # bound, not run: a query that never ends is described too
            described = list(zip(bound.columns, bound.types, strict=True))
        except duckdb.Error as exc:
            if any("any" in (schema or {}).values() for schema in inputs.values()):
                return None  # a column of unknown type stood in as text: the error may be ours
            have = "; ".join(f"{name}: {', '.join(schema or {}) or 'no columns'}" for name, schema in inputs.items())
            raise SchemaError("query", f"{_first_line(exc)} (tables: {have or 'none'})") from None
    return {str(name): _logical(str(kind)) for name, kind in described}


def _unknown_tables(con: duckdb.DuckDBPyConnection, query: str, inputs: list[str]) -> list[str]:
    """The tables the query reads that are no input, from DuckDB's parse tree (nothing is bound,
    so it needs no columns): found before a run even when the inputs' columns are not known, where
    the run would fail with 'Table with name ... does not exist'. A name some CTE of the query
    has, and a schema-qualified one (``information_schema.tables``), is left alone."""
    import json

    import duckdb

    try:
        row = con.execute("SELECT json_serialize_sql($1)", [query]).fetchone()
    except duckdb.Error:
        return []  # the query's own problem, reported by the params model or the binding
    try:
        tree = json.loads(row[0]) if row else {}
    except RecursionError:
        # A query nested some 500 levels deep (DuckDB binds 1,000) has a parse tree deeper than
        # Python's json reads: leave its tables to the binding, which names an unknown one too.
        return []
    if tree.get("error"):
        return []
    tables: set[str] = set()
    ctes: set[str] = set()
    stack: list[Any] = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "BASE_TABLE" and not item.get("schema_name") and not item.get("catalog_name"):
                tables.add(str(item.get("table_name")))
            if isinstance(item.get("cte_map"), dict):
                ctes.update(str(entry.get("key")) for entry in item["cte_map"].get("map") or [])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    known = {folded_name(name) for name in [*inputs, *ctes]}
    return sorted(name for name in tables if folded_name(name) not in known)


def _logical(duckdb_type: str) -> str:
    kind = duckdb_type.upper()
    if kind in {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}:
        return "integer"
    if kind in {"FLOAT", "DOUBLE", "REAL"} or kind.startswith("DECIMAL"):
        return "float"
    if kind == "BOOLEAN":
        return "boolean"
    if kind.startswith("TIMESTAMP") or kind == "DATE":
        return "datetime"
    if kind == "VARCHAR":
        return "string"
    return "any"


def _case_clash(table: str, columns: list[str]) -> str | None:
    """DuckDB's names are case-insensitive: of two columns differing only by case it would
    silently rename one (``group`` -> ``group_1``). Say so instead. (Only ASCII letters fold:
    DuckDB keeps ``Ä`` and ``ä`` apart.)"""
    seen: dict[str, str] = {}
    for column in columns:
        other = seen.setdefault(folded_name(column), column)
        if other != column:
            return (
                f"input '{table}' has columns {other!r} and {column!r}, which SQL cannot tell apart "
                "(names are case-insensitive): rename one before this node (RenameColumns)"
            )
    return None


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


NODE_TYPES = [
    NodeType(
        "SqlTransform",
        SqlTransformParams,
        sql_transform,
        "transform",
        inputs=InputSpec(names=(), variadic=True, min_count=0),
        kinds=frozenset({"duckdb", "sql"}),
        infer_schema=sql_transform_schema,
    )
]
