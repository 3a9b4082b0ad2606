"""Dtype names a spec may declare, checked against an allow-list before numpy or pandas sees them.

``pd.api.types.pandas_dtype`` accepts the whole numpy dtype language, in which a few characters
choose the memory: ``'S2000000000'`` is a 2 GB string per value, sub-array and void dtypes size
every value by a number in the name, and ``'datetime64[ns, dateutil//etc/passwd]'`` reads a file
to build its time zone. Schema inference (``StaticData``) and casts run these at validation, so a
hostile name could allocate gigabytes before any run. Only the column types a pandas user
declares are accepted: fixed-width numbers, booleans, text, categories, times with a unit and an
IANA zone, and their nullable and Arrow forms. The check is a set lookup or a bounded regular
expression on the name (issue 16: validation is bounded).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator

from dp_assets.timezones import timezone_error

_INTS = [f"{sign}int{bits}" for sign in ("", "u") for bits in (8, 16, 32, 64)]
_NUMPY = {"bool", "int", "float", "float32", "float64", "object", "str", "category", *_INTS}
_NULLABLE = {
    "boolean",
    "string",
    "string[python]",
    "Float32",
    "Float64",
    *(name.capitalize() if name.startswith("i") else "UInt" + name[4:] for name in _INTS),
}
_ARROW = {
    f"{name}[pyarrow]"
    for name in (
        *_INTS,
        "bool",
        "float",
        "double",
        "float32",
        "float64",
        "string",
        "large_string",
        "date32[day]",
        "date64[ms]",
    )
}
SIMPLE_DTYPES = frozenset(_NUMPY | _NULLABLE | _ARROW)

_UNIT = r"(?:s|ms|us|ns)"
_TIMES = [
    re.compile(rf"(?:datetime64|timedelta64|M8|m8)\[{_UNIT}\]"),
    re.compile(rf"timestamp\[{_UNIT}\]\[pyarrow\]|duration\[{_UNIT}\]\[pyarrow\]"),
]
_ZONED = [
    re.compile(rf"datetime64\[{_UNIT}, ?(?P<tz>[^\]]{{1,64}})\]"),
    re.compile(rf"timestamp\[{_UNIT}, tz=(?P<tz>[^\]]{{1,64}})\]\[pyarrow\]"),
]
MAX_DTYPE_LENGTH = 100


def dtype_error(name: Any) -> str | None:
    """Why ``name`` is not an accepted dtype (None when it is)."""
    if not isinstance(name, str):
        return f"a dtype must be text such as 'float64', not {type(name).__name__}"
    if name in SIMPLE_DTYPES:
        return None
    shown = name if len(name) <= MAX_DTYPE_LENGTH else name[:MAX_DTYPE_LENGTH] + "..."
    if len(name) <= MAX_DTYPE_LENGTH:
        if any(pattern.fullmatch(name) for pattern in _TIMES):
            return None
        for pattern in _ZONED:
            match = pattern.fullmatch(name)
            if match:
                problem = timezone_error(match["tz"])
                return None if problem is None else f"dtype {shown!r}: {problem}"
    return (
        f"{shown!r} is not an accepted dtype; use one of bool, int64, float64, str, category, "
        "Int64, Float64, boolean, string, datetime64[ns], datetime64[ns, Europe/Berlin], "
        "int64[pyarrow] ... (docs/flow-spec.md, Declared types)"
    )


def check_dtype(name: Any) -> str:
    problem = dtype_error(name)
    if problem is not None:
        raise ValueError(problem)
    return name


# A params field holding a dtype name: ``dict[str, DtypeName]`` fails validation with the name of
# the column and the refused dtype.
DtypeName = Annotated[str, AfterValidator(check_dtype)]
