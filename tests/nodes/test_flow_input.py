"""Cross-flow lineage: a ``FlowInput`` node reads another flow's node as a real Dagster asset
dependency (the UI's edge, automation), loads that node's latest kept output through the IO
manager, and the location refuses references it cannot satisfy, naming flow, node and field."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dp_assets.definitions import defs
from dp_assets.spec.cross_flow import FlowRead, cross_flow_problems
from dp_io import load_latest_output
from tests.checks.conftest import automation_daemon, flows, write_flow

ROWS = [{"region": "EU", "amount": 3.0}, {"region": "US", "amount": 5.0}, {"region": "EU", "amount": 4.0}]
UPSTREAM = {
    "id": "sales",
    "nodes": [
        {"id": "orders", "type": "StaticData", "params": {"rows": ROWS}},
        {"id": "big", "type": "FilterRows", "inputs": ["orders"], "params": {"condition": "amount > 3"}},
    ],
}


__all__ = ["flows"]  # the fixture: an empty DP_FLOWS_DIR on a fresh platform home


def key(*path: str) -> dg.AssetKey:
    return dg.AssetKey(list(path))


def reader(flow_id: str = "report", upstream_flow: str = "sales", upstream_node: str = "big", **extra) -> dict:
    return {
        "id": flow_id,
        "nodes": [
            {"id": "sales_big", "type": "FlowInput", "params": {"flow": upstream_flow, "node": upstream_node}},
            {
                "id": "per_region",
                "type": "GroupAggregate",
                "inputs": ["sales_big"],
                "params": {"by": "region", "agg": {"total": ["amount", "sum"]}},
            },
        ],
        **extra,
    }


def test_a_node_reads_the_latest_output_of_another_flows_node(flows):
    write_flow(flows, UPSTREAM)
    write_flow(flows, reader())
    loaded = defs()
    graph = loaded.resolve_asset_graph()
    # a real Dagster dependency: the UI draws the edge from sales/big into the report flow
    assert graph.get(key("report", "sales_big")).parent_keys == {key("sales", "big")}
    assert key("report", "sales_big") in graph.get(key("sales", "big")).child_keys
    instance = dg.DagsterInstance.get()

    # nothing to read yet: the run fails naming the flow, the node and the asset it reads
    failed = loaded.resolve_job_def("report").execute_in_process(instance=instance, raise_on_error=False)
    assert not failed.success
    message = failed.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert (
        "flow 'report', node 'sales_big'" in message and "sales/big" in message and "never been materialised" in message
    )

    assert loaded.resolve_job_def("sales").execute_in_process(instance=instance).success
    assert loaded.resolve_job_def("report").execute_in_process(instance=instance).success
    io_manager = loaded.resolve_job_def("report").resource_defs["io_manager"]
    with dg.build_resources({"io_manager": io_manager}, instance=instance) as resources:
        got = load_latest_output(instance, key("report", "per_region"), resources.io_manager)
    orders = pd.DataFrame(ROWS)
    expected = orders[orders["amount"] > 3].groupby("region", as_index=False).agg(total=("amount", "sum"))
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)


def test_an_ephemeral_flow_input_links_the_upstream_straight_to_its_reader(flows):
    write_flow(flows, UPSTREAM)
    write_flow(flows, reader(policies={"ephemeral": "intermediate"}))
    graph = defs().resolve_asset_graph()
    assert not graph.has(key("report", "sales_big"))
    assert graph.get(key("report", "per_region")).parent_keys == {key("sales", "big")}


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (
            reader(upstream_flow="nowhere"),
            "flow 'report', node 'sales_big', field 'params.flow': there is no flow 'nowhere'",
        ),
        (
            reader(upstream_node="missing"),
            "flow 'report', node 'sales_big', field 'params.node': flow 'sales' has no stored node 'missing' "
            "(its stored nodes: big, orders",
        ),
        (
            reader(upstream_flow="in_table", upstream_node="kept"),
            "flow 'report', node 'sales_big', field 'params.node': flow 'in_table' has no stored node 'kept' "
            "(its stored nodes: none; an ephemeral node or a notification is never stored, and a node kept "
            "in a table is read with TableReader)",
        ),
        (
            reader(upstream_flow="report", upstream_node="per_region"),
            "flow 'report', node 'sales_big', field 'params.flow': the flow reads itself",
        ),
    ],
    ids=["unknown-flow", "unknown-node", "node-in-a-table", "reads-itself"],
)
def test_a_reference_the_location_cannot_satisfy_leaves_the_flow_out_naming_it(flows, spec, problem):
    write_flow(flows, UPSTREAM)
    write_flow(
        flows, {"id": "in_table", "nodes": [{**UPSTREAM["nodes"][0], "id": "kept", "storage": {"format": "table"}}]}
    )
    write_flow(flows, spec)
    loaded = defs()
    assert loaded.resolve_job_def("sales")  # the other flows load
    with pytest.raises(dg.DagsterInvariantViolationError):
        loaded.resolve_job_def("report")
    problems = loaded.resolve_asset_graph().get(key("dp_platform", "flow_load_report")).description
    assert problem in problems


def test_flows_that_read_each_other_are_left_out_naming_the_cycle(flows):
    write_flow(flows, UPSTREAM)
    ping = reader("ping", upstream_flow="pong", upstream_node="per_region")
    pong = reader("pong", upstream_flow="ping", upstream_node="per_region")
    write_flow(flows, ping)
    write_flow(flows, pong)
    write_flow(flows, reader("after", upstream_flow="ping", upstream_node="per_region"))
    loaded = defs()
    problems = loaded.resolve_asset_graph().get(key("dp_platform", "flow_load_report")).description
    assert "flow 'ping', node 'sales_big', field 'params.flow': the flow is on a cycle: " in problems
    assert "'ping' reads 'pong' reads 'ping'" in problems or "'pong' reads 'ping' reads 'pong'" in problems
    assert "flow 'after', node 'sales_big', field 'params.flow': it reads flow 'ping', which did not load" in problems
    assert loaded.resolve_job_def("sales")


FLOWS = st.lists(st.sampled_from("abcdef"), min_size=1, max_size=6, unique=True)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), flows=FLOWS)
def test_cross_flow_problems_leave_exactly_the_flows_that_cannot_load(data, flows):
    """The invariant: the flows kept read only kept flows' stored nodes and form no cycle, and a
    flow is left out only with a message naming it, its node and the field."""
    stored = {flow: frozenset(data.draw(st.sets(st.sampled_from(["x", "y"])))) for flow in flows}
    reads = {
        flow: [
            FlowRead(f"n{i}", upstream, node)
            for i, (upstream, node) in enumerate(
                data.draw(st.lists(st.tuples(st.sampled_from([*flows, "zz"]), st.sampled_from(["x", "y"])), max_size=3))
            )
        ]
        for flow in flows
    }
    problems = cross_flow_problems(stored, reads)
    kept = set(flows) - set(problems)
    for flow in kept:
        for read in reads[flow]:
            assert read.upstream_flow in kept and read.upstream_node in stored[read.upstream_flow]
    sorter_graph = {flow: {r.upstream_flow for r in reads[flow]} for flow in kept}
    from graphlib import TopologicalSorter

    TopologicalSorter(sorter_graph).prepare()  # no cycle among the kept flows
    for flow, text in problems.items():
        assert text.startswith(f"flow '{flow}', node 'n") and (
            "field 'params.flow'" in text or "field 'params.node'" in text
        )
    # a flow left out had a reason of its own or read one left out: nothing more is dropped
    for flow in problems:
        own = [
            r for r in reads[flow] if r.upstream_flow not in stored or r.upstream_node not in stored[r.upstream_flow]
        ]
        assert own or any(r.upstream_flow in problems for r in reads[flow])


def test_the_daemon_runs_the_reader_when_the_upstream_flow_materialises(tmp_path):
    """A live ``dagster-daemon``: the reading flow declares ``automation: eager``; a run of the
    upstream flow materialises sales/big, and the reader's automation sensor launches the run
    that reads it and materialises report/per_region."""
    specs = [UPSTREAM, reader(automation={"condition": "eager"})]
    with automation_daemon(tmp_path, specs, "report_automation_sensor") as session:
        assert defs().resolve_job_def("sales").execute_in_process(instance=session.instance).success
        session.wait(
            "the daemon to materialise report/per_region",
            lambda: session.instance.get_latest_materialization_event(key("report", "per_region")) is not None,
        )
        runs = session.instance.get_runs(dg.RunsFilter(tags={"dagster/from_automation_condition": "true"}))
        assert {run.tags.get("dp/flow") for run in runs} == {"report"}


def test_a_flow_left_out_for_its_reads_takes_no_dagster_name(flows):
    """Flow ``a`` (first by id) reads a flow that does not exist, and its step's op is named
    ``a__step``, the name of flow ``a__step``'s job: ``a`` is left out for its read, so the name
    is ``a__step``'s and that flow loads (before, ``a`` claimed the name first: both were out)."""
    write_flow(flows, reader("a", upstream_flow="nowhere"))
    write_flow(flows, {"id": "a__step", "nodes": [UPSTREAM["nodes"][0]]})
    loaded = defs()
    problems = loaded.resolve_asset_graph().get(key("dp_platform", "flow_load_report")).description
    assert "flow 'a', node 'sales_big', field 'params.flow': there is no flow 'nowhere'" in problems
    assert "Dagster names" not in problems
    assert loaded.resolve_job_def("a__step")
    # the clash itself is still refused, naming the later flow, when both are otherwise fine
    write_flow(flows, UPSTREAM)
    write_flow(flows, reader("a"))
    problems = defs().resolve_asset_graph().get(key("dp_platform", "flow_load_report")).description
    assert "flow 'a__step' makes Dagster names another flow already has: job or op 'a__step' (of flow 'a')" in problems
