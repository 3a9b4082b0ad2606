"""Backfills through Dagster itself: `dp backfill` (GraphQL's launchPartitionBackfill, as the UI's
backfill dialog) against a real `dagster dev` (webserver + daemon, as `make run` starts it). A
flow whose nodes take a range runs once over it; a flow reading partition.key runs once per
partition; every partition of every node is materialised, with the partition on each stored
output, and each output equals the rows computed directly."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dp_assets.cli.home import prepare_instance
from dp_io import load_latest_output
from dp_io.io_manager import RunScopedIOManager
from dp_sensors.backfill import launch_backfill
from dp_sensors.launch import GraphQLClient, LaunchError
from tests.support.dagster_processes import DagsterPlatform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def _flow(flow_id: str, day: str) -> dict:
    return {
        "id": flow_id,
        "partitions": {"type": "time", "every": "daily", "start": "2026-01-01", "end": "2026-02-01"},
        "nodes": [
            {"id": "rows", "type": "StaticData", "params": {"rows": [{"day": day, "n": 2}]}},
            {
                "id": "doubled",
                "type": "AddModifyColumn",
                "inputs": ["rows"],
                "params": {"column": "m", "expression": "n * 2"},
            },
        ],
    }


FLOWS = {
    "ranged": _flow("ranged", "{{ partition.start }}"),  # takes a range: one run
    "per_day": _flow("per_day", "{{ partition.key }}"),  # one key per run
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Iterator[DagsterPlatform]:
    root = tmp_path_factory.mktemp("backfills")
    flows = root / "flows"
    flows.mkdir()
    for flow_id, spec in FLOWS.items():
        (flows / f"{flow_id}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    platform = DagsterPlatform(root=root, flows=flows)
    prepare_instance(platform.dagster_home)
    try:
        platform.start_dev()
        yield platform
    finally:
        platform.stop()


def _dp(platform: DagsterPlatform, *args: str) -> subprocess.CompletedProcess:
    env = {**platform.env, "DP_DAGSTER_GRAPHQL_URL": platform.graphql_url}
    return subprocess.run(
        [sys.executable, "-m", "dp_assets.cli", *args], env=env, capture_output=True, text=True, timeout=800
    )


def _materialised(platform: DagsterPlatform, flow_id: str, node: str) -> dict[str, str]:
    with platform.instance() as instance:
        records = instance.fetch_materializations(dg.AssetKey([flow_id, node]), limit=100).records
        return {r.asset_materialization.partition: r.run_id for r in records}


def test_a_range_backfill_of_a_flow_that_takes_a_range_is_one_run(platform):
    done = _dp(platform, "backfill", "ranged", "--from", "2026-01-02", "--to", "2026-01-04", "--timeout", "600")
    assert done.returncode == 0, done.stderr + platform.logs()
    launched, summary = (json.loads(line) for line in done.stdout.splitlines())
    assert summary["backfill_id"] == launched["backfill_id"] and summary["status"] == "COMPLETED_SUCCESS"
    assert (summary["partitions"], summary["materialized"], summary["failed"], summary["runs"]) == (6, 6, 0, 1)
    for node in ("rows", "doubled"):
        runs = _materialised(platform, "ranged", node)
        assert sorted(runs) == ["2026-01-02", "2026-01-03", "2026-01-04"] and len(set(runs.values())) == 1
    with platform.instance() as instance:
        io = RunScopedIOManager(base_url=str(platform.home / "outputs"))
        value = load_latest_output(instance, dg.AssetKey(["ranged", "doubled"]), io, partition_key="2026-01-03")
    expected = pd.DataFrame({"day": ["2026-01-02T00:00:00+00:00"], "n": [2]}).assign(m=lambda d: d["n"] * 2)
    pd.testing.assert_frame_equal(value.reset_index(drop=True), expected, check_dtype=False)


def test_a_backfill_of_a_flow_reading_partition_key_runs_each_partition(platform):
    done = _dp(platform, "backfill", "per_day", "--partition", "2026-01-05", "--partition", "2026-01-07")
    assert done.returncode == 0, done.stderr + platform.logs()
    summary = json.loads(done.stdout.splitlines()[-1])
    assert (summary["partitions"], summary["materialized"], summary["runs"]) == (4, 4, 2)
    runs = _materialised(platform, "per_day", "doubled")
    assert sorted(runs) == ["2026-01-05", "2026-01-07"] and len(set(runs.values())) == 2
    # the designer's Run tab lists them (they run under Dagster's asset job, not the flow's) and
    # reads each node's output of them, which they kept under their partition
    from dp_designer.runs_api import RunsService

    designer = RunsService(graphql_url=platform.graphql_url, outputs_base=str(platform.home / "outputs"))
    listed = {run["run_id"]: run for run in designer.flow_runs("per_day")}
    assert set(runs.values()) <= set(listed), (runs, listed)
    assert {day: listed[run_id]["partition"] for day, run_id in runs.items()} == {day: day for day in runs}
    assert designer.last_statuses()["per_day"] == "SUCCESS"
    for day, run_id in runs.items():
        assert designer.node_output(run_id, "per_day", "rows")["rows"][0]["day"] == day
    with platform.instance() as instance:
        io = RunScopedIOManager(base_url=str(platform.home / "outputs"))
        for day in runs:
            value = load_latest_output(instance, dg.AssetKey(["per_day", "rows"]), io, partition_key=day)
            assert value["day"].tolist() == [day]


def test_bad_backfills_are_refused_with_a_clear_message(platform):
    unknown = _dp(platform, "backfill", "per_day", "--from", "2025-01-01", "--to", "2025-01-02")
    assert unknown.returncode == 1 and "Traceback" not in unknown.stderr
    assert (
        "flow 'per_day' has no partition '2025-01-01', '2025-01-02'; its partitions run from 2026-01-01"
        in unknown.stderr
    )
    half = _dp(platform, "backfill", "per_day", "--from", "2026-01-01")
    assert half.returncode == 1 and "--from and --to" in half.stderr
    # a reversed range: Dagster takes it, then its daemon fails the backfill on an invariant
    reversed_range = _dp(platform, "backfill", "per_day", "--from", "2026-01-04", "--to", "2026-01-02")
    assert reversed_range.returncode == 1 and "Traceback" not in reversed_range.stderr
    assert reversed_range.stdout == "", "nothing may be launched"
    assert (
        "flow 'per_day': the range starts at '2026-01-04', after its end '2026-01-02'; give the earlier key to --from"
        in reversed_range.stderr
    )


def test_dp_launch_runs_one_partition_with_its_params_per_step(platform):
    done = _dp(platform, "launch", "per_day", "--partition", "2026-01-09", "--wait", "--timeout", "600")
    assert done.returncode == 0, done.stderr + platform.logs()
    assert "2026-01-09" in _materialised(platform, "per_day", "doubled")
    refused = _dp(platform, "launch", "per_day", "--partition", "2030-01-01")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "flow 'per_day' has no partition '2030-01-01'; its partitions run from 2026-01-01" in refused.stderr


# Keys a user may type for --from/--to: Dagster's separators, control characters, template and
# GraphQL-looking text, long keys, and real keys of the flow beside them.
typed_keys = st.one_of(
    st.text(alphabet=st.sampled_from(list("0126-.,[]*{}$\\\"' \n\x00é")), max_size=30),
    st.text(min_size=150, max_size=400),
    st.sampled_from(["2026-01-05", "2026-01-05...2026-01-06", "{{ partition.key }}", '"}) { __typename', "*"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=typed_keys, end=typed_keys)
def test_a_backfill_range_of_unknown_keys_is_refused_naming_them_and_launches_nothing(platform, start, end):
    known = {f"2026-01-{day:02d}" for day in range(1, 32)}
    if start in known and end in known:
        return  # a real range: launched by the tests above
    with platform.instance() as instance:
        before = len(instance.get_backfills())
    with GraphQLClient(platform.graphql_url) as client, pytest.raises(LaunchError) as refused:
        launch_backfill(client, "per_day", start=start, end=end)
    unknown = [key for key in dict.fromkeys([start, end]) if key not in known]
    assert str(refused.value).startswith(f"flow 'per_day' has no partition {unknown[0]!r}")
    with platform.instance() as instance:
        assert len(instance.get_backfills()) == before


def test_the_receiver_launches_a_named_partition_and_refuses_one_the_flow_lacks(platform, tmp_path):
    """POST /flows/{flow}/runs with "partition": the run materialises that partition (its params
    per step, as `dp launch --partition`); a key the flow does not have is a 422 naming the flow's
    range, and launches nothing."""
    import httpx
    from pydantic import BaseModel, ConfigDict

    from dp_sensors.events.sql import SqlEventBus
    from dp_sensors.launch import GraphQLLauncher
    from dp_sensors.webhook import LaunchLedger, create_app
    from dp_sensors.webhook.server import serve_in_thread

    class NoParams(BaseModel):
        model_config = ConfigDict(extra="forbid")

    url = f"sqlite:///{tmp_path / 'receiver.db'}"
    ledger, bus = LaunchLedger(url), SqlEventBus(url)
    ledger.ensure_schema()
    bus.ensure_schema()
    app = create_app(
        catalog={"per_day": NoParams}.get,
        bus=bus,
        ledger=ledger,
        launcher=GraphQLLauncher(platform.graphql_url),
        environ={"DP_WEBHOOK_TOKEN": "t"},
    )
    headers = {"Authorization": "Bearer t"}
    try:
        with serve_in_thread(app) as base_url, httpx.Client(base_url=base_url, timeout=120) as client:
            launched = client.post(
                "/flows/per_day/runs", json={"partition": "2026-01-11"}, headers={**headers, "Idempotency-Key": "a"}
            )
            assert launched.status_code == 201, launched.text
            run_id = launched.json()["run_id"]
            with GraphQLClient(platform.graphql_url) as graphql:
                assert graphql.wait_for_run(run_id, timeout=600) == "SUCCESS", platform.logs()
            assert _materialised(platform, "per_day", "rows").get("2026-01-11") == run_id

            missing = client.post(
                "/flows/per_day/runs", json={"partition": "2030-01-01"}, headers={**headers, "Idempotency-Key": "b"}
            )
            assert missing.status_code == 422, missing.text
            assert (
                "flow 'per_day' has no partition '2030-01-01'; its partitions run from 2026-01-01"
                in (missing.json()["detail"])
            )
    finally:
        ledger.close()
        bus.close()
    with platform.instance() as instance:
        assert not [r for r in instance.get_runs() if r.tags.get("dagster/partition") == "2030-01-01"]


def test_an_invoke_of_one_partition_answers_with_that_partition_s_result(platform):
    """POST /flows/{flow}/invoke with "partition": the run keeps its outputs under the partition
    (OUTPUTS/RUN/FLOW/NODE/KEY.arrow), and the answer is read from there. Before, the answer was
    200 SUCCESS with an error in place of each result node ("stored no output for node ...")."""
    import httpx

    from dp_settings import load
    from tests.support.receiver import platform_receiver

    settings = load({**platform.env, "DP_WEBHOOK_TOKEN": "t", "DP_INVOKE_MAX_WAIT_SECONDS": "300"})
    with platform_receiver(platform, settings) as url, httpx.Client(base_url=url, timeout=320) as client:
        answered = client.post(
            "/flows/per_day/invoke",
            json={"partition": "2026-01-13", "timeout_seconds": 300},
            headers={"Authorization": "Bearer t"},
        )
    assert answered.status_code == 200, answered.text + platform.logs()
    assert answered.json()["status"] == "SUCCESS"
    assert answered.json()["result"] == _doubled_result("2026-01-13")

    # `dp invoke --partition`, as `dp launch --partition` (before, dp invoke had no way to name one)
    invoked = _dp(platform, "invoke", "per_day", "--partition", "2026-01-14", "--timeout", "300")
    assert invoked.returncode == 0, invoked.stderr + platform.logs()
    assert json.loads(invoked.stdout)["result"] == _doubled_result("2026-01-14")


def _doubled_result(day: str) -> dict:
    expected = pd.DataFrame({"day": [day], "n": [2]}).assign(m=lambda d: d["n"] * 2)
    rows = expected.to_dict(orient="records")
    return {"doubled": {"columns": list(expected.columns), "rows": rows, "row_count": 1, "truncated": False}}
