"""Run policies that act before a run exists: concurrency tags, ``when_running``, run retries.

Concurrency is enforced by Dagster's ``QueuedRunCoordinator`` from run tags, so a limit holds
however a run was started (a trigger, the UI, GraphQL):

- every run carries ``dp/flow: <flow id>``; the deployment's ``dagster.yaml`` caps runs per flow
  with ``tag_concurrency_limits: [{key: dp/flow, value: {applyLimitPerUniqueValue: true},
  limit: N}]`` (the ceiling for every flow);
- ``policies.max_concurrent_runs: N`` (1-10) adds ``dp/flow_limit_N: <flow id>``, and
  ``dagster.yaml`` holds one entry per N with ``limit: N`` and ``applyLimitPerUniqueValue``.
  A small fixed set of tag keys keeps the instance config static while every flow still gets
  its own count (the value is the flow id).

``when_running: skip`` is the triggers' business: a schedule or sensor that fires while a run of
the flow is queued or in progress starts nothing (the run queue would otherwise hold it).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

FLOW_TAG = "dp/flow"
#: The flow version a run was planned with (a job tag of every flow's job): which nodes it ran.
FLOW_VERSION_TAG = "dp/flow_version"
TRIGGER_TAG = "dp/trigger"
TASK_TAG = "dp/task_id"
PARENT_RUN_TAG = "dp/parent_run"
EVENT_ID_TAG = "dp/event_id"
EVENT_TOPIC_TAG = "dp/event_topic"
FILE_TAG = "dp/file"
MAX_FLOW_LIMIT = 10
RETRY_ON_FAILURE_TAG = "dagster/retry_on_asset_or_op_failure"

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def flow_limit_tag(limit: int) -> str:
    return f"dp/flow_limit_{limit}"


def concurrency_limits_config(default_per_flow: int = 3) -> list[dict[str, Any]]:
    """The ``tag_concurrency_limits`` a deployment's ``dagster.yaml`` needs for these tags."""
    limits = [{"key": FLOW_TAG, "value": {"applyLimitPerUniqueValue": True}, "limit": default_per_flow}]
    limits += [
        {"key": flow_limit_tag(n), "value": {"applyLimitPerUniqueValue": True}, "limit": n}
        for n in range(1, MAX_FLOW_LIMIT + 1)
    ]
    return limits


def policy_run_tags(flow: Any) -> dict[str, str]:
    """Job tags (so every run has them) for the flow's concurrency and retry policies.

    Run retries and node retries together (reliability test E8): when any node declares
    retries, a node failure has already been retried inside the step, so the run is retried only
    when it crashed (``retry_on_asset_or_op_failure: false``), never for the node's failure
    again; attempts therefore stay ``max_retries + 1`` per node per crash-free run. Without node
    retries, ``run_retries`` also retries failed nodes, as a user of Dagster would expect.
    """
    tags: dict[str, str] = {}
    policies = flow.policies
    if policies.max_concurrent_runs:
        tags[flow_limit_tag(policies.max_concurrent_runs)] = flow.id
    if policies.run_retries:
        tags[RETRY_ON_FAILURE_TAG] = "false" if _declares_node_retries(flow) else "true"
    return tags


def _declares_node_retries(flow: Any) -> bool:
    if flow.policies.retry is not None and flow.policies.retry.max_retries > 0:
        return True
    return any(node.retry is not None and node.retry.max_retries > 0 for node in flow.nodes)


def runs_in_progress(instance: dg.DagsterInstance, job_name: str) -> int:
    """Runs of the flow's job that are queued or running (what ``when_running: skip`` checks)."""
    return instance.get_runs_count(dg.RunsFilter(job_name=job_name, statuses=IN_PROGRESS))


def busy_reason(flow_id: str, count: int) -> str:
    return f"flow '{flow_id}' has {count} run(s) queued or in progress and its policy is when_running: skip"
