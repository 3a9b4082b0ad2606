"""End to end as a user runs it: `dagster job execute -m dp_assets.definitions -j FLOW`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_dagster_job_execute_matches_pandas(tmp_path):
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    home = tmp_path / "home"
    (home / "dagster").mkdir(parents=True)
    env = {**os.environ, "DP_FLOWS_DIR": str(flows), "DP_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    for key in ("DP_STORE_URL", "DP_DATA_DIR", "DP_OUTPUTS_URL", "DP_EXECUTOR"):
        env.pop(key, None)
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "job", "execute", "-m", "dp_assets.definitions", "-j", "sales_summary"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RUN_SUCCESS" in done.stdout + done.stderr

    written = pd.read_parquet(home / "data" / "reports" / "sales_by_region.parquet")
    # The spec declares the columns' types; FileInput converts them on read (integers nullable).
    orders = pd.read_csv(
        flows / "data" / "orders.csv",
        parse_dates=["ordered_at"],
        dtype={"order_id": "Int64", "quantity": "Int64", "customer": "str", "region": "str"},
    )
    targets = pd.DataFrame({"region": ["EU", "US", "APAC", "LATAM"], "target": [3000.0, 2500.0, 2000.0, 1500.0]})
    expected = (
        orders[(orders["amount"] >= 20.0) & orders["region"].notna()]
        .groupby("region")
        .agg(revenue=("amount", "sum"), orders=("order_id", "count"), units=("quantity", "sum"))
        .reset_index()
        .merge(targets, how="left", on="region")
        .sort_values("revenue", ascending=False, kind="stable", ignore_index=True)
    )
    pd.testing.assert_frame_equal(written, expected)

    # every node's output was kept under the run's own folder
    run_dirs = [p for p in (home / "outputs").iterdir() if p.is_dir()]
    assert len(run_dirs) == 1
    kept = sorted(p.name.split(".")[0] for p in (run_dirs[0] / "sales_summary").iterdir())
    assert kept == sorted(
        ["orders", "valid_orders", "targets", "revenue_by_region", "against_target", "ranked", "report"]
    )
