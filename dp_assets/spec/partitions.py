"""``partitions:`` of a flow: time windows, a static list of keys, or keys added at run time.

Every asset of a partitioned flow is partitioned the same way (``compiler/partitions.py`` builds
the Dagster ``PartitionsDefinition``); node params and expressions read the run's partition as
``{{ partition.key }}``, ``{{ partition.start }}`` and ``{{ partition.end }}`` (``partition.key``
etc. in the expression language).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

#: Dagster refuses these in a partition key: they delimit keys and ranges in its selectors, and
#: control characters (NUL, \a \b \t \n \v \f \r) do not display in its UI; "..." (its range
#: separator) is refused by ``_no_range_separator``. tests/platform/test_dagster_fence.py holds
#: this to Dagster's own list.
_KEY_PATTERN = r"^[^,\[\]*\x00\x07-\x0d]+$"
#: Dagster's own separator of a partition range ("2026-01-01...2026-01-05").
RANGE_SEPARATOR = "..."

Backfill = Literal["auto", "single_run", "per_partition"]


def _backfill_field() -> Any:
    return Field(
        default="auto",
        description="How a backfill of many partitions runs: 'single_run' (one run over the "
        "whole range, for nodes that take {{ partition.start }}/{{ partition.end }}), "
        "'per_partition' (a run per partition), or 'auto': one run for time windows when no "
        "node reads partition.key, a run per partition otherwise.",
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


@functools.lru_cache(maxsize=256)
def _dagster_time_partitions_problem(
    every: str | None, cron: str | None, start: str, end: str | None, timezone: str, offsets: tuple[int, int, int]
) -> str | None:
    """Whether Dagster builds these time partitions (its own rules on start, end and offsets)."""
    from dp_assets.spec.time_windows import time_partitions  # lazy: importing dagster costs a second

    try:
        time_partitions(every, cron, start, end, timezone, *offsets)
    except Exception as exc:  # noqa: BLE001 - Dagster's refusal, reported as the field's error
        return str(exc).splitlines()[0]
    return None


class TimePartitions(_Strict):
    """One partition per time window (a Dagster ``TimeWindowPartitionsDefinition``)."""

    type: Literal["time"]
    every: Literal["hourly", "daily", "weekly", "monthly"] | None = Field(
        default=None, description="The window; or give 'cron' for another cadence."
    )
    cron: str | None = Field(default=None, description="A window per cron tick instead of 'every', e.g. '0 */2 * * *'.")
    start: str = Field(description="The first window's start: 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM'.")
    end: str | None = Field(default=None, description="No window starts at or after this time (default: none).")
    timezone: str = Field(default="UTC", description="IANA time zone of the windows.")
    minute_offset: int = Field(default=0, ge=0, le=59, description="Windows start this many minutes past.")
    hour_offset: int = Field(default=0, ge=0, le=23, description="Daily and longer windows start at this hour.")
    day_offset: int = Field(
        default=0, ge=0, le=31, description="Weekly windows start on this weekday (0 Sunday), monthly on this day."
    )
    backfill: Backfill = _backfill_field()

    @field_validator("start", "end")
    @classmethod
    def _iso_time(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not re.match(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2})?$", value):
            raise ValueError(f"'{value}' is not 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM'")
        try:
            dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"'{value}' is not a date: {exc}") from None
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from dp_assets.timezones import check_timezone

        return check_timezone(value)

    @model_validator(mode="after")
    def _one_cadence(self) -> TimePartitions:
        if (self.every is None) == (self.cron is None):
            raise ValueError("give one of 'every' (hourly, daily, weekly, monthly) or 'cron'")
        if self.end is not None and dt.datetime.fromisoformat(self.end) <= dt.datetime.fromisoformat(self.start):
            raise ValueError(f"end '{self.end}' must be after start '{self.start}'")
        offsets = (self.minute_offset, self.hour_offset, self.day_offset)
        problem = _dagster_time_partitions_problem(self.every, self.cron, self.start, self.end, self.timezone, offsets)
        if problem:
            raise ValueError(problem)
        return self


def _no_range_separator(key: str) -> str:
    if RANGE_SEPARATOR in key:
        raise ValueError(f"a partition key cannot contain {RANGE_SEPARATOR!r} (Dagster's range separator)")
    if key.startswith(".") or key.endswith("."):
        # "a." to "b" and "a" to ".b" would both be the range "a....b"
        raise ValueError("a partition key cannot begin or end with '.' (a range of it would read two ways)")
    return key


PartitionKey = Annotated[
    str, Field(pattern=_KEY_PATTERN, min_length=1, max_length=200), AfterValidator(_no_range_separator)
]
_PARTITION_KEY: TypeAdapter[str] = TypeAdapter(PartitionKey)


def partition_key_problem(key: str) -> str | None:
    """Why ``key`` cannot be a partition key (a dynamic one added by ``dp partitions add``), or
    ``None``: the rule a spec's static keys follow."""
    try:
        _PARTITION_KEY.validate_python(key)
    except ValidationError as exc:
        return "; ".join(str(error["msg"]) for error in exc.errors())
    return None


class StaticPartitions(_Strict):
    """A fixed list of keys, e.g. regions (a Dagster ``StaticPartitionsDefinition``)."""

    type: Literal["static"]
    keys: list[PartitionKey] = Field(min_length=1, max_length=10000)
    backfill: Backfill = _backfill_field()

    @field_validator("keys")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        seen: set[str] = set()
        twice = [key for key in value if key in seen or seen.add(key)]  # type: ignore[func-returns-value]
        if twice:
            raise ValueError(f"keys must be unique; repeated: {', '.join(sorted(set(twice)))}")
        return value


class DynamicPartitions(_Strict):
    """Keys added while the platform runs (``dp partitions add FLOW KEY``, or a sensor), kept by
    Dagster's instance under the flow id (a ``DynamicPartitionsDefinition``)."""

    type: Literal["dynamic"]
    backfill: Backfill = _backfill_field()


Partitions = Annotated[TimePartitions | StaticPartitions | DynamicPartitions, Field(discriminator="type")]
