"""Text -> allow-listed tree, using Python's own parser and refusing everything not listed.

Python's ``ast`` gives a correct tokenizer and precedence for free; safety comes from copying only
the node kinds we accept into ``tree`` records, so no Python code is ever compiled or run. Limits
on length, depth and node count bound the work before anything is evaluated.
"""

from __future__ import annotations

import ast
import re
from itertools import pairwise

from .errors import ExpressionError
from .signatures import FUNCTION_NAMES, SIGNATURES
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
    walk,
)

#: ``partition.FIELD``: the run's partition (a flow param cannot contain a dot).
PARTITION_FIELDS = frozenset({"key", "start", "end"})
MAX_LENGTH = 5000
MAX_DEPTH = 100
MAX_NODES = 1000

ALLOWED = (
    'Allowed: column names (or col("name")), numbers, text in quotes, True/False/None, '
    "params.NAME, + - * / // % **, == != < <= > >=, and/or/not, in/not in [list], "
    "x if condition else y, and the functions " + ", ".join(FUNCTION_NAMES)
)

_BINARY = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}
_BITWISE = {
    ast.BitAnd: ("&", "use 'and'"),
    ast.BitOr: ("|", "use 'or'"),
    ast.BitXor: ("^", "use '!=' between true/false values"),
    ast.LShift: ("<<", None),
    ast.RShift: (">>", None),
    ast.MatMult: ("@", None),
}
_COMPARE = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}
# Refused node kinds, described for the author, with a hint where one helps.
_REFUSED: dict[type, tuple[str, str | None]] = {
    ast.Subscript: (
        "subscript",
        'use substr(text, start, length) for part of a text, or col("name") for a column name',
    ),
    ast.Slice: ("slice", "use substr(text, start, length)"),
    ast.Lambda: ("lambda", None),
    ast.ListComp: ("list comprehension", None),
    ast.SetComp: ("set comprehension", None),
    ast.DictComp: ("dict comprehension", None),
    ast.GeneratorExp: ("generator expression", None),
    ast.Dict: ("dict", None),
    ast.Set: ("set", "write a list [a, b] after in"),
    ast.JoinedStr: ("f-string", "use concat(a, b, ...)"),
    ast.FormattedValue: ("f-string", "use concat(a, b, ...)"),
    ast.NamedExpr: ("assignment (:=)", None),
    ast.Starred: ("starred argument", None),
    ast.Await: ("await", None),
    ast.Yield: ("yield", None),
    ast.YieldFrom: ("yield", None),
}


def _is_reserved(name: str) -> bool:
    return name.startswith("__")


