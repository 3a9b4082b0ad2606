"""``StaticData``: rows written in the spec, as a DataFrame."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dp_assets.catalog.base import NO_INPUTS, ColumnSchema, NodeContext, NodeType, Params
from dp_assets.catalog.dtypes import DtypeName
from dp_assets.catalog.schema import schema_of
from dp_assets.deferred import pd


class StaticDataParams(Params):
    rows: list[dict[str, Any]] = Field(default_factory=list, description="Records, one mapping per row.")
    dtype: dict[str, DtypeName] | None = Field(
        default=None, description="pandas dtype per column (an allow-listed name: docs/flow-spec.md)."
    )


def static_data(ctx: NodeContext, params: StaticDataParams, inputs: dict[str, Any]) -> pd.DataFrame:
    """Rows written in the spec, as a DataFrame (``pd.DataFrame.from_records``)."""
    df = pd.DataFrame.from_records(params.rows)
    return df.astype(params.dtype) if params.dtype else df


def static_data_schema(params: StaticDataParams, inputs: dict) -> ColumnSchema:
    plain = None if params.dtype else _plain_records_schema(params.rows)
    return plain if plain is not None else schema_of(static_data(None, params, {}))  # type: ignore[arg-type]


_INT64 = range(-(2**63), 2**63)


def _plain_records_schema(rows: list[dict[str, Any]]) -> ColumnSchema | None:
    """The schema pandas gives ``rows`` when it is plain (every row has the same text keys, each
    column all integers, numbers, booleans or texts), found without importing pandas: validating
    a spec should not cost a pandas import. None when pandas must decide; a property test
    (tests/nodes/test_static_data_schema.py) holds this equal to pandas' answer."""
    if not rows:
        return None
    keys = list(rows[0])
    types: dict[str, set[type]] = {key: set() for key in keys}
    for row in rows:
        if list(row) != keys:
            return None
        for key, value in row.items():
            if type(value) is int and value not in _INT64:
                return None
            types[key].add(type(value))
    schema: ColumnSchema = {}
    for key, seen in types.items():
        if not isinstance(key, str):
            return None
        if seen == {bool}:
            schema[key] = "boolean"
        elif seen == {int}:
            schema[key] = "integer"
        elif seen and seen <= {int, float}:
            schema[key] = "float"
        elif seen == {str}:
            schema[key] = "string"
        else:
            return None
    return schema


NODE_TYPES = [
    NodeType("StaticData", StaticDataParams, static_data, "source", inputs=NO_INPUTS, infer_schema=static_data_schema),
]
