"""Triggers declared in a flow spec, as Dagster schedules and sensors named from the flow.

``build_trigger_definitions(flow, job)`` is called by the compiler for every flow and returns a
``Definitions`` holding:

====================  =====================================================  ======================
spec                  Dagster                                                name
====================  =====================================================  ======================
``schedule``          ``ScheduleDefinition`` (cron, time zone, params)       ``<flow>_schedule``
``event``             sensor over the event bus (resource ``event_bus``)      ``<flow>_event_sensor``
``file``              sensor over the data root (resource ``files``)          ``<flow>_file_sensor``
``flow``              run-status sensor on the upstream flow's job            ``<flow>_after_<up>_sensor``
``notify``            run-status sensors (resource ``notifications``)        ``<flow>_notify_<outcome>_sensor``
====================  =====================================================  ======================

A second trigger of the same kind gets ``_2``, and so on. A trigger whose fixed params do not
fit the flow fails the flow at load with a message naming the trigger; the other flows load.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg

    from dp_sensors.triggers.policy import policy_run_tags


def build_trigger_definitions(
    flow: Any,
    job: Any,
    *,
    run_config_of: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.Definitions:
    """The schedules and sensors of one validated flow; ``job`` is the flow's job. A partitioned
    flow's job takes its params per step (``run_config_of`` makes that run config from the
    params) and its schedules launch the partition of their tick (``partitions_def``)."""
    import dagster as dg

    from dp_sensors.chains import build_chain_sensor
    from dp_sensors.notifications import build_notification_sensors
    from dp_sensors.triggers.events import build_event_sensor
    from dp_sensors.triggers.files import build_file_sensor
    from dp_sensors.triggers.schedules import build_schedule

    schedules: list[dg.ScheduleDefinition] = []
    sensors: list[dg.SensorDefinition] = []
    counts: dict[str, int] = {}
    for position, trigger in enumerate(flow.triggers):
        index = counts.get(trigger.type, 0)
        counts[trigger.type] = index + 1
        try:
            if trigger.type == "schedule":
                schedules.append(build_schedule(flow, trigger, index, run_config_of, partitions_def))
            elif trigger.type == "event":
                sensors.append(build_event_sensor(flow, trigger, index))
            elif trigger.type == "file":
                sensors.append(build_file_sensor(flow, trigger, index))
            elif trigger.type == "flow":
                sensors.append(build_chain_sensor(flow, job, trigger, index))
        except ValueError as exc:
            message = str(exc)
            if not message.startswith(f"flow '{flow.id}'"):
                message = f"flow '{flow.id}', triggers[{position}] ({trigger.type}): {message}"
            raise ValueError(message) from None
    sensors.extend(build_notification_sensors(flow, job))
    return dg.Definitions(schedules=schedules, sensors=sensors)


def __getattr__(name: str) -> Any:
    # Imported when used: validation checks trigger params with ``triggers.params``, and
    # importing this package must not import Dagster for it.
    if name == "policy_run_tags":
        from dp_sensors.triggers.policy import policy_run_tags

        return policy_run_tags
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["build_trigger_definitions", "policy_run_tags"]
