"""Moved to ``dp_instance.compute_logs``; this path stays so that instance files written before the
move (``dagster.yaml`` names its classes by module path) still load."""

from dp_instance.compute_logs import *  # noqa: F403
