"""A node's value inside the engine: a SELECT over the chain's Arrow inputs, not yet run.

Nodes compose by nesting their queries, so a chain of nodes is one query for DuckDB to plan;
it runs only where a value must exist (a stored node, a pandas reader: ``chain.py``).
``ordered`` says whether the rows come in a defined order: the query then carries the hidden
column ``ROW_ORDER`` and sorts by it, so the nodes after it keep pandas' row order.
"""

from __future__ import annotations

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

    @property
    def kinds(self) -> dict[str, str]:
        found = {name: kind_of_arrow(t) for name, t in zip(self.names, self.arrow_types, strict=True)}
        return {name: kind for name, kind in found.items() if kind is not None}

    def arrow_type(self, name: str) -> Any:
        return self.arrow_types[self.names.index(name)]


def describe(connection: Any, sql: str) -> Relation:
    """The relation of ``sql`` with its columns as DuckDB binds them (nothing is computed)."""
    schema = connection.sql(f"SELECT * FROM ({sql}) LIMIT 0").to_arrow_table().schema
    names = tuple(name for name in schema.names if name != ROW_ORDER)
    if len(set(names)) != len(names):
        from .errors import NotSupported

        raise NotSupported("duplicate column names")
    return Relation(sql, names, tuple(schema.field(name).type for name in names))


def folded_name(name: str) -> str:
    """A column name as DuckDB compares it: ASCII letters fold to lower case (``Ä`` and ``ä``
    stay apart), so two names with one folded name are one column to DuckDB."""
    return "".join(c.lower() if c.isascii() else c for c in name)


def column_list(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(quote_identifier(name) for name in names)


def ordered_output(rel: Relation) -> str:
    """The final query: the node's columns, in its row order."""
    return f"SELECT {column_list(rel.names)} FROM ({rel.sql}) ORDER BY {ROW_ORDER}"
