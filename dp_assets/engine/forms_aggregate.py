"""DuckDB forms of GroupAggregate and WindowFunctions, with pandas' rules for missing values:
``sum`` of nothing is 0 and ``prod`` 1, ``first``/``last`` skip missing values, ``count`` counts
the present ones, a cumulative or ranked value of a missing value is missing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dp_assets.catalog.schema import as_list

from .errors import NotSupported
from .relation import ROW_ORDER, Relation, column_list
from .sql_expressions import quote_identifier

R = ROW_ORDER
_NUMERIC = {"int", "float", "bool"}


def _aggregate(func: str, column: str, rel: Relation) -> str:
    kind = rel.kinds.get(column)
    if kind is None:
        raise NotSupported(f"aggregating column {column!r}")
    c = quote_identifier(column)
    if func in ("sum", "mean", "median", "std", "var", "prod") and kind not in ("int", "float"):
        raise NotSupported(f"{func} of {kind}")  # pandas' bool sums, text sums...
    if func == "sum":
        return f"CAST(coalesce(sum({c}), 0) AS {'BIGINT' if kind == 'int' else 'DOUBLE'})"
    if func == "prod":
        if kind == "int":
            raise NotSupported("an integer product (numpy wraps around, DuckDB does not)")
        return f"CAST(coalesce(product({c}), 1) AS DOUBLE)"
    simple = {
        "mean": f"CAST(avg({c}) AS DOUBLE)",
        "median": f"CAST(quantile_cont({c}, 0.5) AS DOUBLE)",
        "std": f"CAST(stddev_samp({c}) AS DOUBLE)",
        "var": f"CAST(var_samp({c}) AS DOUBLE)",
        "min": f"min({c})",
        "max": f"max({c})",
        "count": f"count({c})",
        "size": "count(*)",
        "nunique": f"count(DISTINCT {c})",
        "first": f"arg_min({c}, {R}) FILTER (WHERE {c} IS NOT NULL)",
        "last": f"arg_max({c}, {R}) FILTER (WHERE {c} IS NOT NULL)",
    }
    if func in ("min", "max") and kind not in _NUMERIC | {"str", "date", "ts", "tstz"}:
        raise NotSupported(f"{func} of {kind}")
    return simple[func]


def group_aggregate(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rel = inputs["input"]
    by = as_list(params.by)
    if len(set(by)) != len(by) or not set(by) <= set(rel.kinds):
        raise NotSupported("group keys")
    aggregates = [
        f"{_aggregate(func, column, rel)} AS {quote_identifier(name)}" for name, (column, func) in params.agg.items()
    ]
    names = [*by, *params.agg]
    if len(set(names)) != len(names):
        raise NotSupported("an aggregate named as a key")
    if not by:  # one row, also over no rows
        return f"SELECT {', '.join(aggregates)}, 0 AS {R} FROM ({rel.sql})"
    keys = column_list(by)
    where = " AND ".join(f"{quote_identifier(k)} IS NOT NULL" for k in by) if params.dropna else "true"
    # sort: by the keys; else in the order of each group's first row, as pandas' sort=False
    order = group_order(params) or f"min({R})"
    return (
        f"SELECT {keys}, {', '.join(aggregates)}, row_number() OVER (ORDER BY {order}) AS {R} "
        f"FROM ({rel.sql}) WHERE {where} GROUP BY {keys}"
    )


def group_order(params: Any) -> str | None:
    """A sorted GroupAggregate's row order over its own columns (the keys are distinct per row)."""
    by = as_list(params.by)
    return ", ".join(f"{quote_identifier(k)} ASC NULLS LAST" for k in by) if params.sort and by else None


def window_functions(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rel = inputs["input"]
    partition = as_list(params.partition_by)
    order = as_list(params.order_by)
    if not set(partition) <= set(rel.kinds) or not set(order) <= set(rel.kinds):
        raise NotSupported("window keys")
    flags = params.ascending if isinstance(params.ascending, list) else [params.ascending] * len(order)
    if len(flags) != len(order):
        raise NotSupported("ascending of another length than order_by")
    keys = [f"{quote_identifier(c)} {'ASC' if up else 'DESC'} NULLS LAST" for c, up in zip(order, flags, strict=True)]
    over_order = ", ".join([*keys, R])
    over = f"({'PARTITION BY ' + column_list(partition) + ' ' if partition else ''}ORDER BY {over_order})"
    columns = [_window(spec, order, rel, over) for spec in params.functions]
    outputs = [spec.output for spec in params.functions]
    if len(set(outputs)) != len(outputs) or R in outputs:
        raise NotSupported("repeated outputs")
    replaced = [name for name in outputs if name in rel.names]
    head = (
        f"* REPLACE ({', '.join(c for c, o in zip(columns, outputs, strict=True) if o in replaced)})"
        if replaced
        else "*"
    )
    added = [c for c, o in zip(columns, outputs, strict=True) if o not in replaced]
    return f"SELECT {', '.join([head, *added])} FROM ({rel.sql})"


def _window(spec: Any, order: list[str], rel: Relation, over: str) -> str:
    func = spec.function
    column = spec.column or (order[0] if order else None)
    out = quote_identifier(spec.output)
    if func == "row_number":
        return f"row_number() OVER {over} AS {out}"
    if func == "cumcount":
        return f"(row_number() OVER {over} - 1) AS {out}"
    if column is None or column not in rel.kinds:
        raise NotSupported(f"{func} of a column DuckDB cannot read")
    kind = rel.kinds[column]
    c = quote_identifier(column)
    if func in ("lag", "lead"):
        if kind not in ("int", "float", "str", "date", "ts"):
            raise NotSupported(f"{func} of {kind}")  # bool: object with None in pandas
        cast = "DOUBLE" if kind == "int" else None  # shift() of integers gives float64
        value = f"{func}({c}, {int(spec.periods)}) OVER {over}"
        return f"{f'CAST({value} AS {cast})' if cast else value} AS {out}"
    if func in ("cumsum", "cummax", "cummin"):
        if kind not in ("int", "float"):
            raise NotSupported(f"{func} of {kind}")
        agg = {"cumsum": "sum", "cummax": "max", "cummin": "min"}[func]
        cast = "BIGINT" if kind == "int" else "DOUBLE"
        return f"CASE WHEN {c} IS NULL THEN NULL ELSE CAST({agg}({c}) OVER {over} AS {cast}) END AS {out}"
    if func in ("rank", "dense_rank") and (func == "dense_rank" or spec.method in ("min", "dense")):
        if column != (order[0] if order else None) or len(order) != 1:
            raise NotSupported("a rank of another column than the one order")
        sql_fn = "dense_rank" if func == "dense_rank" or spec.method == "dense" else "rank"
        rank_over = over.replace(f", {R})", ")")  # ties share a rank: no tie-breaker
        return f"CASE WHEN {c} IS NULL THEN NULL ELSE CAST({sql_fn}() OVER {rank_over} AS DOUBLE) END AS {out}"
    if func.startswith("rolling_") and kind in ("int", "float"):
        agg = {"rolling_mean": "avg", "rolling_sum": "sum", "rolling_min": "min", "rolling_max": "max"}[func]
        frame = over.replace(f", {R})", f", {R} ROWS BETWEEN {int(spec.window) - 1} PRECEDING AND CURRENT ROW)")
        needed = spec.window if spec.min_periods is None else spec.min_periods
        value = f"CAST({agg}({c}) OVER {frame} AS DOUBLE)"
        return f"CASE WHEN count({c}) OVER {frame} >= {int(needed)} THEN {value} END AS {out}"
    raise NotSupported(f"{func} (method {spec.method})")
