"""The run queue, with every run of a flow tagged as a flow's run however it was started.

A flow's job carries ``dp/flow`` (and ``dp/flow_version``) as job tags, so runs launched by
name — a schedule, a sensor, ``dp launch``, the job's Launchpad — have them. A run started
with the UI's Materialize buttons is a run of Dagster's implicit asset job instead, and has no
tags of ours: the per-flow run limits (``tag_concurrency_limits`` on ``dp/flow``) and the run
list's filters would miss it. This coordinator adds the tag when the run is submitted, before
it is queued, from the flow its selected assets belong to (asset keys start with the flow id).
A selection spanning several flows is tagged ``dp/flows`` with their ids and no per-flow limit
applies to it (a run cannot carry one tag value per flow).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import dagster as dg

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


class FlowRunCoordinator(dg.QueuedRunCoordinator):
    """Dagster's queued run coordinator (same config: ``max_concurrent_runs``,
    ``tag_concurrency_limits``...), tagging asset-job runs with their flow before queueing."""

    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
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
                context = dg.SubmitRunContext(reloaded, context.workspace)
        return super().submit_run(context)


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
        logging.getLogger("dp.run_coordinator").warning(
            "run %s: the job tags of flow '%s' could not be read; it keeps dp/flow only",
            run.run_id,
            flow_id,
            exc_info=True,
        )
        return {}
    return {key: value for key, value in tags.items() if key.startswith("dp/")}
