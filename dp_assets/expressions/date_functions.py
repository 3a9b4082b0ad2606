"""Date functions: timestamps keep their time zone; dates are ``datetime.date`` (``s.dt.date``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pandas as pd

from .values import is_missing, literal_text

_UNSET = object()


def _as_datetime(value: Any) -> Any:
    if isinstance(value, pd.Series):
        if pd.api.types.is_datetime64_any_dtype(value.dtype):
            return value
        return pd.to_datetime(value)
    if is_missing(value):
        return pd.NaT
    return pd.Timestamp(value)


def _date_part(part: str) -> Callable[[Any], Any]:
    def apply(value: Any) -> Any:
        value = _as_datetime(value)
        if isinstance(value, pd.Series):
            return getattr(value.dt, part)
        return None if value is pd.NaT else getattr(value, part)

    apply.__name__ = part
    return apply


year, month, day = _date_part("year"), _date_part("month"), _date_part("day")


def date(value: Any) -> Any:
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    value = _as_datetime(value)
    if isinstance(value, pd.Series):
        return value.dt.date
    return None if value is pd.NaT else value.date()


def to_datetime(value: Any, format: Any = None) -> Any:  # pandas' own argument name
    if format is not None:
        literal_text(format, "to_datetime", "format")
    result = pd.to_datetime(value, format=format)
    return None if result is pd.NaT else result


def now(tz: Any = _UNSET) -> pd.Timestamp:
    if tz is _UNSET:
        return pd.Timestamp.now(tz="UTC")
    if tz is None:
        return pd.Timestamp.now(tz="UTC").tz_localize(None)
    return pd.Timestamp.now(tz=_zone(literal_text(tz, "now", "the time zone")))


def _zone(name: str) -> str:
    """An IANA name only: pandas reads a file for other names ('dateutil//etc/passwd')."""
    from dp_assets.timezones import timezone_error

    problem = timezone_error(name)
    if problem is not None:
        raise ValueError(f"now(): {problem}")
    return name


def _midnight(value: Any) -> Any:
    value = _as_datetime(value)
    if isinstance(value, pd.Series):
        value = value.dt.normalize()
        return value.dt.tz_localize(None) if value.dt.tz is not None else value
    if value is pd.NaT:
        return value
    value = value.normalize()
    return value.tz_localize(None) if value.tzinfo is not None else value


def date_diff_days(end: Any, start: Any) -> Any:
    delta = _midnight(end) - _midnight(start)
    if isinstance(delta, pd.Series):
        return delta.dt.days
    return None if delta is pd.NaT else delta.days


def align_dates(left: Any, right: Any) -> tuple[Any, Any]:
    """A plain ``datetime.date`` (a YAML date param, say) compared with a timestamp column
    becomes midnight in the column's time zone, as pandas already does for text like
    ``'2024-01-31'``; pandas itself refuses to compare datetime64 with ``date``."""

    def fitted(column: Any, value: Any) -> Any:
        if (
            isinstance(column, pd.Series)
            and isinstance(value, dt.date)
            and not isinstance(value, dt.datetime)
            and pd.api.types.is_datetime64_any_dtype(column.dtype)
        ):
            stamp = pd.Timestamp(value)
            tz = getattr(column.dtype, "tz", None)
            return stamp.tz_localize(tz) if tz is not None else stamp
        return value

    return fitted(right, left), fitted(left, right)
