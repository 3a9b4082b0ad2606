"""A node's value inside the engine: a SELECT over the chain's Arrow inputs, not yet run.

Nodes compose by nesting their queries, so a chain of nodes is one query for DuckDB to plan;
it runs only where a value must exist (a stored node, a pandas reader: ``chain.py``).
``ordered`` says whether the rows come in a defined order: the query then carries the hidden
column ``ROW_ORDER`` and sorts by it, so the nodes after it keep pandas' row order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from .sql_expressions import kind_of_arrow, quote_identifier

ROW_ORDER = "__dp_row"  # a reserved name: a frame with this column runs in pandas


@dataclass(frozen=True)
class Relation:
    sql: str  # a query whose columns are ``names`` plus ROW_ORDER
    names: tuple[str, ...]
    arrow_types: tuple[Any, ...]
    nonnull: frozenset[str] = frozenset()  # columns known to hold no missing value (nulls.py)
    #: an ORDER BY over the node's own columns giving the rows in ROW_ORDER's order, with no ties
    #: (a sorted GroupAggregate's keys): the final query sorts by it, and DuckDB then leaves out
    #: the window that numbers the rows when nothing else reads ROW_ORDER
    order_keys: str | None = None

    @property
    def kinds(self) -> dict[str, str]:
        found = {name: kind_of_arrow(t) for name, t in zip(self.names, self.arrow_types, strict=True)}
        return {name: kind for name, kind in found.items() if kind is not None}

    def arrow_type(self, name: str) -> Any:
        return self.arrow_types[self.names.index(name)]


def describe(connection: Any, sql: str) -> Relation:
    """The relation of ``sql`` with its columns as DuckDB binds them (nothing is computed).

    Each node of a chain describes its query, which nests all those before it: binding alone
    costs a fraction of running it on no rows (planning, then an empty Arrow result), so the
    Arrow types come from the bound DuckDB types where their export is fixed (``_arrow_of``),
    and from running the query on no rows only when a column has another type. The hidden
    ``ROW_ORDER`` is no column of the node, so its type does not count: a join's is a HUGEINT,
    which sent every node after a join to the slower way (planned and run, its files opened)."""
    bound = connection.sql(f"SELECT * FROM ({sql}) LIMIT 0")
    shown = [(name, t) for name, t in zip(bound.columns, bound.types, strict=True) if name != ROW_ORDER]
    arrow_types = _arrow_types([t for _, t in shown])
    if arrow_types is None:
        schema = bound.to_arrow_table().schema
        kept = [(field.name, field.type) for field in schema if field.name != ROW_ORDER]
    else:
        kept = [(name, t) for (name, _), t in zip(shown, arrow_types, strict=True)]
    names = tuple(name for name, _ in kept)
    if len(set(names)) != len(names):
        from .errors import NotSupported

        raise NotSupported("duplicate column names")
    return Relation(sql, names, tuple(t for _, t in kept))


def _arrow_types(duckdb_types: list[Any]) -> list[Any] | None:
    """The Arrow types DuckDB exports these column types as, or None when one has no fixed
    export here (decimals, lists, intervals...: the caller asks DuckDB itself)."""
    arrow_of = _arrow_of()
    found = [arrow_of.get(str(t)) for t in duckdb_types]
    return None if any(t is None for t in found) else found


@functools.cache
def _arrow_of() -> dict[str, Any]:
    """DuckDB type name -> its Arrow export with the engine's settings (connection.py), built on
    first use (pyarrow is imported by then). A zoned timestamp takes the connection's zone, so it
    is left to DuckDB; tests/nodes/test_duckdb_describe.py compares every entry with DuckDB's own."""
    import pyarrow as pa

    return {
        "BOOLEAN": pa.bool_(),
        "TINYINT": pa.int8(),
        "SMALLINT": pa.int16(),
        "INTEGER": pa.int32(),
        "BIGINT": pa.int64(),
        "UTINYINT": pa.uint8(),
        "USMALLINT": pa.uint16(),
        "UINTEGER": pa.uint32(),
        "UBIGINT": pa.uint64(),
        "FLOAT": pa.float32(),
        "DOUBLE": pa.float64(),
        "VARCHAR": pa.string(),
        "DATE": pa.date32(),
        "TIMESTAMP": pa.timestamp("us"),
        "TIMESTAMP_S": pa.timestamp("s"),
        "TIMESTAMP_MS": pa.timestamp("ms"),
        "TIMESTAMP_NS": pa.timestamp("ns"),
    }


def folded_name(name: str) -> str:
    """A column name as DuckDB compares it: ASCII letters fold to lower case (``Ä`` and ``ä``
    stay apart), so two names with one folded name are one column to DuckDB."""
    return "".join(c.lower() if c.isascii() else c for c in name)


def column_list(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(quote_identifier(name) for name in names)


def ordered_output(rel: Relation) -> str:
    """The final query: the node's columns, in its row order."""
    return f"SELECT {column_list(rel.names)} FROM ({rel.sql}) ORDER BY {rel.order_keys or ROW_ORDER}"
