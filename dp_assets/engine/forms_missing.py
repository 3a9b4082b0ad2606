"""The DuckDB form of HandleMissingValues: ``drop`` (``dropna``), ``fill`` with a value of the
column's own kind (``fillna``) and ``ffill``/``bfill`` in the input's row order, with ``limit``.

pandas' dtype after a fill depends on the rows where the value is of another kind (a text value
in a float column makes it ``object`` only if a value was missing), so such a fill runs in
pandas. ``mean``, ``median`` and ``mode`` become a fill with the statistics pandas computes
(``statistics_as_fill``): the columns they read are read from DuckDB, in the input's row order
(a float sum depends on it), and the node's own ``fill_values`` computes them.
An integer or boolean column holds no missing value here (``nulls.py``): a fill leaves it as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import NotSupported
from .frames import Hints, arrow_to_frame
from .relation import ROW_ORDER, Relation, column_list
from .sql_expressions import literal, quote_identifier

R = ROW_ORDER
_UNTOUCHED = ("int", "bool")  # kinds that hold no missing value in the engine


def handle_missing_values(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rel = inputs["input"]
    columns = list(params.subset) if params.subset is not None else list(rel.names)
    if not columns or len(set(columns)) != len(columns) or not set(columns) <= set(rel.kinds):
        raise NotSupported("a subset that pandas reads by its own rules")
    if params.strategy == "drop":
        return _drop(params, rel, columns)
    if params.strategy == "fill":
        return _replace(rel, {c: f"coalesce({quote_identifier(c)}, {v})" for c, v in _fills(params, rel, columns)})
    if params.strategy in ("ffill", "bfill"):
        return _replace(rel, {c: _carried(params, c) for c in columns if rel.kinds[c] not in _UNTOUCHED})
    raise NotSupported(f"strategy {params.strategy!r} (a statistic of the whole column: statistics_as_fill)")


def statistics_as_fill(params: Any, rel: Relation, hints: Hints, engine: Any) -> Any:
    """``params`` with ``mean``/``median``/``mode`` turned into the ``fill`` with pandas' values
    (``params`` itself for another strategy)."""
    from dp_assets.catalog.nodes.transforms_rows import fill_values

    if params.strategy not in ("mean", "median", "mode"):
        return params
    columns = list(params.subset) if params.subset is not None else list(rel.names)
    if not set(columns) <= set(rel.kinds) or len(set(columns)) != len(columns):
        raise NotSupported("a subset that pandas reads by its own rules")
    try:
        table = engine.fetch_arrow(f"SELECT {column_list(columns)} FROM ({rel.sql}) ORDER BY {R}")
        values = fill_values(arrow_to_frame(table, hints), params, columns)
    except Exception as err:  # a statistic pandas refuses (the mean of text...): pandas reports it
        raise NotSupported(f"the {params.strategy}: {type(err).__name__}: {err}") from err
    return params.model_copy(update={"strategy": "fill", "value": values})


def _drop(params: Any, rel: Relation, columns: list[str]) -> str:
    present = [f"CAST({quote_identifier(c)} IS NOT NULL AS INTEGER)" for c in columns]
    if params.thresh is not None:
        condition = f"({' + '.join(present)}) >= {int(params.thresh)}"
    elif params.how == "all":
        condition = " OR ".join(f"{quote_identifier(c)} IS NOT NULL" for c in columns)
    else:
        condition = " AND ".join(f"{quote_identifier(c)} IS NOT NULL" for c in columns)
    return f"SELECT * FROM ({rel.sql}) WHERE {condition}"


def _fills(params: Any, rel: Relation, columns: list[str]) -> list[tuple[str, str]]:
    """(column, SQL of its fill value) for each column a fill changes."""
    if isinstance(params.value, dict):
        if not set(params.value) <= set(rel.names):
            raise NotSupported("a fill value for a column the input does not have")
        wanted = {c: v for c, v in params.value.items() if c in columns}
    else:
        wanted = dict.fromkeys(columns, params.value)
    fills = []
    for column, value in wanted.items():
        kind = rel.kinds[column]
        if kind in _UNTOUCHED:
            continue
        if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
            fills.append((column, f"CAST({literal(float(value)).text} AS DOUBLE)"))
        elif kind == "str" and isinstance(value, str):
            fills.append((column, literal(value).text))
        else:  # pandas' dtype then depends on whether a value was missing
            raise NotSupported(f"filling column {column!r} of kind {kind} with {type(value).__name__}")
    return fills


def _carried(params: Any, column: str) -> str:
    """The last (ffill) or next (bfill) present value, at most ``limit`` rows away."""
    c = quote_identifier(column)
    reach = "UNBOUNDED" if params.limit is None else str(int(params.limit))
    if params.strategy == "ffill":
        frame = f"ORDER BY {R} ROWS BETWEEN {reach} PRECEDING AND CURRENT ROW"
        return f"last_value({c} IGNORE NULLS) OVER ({frame})"
    frame = f"ORDER BY {R} ROWS BETWEEN CURRENT ROW AND {reach} FOLLOWING"
    return f"first_value({c} IGNORE NULLS) OVER ({frame})"


def _replace(rel: Relation, values: dict[str, str]) -> str:
    if not values:
        return f"SELECT * FROM ({rel.sql})"
    replaced = ", ".join(f"{sql} AS {quote_identifier(column)}" for column, sql in values.items())
    return f"SELECT * REPLACE ({replaced}) FROM ({rel.sql})"
