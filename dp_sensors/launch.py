"""Launching flows through Dagster's own GraphQL API, as external tools do.

``launchRun`` with the flow's params as run config (the job's config schema *is* the params),
the flow id as job name and the code location found by asking the webserver which location
holds that job. Every typed error of the API becomes a :class:`LaunchError` whose message says
what to do; :class:`RunConfigRejected` (a :class:`~dp_sensors.webhook.LaunchRejected`) means
Dagster refused the params and **no run was created**.

Used by ``dp launch`` and, through :class:`GraphQLLauncher`, by the webhook receiver's
``POST /flows/{flow_id}/runs`` (idempotent launches).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, Self

import httpx

from dp_resources.json_objects import shown_key
from dp_sensors.webhook.launches import IDEMPOTENCY_TAG, PARTITION_TAG, LaunchRejected

DEFAULT_GRAPHQL_URL = "http://127.0.0.1:3000/graphql"
CSRF_HEADER = "X-Dagster-Request"  # the authenticating proxy refuses mutations without it (S3)
TOKEN_ENV = "DP_DAGSTER_TOKEN"
REPOSITORY_NAME = "__repository__"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on RunConfigValidationInvalid { errors { message reason path } }
    ... on PipelineNotFoundError { message }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
    ... on UnauthorizedError { message }
    ... on PresetNotFoundError { message }
    ... on ConflictingExecutionParamsError { message }
    ... on NoModeProvidedError { message }
    ... on PythonError { message stack }
  }
}
"""


JOB_STEPS = """
query JobSteps($selector: PipelineSelector!, $repository: RepositorySelector!, $job: String!) {
  partitionSetsOrError(repositorySelector: $repository, pipelineName: $job) {
    __typename
    ... on PartitionSets { results { name } }
  }
  pipelineOrError(params: $selector) {
    __typename
    ... on Pipeline {
      solids { name }
      partitionKeysOrError { __typename ... on PartitionKeys { partitionKeys } }
    }
    ... on PipelineNotFoundError { message }
  }
}
"""

JOB_LOCATIONS = """
query JobLocations {
  repositoriesOrError {
    __typename
    ... on RepositoryConnection { nodes { name location { name } jobs { name } } }
    ... on PythonError { message }
  }
}
"""

RUN_STATUS = """
query RunStatus($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run { runId status jobName tags { key value } }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

RUN_STATES = """
query RunStates($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status jobName tags { key value } } }
    ... on PythonError { message }
  }
}
"""

RUNS_WITH_TAG = """
query RunsWithTag($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 5) {
    __typename
    ... on Runs { results { runId status jobName } }
    ... on PythonError { message }
  }
}
"""


RUN_FAILURES = """
query RunFailures($runId: ID!, $after: String) {
  logsForRun(runId: $runId, afterCursor: $after, limit: 1000) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on ExecutionStepFailureEvent { stepKey error { className message causes { className message } } }
        ... on RunFailureEvent { message }
      }
    }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

#: The platform's own errors, whose message names the flow and the failing node (or nodes).
NODE_ERRORS = ("FailedNodes", "NodeFailed")


class LaunchError(RuntimeError):
    """The launch did not happen; the message says why and what to do."""


class PartitionRejected(LaunchRejected, LaunchError):
    """The flow has no partitions, or not the one asked for; no run was created."""


class RunConfigRejected(LaunchRejected, LaunchError):
    """Dagster refused the params (wrong type, unknown or missing param); no run was created."""

    def __init__(self, flow_id: str, errors: list[dict[str, Any]]):
        self.errors = errors
        listed = "; ".join(_config_error(e) for e in errors) or "no details given"
        super().__init__(f"flow '{flow_id}' refused the params: {listed}")


def _config_error(error: Mapping[str, Any]) -> str:
    path = ".".join(p for p in error.get("path") or [] if p not in ("root",))
    return f"{path + ': ' if path else ''}{error.get('message', '').strip()}"


