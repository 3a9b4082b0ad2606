"""Declared output columns become Dagster asset checks, evaluated on the value the node made.

The checks run in the flow's step right after the node (no second read of the data), and show in
the UI on the node's asset as ``columns_contract``.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from dp_assets.catalog.schema import logical_type
from dp_assets.deferred import pd
from dp_assets.spec.model import ColumnContract

CHECK_NAME = "columns_contract"


def check_spec(key: dg.AssetKey, columns: list[ColumnContract]) -> dg.AssetCheckSpec:
    names = ", ".join(c.name for c in columns)
    return dg.AssetCheckSpec(CHECK_NAME, asset=key, description=f"Declared columns: {names}")


def column_problems(value: Any, columns: list[ColumnContract]) -> list[str]:
    if not isinstance(value, pd.DataFrame):
        return [f"expected a DataFrame, got {type(value).__name__}"]
    problems = []
    for column in columns:
        if column.name not in value.columns:
            problems.append(f"column '{column.name}' is missing")
            continue
        series = value[column.name]
        actual = logical_type(series.dtype)
        compatible = {actual} | ({"float"} if actual == "integer" else set())
        if column.type != "any" and column.type not in compatible and actual != "any":
            problems.append(f"column '{column.name}' is {actual}, declared {column.type}")
        if not column.nullable and series.isna().any():
            problems.append(f"column '{column.name}' has {int(series.isna().sum())} null(s)")
        if column.unique and series.duplicated().any():
            problems.append(f"column '{column.name}' has {int(series.duplicated().sum())} duplicate(s)")
    return problems


def check_result(key: dg.AssetKey, value: Any, columns: list[ColumnContract]) -> dg.AssetCheckResult:
    problems = column_problems(value, columns)
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=CHECK_NAME,
        passed=not problems,
        metadata={"problems": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none")},
    )
