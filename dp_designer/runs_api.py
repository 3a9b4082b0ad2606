"""Runs from the designer: launches through Dagster's GraphQL API (as any tool launches), node
states of a run from its events, and each node's output read from the kept per-run outputs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from dp_auth.permissions import Action
from dp_designer.flows_api import flow_id_of
from dp_designer.http import ApiError, read_body
from dp_designer.identity import author_of, caller, check_flow
from dp_designer.tables import value_view
from dp_sensors.launch import GraphQLClient, LaunchError, PartitionRejected, RunConfigRejected

LAUNCHED_BY_TAG = "dp/launched_by"
#: Dagster's statuses of a run that writes no more events.
FINISHED_STATUSES = frozenset({"SUCCESS", "FAILURE", "CANCELED"})

RUN_EVENTS = """
query RunEvents($runId: ID!, $after: String) {
  runOrError(runId: $runId) { __typename ... on Run { status jobName } ... on RunNotFoundError { message } }
  logsForRun(runId: $runId, afterCursor: $after, limit: 1000) {
    __typename
    ... on EventConnection {
      cursor hasMore
      events {
        __typename
        ... on MaterializationEvent { assetKey { path } }
        ... on ExecutionStepStartEvent { stepKey }
      }
    }
  }
}
"""

RELOAD_WORKSPACE = """
mutation Reload { reloadWorkspace { __typename ... on PythonError { message } } }
"""

RELOAD_LOCATION = """
mutation Reload($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name) {
  __typename ... on PythonError { message } } }
"""

LOCATIONS = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus } } } }
"""
RELOAD_TIMEOUT_SECONDS = 180.0
#: How long a launch waits for code locations that are still loading (a publish reloads them).
LOAD_WAIT_SECONDS = 300.0

# A flow's runs carry its dp/flow tag whatever their job: its own job's (a job tag), and those
# of its assets under Dagster's asset job (a backfill, the UI's Materialize; the run coordinator).
FLOW_RUNS = """
query FlowRuns($flow: String!, $limit: Int!) {
  runsOrError(filter: {tags: [{key: "dp/flow", value: $flow}]}, limit: $limit) {
    __typename ... on Runs { results { runId status startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}
"""
RUNS_LISTED = 20

LATEST_RUNS = """
query LatestRuns {
  runsOrError(limit: 500) { __typename ... on Runs { results { jobName status tags { key value } } } }
}
"""


class LaunchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    params: dict[str, Any] = Field(default_factory=dict, description="The flow's params (its run config).")
    partition: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="The partition to run (its key, e.g. `2024-06-01-12:00`); required by a partitioned flow.",
    )


