"""What the sensor factories share: intervals and default status."""

from __future__ import annotations

import os

import dagster as dg

DEFAULT_INTERVAL_SECONDS = 30
INTERVAL_ENV = "DP_SENSOR_INTERVAL_SECONDS"


def sensor_interval(declared: int | None) -> int:
    """The trigger's own interval, else ``DP_SENSOR_INTERVAL_SECONDS``, else 30 s.

    Read when the code location loads (never at import), so tests and small deployments can
    tick faster without editing specs.
    """
    if declared:
        return declared
    value = os.environ.get(INTERVAL_ENV, "")
    if value:
        try:
            seconds = int(value)
        except ValueError:
            raise ValueError(f"{INTERVAL_ENV}={value!r} is not a whole number of seconds") from None
        if seconds < 1:
            raise ValueError(f"{INTERVAL_ENV} must be at least 1 second")
        return seconds
    return DEFAULT_INTERVAL_SECONDS


def sensor_status(enabled: bool) -> dg.DefaultSensorStatus:
    return dg.DefaultSensorStatus.RUNNING if enabled else dg.DefaultSensorStatus.STOPPED


def indexed(name: str, index: int) -> str:
    """``name`` for a flow's first trigger of a kind, ``name_2``, ``name_3`` ... after it."""
    return name if index == 0 else f"{name}_{index + 1}"
