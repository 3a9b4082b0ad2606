"""A small, safe expression language for filter conditions and computed columns in flow specs.

Text is parsed with Python's ``ast`` into an allow-listed tree (never ``eval``, never
``DataFrame.eval``/``query``) and evaluated vectorised over a pandas DataFrame. See
``docs/expressions.md`` for the grammar and the function table.

Importing this package does not import pandas; evaluation does.
"""

from .errors import ExpressionError
from .expression import Expression, parse_expression
from .parser import MAX_DEPTH, MAX_LENGTH, MAX_NODES
from .signatures import FUNCTION_NAMES, LOGICAL_TYPES, SIGNATURES

__all__ = [
    "FUNCTION_NAMES",
    "LOGICAL_TYPES",
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_NODES",
    "SIGNATURES",
    "Expression",
    "ExpressionError",
    "parse_expression",
]
