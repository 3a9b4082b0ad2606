"""Flow-to-flow chains (SVOps' chain of DAGs) and the status of a chain (``dp status``).

A ``flow`` trigger on flow B (``{type: flow, flow: A, on: success}``) becomes a run-status
sensor that watches A's runs and starts B when one of them reaches the status. The run key is
A's run id, so one upstream run starts B once. The task id travels with the chain: B's run gets
``dp/task_id`` from A's run, or A's run id when A was the first of the chain, so every run of
one task can be found by that tag.

``monitored_jobs`` takes job objects, but only their names are used (the sensor asks the event
log for status changes of those job names in its own code location). The upstream flow's job
is built by another flow's factory, so a stand-in with the same name is passed; it is never
added to the repository.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from dp_sensors.triggers.common import indexed, sensor_interval, sensor_status
from dp_sensors.triggers.params import ParamsRejected, check_params
from dp_sensors.triggers.policy import (
    PARENT_RUN_TAG,
    TASK_TAG,
    TRIGGER_TAG,
    busy_reason,
    runs_in_progress,
)

RUN_STATUS = {"success": dg.DagsterRunStatus.SUCCESS, "failure": dg.DagsterRunStatus.FAILURE}


def chain_sensor_name(flow_id: str, trigger: Any, index: int) -> str:
    suffix = "" if trigger.on == "success" else "_failure"
    return indexed(f"{flow_id}_after_{trigger.flow}{suffix}_sensor", index)


def task_id_of(run: dg.DagsterRun) -> str:
    """The chain's task id: the run's ``dp/task_id`` tag, else its own id (it started the chain)."""
    return run.tags.get(TASK_TAG) or run.run_id


def monitored_stand_in(flow_id: str) -> dg.UnresolvedAssetJobDefinition:
    """A named reference to another flow's job for ``monitored_jobs`` (only the name is read)."""
    return dg.define_asset_job(name=flow_id, selection=dg.AssetSelection.groups(flow_id))


def build_chain_sensor(flow: Any, job: Any, trigger: Any, index: int) -> dg.SensorDefinition:
    if trigger.flow == flow.id and trigger.on == "success":
        raise ValueError("a flow cannot start itself on success (it would run forever); use a schedule")
    try:
        fixed = check_params(flow.id, flow.params, trigger.params)
    except ParamsRejected as exc:
        raise ValueError(str(exc)) from None
    name = chain_sensor_name(flow.id, trigger, index)
    skip_when_running = flow.policies.when_running == "skip"

    @dg.run_status_sensor(
        name=name,
        run_status=RUN_STATUS[trigger.on],
        monitored_jobs=[monitored_stand_in(trigger.flow)],
        request_job=job,
        minimum_interval_seconds=sensor_interval(trigger.interval_seconds),
        default_status=sensor_status(trigger.enabled),
        description=f"Starts flow '{flow.id}' when a run of flow '{trigger.flow}' "
        f"{'succeeds' if trigger.on == 'success' else 'fails'}.",
    )
    def _chain_sensor(context: dg.RunStatusSensorContext):
        upstream = context.dagster_run
        if skip_when_running and (count := runs_in_progress(context.instance, flow.id)):
            return dg.SkipReason(f"run {upstream.run_id} of '{trigger.flow}': {busy_reason(flow.id, count)}")
        params = dict(fixed)
        if trigger.pass_params:
            given = upstream.run_config or {}
            inherited = {k: v for k, v in given.items() if k in flow.params and k not in fixed}
            try:
                params = check_params(flow.id, flow.params, {**inherited, **fixed})
            except ParamsRejected as exc:
                return dg.SkipReason(f"run {upstream.run_id} of '{trigger.flow}': {exc}")
        return dg.RunRequest(
            run_key=upstream.run_id,
            run_config=params,
            tags={
                TRIGGER_TAG: "flow",
                TASK_TAG: task_id_of(upstream),
                PARENT_RUN_TAG: upstream.run_id,
            },
        )

    return _chain_sensor


