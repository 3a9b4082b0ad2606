"""Dagster's private run-time names that the IO manager (``dp_io``) needs.

``dp_io`` sits below ``dp_assets`` in the package layers (pyproject.toml, ``[tool.importlinter]``),
so it cannot reach the compile-time fence ``dp_assets/dagster_internals.py``; this package is the
other side of the same fence (docs/upgrading-dagster.md, tests/platform/test_dagster_fence.py).
"""

from dagster._core.execution.context.output import RUN_ID_PLACEHOLDER

__all__ = ["RUN_ID_PLACEHOLDER"]
