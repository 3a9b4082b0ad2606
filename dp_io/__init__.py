"""IO managers that keep every output of every run, and table IO for databases.

- :class:`RunScopedIOManager`: outputs under ``{base}/{run_id}/{flow_id}/{node_id}``.
- :func:`load_latest_output`: an asset's latest stored value (for unselected upstream nodes).
- :class:`TableIOManager`: an asset as a PostgreSQL table, replaced in one transaction.
- :mod:`dp_io.contract`: what a flow's step asks of its IO manager (``RunOutputStore``).
- :mod:`dp_io.retention`: list, show, read and prune stored runs; ``dp runs`` is in
  :mod:`dp_io.cli`; the rule itself (a spec's ``retention:`` block) in
  :mod:`dp_io.retention_policy`.

Importing this package imports nothing else: each name below is imported from its module when
first used. The flow spec (validated without Dagster) imports :mod:`dp_io.retention_policy`,
and that must not import Dagster through this ``__init__``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dp_io.contract import LatestValueReader, RunOutputStore
    from dp_io.errors import (
        DpIOError,
        InvalidIdentifierError,
        NeverMaterializedError,
        OutputNotFoundError,
        UnsupportedFormatError,
    )
    from dp_io.formats import DEFAULT_FRAME_FORMAT, FORMAT_METADATA_KEY, FRAME_FORMATS
    from dp_io.io_manager import PARTS_METADATA_KEY, RunScopedIOManager
    from dp_io.lookup import (
        MaterializationRef,
        find_materialization,
        load_latest_output,
        reusable_parent_outputs,
    )
    from dp_io.retention import PruneReport, build_retention_schedule, prune
    from dp_io.retention_policy import RetentionPolicy
    from dp_io.table import TableIOManager

_HOMES = {
    "DEFAULT_FRAME_FORMAT": "dp_io.formats",
    "FORMAT_METADATA_KEY": "dp_io.formats",
    "FRAME_FORMATS": "dp_io.formats",
    "PARTS_METADATA_KEY": "dp_io.io_manager",
    "DpIOError": "dp_io.errors",
    "InvalidIdentifierError": "dp_io.errors",
    "LatestValueReader": "dp_io.contract",
    "MaterializationRef": "dp_io.lookup",
    "NeverMaterializedError": "dp_io.errors",
    "OutputNotFoundError": "dp_io.errors",
    "PruneReport": "dp_io.retention",
    "RetentionPolicy": "dp_io.retention_policy",
    "RunOutputStore": "dp_io.contract",
    "RunScopedIOManager": "dp_io.io_manager",
    "TableIOManager": "dp_io.table",
    "UnsupportedFormatError": "dp_io.errors",
    "build_retention_schedule": "dp_io.retention",
    "find_materialization": "dp_io.lookup",
    "load_latest_output": "dp_io.lookup",
    "prune": "dp_io.retention",
    "reusable_parent_outputs": "dp_io.lookup",
}

__all__ = [  # what _HOMES maps (tests/io/test_io_package.py holds them equal)
    "DEFAULT_FRAME_FORMAT",
    "FORMAT_METADATA_KEY",
    "FRAME_FORMATS",
    "PARTS_METADATA_KEY",
    "DpIOError",
    "InvalidIdentifierError",
    "LatestValueReader",
    "MaterializationRef",
    "NeverMaterializedError",
    "OutputNotFoundError",
    "PruneReport",
    "RetentionPolicy",
    "RunOutputStore",
    "RunScopedIOManager",
    "TableIOManager",
    "UnsupportedFormatError",
    "build_retention_schedule",
    "find_materialization",
    "load_latest_output",
    "prune",
    "reusable_parent_outputs",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dp_io' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next access is a plain attribute read
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
