"""A spec's time windows as Dagster builds them: validation asks Dagster whether it accepts a
``partitions: {type: time, ...}`` (its own rules on start, end and offsets), and the compiler
builds the flow's partitions with the same function."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any


def time_partitions(
    every: str | None,
    cron: str | None,
    start: str,
    end: str | None,
    timezone: str,
    minute_offset: int = 0,
    hour_offset: int = 0,
    day_offset: int = 0,
) -> Any:
    """Dagster's time partitions for a spec's ``partitions: {type: time, ...}``."""
    import dagster as dg  # here: validating a spec that has none must not import Dagster

    zone = zoneinfo.ZoneInfo(timezone)
    start_at = dt.datetime.fromisoformat(start).replace(tzinfo=zone)
    end_at = dt.datetime.fromisoformat(end).replace(tzinfo=zone) if end else None
    if every == "hourly":
        return dg.HourlyPartitionsDefinition(start_at, end_at, minute_offset=minute_offset, timezone=timezone)
    if every == "daily":
        return dg.DailyPartitionsDefinition(
            start_at, end_at, minute_offset=minute_offset, hour_offset=hour_offset, timezone=timezone
        )
    if every == "weekly":
        return dg.WeeklyPartitionsDefinition(
            start_at,
            end_at,
            minute_offset=minute_offset,
            hour_offset=hour_offset,
            day_offset=day_offset,
            timezone=timezone,
        )
    if every == "monthly":
        return dg.MonthlyPartitionsDefinition(
            start_at,
            end_at,
            minute_offset=minute_offset,
            hour_offset=hour_offset,
            day_offset=day_offset or 1,
            timezone=timezone,
        )
    assert cron is not None
    return dg.TimeWindowPartitionsDefinition(
        start=start_at, end=end_at, cron_schedule=cron, fmt="%Y-%m-%d-%H:%M", timezone=timezone
    )
