"""The one error type of the expression language.

Callers (the compiler, node types, ``dp validate``) catch a single type and show its message to
the flow author, so every failure, at parse time or while evaluating, becomes an
``ExpressionError`` whose message names the offending part of the expression.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any


class ExpressionError(ValueError):
    """A refused or failing expression; ``message`` is written for the flow author.

    It subclasses ``ValueError`` so that a pydantic validator raising it turns into an ordinary
    validation error that names the params field.
    """

    def __init__(self, message: str, *, expression: str | None = None):
        super().__init__(message)
        self.message = message
        self.expression = expression

    def __str__(self) -> str:
        return self.message


def missing_column_message(name: str, columns: Iterable[Any]) -> str:
    """The message for a column the expression names but the input lacks, with a close match."""
    names = [str(column) for column in columns]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    shown = ", ".join(names[:30]) + (", ..." if len(names) > 30 else "")
    return f"unknown column `{name}` (columns: {shown or 'none'}){hint}"
