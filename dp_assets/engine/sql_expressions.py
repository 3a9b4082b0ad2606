"""The expression language compiled to a DuckDB SQL expression with the pandas evaluator's meaning.

The evaluator (``dp_assets.expressions.evaluator``) does what a pandas user writes; here each
operator becomes the SQL that gives the same values over the same columns, as pandas frames with
numpy dtypes hold them (the NaN convention: a missing value compares false, ``!=`` true):

- ``a == b`` is ``coalesce(a = b, false)``, ``a != b`` ``coalesce(a <> b, true)``;
- ``/`` is true division in DOUBLE (``x / 0`` is inf, ``0 / 0`` missing), ``//`` and ``%`` floor
  as Python does (DuckDB truncates), by numpy's own steps for floats;
- ``round`` is half to even (``round_even``), text matching is plain text;
- a computed NaN is a missing value, as pandas counts it.

Whatever has no faithful form here (a cast from text, ``to_datetime``, ``now``, time-zone
arithmetic, an integer ``//`` by a column that may hold 0, whose pandas dtype depends on the data)
raises ``NotSupported``, and the node runs in pandas. The expression is still checked before a
run by the expression package itself; this module only translates what it already accepted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dp_assets.expressions import Expression
from dp_assets.expressions.tree import (
    Binary,
    BoolOp,
    Call,
    Column,
    Compare,
    IfElse,
    ListLiteral,
    Literal,
    Node,
    Param,
    Unary,
)

from .errors import NotSupported

# Kinds of value the compiler tracks: numpy-backed pandas dtypes and the SQL types they become.
INT, FLOAT, BOOL, STR, DATE, TS, TSTZ, NULL = "int", "float", "bool", "str", "date", "ts", "tstz", "null"
NUMBER = {INT, FLOAT, BOOL}
_INT64 = (-(2**63), 2**63 - 1)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}( \d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?)?$")
_COMPARE = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
# Python's str.strip() strips Unicode whitespace; these are the ASCII ones (the docs say so).
_WHITESPACE = " \t\n\r\x0b\x0c"


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


def compile_expression(expression: Expression, kinds: Mapping[str, str], params: Mapping[str, Any]) -> Sql:
    """``expression`` as DuckDB SQL over columns of the given kinds (``kind_of_arrow``)."""
    return _Compiler(kinds, params).compile(expression.tree)


def compile_condition(expression: Expression, kinds: Mapping[str, str], params: Mapping[str, Any]) -> str:
    """A filter condition for a WHERE clause (missing counts as false, as the evaluator's mask
    does, and as WHERE does): its top-level conjuncts stay apart and bare, so that DuckDB pushes
    each one down to the file scan or the join side it reads."""
    return " AND ".join(f"({part})" for part in _Compiler(kinds, params).where(expression.tree))


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


class _Compiler:
    def __init__(self, kinds: Mapping[str, str], params: Mapping[str, Any]):
        self.kinds = kinds
        self.params = params

    def compile(self, node: Node) -> Sql:
        if isinstance(node, Literal):
            return literal(node.value)
        if isinstance(node, Column):
            kind = self.kinds.get(node.name)
            if kind is None:
                raise NotSupported(f"column `{node.name}` has no DuckDB kind")
            return Sql(quote_identifier(node.name), kind)
        if isinstance(node, Param):
            return literal(self.params.get(node.name))
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, BoolOp):
            parts = [self.logical(value) for value in node.values]
            return Sql("(" + f" {node.op.upper()} ".join(parts) + ")", BOOL)
        if isinstance(node, IfElse):
            return self.if_else(node)
        if isinstance(node, Call):
            handler = FUNCTIONS.get(node.name)
            if handler is None:
                raise NotSupported(f"{node.name}() has no DuckDB form")
            return handler(self, [self.compile(arg) for arg in node.args], node)
        raise NotSupported(f"`{node.source}`")

    def where(self, node: Node) -> list[str]:
        """``node`` as conjuncts that keep a row only when each is true: ``a AND b`` and each
        comparison apart, with no ``coalesce(..., false)`` (WHERE drops a missing result as the
        mask does); ``!=`` keeps a missing value, as pandas does, by ``IS DISTINCT FROM`` a literal."""
        if isinstance(node, BoolOp) and node.op == "and":
            return [part for value in node.values for part in self.where(value)]
        if isinstance(node, Compare) and not {"in", "not in"} & set(node.ops):
            parts = []
            left = self.compile(node.operands[0])
            for op, right_node in zip(node.ops, node.operands[1:], strict=True):
                right = self.compile(right_node)
                a, b = _comparable(left, right)
                if op != "!=":
                    parts.append(f"{a} {_COMPARE[op]} {b}")
                elif NULL not in (left.kind, right.kind) and (left.constant is not None or right.constant is not None):
                    parts.append(f"{a} IS DISTINCT FROM {b}")  # a literal is never missing
                else:
                    parts.append(f"coalesce({a} <> {b}, true)")
                left = right
            return parts
        return [f"coalesce({self.logical(node)}, false)"]

    def logical(self, node: Node) -> str:
        sql = self.compile(node)
        if sql.kind != BOOL:
            raise NotSupported(f"`{node.source}` is not true/false")
        return sql.text

    def unary(self, node: Unary) -> Sql:
        operand = self.compile(node.operand)
        if node.op == "not":
            if operand.kind != BOOL:
                raise NotSupported("not of a non-boolean")
            return Sql(f"(NOT {operand.text})", BOOL)
        if operand.kind not in (INT, FLOAT):
            raise NotSupported(f"unary {node.op} of {operand.kind}")
        constant = None
        if isinstance(operand.constant, int) and not isinstance(operand.constant, bool):
            constant = -operand.constant if node.op == "-" else operand.constant
        return Sql(f"({node.op}{operand.text})", operand.kind, constant)

    def binary(self, node: Binary) -> Sql:
        left, right = self.compile(node.left), self.compile(node.right)
        if node.op == "+" and left.kind == STR and right.kind == STR:
            return Sql(f"({left.text} || {right.text})", STR)
        if left.kind not in NUMBER or right.kind not in NUMBER:
            raise NotSupported(f"{left.kind} {node.op} {right.kind}")
        a, b = _number(left), _number(right)
        both_int = left.kind in (INT, BOOL) and right.kind in (INT, BOOL)
        if node.op in ("+", "-", "*", "//", "%") and (left.constant is None) != (right.constant is None):
            # a Python int takes the other operand's width in numpy (int32 + 1 is int32), as an
            # untyped integer literal does in DuckDB
            a, b = (_untyped(side) if side.constant is not None else text for side, text in ((left, a), (right, b)))
        if node.op in ("+", "-", "*"):
            if left.kind == BOOL and right.kind == BOOL:
                raise NotSupported("arithmetic between two booleans")  # numpy: logical or/xor
            return Sql(f"({a} {node.op} {b})", INT if both_int else FLOAT)
        if node.op == "/":
            return Sql(_no_nan(f"(CAST({a} AS DOUBLE) / CAST({b} AS DOUBLE))"), FLOAT)
        if node.op in ("//", "%"):
            if both_int:
                return Sql(_int_floor(node.op, a, right), INT)
            return Sql(_no_nan(_float_floor(node.op, f"CAST({a} AS DOUBLE)", f"CAST({b} AS DOUBLE)")), FLOAT)
        if node.op == "**" and not both_int:
            return Sql(_no_nan(f"pow(CAST({a} AS DOUBLE), CAST({b} AS DOUBLE))"), FLOAT)
        raise NotSupported(f"{node.op} between integers")

    def compare(self, node: Compare) -> Sql:
        steps: list[str] = []
        left = self.compile(node.operands[0])
        for op, right_node in zip(node.ops, node.operands[1:], strict=True):
            if op in ("in", "not in"):
                member = self.membership(left, right_node)
                steps.append(f"(NOT {member})" if op == "not in" else member)
                continue
            right = self.compile(right_node)
            a, b = _comparable(left, right)
            default = "true" if op == "!=" else "false"
            steps.append(f"coalesce({a} {_COMPARE[op]} {b}, {default})")
            left = right
        return Sql("(" + " AND ".join(steps) + ")", BOOL)

    def membership(self, left: Sql, node: Node) -> str:
        """``Series.isin``: a missing value is in a list that holds a missing value."""
        if isinstance(node, ListLiteral):
            values = [self.compile(item) for item in node.items]
        elif isinstance(node, Param):
            raw = self.params.get(node.name)
            values = [literal(item) for item in (raw if isinstance(raw, list | tuple) else [raw])]
        else:
            raise NotSupported("`in` without a list")
        present = [value for value in values if value.kind != NULL]
        if any(value.kind not in _same_family(left.kind) for value in present):
            raise NotSupported("`in` across kinds")
        parts = []
        if present:
            parts.append(f"coalesce({left.text} IN ({', '.join(_comparable(left, v)[1] for v in present)}), false)")
        if len(present) < len(values):
            parts.append(f"({left.text} IS NULL)")
        return "(" + (" OR ".join(parts) or "false") + ")"

    def if_else(self, node: IfElse) -> Sql:
        condition = self.logical(node.condition)
        then, otherwise = self.compile(node.then), self.compile(node.otherwise)
        kind = _unify(then.kind, otherwise.kind)
        if kind == INT and then.constant is not None and otherwise.constant is not None:
            # two Python ints broadcast as int64; DuckDB's untyped literals would give INTEGER
            then, otherwise = (Sql(f"CAST({side.text} AS BIGINT)", INT) for side in (then, otherwise))
        return Sql(f"(CASE WHEN coalesce({condition}, false) THEN {then.text} ELSE {otherwise.text} END)", kind)


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


def _untyped(sql: Sql) -> str:
    if isinstance(sql.constant, int) and not isinstance(sql.constant, bool) and sql.kind == INT:
        return f"({sql.constant})"
    return _number(sql)


def _number(sql: Sql) -> str:
    return f"CAST({sql.text} AS BIGINT)" if sql.kind == BOOL else sql.text


def _no_nan(text: str) -> str:
    """pandas counts NaN as missing (isna, fillna, count); DuckDB does not: make it NULL."""
    return f"nullif({text}, CAST('NaN' AS DOUBLE))"


def _int_floor(op: str, a: str, right: Sql) -> str:
    """Python's floor ``//`` and ``%`` on integers, by a literal that is not 0 (pandas gives
    float64 for the whole column as soon as one divisor is 0: a dtype DuckDB cannot follow)."""
    if right.kind != INT or not right.constant:
        raise NotSupported("integer // or % by a column or by 0")
    b = _untyped(right)
    if op == "%":
        return f"((({a} % {b}) + {b}) % {b})"
    return f"(({a} // {b}) - CASE WHEN {a} % {b} <> 0 AND (({a} < 0) <> ({b} < 0)) THEN 1 ELSE 0 END)"


def _float_floor(op: str, a: str, b: str) -> str:
    """numpy's ``npy_divmod`` step by step: fmod, then the quotient from it, adjusted."""
    mod = f"fmod({a}, {b})"
    adjust = f"({mod} <> 0 AND (({b} < 0) <> ({mod} < 0)))"
    if op == "%":
        return f"(CASE WHEN {b} = 0 THEN NULL WHEN {adjust} THEN {mod} + {b} ELSE {mod} END)"
    div = f"((({a} - {mod}) / {b}) - CASE WHEN {adjust} THEN 1 ELSE 0 END)"
    return (
        f"(CASE WHEN {b} = 0 THEN {a} / {b} WHEN {div} = 0 THEN 0.0 "
        f"ELSE floor({div}) + CASE WHEN {div} - floor({div}) > 0.5 THEN 1 ELSE 0 END END)"
    )


