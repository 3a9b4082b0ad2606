"""The fixed function table: names, arities, argument kinds and result types.

This module is pure data so that parsing and type inference need no pandas; the vectorised
implementations live in ``functions.py`` under the same names, and a test checks that both tables
and ``docs/expressions.md`` list the same functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Logical column types shared with the node schema hooks (``dp_assets.catalog.base.ColumnSchema``).
LOGICAL_TYPES = ("integer", "float", "string", "boolean", "datetime", "date", "any")

# What an argument accepts, for checks before a run: kind -> logical types that fit.
ARG_KINDS: dict[str, frozenset[str]] = {
    "any": frozenset(LOGICAL_TYPES),
    "text": frozenset({"string", "any"}),
    "number": frozenset({"integer", "float", "boolean", "any"}),
    "integer": frozenset({"integer", "any"}),
    "datetime": frozenset({"datetime", "date", "string", "any"}),
    # an amount of days, months...: a number, not true/false
    "amount": frozenset({"integer", "float", "any"}),
}

ReturnRule = str | Callable[[Sequence[str]], str]


def unify(types: Sequence[str]) -> str:
    """The logical type of a value that may come from any of ``types`` (if/else, coalesce)."""
    known = set(types)
    if "any" in known:
        return "any"
    if len(known) == 1:
        return known.pop()
    if known == {"integer", "float"}:
        return "float"
    return "any"


def _moved_when(types: Sequence[str]) -> str:
    """add_days/weeks/months/years keep a date a date; anything else becomes a timestamp."""
    return {"date": "date", "any": "any"}.get(types[0], "datetime")


def _number_like_first(types: Sequence[str]) -> str:
    """abs/round/floor/ceil keep the type of their number; true/false count as integers."""
    return "integer" if types[0] == "boolean" else types[0]


@dataclass(frozen=True)
class FunctionSig:
    """One function: ``args`` are (name, kind); ``optional`` of them may be left off the end.

    A variadic function repeats its last argument; ``min_args`` then says how many are needed.
    """

    name: str
    args: tuple[tuple[str, str], ...]
    returns: ReturnRule
    summary: str
    optional: int = 0
    variadic: bool = False
    min_args_variadic: int = 2

    @property
    def min_args(self) -> int:
        if self.variadic:
            return self.min_args_variadic
        return len(self.args) - self.optional

    @property
    def max_args(self) -> int | None:
        return None if self.variadic else len(self.args)

    def arg_kind(self, index: int) -> str:
        return self.args[min(index, len(self.args) - 1)][1]

    def result_type(self, arg_types: Sequence[str]) -> str:
        if callable(self.returns):
            return self.returns(arg_types)
        return self.returns

    @property
    def signature(self) -> str:
        names = [name for name, _ in self.args]
        if self.variadic:
            return f"{self.name}({', '.join(names)}, ...)"
        required = names[: len(names) - self.optional]
        optional = names[len(names) - self.optional :]
        shown = ", ".join(required)
        for name in optional:
            shown += f"[, {name}]" if shown else f"[{name}]"
        return f"{self.name}({shown})"


def _sig(name, args, returns, summary, **extra) -> FunctionSig:
    return FunctionSig(name, tuple(args), returns, summary, **extra)


_TEXT = [("text", "text")]
_WHEN = [("value", "datetime")]

SIGNATURES: dict[str, FunctionSig] = {
    sig.name: sig
    for sig in [
        # nulls
        _sig("is_null", [("x", "any")], "boolean", "true where x is missing (None, NaN, NaT, NA)"),
        _sig("not_null", [("x", "any")], "boolean", "true where x is present"),
        _sig(
            "coalesce",
            [("x", "any"), ("y", "any")],
            unify,
            "the first argument that is not missing",
            variadic=True,
        ),
        _sig(
            "fillna",
            [("x", "any"), ("value", "any")],
            unify,
            "x with missing values replaced by value",
        ),
        # text
        _sig("lower", _TEXT, "string", "lower-case text"),
        _sig("upper", _TEXT, "string", "upper-case text"),
        _sig("strip", _TEXT, "string", "text without leading and trailing whitespace"),
        _sig("len", _TEXT, "integer", "number of characters"),
        _sig(
            "contains",
            [*_TEXT, ("part", "text")],
            "boolean",
            "true where text contains part (plain text, not a regex)",
        ),
        _sig(
            "startswith",
            [*_TEXT, ("prefix", "text")],
            "boolean",
            "true where text starts with prefix",
        ),
        _sig("endswith", [*_TEXT, ("suffix", "text")], "boolean", "true where text ends with suffix"),
        _sig(
            "replace",
            [*_TEXT, ("old", "text"), ("new", "text")],
            "string",
            "every occurrence of old replaced by new (plain text)",
        ),
        _sig(
            "substr",
            [*_TEXT, ("start", "integer"), ("length", "integer")],
            "string",
            "part of text from start (0-based; negative counts from the end)",
            optional=1,
        ),
        _sig(
            "concat",
            [("x", "any"), ("y", "any")],
            "string",
            "the arguments as text, joined; missing if any is missing",
            variadic=True,
            min_args_variadic=1,
        ),
        # dates
        _sig("year", _WHEN, "integer", "the year of a date or timestamp"),
        _sig("month", _WHEN, "integer", "the month (1-12)"),
        _sig("day", _WHEN, "integer", "the day of the month (1-31)"),
        _sig(
            "date",
            _WHEN,
            "date",
            "the calendar date of a timestamp (in its own time zone), or a date from text",
        ),
        _sig(
            "to_datetime",
            [("value", "any"), ("format", "text")],
            "datetime",
            "parse text into timestamps (pandas.to_datetime), optionally with a strftime format",
            optional=1,
        ),
        _sig(
            "now",
            [("tz", "text")],
            "datetime",
            "the current time: UTC by default, in a named zone, or naive UTC with now(None)",
            optional=1,
        ),
        _sig(
            "date_diff_days",
            [("end", "datetime"), ("start", "datetime")],
            "integer",
            "calendar days from start to end (each in its own time zone)",
        ),
        *[
            _sig(
                f"add_{unit}",
                [*_WHEN, (unit, "amount")],
                _moved_when,
                f"value moved by {unit} on the calendar (negative: back); a date stays a date",
            )
            for unit in ("days", "weeks", "months", "years")
        ],
        *[
            _sig(
                f"add_{unit}",
                [*_WHEN, (unit, "amount")],
                "datetime",
                f"value plus elapsed {unit} (negative: minus); a date becomes its midnight first",
            )
            for unit in ("hours", "minutes", "seconds")
        ],
        # numbers
        _sig("abs", [("x", "number")], _number_like_first, "absolute value"),
        _sig(
            "round",
            [("x", "number"), ("digits", "integer")],
            _number_like_first,
            "round half to even, to digits decimals (default 0)",
            optional=1,
        ),
        _sig("floor", [("x", "number")], _number_like_first, "largest whole number <= x"),
        _sig("ceil", [("x", "number")], _number_like_first, "smallest whole number >= x"),
        _sig(
            "least",
            [("x", "any"), ("y", "any")],
            unify,
            "the smallest argument, ignoring missing values",
            variadic=True,
        ),
        _sig(
            "greatest",
            [("x", "any"), ("y", "any")],
            unify,
            "the largest argument, ignoring missing values",
            variadic=True,
        ),
        _sig(
            "between",
            [("x", "any"), ("low", "any"), ("high", "any")],
            "boolean",
            "low <= x <= high (both ends included)",
        ),
        # casts
        _sig(
            "int",
            [("x", "any")],
            "integer",
            "whole numbers (nullable Int64; floats are truncated, text is parsed)",
        ),
        _sig(
            "float",
            [("x", "any")],
            "float",
            "floating-point numbers (float64; missing becomes NaN)",
        ),
        _sig("str", [("x", "any")], "string", "text (missing stays missing)"),
        _sig(
            "bool",
            [("x", "any")],
            "boolean",
            "true/false (nullable boolean; text true/false/yes/no/1/0 is parsed)",
        ),
    ]
}

FUNCTION_NAMES: tuple[str, ...] = tuple(sorted(SIGNATURES))
