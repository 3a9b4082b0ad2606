"""Row transforms: the first rows, samples, missing values, duplicates, concatenated inputs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from dp_assets.catalog.base import (
    MANY_INPUTS,
    ColumnSchema,
    NodeContext,
    NodeType,
    Params,
    SchemaError,
)
from dp_assets.catalog.schema import NUMERIC, as_list, require_columns
from dp_assets.deferred import pd

JsonScalar = str | int | float | bool | None

# --- Limit ----------------------------------------------------------------------------------


class LimitParams(Params):
    n: int = Field(ge=0, description="Most rows to keep (pandas' head(n); SQL's LIMIT).")
    offset: int = Field(default=0, ge=0, description="Rows to skip first (SQL's OFFSET).")


def limit(ctx: NodeContext, params: LimitParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """The first ``n`` rows after skipping ``offset`` (``df.iloc[offset:offset + n]``; ``df.head(n)``).

    Rows are taken in the order they come: put a SortData before it for a top-N. The index is
    kept, as ``head`` keeps it.
    """
    return inputs["input"].iloc[params.offset : params.offset + params.n]


# --- SampleRows ------------------------------------------------------------------------------


class SampleRowsParams(Params):
    n: int | None = Field(default=None, ge=0, description="Number of rows (default 1 when no frac).")
    frac: float | None = Field(default=None, ge=0, description="Fraction of rows (above 1 needs replace).")
    replace: bool = Field(default=False, description="Sample with replacement (a row may come more than once).")
    weights: str | None = Field(default=None, description="Column of sampling weights.")
    random_state: int | None = Field(default=None, description="Seed, for the same sample on every run.")
    ignore_index: bool = Field(default=False, description="Number the rows 0, 1, 2... instead of keeping the index.")

    @model_validator(mode="after")
    def _one_size(self) -> SampleRowsParams:
        if self.n is not None and self.frac is not None:
            raise ValueError("give n or frac, not both")
        return self


def sample_rows(ctx: NodeContext, params: SampleRowsParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """A random sample of rows (``df.sample(n=..., frac=..., random_state=...)``)."""
    return inputs["input"].sample(
        n=params.n,
        frac=params.frac,
        replace=params.replace,
        weights=params.weights,
        random_state=params.random_state,
        ignore_index=params.ignore_index,
    )


def sample_rows_schema(params: SampleRowsParams, inputs: dict) -> ColumnSchema | None:
    if params.weights:
        require_columns(inputs["input"], [params.weights], "weights")
    return inputs["input"]


# --- HandleMissingValues ---------------------------------------------------------------------

Strategy = Literal["drop", "fill", "ffill", "bfill", "mean", "median", "mode"]


class HandleMissingValuesParams(Params):
    strategy: Strategy = Field(
        description="drop rows (dropna), fill with `value` (fillna), ffill / bfill, or fill with "
        "each column's mean / median / mode."
    )
    subset: list[str] | None = Field(default=None, description="Columns to look at; default all.")
    value: JsonScalar | dict[str, JsonScalar] = Field(
        default=None, description="For 'fill': one value, or column -> value."
    )
    how: Literal["any", "all"] = Field(default="any", description="For 'drop': drop when any / all are null.")
    thresh: int | None = Field(default=None, ge=0, description="For 'drop': keep rows with this many non-nulls.")
    limit: int | None = Field(default=None, gt=0, description="For ffill/bfill: most nulls filled in a row.")

    @model_validator(mode="after")
    def _value_for_fill(self) -> HandleMissingValuesParams:
        if self.strategy == "fill" and self.value is None:
            raise ValueError("strategy 'fill' needs a `value`")
        if self.thresh is not None and "how" in self.model_fields_set:
            raise ValueError("give how or thresh, not both (as pandas)")
        return self


def fill_values(df: pd.DataFrame, params: HandleMissingValuesParams, columns: list[str]) -> dict[str, Any]:
    """Column -> the value a fill, mean, median or mode puts in its missing places (the DuckDB
    engine computes the statistics with it: dp_assets/engine/forms_missing.py)."""
    if params.strategy == "fill":
        if isinstance(params.value, dict):
            return {c: v for c, v in params.value.items() if params.subset is None or c in columns}
        return {c: params.value for c in columns}
    values: dict[str, Any] = {}
    for column in columns:
        series = df[column]
        if params.strategy == "mode":
            modes = series.mode()
            if len(modes):
                values[column] = modes.iloc[0]
        elif params.subset is not None or pd.api.types.is_numeric_dtype(series.dtype):
            stat = series.mean() if params.strategy == "mean" else series.median()
            if not pd.isna(stat):
                values[column] = stat
    return values


def handle_missing_values(ctx: NodeContext, params: HandleMissingValuesParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Drop or fill nulls (``dropna``, ``fillna``, ``ffill``, ``bfill``; mean/median/mode per column)."""
    df = inputs["input"]
    columns = list(params.subset) if params.subset is not None else list(df.columns)
    if params.strategy == "drop":
        kwargs: dict[str, Any] = {"thresh": params.thresh} if params.thresh is not None else {"how": params.how}
        return df.dropna(subset=params.subset, **kwargs)
    if params.strategy in ("ffill", "bfill"):
        filled = getattr(df[columns], params.strategy)(limit=params.limit)
        return df.assign(**{c: filled[c] for c in columns}) if params.subset is not None else filled
    values = fill_values(df, params, columns)
    ctx.add_metadata(filled={c: int(df[c].isna().sum()) for c in values})
    return df.fillna(values) if values else df


