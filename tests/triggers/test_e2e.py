"""End to end with real ``dagster-webserver`` and ``dagster-daemon`` processes on a SQLite
instance in tmp: a webhook POST becomes an event and the sensor starts exactly one run (a
duplicate delivery starts none), a chain of three flows runs in order for one task id with its
status readable through ``dp status``, ``dp launch`` against the real webserver (wrong param
types: a clear error and no run), idempotent launches through the receiver (E2), node plus run
retries under the real daemon (E8) and, last, the daemon killed with ``kill -9`` in the middle
of a sensor tick (F3, E1). One platform serves all of them: starting one costs tens of seconds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import httpx
import pytest
from click.testing import CliRunner
from triggers_procs import Platform, sensor_cursor
from triggers_support import STATIC, write_flows

from dp_assets.cli import main as dp
from dp_assets.receiver import receiver_app
from dp_resources.store import FlowStore
from dp_sensors.events.sql import SqlEventBus
from dp_sensors.launch import GraphQLClient, GraphQLLauncher
from dp_sensors.webhook import LaunchLedger, serve_in_thread
from tests.support.processes import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

TOKEN = "e2e-token"
MISSING = {"id": "src", "type": "FileInput", "params": {"path": "missing.csv"}}
FLOWS = [
    {
        "id": "hooked",
        "params": {"region": {"type": "string", "required": True}, "n": {"type": "integer", "default": 1}},
        "triggers": [{"type": "event", "topics": ["webhook.hooked"]}],
        "nodes": [STATIC],
    },
    {"id": "chain_a", "params": {"region": {"type": "string", "default": "EU"}}, "nodes": [STATIC]},
    {"id": "chain_b", "triggers": [{"type": "flow", "flow": "chain_a"}], "nodes": [STATIC]},
    {"id": "chain_c", "triggers": [{"type": "flow", "flow": "chain_b"}], "nodes": [STATIC]},
    {"id": "launched", "params": {"region": {"type": "string", "required": True}}, "nodes": [STATIC]},
    {
        "id": "fan",
        "nodes": [
            {"id": "rows", "type": "StaticData", "params": {"rows": [{"s": "1"}, {"s": "x"}, {"s": "3"}]}},
            {
                "id": "each",
                "type": "ForEach",
                "inputs": ["rows"],
                "params": {
                    "body": [
                        {"id": "num", "type": "AddModifyColumn", "params": {"column": "n", "expression": "int(s)"}}
                    ]
                },
            },
        ],
    },
    {"id": "e8_nodes", "policies": {"run_retries": 2}, "nodes": [{**MISSING, "retry": {"max_retries": 1, "delay": 0}}]},
    {"id": "e8_runs", "policies": {"run_retries": 1}, "nodes": [MISSING]},
    {
        "id": "fanin",
        "params": {"n": {"type": "integer", "required": True}},
        "triggers": [{"type": "event", "topics": ["load.*"]}],
        "nodes": [STATIC],
    },
]
HELD = ("fanin",)  # its runs stay queued: F3 counts what the sensor asked for
RUN_BOUND = 240.0


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("e2e")
    platform = Platform(root=root, flows=write_flows(root / "flows", *FLOWS), held_flows=HELD)
    try:
        platform.start_webserver()
        platform.start_daemon()
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def instance(platform) -> Iterator[dg.DagsterInstance]:
    with platform.instance() as inst:
        yield inst


@pytest.fixture(scope="module")
def receiver(platform) -> Iterator[str]:
    """The webhook receiver on loopback, over the platform's store, bus and GraphQL."""
    store = FlowStore(platform.store_url)
    bus = SqlEventBus(platform.store_url)
    bus.ensure_schema()
    ledger = LaunchLedger(platform.store_url)
    ledger.ensure_schema()
    app = receiver_app(
        store, bus, ledger=ledger, launcher=GraphQLLauncher(platform.graphql_url), environ={"DP_WEBHOOK_TOKEN": TOKEN}
    )
    with serve_in_thread(app) as url:
        yield url
    bus.close()
    ledger.close()


def runs_of(instance, job_name, **tags) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(job_name=job_name, tags=tags or None)))


def finished(instance, run_id):
    run = instance.get_run_by_id(run_id)
    return run if run and run.is_finished else None


def dp_cli(platform, *args):
    env = {**platform.env, "DP_DAGSTER_GRAPHQL_URL": platform.graphql_url}
    return CliRunner().invoke(dp, list(args), env=env, catch_exceptions=False)


def _sensor_ticks(instance, name):
    from dagster._core.scheduler.instigation import InstigatorType

    state = next(
        (s for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR) if s.name == name), None
    )
    return instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1000) if state else []