# --- chain status -----------------------------------------------------------------------------

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
_QUEUED = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED}
_ACTIVE = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}
_FAILED = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
WILL_RETRY_TAG = "dagster/will_retry"


@dataclass(frozen=True)
class ChainRun:
    run_id: str
    flow_id: str
    status: str
    trigger: str | None
    parent_run: str | None
    created_at: datetime | None
    ended_at: datetime | None
    superseded: bool  # a later retry of the same run exists
    will_retry: bool  # failed, and Dagster's run retries will start another attempt

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "flow_id": self.flow_id,
            "status": self.status,
            "trigger": self.trigger,
            "parent_run": self.parent_run,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "superseded": self.superseded,
            "will_retry": self.will_retry,
        }


@dataclass(frozen=True)
class ChainStatus:
    task_id: str
    state: str
    runs: tuple[ChainRun, ...]
    waiting_for: tuple[str, ...]  # flows the chain still has to start

    def as_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "state": self.state,
            "runs": [run.as_dict() for run in self.runs],
            "waiting_for": list(self.waiting_for),
        }


Downstream = Callable[[str, str], Sequence[str]]
"""``downstream(flow_id, "success" | "failure") -> flows started by that outcome``."""


def chain_status(instance: dg.DagsterInstance, task_id: str, downstream: Downstream | None = None) -> ChainStatus:
    """Every run of a task (tag ``dp/task_id``, plus the run whose id the task id is) and the
    overall state.

    Retries (run retries and re-executions keep the tags) supersede the attempt they retry; only
    the latest attempt counts. The state is ``failed`` when a latest attempt failed or was
    canceled (and will not be retried), ``running`` when one is starting or running, ``pending``
    when one is queued or, given ``downstream``, a finished run should have started a flow that
    has no run yet, else ``succeeded``. An unknown task id raises ``LookupError``.
    """
    records = list(instance.get_run_records(dg.RunsFilter(tags={TASK_TAG: task_id})))
    if not any(r.dagster_run.run_id == task_id for r in records):
        root = instance.get_run_record_by_id(task_id)
        if root is not None:
            records.append(root)
    if not records:
        raise LookupError(
            f"no runs for task '{task_id}': give a dp/task_id tag value or the id of the run that started the chain"
        )
    runs = _chain_runs(records)
    latest = [run for run in runs if not run.superseded]
    waiting: list[str] = []
    if downstream is not None:
        started = {(run.parent_run, run.flow_id) for run in runs}
        for run in latest:
            outcome = {"SUCCESS": "success", "FAILURE": "failure"}.get(run.status)
            if outcome is None:
                continue
            for flow_id in downstream(run.flow_id, outcome):
                if (run.run_id, flow_id) not in started:
                    waiting.append(flow_id)
    return ChainStatus(task_id, _overall(latest, waiting), tuple(runs), tuple(waiting))


def _chain_runs(records: Iterable[Any]) -> list[ChainRun]:
    records = sorted(records, key=lambda r: r.create_timestamp)
    retried = {r.dagster_run.parent_run_id for r in records if r.dagster_run.parent_run_id}
    runs = []
    for record in records:
        run = record.dagster_run
        runs.append(
            ChainRun(
                run_id=run.run_id,
                flow_id=run.job_name,
                status=run.status.value,
                trigger=run.tags.get(TRIGGER_TAG),
                parent_run=run.tags.get(PARENT_RUN_TAG),
                created_at=record.create_timestamp,
                ended_at=(datetime.fromtimestamp(record.end_time, tz=UTC) if record.end_time else None),
                superseded=run.run_id in retried,
                will_retry=run.tags.get(WILL_RETRY_TAG) == "true",
            )
        )
    return runs


def _overall(latest: list[ChainRun], waiting: list[str]) -> str:
    statuses = {dg.DagsterRunStatus(run.status) for run in latest if not run.will_retry}
    if statuses & _FAILED:
        return FAILED
    if any(run.will_retry for run in latest):
        return PENDING if not statuses & _ACTIVE else RUNNING
    if statuses & _ACTIVE:
        return RUNNING
    if statuses & _QUEUED or waiting:
        return PENDING
    return SUCCEEDED
