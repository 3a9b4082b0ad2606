"""Transform nodes of the foundation; params are named after pandas' own arguments."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import Field

from dp_assets.catalog.base import LEFT_RIGHT, ColumnSchema, NodeContext, NodeType, Params, SchemaError
from dp_assets.catalog.schema import NUMERIC, as_list, require_columns

# --- SelectColumns ---------------------------------------------------------------------------


class SelectColumnsParams(Params):
    columns: list[str] = Field(min_length=1, description="Columns to keep, in this order.")


def select_columns(ctx: NodeContext, params: SelectColumnsParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Keep the named columns, in the order given (``df[columns]``)."""
    return inputs["input"][params.columns]


def select_columns_schema(params: SelectColumnsParams, inputs: dict) -> ColumnSchema | None:
    schema = inputs["input"]
    require_columns(schema, params.columns, "columns")
    return None if schema is None else {c: schema[c] for c in params.columns}


# --- SortData --------------------------------------------------------------------------------


class SortDataParams(Params):
    by: str | list[str]
    ascending: bool | list[bool] = True
    na_position: Literal["first", "last"] = "last"
    kind: Literal["stable", "quicksort", "mergesort", "heapsort"] = Field(
        default="stable", description="Sort algorithm; 'stable' keeps the order of equal rows."
    )
    ignore_index: bool = True


def sort_data(ctx: NodeContext, params: SortDataParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Sort rows (``df.sort_values``)."""
    return inputs["input"].sort_values(
        by=params.by, ascending=params.ascending, na_position=params.na_position,
        kind=params.kind, ignore_index=params.ignore_index,
    )


def sort_data_schema(params: SortDataParams, inputs: dict) -> ColumnSchema | None:
    require_columns(inputs["input"], as_list(params.by), "by")
    return inputs["input"]


# --- GroupAggregate --------------------------------------------------------------------------

AggFunc = Literal["sum", "mean", "median", "min", "max", "count", "size", "nunique", "std", "var",
                  "first", "last", "prod"]
NUMERIC_ONLY = {"sum", "mean", "median", "std", "var", "prod"}


class GroupAggregateParams(Params):
    by: str | list[str]
    agg: dict[str, tuple[str, AggFunc]] = Field(
        min_length=1,
        description="Named aggregations, output -> [column, function], as in pandas' "
        "``groupby(by).agg(total=('amount', 'sum'))``.",
    )
    dropna: bool = True
    sort: bool = True


def group_aggregate(ctx: NodeContext, params: GroupAggregateParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Group rows and aggregate (``df.groupby(by).agg(**named)``), keys as columns."""
    grouped = inputs["input"].groupby(params.by, dropna=params.dropna, sort=params.sort)
    return grouped.agg(**{name: tuple(spec) for name, spec in params.agg.items()}).reset_index()


def group_aggregate_schema(params: GroupAggregateParams, inputs: dict) -> ColumnSchema | None:
    schema = inputs["input"]
    by = as_list(params.by)
    require_columns(schema, by, "by")
    if schema is None:
        return None
    out = {c: schema[c] for c in by}
    for name, (column, func) in params.agg.items():
        require_columns(schema, [column], f"agg.{name}")
        if func in NUMERIC_ONLY and schema[column] not in NUMERIC | {"any"}:
            raise SchemaError(f"agg.{name}", f"cannot {func} column '{column}' of type {schema[column]}")
        if func in ("count", "size", "nunique"):
            out[name] = "integer"
        elif func in ("mean", "median", "std", "var"):
            out[name] = "float"
        else:
            out[name] = schema[column]
    return out


# --- JoinMerge -------------------------------------------------------------------------------


class JoinMergeParams(Params):
    how: Literal["inner", "left", "right", "outer", "cross"] = "inner"
    on: str | list[str] | None = None
    left_on: str | list[str] | None = None
    right_on: str | list[str] | None = None
    suffixes: tuple[str, str] = ("_x", "_y")
    validate_: Literal["one_to_one", "one_to_many", "many_to_one", "many_to_many"] | None = Field(
        default=None, alias="validate", description="Check the join's cardinality, as pandas does."
    )
    indicator: bool = False


def join_merge(ctx: NodeContext, params: JoinMergeParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Join two inputs, ``left`` and ``right`` (``pd.merge``)."""
    return pd.merge(
        inputs["left"], inputs["right"], how=params.how, on=params.on, left_on=params.left_on,
        right_on=params.right_on, suffixes=params.suffixes, validate=params.validate_,
        indicator=params.indicator,
    )


def join_merge_schema(params: JoinMergeParams, inputs: dict) -> ColumnSchema | None:
    left, right = inputs["left"], inputs["right"]
    if params.how == "cross":
        left_keys = right_keys = []
    elif params.on is not None:
        left_keys = right_keys = as_list(params.on)
    else:
        left_keys, right_keys = as_list(params.left_on), as_list(params.right_on)
        if len(left_keys) != len(right_keys) or not left_keys:
            raise SchemaError("left_on", "give 'on', or 'left_on' and 'right_on' of the same length")
    require_columns(left, left_keys, "on" if params.on else "left_on")
    require_columns(right, right_keys, "on" if params.on else "right_on")
    if left is None or right is None:
        return None
    for lk, rk in zip(left_keys, right_keys):
        lt, rt = left[lk], right[rk]
        if "any" not in (lt, rt) and lt != rt and not {lt, rt} <= {"integer", "float"}:
            raise SchemaError("on" if params.on else "left_on",
                              f"join key types differ: left '{lk}' is {lt}, right '{rk}' is {rt}")
    out = dict(left)
    shared = set(left) & set(right) - (set(left_keys) if params.on else set())
    for column in shared:
        out.pop(column, None)
        out[column + params.suffixes[0]] = left[column]
    for column, kind in right.items():
        if params.on and column in left_keys:
            continue
        out[column + params.suffixes[1] if column in shared else column] = kind
    return out


NODE_TYPES = [
    NodeType("SelectColumns", SelectColumnsParams, select_columns, "transform",
             infer_schema=select_columns_schema),
    NodeType("SortData", SortDataParams, sort_data, "transform", infer_schema=sort_data_schema),
    NodeType("GroupAggregate", GroupAggregateParams, group_aggregate, "transform",
             infer_schema=group_aggregate_schema),
    NodeType("JoinMerge", JoinMergeParams, join_merge, "transform", inputs=LEFT_RIGHT,
             infer_schema=join_merge_schema),
]
