"""The DuckDB form of ChangeDataType: the casts whose every value converts as numpy's ``astype``.

A cast that cannot fail and gives pandas' values and dtype runs in DuckDB: integers and booleans
to ``int64``/``float64``/``bool``, floats to ``float64``/``bool`` (pandas: a missing value is
true), integers and booleans to ``str`` (``True``/``False`` as Python writes them), text to
``str``, and a zoned time to another zone in the same unit (DuckDB keeps the instant; the output's
zone is a dtype hint, ``frames.py``). As no value can fail, ``errors`` changes nothing there.
Everything else runs in pandas: casts that may fail or wrap (text to numbers, narrower integers,
floats to integers), float text (Python's ``repr`` of a float), nullable and Arrow dtypes,
categories, and times gaining or losing a zone (pandas refuses those).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import NotSupported
from .frames import Hints
from .relation import Relation
from .sql_expressions import quote_identifier

# (input kind, target dtype) -> the cast; {} is the column
_CASTS: dict[tuple[str, str], str] = {
    ("int", "int64"): "CAST({} AS BIGINT)",
    ("bool", "int64"): "CAST({} AS BIGINT)",
    ("int", "float64"): "CAST({} AS DOUBLE)",
    ("bool", "float64"): "CAST({} AS DOUBLE)",
    ("float", "float64"): "CAST({} AS DOUBLE)",
    ("int", "bool"): "({} <> 0)",
    ("bool", "bool"): "{}",
    ("float", "bool"): "coalesce({} <> 0, true)",  # numpy: NaN is true
    ("int", "str"): "CAST({} AS VARCHAR)",
    ("bool", "str"): "CASE WHEN {} THEN 'True' ELSE 'False' END",
    ("str", "str"): "{}",
}


_UNITS = ("s", "ms", "us", "ns")


def _target(name: str) -> Any:
    import pandas as pd

    return pd.api.types.pandas_dtype(name)


def _target_name(dtype: Any) -> str | None:
    """The name of a target this form casts to (None: pandas casts it)."""
    import numpy as np
    import pandas as pd

    if isinstance(dtype, pd.DatetimeTZDtype):
        return "zoned"
    if isinstance(dtype, pd.StringDtype):
        return "str" if dtype.na_value is np.nan and dtype.storage in ("python", "pyarrow") else None
    if isinstance(dtype, np.dtype) and dtype.name in ("int64", "float64", "bool"):
        return dtype.name
    return None


def _cast(column: str, name: str, rel: Relation) -> str:
    """The SQL that casts ``column`` to the dtype named ``name``."""
    wanted = _target_name(_target(name))
    kind = rel.kinds.get(column)
    if kind == "int" and str(rel.arrow_type(column)) == "uint64":
        raise NotSupported(f"column {column!r} of uint64 (numpy wraps what does not fit)")
    if wanted == "zoned":
        if kind != "tstz":
            raise NotSupported(f"column {column!r} to {name} (pandas refuses a zone gained)")
        return quote_identifier(column)  # the same instant; the zone is the output's hint
    sql = _CASTS.get((kind or "", wanted or ""))
    if sql is None:
        raise NotSupported(f"column {column!r} of kind {kind} to {name}")
    return sql.format(quote_identifier(column))


def change_data_type(params: Any, inputs: dict[str, Relation], flow_params: Mapping[str, Any]) -> str:
    rel = inputs["input"]
    if not set(params.dtype) <= set(rel.names):
        raise NotSupported("a column the input does not have (pandas names it)")
    casts = {column: _cast(column, name, rel) for column, name in params.dtype.items()}
    replaced = ", ".join(f"{sql} AS {quote_identifier(column)}" for column, sql in casts.items())
    return f"SELECT * REPLACE ({replaced}) FROM ({rel.sql})"


def hints_after_cast(params: Any, hints: Hints, given: Relation) -> Hints:
    """The dtype hints of the output: a cast column has its target's dtype (Arrow's conversion
    gives it, except a zone, which the hint carries). A zoned time may go to a finer unit (no
    value changes); to a coarser one pandas drops the finer part, which Arrow refuses to do."""
    import pandas as pd

    kept = {name: dtype for name, dtype in hints.items() if name not in params.dtype}
    for column, name in params.dtype.items():
        target = _target(name)
        if isinstance(target, pd.DatetimeTZDtype):
            unit = getattr(hints.get(column), "unit", None) or getattr(given.arrow_type(column), "unit", None)
            if _UNITS.index(target.unit) < _UNITS.index(unit or "ns"):
                raise NotSupported(f"column {column!r} to {name}: from the finer unit {unit}")
            # the pandas node's 'coerce' converts the zone only (to_datetime, then tz_convert)
            kept[column] = pd.DatetimeTZDtype(unit, target.tz) if params.errors == "coerce" and unit else target
    return kept
