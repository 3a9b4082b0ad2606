"""S5: a ``dagster-webserver --read-only`` viewer refuses every mutation, and nothing changes.

The writable webserver (same instance) first creates something for each mutation to aim at: a
finished run, a running schedule and sensor, a dynamic partition, a backfill, a concurrency
limit and a materialisation. Then every mutation of the GraphQL schema is sent to the viewer; each
must come back unauthorised and leave the instance exactly as it was. A completeness test fails
when a Dagster upgrade adds a mutation that this table does not cover.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from conftest import LOCATION_NAME, Webserver
from dagster import AssetCheckKey, AssetKey, DagsterInstance
from dagster._core.execution.backfill import BulkActionStatus

pytestmark = pytest.mark.e2e

REPO = {"repositoryLocationName": LOCATION_NAME, "repositoryName": "__repository__"}
JOB = {**REPO, "jobName": "hello_job"}
SCHEDULE = {**REPO, "scheduleName": "hello_schedule"}
SENSOR = {**REPO, "sensorName": "hello_sensor"}
RESULT = "__typename ... on UnauthorizedError { message } ... on PythonError { message }"
TERMINATE = f"{RESULT} ... on TerminateRunFailure {{ message }}"

#: Mutations a viewer may send: they touch no run, asset, schedule or sensor.
HARMLESS = {
    "logTelemetry": "UI usage telemetry; a no-op with telemetry disabled",
    "setNuxSeen": "marks the UI's first-run dialog as seen (a flag file)",
}

#: name -> (document, variables from the targets)
MUTATIONS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "launchRun": (
        f"mutation($p: ExecutionParams!) {{ launchRun(executionParams: $p) {{ {RESULT} }} }}",
        lambda t: {"p": {"selector": JOB, "runConfigData": {}}},
    ),
    "launchPipelineExecution": (
        (f"mutation($p: ExecutionParams!) {{ launchPipelineExecution(executionParams: $p) {{ {RESULT} }} }}"),
        lambda t: {"p": {"selector": JOB, "runConfigData": {}}},
    ),
    "launchMultipleRuns": (
        (
            "mutation($p: [ExecutionParams!]!) { launchMultipleRuns(executionParamsList: $p) { "
            f"__typename ... on LaunchMultipleRunsResult {{ launchMultipleRunsResult {{ {RESULT} }} }} }} }}"
        ),
        lambda t: {"p": [{"selector": JOB, "runConfigData": {}}]},
    ),
    "launchRunReexecution": (
        (f"mutation($r: ReexecutionParams) {{ launchRunReexecution(reexecutionParams: $r) {{ {RESULT} }} }}"),
        lambda t: {"r": {"parentRunId": t["run_id"], "strategy": "ALL_STEPS"}},
    ),
    "launchPipelineReexecution": (
        (f"mutation($r: ReexecutionParams) {{ launchPipelineReexecution(reexecutionParams: $r) {{ {RESULT} }} }}"),
        lambda t: {"r": {"parentRunId": t["run_id"], "strategy": "ALL_STEPS"}},
    ),
    "startSchedule": (
        f"mutation($s: ScheduleSelector!) {{ startSchedule(scheduleSelector: $s) {{ {RESULT} }} }}",
        lambda t: {"s": SCHEDULE},
    ),
    "stopRunningSchedule": (
        (
            "mutation($id: String, $sel: String) { stopRunningSchedule(id: $id, "
            f"scheduleSelectorId: $sel) {{ {RESULT} }} }}"
        ),
        lambda t: {"id": t["schedule_id"], "sel": t["schedule_selector_id"]},
    ),
    "resetSchedule": (
        f"mutation($s: ScheduleSelector!) {{ resetSchedule(scheduleSelector: $s) {{ {RESULT} }} }}",
        lambda t: {"s": SCHEDULE},
    ),
    "scheduleDryRun": (
        (f"mutation($s: ScheduleSelector!) {{ scheduleDryRun(selectorData: $s, timestamp: 0) {{ {RESULT} }} }}"),
        lambda t: {"s": SCHEDULE},
    ),
    "startSensor": (
        f"mutation($s: SensorSelector!) {{ startSensor(sensorSelector: $s) {{ {RESULT} }} }}",
        lambda t: {"s": SENSOR},
    ),
    "stopSensor": (
        (f"mutation($id: String, $sel: String) {{ stopSensor(id: $id, jobSelectorId: $sel) {{ {RESULT} }} }}"),
        lambda t: {"id": t["sensor_id"], "sel": t["sensor_selector_id"]},
    ),
    "resetSensor": (
        f"mutation($s: SensorSelector!) {{ resetSensor(sensorSelector: $s) {{ {RESULT} }} }}",
        lambda t: {"s": SENSOR},
    ),
    "setSensorCursor": (
        (f'mutation($s: SensorSelector!) {{ setSensorCursor(sensorSelector: $s, cursor: "x") {{ {RESULT} }} }}'),
        lambda t: {"s": SENSOR},
    ),
    "sensorDryRun": (
        (f'mutation($s: SensorSelector!) {{ sensorDryRun(selectorData: $s, cursor: "") {{ {RESULT} }} }}'),
        lambda t: {"s": SENSOR},
    ),
    "terminateRun": (
        f"mutation($id: String!) {{ terminateRun(runId: $id) {{ {TERMINATE} }} }}",
        lambda t: {"id": t["run_id"]},
    ),
    "terminatePipelineExecution": (
        f"mutation($id: String!) {{ terminatePipelineExecution(runId: $id) {{ {TERMINATE} }} }}",
        lambda t: {"id": t["run_id"]},
    ),
    "terminateRuns": (
        (
            "mutation($ids: [String!]!) { terminateRuns(runIds: $ids) { __typename "
            f"... on TerminateRunsResult {{ terminateRunResults {{ {TERMINATE} }} }} }} }}"
        ),
        lambda t: {"ids": [t["run_id"]]},
    ),
    "deleteRun": (
        f"mutation($id: String!) {{ deleteRun(runId: $id) {{ {RESULT} }} }}",
        lambda t: {"id": t["run_id"]},
    ),
    "deletePipelineRun": (
        f"mutation($id: String!) {{ deletePipelineRun(runId: $id) {{ {RESULT} }} }}",
        lambda t: {"id": t["run_id"]},
    ),
    "reloadRepositoryLocation": (
        (f"mutation($n: String!) {{ reloadRepositoryLocation(repositoryLocationName: $n) {{ {RESULT} }} }}"),
        lambda t: {"n": LOCATION_NAME},
    ),
    "reloadWorkspace": (f"mutation {{ reloadWorkspace {{ {RESULT} }} }}", lambda t: {}),
    "shutdownRepositoryLocation": (
        (f"mutation($n: String!) {{ shutdownRepositoryLocation(repositoryLocationName: $n) {{ {RESULT} }} }}"),
        lambda t: {"n": LOCATION_NAME},
    ),
    "wipeAssets": (
        (f"mutation($r: [PartitionsByAssetSelector!]!) {{ wipeAssets(assetPartitionRanges: $r) {{ {RESULT} }} }}"),
        lambda t: {"r": [{"assetKey": {"path": ["canary"]}}]},
    ),
    "reportRunlessAssetEvents": (
        (
            "mutation($p: ReportRunlessAssetEventsParams!) { reportRunlessAssetEvents(eventParams: "
            f"$p) {{ {RESULT} }} }}"
        ),
        lambda t: {"p": {"eventType": "ASSET_MATERIALIZATION", "assetKey": {"path": ["canary"]}}},
    ),
    "reportAssetCheckEvaluations": (
        (
            "mutation($p: ReportAssetCheckEvaluationsParams!) { reportAssetCheckEvaluations("
            f"eventParams: $p) {{ {RESULT} }} }}"
        ),
        lambda t: {"p": {"assetKey": {"path": ["canary"]}, "checkName": "canary_positive", "passed": False}},
    ),
    "launchPartitionBackfill": (
        (f"mutation($p: LaunchBackfillParams!) {{ launchPartitionBackfill(backfillParams: $p) {{ {RESULT} }} }}"),
        lambda t: {"p": {"assetSelection": [{"path": ["per_thing"]}], "partitionNames": ["a"]}},
    ),
    "resumePartitionBackfill": (
        f"mutation($id: String!) {{ resumePartitionBackfill(backfillId: $id) {{ {RESULT} }} }}",
        lambda t: {"id": t["backfill_id"]},
    ),
    "reexecutePartitionBackfill": (
        (f"mutation($r: ReexecutionParams) {{ reexecutePartitionBackfill(reexecutionParams: $r) {{ {RESULT} }} }}"),
        lambda t: {"r": {"parentRunId": t["finished_backfill_id"], "strategy": "ALL_STEPS"}},
    ),
    "cancelPartitionBackfill": (
        f"mutation($id: String!) {{ cancelPartitionBackfill(backfillId: $id) {{ {RESULT} }} }}",
        lambda t: {"id": t["backfill_id"]},
    ),
    "addDynamicPartition": (
        (
            'mutation($r: RepositorySelector!) { addDynamicPartition(partitionKey: "b", '
            f'partitionsDefName: "things", repositorySelector: $r) {{ {RESULT} }} }}'
        ),
        lambda t: {"r": REPO},
    ),
    "deleteDynamicPartitions": (
        (
            'mutation($r: RepositorySelector!) { deleteDynamicPartitions(partitionKeys: ["a"], '
            f'partitionsDefName: "things", repositorySelector: $r) {{ {RESULT} }} }}'
        ),
        lambda t: {"r": REPO},
    ),
    "setAppManagedComponent": (
        (
            'mutation { setAppManagedComponent(attributes: "{}", componentId: "c", '
            f'componentType: "t", locationName: "{LOCATION_NAME}") {{ __typename }} }}'
        ),
        lambda t: {},
    ),
    "deleteAppManagedComponent": (
        (
            'mutation { deleteAppManagedComponent(componentId: "c", '
            f'locationName: "{LOCATION_NAME}") {{ __typename }} }}'
        ),
        lambda t: {},
    ),
    "refreshComponentState": (
        (f'mutation {{ refreshComponentState(defsStateKey: "k", locationName: "{LOCATION_NAME}") {{ __typename }} }}'),
        lambda t: {},
    ),
    "setAutoMaterializePaused": (
        "mutation { setAutoMaterializePaused(paused: true) }",
        lambda t: {},
    ),
    "setConcurrencyLimit": (
        'mutation { setConcurrencyLimit(concurrencyKey: "k", limit: 99) }',
        lambda t: {},
    ),
    "deleteConcurrencyLimit": (
        'mutation { deleteConcurrencyLimit(concurrencyKey: "k") }',
        lambda t: {},
    ),
    "freeConcurrencySlotsForRun": (
        "mutation($id: String!) { freeConcurrencySlotsForRun(runId: $id) }",
        lambda t: {"id": t["run_id"]},
    ),
    "freeConcurrencySlots": (
        "mutation($id: String!) { freeConcurrencySlots(runId: $id) }",
        lambda t: {"id": t["run_id"]},
    ),
}


def _ok(data: dict) -> dict:
    assert not data.get("errors"), json.dumps(data)[:2000]
    return data["data"]


@pytest.fixture(scope="module")
def targets(webserver: Webserver) -> dict[str, Any]:
    """Real objects for the viewer's mutations to aim at, made through the writable server.

    No daemon runs here, so the run stays QUEUED: a real run that terminate/delete aim at.
    """
    launched = _ok(
        webserver.graphql(
            "mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { "
            "__typename ... on LaunchRunSuccess { run { runId } } } }",
            {"p": {"selector": JOB}},
        )
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    add = MUTATIONS["addDynamicPartition"][0].replace('partitionKey: "b"', 'partitionKey: "a"')
    assert _ok(webserver.graphql(add, {"r": REPO}))["addDynamicPartition"]["__typename"] == (
        "AddDynamicPartitionSuccess"
    )
    backfill, finished = (_launch_backfill(webserver) for _ in range(2))
    # No daemon runs here: finish the second backfill by hand so it can be re-executed.
    with DagsterInstance.from_config(str(webserver.home)) as instance:
        record = instance.get_backfill(finished)
        instance.update_backfill(record.with_status(BulkActionStatus.COMPLETED_SUCCESS))
    for name in ("startSchedule", "startSensor"):
        document, variables = MUTATIONS[name]
        _ok(webserver.graphql(document, variables({})))
    _ok(webserver.graphql(MUTATIONS["setConcurrencyLimit"][0].replace("99", "3")))
    _ok(webserver.graphql(*_mutation("reportRunlessAssetEvents", {})))

    states = _ok(
        webserver.graphql(
            "query($s: ScheduleSelector!, $n: SensorSelector!) { "
            "scheduleOrError(scheduleSelector: $s) { ... on Schedule { scheduleState { id "
            "selectorId status } } } "
            "sensorOrError(sensorSelector: $n) { ... on Sensor { sensorState { id selectorId "
            "status } } } }",
            {"s": SCHEDULE, "n": SENSOR},
        )
    )
    schedule = states["scheduleOrError"]["scheduleState"]
    sensor = states["sensorOrError"]["sensorState"]
    assert schedule["status"] == sensor["status"] == "RUNNING"
    return {
        "run_id": run_id,
        "backfill_id": backfill,
        "finished_backfill_id": finished,
        "schedule_id": schedule["id"],
        "schedule_selector_id": schedule["selectorId"],
        "sensor_id": sensor["id"],
        "sensor_selector_id": sensor["selectorId"],
    }


def _launch_backfill(webserver: Webserver) -> str:
    backfill = _ok(
        webserver.graphql(
            "mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) "
            "{ __typename ... on LaunchBackfillSuccess { backfillId } } }",
            MUTATIONS["launchPartitionBackfill"][1]({}),
        )
    )["launchPartitionBackfill"]
    assert backfill["__typename"] == "LaunchBackfillSuccess", backfill
    return backfill["backfillId"]


def _mutation(name: str, targets: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    document, variables = MUTATIONS[name]
    return document, variables(targets)


def instance_state(home) -> dict[str, Any]:
    """Everything a mutation could change, read from the instance itself (not via GraphQL)."""
    from dagster._daemon.asset_daemon import get_auto_materialize_paused

    with DagsterInstance.from_config(str(home)) as instance:
        return {
            "runs": sorted((r.run_id, r.status.value) for r in instance.get_runs()),
            "canary_materializations": len(instance.fetch_materializations(AssetKey("canary"), limit=1000).records),
            "canary_check_executions": len(
                instance.event_log_storage.get_asset_check_execution_history(
                    AssetCheckKey(AssetKey("canary"), "canary_positive"), limit=1000
                )
            ),
            "partitions": sorted(instance.get_dynamic_partitions("things")),
            "instigators": sorted(
                (s.name, s.status.value, s.instigator_data and repr(s.instigator_data))
                for s in instance.all_instigator_state()
            ),
            "backfills": sorted((b.backfill_id, b.status.value) for b in instance.get_backfills()),
            "concurrency": sorted(
                (k, instance.event_log_storage.get_concurrency_info(k).slot_count)
                for k in instance.event_log_storage.get_concurrency_keys()
            ),
            "auto_materialize_paused": get_auto_materialize_paused(instance),
        }


def is_unauthorized(response: dict[str, Any]) -> bool:
    """An unauthorised result: ``UnauthorizedError``, the GraphQL error a Boolean mutation turns
    it into, or the ``TerminateRunFailure`` that terminate returns for a run it may not touch."""
    text = json.dumps(response)
    return "UnauthorizedError" in text or "You do not have permission" in text


@pytest.mark.parametrize("name", sorted(MUTATIONS), ids=lambda n: f"S5-{n}")
def test_viewer_refuses_mutation(name: str, readonly_webserver: Webserver, targets: dict[str, Any]) -> None:
    """S5: the mutation comes back unauthorised and the instance is unchanged."""
    before = instance_state(readonly_webserver.home)
    document, variables = _mutation(name, targets)
    response = httpx.post(
        f"{readonly_webserver.url}/graphql",
        json={"query": document, "variables": variables},
        timeout=60,
    ).json()
    assert is_unauthorized(response), json.dumps(response)[:2000]
    assert instance_state(readonly_webserver.home) == before


@pytest.mark.parametrize("path", ["report_asset_materialization", "report_asset_observation", "report_asset_check"])
def test_viewer_refuses_rest_reports_S5(path: str, readonly_webserver: Webserver, targets: dict[str, Any]) -> None:
    """S5: the REST endpoints that record asset events are refused by the viewer too."""
    before = instance_state(readonly_webserver.home)
    response = httpx.post(
        f"{readonly_webserver.url}/{path}/canary",
        json={"check_name": "canary_positive", "passed": False},
        timeout=30,
    )
    assert response.status_code in (401, 403), response.text
    assert instance_state(readonly_webserver.home) == before


def test_every_mutation_is_covered_S5(readonly_webserver: Webserver) -> None:
    """S5 completeness: each mutation of the served schema is in the table or declared harmless."""
    data = _ok(readonly_webserver.graphql("{ __schema { mutationType { fields { name } } } }"))
    served = {field["name"] for field in data["__schema"]["mutationType"]["fields"]}
    assert served - set(MUTATIONS) - set(HARMLESS) == set()
    assert set(MUTATIONS) - served == set(), "the table names mutations the schema lost"