@dataclass
class RunsService:
    graphql_url: str
    token: str | None = None
    location: str | None = None
    outputs_base: str | None = None
    webserver_url: str | None = None

    def client(self, timeout: float = 30.0) -> GraphQLClient:
        return GraphQLClient(self.graphql_url, location=self.location, token=self.token, timeout=timeout)

    def launch(self, flow_id: str, params: dict[str, Any], author: str | None, partition: str | None = None) -> str:
        tags = {LAUNCHED_BY_TAG: "designer", **({"dp/user": author} if author else {})}
        with self.client() as client:
            self._wait_loaded(client)
            return client.launch_run(flow_id, params, tags, partition=partition)

    def reload(self) -> bool:
        """Ask Dagster to load the code location(s) again, so that a version just published is the
        one that runs; ``False`` when Dagster is not reachable (it loads the store when it starts)."""
        try:
            # Long enough for a loaded machine: the launch that follows waits for the reload.
            with self.client(timeout=RELOAD_TIMEOUT_SECONDS) as client:
                if self.location:
                    client.execute(RELOAD_LOCATION, {"name": self.location})
                else:
                    client.execute(RELOAD_WORKSPACE)
        except LaunchError:
            return False
        return True

    def _wait_loaded(self, client: GraphQLClient) -> None:
        """Until every code location has loaded; a ``LaunchError`` (the launch answers 409) when
        some still load after ``LOAD_WAIT_SECONDS``, rather than launching against them anyway."""
        deadline = time.monotonic() + LOAD_WAIT_SECONDS
        while True:
            entries = client.execute(LOCATIONS)["workspaceOrError"].get("locationEntries") or []
            loading = [e["name"] for e in entries if e["loadStatus"] != "LOADED"]
            if not loading:
                return
            if time.monotonic() > deadline:
                raise LaunchError(
                    f"code location(s) {', '.join(loading)} still loading after {LOAD_WAIT_SECONDS:.0f}s; "
                    "launch again once Dagster has loaded them"
                )
            time.sleep(0.5)

    def last_statuses(self) -> dict[str, str]:
        """Flow id -> the status of its newest run; empty when Dagster is not reachable (the
        list of flows must open without it)."""
        try:
            with self.client(timeout=3.0) as client:
                data = client.execute(LATEST_RUNS)["runsOrError"]
        except LaunchError:
            return {}
        found: dict[str, str] = {}
        for run in data.get("results") or []:
            flow = next((t["value"] for t in run.get("tags") or [] if t["key"] == "dp/flow"), run["jobName"])
            found.setdefault(flow, run["status"])
        return found

    def flow_runs(self, flow_id: str) -> list[dict[str, Any]]:
        """The flow's newest runs, newest first (a backfill's too): id, status, times and who
        launched it."""
        with self.client() as client:
            data = client.execute(FLOW_RUNS, {"flow": flow_id, "limit": RUNS_LISTED})["runsOrError"]
        runs = []
        for run in data.get("results") or []:
            tags = {t["key"]: t["value"] for t in run.get("tags") or []}
            runs.append(
                {
                    "run_id": run["runId"],
                    "status": run["status"],
                    "started": run.get("startTime"),
                    "ended": run.get("endTime"),
                    "launched_by": tags.get("dp/user") or tags.get(LAUNCHED_BY_TAG),
                    "partition": _partition_of(tags),
                }
            )
        return runs

    def run_state(self, run_id: str, flow_id: str) -> dict[str, Any]:
        """The run's status and each node's: succeeded once materialised, else running while the
        run is, else not run (failed, or skipped after a failure).

        One answer's status may be newer than its events: Dagster resolves ``runOrError``
        asynchronously, after ``logsForRun`` (seen in CI: SUCCESS, and the last node's
        materialisation missing). So a run seen finished has its events read once more, in a
        request made after that status was known: a finished run writes its node events before
        it finishes."""
        after, done, status, job = None, set(), None, None
        read_after_finish = False
        with self.client() as client:
            while True:
                data = client.execute(RUN_EVENTS, {"runId": run_id, "after": after})
                run = data["runOrError"]
                if run["__typename"] != "Run":
                    raise ApiError(404, f"no run '{run_id}' in Dagster: {run.get('message', '')}")
                if run["jobName"] != flow_id:
                    # The caller's right is checked on flow_id: another flow's run (its job,
                    # status or existence) is theirs to see only through that flow, as at the proxy.
                    raise ApiError(404, f"flow '{flow_id}' has no run '{run_id}'")
                status, job = run["status"], run["jobName"]
                logs = data["logsForRun"]
                if logs["__typename"] != "EventConnection":
                    break
                for event in logs["events"]:
                    path = (event.get("assetKey") or {}).get("path") or []
                    if event["__typename"] == "MaterializationEvent" and len(path) == 2 and path[0] == flow_id:
                        done.add(path[1])
                after = logs["cursor"]
                if not logs["hasMore"]:
                    if status in FINISHED_STATUSES and not read_after_finish:
                        read_after_finish = True
                        continue
                    break
        links = {}
        if self.webserver_url:
            base = self.webserver_url.rstrip("/")
            links = {"run": f"{base}/runs/{run_id}", "assets": f"{base}/assets/{flow_id}"}
        return {"run_id": run_id, "status": status, "job": job, "succeeded": sorted(done), "links": links}

    def node_output(self, run_id: str, flow_id: str, node_id: str) -> dict[str, Any]:
        """The node's output of the run; a run of one partition (the Run tab's partition, a
        backfill's run of one key) kept it under that partition, so that one is read."""
        from dp_io.errors import OutputNotFoundError
        from dp_io.retention import read_output, show_run

        try:
            value = read_output(run_id, node_id, flow_id, base=self.outputs_base)
        except (OutputNotFoundError, ValueError) as exc:
            try:
                kept = {
                    o.partition
                    for o in show_run(run_id, base=self.outputs_base).outputs
                    if o.flow_id == flow_id and o.node_id == node_id and o.partition is not None
                }
                if len(kept) != 1:
                    raise exc from None
                value = read_output(run_id, node_id, flow_id, partition=kept.pop(), base=self.outputs_base)
            except (OutputNotFoundError, ValueError) as final:
                raise ApiError(404, str(final)) from None
        return value_view(value)


