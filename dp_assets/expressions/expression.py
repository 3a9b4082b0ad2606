"""The public ``Expression`` object and the cached ``parse_expression`` entry point."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import ExpressionError
from .inference import TypeInference
from .parser import parse_tree
from .tree import Column, ListLiteral, Literal, Node, Param, children, walk

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Expression:
    """A parsed, allow-listed expression; immutable and shared through the parse cache.

    ``columns`` and ``params`` say what it reads, so the compiler can check specs without data.
    """

    text: str
    columns: frozenset[str]
    params: frozenset[str]
    tree: Node = field(repr=False, compare=False)

    def evaluate(self, df: pd.DataFrame, params: Mapping[str, Any]) -> pd.Series | Any:
        """One value per row of ``df`` (a Series on ``df.index``), or a single value when the
        expression reads no column. Raises ``ExpressionError`` naming the failing part."""
        from .evaluator import Evaluator

        return Evaluator(df, params or {}, self.text).eval(self.tree)

    def evaluate_mask(self, df: pd.DataFrame, params: Mapping[str, Any]) -> pd.Series:
        """A plain bool Series on ``df.index`` for filtering; null counts as False.

        Raises ``ExpressionError`` when the result is not true/false (e.g. ``price + 1``).
        """
        from .evaluator import Evaluator, to_mask

        evaluator = Evaluator(df, params or {}, self.text)
        logical = evaluator.logical(evaluator.eval(self.tree), self.tree)
        return to_mask(logical, df.index)

    def infer_type(self, schema: dict[str, str]) -> str:
        """The logical result type given input column types; raises ``ExpressionError`` on a
        missing column or a certain type mismatch."""
        return TypeInference(schema, self.text).infer(self.tree)


@functools.lru_cache(maxsize=2048)
def parse_expression(text: str) -> Expression:
    """Parse and check ``text``; the same text parses once (the result is immutable)."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, not {type(text).__name__}")
    tree = parse_tree(text)
    _check_constant_parts(tree, text)
    nodes = list(walk(tree))
    return Expression(
        text=text,
        columns=frozenset(node.name for node in nodes if isinstance(node, Column)),
        params=frozenset(node.name for node in nodes if isinstance(node, Param)),
        tree=tree,
    )


def _check_constant_parts(tree: Node, text: str) -> None:
    """Evaluate the parts that read no column or param (``9**9**9``, ``1/0``, ``lower(5)``) now,
    so they fail when the spec loads instead of in the middle of a run."""
    from_data = _data_readers(tree)
    constant_parts: list[Node] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Literal | ListLiteral):
            continue
        if id(node) not in from_data:
            constant_parts.append(node)
            continue
        stack.extend(children(node))
    if not constant_parts:
        return
    import pandas as pd

    from .evaluator import Evaluator

    evaluator = Evaluator(pd.DataFrame(), {}, text)
    for part in constant_parts:
        evaluator.eval(part)


def _data_readers(tree: Node) -> set[int]:
    """Ids of the nodes whose value depends on a column or a param (one bottom-up pass)."""
    readers: set[int] = set()

    def visit(node: Node) -> bool:
        reads = isinstance(node, Column | Param)
        for child in children(node):
            reads = visit(child) or reads
        if reads:
            readers.add(id(node))
        return reads

    visit(tree)
    return readers
