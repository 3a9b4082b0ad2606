"""The Run tab's node output of a run of one partition: such a run keeps its outputs under the
partition (OUTPUTS/RUN/FLOW/NODE/KEY.arrow), and the designer reads that one. Before, a run launched
from the Run tab with a partition (or a backfill's run of one key) answered 404 "stored no output"
for every node it had materialised. The run is a real `dp run --partition` on a temporary home."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dp_designer.http import ApiError
from dp_designer.runs_api import RunsService

ROOT = Path(__file__).resolve().parents[2]
ROWS = [{"region": "EU", "amount": 10.5}, {"region": "US", "amount": 3.0}, {"region": "EU", "amount": 7.25}]
FLOW = {
    "id": "daily_totals",
    "partitions": {"type": "time", "every": "daily", "start": "2026-01-01", "end": "2026-01-10"},
    "nodes": [
        {"id": "orders", "type": "StaticData", "params": {"rows": ROWS}},
        {
            "id": "totals",
            "type": "GroupAggregate",
            "inputs": ["orders"],
            "params": {"by": "region", "agg": {"revenue": ["amount", "sum"]}},
        },
        {
            "id": "dated",
            "type": "AddModifyColumn",
            "inputs": ["totals"],
            "params": {"column": "day", "expression": "partition.key"},
        },
    ],
}


def _dp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dp_assets.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_output_of_a_run_of_one_partition_is_read_from_that_partition(tmp_path: Path) -> None:
    spec = tmp_path / "daily_totals.yaml"
    spec.write_text(yaml.safe_dump(FLOW, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DP_", "DAGSTER_"))}
    env.update(DP_HOME=str(tmp_path / "home"), DP_FLOWS_DIR="")
    assert _dp(env, "publish", str(spec)).returncode == 0
    done = _dp(env, "run", "daily_totals", "--partition", "2026-01-04")
    assert done.returncode == 0, done.stderr
    run_id = re.search(r"run id ([0-9a-f-]{36})", done.stdout).group(1)

    service = RunsService(graphql_url="http://127.0.0.1:9/graphql", outputs_base=str(tmp_path / "home" / "outputs"))
    view = service.node_output(run_id, "daily_totals", "dated")
    expected = (
        pd.DataFrame(ROWS).groupby("region").agg(revenue=("amount", "sum")).reset_index().assign(day="2026-01-04")
    )
    assert view["row_count"] == len(expected)
    assert [c["name"] for c in view["columns"]] == list(expected.columns)
    assert view["rows"] == expected.to_dict(orient="records")
    with pytest.raises(ApiError) as missing:
        service.node_output(run_id, "daily_totals", "no_such_node")
    assert missing.value.status == 404 and "stored no output for node 'no_such_node'" in str(missing.value)
