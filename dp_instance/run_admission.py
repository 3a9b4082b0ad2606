"""Whether a run may start now: the run queue's limits, counted as Dagster's queue daemon counts
them (``dagster/_daemon/run_coordinator/queued_run_coordinator_daemon.py``,
``_get_runs_to_dequeue``), for one run at a time instead of a page of queued runs.

- Runs in progress are the runs in ``ACTIVE_RUN_STATUSES`` (STARTING, STARTED, CANCELING), read
  from run storage, as the daemon reads them.
- ``max_concurrent_runs``: -1 is no limit, 0 starts nothing, otherwise the run needs fewer runs
  in progress than the limit.
- ``tag_concurrency_limits``: Dagster's own ``TagConcurrencyLimitsCounter`` (the class the daemon
  uses), filled with the runs in progress, asked whether this run is blocked.
- Pools (op concurrency): the daemon blocks a run whose root steps' pools have no free slot,
  from slot counts it reads per iteration. That is not mirrored: a run that uses a pool (it has
  ``run_op_concurrency``) waits in the queue whenever the queue config blocks on pools.

Read ``dp_instance/run_coordinator.py`` for when these are asked (under the run queue's lock).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from dagster._core.run_coordinator.queued_run_coordinator import RunQueueConfig
from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES
from dagster._utils.tags import TagConcurrencyLimitsCounter


def runs_in_progress(instance: dg.DagsterInstance, other_than: str | None = None) -> list[dg.DagsterRun]:
    """The runs holding a slot of the queue's limits (``other_than``: the run being decided,
    already STARTING when the daemon hands it to the launcher)."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES))
    return [run for run in runs if run.run_id != other_than]


def limit_reached(run: dg.DagsterRun, in_progress: Sequence[dg.DagsterRun], config: RunQueueConfig) -> str | None:
    """Why ``run`` may not start beside ``in_progress`` under ``config``'s limits; None when it may."""
    limit = config.max_concurrent_runs
    if limit != -1 and len(in_progress) >= limit:
        return f"{len(in_progress)} runs in progress, max_concurrent_runs is {limit}"
    counter = TagConcurrencyLimitsCounter(list(config.tag_concurrency_limits or []), list(in_progress))
    if counter.is_blocked(run):
        return "a tag_concurrency_limits entry matching its tags is full"
    return None


def waits_for_pools(run: dg.DagsterRun, config: RunQueueConfig) -> bool:
    """A run using pools, when the queue holds runs back for pool slots: left to the daemon."""
    return bool(run.run_op_concurrency) and config.should_block_op_concurrency_limited_runs


def queue_is_empty(instance: dg.DagsterInstance) -> bool:
    return not instance.get_run_ids(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]), limit=1)