HOOK_HEADERS = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "delivery-1"}
HOOK_BODY = {"region": "EU", "n": 3}


@pytest.fixture(scope="module")
def started(platform, instance, receiver) -> dict[str, str]:
    """Start the slow work at once, so the runs of the tests below execute side by side: a
    webhook delivery, the first flow of the chain (``dp launch`` without waiting) and a flow
    whose run the daemon retries."""
    # A run-status sensor starts watching at its first tick; wait until both have ticked once.
    for name in ("chain_b_after_chain_a_sensor", "chain_c_after_chain_b_sensor"):
        wait_for(
            f"{name} to start",
            lambda name=name: sensor_cursor(instance, name),
            timeout=RUN_BOUND,
            on_timeout=platform.logs,
        )
    hook = httpx.post(f"{receiver}/hooks/hooked", json=HOOK_BODY, headers=HOOK_HEADERS, timeout=30)
    assert hook.status_code == 202, hook.text
    launched = dp_cli(platform, "launch", "chain_a", "--param", "region=US", "--task-id", "task-e2e")
    assert launched.exit_code == 0, launched.output
    with GraphQLClient(platform.graphql_url) as client:
        retried = client.launch_run("e8_runs", {}, {})
        fan = client.launch_run("fan", {}, {"dp/task_id": "task-fan"})
    return {
        "event_id": hook.json()["event_id"],
        "chain_a": json.loads(launched.output)["run_id"],
        "e8_runs": retried,
        "fan": fan,
    }


def test_e2e_E1_webhook_becomes_one_run_and_a_redelivery_none(platform, instance, receiver, started):
    event_id = started["event_id"]
    again = httpx.post(f"{receiver}/hooks/hooked", json=HOOK_BODY, headers=HOOK_HEADERS, timeout=30)
    assert again.status_code == 202 and again.json()["event_id"] == event_id  # redelivery: same event
    assert (
        httpx.post(
            f"{receiver}/hooks/hooked", json={"region": 5}, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        ).status_code
        == 422
    )
    assert httpx.post(f"{receiver}/hooks/chain_a", json={}, headers=HOOK_HEADERS, timeout=30).status_code == 404

    (run,) = wait_for(
        "the event's run",
        lambda: runs_of(instance, "hooked", **{"dp/event_id": event_id}),
        timeout=RUN_BOUND,
        on_timeout=platform.logs,
    )
    done = wait_for(
        "the run to finish", lambda: finished(instance, run.run_id), timeout=RUN_BOUND, on_timeout=platform.logs
    )
    assert done.status == dg.DagsterRunStatus.SUCCESS
    assert done.run_config == {"region": "EU", "n": 3}
    assert done.tags["dagster/run_key"] == event_id

    # A redelivery after the run: the bus returns the same event, so the next tick starts nothing.
    ticks_before = len(_sensor_ticks(instance, "hooked_event_sensor"))
    assert (
        httpx.post(f"{receiver}/hooks/hooked", json=HOOK_BODY, headers=HOOK_HEADERS, timeout=30).json()["event_id"]
        == event_id
    )
    wait_for(
        "another sensor tick",
        lambda: len(_sensor_ticks(instance, "hooked_event_sensor")) > ticks_before,
        timeout=RUN_BOUND,
        on_timeout=platform.logs,
    )
    assert len(runs_of(instance, "hooked")) == 1
    assert sensor_cursor(instance, "hooked_event_sensor") == event_id


def test_e2e_chain_of_three_flows_for_one_task(platform, instance, started):
    first = wait_for(
        "chain_a", lambda: finished(instance, started["chain_a"]), timeout=RUN_BOUND, on_timeout=platform.logs
    )
    assert first.status == dg.DagsterRunStatus.SUCCESS and first.tags["dp/task_id"] == "task-e2e"

    def last_done():
        runs = runs_of(instance, "chain_c", **{"dp/task_id": "task-e2e"})
        return runs and runs[0].is_finished and runs[0]

    wait_for("chain_c for the task", last_done, timeout=RUN_BOUND, on_timeout=platform.logs)
    status = dp_cli(platform, "status", "task-e2e", "--json")
    assert status.exit_code == 0, status.output
    result = json.loads(status.output)
    assert result["state"] == "succeeded" and result["waiting_for"] == []
    runs = result["runs"]
    assert [r["flow_id"] for r in runs] == ["chain_a", "chain_b", "chain_c"]
    assert all(r["status"] == "SUCCESS" for r in runs)
    assert runs[1]["parent_run"] == runs[0]["run_id"] and runs[2]["parent_run"] == runs[1]["run_id"]
    assert runs[0]["trigger"] == "cli" and runs[1]["trigger"] == runs[2]["trigger"] == "flow"
    human = dp_cli(platform, "status", "task-e2e")
    assert human.output.startswith("task task-e2e: succeeded")


