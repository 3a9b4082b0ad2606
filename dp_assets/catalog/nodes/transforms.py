"""Transform nodes of the foundation; params are named after pandas' own arguments."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from dp_assets.catalog.base import (
    LEFT_RIGHT,
    ColumnSchema,
    NodeContext,
    NodeType,
    Params,
    SchemaError,
)
from dp_assets.catalog.schema import NUMERIC, as_list, require_columns
from dp_assets.deferred import np, pd

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
    by: str | list[str] = Field(description="Column, or columns in order of precedence, to sort by.")
    ascending: bool | list[bool] = Field(
        default=True, description="Ascending (true) or descending (false); a list gives one per `by` column."
    )
    na_position: Literal["first", "last"] = Field(default="last", description="Where null values go.")
    kind: Literal["stable", "quicksort", "mergesort", "heapsort"] = Field(
        default="stable", description="Sort algorithm; 'stable' keeps the order of equal rows."
    )
    ignore_index: bool = Field(default=True, description="Number the rows 0, 1, 2... in the new order.")


def sort_data(ctx: NodeContext, params: SortDataParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Sort rows (``df.sort_values``)."""
    return inputs["input"].sort_values(
        by=params.by,
        ascending=params.ascending,
        na_position=params.na_position,
        kind=params.kind,
        ignore_index=params.ignore_index,
    )


def sort_data_schema(params: SortDataParams, inputs: dict) -> ColumnSchema | None:
    require_columns(inputs["input"], as_list(params.by), "by")
    return inputs["input"]


# --- GroupAggregate --------------------------------------------------------------------------

AggFunc = Literal[
    "sum", "mean", "median", "min", "max", "count", "size", "nunique", "std", "var", "first", "last", "prod"
]
NUMERIC_ONLY = {"sum", "mean", "median", "std", "var", "prod"}


class GroupAggregateParams(Params):
    by: str | list[str] | None = Field(
        default=None,
        description="Columns to group by. Leave it out (or give []) for a global aggregate: one "
        "row over all rows, as SQL's aggregate without GROUP BY.",
    )
    agg: dict[str, tuple[str, AggFunc]] = Field(
        min_length=1,
        description="Named aggregations, output -> [column, function], as in pandas' "
        "``groupby(by).agg(total=('amount', 'sum'))``.",
    )
    dropna: bool = Field(default=True, description="Drop the groups whose key is null (pandas' default).")
    sort: bool = Field(default=True, description="Sort the rows by the group keys.")


def _named(params: GroupAggregateParams) -> dict[str, tuple[str, str]]:
    return {name: tuple(spec) for name, spec in params.agg.items()}  # type: ignore[misc]


def _global_aggregate(df: pd.DataFrame, named: dict[str, tuple[str, str]]) -> pd.DataFrame:
    """One row over all rows: the rows as one group (``df.groupby(constant).agg(**named)``).

    An empty input still gives one row, of each column's aggregate of no values as pandas
    reduces an empty Series (count 0, sum 0, prod 1) and null for the others (mean, min, first...),
    in the column's dtype where it keeps one (integers become float there, as in any null).
    """
    if len(df):
        one_group = np.zeros(len(df), dtype="int8")
        return df.groupby(one_group).agg(**named).reset_index(drop=True)
    row: dict[str, pd.Series] = {}
    for name, (column, func) in named.items():
        if func in ("count", "size", "nunique", "sum", "prod"):
            row[name] = pd.Series([df[column].agg(func)])
        elif func in ("mean", "median", "std", "var"):
            row[name] = pd.Series([np.nan])
        else:  # min, max, first, last: a null of the column's dtype
            row[name] = df[column].iloc[:0].reindex([0]).reset_index(drop=True)
    return pd.DataFrame(row)


