"""Column transforms: rename, change types, split one column into several, map values."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from dp_assets.catalog.base import (
    ColumnSchema,
    NodeContext,
    NodeType,
    Params,
    SchemaError,
)
from dp_assets.catalog.dtypes import DtypeName
from dp_assets.catalog.schema import logical_type, require_columns
from dp_assets.deferred import pd

JsonScalar = str | int | float | bool | None
MAX_SPLIT_PARTS = 10_000  # as FileInput's default max_columns

# --- RenameColumns ---------------------------------------------------------------------------


class RenameColumnsParams(Params):
    columns: dict[str, str] = Field(min_length=1, description="Old name -> new name.")
    errors: Literal["raise", "ignore"] = Field(
        default="raise", description="'raise': a missing old name is an error (pandas' default is 'ignore')."
    )


def rename_columns(ctx: NodeContext, params: RenameColumnsParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Rename columns (``df.rename(columns=...)``)."""
    return inputs["input"].rename(columns=params.columns, errors=params.errors)


def rename_columns_schema(params: RenameColumnsParams, inputs: dict) -> ColumnSchema | None:
    schema = inputs["input"]
    if schema is None:
        return None
    if params.errors == "raise":
        require_columns(schema, list(params.columns), "columns")
    out: ColumnSchema = {}
    for name, kind in schema.items():
        new = params.columns.get(name, name)
        if new in out:
            raise SchemaError("columns", f"renaming gives two columns named '{new}'")
        out[new] = kind
    return out


# --- ChangeDataType --------------------------------------------------------------------------


class ChangeDataTypeParams(Params):
    dtype: dict[str, DtypeName] = Field(
        min_length=1,
        description="Column -> pandas dtype ('int64', 'Int64', 'float64', 'str', 'boolean', "
        "'datetime64[ns]', 'datetime64[ns, UTC]', 'category'...); an allow-listed name, so a "
        "name never sizes memory or reads a time-zone file (docs/flow-spec.md, Declared types).",
    )
    errors: Literal["raise", "ignore", "coerce"] = Field(
        default="raise",
        description="'ignore' keeps a column that does not convert; 'coerce' turns values that "
        "do not convert into nulls (pd.to_numeric / pd.to_datetime with errors='coerce').",
    )


def _coerce(series: pd.Series, dtype: Any) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(dtype):
        tz = getattr(dtype, "tz", None)
        out = pd.to_datetime(series, errors="coerce", utc=tz is not None)
        return out.dt.tz_convert(tz) if tz is not None else out.astype(dtype)
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        numbers = pd.to_numeric(series, errors="coerce")
        try:
            return numbers.astype(dtype)
        except (TypeError, ValueError):  # nulls into a numpy int: keep the nullable twin
            return numbers.astype(str(dtype).capitalize() if str(dtype).startswith(("int", "uint")) else dtype)
    return series.astype(dtype)


