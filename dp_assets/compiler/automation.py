"""A spec's ``automation:`` as Dagster's ``AutomationCondition`` on a node's ``AssetSpec``.

The daemon's automation condition sensor (created by Dagster for a location whose assets have
conditions) evaluates them and launches the runs; see docs/flow-spec.md#automation.
"""

from __future__ import annotations

from typing import Any

import dagster as dg


def automation_condition(flow: Any, node: Any) -> dg.AutomationCondition | None:
    """The node's condition, else the flow's; ``None`` when neither declares one."""
    automation = node.automation or flow.automation
    if automation is None:
        return None
    if automation.condition == "eager":
        return dg.AutomationCondition.eager()
    if automation.condition == "on_missing":
        return dg.AutomationCondition.on_missing()
    return dg.AutomationCondition.on_cron(automation.cron, automation.timezone)


def automation_sensors(flow: Any, keys: list[dg.AssetKey]) -> list[dg.SensorDefinition]:
    """The sensor that evaluates the conditions of the flow's assets ``keys`` (those that have
    one), running by default: a spec that declares automation means it. Dagster's own default
    sensor would cover them too, but starts stopped."""
    if not keys:
        return []
    return [
        dg.AutomationConditionSensorDefinition(
            f"{flow.id}_automation_sensor",
            target=dg.AssetSelection.assets(*keys),
            run_tags={"dp/flow": flow.id},
            default_status=dg.DefaultSensorStatus.RUNNING,
        )
    ]
