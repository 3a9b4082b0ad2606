"""Pivot tables (``pd.pivot_table``), with columns declared so every run has the same ones."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from dp_assets.catalog.base import (
    ColumnSchema,
    NodeContext,
    NodeType,
    Params,
    SchemaError,
)
from dp_assets.catalog.nodes.transforms_reshape import NUMERIC_ONLY, AggFunc, JsonScalar
from dp_assets.catalog.schema import (
    NUMERIC,
    as_list,
    logical_type,
    require_columns,
    schema_of,
)
from dp_assets.deferred import pd

# --- PivotTable ------------------------------------------------------------------------------


class PivotTableParams(Params):
    index: str | list[str] = Field(description="Columns whose values become the rows.")
    columns: str | list[str] = Field(description="Columns whose values become new columns.")
    values: str | list[str] | None = Field(default=None, description="Columns to aggregate; default all others.")
    aggfunc: AggFunc | list[AggFunc] = Field(
        default="mean", description="Aggregate of each cell; a list adds a column level per function."
    )
    fill_value: JsonScalar = Field(default=None, description="Value of cells with no rows; default null.")
    dropna: bool = Field(default=True, description="Leave out columns whose values are all null (pandas' dropna).")
    sort: bool = Field(default=True, description="Sort the rows by the index values.")
    sep: str = Field(default="_", description="Joins the levels of new column names, e.g. 'amount_EU'.")
    columns_values: list[JsonScalar | list[JsonScalar]] | None = Field(
        default=None,
        min_length=1,
        description="The values of `columns` that become columns, in this order, so every run has the same "
        "columns and dtypes: a value no row has gives a column of fill_value (null by default; integer "
        "cells are then float), and a value not listed fails the run naming it (filter rows first to "
        "leave values out). With several `columns`, each entry lists one value per column. The output "
        "schema is then known before a run.",
    )

    @model_validator(mode="after")
    def _declared_fit_columns(self) -> PivotTableParams:
        if self.columns_values is None:
            return self
        width = len(as_list(self.columns))
        for entry in self.columns_values:
            if width > 1 and not (isinstance(entry, list) and len(entry) == width):
                raise ValueError(f"columns_values: with {width} `columns`, each entry is a list of {width} values")
            if width == 1 and isinstance(entry, list):
                raise ValueError("columns_values: with one `columns` column, each entry is a single value")
        keys = [tuple(e) if isinstance(e, list) else (e,) for e in self.columns_values]
        if len(set(keys)) < len(keys):
            raise ValueError("columns_values: a value is listed twice")
        return self


def flatten_columns(df: pd.DataFrame, sep: str) -> pd.DataFrame:
    """Plain text column names (Arrow and SQL need them): MultiIndex levels joined by ``sep``."""
    if isinstance(df.columns, pd.MultiIndex):
        names = [sep.join(str(part) for part in parts) for parts in df.columns]
    else:
        names = [str(name) for name in df.columns]
    out = df.set_axis(names, axis=1)
    out.columns.name = None
    return out


def _declared_value(value: Any, kind: str, dtype: Any = None) -> Any:
    """A declared column value as the column holds it: JSON's 1 is 1.0 in a float column."""
    if isinstance(value, bool) or value is None:
        return value
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "float" and isinstance(value, int):
        return float(value)
    if kind == "string" and not isinstance(value, str):
        return str(value)
    if kind == "datetime" and isinstance(value, str):
        stamp = pd.Timestamp(value)
        tz = getattr(dtype, "tz", None)
        return stamp.tz_localize(tz) if tz is not None and stamp.tzinfo is None else stamp
    return value


def _declared_keys(params: PivotTableParams, kinds: list[str], dtypes: list[Any]) -> list[tuple[Any, ...]]:
    entries = [e if isinstance(e, list) else [e] for e in params.columns_values or []]
    return [tuple(_declared_value(v, k, d) for v, k, d in zip(entry, kinds, dtypes, strict=True)) for entry in entries]


def _prefixes(params: PivotTableParams, value_columns: list[str]) -> list[tuple[str, ...]]:
    """The column levels pandas puts before the `columns` values: (aggfunc,) (value,) or both."""
    funcs = [(f,) for f in params.aggfunc] if isinstance(params.aggfunc, list) else [()]
    values = [(v,) for v in value_columns] if not isinstance(params.values, str) else [()]
    return [f + v for f in funcs for v in values]


def _value_columns(params: PivotTableParams, names: list[str]) -> list[str]:
    keys = as_list(params.index) + as_list(params.columns)
    return as_list(params.values) or [c for c in names if c not in keys]


def _cell_kind(func: str, value_kind: str, fill: Any) -> str:
    """The logical type of a pivot cell: the aggregate's type, widened by the fill of empty cells."""
    if func in ("count", "size", "nunique"):
        kind = "integer"
    elif func in ("mean", "median", "std", "var"):
        kind = "float"
    elif func in ("sum", "prod") and value_kind == "boolean":
        kind = "integer"
    else:
        kind = value_kind
    if fill is None:
        return {"integer": "float", "boolean": "any"}.get(kind, kind)
    fill_kind = logical_type(pd.Series([fill]).dtype)
    if fill_kind == kind or (kind == "float" and fill_kind == "integer"):
        return kind
    return "float" if {kind, fill_kind} <= {"integer", "float"} else "any"


