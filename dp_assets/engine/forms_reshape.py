"""The DuckDB form of Melt: one block of rows per value column, in the order of ``value_vars``,
each block in the input's row order, as ``DataFrame.melt`` gives them. The value column takes
the value columns' common kind (integers with floats: float64, as numpy upcasts); value columns
of other mixed kinds (pandas' ``object``) run in pandas."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dp_assets.catalog.schema import as_list

from .errors import NotSupported
from .relation import ROW_ORDER, Relation, column_list
from .sql_expressions import quote_identifier, quote_text

R = ROW_ORDER


def melt(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rel = inputs["input"]
    ids = as_list(params.id_vars)
    values = as_list(params.value_vars) or [name for name in rel.names if name not in ids]
    names = [*ids, params.var_name, params.value_name]
    if not values or len(set(names)) != len(names) or R in names or not set(ids) | set(values) <= set(rel.kinds):
        raise NotSupported("columns that pandas melts by its own rules")
    kinds = {rel.kinds[name] for name in values}
    types = {str(rel.arrow_type(name)) for name in values}
    if kinds == {"int", "float"}:
        cast = "DOUBLE"
    elif len(kinds) == 1 and len(types) == 1:
        cast = None
    else:
        raise NotSupported("value columns of different types (pandas: object)")
    parts = []
    for position, name in enumerate(values):
        value = f"CAST({quote_identifier(name)} AS {cast})" if cast else quote_identifier(name)
        head = f"{column_list(ids)}, " if ids else ""
        # the blocks in order, each in the input's order: (block, row) as one number, no sort
        order = f"CAST({position} AS HUGEINT) * 18446744073709551616 + {R}"
        parts.append(
            f"SELECT {head}{quote_text(name)} AS {quote_identifier(params.var_name)}, "
            f"{value} AS {quote_identifier(params.value_name)}, {order} AS {R} FROM ({rel.sql})"
        )
    return " UNION ALL ".join(f"({part})" for part in parts)
