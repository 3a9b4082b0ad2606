"""Date functions: timestamps keep their time zone; dates are ``datetime.date`` (``s.dt.date``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from dp_assets.deferred import np, pd

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


# --- date arithmetic ---------------------------------------------------------------------------
#
# add_days/weeks/months/years move the calendar: the same wall-clock time that many days or
# months later in the value's own time zone (pd.DateOffset's meaning; a month past the 31st ends on
# the last day of the shorter month). add_hours/minutes/seconds add elapsed time (pd.Timedelta).
# A missing value or amount gives a missing result. Amounts are capped, so no arithmetic on int64
# wraps around (an int64 of months or nanoseconds would, silently); a result outside the range of
# the value's timestamps is an error, as in pandas.

#: Largest amount either way, per unit: about 270 years for elapsed units (pandas' Timedelta holds
#: 292) and 10,000 years for months and years (computed on numpy months, far from any limit).
MAX_AMOUNT = {
    "days": 100_000,
    "weeks": 14_000,
    "hours": 2_400_000,
    "minutes": 144_000_000,
    "seconds": 8_640_000_000,
    "months": 120_000,
    "years": 10_000,
}
_CALENDAR = {"days": ("days", 1), "weeks": ("days", 7), "months": ("months", 1), "years": ("months", 12)}
_ELAPSED = {"hours": "h", "minutes": "min", "seconds": "s"}


def _amounts(amount: Any, fname: str, unit: str) -> Any:
    """The amount as float (a Series, or one value; None when missing), checked against the cap;
    months and years in whole numbers."""
    cap = MAX_AMOUNT[unit]
    whole = unit in ("months", "years")
    if isinstance(amount, pd.Series):
        if pd.api.types.is_bool_dtype(amount.dtype) or not (
            pd.api.types.is_numeric_dtype(amount.dtype) or len(amount) == 0
        ):
            raise TypeError(f"{fname}() needs numbers of {unit}, but the values are {amount.dtype}")
        numbers = amount.astype("float64")
        present = numbers.notna()
        bad = present & ((numbers.abs() > cap) | ((numbers % 1 != 0) if whole else False))
        if bad.any():
            _refuse_amount(numbers[bad].iloc[0], fname, unit, cap, whole)
        return numbers
    if is_missing(amount):
        return None
    if isinstance(amount, bool) or not isinstance(amount, int | float | np.integer | np.floating):
        raise TypeError(f"{fname}() needs a number of {unit}, not {amount!r:.60}")
    # A numpy scalar compared as the Python number it holds (numpy's stubs give its abs() no number type).
    number = amount.item() if isinstance(amount, np.generic) else amount
    if abs(number) > cap or (whole and float(amount) % 1 != 0):
        _refuse_amount(amount, fname, unit, cap, whole)
    return float(amount)


def _refuse_amount(value: Any, fname: str, unit: str, cap: int, whole: bool) -> None:
    kind = "a whole number of" if whole else "a number of"
    raise ValueError(f"{fname}() needs {kind} {unit} between -{cap:,} and {cap:,}, not {value!r:.60}")


def _as_stamps(value: Any) -> tuple[pd.Series, bool]:
    """The values as a datetime Series, and whether they were dates (``datetime.date``)."""
    if not isinstance(value, pd.Series):
        was_date = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
        stamp = pd.NaT if is_missing(value) else pd.Timestamp(value)
        return pd.Series([stamp]), was_date
    if pd.api.types.is_datetime64_any_dtype(value.dtype):
        return value, False
    # Dates are object columns (``s.dt.date``); an object column without values is taken as one,
    # so that an empty input keeps the dtype a non-empty one has. Text is pandas' ``str`` dtype.
    present = value.dropna()
    first = present.iloc[0] if len(present) else None
    was_date = pd.api.types.is_object_dtype(value.dtype) and (
        first is None or (isinstance(first, dt.date) and not isinstance(first, dt.datetime))
    )
    return pd.to_datetime(value), was_date


def _wall_clock(stamps: pd.Series, move: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``move`` applied to the local wall-clock times, localized again in their zone: a time that
    does not exist there (clocks forward) moves forward, an ambiguous one (clocks back) is the first."""
    tz = stamps.dt.tz
    local = stamps.dt.tz_localize(None) if tz is not None else stamps
    moved = move(local).astype(local.dtype)
    if tz is None:
        return moved
    first = np.ones(len(moved), dtype=bool)
    return moved.dt.tz_localize(tz, ambiguous=first, nonexistent="shift_forward")


