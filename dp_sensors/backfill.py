"""Backfills of a partitioned flow through Dagster's GraphQL API, as the UI's backfill dialog
launches them: ``launchPartitionBackfill`` over the flow's assets (an asset backfill, run by the
daemon's backfill loop as one run over the range or a run per partition, as each asset's
``BackfillPolicy`` says), then ``partitionBackfillOrError`` for its progress.

Used by ``dp backfill`` (``dp_assets/cli/backfill.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dp_sensors.launch import REPOSITORY_NAME, GraphQLClient, LaunchError

FLOW_ASSETS = """
query FlowAssets($selector: PipelineSelector!) {
  assetNodes(pipeline: $selector) { assetKey { path } isPartitioned }
}
"""

PARTITION_KEYS = """
query PartitionKeys($key: AssetKeyInput!) {
  assetNodeOrError(assetKey: $key) { __typename ... on AssetNode { partitionKeys } }
}
"""

LAUNCH_BACKFILL = """
mutation LaunchBackfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PartitionKeysNotFoundError { message partitionKeys }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on InvalidSubsetError { message }
    ... on RunConflict { message }
  }
}
"""

BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id status numPartitions
      error { message }
      assetBackfillData {
        assetBackfillStatuses {
          __typename
          ... on AssetPartitionsStatusCounts {
            assetKey { path }
            numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized numPartitionsFailed
          }
        }
      }
      runs(limit: 1000) { runId status }
    }
    ... on BackfillNotFoundError { message }
    ... on PythonError { message }
  }
}
"""

#: The backfill will not change any more (Dagster's ``BulkActionStatus``).
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


@dataclass(frozen=True)
class BackfillProgress:
    """Where a backfill stands: partitions counted over the flow's assets (a partition of one
    asset is one unit, so a 3-node flow over 4 days has 12)."""

    backfill_id: str
    status: str
    targeted: int
    materialized: int
    failed: int
    in_progress: int
    runs: Mapping[str, str]  # run id -> status
    error: str | None = None

    @property
    def done(self) -> int:
        return self.materialized + self.failed

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def succeeded(self) -> bool:
        return self.status in {"COMPLETED", "COMPLETED_SUCCESS"} and self.failed == 0 and not self.error


def flow_asset_keys(client: GraphQLClient, flow_id: str) -> list[list[str]]:
    """The partitioned asset keys of the flow's job; refuses a flow without partitions."""
    selector = {
        "repositoryLocationName": client.location_of(flow_id),
        "repositoryName": REPOSITORY_NAME,
        "pipelineName": flow_id,
    }
    nodes = client.execute(FLOW_ASSETS, {"selector": selector})["assetNodes"]
    keys = [node["assetKey"]["path"] for node in nodes if node["isPartitioned"]]
    if not keys:
        raise LaunchError(f"flow '{flow_id}' has no partitions (add 'partitions:' to its spec); launch it instead")
    return keys


def launch_backfill(
    client: GraphQLClient,
    flow_id: str,
    *,
    start: str | None = None,
    end: str | None = None,
    partitions: Sequence[str] = (),
    tags: Mapping[str, str] | None = None,
) -> str:
    """Launch a backfill of every node of ``flow_id`` over ``start``..``end`` (partition keys,
    both included) or over the keys ``partitions``; returns the backfill id."""
    if bool(partitions) == (start is not None or end is not None):
        raise LaunchError("give a range (--from and --to) or partition keys (--partition), not both")
    if not partitions and (start is None or end is None):
        raise LaunchError("a range needs both --from and --to (partition keys, both included)")
    keys = flow_asset_keys(client, flow_id)
    _check_keys(
        client, flow_id, keys[0], [start, end] if start is not None else list(partitions), ranged=start is not None
    )
    params: dict[str, Any] = {
        "tags": [{"key": k, "value": str(v)} for k, v in (tags or {}).items()],
        "title": f"{flow_id}: " + (f"{start} to {end}" if start is not None else ", ".join(partitions)),
    }
    if partitions:
        params["assetSelection"] = [{"path": key} for key in keys]
        params["partitionNames"] = list(partitions)
    else:
        params["partitionsByAssets"] = [
            {"assetKey": {"path": key}, "partitions": {"range": {"start": start, "end": end}}} for key in keys
        ]
    result = client.execute(LAUNCH_BACKFILL, {"params": params})["launchPartitionBackfill"]
    if result["__typename"] == "LaunchBackfillSuccess":
        return str(result["backfillId"])
    if result["__typename"] == "PartitionKeysNotFoundError":
        missing = ", ".join(result.get("partitionKeys") or [])
        raise LaunchError(f"flow '{flow_id}' has no partition(s) {missing} (`dp backfill --help`)")
    raise LaunchError(f"the backfill of '{flow_id}' was refused: {result['__typename']}: {result.get('message', '')}")


