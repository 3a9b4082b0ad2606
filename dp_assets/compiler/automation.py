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
