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

import operator
from collections.abc import Mapping
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
from .sql_functions import FUNCTIONS
from .sql_values import (
    BOOL,
    FLOAT,
    INT,
    NULL,
    NUMBER,
    STR,
    Sql,
    as_number,
    comparable,
    kind_of_arrow,
    literal,
    no_nan,
    quote_identifier,
    quote_text,
    same_family,
    unify,
    untyped,
)

#: Imported from here by the engine's forms (the values moved to sql_values, the functions to sql_functions).
__all__ = [
    "Sql",
    "compile_condition",
    "compile_expression",
    "kind_of_arrow",
    "literal",
    "quote_identifier",
    "quote_text",
]

_COMPARE = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_FOLD = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def compile_expression(expression: Expression, kinds: Mapping[str, str], params: Mapping[str, Any]) -> Sql:
    """``expression`` as DuckDB SQL over columns of the given kinds (``kind_of_arrow``)."""
    return _Compiler(kinds, params).compile(expression.tree)


def compile_condition(expression: Expression, kinds: Mapping[str, str], params: Mapping[str, Any]) -> str:
    """A filter condition for a WHERE clause (missing counts as false, as the evaluator's mask
    does, and as WHERE does): its top-level conjuncts stay apart and bare, so that DuckDB pushes
    each one down to the file scan or the join side it reads."""
    return " AND ".join(f"({part})" for part in _Compiler(kinds, params).where(expression.tree))


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
                a, b = comparable(left, right)
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
        a, b = as_number(left), as_number(right)
        both_int = left.kind in (INT, BOOL) and right.kind in (INT, BOOL)
        if node.op in ("+", "-", "*", "//", "%") and (left.constant is None) != (right.constant is None):
            # a Python int takes the other operand's width in numpy (int32 + 1 is int32), as an
            # untyped integer literal does in DuckDB
            a, b = (untyped(side) if side.constant is not None else text for side, text in ((left, a), (right, b)))
        if node.op in ("+", "-", "*"):
            if left.kind == BOOL and right.kind == BOOL:
                raise NotSupported("arithmetic between two booleans")  # numpy: logical or/xor
            if left.kind == right.kind == INT and left.constant is not None and right.constant is not None:
                # Python computes it before numpy sees it: one untyped integer, so `year(t) + (0 + 0)`
                # keeps year's int32 as pandas does (DuckDB made the folded literals BIGINT)
                return literal(_FOLD[node.op](left.constant, right.constant))
            return Sql(f"({a} {node.op} {b})", INT if both_int else FLOAT)
        if node.op == "/":
            return Sql(no_nan(f"(CAST({a} AS DOUBLE) / CAST({b} AS DOUBLE))"), FLOAT)
        if node.op in ("//", "%"):
            if both_int:
                return Sql(_int_floor(node.op, a, right), INT)
            return Sql(no_nan(_float_floor(node.op, f"CAST({a} AS DOUBLE)", f"CAST({b} AS DOUBLE)")), FLOAT)
        if node.op == "**" and not both_int:
            return Sql(no_nan(f"pow(CAST({a} AS DOUBLE), CAST({b} AS DOUBLE))"), FLOAT)
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
            a, b = comparable(left, right)
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
        if any(value.kind not in same_family(left.kind) for value in present):
            raise NotSupported("`in` across kinds")
        parts = []
        if present:
            parts.append(f"coalesce({left.text} IN ({', '.join(comparable(left, v)[1] for v in present)}), false)")
        if len(present) < len(values):
            parts.append(f"({left.text} IS NULL)")
        return "(" + (" OR ".join(parts) or "false") + ")"

    def if_else(self, node: IfElse) -> Sql:
        condition = self.logical(node.condition)
        then, otherwise = self.compile(node.then), self.compile(node.otherwise)
        kind = unify(then.kind, otherwise.kind)
        if kind == INT:
            then, otherwise = _integer_branches((node.then, then), (node.otherwise, otherwise))
        return Sql(f"(CASE WHEN coalesce({condition}, false) THEN {then.text} ELSE {otherwise.text} END)", kind)


def _integer_branches(*branches: tuple[Node, Sql]) -> tuple[Sql, ...]:
    """The two integer branches of ``x if c else y`` as numpy's ``where`` types them: two Python
    ints broadcast as int64 (DuckDB's untyped literals would give INTEGER); one beside a column
    takes the column's width. A computed integer (``year(t)``, ``len(s)``, ``i + 1``) has no
    DuckDB form here: pandas computes it over every row, so a missing value in a row the
    condition does not choose makes the whole column float64, and its width (int32 for
    ``year``) decides the result's; a SQL column's type cannot depend on either."""
    if all(sql.constant is not None for _, sql in branches):
        return tuple(Sql(f"CAST({sql.text} AS BIGINT)", INT) for _, sql in branches)
    if not all(sql.constant is not None or isinstance(node, Column) for node, sql in branches):
        raise NotSupported("an integer chosen from a computed value")
    return tuple(Sql(untyped(sql), INT) if sql.constant is not None else sql for _, sql in branches)


def _int_floor(op: str, a: str, right: Sql) -> str:
    """Python's floor ``//`` and ``%`` on integers, by a literal that is not 0 (pandas gives
    float64 for the whole column as soon as one divisor is 0: a dtype DuckDB cannot follow)."""
    if right.kind != INT or not right.constant:
        raise NotSupported("integer // or % by a column or by 0")
    b = untyped(right)
    if op == "%":
        return f"((({a} % {b}) + {b}) % {b})"
    return f"(({a} // {b}) - CASE WHEN {a} % {b} <> 0 AND (({a} < 0) <> ({b} < 0)) THEN 1 ELSE 0 END)"


def _float_floor(op: str, a: str, b: str) -> str:
    """numpy's ``npy_divmod`` step by step: fmod, then the quotient from it, adjusted. C's fmod
    of a finite number by an infinite one is that number; DuckDB's is NaN, so it is written out
    (``i // (3 / i)`` at i = 0 was NaN here and 0.0 in pandas)."""
    mod = f"(CASE WHEN isinf({b}) AND isfinite({a}) THEN {a} ELSE fmod({a}, {b}) END)"
    adjust = f"({mod} <> 0 AND (({b} < 0) <> ({mod} < 0)))"
    if op == "%":
        return f"(CASE WHEN {b} = 0 THEN NULL WHEN {adjust} THEN {mod} + {b} ELSE {mod} END)"
    div = f"((({a} - {mod}) / {b}) - CASE WHEN {adjust} THEN 1 ELSE 0 END)"
    return (
        f"(CASE WHEN {b} = 0 THEN {a} / {b} WHEN {div} = 0 THEN 0.0 "
        f"ELSE floor({div}) + CASE WHEN {div} - floor({div}) > 0.5 THEN 1 ELSE 0 END END)"
    )