def group_aggregate(ctx: NodeContext, params: GroupAggregateParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Group rows and aggregate (``df.groupby(by).agg(**named)``), keys as columns.

    Without ``by``, one row aggregates all rows (a global aggregate, as the rows in one group).
    """
    df = inputs["input"]
    if not as_list(params.by):
        return _global_aggregate(df, _named(params))
    grouped = df.groupby(params.by, dropna=params.dropna, sort=params.sort)
    return grouped.agg(**_named(params)).reset_index()


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
        elif func in ("sum", "prod") and schema[column] == "boolean":
            out[name] = "integer"
        else:
            out[name] = schema[column]
    return out


# --- JoinMerge -------------------------------------------------------------------------------


class JoinMergeParams(Params):
    how: Literal["inner", "left", "right", "outer", "cross"] = Field(
        default="inner",
        description="Which rows are kept: matched only (inner), all of `left`, all of `right`, all of both "
        "(outer), or every pair (cross). Unmatched rows get nulls, so an integer column of the other side "
        "becomes float (as in pandas); convert it to nullable Int64 before the join to keep integers.",
    )
    on: str | list[str] | None = Field(default=None, description="Key column(s) both inputs have.")
    left_on: str | list[str] | None = Field(default=None, description="Key column(s) of `left`, with `right_on`.")
    right_on: str | list[str] | None = Field(default=None, description="Key column(s) of `right`, in the same order.")
    suffixes: tuple[str, str] = Field(
        default=("_x", "_y"), description="Added to the names of non-key columns both inputs have."
    )
    validate_: Literal["one_to_one", "one_to_many", "many_to_one", "many_to_many"] | None = Field(
        default=None, alias="validate", description="Check the join's cardinality, as pandas does."
    )
    indicator: bool = Field(default=False, description="Add a `_merge` column: left_only, right_only or both.")


def join_merge(ctx: NodeContext, params: JoinMergeParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Join two inputs, ``left`` and ``right`` (``pd.merge``)."""
    return pd.merge(
        inputs["left"],
        inputs["right"],
        how=params.how,
        on=params.on,
        left_on=params.left_on,
        right_on=params.right_on,
        suffixes=params.suffixes,
        validate=params.validate_,
        indicator=params.indicator,
    )


# A column of the side a join may leave unmatched gets nulls there: integers become float64 and
# true/false becomes object, as pandas does (nullable Int64 and boolean columns keep their dtype,
# but the logical schema cannot tell them apart, so it says float: the type pandas gives by default).
UNMATCHED = {"integer": "float", "boolean": "any"}


def _unmatched(kind: str, nullable: bool) -> str:
    return UNMATCHED.get(kind, kind) if nullable else kind


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
    for lk, rk in zip(left_keys, right_keys, strict=True):
        lt, rt = left[lk], right[rk]
        if "any" not in (lt, rt) and lt != rt and not {lt, rt} <= {"integer", "float"}:
            raise SchemaError(
                "on" if params.on else "left_on", f"join key types differ: left '{lk}' is {lt}, right '{rk}' is {rt}"
            )
    # Which side's rows may have no partner (its columns are then null in those rows).
    left_nullable = params.how in ("right", "outer")
    right_nullable = params.how in ("left", "outer")
    shared_keys = set(left_keys) if params.on else set()
    out = {c: kind if c in shared_keys else _unmatched(kind, left_nullable) for c, kind in left.items()}
    shared = set(left) & set(right) - shared_keys
    for column in shared:
        out.pop(column, None)
        out[column + params.suffixes[0]] = _unmatched(left[column], left_nullable)
    for column, kind in right.items():
        if column in shared_keys:
            continue
        out[column + params.suffixes[1] if column in shared else column] = _unmatched(kind, right_nullable)
    if params.indicator:
        out["_merge"] = "any"  # a category of left_only / right_only / both
    return out


NODE_TYPES = [
    NodeType("SelectColumns", SelectColumnsParams, select_columns, "transform", infer_schema=select_columns_schema),
    NodeType("SortData", SortDataParams, sort_data, "transform", infer_schema=sort_data_schema),
    NodeType("GroupAggregate", GroupAggregateParams, group_aggregate, "transform", infer_schema=group_aggregate_schema),
    NodeType("JoinMerge", JoinMergeParams, join_merge, "transform", inputs=LEFT_RIGHT, infer_schema=join_merge_schema),
]