class _Converter:
    """One conversion pass; counts nodes and depth while copying into ``tree`` records."""

    def __init__(self, text: str):
        self.text = text
        self.nodes = 0
        self._lines = _utf8_lines(text)

    def source(self, node: ast.AST) -> str:
        """The text of ``node`` as written: ``ast.get_source_segment``, whose cost is the whole
        text's on every call (it splits the lines again in a Python loop), so 1,000 parts of a
        5,000-character expression took seconds; here the lines are split once per text."""
        segment = _segment(self._lines, node)
        return segment if segment is not None else ast.unparse(node)

    def refuse(self, node: ast.AST, what: str, hint: str | None = None) -> ExpressionError:
        tail = f"; {hint}" if hint else f". {ALLOWED}"
        return ExpressionError(f"{what} is not allowed: `{self.source(node)}`{tail}", expression=self.text)

    def convert(self, node: ast.AST, depth: int, *, list_ok: bool = False) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ExpressionError(
                f"expression has more than {MAX_NODES} parts; split it over several nodes or pass long lists as params",
                expression=self.text,
            )
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested more than {MAX_DEPTH} levels deep", expression=self.text)
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is not None:
            if isinstance(node, ast.List | ast.Tuple):
                return method(node, depth, list_ok)
            return method(node, depth)
        what, hint = _REFUSED.get(type(node), (f"{type(node).__name__} syntax", None))
        raise self.refuse(node, what, hint)

    def _Constant(self, node: ast.Constant, depth: int) -> Node:
        value = node.value
        if value is None or isinstance(value, bool | int | float | str):
            return Literal(self.source(node), value)
        kind = {bytes: "bytes literal", complex: "complex number"}.get(type(value), "`...`")
        raise self.refuse(node, kind, None)

    def _Name(self, node: ast.Name, depth: int) -> Node:
        if _is_reserved(node.id):
            raise ExpressionError(
                f"name `{node.id}` is not allowed: names starting with '__' are reserved "
                f'(use col("{node.id}") for a column of that name)',
                expression=self.text,
            )
        if node.id == "params":
            raise ExpressionError(
                "`params` on its own is not allowed; write params.NAME for a flow param "
                '(or col("params") for a column of that name)',
                expression=self.text,
            )
        return Column(self.source(node), node.id)

    def _Attribute(self, node: ast.Attribute, depth: int) -> Node:
        if isinstance(node.value, ast.Name) and node.value.id == "params":
            if node.attr.startswith("_"):
                raise ExpressionError(
                    f"`{self.source(node)}` is not allowed: param names cannot start with '_'",
                    expression=self.text,
                )
            return Param(self.source(node), node.attr)
        if isinstance(node.value, ast.Name) and node.value.id == "partition" and node.attr in PARTITION_FIELDS:
            # the run's partition, given with the flow params as "partition.key"... (compiler.partitions)
            return Param(self.source(node), f"partition.{node.attr}")
        raise self.refuse(
            node,
            "attribute access",
            'only params.NAME may use a dot (write col("a.b") for a column name with a dot)',
        )

    def _UnaryOp(self, node: ast.UnaryOp, depth: int) -> Node:
        if isinstance(node.op, ast.Invert):
            raise self.refuse(node, "`~`", "use 'not'")
        op = {ast.Not: "not", ast.USub: "-", ast.UAdd: "+"}[type(node.op)]
        return Unary(self.source(node), op, self.convert(node.operand, depth + 1))

    def _BinOp(self, node: ast.BinOp, depth: int) -> Node:
        op = _BINARY.get(type(node.op))
        if op is None:
            symbol, hint = _BITWISE[type(node.op)]
            raise self.refuse(node, f"operator `{symbol}`", hint)
        return Binary(
            self.source(node),
            op,
            self.convert(node.left, depth + 1),
            self.convert(node.right, depth + 1),
        )

    def _BoolOp(self, node: ast.BoolOp, depth: int) -> Node:
        op = "and" if isinstance(node.op, ast.And) else "or"
        values = tuple(self.convert(value, depth + 1) for value in node.values)
        return BoolOp(self.source(node), op, values)

    def _Compare(self, node: ast.Compare, depth: int) -> Node:
        ops: list[str] = []
        for op in node.ops:
            if isinstance(op, ast.Is | ast.IsNot):
                raise self.refuse(node, "`is`", "use is_null(x) or not_null(x)")
            ops.append(_COMPARE[type(op)])
        comparators = [node.left, *node.comparators]
        for symbol, (left, right) in zip(ops, pairwise(comparators), strict=True):
            if symbol in ("==", "!=") and any(_is_none(side) for side in (left, right)):
                raise self.refuse(node, "comparing with None", "use is_null(x) or not_null(x)")
        operands = []
        last = len(comparators) - 1
        for index, operand in enumerate(comparators):
            after_in = index > 0 and ops[index - 1] in ("in", "not in")
            if after_in and not _is_list_or_param(operand):
                raise self.refuse(
                    node,
                    f"`{ops[index - 1]}` with `{self.source(operand)}`",
                    "`in` needs a list [a, b] or params.NAME on its right "
                    "(use contains(text, part) to look for text inside text)",
                )
            list_ok = after_in and index == last
            operands.append(self.convert(operand, depth + 1, list_ok=list_ok))
        return Compare(self.source(node), tuple(ops), tuple(operands))

    def _List(self, node: ast.List | ast.Tuple, depth: int, list_ok: bool) -> Node:
        if not list_ok:
            raise self.refuse(node, "a list", "a list may only follow `in` or `not in`")
        items = tuple(self.convert(item, depth + 1) for item in node.elts)
        for item, converted in zip(node.elts, items, strict=True):
            if _mentions_column(converted):
                raise self.refuse(
                    item,
                    "a column in a list",
                    "list items are single values: numbers, text, params.NAME",
                )
        return ListLiteral(self.source(node), items)

    _Tuple = _List

    def _IfExp(self, node: ast.IfExp, depth: int) -> Node:
        return IfElse(
            self.source(node),
            self.convert(node.test, depth + 1),
            self.convert(node.body, depth + 1),
            self.convert(node.orelse, depth + 1),
        )

    def _Call(self, node: ast.Call, depth: int) -> Node:
        func = node.func
        if not isinstance(func, ast.Name):
            hint = "call a function from the list by its name"
            if isinstance(func, ast.Attribute):
                if func.attr in SIGNATURES:
                    hint = f"write {func.attr}(x, ...) instead of x.{func.attr}(...)"
                raise self.refuse(node, "method call", hint)
            raise self.refuse(node, "calling this", hint)
        name = func.id
        if _is_reserved(name):
            raise ExpressionError(
                f"name `{name}` is not allowed: names starting with '__' are reserved",
                expression=self.text,
            )
        if node.keywords:
            raise self.refuse(node, "a keyword argument", "pass arguments by position")
        if name == "col":
            return self._column_call(node)
        sig = SIGNATURES.get(name)
        if sig is None:
            raise ExpressionError(
                f"unknown function `{name}` in `{self.source(node)}`. Functions: col, {', '.join(FUNCTION_NAMES)}",
                expression=self.text,
            )
        count = len(node.args)
        if count < sig.min_args or (sig.max_args is not None and count > sig.max_args):
            raise ExpressionError(
                f"{name}() got {count} argument{'s' if count != 1 else ''} in "
                f"`{self.source(node)}`; usage: {sig.signature}",
                expression=self.text,
            )
        args = tuple(self.convert(arg, depth + 1) for arg in node.args)
        return Call(self.source(node), name, args)

    def _column_call(self, node: ast.Call) -> Node:
        args = node.args
        if len(args) != 1 or not isinstance(args[0], ast.Constant) or not isinstance(args[0].value, str):
            raise ExpressionError(
                f'col() takes one column name in quotes, like col("unit price"): `{self.source(node)}`',
                expression=self.text,
            )
        self.nodes += 1
        return Column(self.source(node), args[0].value)