def _declared_columns(table: pd.DataFrame, df: pd.DataFrame, params: PivotTableParams) -> pd.DataFrame:
    """The pivot with exactly the declared columns, in order; each cell in its declared dtype."""
    keys = as_list(params.columns)
    schema = schema_of(df)
    declared = _declared_keys(params, [schema[k] for k in keys], [df[k].dtype for k in keys])
    width = len(keys)
    observed = [c[-width:] if isinstance(c, tuple) else (c,) for c in table.columns]
    allowed = set(declared)
    unexpected = list(dict.fromkeys(key for key in observed if key not in allowed))
    if unexpected:
        shown = ", ".join(repr(k[0] if width == 1 else k) for k in unexpected[:5])
        more = f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else ""
        raise ValueError(
            f"columns_values: value(s) {shown}{more} of {', '.join(keys)} are not declared; "
            "add them to columns_values, or filter those rows out before the pivot"
        )
    value_columns = _value_columns(params, list(df.columns))
    prefixes = _prefixes(params, value_columns)
    target = [prefix + key for prefix in prefixes for key in declared]
    if isinstance(table.columns, pd.MultiIndex) or len(target[0]) > 1:
        columns: pd.Index = pd.MultiIndex.from_tuples(target, names=[None] * (len(target[0]) - width) + keys)
    else:
        columns = pd.Index([t[0] for t in target], name=keys[0], dtype=object)
    out = table.reindex(columns=columns, fill_value=params.fill_value)
    funcs = as_list(params.aggfunc)  # type: ignore[arg-type]
    for position, column in enumerate(out.columns):
        parts = column if isinstance(column, tuple) else (column,)
        func = parts[0] if isinstance(params.aggfunc, list) else funcs[0]
        value = parts[-width - 1] if not isinstance(params.values, str) else params.values
        kind = _cell_kind(func, schema.get(value, "any"), params.fill_value)
        dtype = {
            "float": "float64",
            "integer": "int64",
            "string": "str",
            "boolean": "bool",
            "datetime": df[value].dtype if value in df else None,
        }.get(kind)
        if dtype is not None:
            out.isetitem(position, out.iloc[:, position].astype(dtype))
    return out


def pivot_table(ctx: NodeContext, params: PivotTableParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Spread values into columns with an aggregate (``pd.pivot_table``), index as columns.

    The output has the ``index`` columns, then one column per cell, named by joining with ``sep``
    the aggfunc (when ``aggfunc`` is a list), the value column (when ``values`` is a list or left
    out) and the value(s) of ``columns`` as text: ``sum_amount_EU``, ``amount_EU``, or ``EU`` for
    one function of one ``values`` column (a float column's 1 is ``1.0``). Which columns there are
    depends on the values a run sees, unless ``columns_values`` declares them: then every run has
    exactly those, in that order, and ``dp validate`` knows the output schema.
    """
    return pivot_frame(inputs["input"], params)


def pivot_frame(df: pd.DataFrame, params: PivotTableParams) -> pd.DataFrame:
    """The pivot of ``df`` as the node gives it."""
    table = pd.pivot_table(
        df,
        index=params.index,
        columns=params.columns,
        values=params.values,
        aggfunc=params.aggfunc,
        fill_value=params.fill_value,
        dropna=params.dropna,
        sort=params.sort,
    )
    return finish_pivot(table, df, params)


def finish_pivot(table: pd.DataFrame, df: pd.DataFrame, params: PivotTableParams) -> pd.DataFrame:
    """``pd.pivot_table``'s result as the node's output: the declared columns in their dtypes,
    flat names, the index as columns. Only ``df``'s columns and dtypes are read (the DuckDB
    engine, which pivots aggregated cells, passes none of the rows: dp_assets/engine/forms_pivot.py)."""
    if params.columns_values is not None:
        table = _declared_columns(table, df, params)
    return flatten_columns(table, params.sep).reset_index()


def pivot_table_schema(params: PivotTableParams, inputs: dict) -> ColumnSchema | None:
    schema = inputs["input"]
    require_columns(schema, as_list(params.index), "index")
    require_columns(schema, as_list(params.columns), "columns")
    require_columns(schema, as_list(params.values), "values")
    if schema is None:
        return None
    values = _value_columns(params, list(schema))
    for func in as_list(params.aggfunc):  # type: ignore[arg-type]
        if func in NUMERIC_ONLY:
            for column in values:
                if schema[column] not in NUMERIC | {"any"}:
                    raise SchemaError("aggfunc", f"cannot {func} column '{column}' of type {schema[column]}")
    keys = as_list(params.columns)
    kinds = [schema[k] for k in keys]
    if params.columns_values is None or any(k in ("datetime", "date") for k in kinds):
        return None  # the new column names come from the data (a time's text depends on its zone)
    out = {c: schema[c] for c in as_list(params.index)}
    funcs = as_list(params.aggfunc)  # type: ignore[arg-type]
    for prefix in _prefixes(params, values):
        func = prefix[0] if isinstance(params.aggfunc, list) else funcs[0]
        value = prefix[-1] if not isinstance(params.values, str) else params.values
        for key in _declared_keys(params, kinds, [None] * len(keys)):
            name = params.sep.join(str(part) for part in prefix + key)
            out[name] = _cell_kind(func, schema[value], params.fill_value)
    return out


NODE_TYPES = [
    NodeType("PivotTable", PivotTableParams, pivot_table, "transform", infer_schema=pivot_table_schema),
]
