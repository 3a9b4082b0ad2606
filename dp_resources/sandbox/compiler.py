"""Compile a snippet: RestrictedPython's compiler plus a check for refused builtin names.

RestrictedPython rewrites attribute access, items, writes, iteration and imports into calls of
the guards in ``policy.py``; it also refuses ``_`` names, ``exec``/``eval`` calls and constructs
it cannot make safe. On top, ``ForbiddenNameChecker`` refuses loading builtins such as ``open``,
``type`` or ``vars`` that the snippet does not define itself, so the error names the line.
"""

from __future__ import annotations

import ast
import types
from typing import Any

from RestrictedPython import compile_restricted_exec

from dp_resources.sandbox.rules import FORBIDDEN_BUILTINS

SNIPPET_FILENAME = "<snippet>"


class ForbiddenNameChecker(ast.NodeVisitor):
    """Find loads of refused builtins that the snippet does not define itself."""

    def __init__(self) -> None:
        self.loaded: dict[str, int] = {}
        self.bound: set[str] = set()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loaded.setdefault(node.id, node.lineno)
        else:
            self.bound.add(node.id)

    def _bind(self, node: Any) -> None:
        self.bound.add(node.name)
        self.generic_visit(node)

    visit_FunctionDef = visit_ClassDef = _bind

    def visit_arg(self, node: ast.arg) -> None:
        self.bound.add(node.arg)

    def visit_alias(self, node: ast.alias) -> None:
        self.bound.add((node.asname or node.name).split(".")[0])

    def errors(self) -> list[str]:
        return [
            f'Line {line}: "{name}" is not available in the sandbox ({FORBIDDEN_BUILTINS[name]}).'
            for name, line in sorted(self.loaded.items(), key=lambda item: item[1])
            if name in FORBIDDEN_BUILTINS and name not in self.bound
        ]


def compile_snippet(code: str) -> tuple[types.CodeType | None, list[str]]:
    """Compile with RestrictedPython plus our name check; returns (code object, errors)."""
    result = compile_restricted_exec(code, filename=SNIPPET_FILENAME)
    errors = list(result.errors)
    if result.code is not None:
        checker = ForbiddenNameChecker()
        checker.visit(ast.parse(code, filename=SNIPPET_FILENAME))
        errors.extend(checker.errors())
    return (result.code if not errors else None), errors
