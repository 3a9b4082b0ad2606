"""TableIOManager: an asset stored as a PostgreSQL table, replaced in one transaction.

A new value is loaded into a fresh table (``_dp_new_<random>``) and swapped in with
``DROP TABLE`` + ``ALTER TABLE ... RENAME`` in the same transaction that loaded it. PostgreSQL's
locks make a concurrent reader see the old complete table or the new one, never a half-loaded
table or an empty one, and a writer killed mid-load leaves nothing behind (the transaction rolls
back, the temporary table with it).

Where an asset goes: schema from output metadata ``dp/schema`` (else the asset key's prefix,
i.e. the flow id, else ``default_schema``), table from ``dp/table`` (else the key's last part).
Identifiers must match ``[A-Za-z_][A-Za-z0-9_]*`` and are quoted; anything else is refused
before a statement is sent.

What a replace loses: indexes, grants and views on the old table (they belong to the dropped
table); declare them in a downstream step if needed. Partitioned assets are not supported.
"""

from __future__ import annotations

import io
import re
import uuid
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
from pydantic import Field

from dp_io.errors import InvalidIdentifierError
from dp_io.formats import is_arrow_table, is_dataframe

if TYPE_CHECKING:
    from dp_io.contract import LatestValueReader

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_IDENTIFIER = 63  # PostgreSQL truncates longer names silently: refuse them instead


def quote_identifier(name: str, what: str = "identifier") -> str:
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or len(name) > _MAX_IDENTIFIER:
        raise InvalidIdentifierError(
            f"{what} {name!r} is not a valid SQL identifier: use letters, digits and '_', "
            f"not starting with a digit, at most {_MAX_IDENTIFIER} characters"
        )
    return f'"{name}"'


def qualified(schema: str, table: str) -> str:
    return f"{quote_identifier(schema, 'schema')}.{quote_identifier(table, 'table')}"


class TableIOManager(dg.ConfigurableIOManager):
    """Stores DataFrame assets as PostgreSQL tables and reads them back as DataFrames."""

    url: str = Field(
        description="SQLAlchemy URL of the database, e.g. postgresql+psycopg2://user@host/db "
        "(pass secrets with dg.EnvVar)."
    )
    default_schema: str = Field(default="public", description="Schema for assets whose key has no prefix.")
    dtype_backend: Literal["numpy", "numpy_nullable", "pyarrow"] = Field(
        default="numpy",
        description="pandas dtype backend when reading tables back ('numpy_nullable' keeps "
        "integer columns with NULLs as Int64).",
    )

    # ---- where an asset lives ----------------------------------------------------------------

    def table_for(self, asset_key: dg.AssetKey, metadata: Any) -> tuple[str, str]:
        metadata = metadata or {}
        path = asset_key.path
        default_schema = path[0] if len(path) > 1 else self.default_schema
        # Present-but-empty is an error, not a fallback (hence no ``or``): check what was written.
        schema = metadata.get("dp/schema", default_schema)
        table = metadata.get("dp/table", path[-1])
        where = f"asset {asset_key.to_user_string()}"
        quote_identifier(str(schema), f"{where}: schema")
        quote_identifier(str(table), f"{where}: table")
        return str(schema), str(table)

    def _engine(self):
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        # No pool: one connection per read or write, closed right after (the database's
        # connection budget is shared with Dagster's own storage).
        return sa.create_engine(self.url, poolclass=NullPool)

    # ---- Dagster entry points ----------------------------------------------------------------

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if not context.has_asset_key:
            raise dg.DagsterInvariantViolationError(
                f"TableIOManager stores assets only; op output {context.name!r} has no asset key"
            )
        where = context.asset_key.to_user_string()
        if context.has_asset_partitions:
            raise dg.DagsterInvariantViolationError(f"asset {where}: TableIOManager does not store partitioned assets")
        if is_arrow_table(obj):  # the DuckDB engine's output
            obj = obj.to_pandas()
        if not is_dataframe(obj):
            raise dg.DagsterTypeCheckDidNotPass(
                f"asset {where}: TableIOManager stores pandas DataFrames, got {type(obj).__name__}"
            )
        schema, table = self.table_for(context.asset_key, context.definition_metadata)
        engine = self._engine()
        try:
            rows = replace_table(engine, schema, table, obj)
        finally:
            engine.dispose()
        name = f"{schema}.{table}"
        context.add_output_metadata(
            {
                "dagster/table_name": dg.MetadataValue.text(name),
                "dagster/row_count": dg.MetadataValue.int(rows),
                "dagster/column_schema": dg.MetadataValue.table_schema(
                    dg.TableSchema(columns=[dg.TableColumn(name=str(c), type=str(t)) for c, t in obj.dtypes.items()])
                ),
            }
        )

    def load_input(self, context: dg.InputContext) -> Any:
        if not context.has_asset_key:
            raise dg.DagsterInvariantViolationError(
                f"TableIOManager loads assets only; input {context.name!r} has no asset key"
            )
        upstream = context.upstream_output
        return self.load_asset(context.asset_key, upstream.definition_metadata if upstream is not None else {})

    def load_latest(
        self,
        instance: dg.DagsterInstance,
        asset_key: dg.AssetKey,
        *,
        definition_metadata: Any = None,
        lineage_of: str | None = None,
        partition_key: str | None = None,
    ) -> Any:
        """The asset's value now (:class:`dp_io.contract.LatestValueReader`): the table holds
        one value, the latest, so neither the event log nor a run's lineage is consulted (nor a
        partition: a partitioned flow cannot store its nodes in tables, spec validation says)."""
        return self.load_asset(asset_key, definition_metadata)

    def load_asset(self, asset_key: dg.AssetKey, definition_metadata: Any) -> Any:
        """The asset's table as it is now (the step of a later run reads it this way)."""
        schema, table = self.table_for(asset_key, definition_metadata)
        engine = self._engine()
        try:
            return read_table(engine, schema, table, self.dtype_backend)
        finally:
            engine.dispose()