@pytest.mark.parametrize(
    "args,message",
    [
        pytest.param(["--param", "region=5"], "region", id="int-for-string"),
        pytest.param(["--param", "region=EU", "--param", "n=many"], "n", id="string-for-int"),
        pytest.param(["--param", "region=EU", "--param", "typo=1"], "typo", id="unknown-param"),
    ],
)
def test_e2e_launch_with_wrong_param_types_is_refused_without_a_run(platform, instance, args, message):
    before = len(runs_of(instance, "hooked"))
    result = dp_cli(platform, "launch", "hooked", *args)
    assert result.exit_code != 0
    assert "flow 'hooked' refused the params" in result.output and message in result.output
    assert len(runs_of(instance, "hooked")) == before


def test_e2e_launch_unknown_flow(platform):
    result = dp_cli(platform, "launch", "no_such_flow")
    assert result.exit_code != 0 and "no flow 'no_such_flow'" in result.output


def test_e2e_E2_idempotent_launch_through_graphql(platform, instance, receiver):
    headers = {"Authorization": f"Bearer {TOKEN}", "Idempotency-Key": "launch-e2e-1"}

    def post(_):
        return httpx.post(
            f"{receiver}/flows/launched/runs", json={"params": {"region": "EU"}}, headers=headers, timeout=120
        )

    with ThreadPoolExecutor(max_workers=5) as pool:
        answers = list(pool.map(post, range(5)))
    assert {a.status_code for a in answers} <= {200, 201} and [a.status_code for a in answers].count(201) == 1
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert len(runs_of(instance, "launched", **{"dp/idempotency_key": "launch-e2e-1"})) == 1
    refused = httpx.post(
        f"{receiver}/flows/launched/runs",
        json={"params": {"region": 5}},
        headers={**headers, "Idempotency-Key": "launch-e2e-2"},
        timeout=60,
    )
    assert refused.status_code == 422


def test_e2e_E8_run_retries_under_the_real_daemon(platform, instance, started):
    """Node retries declared: the node runs twice in one run and the daemon does not retry the
    run. No node retries: the daemon retries the run once (run_retries: 1)."""
    waited = dp_cli(platform, "launch", "e8_nodes", "--wait")
    assert waited.exit_code == 1 and json.loads(waited.output.splitlines()[-1])["status"] == "FAILURE"
    with_node_retries = json.loads(waited.output.splitlines()[0])["run_id"]
    # Dagster tags a failed run with its retry decision just after it stores the FAILURE status.
    will_retry = wait_for(
        "the run's will_retry tag",
        lambda: instance.get_run_by_id(with_node_retries).tags.get("dagster/will_retry"),
        timeout=30,
    )
    assert will_retry == "false"
    (failure,) = instance.all_logs(with_node_retries, of_type=dg.DagsterEventType.STEP_FAILURE)
    assert "failed after 2 attempts" in failure.dagster_event.step_failure_data.error.cause.message

    only_run_retries = started["e8_runs"]

    def retried():
        runs = runs_of(instance, "e8_runs")
        return len(runs) == 2 and all(r.is_finished and "dagster/will_retry" in r.tags for r in runs) and runs

    runs = wait_for("the daemon's retry of e8_runs", retried, timeout=RUN_BOUND, on_timeout=platform.logs)
    assert all(r.status == dg.DagsterRunStatus.FAILURE for r in runs)
    retry = next(r for r in runs if r.run_id != only_run_retries)
    assert retry.parent_run_id == only_run_retries and retry.tags["dagster/retry_number"] == "1"
    assert retry.tags.get("dagster/will_retry") == "false"  # max_retries reached: 2 attempts in all
    assert len(runs_of(instance, "e8_nodes")) == 1


def test_e2e_retry_failed_items_relaunches_with_the_retry_tag(platform, instance, started):
    fan = wait_for(
        "the fan-out run", lambda: finished(instance, started["fan"]), timeout=RUN_BOUND, on_timeout=platform.logs
    )
    assert fan.status == dg.DagsterRunStatus.SUCCESS  # one item failed; the run did not
    result = dp_cli(platform, "retry-failed", fan.run_id)
    assert result.exit_code == 0, result.output
    *items, launched = [json.loads(line) for line in result.output.splitlines()]
    assert [(i["for_each"], i["row"], i["error_type"]) for i in items] == [("each", 1, "ExpressionError")]
    retry = instance.get_run_by_id(launched["run_id"])
    assert retry.job_name == "fan" and launched["retry_of"] == fan.run_id
    assert retry.tags["dp/retry_items"] == fan.run_id and retry.tags["dp/parent_run"] == fan.run_id
    assert retry.tags["dp/task_id"] == "task-fan"


