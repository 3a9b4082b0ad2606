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
from collections.abc import Callable, Iterator
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


def partition_of_tick(partitions_def: dg.TimeWindowPartitionsDefinition, scheduled: dt.datetime) -> str | None:
    """The partition a tick at ``scheduled`` launches: the last window that has ended by then."""
    current = partitions_def.get_partition_key_for_timestamp(scheduled.timestamp())
    current_start = partitions_def.time_window_for_partition_key(current).start
    # the window that ends where the current one starts
    key = partitions_def.get_partition_key_for_timestamp(current_start.timestamp(), end_closed=True)
    return key if partitions_def.has_partition_key(key) else None


def _partition_requests(
    partitions_def: dg.PartitionsDefinition, scheduled: dt.datetime | None, run_config: dict[str, Any]
) -> dg.SkipReason | dg.RunRequest | Iterator[dg.RunRequest]:
    tags = {TRIGGER_TAG: "schedule"}
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        key = partition_of_tick(partitions_def, scheduled or dt.datetime.now(dt.UTC))
        if key is None:
            return dg.SkipReason("no time window of the flow's partitions has ended at this tick")
        keys = [key]
    else:  # static partitions (validation refuses a schedule on dynamic ones)
        keys = list(partitions_def.get_partition_keys())
    # run_key: a tick evaluated twice (a daemon restart) launches each partition once
    requests = [dg.RunRequest(run_key=key, run_config=run_config, partition_key=key, tags=tags) for key in keys]
    return requests[0] if len(requests) == 1 else (r for r in requests)  # one, or a generator (Dagster)


def schedule_name(flow_id: str, index: int) -> str:
    return f"{flow_id}_schedule" if index == 0 else f"{flow_id}_schedule_{index + 1}"


def build_schedule(
    flow: Any,
    trigger: Any,
    index: int,
    run_config_of: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    partitions_def: dg.PartitionsDefinition | None = None,
) -> dg.ScheduleDefinition:
    """One schedule; its params are checked now, so a bad one fails the flow at load. On a
    partitioned flow a tick launches the time window that ended last (Dagster's rule for a
    partitioned job's schedule), or every key of static partitions."""
    try:
        run_config = check_params(flow.id, flow.params, trigger.params)
    except ParamsRejected as exc:
        raise ValueError(str(exc)) from None
    if run_config_of is not None:
        run_config = run_config_of(run_config)
    name = schedule_name(flow.id, index)
    skip_when_running = flow.policies.when_running == "skip"

    def evaluate(context: dg.ScheduleEvaluationContext):
        reason = missed_tick_reason(trigger, context.scheduled_execution_time, dt.datetime.now(dt.UTC))
        if reason:
            return dg.SkipReason(reason)
        if skip_when_running and (count := runs_in_progress(context.instance, flow.id)):
            return dg.SkipReason(busy_reason(flow.id, count))
        if partitions_def is None:
            return dg.RunRequest(run_config=run_config, tags={TRIGGER_TAG: "schedule"})
        return _partition_requests(partitions_def, context.scheduled_execution_time, run_config)

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
