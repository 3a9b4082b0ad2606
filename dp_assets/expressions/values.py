"""Shared helpers for the function implementations: a value is a Series or a single value."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dp_assets.deferred import np, pd


def is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def series_index(args: tuple[Any, ...]) -> pd.Index | None:
    for arg in args:
        if isinstance(arg, pd.Series):
            return arg.index
    return None


def broadcast(value: Any, index: pd.Index) -> pd.Series:
    if isinstance(value, pd.Series):
        return value
    return pd.Series(value, index=index, dtype=object if is_missing(value) else None)


def require_text(value: Any, fname: str) -> Any:
    """Check that ``value`` is text (a text column, or a str); missing values pass."""
    if isinstance(value, pd.Series):
        dtype = value.dtype
        if isinstance(dtype, pd.StringDtype) or pd.api.types.is_object_dtype(dtype):
            return value
        if isinstance(dtype, pd.ArrowDtype) and pd.api.types.is_string_dtype(dtype):
            return value
        raise TypeError(f"{fname}() needs text, but the values are {dtype}; use str(x) first")
    if isinstance(value, str) or is_missing(value):
        return value
    raise TypeError(f"{fname}() needs text, not {shown(value)}")


def shown(value: Any) -> str:
    if isinstance(value, pd.Series):
        return "a column of values"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def literal_text(value: Any, fname: str, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{fname}() needs a single text value for {what}, not {shown(value)}")
    return value


def literal_int(value: Any, fname: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{fname}() needs a single whole number for {what}, not {shown(value)}")
    return int(value)


def per_value(value: Any, fn: Callable[[Any], Any]) -> Any:
    return None if is_missing(value) else fn(value)
