"""Versions are content hashes of the canonical form; every way of writing a flow loads the same."""

from __future__ import annotations

import json

import yaml

from dp_assets.catalog import default_catalog
from dp_assets.spec.loading import parse_spec_text, spec_version
from dp_assets.spec.validation import validate_spec

YAML_SPEC = """
id: tiny
nodes:
  - id: a
    type: StaticData
    params: {rows: [{x: 1, on: yes}]}
  - id: b
    type: SortData
    inputs: [a]
    params: {by: x}
"""


def test_key_order_and_whitespace_do_not_change_the_version():
    data = parse_spec_text(YAML_SPEC)
    reordered = json.loads(json.dumps(data, sort_keys=True))
    reordered["nodes"] = [dict(reversed(list(n.items()))) for n in reordered["nodes"]]
    as_json = parse_spec_text(json.dumps(reordered, indent=7))
    assert spec_version(data) == spec_version(as_json) == spec_version(reordered)


def test_a_changed_param_changes_the_version():
    data = parse_spec_text(YAML_SPEC)
    changed = parse_spec_text(YAML_SPEC.replace("by: x", "by: on"))
    assert spec_version(data) != spec_version(changed)


def test_yaml_keeps_on_and_yes_as_strings():
    """YAML 1.1 would read pandas' ``on:`` as True; specs use YAML 1.2 booleans."""
    data = parse_spec_text(YAML_SPEC)
    assert data["nodes"][0]["params"]["rows"] == [{"x": 1, "on": "yes"}]


def test_edges_and_inputs_load_to_the_same_model_and_version():
    by_inputs = parse_spec_text(YAML_SPEC)
    designer = {
        "id": "tiny",
        "nodes": [
            {
                "id": "a",
                "type": "StaticData",
                "position": {"x": 1, "y": 2},
                "data": {"params": {"rows": [{"x": 1, "on": "yes"}]}},
            },
            {"id": "b", "type": "SortData", "position": {"x": 5, "y": 2}, "data": {"params": {"by": "x"}}},
        ],
        "edges": [{"id": "e1", "source": "a", "target": "b", "sourceHandle": None, "targetHandle": None}],
    }
    catalog = default_catalog()
    left, right = validate_spec(by_inputs, catalog), validate_spec(designer, catalog)
    assert left.flow.model_dump() == right.flow.model_dump()
    assert left.version == right.version


def test_named_handles_become_named_inputs():
    designer = yaml.safe_load("""
id: joined
nodes:
  - {id: l, type: StaticData, data: {params: {rows: [{k: 1}]}}}
  - {id: r, type: StaticData, data: {params: {rows: [{k: 1, v: 2}]}}}
  - {id: j, type: JoinMerge, data: {params: {"on": k}}}
edges:
  - {source: l, target: j, targetHandle: left}
  - {source: r, target: j, targetHandle: right}
""")
    flow = validate_spec(designer, default_catalog()).flow
    assert flow.nodes[2].inputs == {"left": "l", "right": "r"}
