"""The code location loads, compiles the example flows as expected, and survives broken specs."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from dp_assets.definitions import defs
from dp_assets.location import REPORT_KEY, build_code_location

SNAPSHOT = Path(__file__).parent / "snapshots" / "example_asset_graph.json"


def asset_graph(definitions: dg.Definitions) -> dict:
    graph = definitions.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
        }
    jobs = sorted(j.name for j in definitions.resolve_all_job_defs() if not j.name.startswith("__"))
    return {"assets": assets, "jobs": jobs}


def test_location_loads_and_matches_snapshot(flows_dir):
    dg.Definitions.validate_loadable(defs())
    graph = asset_graph(defs())
    if os.environ.get("DP_UPDATE_SNAPSHOTS"):
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(json.dumps(graph, indent=2, sort_keys=True) + "\n")
    assert graph == json.loads(SNAPSHOT.read_text())


def test_each_flow_job_equals_dagsters_own_resolution(flows_dir, dp_home, monkeypatch):
    """The location resolves a flow's job against the flow's own assets and the resources they
    need (a constant cost per flow); left unresolved, Dagster resolves it against the whole
    location and gives it every resource. The jobs are the same but for the resources nobody
    uses, and so is the rest of the repository a code server serves."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._core.snap import JobSnap
    from dagster._serdes import serialize_value

    from dp_assets.compiler.factory import CompiledFlow

    def snap(value) -> dict:
        return json.loads(serialize_value(value))

    ours = build_code_location()
    resolve = CompiledFlow.definitions
    monkeypatch.setattr(CompiledFlow, "definitions", lambda self, *_, **options: resolve(self, **options))
    dagsters = build_code_location()

    assert ours.jobs and all(isinstance(job, dg.JobDefinition) for job in ours.jobs)  # resolved
    flow_jobs = [j.name for j in dagsters.resolve_all_job_defs() if "dp/flow" in j.tags]
    assert len(flow_jobs) >= 5
    for name in flow_jobs:
        mine, theirs = (
            snap(JobSnap.from_job_def(ours.resolve_job_def(name))),
            snap(JobSnap.from_job_def(dagsters.resolve_job_def(name))),
        )
        for part in (
            "dep_structure_snapshot",
            "solid_definitions_snapshot",
            "tags",
            "description",
            "lineage_snapshot",
            "graph_def_name",
        ):
            assert mine[part] == theirs[part], (name, part)
        my_job, their_job = ours.resolve_job_def(name), dagsters.resolve_job_def(name)
        assert my_job.executor_def.name == their_job.executor_def.name, name
        assert (
            my_job.run_config_schema.config_type.fields.keys() == their_job.run_config_schema.config_type.fields.keys()
        ), name
        needed = {key for a in my_job.asset_layer.asset_graph.assets_defs for key in a.required_resource_keys}
        (my_mode,) = mine["mode_def_snaps"]
        assert {r["name"] for r in my_mode["resource_def_snaps"]} == needed, name
    repos = [snap(RepositorySnap.from_def(d.get_repository_def(), defer_snapshots=False)) for d in (ours, dagsters)]
    for repo in repos:  # compared above, job by job
        del repo["external_pipeline_datas"], repo["external_resource_data"]
    assert repos[0] == repos[1]


def test_asset_specs_carry_spec_metadata(flows_dir):
    graph = defs().resolve_asset_graph()
    node = graph.get(dg.AssetKey(["sales_summary", "revenue_by_region"]))
    assert node.owners == ["team:analytics"]
    assert node.tags["domain"] == "sales"
    assert node.metadata["dp/node_type"] == "GroupAggregate"
    assert node.code_version == node.metadata["dp/flow_version"] and len(node.code_version) == 16


