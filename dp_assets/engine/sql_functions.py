"""The expression language's functions in DuckDB SQL, each with the pandas evaluator's meaning
(``dp_assets.expressions``); one without a faithful form raises ``NotSupported`` and the node
runs in pandas. ``FUNCTIONS`` is what the compiler (``sql_expressions``) calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dp_assets.expressions.tree import Call

from .errors import NotSupported
from .sql_values import (
    BOOL,
    DATE,
    FLOAT,
    INT,
    NUMBER,
    STR,
    TS,
    Sql,
    as_number,
    comparable,
    quote_text,
    unify,
)

# Python's str.strip() strips Unicode whitespace; these are the ASCII ones (the docs say so).
_WHITESPACE = " \t\n\r\x0b\x0c"


# --- functions: (compiler, compiled args, call node) -> Sql ------------------------------------

Handler = Callable[[Any, list[Sql], Call], Sql]  # (the compiler, its compiled args, the call)


def _text_arg(args: list[Sql], index: int, literal_only: bool = False) -> str:
    arg = args[index]
    if arg.kind != STR or (literal_only and arg.constant is None):
        raise NotSupported("a text function of a non-text value")
    return arg.text


def _text(sql_fn: str) -> Handler:
    return lambda c, args, node: Sql(f"{sql_fn}({_text_arg(args, 0)})", STR)


def _match(sql_fn: str) -> Handler:
    return lambda c, args, node: Sql(
        f"coalesce({sql_fn}({_text_arg(args, 0)}, {_text_arg(args, 1, literal_only=True)}), false)", BOOL
    )


def _replace(c: Any, args: list[Sql], node: Call) -> Sql:
    old = _text_arg(args, 1, literal_only=True)
    if old == "''":
        raise NotSupported("replace() of empty text")
    return Sql(f"replace({_text_arg(args, 0)}, {old}, {_text_arg(args, 2, literal_only=True)})", STR)


def _literal_int(arg: Sql) -> int:
    if arg.kind != INT or arg.constant is None:
        raise NotSupported("a non-literal integer argument")
    return int(arg.constant)


def _substr(c: Any, args: list[Sql], node: Call) -> Sql:
    text, start = _text_arg(args, 0), _literal_int(args[1])
    length = _literal_int(args[2]) if len(args) > 2 else None
    if start < 0 or (length is not None and length < 0):
        raise NotSupported("substr() from the end")
    if length is None:
        return Sql(f"substring({text}, {start + 1})", STR)
    return Sql(f"substring({text}, {start + 1}, {length})", STR)


def _concat(c: Any, args: list[Sql], node: Call) -> Sql:
    parts = [_as_text(arg) for arg in args]
    return Sql("(" + " || ".join(parts) + ")", STR)


def _as_text(arg: Sql) -> str:
    if arg.kind == STR:
        return arg.text
    if isinstance(arg.constant, int):
        return quote_text(str(arg.constant))
    # An integer that may be missing is float64 in pandas ("2000.0"), and Python's spelling of
    # floats and booleans is not DuckDB's: text of numbers runs in pandas.
    raise NotSupported(f"{arg.kind} as text")


def _null_test(negate: bool) -> Handler:
    return lambda c, args, node: Sql(f"({args[0].text} IS {'NOT ' if negate else ''}NULL)", BOOL)


def _coalesce(c: Any, args: list[Sql], node: Call) -> Sql:
    kind = args[0].kind
    for arg in args[1:]:
        kind = unify(kind, arg.kind)
    if kind not in (FLOAT, STR):
        raise NotSupported(f"coalesce of {kind}")  # numpy int/bool columns hold no nulls to fill
    return Sql("coalesce(" + ", ".join(arg.text for arg in args) + ")", kind)


def _date_part(part: str) -> Handler:
    def apply(c: Any, args: list[Sql], node: Call) -> Sql:
        if args[0].kind not in (TS, DATE):
            raise NotSupported(f"{part}() of {args[0].kind}")
        return Sql(f"CAST({part}({args[0].text}) AS INTEGER)", INT)  # pandas' .dt.year is int32

    return apply


def _date_diff_days(c: Any, args: list[Sql], node: Call) -> Sql:
    if any(arg.kind not in (TS, DATE) for arg in args):
        raise NotSupported("date_diff_days() of non-dates")
    end, start = (f"CAST({arg.text} AS DATE)" for arg in args)
    return Sql(f"date_diff('day', {start}, {end})", INT)


def _add(unit: str, calendar: bool) -> Handler:
    def apply(c: Any, args: list[Sql], node: Call) -> Sql:
        when, amount = args
        if when.kind not in (TS, DATE) or amount.kind != INT:
            raise NotSupported(f"add_{unit}() of {when.kind} by {amount.kind}")
        step = {"weeks": ("DAY", 7), "days": ("DAY", 1), "months": ("MONTH", 1), "years": ("YEAR", 1)}.get(
            unit, (unit.upper()[:-1], 1)
        )
        interval = f"to_{step[0].lower()}s(CAST({amount.text} AS BIGINT) * {step[1]})"
        if calendar and when.kind == DATE:
            return Sql(f"CAST({when.text} + {interval} AS DATE)", DATE)
        return Sql(f"(CAST({when.text} AS TIMESTAMP) + {interval})", TS)

    return apply


def _numeric(fn: Callable[[Sql], Sql]) -> Handler:
    def apply(c: Any, args: list[Sql], node: Call) -> Sql:
        if args[0].kind not in (INT, FLOAT):
            raise NotSupported(f"{node.name}() of {args[0].kind}")
        return fn(*args) if len(args) == 1 else _round(*args)

    return apply


def _round(x: Sql, digits: Sql | None = None) -> Sql:
    places = 0 if digits is None else _literal_int(digits)
    if x.kind == INT:
        if places >= 0:
            return x
        raise NotSupported("round() of integers to tens")
    return Sql(f"round_even({x.text}, {places})", FLOAT)


def _whole(sql_fn: str) -> Callable[[Sql], Sql]:
    return lambda x: x if x.kind == INT else Sql(f"{sql_fn}({x.text})", FLOAT)


def _extreme(sql_fn: str) -> Handler:
    def apply(c: Any, args: list[Sql], node: Call) -> Sql:
        kind = args[0].kind
        for arg in args[1:]:
            kind = unify(kind, arg.kind)
        if kind not in (INT, FLOAT):
            raise NotSupported(f"{sql_fn}() of {kind}")
        if kind == INT:
            # pandas' row-wise min/max of integers is int64, but float64 on no rows: a column
            # type that depends on the row count has no one DuckDB form
            raise NotSupported(f"{sql_fn}() of integers")
        # pandas' row-wise min/max gives float64 (NaN where all are missing)
        return Sql(f"CAST({sql_fn}({', '.join(arg.text for arg in args)}) AS DOUBLE)", FLOAT)

    return apply


def _between(c: Any, args: list[Sql], node: Call) -> Sql:
    x, low, high = args
    a, lo = comparable(x, low)
    _, hi = comparable(x, high)
    return Sql(f"coalesce({a} >= {lo} AND {a} <= {hi}, false)", BOOL)


def _cast(kind: str) -> Handler:
    def apply(c: Any, args: list[Sql], node: Call) -> Sql:
        arg = args[0]
        if kind == FLOAT and arg.kind in NUMBER:
            return Sql(f"CAST({as_number(arg)} AS DOUBLE)", FLOAT)
        if kind == STR and (arg.kind == STR or isinstance(arg.constant, int)):
            return Sql(_as_text(arg), STR)
        raise NotSupported(f"{node.name}() of {arg.kind}")  # Int64 / boolean: nullable dtypes

    return apply


FUNCTIONS: dict[str, Handler] = {
    "is_null": _null_test(False),
    "not_null": _null_test(True),
    "coalesce": _coalesce,
    "fillna": _coalesce,
    "lower": _text("lower"),
    "upper": _text("upper"),
    "strip": lambda c, args, node: Sql(f"trim({_text_arg(args, 0)}, {quote_text(_WHITESPACE)})", STR),
    "len": lambda c, args, node: Sql(f"length({_text_arg(args, 0)})", INT),
    "contains": _match("contains"),
    "startswith": _match("starts_with"),
    "endswith": _match("ends_with"),
    "replace": _replace,
    "substr": _substr,
    "concat": _concat,
    "year": _date_part("year"),
    "month": _date_part("month"),
    "day": _date_part("day"),
    "date_diff_days": _date_diff_days,
    **{f"add_{unit}": _add(unit, calendar=True) for unit in ("days", "weeks", "months", "years")},
    **{f"add_{unit}": _add(unit, calendar=False) for unit in ("hours", "minutes", "seconds")},
    "abs": _numeric(lambda x: Sql(f"abs({x.text})", x.kind)),
    "round": _numeric(_round),
    "floor": _numeric(_whole("floor")),
    "ceil": _numeric(_whole("ceil")),
    "least": _extreme("least"),
    "greatest": _extreme("greatest"),
    "between": _between,
    "float": _cast(FLOAT),
    "str": _cast(STR),
}
