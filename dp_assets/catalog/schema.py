"""Column schemas known before a run, and their logical type names."""

from __future__ import annotations

from dp_assets.catalog.base import ColumnSchema, SchemaError
from dp_assets.deferred import pd

NUMERIC = frozenset({"integer", "float", "boolean"})


def logical_type(dtype: object) -> str:
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_string_dtype(dtype):
        return "string"
    return "any"


def schema_of(df: pd.DataFrame) -> ColumnSchema:
    return {str(name): logical_type(dtype) for name, dtype in df.dtypes.items()}


def require_columns(schema: ColumnSchema | None, columns: list[str], field: str) -> None:
    """Raise ``SchemaError`` naming the first column the input does not have."""
    if schema is None:
        return
    for column in columns:
        if column not in schema:
            have = ", ".join(schema) or "no columns"
            raise SchemaError(field, f"column '{column}' is not in the input (it has: {have})")


def as_list(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)