def test_broken_spec_beside_good_ones(flows_dir, caplog):
    (flows_dir / "broken.yaml").write_text("id: broken\nnodes:\n  - {id: a, type: Missing, params: {}}\n")
    (flows_dir / "not_yaml.yaml").write_text("id: [unclosed\n")
    with caplog.at_level(logging.ERROR):
        loaded = defs()
    jobs = {j.name for j in loaded.resolve_all_job_defs()}
    assert {"sales_summary", "customer_orders"} <= jobs and "broken" not in jobs
    report = loaded.resolve_assets_def(REPORT_KEY)
    description = report.specs_by_key[REPORT_KEY].description
    assert "node 'a', field 'type': unknown node type 'Missing'" in description
    assert "not_yaml.yaml" in description
    assert "broken.yaml" in caplog.text
    result = loaded.resolve_job_def("customer_orders").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success


def test_stored_flow_that_no_longer_compiles_is_left_out(flows_dir, dp_home):
    """A published version whose node type left the catalog is reported; the rest still load."""
    from dp_assets.catalog import default_catalog
    from dp_resources import settings
    from dp_resources.store import FlowStore

    store = FlowStore(settings.store_url())
    store.upgrade()
    store.save("ghost", "v0", {"id": "ghost", "nodes": [{"id": "a", "type": "RemovedType"}]})
    loaded = build_code_location(store=store, catalog=default_catalog())
    description = loaded.resolve_assets_def(REPORT_KEY).specs_by_key[REPORT_KEY].description
    assert "flow ghost (version v0)" in description
    assert "sales_summary" in {j.name for j in loaded.resolve_all_job_defs()}


def test_flow_params_are_the_run_config(flows_dir, dp_home):
    job = defs().resolve_job_def("sales_summary")
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(run_config={"report_path": "custom/out.csv"}, instance=instance)
    assert result.success
    written = pd.read_csv(dp_home / "data" / "custom" / "out.csv")
    assert list(written.columns) == ["region", "revenue", "orders", "units", "target"]
    with pytest.raises(dg.DagsterInvalidConfigError, match="report_path"):
        job.execute_in_process(run_config={"report_path": 5}, instance=instance)
    with pytest.raises(dg.DagsterInvalidConfigError, match="no_such_param"):
        job.execute_in_process(run_config={"no_such_param": 1}, instance=instance)