def _check_keys(
    client: GraphQLClient, flow_id: str, asset_key: list[str], wanted: list[Any], *, ranged: bool = False
) -> None:
    """Refuse keys the flow does not have, naming them (Dagster answers them with a crash), and a
    range whose first key comes after its last (Dagster accepts it, then the daemon's backfill
    fails on an internal invariant with no run requested)."""
    found = client.execute(PARTITION_KEYS, {"key": {"path": asset_key}})["assetNodeOrError"]
    known = found.get("partitionKeys") or []
    missing = [key for key in dict.fromkeys(wanted) if key not in set(known)]
    if missing:
        span = f"its partitions run from {known[0]} to {known[-1]}" if known else "it has no partitions yet"
        raise LaunchError(f"flow '{flow_id}' has no partition {', '.join(map(repr, missing))}; {span}")
    if ranged and known.index(wanted[0]) > known.index(wanted[1]):
        raise LaunchError(
            f"flow '{flow_id}': the range starts at {wanted[0]!r}, after its end {wanted[1]!r}; "
            "give the earlier key to --from and the later one to --to"
        )


def backfill_progress(client: GraphQLClient, backfill_id: str) -> BackfillProgress:
    found = client.execute(BACKFILL_STATUS, {"id": backfill_id})["partitionBackfillOrError"]
    if found["__typename"] != "PartitionBackfill":
        raise LaunchError(f"backfill {backfill_id}: {found.get('message', found['__typename'])}")
    counts = [
        s
        for s in ((found.get("assetBackfillData") or {}).get("assetBackfillStatuses") or [])
        if s["__typename"] == "AssetPartitionsStatusCounts"
    ]
    return BackfillProgress(
        backfill_id=backfill_id,
        status=found["status"],
        targeted=sum(c["numPartitionsTargeted"] for c in counts),
        materialized=sum(c["numPartitionsMaterialized"] for c in counts),
        failed=sum(c["numPartitionsFailed"] for c in counts),
        in_progress=sum(c["numPartitionsInProgress"] for c in counts),
        runs={run["runId"]: run["status"] for run in found.get("runs") or []},
        error=(found.get("error") or {}).get("message"),
    )


def wait_for_backfill(
    client: GraphQLClient,
    backfill_id: str,
    *,
    timeout: float = 3600.0,
    poll: float = 1.0,
    on_progress: Callable[[BackfillProgress], None] | None = None,
) -> BackfillProgress:
    """Poll until the backfill is finished; ``on_progress`` sees each answer."""
    deadline = time.monotonic() + timeout
    while True:
        progress = backfill_progress(client, backfill_id)
        if on_progress is not None:
            on_progress(progress)
        if progress.finished:
            return progress
        if time.monotonic() > deadline:
            raise LaunchError(
                f"backfill {backfill_id} is still {progress.status} after {timeout:.0f}s "
                f"({progress.done}/{progress.targeted} partitions); is the daemon running?"
            )
        time.sleep(poll)


ADD_DYNAMIC_PARTITION = """
mutation AddPartition($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename
    ... on DuplicateDynamicPartitionError { partitionName }
    ... on UnauthorizedError { message }
    ... on PythonError { message }
  }
}
"""


def add_dynamic_partition(client: GraphQLClient, flow_id: str, key: str) -> bool:
    """Add ``key`` to the dynamic partitions of ``flow_id`` (named after the flow); False when it
    was there already."""
    selector = {"repositoryLocationName": client.location_of(flow_id), "repositoryName": REPOSITORY_NAME}
    variables = {"selector": selector, "name": flow_id, "key": key}
    result = client.execute(ADD_DYNAMIC_PARTITION, variables)["addDynamicPartition"]
    kind = result["__typename"]
    if kind == "AddDynamicPartitionSuccess":
        return True
    if kind == "DuplicateDynamicPartitionError":
        return False
    raise LaunchError(f"adding partition {key!r} to '{flow_id}' failed: {kind}: {result.get('message', '')}")
