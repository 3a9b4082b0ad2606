"""What the sensor factories share: intervals and default status."""

from __future__ import annotations

import dagster as dg

from dp_settings import current

DEFAULT_INTERVAL_SECONDS = 30
INTERVAL_ENV = "DP_SENSOR_INTERVAL_SECONDS"


def sensor_interval(declared: int | None) -> int:
    """The trigger's own interval, else ``DP_SENSOR_INTERVAL_SECONDS``, else 30 s.

    From the settings the code location is being built with (the compiler that calls this
    carries none; :func:`dp_settings.using`), so tests and small deployments can tick faster
    without editing specs.
    """
    if declared:
        return declared
    return current().sensor_interval(DEFAULT_INTERVAL_SECONDS)


def sensor_status(enabled: bool) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if enabled else dg.DefaultSensorStatus.STOPPED


def indexed(name: str, index: int) -> str:
    """``name`` for a flow's first trigger of a kind, ``name_2``, ``name_3`` ... after it."""
    return name if index == 0 else f"{name}_{index + 1}"
