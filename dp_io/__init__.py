"""IO managers that keep every output of every run, and table IO for databases.

- :class:`RunScopedIOManager`: outputs under ``{base}/{run_id}/{flow_id}/{node_id}``.
- :func:`load_latest_output`: an asset's latest stored value (for unselected upstream nodes).
- :class:`TableIOManager`: an asset as a PostgreSQL table, replaced in one transaction.
- :mod:`dp_io.retention`: list, show, read and prune stored runs; ``dp runs`` is in
  :mod:`dp_io.cli`.

Importing this package imports Dagster but not pandas, pyarrow or SQLAlchemy.
"""

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
from dp_io.retention import PruneReport, RetentionPolicy, build_retention_schedule, prune
from dp_io.table import TableIOManager

__all__ = [
    "DEFAULT_FRAME_FORMAT",
    "FORMAT_METADATA_KEY",
    "FRAME_FORMATS",
    "PARTS_METADATA_KEY",
    "DpIOError",
    "InvalidIdentifierError",
    "MaterializationRef",
    "NeverMaterializedError",
    "OutputNotFoundError",
    "PruneReport",
    "RetentionPolicy",
    "RunScopedIOManager",
    "TableIOManager",
    "UnsupportedFormatError",
    "build_retention_schedule",
    "find_materialization",
    "load_latest_output",
    "prune",
    "reusable_parent_outputs",
]
