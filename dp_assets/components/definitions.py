"""The code location ``dg`` loads (``code_location_target_module`` in ``[tool.dg]``): the
components of the defs folder, ``dp_assets/defs/`` (docs/dg.md). Nothing happens at import."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