def _same_family(kind: str) -> set[str]:
    if kind in NUMBER:
        return set(NUMBER)
    if kind in (TS, DATE):
        return {kind, STR}
    return {kind}


def _comparable(left: Sql, right: Sql) -> tuple[str, str]:
    """Both sides as SQL DuckDB compares as pandas does; NotSupported where pandas would raise
    or compare by identity (text with numbers, dates with time zones)."""
    if NULL in (left.kind, right.kind):
        return left.text, right.text
    if left.kind in NUMBER and right.kind in NUMBER:
        return _number(left), _number(right)
    if left.kind == right.kind and left.kind in (STR, BOOL, DATE, TS):
        return left.text, right.text
    for this, other, flip in ((left, right, False), (right, left, True)):
        if this.kind == TS and other.kind == STR and _ISO_DATE.match(str(other.constant)):
            pair = (this.text, f"CAST({other.text} AS TIMESTAMP)")
            return (pair[1], pair[0]) if flip else pair
    raise NotSupported(f"comparing {left.kind} with {right.kind}")


def _unify(a: str, b: str) -> str:
    if a == b or b == NULL:
        return a
    if a == NULL:
        return b
    # int with float: pandas' dtype then depends on the rows (an empty frame stays int64)
    raise NotSupported(f"{a} with {b}")


