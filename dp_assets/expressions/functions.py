"""Vectorised implementations of the function table in ``signatures.py``, by name.

Null, number and cast functions live here; text and date functions in their own modules. Each
function takes evaluated arguments, each a pandas Series (one value per row) or a single
value, and does what a pandas user would write by hand (``s.str.lower()``, ``s.dt.year``,
``s.fillna(v)``...). Plain-text matching only (``regex=False``): no user regex, so no
catastrophic backtracking. Errors raised here are wrapped by the evaluator with the call's text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dp_assets.deferred import np, pd

from .date_functions import (
    add_days,
    add_hours,
    add_minutes,
    add_months,
    add_seconds,
    add_weeks,
    add_years,
    align_dates,
    date,
    date_diff_days,
    day,
    month,
    now,
    to_datetime,
    year,
)
from .text_functions import (
    as_text,
    concat,
    contains,
    endswith,
    length,
    lower,
    replace,
    startswith,
    strip,
    substr,
    upper,
)
from .values import broadcast, is_missing, literal_int, per_value, series_index, shown

__all__ = ["FUNCTIONS", "align_dates", "shown"]

_TRUE_TEXT = {"true", "t", "yes", "y", "1"}
# Beyond float64's range every rounding is a no-op or zero, and numpy's time grows with the
# digits a spec chooses (round(x, 10**9) takes seconds).
MAX_ROUND_DIGITS = 308
_FALSE_TEXT = {"false", "f", "no", "n", "0", ""}


# nulls


def is_null(x: Any) -> Any:
    return x.isna() if isinstance(x, pd.Series) else is_missing(x)


def not_null(x: Any) -> Any:
    return x.notna() if isinstance(x, pd.Series) else not is_missing(x)


def _common(result: pd.Series, value: Any) -> tuple[pd.Series, Any]:
    """A nullable number column (``Int64``) filling a float64 one, cast first to the dtype pandas
    gives (it warns that it will refuse the mixed fill): ``Float64`` when both hold nulls, else
    float64."""
    if (
        isinstance(value, pd.Series)
        and isinstance(value.dtype, pd.api.extensions.ExtensionDtype)
        and pd.api.types.is_numeric_dtype(value.dtype)
        and not pd.api.types.is_bool_dtype(value.dtype)
        and result.dtype == np.float64
    ):
        if result.isna().any() and value.isna().any():
            return result.astype("Float64"), value.astype("Float64")
        return result, value.astype("float64")
    return result, value


def coalesce(*values: Any) -> Any:
    result = values[0]
    for value in values[1:]:
        if isinstance(result, pd.Series):
            result, value = _common(result, value)
            result = result.fillna(value)
        elif is_missing(result):
            result = value
        else:
            break
    return result


def fillna(x: Any, value: Any) -> Any:
    return coalesce(x, value)


# numbers


def _numeric_series(value: pd.Series, fname: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(value.dtype) or len(value) == 0:
        return value
    raise TypeError(f"{fname}() needs numbers, but the values are {value.dtype}")


def absolute(x: Any) -> Any:
    if isinstance(x, pd.Series):
        return _numeric_series(x, "abs").abs()
    return per_value(x, abs)


def round_(x: Any, digits: Any = 0) -> Any:
    digits = literal_int(digits, "round", "digits")
    if abs(digits) > MAX_ROUND_DIGITS:
        raise ValueError(f"round() digits must be between -{MAX_ROUND_DIGITS} and {MAX_ROUND_DIGITS}, not {digits}")
    if isinstance(x, pd.Series):
        return _numeric_series(x, "round").round(digits)
    return per_value(x, lambda v: np.round(v, digits).item())


def _whole(fname: str) -> Callable[[Any], Any]:
    """numpy's ``fname`` (floor, ceil) on numbers, keeping integers as they are."""

    def apply(x: Any) -> Any:
        fn = getattr(np, fname)
        if isinstance(x, pd.Series):
            x = _numeric_series(x, fname)
            return x if pd.api.types.is_integer_dtype(x.dtype) else fn(x)
        if isinstance(x, int | np.integer):
            return x
        return per_value(x, lambda v: fn(v).item())

    apply.__name__ = fname
    return apply


