"""The DuckDB engine: relational nodes as DuckDB relations over Arrow (issue 20).

``policies.engine: duckdb`` hands a node whose type has a DuckDB form (``forms.py``) to this
package instead of its pandas run function. Its expressions compile to DuckDB SQL with the
pandas evaluator's meaning (``sql_expressions.py``); a node, an expression or a column type that
has no faithful DuckDB form raises ``NotSupported`` and the node runs in pandas instead, with
Arrow in between (``chain.py``), so a user never sees a different answer.

Importing this package imports neither duckdb nor pandas; running a node does.
"""

from .errors import NotSupported

__all__ = ["NotSupported"]
