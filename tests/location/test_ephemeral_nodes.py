"""Ephemeral nodes (issue 20): not assets, never stored, computed inside the step of each node
that reads them, on the platform's own IO manager (``RunScopedIOManager``) and a real instance.

What a user relies on: the readers' values equal the same work done in pandas; lineage links an
ephemeral node's upstream assets to its readers; a subset Materialize recomputes it from its
nearest stored upstream; a run with ``policies.ephemeral: intermediate`` keeps only the bytes
of the nodes that are not ephemeral.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.compiler.plan import build_plan
from dp_assets.dagster_internals import execute_run_in_process
from dp_assets.spec.validation import validate_spec
from dp_io import RunScopedIOManager
from dp_resources.files import FilesResource

pytestmark = pytest.mark.e2e

FLOW = "eph_flow"
ROWS = [
    {"region": r, "qty": q, "price": p}
    for r, q, p in [("EU", 1, 2.5), ("US", 5, 1.0), ("EU", 2, 4.0), ("APAC", 7, 3.0)]
]
NODES: list[dict[str, Any]] = [
    {"id": "orders", "type": "StaticData", "params": {"rows": ROWS}},
    {
        "id": "priced",
        "type": "AddModifyColumn",
        "inputs": ["orders"],
        "params": {"column": "total", "expression": "qty * price"},
    },
    {"id": "big", "type": "FilterRows", "inputs": ["priced"], "params": {"condition": "total > 4"}},
    {
        "id": "by_region",
        "type": "GroupAggregate",
        "inputs": ["big"],
        "params": {"by": "region", "agg": {"sum_total": ["total", "sum"]}},
    },
    {"id": "ranked", "type": "SortData", "inputs": ["by_region"], "params": {"by": "region"}},
    {"id": "report", "type": "FileWriter", "inputs": ["ranked"], "params": {"path": "report.csv"}},
]


def expected_ranked() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS)
    frame["total"] = frame["qty"] * frame["price"]
    frame = frame[frame["total"] > 4]
    return frame.groupby("region", as_index=False).agg(sum_total=("total", "sum")).sort_values("region")


def flow(policies: dict[str, Any] | None = None, ephemeral: tuple[str, ...] = ()) -> dict[str, Any]:
    nodes = [{**node, **({"ephemeral": True} if node["id"] in ephemeral else {})} for node in NODES]
    return {"id": FLOW, "nodes": nodes, **({"policies": policies} if policies else {})}


def definitions(spec: dict[str, Any], tmp_path: Path) -> dg.Definitions:
    catalog = default_catalog()
    return dg.Definitions.merge(
        build_flow_definitions(validate_spec(spec, catalog), catalog),
        dg.Definitions(
            resources={
                "io_manager": RunScopedIOManager(base_url=str(tmp_path / "runs")),
                "files": FilesResource(data_dir=str(tmp_path / "data")),
            },
            executor=dg.in_process_executor,
        ),
    )


def run(
    defs: dg.Definitions, instance: dg.DagsterInstance, selection: list[str] | None = None
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(FLOW)
    if selection is not None:
        job = job.get_subset(asset_selection={dg.AssetKey([FLOW, node]) for node in selection})
    result = execute_run_in_process(job, instance)
    assert result.success
    return result


def materialised(instance: dg.DagsterInstance, run_id: str) -> set[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return {record.event_log_entry.dagster_event.asset_key.path[-1] for record in records}


def stored(tmp_path: Path, run_id: str) -> dict[str, int]:
    folder = tmp_path / "runs" / run_id / FLOW
    return {path.stem: path.stat().st_size for path in folder.iterdir()} if folder.exists() else {}


def test_ephemeral_nodes_are_no_assets_and_their_readers_equal_pandas(tmp_path):
    defs = definitions(flow(ephemeral=("priced", "big")), tmp_path)
    keys = {key.path[-1] for key in defs.resolve_all_asset_keys()}
    assert keys == {"orders", "by_region", "ranked", "report"}
    with dg.instance_for_test() as instance:
        result = run(defs, instance)
        assert materialised(instance, result.run_id) == {"orders", "by_region", "ranked", "report"}
        ranked = pd.read_feather(tmp_path / "runs" / result.run_id / FLOW / "ranked.arrow")
    pd.testing.assert_frame_equal(ranked.reset_index(drop=True), expected_ranked().reset_index(drop=True))


def node_lines(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    messages = [entry.user_message or "" for entry in instance.all_logs(run_id)]
    return [line for line in messages if "finished in" in line or "ephemeral nodes" in line]


def test_an_ephemeral_node_is_named_in_its_readers_log_line_with_its_rows(tmp_path):
    """One log line per node that is not ephemeral; the ephemeral nodes it read are named in it,
    in the order they ran, each with its time and rows (docs/flow-spec.md)."""
    defs = definitions(flow(ephemeral=("priced", "big")), tmp_path)
    with dg.instance_for_test() as instance:
        lines = node_lines(instance, run(defs, instance).run_id)
    assert [line.split("'")[1] for line in lines] == ["orders", "by_region", "ranked", "report"]
    (by_region,) = [line for line in lines if line.startswith("node 'by_region'")]
    folded = by_region.split("; before it, the ephemeral nodes it reads: ")[1]
    assert re.fullmatch(
        r"'priced' \(AddModifyColumn\) [\d,]+ ms: 4 rows; 'big' \(FilterRows\) [\d,]+ ms: 3 rows", folded
    )


def test_the_ephemeral_nodes_of_a_reader_that_failed_are_still_logged(tmp_path):
    defs = definitions(flow(ephemeral=("priced", "big", "by_region", "ranked")), tmp_path)
    (tmp_path / "data" / "report.csv").mkdir(parents=True)  # the sink cannot write its file
    with dg.instance_for_test() as instance:
        result = execute_run_in_process(defs.resolve_job_def(FLOW), instance)
        assert not result.success
        lines = node_lines(instance, result.run_id)
    assert [line.split("'")[1] for line in lines if "finished in" in line] == ["orders"]
    (left,) = [line for line in lines if line.startswith("ephemeral nodes whose readers did not finish: ")]
    assert [item.split("'")[1] for item in left.split("; ")] == ["priced", "big", "by_region", "ranked"]


def test_lineage_links_an_ephemeral_nodes_upstream_assets_to_its_readers(tmp_path):
    defs = definitions(flow(ephemeral=("priced", "big")), tmp_path)
    specs = {spec.key.path[-1]: spec for spec in defs.resolve_all_asset_specs()}
    assert {dep.asset_key for dep in specs["by_region"].deps} == {dg.AssetKey([FLOW, "orders"])}


def test_a_subset_materialize_recomputes_it_from_the_nearest_stored_upstream(tmp_path):
    defs = definitions(flow(ephemeral=("priced", "big")), tmp_path)
    with dg.instance_for_test() as instance:
        run(defs, instance)
        subset = run(defs, instance, selection=["by_region"])
        assert materialised(instance, subset.run_id) == {"by_region"}
        by_region = pd.read_feather(tmp_path / "runs" / subset.run_id / FLOW / "by_region.arrow")
    pd.testing.assert_frame_equal(by_region, expected_ranked().reset_index(drop=True), check_like=True)


def test_intermediate_keeps_only_the_bytes_of_the_stored_nodes(tmp_path):
    """Against the same flow with every node kept: the run's folder holds exactly the files of
    the nodes that are not ephemeral (the source, the leaf, what the sink writes from), each as
    large as when every node is kept."""
    keep_all = definitions(flow(), tmp_path)
    intermediate = definitions(flow(policies={"ephemeral": "intermediate"}), tmp_path)
    catalog = default_catalog()
    plan = build_plan(validate_spec(flow(policies={"ephemeral": "intermediate"}), catalog), catalog)
    kept_nodes = {node.id for node in plan.nodes if node.is_asset}
    assert kept_nodes == {"report"}  # every node before the sink is intermediate
    with dg.instance_for_test() as instance:
        every = stored(tmp_path, run(keep_all, instance).run_id)
        some = stored(tmp_path, run(intermediate, instance).run_id)
    assert set(every) == {"orders", "priced", "big", "by_region", "ranked", "report"}
    assert some == {node: every[node] for node in kept_nodes}


def test_ephemeral_chains_join_each_readers_step_with_a_step_per_node(tmp_path):
    spec = flow(policies={"steps": "node"}, ephemeral=("priced", "big"))
    spec["nodes"].append(
        {
            "id": "count",
            "type": "GroupAggregate",
            "inputs": ["big"],
            "params": {"by": "region", "agg": {"n": ["qty", "count"]}},
        }
    )
    catalog = default_catalog()
    steps = dict(build_plan(validate_spec(spec, catalog), catalog).steps("node"))
    assert steps[f"{FLOW}__node__by_region"] == {"priced", "big", "by_region"}
    assert steps[f"{FLOW}__node__count"] == {"priced", "big", "count"}
    defs = definitions(spec, tmp_path)
    with dg.instance_for_test() as instance:
        result = run(defs, instance)
        assert materialised(instance, result.run_id) == {"orders", "by_region", "ranked", "report", "count"}
        ranked = pd.read_feather(tmp_path / "runs" / result.run_id / FLOW / "ranked.arrow")
    pd.testing.assert_frame_equal(ranked.reset_index(drop=True), expected_ranked().reset_index(drop=True))


def test_lineage_through_deep_ephemeral_diamonds_is_planned_once_per_node():
    """Each layer forks and joins again, every node between ``rows`` and ``out`` ephemeral: the
    lineage walk visits each node once (walked per path, 40 layers are 2**40 paths and the code
    location never loads)."""
    rows = {"id": "rows", "type": "StaticData", "params": {"rows": [{"a": 1}]}, "columns": [{"name": "a"}]}
    nodes: list[dict[str, Any]] = [rows]  # stored: its columns are checked
    previous = "rows"
    for layer in range(40):
        for side in ("left", "right"):
            nodes.append(
                {"id": f"{side}{layer}", "type": "FilterRows", "inputs": [previous], "params": {"condition": "a > 0"}}
            )
        nodes.append({"id": f"join{layer}", "type": "UnionConcatenate", "inputs": [f"left{layer}", f"right{layer}"]})
        previous = f"join{layer}"
    nodes.append({"id": "out", "type": "SortData", "inputs": [previous], "params": {"by": "a"}})
    spec = {"id": FLOW, "policies": {"ephemeral": "intermediate"}, "nodes": nodes}
    plan = build_plan(validate_spec(spec, default_catalog()), default_catalog())
    assert [node.id for node in plan.nodes if not node.ephemeral] == ["rows", "out"]
    assert plan.stored_upstreams("out") == ["rows"]
    assert plan.stored_upstreams(previous) == ["rows"]
    steps = plan.steps("flow")
    assert len(steps) == 1 and steps[0][1] == frozenset(node["id"] for node in nodes)