def handle_missing_values_schema(params: HandleMissingValuesParams, inputs: dict) -> ColumnSchema | None:
    schema = inputs["input"]
    require_columns(schema, params.subset or [], "subset")
    if isinstance(params.value, dict):
        require_columns(schema, list(params.value), "value")
    if schema is not None and params.strategy in ("mean", "median") and params.subset:
        for column in params.subset:
            if schema[column] not in NUMERIC | {"any"}:
                raise SchemaError(
                    "subset", f"cannot take the {params.strategy} of column '{column}' of type {schema[column]}"
                )
    return schema


# --- Deduplicate -----------------------------------------------------------------------------


class DeduplicateParams(Params):
    subset: str | list[str] | None = Field(default=None, description="Columns that identify a row; default all.")
    keep: Literal["first", "last", False] = Field(
        default="first", description="Which duplicate to keep; false drops every duplicated row."
    )
    ignore_index: bool = Field(default=False, description="Number the rows 0, 1, 2... instead of keeping the index.")


def deduplicate(ctx: NodeContext, params: DeduplicateParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Drop duplicate rows (``df.drop_duplicates(subset, keep)``)."""
    df = inputs["input"]
    result = df.drop_duplicates(subset=params.subset, keep=params.keep, ignore_index=params.ignore_index)
    ctx.add_metadata(duplicates_dropped=len(df) - len(result))
    return result


def deduplicate_schema(params: DeduplicateParams, inputs: dict) -> ColumnSchema | None:
    require_columns(inputs["input"], as_list(params.subset), "subset")
    return inputs["input"]


# --- UnionConcatenate ------------------------------------------------------------------------


class UnionConcatenateParams(Params):
    join: Literal["outer", "inner"] = Field(
        default="outer", description="outer: every column (missing ones null); inner: shared columns only."
    )
    ignore_index: bool = Field(default=True, description="Number the rows anew (pandas' default is false).")
    sort: bool = Field(default=False, description="Sort the columns (outer join).")


def union_concatenate(ctx: NodeContext, params: UnionConcatenateParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Stack the rows of all inputs, in the order written (``pd.concat``)."""
    frames = list(inputs.values())
    ctx.add_metadata(rows_per_input={name: len(df) for name, df in inputs.items()})
    return pd.concat(frames, join=params.join, ignore_index=params.ignore_index, sort=params.sort)


def _common_type(kinds: list[str]) -> str:
    unique = set(kinds)
    if len(unique) == 1:
        return kinds[0]
    return "float" if unique <= {"integer", "float"} else "any"


def union_concatenate_schema(params: UnionConcatenateParams, inputs: dict) -> ColumnSchema | None:
    schemas = list(inputs.values())
    if not schemas or any(s is None for s in schemas):
        return None
    names: list[str] = []
    for schema in schemas:
        names += [c for c in schema if c not in names]
    if params.join == "inner":
        names = [c for c in names if all(c in s for s in schemas)]
    elif params.sort:
        names = sorted(names)
    out = {}
    for name in names:
        kinds = [s[name] for s in schemas if name in s]
        kind = _common_type(kinds)
        if len(kinds) < len(schemas):  # filled with nulls: integers become floats, booleans objects
            kind = {"integer": "float", "boolean": "any"}.get(kind, kind)
        out[name] = kind
    return out


NODE_TYPES = [
    NodeType("Limit", LimitParams, limit, "transform", infer_schema=lambda params, inputs: inputs["input"]),
    NodeType("SampleRows", SampleRowsParams, sample_rows, "transform", infer_schema=sample_rows_schema),
    NodeType(
        "HandleMissingValues",
        HandleMissingValuesParams,
        handle_missing_values,
        "transform",
        infer_schema=handle_missing_values_schema,
    ),
    NodeType("Deduplicate", DeduplicateParams, deduplicate, "transform", infer_schema=deduplicate_schema),
    NodeType(
        "UnionConcatenate",
        UnionConcatenateParams,
        union_concatenate,
        "transform",
        inputs=MANY_INPUTS,
        infer_schema=union_concatenate_schema,
    ),
]
