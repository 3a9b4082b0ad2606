"""The allow-listed expression tree that the parser builds from Python's ``ast``.

Nothing from Python's own tree is kept or executed: the parser copies what it accepts into these
small frozen records, and the evaluator and the type inference walk only them. Every record keeps
``source``, its own text, so that errors can quote the part of the expression they are about.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Node:
    source: str


@dataclass(frozen=True, slots=True)
class Literal(Node):
    """An int, float, str, bool or None written in the expression."""

    value: Any


@dataclass(frozen=True, slots=True)
class ListLiteral(Node):
    """A list or tuple; only allowed on the right of ``in`` / ``not in``."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Column(Node):
    name: str


@dataclass(frozen=True, slots=True)
class Param(Node):
    """``params.NAME``: a flow param value, a scalar (or a list for ``in``)."""

    name: str


@dataclass(frozen=True, slots=True)
class Unary(Node):
    op: str  # "-", "+", "not"
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary(Node):
    op: str  # "+", "-", "*", "/", "//", "%", "**"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare(Node):
    """``a < b <= c``: ``ops[i]`` joins ``operands[i]`` and ``operands[i + 1]``."""

    ops: tuple[str, ...]  # "==", "!=", "<", "<=", ">", ">=", "in", "not in"
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class BoolOp(Node):
    op: str  # "and", "or"
    values: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class IfElse(Node):
    condition: Node
    then: Node
    otherwise: Node


@dataclass(frozen=True, slots=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, ListLiteral):
        return node.items
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Compare):
        return node.operands
    if isinstance(node, BoolOp):
        return node.values
    if isinstance(node, IfElse):
        return (node.condition, node.then, node.otherwise)
    if isinstance(node, Call):
        return node.args
    return ()


def walk(node: Node) -> Iterator[Node]:
    """Every node of the tree, parents before children (iterative: trees can be 100 deep)."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(children(current)))
