"""The one error type of the expression language.

Callers (the compiler, node types, ``dp validate``) catch a single type and show its message to
the flow author, so every failure, at parse time or while evaluating, becomes an
``ExpressionError`` whose message names the offending part of the expression.
"""

from __future__ import annotations


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