def change_data_type(ctx: NodeContext, params: ChangeDataTypeParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Cast columns (``df.astype(dtype)``; ``errors='coerce'`` as ``pd.to_numeric``/``to_datetime``)."""
    df = inputs["input"]
    missing = [c for c in params.dtype if c not in df.columns]
    if missing:
        raise KeyError(f"dtype: column(s) {', '.join(missing)} not in the input")
    if params.errors == "raise":
        return df.astype(params.dtype)
    changed: dict[str, pd.Series] = {}
    failed = []
    for column, name in params.dtype.items():
        dtype = pd.api.types.pandas_dtype(name)
        try:
            changed[column] = _coerce(df[column], dtype) if params.errors == "coerce" else df[column].astype(dtype)
        except (TypeError, ValueError):
            if params.errors == "coerce":
                raise
            failed.append(column)
    if failed:
        ctx.add_metadata(unchanged_columns=failed)
    return df.assign(**changed)


def change_data_type_schema(params: ChangeDataTypeParams, inputs: dict) -> ColumnSchema | None:
    schema = inputs["input"]
    require_columns(schema, list(params.dtype), "dtype")
    if schema is None:
        return None
    out = dict(schema)
    for column, name in params.dtype.items():
        out[column] = logical_type(pd.api.types.pandas_dtype(name)) if params.errors != "ignore" else "any"
    return out


# --- SplitColumn -----------------------------------------------------------------------------


class SplitColumnParams(Params):
    column: str = Field(description="The text column to split.")
    pat: str | None = Field(default=None, description="Separator; default: whitespace (Series.str.split).")
    # Bounded: the schema hook names n + 1 columns before any run (issue 16: bounded validation).
    n: int = Field(default=-1, ge=-1, le=MAX_SPLIT_PARTS, description="Most splits; -1 for all.")
    regex: bool | None = Field(default=None, description="Treat `pat` as a regular expression.")
    names: list[str] | None = Field(
        default=None, description="Names of the new columns; default '<column>_0', '<column>_1'..."
    )
    drop: bool = Field(default=False, description="Drop the column that was split.")


def _split_names(params: SplitColumnParams, count: int | None) -> list[str] | None:
    if params.names:
        return list(params.names)
    if params.n >= 0:
        return [f"{params.column}_{i}" for i in range(params.n + 1)]
    return None if count is None else [f"{params.column}_{i}" for i in range(count)]


def split_column(ctx: NodeContext, params: SplitColumnParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Split a text column into new columns (``s.str.split(pat, n=n, expand=True)``)."""
    df = inputs["input"]
    parts = df[params.column].str.split(params.pat, n=params.n, expand=True, regex=params.regex)
    names = _split_names(params, parts.shape[1])
    assert names is not None
    parts = parts.reindex(columns=range(len(names)))
    parts.columns = names
    clash = [c for c in names if c in df.columns and not (params.drop and c == params.column)]
    if clash:
        raise ValueError(f"names: column(s) {', '.join(clash)} already exist in the input")
    base = df.drop(columns=[params.column]) if params.drop else df
    return pd.concat([base, parts], axis=1)


def split_column_schema(params: SplitColumnParams, inputs: dict) -> ColumnSchema | None:
    schema = inputs["input"]
    require_columns(schema, [params.column], "column")
    if schema is None:
        return None
    if schema[params.column] not in ("string", "any"):
        raise SchemaError("column", f"cannot split column '{params.column}' of type {schema[params.column]}")
    names = _split_names(params, None)
    if names is None:
        return None
    out = {c: t for c, t in schema.items() if not (params.drop and c == params.column)}
    for name in names:
        if name in out:
            raise SchemaError("names", f"column '{name}' already exists in the input")
        out[name] = "string"
    return out


# --- MapValues -------------------------------------------------------------------------------


class MapValuesParams(Params):
    column: str = Field(description="The column whose values are replaced.")
    mapping: dict[str | int | float | bool, JsonScalar] = Field(description="Old value -> new value.")
    default: JsonScalar = Field(default=None, description="Value for unmapped values; when not given they are kept.")
    output: str | None = Field(default=None, description="Write to this column instead of replacing.")


def _keys_like(mapping: dict[Any, Any], series: pd.Series) -> dict[Any, Any]:
    """JSON keys are text: turn '1' into 1 when the column holds numbers."""
    if not pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return mapping
    out = {}
    for key, value in mapping.items():
        if isinstance(key, str):
            try:
                key = float(key) if any(c in key for c in ".eE") else int(key)
            except ValueError:
                pass
        out[key] = value
    return out


def map_values(ctx: NodeContext, params: MapValuesParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Replace values by a mapping (``s.map(mapping)``); unmapped ones kept or set to ``default``."""
    df = inputs["input"]
    series = df[params.column]
    mapping = _keys_like(dict(params.mapping), series)
    mapped = series.map(mapping)
    hit = series.isin(list(mapping))
    unmapped = params.default if "default" in params.model_fields_set else series
    result = mapped.where(hit, unmapped)
    return df.assign(**{params.output or params.column: result})


def map_values_schema(params: MapValuesParams, inputs: dict) -> ColumnSchema | None:
    schema = inputs["input"]
    require_columns(schema, [params.column], "column")
    if schema is None:
        return None
    kinds = {logical_type(pd.Series([v]).dtype) for v in params.mapping.values() if v is not None}
    if "default" in params.model_fields_set and params.default is not None:
        kinds.add(logical_type(pd.Series([params.default]).dtype))
    else:
        kinds.add(schema[params.column])
    kind = kinds.pop() if len(kinds) == 1 else ("float" if kinds <= {"integer", "float"} else "any")
    return {**schema, params.output or params.column: kind}


NODE_TYPES = [
    NodeType("RenameColumns", RenameColumnsParams, rename_columns, "transform", infer_schema=rename_columns_schema),
    NodeType(
        "ChangeDataType", ChangeDataTypeParams, change_data_type, "transform", infer_schema=change_data_type_schema
    ),
    NodeType("SplitColumn", SplitColumnParams, split_column, "transform", infer_schema=split_column_schema),
    NodeType("MapValues", MapValuesParams, map_values, "transform", infer_schema=map_values_schema),
]
