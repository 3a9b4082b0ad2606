"""The warm run launcher: each run executes in a child forked from a process that has already
imported the platform and loaded the code location (docs/run-launcher.md).

Named in ``dagster.yaml`` (production) and in the file ``dp init-home`` writes::

    run_launcher:
      module: dp_instance.warm_launcher
      class: WarmRunLauncher
      config: {max_workers: 8}

- **Launch**: the template of the run's code location (``dp_instance.warm_template``, started on
  first use, replaced when its code changed) forks a child; the run is tagged with the child's
  pid and start time before the child may begin; the child runs the run as
  ``dagster api execute_run`` does.
- **No template ready** (the first run of a location, or its code changed): the launcher starts
  the template and, without waiting for it to load (seconds, tens of seconds on a loaded
  machine), starts this run in a process of its own (``dp_instance.cold_worker``), tagged and
  monitored as a warm worker is. Launching runs in the daemon's run-queue loop: a wait there
  would hold back every run queued behind this one. (Dagster's default launcher waits too: its
  code server answers once the new process has imported Dagster and opened the instance.)
- **Health**: ``check_run_worker_health`` reports a started run whose worker is gone (killed,
  crashed) as FAILED, so Dagster's run monitoring fails it within one poll, and run retries
  (when enabled) re-execute it.
- **Cancel**: ``terminate`` marks the run CANCELING and interrupts its worker (SIGINT, as the code
  server interrupts its run workers); Dagster's execution loop then stops the steps and ends the
  run CANCELED.
- **Limits**: with ``FlowRunCoordinator`` (which starts runs at submit), each launch first asks
  the coordinator whether the run still fits the queue's limits; one that does not goes back
  to the queue.
- **Full pool, a template that cannot start**: the same cold start, with an engine event on the
  run saying why (a run with no Python code origin goes to Dagster's default launcher). The
  queue in front (the run coordinator's ``max_concurrent_runs``) already holds runs back; a
  second queue here would hide runs from the UI's queue and block the daemon's loop.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from dagster import Field, IntSource
from dagster._core.launcher import (
    CheckRunHealthResult,
    DefaultRunLauncher,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.storage.dagster_run import DagsterRun
from dagster._serdes import ConfigurableClass, ConfigurableClassData, serialize_value

from dp_instance.run_coordinator import FlowRunCoordinator
from dp_instance.warm_pool import PoolFull, TemplatePool, WarmStartError, Worker
from dp_instance.warm_template import process_start_time

#: The run tag naming the run's warm worker: ``{"pid", "start", "template", "host"}`` (``start``:
#: the process's start time, so that a reused pid is not taken for the worker).
WORKER_TAG = "dp/warm_worker"


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    #: Asks ``FlowRunCoordinator.admit_from_queue`` before each launch, which lets that coordinator
    #: start runs at submit (dp_instance/run_coordinator.py: why no limit is exceeded).
    asks_before_launching = True

    def __init__(
        self,
        inst_data: ConfigurableClassData | None = None,
        max_workers: int = 8,
        idle_seconds: int = 3600,
        start_timeout_seconds: int = 300,
        watch_cancel: bool = False,
    ) -> None:
        self._inst_data = inst_data
        self.max_workers = max_workers
        self.idle_seconds = idle_seconds
        self.start_timeout_seconds = start_timeout_seconds
        self.watch_cancel = watch_cancel
        self._pool: TemplatePool | None = None
        self._default: DefaultRunLauncher | None = None
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Field]:
        return {
            "max_workers": Field(
                IntSource,
                is_required=False,
                default_value=8,
                description="Run workers one template runs at once; beyond, runs start the default way.",
            ),
            "idle_seconds": Field(
                IntSource,
                is_required=False,
                default_value=3600,
                description="A template with no run for this long exits (the next run starts a new one).",
            ),
            "start_timeout_seconds": Field(
                IntSource,
                is_required=False,
                default_value=300,
                description="Longest wait for a new template to load the code location.",
            ),
            "watch_cancel": Field(
                bool,
                is_required=False,
                default_value=False,
                description="Each run worker also polls its run's status and stops when it is canceling: "
                "needed when terminate can come from another machine or container (a webserver "
                "elsewhere), which cannot signal the worker.",
            ),
        }

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> Self:
        return cls(inst_data=inst_data, **config_value)

    # ---- launch ------------------------------------------------------------------------------

    def pool(self) -> TemplatePool:
        if self._pool is None:
            state_dir = Path(self._instance.root_directory) / "warm"
            self._pool = TemplatePool(
                state_dir, self.max_workers, self.idle_seconds, self.start_timeout_seconds, self.watch_cancel
            )
        return self._pool

    def default_launcher(self) -> DefaultRunLauncher:
        if self._default is None:
            self._default = DefaultRunLauncher()
            self._default.register_instance(self._instance)
        return self._default

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        coordinator = self._instance.run_coordinator
        if isinstance(coordinator, FlowRunCoordinator) and not coordinator.admit_from_queue(run):
            return  # back in the queue: a run started at submit took its slot
        origin = run.job_code_origin
        if origin is None:
            self._fall_back(context, "the run names no Python code origin")
            return
        try:
            self.pool().start_worker(
                run.run_id,
                origin.repository_origin,
                serialize_value(origin.repository_origin),
                serialize_value(self._instance.get_ref()),
                lambda worker: self._tag_worker(run, worker),
            )
        except (PoolFull, WarmStartError) as exc:
            self._fall_back(context, str(exc))

    def _tag_worker(self, run: DagsterRun, worker: Worker) -> None:
        value = {
            "pid": worker.pid,
            "start": worker.start,
            "template": worker.template,
            "host": socket.gethostname(),
            **({"cold": True} if worker.template == 0 else {}),
        }
        self._instance.add_run_tags(run.run_id, {WORKER_TAG: json.dumps(value)})

    def _fall_back(self, context: LaunchRunContext, reason: str) -> None:
        run = context.dagster_run
        origin = run.job_code_origin
        if origin is None:
            self._instance.report_engine_event(
                f"No warm run worker ({reason}); starting the run with Dagster's default launcher.",
                run,
                cls=self.__class__,
            )
            self.default_launcher().launch_run(context)
            return
        self._instance.report_engine_event(
            f"No warm run worker ({reason}); starting the run in a process of its own (a cold start).",
            run,
            cls=self.__class__,
        )
        self.pool().start_cold_worker(
            run.run_id,
            origin.repository_origin,
            serialize_value(self._instance.get_ref()),
            lambda worker: self._tag_worker(run, worker),
        )

    # ---- health and cancel ------------------------------------------------------------------------

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        worker = worker_of(run)
        if worker is None:
            # Started by the default launcher: its code server watches the worker, as before.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "not a warm run worker; not checked here")
        if worker.get("host") != socket.gethostname():
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"warm run worker on {worker.get('host')}")
        if process_start_time(int(worker["pid"])) == worker.get("start"):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(worker["pid"]))
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the warm run worker (pid {worker['pid']}) is gone: killed or crashed mid-run",
            run_worker_id=str(worker["pid"]),
        )

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        worker = worker_of(run)
        if worker is None:
            return self.default_launcher().terminate(run_id)
        self._instance.report_run_canceling(run)
        pid = int(worker["pid"])
        if worker.get("host") != socket.gethostname() or process_start_time(pid) != worker.get("start"):
            self._instance.report_engine_event(
                f"The warm run worker (pid {pid}) is not running on this machine; it stops when it sees the "
                "run canceling (launcher option watch_cancel), else run monitoring ends the run.",
                run,
                cls=self.__class__,
            )
            return self.watch_cancel
        # What the code server does to its run workers: Dagster's interrupt handling stops the
        # steps (the Celery executor revokes its tasks) and reports the run CANCELED.
        os.kill(pid, signal.SIGINT)
        return True


def worker_of(run: DagsterRun) -> dict[str, Any] | None:
    raw = run.tags.get(WORKER_TAG)
    if not raw:
        return None
    try:
        worker = json.loads(raw)
    except ValueError:
        return None
    return worker if isinstance(worker, dict) and "pid" in worker else None