# --- functions: (compiler, compiled args, call node) -> Sql ------------------------------------

Handler = Callable[[_Compiler, list[Sql], Call], Sql]


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


def _replace(c: _Compiler, args: list[Sql], node: Call) -> Sql:
    old = _text_arg(args, 1, literal_only=True)
    if old == "''":
        raise NotSupported("replace() of empty text")
    return Sql(f"replace({_text_arg(args, 0)}, {old}, {_text_arg(args, 2, literal_only=True)})", STR)


def _literal_int(arg: Sql) -> int:
    if arg.kind != INT or arg.constant is None:
        raise NotSupported("a non-literal integer argument")
    return int(arg.constant)


def _substr(c: _Compiler, args: list[Sql], node: Call) -> Sql:
    text, start = _text_arg(args, 0), _literal_int(args[1])
    length = _literal_int(args[2]) if len(args) > 2 else None
    if start < 0 or (length is not None and length < 0):
        raise NotSupported("substr() from the end")
    if length is None:
        return Sql(f"substring({text}, {start + 1})", STR)
    return Sql(f"substring({text}, {start + 1}, {length})", STR)


def _concat(c: _Compiler, args: list[Sql], node: Call) -> Sql:
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


def _coalesce(c: _Compiler, args: list[Sql], node: Call) -> Sql:
    kind = args[0].kind
    for arg in args[1:]:
        kind = _unify(kind, arg.kind)
    if kind not in (FLOAT, STR):
        raise NotSupported(f"coalesce of {kind}")  # numpy int/bool columns hold no nulls to fill
    return Sql("coalesce(" + ", ".join(arg.text for arg in args) + ")", kind)