def replace_table(engine: Any, schema: str, table: str, frame: Any) -> int:
    """Load ``frame`` into a new table and swap it for ``schema.table``, all in one transaction."""
    import sqlalchemy as sa

    target = qualified(schema, table)
    temporary = f"_dp_new_{uuid.uuid4().hex[:12]}"
    frame = _with_named_index(frame)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}"))
        frame.to_sql(temporary, conn, schema=schema, index=False, method=_copy_method(conn.dialect.driver))
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {target}"))
        conn.execute(sa.text(f"ALTER TABLE {qualified(schema, temporary)} RENAME TO {quote_identifier(table)}"))
    return len(frame)


def read_table(engine: Any, schema: str, table: str, dtype_backend: str = "numpy") -> Any:
    import pandas as pd
    import sqlalchemy as sa

    kwargs = {} if dtype_backend == "numpy" else {"dtype_backend": dtype_backend}
    with engine.connect() as conn:
        return pd.read_sql_query(sa.text(f"SELECT * FROM {qualified(schema, table)}"), conn, **kwargs)


def _with_named_index(frame: Any) -> Any:
    """A named index becomes columns (a table has no index); an unnamed one is dropped."""
    names = [n for n in frame.index.names if n is not None]
    return frame.reset_index() if names else frame


# ---- bulk load with COPY (to_sql's default INSERTs are ~10x slower) ------------------------


def _copy_method(driver: str):
    if driver == "psycopg2":
        return _copy_psycopg2
    if driver == "psycopg":
        return _copy_psycopg
    return "multi"


def _copy_target(pd_table: Any, keys: list[str]) -> str:
    name = qualified(pd_table.schema, pd_table.name) if pd_table.schema else quote_identifier(pd_table.name)
    columns = ", ".join('"' + str(k).replace('"', '""') + '"' for k in keys)
    return f"COPY {name} ({columns}) FROM STDIN"


def _copy_psycopg2(pd_table: Any, conn: Any, keys: list[str], data_iter: Any) -> int:
    buffer = io.StringIO()
    rows = 0
    for row in data_iter:
        buffer.write("\t".join(_copy_text(v) for v in row))
        buffer.write("\n")
        rows += 1
    buffer.seek(0)
    with conn.connection.cursor() as cursor:
        cursor.copy_expert(_copy_target(pd_table, keys), buffer)
    return rows


def _copy_psycopg(pd_table: Any, conn: Any, keys: list[str], data_iter: Any) -> int:
    rows = 0
    with conn.connection.cursor() as cursor, cursor.copy(_copy_target(pd_table, keys)) as copy:
        for row in data_iter:
            copy.write_row(row)
            rows += 1
    return rows


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One value in COPY's text format (NULL is ``\\N``; backslash, tab and newlines escaped)."""
    if value is None:
        return "\\N"
    if isinstance(value, float) and value != value:
        return "\\N"
    return str(value).translate(_COPY_ESCAPES)


if TYPE_CHECKING:  # the type checker holds the class to the contract the runtime relies on
    _contract: type[LatestValueReader] = TableIOManager
