"""Reshaping transforms: melt (wide to long) and window functions (pivot tables: transforms_pivot)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from dp_assets.catalog.base import (
    ColumnSchema,
    NodeContext,
    NodeType,
    Params,
    SchemaError,
)
from dp_assets.catalog.schema import NUMERIC, as_list, require_columns
from dp_assets.deferred import pd

AggFunc = Literal[
    "sum", "mean", "median", "min", "max", "count", "size", "nunique", "std", "var", "first", "last", "prod"
]
NUMERIC_ONLY = {"sum", "mean", "median", "std", "var", "prod"}
JsonScalar = str | int | float | bool | None

# --- Melt ------------------------------------------------------------------------------------


class MeltParams(Params):
    id_vars: str | list[str] | None = Field(default=None, description="Columns kept as identifiers.")
    value_vars: str | list[str] | None = Field(default=None, description="Columns to unpivot; default all others.")
    var_name: str = Field(default="variable", description="Name of the column holding the old column names.")
    value_name: str = Field(default="value", description="Name of the column holding the values.")
    ignore_index: bool = Field(
        default=True, description="Number the rows 0, 1, 2... (false repeats the input's index)."
    )


def melt(ctx: NodeContext, params: MeltParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Unpivot columns into rows (``df.melt``)."""
    return inputs["input"].melt(
        id_vars=params.id_vars,
        value_vars=params.value_vars,
        var_name=params.var_name,
        value_name=params.value_name,
        ignore_index=params.ignore_index,
    )


def melt_schema(params: MeltParams, inputs: dict) -> ColumnSchema | None:
    schema = inputs["input"]
    ids = as_list(params.id_vars)
    require_columns(schema, ids, "id_vars")
    require_columns(schema, as_list(params.value_vars), "value_vars")
    if schema is None:
        return None
    values = as_list(params.value_vars) or [c for c in schema if c not in ids]
    kinds = {schema[c] for c in values}
    kind = kinds.pop() if len(kinds) == 1 else ("float" if kinds and kinds <= {"integer", "float"} else "any")
    return {**{c: schema[c] for c in ids}, params.var_name: "string", params.value_name: kind}


# --- WindowFunctions -------------------------------------------------------------------------

WindowFunc = Literal[
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "lag",
    "lead",
    "cumsum",
    "cummax",
    "cummin",
    "cumcount",
    "rolling_mean",
    "rolling_sum",
    "rolling_min",
    "rolling_max",
]
NEEDS_COLUMN = {
    "lag",
    "lead",
    "cumsum",
    "cummax",
    "cummin",
    "rolling_mean",
    "rolling_sum",
    "rolling_min",
    "rolling_max",
}


class WindowSpec(Params):
    """One new column of a WindowFunctions node (an item of `functions`)."""

    output: str = Field(description="Name of the new column.")
    function: WindowFunc = Field(
        description="row_number / cumcount (1- / 0-based position in the partition), rank / dense_rank / "
        "percent_rank, lag / lead (the value `periods` rows before / after), cumsum / cummax / cummin, or "
        "rolling_mean / rolling_sum / rolling_min / rolling_max over `window` rows."
    )
    column: str | None = Field(default=None, description="Column it reads; ranks default to the first order_by column.")
    periods: int = Field(default=1, ge=0, description="For lag/lead: how many rows back or ahead.")
    window: int | None = Field(default=None, gt=0, description="For rolling_*: rows in the window.")
    min_periods: int | None = Field(default=None, ge=0, description="For rolling_*: rows needed for a value.")
    method: Literal["average", "min", "max", "first", "dense"] = Field(
        default="min", description="For rank: how ties rank (Series.rank method)."
    )

    @model_validator(mode="after")
    def _fits(self) -> WindowSpec:
        if self.function in NEEDS_COLUMN and not self.column:
            raise ValueError(f"function '{self.function}' needs a `column`")
        if self.function.startswith("rolling_") and self.window is None:
            raise ValueError(f"function '{self.function}' needs a `window`")
        return self


class WindowFunctionsParams(Params):
    partition_by: str | list[str] | None = Field(default=None, description="Columns that form the partitions.")
    order_by: str | list[str] | None = Field(default=None, description="Order of rows within a partition.")
    ascending: bool | list[bool] = Field(
        default=True, description="Order direction; a list gives one per `order_by` column."
    )
    functions: list[WindowSpec] = Field(min_length=1, description="The new columns, one entry each (fields below).")