def _partition_of(tags: dict[str, str]) -> str | None:
    """The partition(s) a run covers: its key, or a backfill run's range (one key when it starts
    and ends there)."""
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if "dagster/partition" in tags or start is None:
        return tags.get("dagster/partition")
    return start if start == end else f"{start}...{end}"


def _service(request: Request) -> RunsService:
    return request.app.state.runs


async def launch(request: Request) -> JSONResponse:
    """Launch the published flow with params, through Dagster's GraphQL API."""
    flow_id = flow_id_of(request)
    workspace = await run_in_threadpool(check_flow, request, Action.run, flow_id)
    body = await read_body(request, LaunchBody)
    store_api = request.app.state.store_api
    # The run check above covers reading the flow: the store's spec, not store_api.get's second check.
    _, published = await run_in_threadpool(store_api.store.get, flow_id)
    if published.get("partitions") and body.partition is None:
        raise ApiError(422, f"flow '{flow_id}' is partitioned: field 'partition' names the partition to run")
    try:
        run_id = await run_in_threadpool(
            _service(request).launch, flow_id, body.params, author_of(request), body.partition
        )
    except (RunConfigRejected, PartitionRejected) as exc:
        raise ApiError(422, str(exc)) from None
    except LaunchError as exc:
        raise ApiError(502 if "cannot reach" in str(exc) else 409, str(exc)) from None
    access = store_api.access
    detail = {
        "run_id": run_id,
        "params": sorted(body.params),
        **({"partition": body.partition} if body.partition else {}),
    }
    await run_in_threadpool(
        lambda: access.record(caller(request), "launch", workspace=workspace, flow_id=flow_id, detail=detail)
    )
    return JSONResponse({"run_id": run_id}, status_code=201)


def _run_id(request: Request) -> str:
    from dp_io.layout import check_run_id

    try:
        return check_run_id(request.path_params["run_id"])
    except ValueError as exc:
        raise ApiError(404, str(exc)) from None


async def flow_runs(request: Request) -> JSONResponse:
    """The flow's newest runs (open one to see its node colours and outputs)."""
    flow_id = flow_id_of(request)
    await run_in_threadpool(check_flow, request, Action.view, flow_id)
    try:
        runs = await run_in_threadpool(_service(request).flow_runs, flow_id)
    except LaunchError as exc:
        raise ApiError(502, str(exc)) from None
    return JSONResponse({"runs": runs})


async def run_state(request: Request) -> JSONResponse:
    """The run's status and which of the flow's nodes have succeeded so far."""
    flow_id = flow_id_of(request)
    await run_in_threadpool(check_flow, request, Action.view, flow_id)
    try:
        state = await run_in_threadpool(_service(request).run_state, _run_id(request), flow_id)
    except LaunchError as exc:
        raise ApiError(502, str(exc)) from None
    return JSONResponse(state)


async def node_output(request: Request) -> JSONResponse:
    """A node's output of a run: first rows, columns, row count (from the kept outputs)."""
    flow_id = flow_id_of(request)
    await run_in_threadpool(check_flow, request, Action.view, flow_id)
    node_id = request.path_params["node_id"][:64]
    return JSONResponse(await run_in_threadpool(_service(request).node_output, _run_id(request), flow_id, node_id))