def test_every_node_output_is_materialised_with_metadata(flows_dir, dp_home):
    result = defs().resolve_job_def("sales_summary").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    events = {e.asset_key.path[-1]: e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert set(events) == {
        "orders",
        "valid_orders",
        "targets",
        "revenue_by_region",
        "against_target",
        "ranked",
        "report",
    }
    ranked = events["ranked"]
    assert ranked["dagster/row_count"].value == 4
    assert [c.name for c in ranked["dagster/column_schema"].schema.columns] == [
        "region",
        "revenue",
        "orders",
        "units",
        "target",
    ]
    assert ranked["preview"].value.startswith("| region | revenue | orders | units | target |")


def test_materialising_one_asset_reads_upstream_from_its_latest_run(flows_dir, dp_home):
    """A user clicks Materialize on one asset: upstream values come from their latest run."""
    loaded = defs()
    instance = dg.DagsterInstance.get()
    first = loaded.resolve_job_def("sales_summary").execute_in_process(instance=instance)
    assert first.success
    ranked_key = dg.AssetKey(["sales_summary", "ranked"])
    subset = loaded.resolve_implicit_global_asset_job_def().get_subset(asset_selection={ranked_key})
    second = subset.execute_in_process(instance=instance)
    assert second.success
    assert [e.asset_key for e in second.get_asset_materialization_events()] == [ranked_key]
    expected = first.output_for_node("sales_summary__step", "against_target").sort_values(
        "revenue", ascending=False, kind="stable", ignore_index=True
    )
    pd.testing.assert_frame_equal(second.output_for_node("sales_summary__step", "ranked"), expected)


def test_retention_in_a_spec_becomes_the_daily_prune_schedule(flows_dir):
    def flows_with_retention() -> int:
        description = defs().resolve_schedule_def("dp_retention").description
        return int(description.split(" flow(s)")[0].rsplit(" ", 1)[-1])

    before = flows_with_retention()  # the dp-poc example declares retention
    (flows_dir / "kept.yaml").write_text(
        "id: kept\nretention: {keep_last: 3}\nnodes:\n  - {id: a, type: StaticData, params: {rows: [{x: 1}]}}\n"
    )
    assert flows_with_retention() == before + 1
    assert defs().resolve_schedule_def("dp_retention").cron_schedule == "0 3 * * *"


def test_run_history_retention_in_a_spec_deletes_old_runs(flows_dir, dp_home):
    (flows_dir / "brief.yaml").write_text(
        "id: brief\nretention: {keep_last: 1, run_history: true}\n"
        "nodes:\n  - {id: a, type: StaticData, params: {rows: [{x: 1}]}}\n"
    )
    loaded = defs()
    instance = dg.DagsterInstance.get()
    old, new = (loaded.resolve_job_def("brief").execute_in_process(instance=instance).run_id for _ in range(2))
    assert loaded.resolve_job_def("dp_retention_job").execute_in_process(instance=instance).success
    assert instance.get_run_by_id(old) is None
    assert instance.get_run_by_id(new) is not None


def test_E3_reexecution_from_failure_reuses_finished_nodes(flows_dir, dp_home):
    """The report's path is made unwritable: re-execution from failure reruns only what failed."""
    loaded = defs()
    instance = dg.DagsterInstance.get()
    job = loaded.resolve_job_def("sales_summary")
    blocker = dp_home / "data" / "reports"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the report folder should be")
    first = job.execute_in_process(instance=instance, raise_on_error=False)
    assert not first.success
    blocker.unlink()
    options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
    # The UI's "Re-execute from failure" and FROM_FAILURE run retries tag the run as a resume
    # retry; execute_job does not, so the test sets the same tag.
    second = dg.execute_job(
        dg.reconstructable(_sales_job),
        instance=instance,
        reexecution_options=options,
        tags={"dagster/is_resume_retry": "true"},
    )
    assert second.success
    logs = [e.message for e in instance.all_logs(second.run_id) if e.message]
    reused = {m.split("'")[1] for m in logs if "reused from the parent run" in m}
    assert {"orders", "valid_orders", "revenue_by_region", "ranked"} <= reused
    materialised = {e.asset_key.path[-1] for e in second.get_asset_materialization_events()}
    assert materialised == {"report"}


def _sales_job():
    return defs().resolve_job_def("sales_summary")


TINY_NODES = """\
id: tiny_nodes
policies: {steps: node}
nodes:
  - {id: source, type: StaticData, params: {rows: [{k: 1, v: 2.0}, {k: 2, v: 3.0}]}}
  - {id: doubled, type: AddModifyColumn, inputs: [source], params: {column: w, expression: v * 2}}
  - {id: saved, type: FileWriter, inputs: [doubled], params: {path: out/tiny.csv}}
"""


def test_E3_with_a_step_per_node_a_reused_node_still_feeds_the_next_step(flows_dir, dp_home):
    """A node's step that runs again in a resume retry (a Celery worker finished it after the run
    was failed, so Dagster did not count it) reuses the parent's output and still hands it to
    the next step: the sink writes."""
    (flows_dir / "tiny_nodes.yaml").write_text(TINY_NODES)
    instance = dg.DagsterInstance.get()
    blocker = dp_home / "data" / "out"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the output folder should be")
    first = defs().resolve_job_def("tiny_nodes").execute_in_process(instance=instance, raise_on_error=False)
    assert not first.success
    blocker.unlink()
    options = dg.ReexecutionOptions(
        parent_run_id=first.run_id, step_selection=["tiny_nodes__node__doubled", "tiny_nodes__node__saved"]
    )
    second = dg.execute_job(
        dg.reconstructable(_tiny_nodes_job),
        instance=instance,
        reexecution_options=options,
        tags={"dagster/is_resume_retry": "true"},
    )
    assert second.success
    logs = [e.message for e in instance.all_logs(second.run_id) if e.message]
    assert any("node 'doubled' reused from the parent run" in m for m in logs)
    expected = pd.DataFrame({"k": [1, 2], "v": [2.0, 3.0]}).assign(w=lambda df: df["v"] * 2)
    pd.testing.assert_frame_equal(pd.read_csv(dp_home / "data" / "out" / "tiny.csv"), expected)


def _tiny_nodes_job():
    return defs().resolve_job_def("tiny_nodes")


def test_V8_hostile_specs_in_files_and_store_leave_every_good_flow_loading(flows_dir, dp_home):
    """Issue 16: malformed specs of every kind, in DP_FLOWS_DIR and written straight into the
    store (around validation), beside the example flows: each is reported as that flow's (or
    file's) problem and every good flow's job is there; Dagster accepts the repository."""
    import sqlalchemy as sa

    from dp_assets.publishing import spec_files
    from dp_assets.spec.loading import read_spec_file
    from dp_resources import settings
    from dp_resources.store import FlowStore
    from tests.spec.test_hostile_specs import HOSTILE_FILES, deep

    good = {read_spec_file(path)["id"] for path in spec_files(flows_dir)}
    for name, text in HOSTILE_FILES.items():
        (flows_dir / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    store = FlowStore(settings.store_url())
    store.upgrade()
    node = {"id": "a", "type": "StaticData", "params": {"rows": [{"x": 1}]}}
    stored = {
        "edge_into_number": {
            "id": "edge_into_number",
            "nodes": [node, {"id": "b", "type": "SortData", "inputs": 5}],
            "edges": [{"source": "a", "target": "b"}],
        },
        "list_id": {"id": "list_id", "nodes": [{**node, "id": ["a"]}], "edges": [{"source": "a", "target": "a"}]},
        "deep": {"id": "deep", "nodes": [node], "x": deep(200)},
        "class": {"id": "class", "nodes": [node]},
        "sales_summary__step": {"id": "sales_summary__step", "nodes": [node]},  # the op of sales_summary
        "flow_load_report": {"id": "flow_load_report", "nodes": [node]},  # the platform's report op
        "impostor": {"id": "customer_orders", "nodes": [node]},  # another flow's job name
        "unreadable": {"id": "unreadable", "nodes": [node]},
        "not_a_mapping": {"id": "not_a_mapping", "nodes": [node]},
        "megabyte_type": {"id": "megabyte_type", "nodes": [{"id": "a", "type": "T" * 1_000_000}]},
    }
    for flow_id, spec in stored.items():
        store.save(flow_id, "v0", spec)
    with store.engine.begin() as conn:  # rows no publish would write: JSON json.loads cannot read, a list
        conn.execute(
            sa.text("UPDATE dp_flow_versions SET spec = :spec WHERE flow_id = 'unreadable'"),
            {"spec": "[" * 100_000 + "]" * 100_000},
        )
        conn.execute(
            sa.text("UPDATE dp_flow_versions SET spec = :spec WHERE flow_id = 'not_a_mapping'"), {"spec": "[1, 2]"}
        )

    loaded = build_code_location(store=store)
    dg.Definitions.validate_loadable(loaded)
    jobs = {j.name for j in loaded.resolve_all_job_defs()}
    assert good <= jobs
    assert not {"class", "deep", "list_id", "edge_into_number", "sales_summary__step", "flow_load_report"} & jobs
    description = loaded.resolve_assets_def(REPORT_KEY).specs_by_key[REPORT_KEY].description
    for name in HOSTILE_FILES:
        assert name in description, name
    for flow_id in stored:
        assert f"flow {flow_id} (version v0)" in description, flow_id
    assert len(description) < 100_000  # an error quoting a megabyte is cut in the report
