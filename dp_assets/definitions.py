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