def _utf8_lines(text: str) -> list[bytes]:
    """The lines of ``text`` as Python's tokenizer counts them (only ``\\r\\n``, ``\\r`` and
    ``\\n`` end one; a form feed does not), each with its end, in UTF-8: a node's column
    offsets are byte offsets."""
    return [line.encode("utf-8") for line in _LINE_END.split(text)]


_LINE_END = re.compile(r"(?<=\r\n)|(?<=\r)(?!\n)|(?<=\n)")


def _segment(lines: list[bytes], node: ast.AST) -> str | None:
    """``ast.get_source_segment(text, node)`` over the text's lines split once."""
    try:
        first, last = node.lineno - 1, node.end_lineno - 1  # type: ignore[attr-defined]
        start, end = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        return None
    if end is None or not 0 <= first <= last < len(lines):
        return None
    if first == last:
        return lines[first][start:end].decode("utf-8")
    parts = [lines[first][start:], *lines[first + 1 : last], lines[last][:end]]
    return b"".join(parts).decode("utf-8")


def _mentions_column(node: Node) -> bool:
    return any(isinstance(part, Column) for part in walk(node))


def _is_list_or_param(node: ast.AST) -> bool:
    if isinstance(node, ast.List | ast.Tuple):
        return True
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "params"


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def parse_tree(text: str) -> Node:
    """Parse ``text`` into the allow-listed tree, or raise ``ExpressionError``."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"expression is too long: {len(text)} characters (the limit is {MAX_LENGTH})",
            expression=text[:100],
        )
    source = text.strip()
    if not source:
        raise ExpressionError("expression is empty", expression=text)
    try:
        parsed = ast.parse(source, mode="eval")
    except SyntaxError as err:
        raise _syntax_error(source, err) from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"expression is nested more than {MAX_DEPTH} levels deep", expression=text) from None
    except ValueError as err:  # null bytes on some Python versions
        raise ExpressionError(f"expression cannot be parsed: {err}", expression=text) from None
    return _Converter(source).convert(parsed.body, 1)


def _syntax_error(source: str, err: SyntaxError) -> ExpressionError:
    reason = (err.msg or "invalid syntax").split(" (")[0]
    where = f"column {err.offset}" if err.offset else ""
    if "\n" in source:
        where = f"line {err.lineno}, {where}" if where else f"line {err.lineno}"
    message = f"invalid expression{' at ' + where if where else ''}: {reason}: `{source}`"
    if "\n" in source:
        message += " (to spread an expression over several lines, wrap it in parentheses)"
    return ExpressionError(message, expression=source)