class GraphQLClient:
    """A small client for the few GraphQL operations the platform needs (httpx, synchronous)."""

    def __init__(
        self,
        url: str = DEFAULT_GRAPHQL_URL,
        *,
        location: str | None = None,
        token: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ):
        self.url = url if url.rstrip("/").endswith("/graphql") else url.rstrip("/") + "/graphql"
        self.location = location
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            headers={"Content-Type": "application/json", CSRF_HEADER: "dp", **auth, **(headers or {})},
            timeout=timeout,
            transport=transport,
        )
        self._locations: dict[str, str] = {}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._client.post(self.url, json={"query": query, "variables": dict(variables or {})})
        except httpx.HTTPError as exc:
            raise LaunchError(
                f"cannot reach the Dagster webserver at {self.url} ({type(exc).__name__}: {exc}); "
                "is it running? (--url or DP_DAGSTER_GRAPHQL_URL)"
            ) from exc
        if response.status_code != 200:
            raise LaunchError(
                f"the Dagster webserver at {self.url} answered HTTP {response.status_code}: {response.text[:300]}"
            )
        body = response.json()
        if body.get("errors"):
            messages = "; ".join(str(e.get("message")) for e in body["errors"])
            raise LaunchError(f"GraphQL error from {self.url}: {messages}")
        return body["data"]

    def location_of(self, job_name: str) -> str:
        """The code location that holds ``job_name`` (the flow id), asked once and remembered."""
        if self.location:
            return self.location
        if job_name not in self._locations:
            data = self.execute(JOB_LOCATIONS)["repositoriesOrError"]
            if data["__typename"] != "RepositoryConnection":
                raise LaunchError(f"cannot list code locations: {data.get('message')}")
            for repo in data["nodes"]:
                for job in repo["jobs"]:
                    self._locations.setdefault(job["name"], repo["location"]["name"])
        if job_name not in self._locations:
            raise LaunchError(
                f"no flow '{job_name}' in any code location of {self.url}; check the flow id "
                "(`dp list`) and that the code location loaded it (the dp_platform/flow_load_report asset)"
            )
        return self._locations[job_name]

    def launch_run(
        self,
        flow_id: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        partition: str | None = None,
    ) -> str:
        """Launch one run of ``flow_id`` with ``params``; returns the run id. ``partition``: that
        partition of a partitioned flow, whose job takes the params per step (Dagster refuses a
        config mapping on a partitioned job), so they are given to each of its steps."""
        run_config: Mapping[str, Any] = dict(params or {})
        if partition is not None:
            steps = self._steps_of_partitioned_job(flow_id, partition)
            run_config = {"ops": {step: {"config": {"params": dict(run_config)}} for step in steps}}
            tags = {**(tags or {}), PARTITION_TAG: partition}
        variables = {
            "executionParams": {
                "selector": {
                    "repositoryLocationName": self.location_of(flow_id),
                    "repositoryName": REPOSITORY_NAME,
                    "jobName": flow_id,
                },
                "runConfigData": run_config,
                "executionMetadata": {"tags": [{"key": k, "value": str(v)} for k, v in (tags or {}).items()]},
            }
        }
        result = self.execute(LAUNCH_RUN, variables)["launchRun"]
        kind = result["__typename"]
        if kind == "LaunchRunSuccess":
            return result["run"]["runId"]
        if kind == "RunConfigValidationInvalid":
            raise RunConfigRejected(flow_id, result.get("errors") or [])
        if kind == "PipelineNotFoundError":
            self._locations.pop(flow_id, None)  # moved to another location? asked again next time
            raise LaunchError(f"no flow '{flow_id}' in the code location: {result.get('message')}")
        if kind == "UnauthorizedError":
            raise LaunchError(f"the webserver refused to launch '{flow_id}' (read-only?): {result.get('message')}")
        if kind == "PythonError":
            raise LaunchError(f"launching '{flow_id}' failed inside Dagster: {result.get('message')}")
        raise LaunchError(f"launching '{flow_id}' failed: {kind}: {result.get('message', '')}")

    def _steps_of_partitioned_job(self, flow_id: str, partition: str) -> list[str]:
        selector = {
            "repositoryLocationName": self.location_of(flow_id),
            "repositoryName": REPOSITORY_NAME,
            "pipelineName": flow_id,
        }
        repository = {"repositoryLocationName": selector["repositoryLocationName"], "repositoryName": REPOSITORY_NAME}
        answer = self.execute(JOB_STEPS, {"selector": selector, "repository": repository, "job": flow_id})
        job = answer["pipelineOrError"]
        if job["__typename"] != "Pipeline":
            raise LaunchError(f"no flow '{flow_id}' in the code location: {job.get('message')}")
        # An unpartitioned job lists no partition keys, as a dynamic one with none added yet
        # does; only a partitioned job has a partition set.
        sets = answer["partitionSetsOrError"]
        unpartitioned = sets["__typename"] == "PartitionSets" and not sets["results"]
        if unpartitioned or job["partitionKeysOrError"]["__typename"] != "PartitionKeys":
            raise PartitionRejected(f"flow '{flow_id}' has no partitions; launch it without a partition")
        problem = unknown_partition(flow_id, job["partitionKeysOrError"]["partitionKeys"], partition)
        if problem is not None:
            raise PartitionRejected(problem)
        return [solid["name"] for solid in job["solids"]]

    def run_status(self, run_id: str) -> str:
        result = self.execute(RUN_STATUS, {"runId": run_id})["runOrError"]
        if result["__typename"] != "Run":
            raise LaunchError(f"run {run_id}: {result.get('message', result['__typename'])}")
        return result["status"]

    def find_run_with_tag(self, key: str, value: str, *, flow_id: str | None = None) -> str | None:
        """The id of a run (of ``flow_id``'s job when given) carrying ``key: value``, newest
        first, or ``None``."""
        run_filter: dict[str, Any] = {"tags": [{"key": key, "value": value}]}
        if flow_id is not None:
            run_filter["pipelineName"] = flow_id
        data = self.execute(RUNS_WITH_TAG, {"filter": run_filter})
        result = data["runsOrError"]
        if result["__typename"] != "Runs":
            raise LaunchError(f"cannot list runs: {result.get('message')}")
        return result["results"][0]["runId"] if result["results"] else None

    def run_failure(self, run_id: str) -> str:
        """Why a finished run failed, from its events: the failed step's error as the platform
        raised it (flow, node, error), else the run's failure message."""
        after, run_message = None, None
        while True:
            result = self.execute(RUN_FAILURES, {"runId": run_id, "after": after})["logsForRun"]
            if result["__typename"] != "EventConnection":
                raise LaunchError(f"run {run_id}: {result.get('message', result['__typename'])}")
            for event in result["events"]:
                if event["__typename"] == "ExecutionStepFailureEvent" and event.get("error"):
                    return step_error_text(event["error"])
                if event["__typename"] == "RunFailureEvent":
                    run_message = event.get("message")
            if not result["hasMore"]:
                return (run_message or "the run failed; its events are in the Dagster UI").strip()
            after = result["cursor"]

    def wait_for_run(self, run_id: str, *, timeout: float = 3600.0, poll: float = 1.0) -> str:
        """Poll until the run has finished; returns SUCCESS, FAILURE or CANCELED."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.run_status(run_id)
            if status in TERMINAL:
                return status
            if time.monotonic() > deadline:
                raise LaunchError(f"run {run_id} is still {status} after {timeout:.0f}s")
            time.sleep(poll)


def step_error_text(error: Mapping[str, Any]) -> str:
    """The message of the platform's node error in a step failure's chain of errors (Dagster
    wraps it in its own), else of the innermost error."""
    chain = [error, *(error.get("causes") or [])]
    chosen = next((e for e in chain if e.get("className") in NODE_ERRORS), chain[-1])
    message = without_class_name((chosen.get("message") or "").strip(), chosen.get("className"))
    return message or "the step failed without a message"


def without_class_name(message: str, class_name: str | None) -> str:
    """Dagster's text of an error starts with its class ("package.module.Class: ..."): said once
    is enough, the platform's message names flow, node and the node's own error."""
    named, sep, rest = message.partition(": ")
    return rest if sep and named.rpartition(".")[2] == class_name else message


def partition_span(keys: list[str]) -> str:
    return f"its partitions run from {keys[0]} to {keys[-1]}" if keys else "it has no partitions yet"


def unknown_partition(flow_id: str, keys: list[str], partition: str) -> str | None:
    """Why ``partition`` cannot run (not one of the flow's ``keys``: Dagster would start the run
    and fail it), or None. `dp launch --partition`, the receiver and `dp run --partition` ask it."""
    if partition in set(keys):
        return None
    return f"flow '{flow_id}' has no partition {shown_key(partition)}; {partition_span(keys)}"


class GraphQLLauncher:
    """``launcher(flow_id, params, tags) -> run_id`` for the webhook receiver.

    Before launching it looks for a run that already carries the request's
    ``dp/idempotency_key``: when an earlier attempt timed out after Dagster had created the run,
    the retry returns that run instead of starting a second one.
    """

    def __init__(
        self,
        url: str = DEFAULT_GRAPHQL_URL,
        *,
        location: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ):
        self.url, self.location, self.token, self.timeout = url, location, token, timeout
        self._client: GraphQLClient | None = None
        self._client_lock = threading.Lock()

    def client(self) -> GraphQLClient:
        """The one client of every launch (thread-safe): its connections to the webserver and
        the flows' code locations are kept, not asked for again at each launch."""
        with self._client_lock:
            if self._client is None:
                self._client = GraphQLClient(self.url, location=self.location, token=self.token, timeout=self.timeout)
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __call__(self, flow_id: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        client = self.client()
        key = tags.get(IDEMPOTENCY_TAG)
        if key:
            # Keys are per flow: another flow's run with the same key is not this launch.
            existing = client.find_run_with_tag(IDEMPOTENCY_TAG, key, flow_id=flow_id)
            if existing:
                return existing
        # A receiver's launch names its partition as Dagster's partition tag (webhook.launches).
        partition = tags.get(PARTITION_TAG)
        others = {name: value for name, value in tags.items() if name != PARTITION_TAG}
        return client.launch_run(flow_id, params, others, partition=partition)