def _date_part(part: str) -> Handler:
    def apply(c: _Compiler, args: list[Sql], node: Call) -> Sql:
        if args[0].kind not in (TS, DATE):
            raise NotSupported(f"{part}() of {args[0].kind}")
        return Sql(f"CAST({part}({args[0].text}) AS INTEGER)", INT)  # pandas' .dt.year is int32

    return apply


def _date_diff_days(c: _Compiler, args: list[Sql], node: Call) -> Sql:
    if any(arg.kind not in (TS, DATE) for arg in args):
        raise NotSupported("date_diff_days() of non-dates")
    end, start = (f"CAST({arg.text} AS DATE)" for arg in args)
    return Sql(f"date_diff('day', {start}, {end})", INT)


def _add(unit: str, calendar: bool) -> Handler:
    def apply(c: _Compiler, args: list[Sql], node: Call) -> Sql:
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
    def apply(c: _Compiler, args: list[Sql], node: Call) -> Sql:
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
    def apply(c: _Compiler, args: list[Sql], node: Call) -> Sql:
        kind = args[0].kind
        for arg in args[1:]:
            kind = _unify(kind, arg.kind)
        if kind not in (INT, FLOAT):
            raise NotSupported(f"{sql_fn}() of {kind}")
        # pandas' row-wise min/max gives float64 (NaN where all are missing)
        return Sql(f"CAST({sql_fn}({', '.join(arg.text for arg in args)}) AS DOUBLE)", FLOAT)

    return apply


def _between(c: _Compiler, args: list[Sql], node: Call) -> Sql:
    x, low, high = args
    a, lo = _comparable(x, low)
    _, hi = _comparable(x, high)
    return Sql(f"coalesce({a} >= {lo} AND {a} <= {hi}, false)", BOOL)


def _cast(kind: str) -> Handler:
    def apply(c: _Compiler, args: list[Sql], node: Call) -> Sql:
        arg = args[0]
        if kind == FLOAT and arg.kind in NUMBER:
            return Sql(f"CAST({_number(arg)} AS DOUBLE)", FLOAT)
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
