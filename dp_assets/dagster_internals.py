"""Every private Dagster API the code location and the benchmarks use, behind one fence.

Dagster gives no public way to do what these do (docs/upgrading-dagster.md says why for each);
keeping them here, with one test per internal (tests/platform/test_dagster_fence.py), makes a
Dagster upgrade a matter of running that test and reading this module. The other place allowed
to use Dagster's private APIs is the instance plugins package ``dp_instance`` (storages, compute
logs, and the run-time names ``dp_io`` needs: ``dp_io`` is a layer below this package). A test
fails when a private Dagster import appears anywhere else.

What is here:

- **constants** Dagster gives no public name for (the implicit asset job, reserved names);
- **job resolution**: an asset job resolved against its own flow's assets only;
- **the load context**: whether Dagster is reconstructing the definitions in a worker, the
  metadata the code server pinned for it, and the job being reconstructed;
- **definitions validation**: whether ``dg check defs`` is loading the definitions;
- **Celery**: dagster-celery's task submission and retry mode, for the terminating executor;
- **run execution and snapshots** as a run worker and a code server do them, for the
  benchmarks (``bench/``).

dagster-celery is imported inside the functions that need it: importing it costs a second.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.definitions.definitions_load_context import (
    DefinitionsLoadContext,
    DefinitionsLoadType,
)
from dagster._core.definitions.reconstruct import (
    ReconstructableJob,
    ReconstructableRepository,
)
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from dagster._core.definitions.utils import DISALLOWED_NAMES
from dagster._core.execution.build_resources import wrap_resources_for_execution

__all__ = [
    "DISALLOWED_NAMES",
    "IMPLICIT_ASSET_JOB_NAME",
    "JobBeingReconstructed",
    "UnresolvedAssetJobDefinition",
    "add_reconstruction_metadata",
    "execute_run_in_process",
    "job_being_reconstructed",
    "reconstruction_metadata",
    "repository_snapshot",
    "resolve_asset_job",
    "retry_mode_from_config",
    "run_celery_plan",
    "run_worker_arguments",
]

#: How far up the call stack :func:`job_being_reconstructed` looks (Dagster's reconstruction
#: path is about 15 frames deep; the rest is margin for a deeper call into the definitions).
_MAX_FRAMES = 80


# ---- job resolution ---------------------------------------------------------------------------


def resolve_asset_job(
    job: UnresolvedAssetJobDefinition,
    assets: Sequence[dg.AssetsDefinition],
    executor: dg.ExecutorDefinition | None,
    resources: Mapping[str, Any],
) -> dg.JobDefinition:
    """``job`` resolved against ``assets`` alone, with ``resources`` (what ``Definitions`` does
    against every asset and resource of the location, at a cost quadratic in flows)."""
    return job.resolve(
        asset_graph=AssetGraph.from_assets(assets),
        default_executor_def=executor,
        resource_defs=wrap_resources_for_execution(dict(resources)),
    )


# ---- the load context -------------------------------------------------------------------------


@dataclass(frozen=True)
class JobBeingReconstructed:
    """The job a worker process reconstructs: its name, and the assets it runs when it is the
    implicit asset job (None: all of the job's assets)."""

    name: str
    asset_selection: frozenset[dg.AssetKey] | None


#: What ``dg check defs`` and ``dagster definitions validate`` set while they load the definitions.
DEFS_VALIDATION_ENV = "DAGSTER_IS_DEFS_VALIDATION_CLI"


def validating_definitions() -> bool:
    """Whether Dagster's definitions check is loading the definitions: there a bad spec must fail
    the check, where a serving location leaves it out. Dagster's CLI says so only through this
    environment variable (dagster/_cli/definitions.py)."""
    return bool(os.environ.get(DEFS_VALIDATION_ENV))


def reconstruction_metadata() -> Mapping[str, Any] | None:
    """The metadata the code server pinned, when Dagster is reconstructing the definitions in a
    run, step or Celery worker; None on a code server or at a plain import."""
    if not DefinitionsLoadContext.is_set():
        return None
    context = DefinitionsLoadContext.get()
    if context.load_type != DefinitionsLoadType.RECONSTRUCTION:
        return None
    return context.reconstruction_metadata


def add_reconstruction_metadata(key: str, value: str) -> None:
    """On a code server's load, pin ``value`` under ``key``: Dagster hands it to the workers of
    every run it plans (:func:`reconstruction_metadata`). Elsewhere nothing is pinned."""
    context = DefinitionsLoadContext.get()
    if context.load_type == DefinitionsLoadType.INITIALIZATION:
        context.add_to_pending_reconstruction_metadata(key, value)


def job_being_reconstructed() -> JobBeingReconstructed | None:
    """The job whose reconstruction called the definitions function, found on the call stack.

    Dagster passes the definitions function no argument naming the job it is about to
    reconstruct; the ``ReconstructableJob`` asking for its repository is a caller."""
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_MAX_FRAMES):
        if frame is None:
            return None
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, ReconstructableJob):
            selection = candidate.asset_selection
            return JobBeingReconstructed(candidate.job_name, frozenset(selection) if selection is not None else None)
        frame = frame.f_back
    return None


# ---- Celery -----------------------------------------------------------------------------------


def retry_mode_from_config(config: Mapping[str, Any]) -> Any:
    """The ``retries`` block of an executor config as the ``RetryMode`` executors take (what
    dagster-celery's own executor function does)."""
    from dagster._core.execution.retries import RetryMode

    return RetryMode.from_config(config)


def run_celery_plan(plan_context: Any, execution_plan: Any, wrap_result: Callable[[Any], Any]) -> Iterator[Any]:
    """dagster-celery's execution loop, each submitted step's ``AsyncResult`` passed through
    ``wrap_result`` first (dagster-celery has no hook for what a revoke does)."""
    from dagster_celery.core_execution_loop import core_celery_execution_loop
    from dagster_celery.executor import _submit_task

    def submit(*args: Any) -> Any:
        return wrap_result(_submit_task(*args))

    return core_celery_execution_loop(plan_context, execution_plan, step_execution_fn=submit)


# ---- run execution and snapshots (bench/) -----------------------------------------------------


def execute_run_in_process(job: dg.JobDefinition, instance: dg.DagsterInstance) -> Any:
    """Execute ``job`` in this process the way a run worker does (``dagster api execute_run``),
    with the job's own executor. ``execute_in_process`` keeps every output value in memory for
    its result; this does not."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.execution.api import execute_run

    run = instance.create_run_for_job(job_def=job)
    return execute_run(InMemoryJob(job), run, instance)


def run_worker_arguments(
    module: str, attribute: str, working_directory: str, job_name: str, instance: dg.DagsterInstance
) -> tuple[dg.DagsterRun, str]:
    """A run created for ``job_name`` of the definitions at ``module:attribute``, and the
    argument ``dagster api execute_run`` takes to execute it (what a run launcher passes)."""
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import serialize_value

    recon_job = ReconstructableRepository.for_module(
        module, attribute, working_directory=working_directory
    ).get_reconstructable_job(job_name)
    origin = recon_job.get_python_origin()
    run = instance.create_run_for_job(job_def=recon_job.get_definition(), job_code_origin=origin)
    arguments = ExecuteRunArgs(job_origin=origin, run_id=run.run_id, instance_ref=instance.get_ref())
    return run, serialize_value(arguments)


def repository_snapshot(defs: dg.Definitions, defer_snapshots: bool) -> str:
    """The serialised snapshot a code server sends the webserver for ``defs``."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    repo = defs.get_repository_def()
    return serialize_value(RepositorySnap.from_def(repo, defer_snapshots=defer_snapshots))
