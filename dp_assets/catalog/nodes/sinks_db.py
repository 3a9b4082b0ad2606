"""``TableWriter``: a DataFrame into a database table, whole or not at all (E4).

Every mode runs in one transaction on one connection:

- ``append`` (and ``fail``) inserts the rows; an error rolls all of them back.
- ``replace`` loads a staging table, then renames the old table away, renames the staging table
  into place and drops the old one. PostgreSQL and SQLite (with the transactional-DDL set-up of
  ``DatabasesResource``) make the swap atomic: a concurrent reader sees the old complete table
  until commit, then the new one; on any error the old table is untouched.
- ``upsert`` loads a staging table and, under a table lock, deletes the target rows whose ``keys``
  match staged rows and inserts the staged rows. Running it twice leaves the same table
  (idempotent, so a retried step does no harm). Whole rows are replaced.

Table and schema names are checked identifiers and every name reaches SQL quoted (V1).
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from dp_assets.catalog.base import ColumnSchema, NodeContext, NodeType, Params
from dp_assets.catalog.nodes.sql_names import (
    check_column,
    check_columns,
    check_name,
    check_table,
    split_table,
)
from dp_assets.catalog.schema import require_columns
from dp_assets.deferred import pd


class TableWriterParams(Params):
    table: str = Field(description="Table name, or schema.table.")
    schema_: str | None = Field(default=None, alias="schema", description="Database schema of the table.")
    connection: str = Field(default="default", description="Named connection of the databases resource.")
    if_exists: Literal["fail", "append", "replace", "upsert"] = Field(
        default="fail",
        description="When the table exists: fail, append rows, replace it atomically, or upsert rows on `keys`.",
    )
    keys: list[str] | None = Field(default=None, description="For upsert: the columns that identify a row.")
    chunksize: int | None = Field(default=None, gt=0, description="Rows per INSERT batch.")
    index: bool = Field(default=False, description="Write the index as a column (to_sql's index).")

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return check_table(value)

    @field_validator("schema_")
    @classmethod
    def _schema(cls, value: str | None) -> str | None:
        return None if value is None else check_name(value, "schema")

    @field_validator("keys")
    @classmethod
    def _keys(cls, value: list[str] | None) -> list[str] | None:
        return check_columns(value)

    @model_validator(mode="after")
    def _keys_for_upsert(self) -> TableWriterParams:
        if self.if_exists == "upsert" and not self.keys:
            raise ValueError("if_exists 'upsert' needs `keys`")
        return self


def _staging_name() -> str:
    return f"_dp_stage_{uuid.uuid4().hex[:16]}"


def _quote_table(conn: Any, schema: str | None, name: str) -> str:
    prep = conn.dialect.identifier_preparer
    return f"{prep.quote_schema(schema)}.{prep.quote(name)}" if schema else prep.quote(name)


def _rename(conn: Any, schema: str | None, old: str, new: str) -> None:
    conn.exec_driver_sql(
        f"ALTER TABLE {_quote_table(conn, schema, old)} RENAME TO {conn.dialect.identifier_preparer.quote(new)}"
    )


def _to_sql(df: pd.DataFrame, conn: Any, name: str, schema: str | None, params: TableWriterParams) -> None:
    df.to_sql(name, conn, schema=schema, if_exists="append", index=params.index, chunksize=params.chunksize)


def _replace(
    df: pd.DataFrame, conn: Any, schema: str | None, name: str, exists: bool, params: TableWriterParams
) -> None:
    staging = _staging_name()
    _to_sql(df, conn, staging, schema, params)
    if exists:
        old = _staging_name()
        _rename(conn, schema, name, old)
        _rename(conn, schema, staging, name)
        conn.exec_driver_sql(f"DROP TABLE {_quote_table(conn, schema, old)}")
    else:
        _rename(conn, schema, staging, name)


def _check_keys(df: pd.DataFrame, keys: list[str]) -> None:
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise ValueError(f"upsert key(s) {', '.join(missing)} are not columns of the input")
    null_keys = df[keys].isna().any(axis=1)
    if null_keys.any():
        raise ValueError(f"upsert keys {keys} are null in {int(null_keys.sum())} row(s); keys must be set")
    if df.duplicated(subset=keys).any():
        raise ValueError(f"upsert keys {keys} are not unique in the input; deduplicate it first")


def _upsert(df: pd.DataFrame, conn: Any, schema: str | None, name: str, params: TableWriterParams) -> int:
    import sqlalchemy as sa

    keys = list(params.keys or [])
    metadata = sa.MetaData()
    target = sa.Table(name, metadata, schema=schema, autoload_with=conn)
    columns = [str(c) for c in df.columns]
    missing = [c for c in columns if c not in target.columns]
    if missing:
        raise ValueError(f"table '{params.table}' has no column(s) {', '.join(missing)} to upsert into")
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"LOCK TABLE {_quote_table(conn, schema, name)} IN SHARE ROW EXCLUSIVE MODE")
    staging = _staging_name()
    _to_sql(df, conn, staging, schema, params)
    stage = sa.Table(staging, metadata, schema=schema, autoload_with=conn)
    match = sa.exists().where(sa.and_(*[stage.c[k] == target.c[k] for k in keys]))
    replaced = conn.execute(sa.delete(target).where(match)).rowcount
    conn.execute(sa.insert(target).from_select(columns, sa.select(*[stage.c[c] for c in columns])))
    conn.exec_driver_sql(f"DROP TABLE {_quote_table(conn, schema, staging)}")
    return max(replaced or 0, 0)


def table_writer(ctx: NodeContext, params: TableWriterParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Write the input to a database table (``df.to_sql``): append, atomic replace, or upsert on keys."""
    import sqlalchemy as sa

    df: pd.DataFrame = inputs["input"]
    for column in df.columns:
        try:
            check_column(str(column))
        except ValueError as exc:
            raise ValueError(f"input column cannot be written: {exc}") from None
    if params.if_exists == "upsert":
        _check_keys(df, list(params.keys or []))
    schema, name = split_table(params.table, params.schema_)
    db = ctx.resource("databases")
    replaced = 0
    with db.connect(params.connection) as conn:
        exists = sa.inspect(conn).has_table(name, schema=schema)
        if params.if_exists == "fail" and exists:
            raise ValueError(
                f"table '{params.table}' already exists (if_exists: fail); choose append, replace or upsert"
            )
        if params.if_exists == "replace":
            _replace(df, conn, schema, name, exists, params)
        elif params.if_exists == "upsert" and exists:
            replaced = _upsert(df, conn, schema, name, params)
        else:
            _to_sql(df, conn, name, schema, params)
    ctx.add_metadata(
        table=params.table,
        connection=params.connection,
        mode=params.if_exists,
        rows_written=len(df),
        rows_replaced=replaced,
    )
    return df


def table_writer_schema(params: TableWriterParams, inputs: dict) -> ColumnSchema | None:
    require_columns(inputs["input"], params.keys or [], "keys")
    return inputs["input"]


NODE_TYPES = [
    NodeType(
        "TableWriter",
        TableWriterParams,
        table_writer,
        "sink",
        resources=frozenset({"databases"}),
        kinds=frozenset({"pandas", "sql"}),
        side_effects=True,
        infer_schema=table_writer_schema,
    ),
]
