"""What the run view tells per node: a line with its time and rows, ``dp/duration_ms`` on its
materialisation; and a failed node stops only its own downstream, as Dagster does for steps."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pandas as pd

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import ONE_INPUT, NodeType, Params
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import validate_spec
from dp_resources.files import FilesResource


class BreakParams(Params):
    message: str = "broken on purpose"


def break_node(ctx, params, inputs):
    raise ValueError(params.message)


CATALOG = default_catalog().extended([NodeType("Break", BreakParams, break_node, "transform", inputs=ONE_INPUT)])
ROWS = [{"region": r, "amount": a} for r, a in [("EU", 10), ("US", 25), ("EU", 40), ("APAC", 5), ("US", 60)]]


def _run(spec: dict, tmp_path: Path) -> tuple[dg.ExecuteInProcessResult, dg.DagsterInstance]:
    validated = validate_spec(spec, CATALOG)
    defs = dg.Definitions.merge(
        build_flow_definitions(validated, CATALOG),
        dg.Definitions(
            resources={
                "io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "io")),
                "files": FilesResource(data_dir=str(tmp_path / "data")),
            }
        ),
    )
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def(spec["id"]).execute_in_process(instance=instance, raise_on_error=False)
    return result, instance


def _materialised(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        event.asset_key.path[-1]: event.materialization.metadata for event in result.get_asset_materialization_events()
    }


def test_each_node_reports_its_time_and_rows(tmp_path):
    spec = {
        "id": "timed",
        "nodes": [
            {"id": "orders", "type": "StaticData", "params": {"rows": ROWS}},
            {"id": "big", "type": "FilterRows", "inputs": ["orders"], "params": {"condition": "amount > 20"}},
            {
                "id": "by_region",
                "type": "GroupAggregate",
                "inputs": ["big"],
                "params": {"by": "region", "agg": {"total": ["amount", "sum"]}},
            },
        ],
    }
    result, instance = _run(spec, tmp_path)
    assert result.success
    frame = pd.DataFrame(ROWS)
    expected = {
        "orders": len(frame),
        "big": int((frame["amount"] > 20).sum()),
        "by_region": frame[frame["amount"] > 20]["region"].nunique(),
    }
    metadata = _materialised(result)
    for node, rows in expected.items():
        assert metadata[node]["dagster/row_count"].value == rows
        assert metadata[node]["dp/duration_ms"].value >= 0
        assert metadata[node]["dp/started_at"].value  # ISO time the node started
    lines = [e.user_message for e in instance.all_logs(result.run_id) if "finished in" in (e.user_message or "")]
    logged = {
        m.group(1): int(m.group(2).replace(",", ""))
        for m in (re.search(r"node '(\w+)' \(\w+\) finished in [\d,]+ ms: ([\d,]+) rows", line) for line in lines)
        if m
    }
    assert logged == expected


def test_a_failed_node_skips_only_its_downstream_and_the_run_fails_naming_it(tmp_path):
    spec = {
        "id": "branches",
        "nodes": [
            {"id": "orders", "type": "StaticData", "params": {"rows": ROWS}},
            {"id": "broken", "type": "Break", "inputs": ["orders"]},
            {"id": "after_broken", "type": "SelectColumns", "inputs": ["broken"], "params": {"columns": ["region"]}},
            {"id": "independent", "type": "FilterRows", "inputs": ["orders"], "params": {"condition": "amount >= 25"}},
            {
                "id": "independent_total",
                "type": "GroupAggregate",
                "inputs": ["independent"],
                "params": {"agg": {"total": ["amount", "sum"]}},
            },
        ],
    }
    result, _ = _run(spec, tmp_path)
    assert not result.success
    materialised = _materialised(result)
    assert {"orders", "independent", "independent_total"} <= set(materialised)
    assert "broken" not in materialised and "after_broken" not in materialised
    frame = pd.DataFrame(ROWS)
    expected_total = frame[frame["amount"] >= 25]["amount"].sum()
    assert result.output_for_node("branches__step", "independent_total")["total"].tolist() == [expected_total]
    error = result.get_step_failure_events()[0].step_failure_data.error
    while error.cause is not None and error.cls_name not in ("NodeFailed", "FailedNodes"):
        error = error.cause
    assert "node 'broken' (Break) failed" in error.message and "broken on purpose" in error.message
    assert "skipped because of it: after_broken" in error.message


def test_two_failed_nodes_are_both_named(tmp_path):
    spec = {
        "id": "two_broken",
        "nodes": [
            {"id": "orders", "type": "StaticData", "params": {"rows": ROWS}},
            {"id": "first", "type": "Break", "inputs": ["orders"], "params": {"message": "first cause"}},
            {"id": "second", "type": "Break", "inputs": ["orders"], "params": {"message": "second cause"}},
        ],
    }
    result, _ = _run(spec, tmp_path)
    assert not result.success and "orders" in _materialised(result)
    error = result.get_step_failure_events()[0].step_failure_data.error
    text = error.message + (error.cause.message if error.cause else "")
    assert "2 nodes failed" in text and "first cause" in text and "second cause" in text
