"""The spec fields of issue 20: ``ephemeral``, ``policies.ephemeral``, ``engine`` and
``policies.max_parallel_nodes``; which nodes are ephemeral, and the errors of a node that
cannot be."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dp_assets.catalog import default_catalog
from dp_assets.spec.ephemeral import ephemeral_nodes, readers
from dp_assets.spec.validation import FlowValidationError, validate_spec

ROWS = [{"k": "a", "v": 1}, {"k": "b", "v": 2}]
FLOW: dict[str, Any] = {
    "id": "eph",
    "nodes": [
        {"id": "rows", "type": "StaticData", "params": {"rows": ROWS}},
        {"id": "big", "type": "FilterRows", "inputs": ["rows"], "params": {"condition": "v > 1"}},
        {"id": "agg", "type": "GroupAggregate", "inputs": ["big"], "params": {"by": "k", "agg": {"n": ["v", "sum"]}}},
        {"id": "out", "type": "FileWriter", "inputs": ["agg"], "params": {"path": "out.csv"}},
    ],
}


def spec(**changes: Any) -> dict[str, Any]:
    flow = copy.deepcopy(FLOW)
    for node_id, fields in changes.items():
        if node_id == "policies":
            flow["policies"] = fields
            continue
        next(n for n in flow["nodes"] if n["id"] == node_id).update(fields)
    return flow


def errors_of(flow: dict[str, Any]) -> list[str]:
    with pytest.raises(FlowValidationError) as caught:
        validate_spec(flow, default_catalog())
    return [str(error) for error in caught.value.errors]


def test_the_fields_default_to_todays_behaviour() -> None:
    flow = validate_spec(FLOW, default_catalog()).flow
    assert flow.policies.ephemeral == "none"
    assert flow.policies.engine == "pandas"
    assert flow.policies.max_parallel_nodes is None
    assert all(not node.ephemeral and node.engine is None for node in flow.nodes)  # type: ignore[attr-defined]
    assert ephemeral_nodes(flow, default_catalog()) == frozenset()


def test_a_node_may_say_ephemeral_and_engine() -> None:
    flow = validate_spec(spec(big={"ephemeral": True, "engine": "duckdb"}), default_catalog()).flow
    assert ephemeral_nodes(flow, default_catalog()) == {"big"}
    assert next(n for n in flow.nodes if n.id == "big").engine == "duckdb"  # type: ignore[attr-defined]


def test_intermediate_keeps_sources_sinks_and_leaves_stored() -> None:
    # 'rows' is read by 'big': only its type decides (a source produces data and has readers),
    # so it is ephemeral too; the sink and a node read by nothing are never ephemeral.
    flow = validate_spec(spec(policies={"ephemeral": "intermediate"}), default_catalog()).flow
    assert ephemeral_nodes(flow, default_catalog()) == {"rows", "big", "agg"}


def test_intermediate_keeps_nodes_with_storage_or_columns() -> None:
    flow = validate_spec(
        spec(
            policies={"ephemeral": "intermediate"},
            big={"storage": {"format": "parquet"}},
            agg={"columns": [{"name": "k"}]},
        ),
        default_catalog(),
    ).flow
    assert ephemeral_nodes(flow, default_catalog()) == {"rows"}


def test_intermediate_with_a_step_per_node_keeps_nodes_read_twice() -> None:
    flow = spec(policies={"ephemeral": "intermediate", "steps": "node"})
    flow["nodes"].append({"id": "again", "type": "SortData", "inputs": ["big"], "params": {"by": "v"}})
    validated = validate_spec(flow, default_catalog()).flow
    assert ephemeral_nodes(validated, default_catalog()) == {"rows", "agg"}


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        (
            {"out": {"ephemeral": True}},
            "flow 'eph', node 'out', field 'ephemeral': a FileWriter node acts on the world",
        ),
        ({"agg": {"ephemeral": True}, "out": {"inputs": ["big"]}}, "node 'agg', field 'ephemeral': no node reads it"),
        ({"big": {"ephemeral": True, "columns": [{"name": "k"}]}}, "node 'big', field 'columns': declared columns"),
        ({"big": {"ephemeral": True, "storage": {"format": "parquet"}}}, "node 'big', field 'storage': an ephemeral"),
        ({"big": {"engine": "spark"}}, "node 'big', field 'engine': Input should be 'pandas' or 'duckdb'"),
        ({"policies": {"ephemeral": "all"}}, "field 'policies.ephemeral': Input should be 'none' or 'intermediate'"),
        ({"policies": {"max_parallel_nodes": 0}}, "field 'policies.max_parallel_nodes'"),
    ],
)
def test_a_node_that_cannot_be_ephemeral_is_an_error_naming_it(changes: dict[str, Any], error: str) -> None:
    assert any(error in message for message in errors_of(spec(**changes))), errors_of(spec(**changes))


@st.composite
def flows(draw: st.DrawFn) -> dict[str, Any]:
    """A random DAG of transforms over two sources, some nodes ephemeral, some sinks."""
    nodes: list[dict[str, Any]] = [
        {"id": "s0", "type": "StaticData", "params": {"rows": ROWS}},
        {"id": "s1", "type": "StaticData", "params": {"rows": ROWS}},
    ]
    for index in range(draw(st.integers(0, 6))):
        upstream = draw(st.sampled_from([n["id"] for n in nodes if n["type"] != "FileWriter"]))
        kind = draw(st.sampled_from(["SortData", "FileWriter"]))
        params = {"by": "v"} if kind == "SortData" else {"path": f"o{index}.csv"}
        nodes.append({"id": f"n{index}", "type": kind, "inputs": [upstream], "params": params})
    policies = {
        "ephemeral": draw(st.sampled_from(["none", "intermediate"])),
        "steps": draw(st.sampled_from(["flow", "node"])),
    }
    return {"id": "random_flow", "policies": policies, "nodes": nodes}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flows())
def test_an_ephemeral_node_always_has_a_reader_and_no_side_effects(flow: dict[str, Any]) -> None:
    catalog = default_catalog()
    validated = validate_spec(flow, catalog, check_compiles=False).flow
    chosen = ephemeral_nodes(validated, catalog)
    read_by = readers(validated)
    for node in validated.nodes:  # type: ignore[attr-defined]
        if node.id in chosen:
            assert read_by[node.id], node.id
            assert not catalog[node.type].side_effects
        elif validated.policies.ephemeral == "intermediate" and validated.policies.steps == "flow":
            assert not read_by[node.id] or catalog[node.type].side_effects
