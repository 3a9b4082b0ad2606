"""``schedule`` triggers: a Dagster ``ScheduleDefinition`` per trigger, named from the flow.

Missed ticks. When the daemon was down, Dagster evaluates only the *latest* missed tick of a
schedule without partitions (``dagster/_scheduler/scheduler.py``), with that tick's time as
``scheduled_execution_time``. That is ``missed_runs: latest``. For ``missed_runs: skip`` the
evaluation compares the scheduled time with the clock and skips a tick that is later than
``missed_after_seconds`` (default 5 minutes): a tick evaluated that late was missed, not merely
slow. Both decisions live in :func:`missed_tick_reason`, a pure function.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import dagster as dg

from dp_sensors.triggers.params import ParamsRejected, check_params
from dp_sensors.triggers.policy import TRIGGER_TAG, busy_reason, runs_in_progress


def missed_tick_reason(trigger: Any, scheduled: dt.datetime | None, now: dt.datetime) -> str | None:
    """Why the tick at ``scheduled`` must not run, or ``None`` to run it."""
    if scheduled is None or trigger.missed_runs == "latest":
        return None
    late = (now - scheduled).total_seconds()
    if late > trigger.missed_after_seconds:
        return (
            f"tick of {scheduled.isoformat()} was missed ({late:.0f}s late, more than "
            f"{trigger.missed_after_seconds}s) and the trigger says missed_runs: skip"
        )
    return None


def schedule_name(flow_id: str, index: int) -> str:
    return f"{flow_id}_schedule" if index == 0 else f"{flow_id}_schedule_{index + 1}"


def build_schedule(flow: Any, trigger: Any, index: int) -> dg.ScheduleDefinition:
    """One schedule; its params are checked now, so a bad one fails the flow at load."""
    try:
        run_config = check_params(flow.id, flow.params, trigger.params)
    except ParamsRejected as exc:
        raise ValueError(str(exc)) from None
    name = schedule_name(flow.id, index)
    skip_when_running = flow.policies.when_running == "skip"

    def evaluate(context: dg.ScheduleEvaluationContext):
        reason = missed_tick_reason(trigger, context.scheduled_execution_time, dt.datetime.now(dt.UTC))
        if reason:
            return dg.SkipReason(reason)
        if skip_when_running and (count := runs_in_progress(context.instance, flow.id)):
            return dg.SkipReason(busy_reason(flow.id, count))
        return dg.RunRequest(run_config=run_config, tags={TRIGGER_TAG: "schedule"})

    return dg.ScheduleDefinition(
        name=name,
        cron_schedule=trigger.cron,
        execution_timezone=trigger.timezone,
        job_name=flow.id,
        execution_fn=evaluate,
        default_status=(dg.DefaultScheduleStatus.RUNNING if trigger.enabled else dg.DefaultScheduleStatus.STOPPED),
        description=f"Runs flow '{flow.id}' on '{trigger.cron}' ({trigger.timezone}); "
        f"missed ticks: {trigger.missed_runs}.",
    )
