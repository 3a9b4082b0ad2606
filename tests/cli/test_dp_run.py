"""``dp run FLOW``: a published flow run here, as a user runs it from a shell with no
DAGSTER_HOME set, checked against the same work done directly in pandas."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from dp_assets.spec.loading import read_spec_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path) -> dict[str, str]:
    """A user's shell: DP_HOME in tmp, the example sales flow and its data, no DAGSTER_HOME."""
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(ROOT / "flows" / "sales_summary.yaml", flows)
    shutil.copytree(ROOT / "flows" / "data", flows / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DP_", "DAGSTER_"))}
    env.update(DP_HOME=str(tmp_path / "home"), DP_FLOWS_DIR=str(flows))
    return env


def _dp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dp_assets.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def _orders(env: dict[str, str]) -> pd.DataFrame:
    return pd.read_csv(Path(env["DP_FLOWS_DIR"]) / "data" / "orders.csv")


def test_dp_run_prints_each_node_and_records_the_run_in_the_embedded_home(project):
    assert _dp(project, "publish", str(Path(project["DP_FLOWS_DIR"]) / "sales_summary.yaml")).returncode == 0
    done = _dp(project, "run", "sales_summary", "--param", "min_amount=100")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr and " - dagster - " not in done.stderr
    rows = {
        m.group(1): int(m.group(2).replace(",", ""))
        for m in re.finditer(r"^\s+(\w+)\s+([\d,]+) rows", done.stdout, re.M)
    }
    orders = _orders(project)
    valid = orders[(orders["amount"] >= 100) & orders["region"].notna()]
    assert rows["orders"] == len(orders)
    assert rows["valid_orders"] == len(valid)
    assert rows["revenue_by_region"] == valid["region"].nunique()
    run_id = re.search(r"run id ([0-9a-f-]{36})", done.stdout).group(1)

    # The run is a Dagster run of the embedded default's instance (what `make run` shows).
    home = Path(project["DP_HOME"]) / "dagster"
    assert (home / "dagster.yaml").exists()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(run_id)
        assert run.job_name == "sales_summary" and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["dp/flow"] == "sales_summary" and run.tags["dp/trigger"] == "cli"


def test_a_failing_run_names_the_node_and_its_error(project):
    spec = read_spec_file(ROOT / "flows" / "sales_summary.yaml")
    spec["nodes"][0]["params"]["path"] = "data/no_such_file.csv"
    path = Path(project["DP_FLOWS_DIR"]) / "sales_summary.json"
    path.write_text(json.dumps(spec))
    assert _dp(project, "publish", str(path)).returncode == 0
    failed = _dp(project, "run", "sales_summary")
    assert failed.returncode == 1
    assert "FAILED" in failed.stderr and "node 'orders'" in failed.stderr
    assert "no_such_file.csv" in failed.stderr and "Traceback" not in failed.stderr
    # The platform's message, not Dagster's "dp_assets.compiler.node_report.FailedNodes: ..." text.
    assert re.search(r"FAILED after [\d.]+ s: flow 'sales_summary', node 'orders' \(FileInput\) failed", failed.stderr)
    assert "FailedNodes" not in failed.stderr


def test_bad_input_is_a_clear_error(project):
    unknown = _dp(project, "run", "no_such_flow")
    assert unknown.returncode == 1 and "no flow 'no_such_flow'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    assert _dp(project, "publish", str(Path(project["DP_FLOWS_DIR"]) / "sales_summary.yaml")).returncode == 0
    bad = _dp(project, "run", "sales_summary", "--param", "min_amount=not-a-number")
    assert bad.returncode == 1 and "min_amount" in bad.stderr and "Traceback" not in bad.stderr
    unpublished = _dp(project, "unpublish", "sales_summary")
    assert unpublished.returncode == 0
    refused = _dp(project, "run", "sales_summary")
    assert refused.returncode == 1 and "unpublished" in refused.stderr


PARTITIONED = {
    "id": "by_region",
    "params": {"min_x": {"type": "integer", "default": 0}},
    "partitions": {"type": "static", "keys": ["eu", "us"]},
    "nodes": [
        {
            "id": "rows",
            "type": "StaticData",
            "params": {"rows": [{"region": "eu", "x": 1}, {"region": "us", "x": 2}, {"region": "eu", "x": 3}]},
        },
        {
            "id": "mine",
            "type": "FilterRows",
            "inputs": ["rows"],
            "params": {"condition": "region == partition.key and x >= params.min_x"},
        },
    ],
}


def test_a_partitioned_flow_runs_one_partition(project):
    """`dp run --partition KEY`, as `dp launch --partition`: the params go to the job's steps, and
    a partitioned flow without a partition (or with one it lacks) is refused before it runs."""
    path = Path(project["DP_FLOWS_DIR"]) / "by_region.json"
    path.write_text(json.dumps(PARTITIONED))
    assert _dp(project, "publish", str(path)).returncode == 0
    missing = _dp(project, "run", "by_region")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "flow 'by_region' is partitioned: name the partition to run with --partition KEY" in missing.stderr
    unknown = _dp(project, "run", "by_region", "--partition", "asia")
    assert unknown.returncode == 1 and "has no partition 'asia'" in unknown.stderr

    done = _dp(project, "run", "by_region", "--partition", "eu", "--param", "min_x=2")
    assert done.returncode == 0, done.stderr
    run_id = re.search(r"run id ([0-9a-f-]{36})", done.stdout).group(1)
    read = _dp(project, "runs", "read", run_id, "mine", "--partition", "eu", "--out", str(path.with_suffix(".csv")))
    assert read.returncode == 0, read.stderr
    rows = pd.DataFrame(PARTITIONED["nodes"][0]["params"]["rows"])
    expected = rows[(rows["region"] == "eu") & (rows["x"] >= 2)]
    got = pd.read_csv(path.with_suffix(".csv"), index_col=0)
    pd.testing.assert_frame_equal(got, expected)
