"""What an invoked flow answers: its result nodes' kept outputs, read back as JSON rows.

The result nodes of a flow are the nodes its spec marks ``result: true``; when none is marked,
its ``DisplayResults`` nodes; when it has none, the nodes no other node reads (its ends). Their
values are read from the run's kept outputs (``dp_io``), so the answer is exactly what the run
materialised and what ``dp runs read`` shows, and the run worker never has to send anything back.

:class:`PlatformInvokeBackend` is the :class:`dp_sensors.webhook.invoke.InvokeBackend` of the
receiver and of ``dp invoke``: run states and failures through Dagster's GraphQL API, results
from the flow store's spec and the kept outputs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from dp_sensors.launch import RUN_STATES, RUN_STATUS, GraphQLClient, LaunchError
from dp_sensors.triggers.policy import FLOW_VERSION_TAG
from dp_sensors.webhook.launches import PARTITION_TAG
from dp_sensors.webhook.run_watch import RunState

DISPLAY_NODE = "DisplayResults"


def _upstream_ids(inputs: Any) -> list[str]:
    values = inputs.values() if isinstance(inputs, Mapping) else inputs or []
    return [str(value).split(".", 1)[0] for value in values]


def result_nodes(spec: Mapping[str, Any]) -> list[str]:
    """The ids of the nodes whose outputs make up the flow's answer (see the module docstring)."""
    nodes = [node for node in spec.get("nodes") or [] if isinstance(node, Mapping) and "id" in node]
    marked = [node["id"] for node in nodes if node.get("result") is True]
    if marked:
        return marked
    shown = [node["id"] for node in nodes if node.get("type") == DISPLAY_NODE]
    if shown:
        return shown
    read = {upstream for node in nodes for upstream in _upstream_ids(node.get("inputs"))}
    return [node["id"] for node in nodes if node["id"] not in read]


def _plain(value: Any) -> Any:
    """A JSON value; what JSON cannot hold (objects, NaN inside a structure) as its text."""
    try:
        return json.loads(json.dumps(value, default=str, allow_nan=False))
    except ValueError:
        return str(value)


def value_as_json(value: Any, max_rows: int) -> dict[str, Any]:
    """A node's output for the answer: a frame as its first ``max_rows`` rows (records, dates as
    ISO text, missing values as null), anything else as ``value``."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        head = value.head(max_rows)
        rows = json.loads(head.to_json(orient="records", date_format="iso", default_handler=str) or "[]")
        return {
            "columns": [str(column) for column in value.columns],
            "rows": rows,
            "row_count": len(value),
            "truncated": len(value) > max_rows,
        }
    if isinstance(value, float) and not math.isfinite(value):
        return {"value": None}
    return {"value": _plain(value)}


def read_flow_result(
    spec: Mapping[str, Any],
    flow_id: str,
    run_id: str,
    *,
    outputs_base: str,
    max_rows: int,
    partition: str | None = None,
) -> dict[str, Any]:
    """node id -> its output as JSON, or ``{"error": ...}`` when the run kept none for it (a node
    that failed with ``on_error: continue``, or outputs pruned since); a run of one partition
    kept its outputs under that ``partition``."""
    from dp_io.errors import DpIOError
    from dp_io.retention import read_output

    result: dict[str, Any] = {}
    for node_id in result_nodes(spec):
        try:
            value = read_output(run_id, node_id, flow_id, partition=partition, base=outputs_base)
        except (DpIOError, ValueError) as exc:
            result[node_id] = {"error": str(exc)}
            continue
        result[node_id] = value_as_json(value, max_rows)
    return result


class PlatformInvokeBackend:
    """Runs through GraphQL (``client``), results from ``store`` and the outputs at ``outputs_base``."""

    def __init__(
        self, store: Any, client: GraphQLClient, *, outputs_base: str, max_rows: int, ui_url: str | None
    ) -> None:
        self.store, self.client = store, client
        self.outputs_base, self.max_rows = outputs_base, max_rows
        self.ui_url = ui_url.rstrip("/") if ui_url else None

    def run_state(self, run_id: str) -> RunState | None:
        found = self.client.execute(RUN_STATUS, {"runId": run_id})["runOrError"]
        if found["__typename"] == "RunNotFoundError":
            return None
        if found["__typename"] != "Run":
            raise LaunchError(f"run {run_id}: {found.get('message', found['__typename'])}")
        return _state(found)

    def run_states(self, run_ids: Sequence[str]) -> dict[str, RunState]:
        found = self.client.execute(RUN_STATES, {"filter": {"runIds": list(run_ids)}})["runsOrError"]
        if found["__typename"] != "Runs":
            raise LaunchError(f"cannot read the runs' states: {found.get('message', found['__typename'])}")
        return {run["runId"]: _state(run) for run in found["results"]}

    def run_failure(self, run_id: str) -> str:
        return self.client.run_failure(run_id)

    def read_result(self, state: RunState) -> dict[str, Any]:
        from dp_resources.store import FlowNotFound

        try:  # the version the run ran: a flow published again since may name other result nodes
            _, spec = self.store.get(state.flow_id, state.flow_version)
        except FlowNotFound:
            return {}
        return read_flow_result(
            spec,
            state.flow_id,
            state.run_id,
            outputs_base=self.outputs_base,
            max_rows=self.max_rows,
            partition=state.partition,
        )

    def run_url(self, run_id: str) -> str | None:
        return f"{self.ui_url}/runs/{run_id}" if self.ui_url else None


def _state(run: Mapping[str, Any]) -> RunState:
    """A run of Dagster's GraphQL API (``runId``, ``status``, ``jobName``, ``tags``) as a RunState."""
    tags = {tag["key"]: tag["value"] for tag in run.get("tags") or []}
    return RunState(
        run_id=run["runId"],
        flow_id=run["jobName"],
        status=run["status"],
        flow_version=tags.get(FLOW_VERSION_TAG),
        partition=tags.get(PARTITION_TAG),
    )


def ui_url_of(webserver_url: str | None, graphql_url: str) -> str:
    """The Dagster UI's base: ``DP_WEBSERVER_URL``, else the GraphQL endpoint without ``/graphql``."""
    if webserver_url:
        return webserver_url
    base = graphql_url.rstrip("/")
    return base[: -len("/graphql")] if base.endswith("/graphql") else base