floor, ceil = _whole("floor"), _whole("ceil")


def _extreme(fname: str, reduce: str) -> Callable[..., Any]:
    def apply(*values: Any) -> Any:
        index = series_index(values)
        if index is None:
            present = [value for value in values if not is_missing(value)]
            return (min if reduce == "min" else max)(present) if present else None
        frame = pd.concat([broadcast(value, index) for value in values], axis=1)
        return getattr(frame, reduce)(axis=1)

    apply.__name__ = fname
    return apply


least, greatest = _extreme("least", "min"), _extreme("greatest", "max")


def between(x: Any, low: Any, high: Any) -> Any:
    _, low = align_dates(x, low)
    _, high = align_dates(x, high)
    if isinstance(x, pd.Series):
        return x.between(low, high)
    above, below = x >= low, x <= high
    if isinstance(above, pd.Series) or isinstance(below, pd.Series):
        return _series_and(above, below)
    return bool(above and below)


def _series_and(left: Any, right: Any) -> Any:
    if not isinstance(left, pd.Series):
        left, right = right, left
    return left & right


# casts


def _int_scalar(value: Any) -> int:
    if isinstance(value, str):
        value = value.strip()
        try:
            return int(value)
        except ValueError:
            return int(float(value))
    return int(value)


def to_int(x: Any) -> Any:
    if isinstance(x, pd.Series):
        if not pd.api.types.is_numeric_dtype(x.dtype):
            x = pd.to_numeric(x)
        if pd.api.types.is_float_dtype(x.dtype):
            x = np.trunc(x)
        return x.astype("Int64")
    return per_value(x, _int_scalar)


def to_float(x: Any) -> Any:
    if isinstance(x, pd.Series):
        if not pd.api.types.is_numeric_dtype(x.dtype):
            x = pd.to_numeric(x)
        return x.astype("float64")
    return per_value(x, float)


def to_str(x: Any) -> Any:
    return as_text(x)


def _text_to_bool(value: Any) -> Any:
    if is_missing(value):
        return pd.NA
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE_TEXT:
            return True
        if lowered in _FALSE_TEXT:
            return False
        raise ValueError(f"bool() cannot read {shown(value)} as true/false (use true/false, yes/no or 1/0)")
    return bool(value)


def to_bool(x: Any) -> Any:
    if isinstance(x, pd.Series):
        if pd.api.types.is_bool_dtype(x.dtype):
            return x.astype("boolean")
        if pd.api.types.is_numeric_dtype(x.dtype):
            return x.ne(0).astype("boolean").mask(x.isna(), pd.NA)
        return x.map(_text_to_bool, na_action="ignore").astype("boolean")
    result = _text_to_bool(x)
    return None if result is pd.NA else result


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "is_null": is_null,
    "not_null": not_null,
    "coalesce": coalesce,
    "fillna": fillna,
    "lower": lower,
    "upper": upper,
    "strip": strip,
    "len": length,
    "contains": contains,
    "startswith": startswith,
    "endswith": endswith,
    "replace": replace,
    "substr": substr,
    "concat": concat,
    "year": year,
    "month": month,
    "day": day,
    "date": date,
    "to_datetime": to_datetime,
    "now": now,
    "date_diff_days": date_diff_days,
    "add_days": add_days,
    "add_weeks": add_weeks,
    "add_months": add_months,
    "add_years": add_years,
    "add_hours": add_hours,
    "add_minutes": add_minutes,
    "add_seconds": add_seconds,
    "abs": absolute,
    "round": round_,
    "floor": floor,
    "ceil": ceil,
    "least": least,
    "greatest": greatest,
    "between": between,
    "int": to_int,
    "float": to_float,
    "str": to_str,
    "bool": to_bool,
}
