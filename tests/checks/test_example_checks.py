"""Every example flow declares checks, and the examples that run as shipped pass all of theirs
in a real run of the code location, including ``column_schema``: what validation inferred for
each node is what the run made."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from dp_assets.definitions import defs
from dp_assets.publishing import spec_files
from dp_assets.spec.loading import read_spec_file

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def flows_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dp_home: Path) -> Path:
    folder = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", folder)
    monkeypatch.setenv("DP_FLOWS_DIR", str(folder))
    return folder


def test_every_example_flow_declares_checks():
    specs = [read_spec_file(path) for path in spec_files(ROOT / "flows")]
    without = [
        spec["id"]
        for spec in specs
        if not any(node.get("checks") or (node.get("data") or {}).get("checks") for node in spec["nodes"])
    ]
    assert specs and without == []


@pytest.mark.parametrize("flow_id", ["sales_summary", "customer_orders", "maxdp_sales_dashboard", "regional_revenue"])
def test_an_example_that_runs_as_shipped_passes_its_checks(flows_dir, flow_id):
    loaded = defs()
    job = loaded.resolve_job_def(flow_id)
    declared = set(job.asset_layer.asset_graph.asset_check_keys)
    result = job.execute_in_process(instance=dg.DagsterInstance.get())
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    failed = [(e.asset_key.to_user_string(), e.check_name, e.metadata) for e in evaluations if not e.passed]
    assert failed == []
    assert {dg.AssetCheckKey(e.asset_key, e.check_name) for e in evaluations} == declared
    assert any(e.check_name != "column_schema" for e in evaluations)