def _in_unit(amounts: pd.Series, unit: str, tick: str) -> pd.Series:
    """``amounts`` of ``unit`` as a timedelta in the values' own resolution, rounded to it (a third of
    an hour is 20 minutes, not 19:59.999999), so a column keeps its unit as timestamps do."""
    return pd.to_timedelta(amounts, unit=unit).dt.round(tick).astype(f"timedelta64[{tick}]")


def _plus_days(local: pd.Series, days: Any) -> pd.Series:
    return local + _in_unit(days, "D", local.dt.unit)


def _plus_months(local: pd.Series, months: Any) -> pd.Series:
    """Calendar months on numpy's month numbers; the day is kept, or the month's last day."""
    values = local.to_numpy()
    count = np.broadcast_to(np.asarray(months, dtype="float64"), values.shape)
    missing = np.isnat(values) | np.isnan(count)
    start = values.astype("datetime64[M]")
    day = (values.astype("datetime64[D]") - start.astype("datetime64[D]")).astype("int64")
    time_of_day = values - values.astype("datetime64[D]").astype(values.dtype)
    target = start + np.where(missing, 0, count).astype("int64")
    days_in_target = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype("int64")
    dates = target.astype("datetime64[D]") + np.minimum(day, days_in_target - 1).astype("timedelta64[D]")
    dates[missing] = np.datetime64("NaT")
    # pandas checks the range when it converts (numpy would wrap past it silently)
    moved = pd.Series(dates, index=local.index).astype(local.dtype)
    return moved + pd.Series(time_of_day, index=local.index)


def _shifter(unit: str) -> Callable[[Any, Any], Any]:
    fname = f"add_{unit}"

    def shift(value: Any, amount: Any) -> Any:
        counted = _amounts(amount, fname, unit)
        stamps, was_date = _as_stamps(value)
        single = not isinstance(value, pd.Series) and not isinstance(counted, pd.Series)
        if isinstance(counted, pd.Series) and not isinstance(value, pd.Series):
            stamps = pd.Series(stamps.iloc[0], index=counted.index, dtype=stamps.dtype)
        counted = (
            pd.Series(counted, index=stamps.index, dtype="float64")
            if not isinstance(counted, pd.Series)
            else counted.reindex(stamps.index)
        )
        if was_date and unit in ("days", "weeks") and ((counted % 1 != 0) & counted.notna()).any():
            raise ValueError(f"{fname}() of a date needs whole {unit}; use add_hours() for parts of a day")
        if unit in _ELAPSED:
            moved = stamps + _in_unit(counted, _ELAPSED[unit], stamps.dt.unit)
            was_date = False
        else:
            step, factor = _CALENDAR[unit]
            mover = _plus_days if step == "days" else _plus_months
            moved = _wall_clock(stamps, lambda local: mover(local, counted * factor))
        if was_date:
            moved = moved.dt.date.astype(object)
        if single:
            result = moved.iloc[0]
            return None if is_missing(result) else result
        return moved

    shift.__name__ = fname
    return shift


add_days, add_weeks, add_months, add_years = (_shifter(u) for u in ("days", "weeks", "months", "years"))
add_hours, add_minutes, add_seconds = (_shifter(u) for u in ("hours", "minutes", "seconds"))