def test_e2e_documented_clients_work(platform, instance):
    """The examples of docs/launching.md: dagster-graphql's client and the plain HTTP body."""
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    client = DagsterGraphQLClient("127.0.0.1", port_number=platform.webserver_port)
    run_id = client.submit_job_execution("launched", run_config={"region": "KR"}, tags={"dp/task_id": "t-doc"})
    assert instance.get_run_by_id(run_id).run_config == {"region": "KR"}
    with pytest.raises(DagsterGraphQLClientError) as caught:
        client.submit_job_execution("launched", run_config={"region": 5})
    assert caught.value.args[0] == "RunConfigValidationInvalid"

    query = (
        "mutation Launch($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename "
        "... on LaunchRunSuccess { run { runId status } } ... on RunConfigValidationInvalid { errors { message path } } "
        "... on PipelineNotFoundError { message } ... on PythonError { message } } }"
    )
    location = instance.get_run_by_id(run_id).remote_job_origin.location_name
    body = {
        "query": query,
        "variables": {
            "p": {
                "selector": {
                    "repositoryLocationName": location,
                    "repositoryName": "__repository__",
                    "jobName": "launched",
                },
                "runConfigData": {"region": "KR"},
                "executionMetadata": {"tags": [{"key": "dp/task_id", "value": "t-17"}]},
            }
        },
    }
    answer = httpx.post(platform.graphql_url, json=body, headers={"X-Dagster-Request": "1"}, timeout=60).json()
    assert answer["data"]["launchRun"]["__typename"] == "LaunchRunSuccess"
    body["variables"]["p"]["runConfigData"] = {"region": "KR", "n": "many"}
    refused = httpx.post(platform.graphql_url, json=body, timeout=60).json()["data"]["launchRun"]
    assert refused["__typename"] == "RunConfigValidationInvalid" and refused["errors"]


@pytest.mark.fault
def test_e2e_F3_E1_kill_9_mid_tick_then_restart(platform, instance):
    """Killed with ``kill -9`` in the middle of a sensor tick and started again, the daemon's
    event sensor starts exactly one run per event: no duplicate runs, no event skipped. Runs of
    ``fanin`` stay queued, so what is counted is what the sensor asked for. Runs last: killing
    the daemon also kills the runs it had started."""
    from dagster._core.scheduler.instigation import TickStatus

    (daemon,) = [p for p in platform.processes if p.name == "daemon" and p.alive()]
    bus = SqlEventBus(platform.store_url)
    # The daemon creates a run or two a second here: a tick of 12 is long enough to cut.
    events = bus.publish_many([("load.part", {"n": i}) for i in range(11)])
    duplicate = bus.publish("load.again", {"n": -1}, dedupe_key="redelivered")
    for _ in range(3):  # E1: the same delivery, many times
        assert bus.publish("load.again", {"n": -1}, dedupe_key="redelivered").id == duplicate.id
    expected = {e.id for e in events} | {duplicate.id}

    def count():
        return instance.get_runs_count(dg.RunsFilter(job_name="fanin"))

    wait_for("the first runs of the tick", lambda: count() > 0, timeout=RUN_BOUND, every=0.05, on_timeout=platform.logs)
    daemon.kill()
    at_kill = count()
    interrupted = [t for t in _sensor_ticks(instance, "fanin_event_sensor") if t.status == TickStatus.STARTED]
    assert at_kill < len(expected) and interrupted, "the daemon was not killed in the middle of a tick"

    platform.start_daemon()
    wait_for(
        "the sensor to reach the last event",
        lambda: sensor_cursor(instance, "fanin_event_sensor") == duplicate.id and count() >= len(expected),
        timeout=RUN_BOUND,
        on_timeout=platform.logs,
    )
    # E1 across the restart: a redelivery is the same event; one more tick starts nothing.
    assert bus.publish("load.again", {"n": -1}, dedupe_key="redelivered").id == duplicate.id
    done = len(_sensor_ticks(instance, "fanin_event_sensor"))
    wait_for(
        "another tick",
        lambda: len(_sensor_ticks(instance, "fanin_event_sensor")) > done,
        timeout=RUN_BOUND,
        on_timeout=platform.logs,
    )
    bus.close()

    runs = instance.get_runs(dg.RunsFilter(job_name="fanin"))
    keys = [run.tags["dagster/run_key"] for run in runs]
    assert len(keys) == len(set(keys)) == len(expected)  # no duplicate runs
    assert set(keys) == expected  # no event skipped
    assert all(run.status == dg.DagsterRunStatus.QUEUED for run in runs)
    assert {run.tags["dagster/run_key"]: run for run in runs}[events[7].id].run_config == {"n": 7}
