"""Moved to ``dp_instance.pg_storage``; this path stays so that instance files written before the
move (``dagster.yaml`` names its classes by module path) still load."""

from dp_instance.pg_storage import *  # noqa: F403
