"""PivotTable in the engine: DuckDB aggregates the rows, pandas lays out the aggregated cells.

``pd.pivot_table`` groups the rows by ``index`` + ``columns``, aggregates each value column,
then reshapes the groups into columns (unstack, sort, fill, drop empty columns, name them). The
grouping over every row is the heavy part and is GroupAggregate's DuckDB form with pandas'
answer (``forms_aggregate.py``). Its result has one row per cell, so pivoting it again with
``first`` (the one value of each cell; missing stays missing) gives the pivot of the rows: the
node's own code (``pivot_frame``) does that layout, over as many rows as the output has cells.
The output then enters the engine as a table. A list of ``aggfunc`` (a column level per
function) and ``size`` (a Series in pandas) run in pandas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dp_assets.catalog.schema import as_list

from .errors import NotSupported


def pivot_table(engine: Any, params: Any, inputs: Mapping[str, Any], flow_params: Mapping[str, Any]) -> Any:
    """The pivot as the engine's value (``chain.Deferred``)."""
    from dp_assets.catalog.nodes.transforms_pivot import pivot_frame

    if not isinstance(params.aggfunc, str) or params.aggfunc == "size":
        raise NotSupported(f"aggfunc {params.aggfunc!r} (pandas' own column levels)")
    cells = engine.run("GroupAggregate", _cells(params, inputs["input"]), inputs, flow_params)
    try:
        table = pivot_frame(cells.frame(), params.model_copy(update={"aggfunc": "first"}))
    except Exception as err:  # pandas reports it over the rows when it runs the node
        raise NotSupported(f"the pivot of the cells: {type(err).__name__}: {err}") from err
    return engine.value_of(table)


def _cells(params: Any, given: Any) -> Any:
    """GroupAggregate's params for the cells: one row per index and columns value, each value
    column aggregated under its own name."""
    from dp_assets.catalog.nodes.transforms import GroupAggregateParams

    keys = [*as_list(params.index), *as_list(params.columns)]
    values = as_list(params.values) or [name for name in _names(given) if name not in keys]
    if not values or len(set(keys)) != len(keys) or set(values) & set(keys) or len(set(values)) != len(values):
        raise NotSupported("keys and values that pandas pivots by its own rules")
    agg = {name: (name, params.aggfunc) for name in values}
    return GroupAggregateParams(by=keys, agg=agg, dropna=params.dropna, sort=params.sort)


def _names(value: Any) -> list[str]:
    """The column names of an input (a frame, an Arrow table or a deferred query)."""
    relation = getattr(value, "relation", None)
    if relation is not None:
        return list(relation.names)
    columns = getattr(value, "columns", None)
    return [str(name) for name in (columns if columns is not None else value.column_names)]
