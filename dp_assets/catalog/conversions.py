"""Declared column types applied to what a source read: converted, or an error naming the first bad value.

A source that declares ``columns: {ordered_at: datetime}`` promises its dependants a datetime
column, and its schema hook already told ``dp validate`` so. Without conversion a CSV gives text
there, and the promise fails far downstream, or never (a text column sorts and joins happily).
So the declared type is applied on read, the same way for every file format, and a value that
does not convert stops the run with the flow, node, column and the value itself.

Each logical type becomes one pandas dtype, whatever the file held, so a run's dtypes do not
depend on its data (an integer column with a blank does not turn float):

========  ==========================================================================
integer   ``Int64`` (nullable): whole numbers; text is parsed, ``1.0`` is 1, ``1.5`` is an error
float     ``float64``: text is parsed
string    ``str`` (pandas' text dtype); numbers become their text
boolean   ``boolean`` (nullable): true/false, yes/no, y/n, t/f, 1/0 (any case), or 0/1 numbers
datetime  ``datetime64``: ISO 8601 text (any mix of date and date-time), else one format that
          pandas infers from the first value; zoned values with different offsets become UTC
date      ``datetime.date`` values (``s.dt.date``, as the expression ``date()``): a date-time is
          cut to its calendar date in its own time zone
========  ==========================================================================

Blank text counts as missing, as ``read_csv`` reads an empty field; ``any`` is left as read.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping
from typing import Any

from dp_assets.deferred import np, pd

TRUE_TEXT = frozenset({"true", "t", "yes", "y", "1"})
FALSE_TEXT = frozenset({"false", "f", "no", "n", "0"})
#: The dtype each declared logical type is read into (docs/flow-spec.md, Declared columns).
DECLARED_DTYPES = {
    "integer": "Int64",
    "float": "float64",
    "string": "str",
    "boolean": "boolean",
    "datetime": "datetime64",
    "date": "object of datetime.date",
}
_WORDS = {
    "integer": "a whole number",
    "float": "a number",
    "boolean": "true/false",
    "datetime": "a date-time",
    "date": "a date",
}
# A zone after the time at the end of ISO text: 'Z', '+01', '+0100', '+01:00' (a bare date's
# '-01' is no zone). Anchored at the end, no nested repetition: linear in the text.
_ZONE = r"(?:Z|[+-]\d\d(?::?\d\d)?)$"
_ZONED_TIME = r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s?" + _ZONE


def convert_declared(df: pd.DataFrame, declared: Mapping[str, str], where: str) -> pd.DataFrame:
    """``df`` with each declared column (that it has) converted; ``where`` names the flow and node."""
    changed = {}
    for column, kind in declared.items():
        if kind != "any" and column in df.columns:
            changed[column] = convert_column(df[column], kind, f"{where}, column '{column}'")
    if not changed:
        return df
    out = df.copy(deep=False)
    for column, series in changed.items():
        out[column] = series
    return out


def convert_column(series: pd.Series, kind: str, where: str) -> pd.Series:
    """One column as the declared logical ``kind``; raises ``ValueError`` naming the first bad value."""
    if kind in ("integer", "float"):
        return _numbers(series, kind, where)
    if kind == "boolean":
        return _booleans(series, where)
    if kind == "string":
        return series if _is_text_dtype(series) else series.astype("str")
    if kind == "datetime":
        return _datetimes(series, where)
    if kind == "date":
        return _dates(series, where)
    return series


def _is_text_dtype(series: pd.Series) -> bool:
    """pandas' default text dtype ('str'), whose missing value is NaN (not the nullable string's NA)."""
    return isinstance(series.dtype, pd.StringDtype) and series.dtype.na_value is not pd.NA


def _refuse_first(series: pd.Series, bad: pd.Series, kind: str, where: str, why: str = "") -> None:
    """Raise naming the first value where ``bad`` is true, and its row in the file (1-based, header
    not counted)."""
    flags = bad.to_numpy(dtype=bool, na_value=False)
    if not flags.any():
        return
    position = int(np.flatnonzero(flags)[0])
    value = series.iloc[position]
    label = series.index[position]  # a CSV chunk's index runs on from the chunks before it
    row = int(label) + 1 if isinstance(label, int | np.integer) else position + 1
    text = repr(value.item() if isinstance(value, np.generic) else value)
    text = text if len(text) <= 60 else text[:57] + "..."
    raise ValueError(
        f"{where}: {text} (row {row}) is not {_WORDS[kind]}{why}; fix the data, or declare the "
        f"column 'any' and convert it with ChangeDataType (errors: coerce turns such values into nulls)"
    )


def _text(series: pd.Series) -> pd.Series:
    """The values as stripped text, blanks as missing (what ``read_csv`` does with empty fields)."""
    text = series.astype("str").str.strip()
    return text.mask(text == "")


def _numbers(series: pd.Series, kind: str, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        _refuse_first(series, series.notna(), kind, where)
    if pd.api.types.is_numeric_dtype(series.dtype):
        numbers = series
    else:
        text = _text(series)
        # numpy_nullable: whole numbers stay exact Int64 (a float64 would round 2**53 + 1)
        numbers = pd.to_numeric(text, errors="coerce", dtype_backend="numpy_nullable")
        _refuse_first(series, numbers.isna() & text.notna(), kind, where)
    if kind == "float":
        return numbers.astype("float64")
    if not pd.api.types.is_integer_dtype(numbers.dtype):
        whole = (numbers % 1 == 0) & (numbers.abs() < 2.0**63)
        _refuse_first(series, numbers.notna() & ~whole.fillna(False).astype(bool), kind, where)
    try:
        return numbers.astype("Int64")
    except (OverflowError, TypeError, ValueError):  # uint64 beyond int64
        _refuse_first(series, numbers > np.iinfo("int64").max, kind, where, " in the int64 range")
        raise


def _booleans(series: pd.Series, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean")
    if pd.api.types.is_numeric_dtype(series.dtype):
        _refuse_first(series, series.notna() & ~series.isin([0, 1]), "boolean", where)
        return series.astype("boolean")
    lowered = _text(series).str.lower()
    truth = lowered.isin(TRUE_TEXT)
    falsity = lowered.isin(FALSE_TEXT)
    _refuse_first(series, lowered.notna() & ~truth & ~falsity, "boolean", where)
    out = pd.Series(pd.NA, index=series.index, dtype="boolean", name=series.name)
    out[truth.to_numpy(dtype=bool)] = True
    out[falsity.to_numpy(dtype=bool)] = False
    return out


def _datetimes(series: pd.Series, where: str) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series
    if pd.api.types.is_numeric_dtype(series.dtype):
        _refuse_first(series, series.notna(), "datetime", where, " (numbers are not read as times)")
    if pd.api.types.is_object_dtype(series.dtype) and _all_instants(series):
        return pd.to_datetime(series)  # datetime objects, e.g. Excel cells
    text = _text(series)
    zoned = text.str.contains(_ZONED_TIME, regex=True, na=False)
    present = text.notna()
    if zoned.any() and not zoned[present].all():
        _refuse_first(
            series, present & ~zoned, "datetime", where, " with a time zone, as other values of the column have"
        )
    utc = bool(zoned.any()) and text[zoned].str.extract(f"({_ZONE})")[0].nunique() > 1
    parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=utc)
    if present.any() and parsed[present].isna().all():  # not ISO: one format pandas infers
        with warnings.catch_warnings():  # "could not infer format": the values that fail are named below
            warnings.simplefilter("ignore", UserWarning)
            parsed = pd.to_datetime(text, errors="coerce", utc=utc)
    # A bare number ('2024', '-1') is no date-time, though ISO 8601 would read a year into it.
    bare = text.str.fullmatch(r"[+-]?\d+(?:\.\d*)?", na=False)
    _refuse_first(series, present & (parsed.isna() | bare), "datetime", where)
    return parsed.rename(series.name)


def _all_instants(series: pd.Series) -> bool:
    present = series.dropna()
    return len(present) > 0 and all(isinstance(v, dt.datetime | pd.Timestamp) for v in present)


def _dates(series: pd.Series, where: str) -> pd.Series:
    if pd.api.types.is_object_dtype(series.dtype):
        present = series.dropna()
        # Dates already, kept as they are; a column with no value at all is converted, so that
        # its missing values are NaT as in a column that holds some dates (not the reader's NaN)
        if len(present) and all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in present):
            return series
    try:
        instants = _datetimes(series, where)
    except ValueError as exc:
        raise ValueError(str(exc).replace("is not a date-time", "is not a date")) from None
    years = instants.dt.year
    _refuse_first(
        series,
        instants.notna() & ((years < 1) | (years > 9999)),
        "date",
        where,
        " (datetime.date holds years 1 to 9999)",
    )
    return instants.dt.date.astype(object).rename(series.name)


def declared_read_dtypes(
    declared: Mapping[str, str] | None, given: Mapping[str, Any] | None, skip: list[str] | None = None
) -> dict[str, Any] | None:
    """``dtype`` for a text reader (CSV, JSON): declared columns read raw, as text (CSV) or as
    they are (JSON), so that a parser's guess (``'007'`` read as 7) does not lose what the
    declared type keeps. A dtype the spec gives for a column wins; ``skip`` are ``parse_dates``."""
    out = dict(given or {})
    for column, kind in (declared or {}).items():
        if kind != "any" and column not in out and column not in (skip or []):
            out[column] = "object"
    return out or None
