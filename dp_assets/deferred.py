"""pandas and numpy for the modules that use them only when a node runs.

A node module holds a params model (needed to validate a spec, list the catalog or compile a
flow) beside the function that runs the node (needed only in a run). Importing pandas and numpy
takes about a second on a small machine, more than validating a spec, so the node modules, the
expression language and the schema helpers name them through :class:`DeferredModule`:
``from dp_assets.deferred import np, pd`` reads like the usual imports, and the library is
imported on the first attribute used (``pd.DataFrame``), in whatever thread that happens
(``importlib`` holds the import lock). Type checkers see the real modules.

``tests/cli/test_cli_basics.py`` checks that ``dp validate`` does not import pandas.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any


class DeferredModule:
    """Stands for the module ``name`` until an attribute is read; then it is that module's own."""

    def __init__(self, name: str) -> None:
        self._deferred_name = name
        self._deferred_module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        # Called only for names not set in __init__, so after the first import it is one lookup.
        module = self._deferred_module
        if module is None:
            module = self._deferred_module = importlib.import_module(self._deferred_name)
        return getattr(module, attribute)

    def __repr__(self) -> str:
        state = "imported" if self._deferred_module is not None else "not imported yet"
        return f"<deferred module {self._deferred_name!r}, {state}>"


if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
else:
    np = DeferredModule("numpy")
    pd = DeferredModule("pandas")

__all__ = ["DeferredModule", "np", "pd"]
