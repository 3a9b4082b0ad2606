"""Logical result types before a run, so a flow fails at load rather than mid-run.

Rules are deliberately conservative: a type is only refused when pandas would certainly fail
(text with arithmetic, a number where true/false is needed, ``lower()`` of a number, a missing
column); anything uncertain becomes ``"any"``.
"""

from __future__ import annotations

from itertools import pairwise

from .errors import ExpressionError, missing_column_message
from .signatures import ARG_KINDS, LOGICAL_TYPES, SIGNATURES, unify
from .tree import (
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

_NUMERIC = frozenset({"integer", "float", "boolean"})
_WHEN = frozenset({"datetime", "date"})
_ORDERING = frozenset({"<", "<=", ">", ">="})


def _family(logical_type: str) -> str:
    if logical_type in _NUMERIC:
        return "number"
    if logical_type in _WHEN:
        return "date"
    return logical_type


class TypeInference:
    def __init__(self, schema: dict[str, str], text: str):
        self.schema = schema
        self.text = text

    def fail(self, message: str) -> ExpressionError:
        return ExpressionError(message, expression=self.text)

    def infer(self, node: Node) -> str:
        if isinstance(node, Literal):
            return _literal_type(node.value)
        if isinstance(node, Column):
            if node.name not in self.schema:
                raise self.fail(missing_column_message(node.name, self.schema))
            found = self.schema[node.name]
            return found if found in LOGICAL_TYPES else "any"
        if isinstance(node, Param):
            return "any"
        if isinstance(node, Unary):
            return self.unary(node)
        if isinstance(node, Binary):
            return self.binary(node)
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, BoolOp):
            for value in node.values:
                self.require_logical(value)
            return "boolean"
        if isinstance(node, IfElse):
            self.require_logical(node.condition)
            return unify([self.infer(node.then), self.infer(node.otherwise)])
        if isinstance(node, Call):
            return self.call(node)
        if isinstance(node, ListLiteral):
            for item in node.items:
                self.infer(item)
            return "any"
        raise self.fail(f"`{node.source}` has no type")

    def require_logical(self, node: Node) -> None:
        found = self.infer(node)
        if found not in ("boolean", "any"):
            raise self.fail(
                f"`{node.source}` must be true/false, but it is {found}; "
                "compare it with something (for example `x > 0` or not_null(x))"
            )

    def unary(self, node: Unary) -> str:
        if node.op == "not":
            self.require_logical(node.operand)
            return "boolean"
        found = self.infer(node.operand)
        if found not in _NUMERIC and found != "any":
            raise self.fail(f"`{node.source}`: `{node.op}` needs a number, but it is {found}")
        return "integer" if found == "boolean" else found

    def binary(self, node: Binary) -> str:
        left, right = self.infer(node.left), self.infer(node.right)
        op = node.op
        if "any" in (left, right):
            return "any"
        if op == "+" and left == right == "string":
            return "string"
        if "string" in (left, right):
            raise self.fail(
                f"`{node.source}`: `{op}` cannot combine {left} and {right} "
                "(use concat(a, b, ...) to join text, or int()/float() to read numbers)"
            )
        if left in _WHEN or right in _WHEN:
            if op in ("+", "-"):
                return "any"
            raise self.fail(f"`{node.source}`: `{op}` cannot be used with dates")
        if op == "/":
            return "float"
        both_whole = left in ("integer", "boolean") and right in ("integer", "boolean")
        return "integer" if both_whole else "float"

    def compare(self, node: Compare) -> str:
        types = [self.infer(operand) for operand in node.operands]
        pairs = zip(node.ops, pairwise(types), pairwise(node.operands), strict=True)
        for op, (left, right), (ln, rn) in pairs:
            if op not in _ORDERING or "any" in (left, right):
                continue
            families = {_family(left), _family(right)}
            if len(families) > 1 and families != {"date", "string"}:
                raise self.fail(f"`{node.source}`: cannot order {left} `{ln.source}` against {right} `{rn.source}`")
        return "boolean"

    def call(self, node: Call) -> str:
        sig = SIGNATURES[node.name]
        arg_types = []
        for index, arg in enumerate(node.args):
            found = self.infer(arg)
            kind = sig.arg_kind(index)
            if found not in ARG_KINDS[kind]:
                name = sig.args[min(index, len(sig.args) - 1)][0]
                raise self.fail(
                    f"{node.name}() needs {_KIND_WORDS[kind]} for {name}, but `{arg.source}` is "
                    f"{found}; usage: {sig.signature}"
                )
            arg_types.append(found)
        return sig.result_type(arg_types) if arg_types else sig.result_type(["any"])


_KIND_WORDS = {
    "any": "a value",
    "text": "text",
    "number": "a number",
    "integer": "a whole number",
    "datetime": "a date or timestamp",
    "amount": "a number",
}


def _literal_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "any"
