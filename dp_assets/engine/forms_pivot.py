"""PivotTable in the engine: DuckDB aggregates the rows, pandas lays out the aggregated cells.

``pd.pivot_table`` groups the rows by ``index`` + ``columns``, aggregates each value column,
then reshapes the groups into columns (unstack, sort, fill, drop empty columns); with a list of
``aggfunc`` it does that per function and puts the results side by side under the function's
name. The grouping over every row is the heavy part and is GroupAggregate's DuckDB form with
pandas' answer (``forms_aggregate.py``). Its result has one row per cell, so pivoting it with
``first`` (the one value of each cell; missing stays missing) gives the pivot of the rows; the
node's own code then declares columns, names them and moves the index into columns
(``finish_pivot``, which reads only the input's dtypes). pandas works on as many rows as the
output has cells; the output enters the engine as a table. ``size`` (a Series in pandas) and a
function listed twice run in pandas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dp_assets.catalog.schema import as_list

from .errors import NotSupported


def pivot_table(engine: Any, params: Any, inputs: Mapping[str, Any], flow_params: Mapping[str, Any]) -> Any:
    """The pivot as the engine's value (``chain.Deferred``)."""
    import pandas as pd

    from dp_assets.catalog.nodes.transforms_pivot import finish_pivot

    funcs = as_list(params.aggfunc)
    if "size" in funcs or len(set(funcs)) != len(funcs):
        raise NotSupported(f"aggfunc {params.aggfunc!r} (pandas' own columns)")
    given = inputs["input"]
    cells = [engine.run("GroupAggregate", _cells(params, given, func), inputs, flow_params) for func in funcs]
    try:
        pieces = [_pivot(cell.frame(), params) for cell in cells]
        table = pieces[0] if isinstance(params.aggfunc, str) else pd.concat(pieces, keys=funcs, axis=1)
        # the input's dtypes after the engine read it (an integer with a missing value: float64)
        result = finish_pivot(table, _no_rows(given), params)
    except Exception as err:  # pandas reports it over the rows when it runs the node
        raise NotSupported(f"the pivot of the cells: {type(err).__name__}: {err}") from err
    return engine.value_of(result)


def _pivot(cells: Any, params: Any) -> Any:
    import pandas as pd

    return pd.pivot_table(
        cells,
        index=params.index,
        columns=params.columns,
        values=params.values,
        aggfunc="first",
        fill_value=params.fill_value,
        dropna=params.dropna,
        sort=params.sort,
    )


def _cells(params: Any, given: Any, func: str) -> Any:
    """GroupAggregate's params for the cells: one row per index and columns value, each value
    column aggregated by ``func`` under its own name."""
    from dp_assets.catalog.nodes.transforms import GroupAggregateParams

    keys = [*as_list(params.index), *as_list(params.columns)]
    values = as_list(params.values) or [name for name in _names(given) if name not in keys]
    if not values or len(set(keys)) != len(keys) or set(values) & set(keys) or len(set(values)) != len(values):
        raise NotSupported("keys and values that pandas pivots by its own rules")
    agg = {name: (name, func) for name in values}
    return GroupAggregateParams(by=keys, agg=agg, dropna=params.dropna, sort=params.sort)


def _names(value: Any) -> list[str]:
    """The column names of an input (a frame, an Arrow table or a deferred query)."""
    relation = getattr(value, "relation", None)
    if relation is not None:
        return list(relation.names)
    columns = getattr(value, "columns", None)
    return [str(name) for name in (columns if columns is not None else value.column_names)]


def _no_rows(given: Any) -> Any:
    """The input as pandas holds it, without its rows (its columns and dtypes). A deferred input
    was settled when the cells were computed (an integer with a missing value is float64)."""
    import pyarrow as pa

    from .frames import arrow_to_frame
    from .nulls import settle

    if hasattr(given, "iloc"):
        return given.iloc[:0]
    relation = getattr(given, "relation", None)
    if relation is not None:
        schema = pa.schema(list(zip(relation.names, relation.arrow_types, strict=True)))
        return arrow_to_frame(schema.empty_table(), given.hints)
    return arrow_to_frame(settle(given)[0].schema.empty_table(), {})
