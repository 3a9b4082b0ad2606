"""Database sources: a table read with bound filters, and user SQL under a read-only login.

``TableReader`` takes no SQL text from the spec: the table and columns are checked identifiers
and ``where`` is a list of ``[column, op, value]`` conditions turned into SQLAlchemy expressions
with bound values. ``CustomSQLQuery`` is the one place for SQL text; it runs through
``DatabasesResource.user_sql_connection`` and ``user_sql_statement``: one read statement judged
by the database's own grammar, under a read-only login in a session the server keeps read-only
and timed, unless the connection is configured writable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from dp_assets.catalog.base import (
    NO_INPUTS,
    ColumnSchema,
    FrameStream,
    NodeContext,
    NodeType,
    Params,
)
from dp_assets.catalog.nodes.sql_names import (
    check_column,
    check_columns,
    check_name,
    check_table,
    split_table,
)
from dp_assets.deferred import pd

LogicalType = Literal["integer", "float", "string", "boolean", "datetime", "date", "any"]
JsonScalar = str | int | float | bool | None
STREAM_DESCRIPTION = (
    "Store the output part by part as it is read, one stored part per chunk (needs chunksize): "
    "the step holds one chunk at a time while storing it; dependants get the whole frame "
    "(docs/io.md, Streams)."
)
Op = Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "not null", "like"]


class Condition(Params):
    """One ``where`` condition: ``column op value``, the value sent as a bound parameter."""

    column: str = Field(description="Column of the table.")
    op: Op = Field(default="==", description="Comparison; 'in' / 'not in' take a list `value`.")
    value: JsonScalar | list[JsonScalar] = Field(
        default=None, description="Bound as a parameter, never spliced into SQL."
    )

    @field_validator("column")
    @classmethod
    def _column(cls, value: str) -> str:
        return check_column(value)


def _declared(columns: list[str] | dict[str, LogicalType] | None) -> ColumnSchema | None:
    return dict(columns) if isinstance(columns, dict) else None


def _read(
    conn: Any, statement: Any, params: Any, chunksize: int | None, parse_dates: Any, ctx: NodeContext
) -> pd.DataFrame:
    if not chunksize:
        return pd.read_sql_query(statement, conn, params=params, parse_dates=parse_dates)
    streamed = conn.execution_options(stream_results=True, max_row_buffer=chunksize)
    chunks = list(pd.read_sql_query(statement, streamed, params=params, parse_dates=parse_dates, chunksize=chunksize))
    ctx.add_metadata(chunks=len(chunks))
    if not chunks:
        return pd.read_sql_query(statement, conn, params=params, parse_dates=parse_dates)
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


def _streamed(
    connect: Callable[[], Any],
    statement_of: Callable[[Any], tuple[Any, Any]],
    chunksize: int,
    parse_dates: Any,
    check: Callable[[pd.DataFrame], None],
) -> Iterator[pd.DataFrame]:
    """The chunks of a query over one connection held open until the last (a server-side cursor).

    Each chunk's index continues the previous one, as the index of the whole read would; an empty
    result is one empty part, so its columns are kept.
    """
    with connect() as conn:
        statement, binds = statement_of(conn)
        streamed = conn.execution_options(stream_results=True, max_row_buffer=chunksize)
        offset, parts = 0, 0
        for chunk in pd.read_sql_query(statement, streamed, params=binds, parse_dates=parse_dates, chunksize=chunksize):
            check(chunk)
            chunk.index = pd.RangeIndex(offset, offset + len(chunk))
            offset, parts = offset + len(chunk), parts + 1
            yield chunk
        if not parts:
            empty = pd.read_sql_query(statement, conn, params=binds, parse_dates=parse_dates)
            check(empty)
            yield empty


def _open_stream(parts: Iterator[pd.DataFrame]) -> FrameStream:
    stream = FrameStream(parts)
    stream.peek()  # connect and read the first chunk now: a missing table fails in the node, retried
    return stream


def _check_stream(params: Any) -> Any:
    if params.stream and not params.chunksize:
        raise ValueError("stream: true needs chunksize (the rows of each stored part)")
    return params


def _check_declared(df: pd.DataFrame, declared: Mapping[str, str] | None, where: str) -> None:
    if declared:
        missing = [c for c in declared if c not in df.columns]
        if missing:
            raise ValueError(f"{where} lacks declared column(s): {', '.join(missing)}")


# --- TableReader -----------------------------------------------------------------------------


class TableReaderParams(Params):
    table: str = Field(description="Table name, or schema.table.")
    schema_: str | None = Field(default=None, alias="schema", description="Database schema of the table.")
    connection: str = Field(default="default", description="Named connection of the databases resource.")
    columns: list[str] | dict[str, LogicalType] | None = Field(
        default=None,
        description="Columns to read; a mapping to logical types also declares the output schema "
        "(checked before runs).",
    )
    where: list[Condition] = Field(
        default_factory=list,
        description="Conditions, all of which must hold: {column, op, value}; values are bound "
        "parameters, never SQL text.",
    )
    order_by: list[str] | None = Field(default=None, description="Columns the rows are ordered by (ORDER BY).")
    limit: int | None = Field(default=None, ge=0, description="Most rows read (LIMIT).")
    chunksize: int | None = Field(default=None, gt=0, description="Read this many rows at a time.")
    stream: bool = Field(default=False, description=STREAM_DESCRIPTION)
    parse_dates: list[str] | None = Field(default=None, description="Columns parsed as dates (read_sql's parse_dates).")

    @model_validator(mode="after")
    def _stream_needs_chunks(self) -> TableReaderParams:
        return _check_stream(self)

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return check_table(value)

    @field_validator("schema_")
    @classmethod
    def _schema(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "schema")

    @field_validator("columns", "order_by", "parse_dates")
    @classmethod
    def _columns(cls, value: Any) -> Any:
        return check_columns(value)


def _condition(column: Any, cond: Condition) -> Any:
    value = cond.value
    if cond.op in ("in", "not in"):
        if not isinstance(value, list):
            raise ValueError(f"where: op '{cond.op}' on '{cond.column}' needs a list value")
        return column.in_(value) if cond.op == "in" else column.not_in(value)
    if cond.op == "is null":
        return column.is_(None)
    if cond.op == "not null":
        return column.is_not(None)
    if cond.op == "like":
        return column.like(value)
    return {
        "==": column.__eq__,
        "!=": column.__ne__,
        "<": column.__lt__,
        "<=": column.__le__,
        ">": column.__gt__,
        ">=": column.__ge__,
    }[cond.op](value)


def _table_select(conn: Any, params: TableReaderParams, where: str) -> Any:
    """The SELECT of a TableReader: reflected table, checked columns, bound conditions."""
    import sqlalchemy as sa

    schema, name = split_table(params.table, params.schema_)
    try:
        table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)
    except sa.exc.NoSuchTableError:
        raise ValueError(f"{where} does not exist") from None
    wanted = list(params.columns) if params.columns else [c.name for c in table.columns]
    referenced = wanted + [c.column for c in params.where] + list(params.order_by or [])
    missing = [c for c in dict.fromkeys(referenced) if c not in table.columns]
    if missing:
        raise ValueError(f"{where} has no column(s) {', '.join(missing)}; it has {', '.join(table.columns.keys())}")
    statement = sa.select(*[table.columns[c] for c in wanted])
    for cond in params.where:
        statement = statement.where(_condition(table.columns[cond.column], cond))
    if params.order_by:
        statement = statement.order_by(*[table.columns[c] for c in params.order_by])
    if params.limit is not None:
        statement = statement.limit(params.limit)
    return statement


def table_reader(ctx: NodeContext, params: TableReaderParams, inputs: dict[str, Any]) -> pd.DataFrame | FrameStream:
    """Read a database table (``pd.read_sql_table``), with bound ``where`` conditions and chunks.

    With ``stream: true`` each chunk is stored as its own part as soon as it is read.
    """
    db = ctx.resource("databases")
    where = f"table '{params.table}' of connection '{params.connection}'"
    ctx.add_metadata(table=params.table, connection=params.connection)

    def check(df: pd.DataFrame) -> None:
        _check_declared(df, _declared(params.columns), where)

    engine = db.get_engine(params.connection)
    if params.stream:
        assert params.chunksize, "refused by the params' validator (_check_stream)"
        return _open_stream(
            _streamed(
                engine.connect,
                lambda conn: (_table_select(conn, params, where), None),
                params.chunksize,
                params.parse_dates,
                check,
            )
        )
    with engine.connect() as conn:
        df = _read(conn, _table_select(conn, params, where), None, params.chunksize, params.parse_dates, ctx)
    check(df)
    return df


# --- CustomSQLQuery --------------------------------------------------------------------------

# SQLAlchemy's own rule for ``:name`` in text(): not after ':' or a word character, not before ':'.
BIND = re.compile(r"(?<![:\w\x5c]):(\w+)(?!:)")


class CustomSQLQueryParams(Params):
    sql: str = Field(
        min_length=1,
        description="One SQL statement; `:name` binds take flow params (or `binds`). Runs "
        "read-only with a statement timeout unless the connection is configured writable.",
    )
    connection: str = Field(default="default", description="Named connection of the databases resource.")
    binds: dict[str, JsonScalar | list[JsonScalar]] = Field(
        default_factory=dict, description="Bind values that take precedence over flow params."
    )
    columns: dict[str, LogicalType] | None = Field(
        default=None, description="Declared output schema, checked before runs and after reading."
    )
    chunksize: int | None = Field(default=None, gt=0, description="Read this many rows at a time.")
    stream: bool = Field(default=False, description=STREAM_DESCRIPTION)
    parse_dates: list[str] | None = Field(default=None, description="Columns parsed as dates (read_sql's parse_dates).")

    @model_validator(mode="after")
    def _stream_needs_chunks(self) -> CustomSQLQueryParams:
        return _check_stream(self)


def bind_names(sql: str) -> list[str]:
    return list(dict.fromkeys(BIND.findall(sql)))


def custom_sql_query(
    ctx: NodeContext, params: CustomSQLQueryParams, inputs: dict[str, Any]
) -> pd.DataFrame | FrameStream:
    """Run one SQL query with ``:name`` binds (``pd.read_sql_query``); read-only unless allowed.

    With ``stream: true`` each chunk is stored as its own part as soon as it is read.
    """
    db = ctx.resource("databases")
    values = {**dict(ctx.flow_params), **params.binds}
    names = bind_names(params.sql)
    missing = [n for n in names if n not in values]
    if missing:
        raise ValueError(
            f"SQL bind(s) {', '.join(':' + n for n in missing)} have no value: add a "
            "flow param of that name or an entry in `binds`"
        )
    binds = {n: values[n] for n in names}
    ctx.add_metadata(connection=params.connection, writable=db.is_writable(params.connection))

    def check(df: pd.DataFrame) -> None:
        _check_declared(df, params.columns, f"the query of connection '{params.connection}'")

    def statement(conn: Any) -> tuple[Any, Any]:
        return db.user_sql_statement(conn, params.connection, params.sql, binds)

    if params.stream:
        assert params.chunksize, "refused by the params' validator (_check_stream)"
        return _open_stream(
            _streamed(
                lambda: db.user_sql_connection(params.connection),
                statement,
                params.chunksize,
                params.parse_dates,
                check,
            )
        )
    with db.user_sql_connection(params.connection) as conn:
        sql, sql_binds = statement(conn)
        df = _read(conn, sql, sql_binds, params.chunksize, params.parse_dates, ctx)
    check(df)
    return df


NODE_TYPES = [
    NodeType(
        "TableReader",
        TableReaderParams,
        table_reader,
        "source",
        inputs=NO_INPUTS,
        resources=frozenset({"databases"}),
        kinds=frozenset({"pandas", "sql"}),
        infer_schema=lambda params, inputs: _declared(params.columns),
    ),
    NodeType(
        "CustomSQLQuery",
        CustomSQLQueryParams,
        custom_sql_query,
        "source",
        inputs=NO_INPUTS,
        resources=frozenset({"databases"}),
        kinds=frozenset({"pandas", "sql"}),
        infer_schema=lambda params, inputs: dict(params.columns) if params.columns else None,
    ),
]
