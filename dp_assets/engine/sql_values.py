"""What the expression compiler (``sql_expressions``) works with: the kinds of value it tracks (the
numpy-backed pandas dtypes and the SQL types they become), a compiled piece of SQL with its kind,
quoting, literals, an Arrow column's kind, and how two kinds meet (compared as pandas compares
them, or in one column)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import NotSupported

# Kinds of value the compiler tracks: numpy-backed pandas dtypes and the SQL types they become.
INT, FLOAT, BOOL, STR, DATE, TS, TSTZ, NULL = "int", "float", "bool", "str", "date", "ts", "tstz", "null"
NUMBER = {INT, FLOAT, BOOL}
_INT64 = (-(2**63), 2**63 - 1)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$")


@dataclass(frozen=True)
class Sql:
    text: str
    kind: str
    constant: Any = None  # the value of an integer or text literal (some functions need one)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_text(value: str) -> str:
    if "\x00" in value:
        raise NotSupported("text with a NUL character")
    return "'" + value.replace("'", "''") + "'"


def literal(value: Any) -> Sql:
    if value is None:
        return Sql("NULL", NULL)
    if isinstance(value, bool):
        return Sql("true" if value else "false", BOOL)
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise NotSupported("an integer beyond 64 bits")
        return Sql(f"CAST({value} AS BIGINT)", INT, value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotSupported("a non-finite literal")
        return Sql(f"CAST({value!r} AS DOUBLE)", FLOAT)
    if isinstance(value, str):
        return Sql(quote_text(value), STR, value)
    raise NotSupported(f"a {type(value).__name__} value")


def untyped(sql: Sql) -> str:
    if isinstance(sql.constant, int) and not isinstance(sql.constant, bool) and sql.kind == INT:
        return f"({sql.constant})"
    return as_number(sql)


def as_number(sql: Sql) -> str:
    return f"CAST({sql.text} AS BIGINT)" if sql.kind == BOOL else sql.text


def no_nan(text: str) -> str:
    """pandas counts NaN as missing (isna, fillna, count); DuckDB does not: make it NULL."""
    return f"nullif({text}, CAST('NaN' AS DOUBLE))"


def kind_of_arrow(arrow_type: Any) -> str | None:
    """The compiler's kind for an Arrow column type, or None when it has none."""
    import pyarrow as pa

    types = pa.types
    if types.is_boolean(arrow_type):
        return BOOL
    if types.is_integer(arrow_type):
        return INT
    if types.is_floating(arrow_type):
        return FLOAT
    if types.is_string(arrow_type) or types.is_large_string(arrow_type) or types.is_string_view(arrow_type):
        return STR
    if types.is_date32(arrow_type):
        return DATE
    if types.is_timestamp(arrow_type):
        return TSTZ if arrow_type.tz else TS
    if types.is_null(arrow_type):
        return NULL
    return None


def same_family(kind: str) -> set[str]:
    if kind in NUMBER:
        return set(NUMBER)
    if kind in (TS, DATE):
        return {kind, STR}
    return {kind}


def comparable(left: Sql, right: Sql) -> tuple[str, str]:
    """Both sides as SQL DuckDB compares as pandas does; NotSupported where pandas would raise
    or compare by identity (text with numbers, dates with time zones)."""
    if NULL in (left.kind, right.kind):
        return left.text, right.text
    if left.kind in NUMBER and right.kind in NUMBER:
        return as_number(left), as_number(right)
    if left.kind == right.kind and left.kind in (STR, BOOL, DATE, TS):
        return left.text, right.text
    for this, other, flip in ((left, right, False), (right, left, True)):
        if this.kind == TS and other.kind == STR and _ISO_DATE.match(str(other.constant)):
            pair = (this.text, f"CAST({other.text} AS TIMESTAMP)")
            return (pair[1], pair[0]) if flip else pair
    raise NotSupported(f"comparing {left.kind} with {right.kind}")


def unify(a: str, b: str) -> str:
    if a == b or b == NULL:
        return a
    if a == NULL:
        return b
    # int with float: pandas' dtype then depends on the rows (an empty frame stays int64)
    raise NotSupported(f"{a} with {b}")
