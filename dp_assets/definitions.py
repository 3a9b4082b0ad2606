"""The code location's entry point: ``dagster dev -m dp_assets.definitions`` / workspace.yaml.

Nothing happens at import; Dagster calls ``defs`` when it loads the location. A code server
compiles every published flow; a run or step worker only the flows of the job it executes
(``dp_assets.loading``).
"""

import dagster as dg

from dp_assets.loading import LoadScope
from dp_assets.location import build_code_location


@dg.definitions
def defs() -> dg.Definitions:
    return build_code_location(scope=LoadScope.current())


def prepare_run_worker() -> None:
    """Import what runs use and a location load does not: pandas, numpy, pyarrow and every node
    module (loading imports only the node modules of the types the flows use, and those defer
    pandas and numpy to a node's first run). Called once by the warm run launcher's template
    (docs/run-launcher.md) after it loaded the location, so that no forked run worker pays for
    these imports at its first node."""
    import importlib

    from dp_assets.catalog import NODE_MODULES

    for name in ("numpy", "pandas", "pyarrow", *NODE_MODULES, *RUN_MODULES):
        importlib.import_module(name)
    # The settings in force (dp_settings.current), read by the IO manager and the DuckDB engine
    # in each run: read here once, the children inherit them (re-read if their environment differs).
    from dp_settings import current

    try:
        current()
    except Exception:  # noqa: BLE001 - a bad setting fails the run that reads it, with its message
        pass


#: Imported by a run's first node or first stored output, not by the location's load: Arrow's
#: pandas conversion and Parquet (and the version check of pandas' Arrow-backed strings), the
#: expression evaluator (FilterRows, AddColumn... import it at their first row: some 60 ms), the
#: IO manager's filesystem (fsspec) and direct writer, and the DuckDB engine (``policies.engine:
#: duckdb``; DuckDB itself starts no thread until a connection opens, so the template stays safe
#: to fork). About 0.15 s of a run's fixed cost otherwise.
RUN_MODULES = (
    "pyarrow.pandas_compat",
    "pyarrow.parquet",
    "pyarrow.vendored.version",
    "dp_assets.expressions.evaluator",
    "fsspec.implementations.local",
    "fsspec.implementations.chained",
    "dp_io.direct",
    "duckdb",
    "dp_assets.engine.chain",
    # imported by a run's first Arrow-to-pandas conversion and its first pivot
    "pandas.core.arrays.arrow.extension_types",
    "pandas.core.reshape.reshape",
)
