"""`dp launch --wait` against a real `dagster dev` (as `make run` starts it): a failed run names
its failing node and that node's error, and exits 1; a successful one says so and exits 0."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tests.support.dagster_processes import DagsterPlatform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROWS = {"id": "rows", "type": "StaticData", "params": {"rows": [{"region": "EU", "amount": 3}]}}
FLOWS = {
    "nightly_orders": {
        "id": "nightly_orders",
        "nodes": [
            ROWS,
            {"id": "orders", "type": "FileInput", "params": {"path": "data/orders_that_never_came.csv"}},
            {
                "id": "totals",
                "type": "GroupAggregate",
                "inputs": ["orders"],
                "params": {"by": "region", "agg": {"total": ["amount", "sum"]}},
            },
        ],
    },
    "fine_flow": {"id": "fine_flow", "nodes": [ROWS]},
}


@pytest.fixture(scope="module")
def platform(make_run_platform: DagsterPlatform) -> DagsterPlatform:
    """The shared `make run` platform (tests/conftest.py), serving this module's flows too."""
    for flow_id, spec in FLOWS.items():
        (make_run_platform.flows / f"{flow_id}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    make_run_platform.reload_location()
    return make_run_platform


def _launch(platform: DagsterPlatform, flow_id: str) -> subprocess.CompletedProcess:
    env = {**platform.env, "DP_DAGSTER_GRAPHQL_URL": platform.graphql_url}
    return subprocess.run(
        [sys.executable, "-m", "dp_assets.cli", "launch", flow_id, "--wait", "--timeout", "600"],
        env=env,
        capture_output=True,
        text=True,
        timeout=700,
    )


def test_a_failed_run_names_the_failing_node_and_its_error(platform):
    done = _launch(platform, "nightly_orders")
    assert done.returncode == 1, platform.logs()
    launched, finished = (json.loads(line) for line in done.stdout.splitlines())
    assert finished["run_id"] == launched["run_id"] and finished["status"] == "FAILURE"
    said = done.stderr.strip()
    assert said.startswith(
        f"run {launched['run_id'][:8]} of nightly_orders FAILED: "
        "flow 'nightly_orders', node 'orders' (FileInput) failed: "
    ), said
    assert "orders_that_never_came.csv" in said
    assert "skipped because of it: totals" in said
    assert "Traceback" not in said
    assert finished["error"] in said


def test_a_successful_run_says_so(platform):
    done = _launch(platform, "fine_flow")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["status"] == "SUCCESS"
    assert done.stderr == ""
