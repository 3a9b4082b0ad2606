"""The run queue, with every run of a flow tagged as a flow's run however it was started, and a
run started at once when it may start now.

**Tagging.** A flow's job carries ``dp/flow`` (and ``dp/flow_version``) as job tags, so runs
launched by name — a schedule, a sensor, ``dp launch``, the job's Launchpad — have them. A run
started with the UI's Materialize buttons is a run of Dagster's implicit asset job instead, and
has no tags of ours: the per-flow run limits (``tag_concurrency_limits`` on ``dp/flow``) and the
run list's filters would miss it. This coordinator adds the tag when the run is submitted, before
it is queued, from the flow its selected assets belong to (asset keys start with the flow id).
A selection spanning several flows is tagged ``dp/flows`` with their ids and no per-flow limit
applies to it (a run cannot carry one tag value per flow).

**Launch at submit** (``launch_at_submit: true``: what ``dp init-home`` writes; off by default and
in production's dagster.yaml for now, docs/run-launcher.md). Dagster's queued
coordinator only queues a run; the daemon launches it at its next read of the queue
(``dequeue_interval_seconds``), half a second on average with a 1 s interval. Here a run that may
start now is launched by the submitting process itself (the webserver, the daemon's sensors,
``dp`` commands), as Dagster's ``DefaultRunCoordinator`` does; any other run is queued as before.
It may start now when, under the run queue's lock (``dp_instance/launch_lock.py``):

- no run is QUEUED (a run never overtakes the queue, so priorities and the daemon's order hold;
  with the queue empty a ``dagster/priority`` tag orders nothing, the daemon would launch it next);
- ``max_concurrent_runs`` and every matching ``tag_concurrency_limits`` entry leave room, counting
  the runs in progress as the daemon does (``dp_instance/run_admission.py``);
- it uses no pool while the queue blocks on pools (the daemon's pool counting is not mirrored),
  and ``max_user_code_failure_retries`` is off (a launch the daemon retries is the daemon's).

It is then marked STARTING before the lock is released, and handed to the run launcher. A run
that is queued is queued under the same lock.

**Why no limit can be exceeded.** Every run counted against a limit is STARTING, STARTED or
CANCELING in run storage. (1) Two submitting processes: each checks and marks its run STARTING
while holding the lock, so the second one counts the first one's run. (2) The queue daemon reads
the runs in progress once per iteration, then the queued runs, then launches some of them one by
one, re-reading each run only to see it is still QUEUED: a run started at submit after its count
is missing from it, and a run queued after that start (because the start took the last slot)
could be launched into the slot that is no longer free. So the run launcher asks the coordinator
before it launches any run (``admit_from_queue``; ``WarmRunLauncher`` does, and runs start at
submit only with a launcher that asks): under the lock, the runs in progress other than this
one are counted again, and a run that no longer fits is put back in the queue (the same
``PIPELINE_ENQUEUED`` event the daemon writes when it re-queues a run) with an engine event
saying why, and the daemon starts it at a later read. The daemon marks a run STARTING before it
asks, so a run it is launching is counted by a submit checking at the same time; either of two
such runs that does not fit is the one refused. (3) Each check counts the runs in progress
afresh from run storage, and runs only leave that state by finishing, so a slot counted free was
free. A process killed between marking its run STARTING and launching it leaves a STARTING run
that holds a slot until run monitoring's start timeout fails it, as when the daemon is killed
mid-launch.

Storages other than the platform's (no ``launch_lock``), or a run launcher that does not ask
``admit_from_queue``: every run is queued, as with Dagster's queued coordinator.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from typing import Any, Self

import dagster as dg
from dagster._core.events import EngineEventData
from dagster._core.launcher import LaunchRunContext
from dagster._serdes import ConfigurableClassData
from dagster._utils.error import serializable_error_info_from_exc_info

from dp_instance.launch_lock import HoldsLaunchLock
from dp_instance.run_admission import limit_reached, queue_is_empty, runs_in_progress, waits_for_pools

FLOW_TAG = "dp/flow"
FLOWS_TAG = "dp/flows"
#: Asset groups of the platform itself (the load report), not flows.
PLATFORM_PREFIXES = frozenset({"dp_platform"})


def flow_tags(tags: Mapping[str, str], asset_selection: Iterable[dg.AssetKey] | None) -> dict[str, str]:
    """The tags to add to a run: none when it already names its flow or selects no flow asset."""
    if FLOW_TAG in tags or not asset_selection:
        return {}
    flows = sorted({key.path[0] for key in asset_selection} - PLATFORM_PREFIXES)
    if len(flows) == 1:
        return {FLOW_TAG: flows[0]}
    return {FLOWS_TAG: ",".join(flows)} if flows else {}


#: The run this thread is launching at submit (checked already): the launcher's ask passes it.
_STARTING_AT_SUBMIT: ContextVar[str | None] = ContextVar("dp_starting_at_submit", default=None)
log = logging.getLogger("dp.run_coordinator")


class FlowRunCoordinator(dg.QueuedRunCoordinator):
    """Dagster's queued run coordinator (same config: ``max_concurrent_runs``,
    ``tag_concurrency_limits``...), tagging asset-job runs with their flow, and starting a run at
    once when it may start now (``launch_at_submit``, see the module's docstring)."""

    def __init__(self, *args: Any, launch_at_submit: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.launch_at_submit = launch_at_submit

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        queue_fields = super().config_type()
        assert isinstance(queue_fields, Mapping)  # Dagster's is a dict of fields
        return {
            **queue_fields,
            "launch_at_submit": dg.Field(
                bool,
                is_required=False,
                default_value=False,
                description="Start a run when it is submitted if no run is queued and the limits leave "
                "room (else queue it for the daemon). Needs the platform's run storage and a run "
                "launcher that asks the coordinator before launching (WarmRunLauncher).",
            ),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Self:
        queue_config = {key: value for key, value in config_value.items() if key != "launch_at_submit"}
        coordinator = super().from_config_value(inst_data, queue_config)
        coordinator.launch_at_submit = bool(config_value.get("launch_at_submit", False))
        return coordinator

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        context = self._with_flow_tags(context)
        run = context.dagster_run
        lock = self._launch_lock() if run.status == dg.DagsterRunStatus.NOT_STARTED else None
        if lock is None:
            return super().submit_run(context)
        with lock as held:
            reason = self._why_wait(run) if held else "the run queue's lock was not free"
            if reason is not None:
                log.debug("run %s queued: %s", run.run_id, reason)
                return super().submit_run(context)
            # Counted by every later check from here on: the slot is taken before the lock goes.
            starting = dg.DagsterEvent(event_type_value=dg.DagsterEventType.RUN_STARTING.value, job_name=run.job_name)
            self._instance.report_dagster_event(starting, run_id=run.run_id)
        return self._launch(run.run_id, context.workspace)

    def admit_from_queue(self, run: dg.DagsterRun) -> bool:
        """Asked by the run launcher before it launches ``run`` (STARTING already): False when the
        run no longer fits the limits, after putting it back in the queue."""
        if _STARTING_AT_SUBMIT.get() == run.run_id:
            return True
        lock = self._launch_lock()
        if lock is None:
            return True  # nothing starts at submit: the daemon's count is exact, as in Dagster
        with lock as held:
            reason = self._limit_reached(run, other_than=run.run_id) if held else "the run queue's lock was not free"
            if reason is None:
                return True
            self._instance.report_engine_event(
                f"Not started: {reason} (a run started at submit after the queue daemon counted); "
                "back in the queue, the daemon starts it when there is room.",
                run,
                cls=self.__class__,
            )
            self._instance.report_dagster_event(dg.DagsterEvent.job_enqueue(run), run_id=run.run_id)
        return False

    # ---- launch at submit ------------------------------------------------------------------------

    def _launch_lock(self) -> AbstractContextManager[bool] | None:
        """The run queue's lock when runs may start at submit here; None when they may not."""
        if not self.launch_at_submit:
            return None
        storage = self._instance.run_storage
        if not isinstance(storage, HoldsLaunchLock):
            return None  # a storage that is not the platform's: every run is queued
        if not getattr(self._instance.run_launcher, "asks_before_launching", False):
            return None  # the daemon's launches would go unchecked
        return storage.launch_lock()

    def _why_wait(self, run: dg.DagsterRun) -> str | None:
        config = self._instance.get_concurrency_config().run_queue_config
        if config is None:
            return "no run queue config"
        if config.max_user_code_failure_retries:
            return "max_user_code_failure_retries is set: the daemon retries launches"
        if waits_for_pools(run, config):
            return "it uses a pool"
        if not queue_is_empty(self._instance):
            return "runs are queued before it"
        return self._limit_reached(run)

    def _limit_reached(self, run: dg.DagsterRun, other_than: str | None = None) -> str | None:
        config = self._instance.get_concurrency_config().run_queue_config
        if config is None:
            return "no run queue config"
        return limit_reached(run, runs_in_progress(self._instance, other_than), config)

    def _launch(self, run_id: str, workspace: Any) -> dg.DagsterRun:
        """What ``DagsterInstance.launch_run`` does after marking the run STARTING; a launch that
        fails fails the run (with the error in its events), as in the queue daemon."""
        run = self._instance.get_run_by_id(run_id)
        if run is None:
            raise dg.DagsterInvariantViolationError(f"run {run_id} vanished while it was being started")
        token = _STARTING_AT_SUBMIT.set(run_id)
        try:
            self._instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=workspace))
        except Exception:
            error = serializable_error_info_from_exc_info(sys.exc_info())
            log.exception("run %s could not be launched at submit", run_id)
            self._instance.report_engine_event(error.message, run, EngineEventData.engine_error(error))
            self._instance.report_run_failed(run)
        finally:
            _STARTING_AT_SUBMIT.reset(token)
        return self._instance.get_run_by_id(run_id) or run

    # ---- tagging ---------------------------------------------------------------------------------

    def _with_flow_tags(self, context: dg.SubmitRunContext) -> dg.SubmitRunContext:
        run = context.dagster_run
        missing = flow_tags(run.tags, run.asset_selection)
        if FLOW_TAG in missing:
            # The flow's job tags too (``dp/flow_version``, its ``dp/flow_limit_N`` of
            # ``policies.max_concurrent_runs``), so its own limit holds as for a job run.
            missing = {**_job_tags(context, run, missing[FLOW_TAG]), **missing}
        if missing:
            self._instance.add_run_tags(run.run_id, missing)
            reloaded = self._instance.get_run_by_id(run.run_id)
            if reloaded is not None:
                return dg.SubmitRunContext(reloaded, context.workspace)
        return context


def _job_tags(context: dg.SubmitRunContext, run: dg.DagsterRun, flow_id: str) -> dict[str, str]:
    """The ``dp/`` tags of the flow's job in the code location the run was planned in; none
    when the location or job cannot be found (the run keeps ``dp/flow`` at least)."""
    origin = run.remote_job_origin
    if origin is None:
        return {}
    try:
        location = context.workspace.get_code_location(origin.location_name)
        repository = location.get_repository(origin.repository_origin.repository_name)
        if not repository.has_job(flow_id):
            return {}
        tags = repository.get_full_job(flow_id).tags
    except Exception:  # a missing location must not stop the run being queued
        log.warning(
            "run %s: the job tags of flow '%s' could not be read; it keeps dp/flow only",
            run.run_id,
            flow_id,
            exc_info=True,
        )
        return {}
    return {key: value for key, value in tags.items() if key.startswith("dp/")}