def _ordered(df: pd.DataFrame, params: WindowFunctionsParams) -> pd.DataFrame:
    order = as_list(params.order_by)
    if not order:
        return df
    return df.sort_values(order, ascending=params.ascending, kind="stable", na_position="last")


def _window_value(frame: pd.DataFrame, grouped: Any, spec: WindowSpec, params: WindowFunctionsParams) -> pd.Series:
    order = as_list(params.order_by)
    column = spec.column or (order[0] if order else None)
    source = grouped if grouped is not None else frame
    func = spec.function
    if func in ("row_number", "cumcount"):
        if grouped is not None:
            count = grouped.cumcount()
        else:
            count = pd.Series(range(len(frame)), index=frame.index, dtype="int64")
        return count + 1 if func == "row_number" else count
    if func in ("rank", "dense_rank", "percent_rank"):
        if column is None:
            raise ValueError(f"{spec.output}: {func} needs a `column` or an order_by")
        ascending = params.ascending if isinstance(params.ascending, bool) else params.ascending[0]
        method = "dense" if func == "dense_rank" else spec.method
        return source[column].rank(method=method, ascending=ascending, pct=func == "percent_rank")
    if func in ("lag", "lead"):
        return source[column].shift(spec.periods if func == "lag" else -spec.periods)
    if func in ("cumsum", "cummax", "cummin"):
        return getattr(source[column], func)()
    rolled = source[column].rolling(spec.window, min_periods=spec.min_periods)
    result = getattr(rolled, func.removeprefix("rolling_"))()
    if grouped is not None:
        result = result.droplevel(list(range(len(as_list(params.partition_by)))))
    return result


def window_functions(ctx: NodeContext, params: WindowFunctionsParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Ranks, row numbers, lag/lead, cumulative and rolling aggregates over partitions, in order.

    Computed on the rows sorted by ``order_by`` within each ``partition_by`` group (as
    ``df.sort_values(order_by).groupby(partition_by)[column].rank()/shift()/cumsum()/rolling()``);
    the output keeps the input's row order.
    """
    df = inputs["input"]
    base = df.reset_index(drop=True)
    frame = _ordered(base, params)
    partition = as_list(params.partition_by)
    grouped = frame.groupby(partition, sort=False, dropna=False) if partition else None
    new = {spec.output: _window_value(frame, grouped, spec, params) for spec in params.functions}
    out = base.assign(**new)
    out.index = df.index
    return out


def window_functions_schema(params: WindowFunctionsParams, inputs: dict) -> ColumnSchema | None:
    schema = inputs["input"]
    require_columns(schema, as_list(params.partition_by), "partition_by")
    require_columns(schema, as_list(params.order_by), "order_by")
    if schema is None:
        return None
    out = dict(schema)
    for i, spec in enumerate(params.functions):
        field = f"functions[{i}]"
        if spec.column:
            require_columns(schema, [spec.column], f"{field}.column")
        kind = schema.get(spec.column or "", "any")
        if spec.function in ("row_number", "cumcount"):
            out[spec.output] = "integer"
        elif spec.function in ("rank", "dense_rank", "percent_rank") or spec.function.startswith("rolling_"):
            if spec.function.startswith("rolling_") and kind not in NUMERIC | {"any"}:
                raise SchemaError(f"{field}.column", f"cannot {spec.function} column '{spec.column}' of type {kind}")
            out[spec.output] = "float"
        elif spec.function in ("lag", "lead"):
            out[spec.output] = {"integer": "float", "boolean": "any"}.get(kind, kind)
        else:
            if spec.function == "cumsum" and kind not in NUMERIC | {"any"}:
                raise SchemaError(f"{field}.column", f"cannot cumsum column '{spec.column}' of type {kind}")
            out[spec.output] = "integer" if kind == "boolean" and spec.function == "cumsum" else kind
    return out


NODE_TYPES = [
    NodeType("Melt", MeltParams, melt, "transform", infer_schema=melt_schema),
    NodeType(
        "WindowFunctions", WindowFunctionsParams, window_functions, "transform", infer_schema=window_functions_schema
    ),
]
