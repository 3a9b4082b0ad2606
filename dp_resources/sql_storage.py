"""Moved to ``dp_instance.sql_storage``; this path stays so that instance files written before the
move (``dagster.yaml`` names its classes by module path) still load."""

from dp_instance.sql_storage import *  # noqa: F403
