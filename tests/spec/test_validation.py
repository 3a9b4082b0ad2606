"""Invalid specs, each with the exact error it gives (flow, node, field, message)."""

from __future__ import annotations

import copy
import re

import pytest

from dp_assets.catalog import default_catalog
from dp_assets.spec.validation import FlowValidationError, validate_spec

GOOD = {
    "id": "orders_flow",
    "params": {"limit": {"type": "integer", "default": 5}},
    "nodes": [
        {"id": "rows", "type": "StaticData", "params": {"rows": [{"k": "a", "v": 1}, {"k": "b", "v": 2}]}},
        {
            "id": "agg",
            "type": "GroupAggregate",
            "inputs": ["rows"],
            "params": {"by": "k", "agg": {"total": ["v", "sum"]}},
        },
        {"id": "sorted", "type": "SortData", "inputs": ["agg"], "params": {"by": "total"}},
    ],
}


def mutate(path_value_pairs=(), drop=(), extra_nodes=()):
    spec = copy.deepcopy(GOOD)
    for path, value in path_value_pairs:
        target = spec
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    for path in drop:
        target = spec
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
    spec["nodes"].extend(extra_nodes)
    return spec


CASES = [
    (
        "bad-flow-id",
        mutate([(["id"], "Orders-Flow")]),
        ["flow 'Orders-Flow', field 'id': String should match pattern '^[a-z][a-z0-9_]*$'"],
    ),
    (
        "unknown-flow-field",
        mutate([(["schedule"], "daily")]),
        ["flow 'orders_flow', field 'schedule': unknown field; remove it or check its spelling"],
    ),
    (
        "duplicate-node-id",
        mutate(extra_nodes=[{"id": "agg", "type": "SortData", "inputs": ["rows"], "params": {"by": "k"}}]),
        ["flow 'orders_flow', node 'agg', field 'id': duplicate node id; node ids must be unique"],
    ),
    (
        "unknown-node-type",
        mutate([(["nodes", 2, "type"], "SortDat")]),
        [
            "flow 'orders_flow', node 'sorted', field 'type': unknown node type 'SortDat' (did you mean 'SortData'?); see `dp nodes` for the catalog"
        ],
    ),
    (
        "missing-node-type",
        mutate(drop=[["nodes", 2, "type"]]),
        [
            "flow 'orders_flow', node 'sorted', field 'type': missing 'type': every node needs a type from the catalog (`dp nodes`)"
        ],
    ),
    (
        "unknown-param",
        mutate([(["nodes", 2, "params", "ascend"], True)]),
        ["flow 'orders_flow', node 'sorted', field 'params.ascend': unknown field; remove it or check its spelling"],
    ),
    (
        "missing-param",
        mutate(drop=[["nodes", 1, "params", "agg"]]),
        ["flow 'orders_flow', node 'agg', field 'params.agg': required field is missing"],
    ),
    (
        "bad-param-value",
        mutate([(["nodes", 2, "params", "na_position"], "middle")]),
        ["flow 'orders_flow', node 'sorted', field 'params.na_position': Input should be 'first' or 'last'"],
    ),
    (
        "input-names-no-node",
        mutate([(["nodes", 2, "inputs"], ["agregate"])]),
        ["flow 'orders_flow', node 'sorted', field 'inputs[0]': input 'agregate' names no node of this flow"],
    ),
    (
        "wrong-input-count",
        mutate([(["nodes", 2, "inputs"], ["agg", "rows"])]),
        ["flow 'orders_flow', node 'sorted', field 'inputs': SortData takes 1 input(s) (input), got 2"],
    ),
    (
        "wrong-input-names",
        mutate(
            extra_nodes=[
                {"id": "j", "type": "JoinMerge", "inputs": {"left": "rows", "other": "agg"}, "params": {"on": "k"}}
            ]
        ),
        ["flow 'orders_flow', node 'j', field 'inputs': JoinMerge takes inputs named left, right, got left, other"],
    ),
    (
        "unknown-output",
        mutate([(["nodes", 2, "inputs"], ["agg.true"])]),
        [
            "flow 'orders_flow', node 'sorted', field 'inputs[0]': node 'agg' (GroupAggregate) has no output 'true'; its outputs: result"
        ],
    ),
    (
        "cycle",
        mutate([(["nodes", 1, "inputs"], ["sorted"])]),
        ["flow 'orders_flow', node 'agg', field 'inputs': cycle: agg -> sorted -> agg"],
    ),
    (
        "self-loop",
        mutate([(["nodes", 2, "inputs"], ["sorted"])]),
        ["flow 'orders_flow', node 'sorted', field 'inputs': cycle: sorted -> sorted"],
    ),
    (
        "unknown-param-reference",
        mutate([(["nodes", 2, "params", "by"], "{{ params.limt }}")]),
        [
            "flow 'orders_flow', node 'sorted', field 'params.by': references unknown flow param 'limt' (did you mean 'limit'?)"
        ],
    ),
    (
        "unknown-param-in-a-filter-condition",
        mutate(
            extra_nodes=[
                {"id": "big", "type": "FilterRows", "inputs": ["agg"], "params": {"condition": "total > params.limt"}}
            ]
        ),
        [
            "flow 'orders_flow', node 'big', field 'params.condition': references unknown flow param 'limt' (did you mean 'limit'?)"
        ],
    ),
    (
        "unknown-param-in-a-column-expression",
        mutate(
            extra_nodes=[
                {
                    "id": "scaled",
                    "type": "AddModifyColumn",
                    "inputs": ["agg"],
                    "params": {"column": "x", "expression": "total * params.factor"},
                }
            ]
        ),
        [
            "flow 'orders_flow', node 'scaled', field 'params.expression': references unknown flow param 'factor' (flow params: limit)"
        ],
    ),
    (
        "unknown-param-in-a-branch-condition",
        mutate(
            extra_nodes=[
                {"id": "gate", "type": "ConditionalBranch", "inputs": ["agg"], "params": {"condition": "params.go"}}
            ]
        ),
        [
            "flow 'orders_flow', node 'gate', field 'params.condition': references unknown flow param 'go' (flow params: limit)"
        ],
    ),
    (
        "unknown-param-in-an-expression-check",
        mutate(
            [(["nodes", 2, "checks"], [{"type": "expression", "expression": "total <= params.limits"}])],
        ),
        [
            "flow 'orders_flow', node 'sorted', field 'checks[0].expression': references unknown flow param 'limits' (did you mean 'limit'?)"
        ],
    ),
    (
        "param-reference-wrong-type",
        mutate([(["nodes", 2, "params", "ascending"], "{{ params.limit }}")]),
        [
            "flow 'orders_flow', node 'sorted', field 'params.ascending': Input should be a valid boolean, unable to interpret input"
        ],
    ),
    (
        "schema-missing-column",
        mutate([(["nodes", 2, "params", "by"], "amount")]),
        [
            "flow 'orders_flow', node 'sorted', field 'params.by': column 'amount' is not in the input (it has: k, total) (input 'agg.result' -> 'sorted')"
        ],
    ),
    (
        "schema-aggregate-non-numeric",
        mutate([(["nodes", 1, "params", "agg"], {"total": ["k", "sum"]})]),
        [
            "flow 'orders_flow', node 'agg', field 'params.agg.total': cannot sum column 'k' of type string (input 'rows.result' -> 'agg')"
        ],
    ),
    (
        "schema-join-key-types",
        mutate(
            extra_nodes=[
                {"id": "other", "type": "StaticData", "params": {"rows": [{"k": 1}]}},
                {"id": "j", "type": "JoinMerge", "inputs": {"left": "rows", "right": "other"}, "params": {"on": "k"}},
            ]
        ),
        [
            "flow 'orders_flow', node 'j', field 'params.on': join key types differ: left 'k' is string, right 'k' is integer (input 'rows.result' -> 'j', 'other.result' -> 'j')"
        ],
    ),
    (
        "no-nodes",
        mutate([(["nodes"], [])]),
        ["flow 'orders_flow', field 'nodes': List should have at least 1 item after validation, not 0"],
    ),
    (
        "bad-trigger",
        mutate([(["triggers"], [{"type": "schedule"}])]),
        ["flow 'orders_flow', field 'triggers[0].cron': required field is missing"],
    ),
]


@pytest.mark.parametrize("spec,expected", [pytest.param(s, e, id=i) for i, s, e in CASES])
def test_invalid_spec_gives_exact_errors(spec, expected):
    with pytest.raises(FlowValidationError) as info:
        validate_spec(spec, default_catalog())
    assert [str(e) for e in info.value.errors] == expected


def test_every_error_found_in_one_pass():
    spec = mutate(
        [(["nodes", 2, "type"], "Nope"), (["nodes", 1, "inputs"], ["missing"]), (["nodes", 0, "params", "bogus"], 1)],
        extra_nodes=[{"id": "rows", "type": "SortData", "inputs": ["agg"], "params": {"by": "k"}}],
    )
    with pytest.raises(FlowValidationError) as info:
        validate_spec(spec, default_catalog())
    fields = {(e.node, e.field) for e in info.value.errors}
    assert {("sorted", "type"), ("agg", "inputs[0]"), ("rows", "params.bogus"), ("rows", "id")} <= fields


def test_good_spec_validates_with_schemas():
    validated = validate_spec(GOOD, default_catalog())
    assert validated.schemas["agg"] == {"k": "string", "total": "integer"}
    assert [n.id for n in validated.flow.nodes] == ["rows", "agg", "sorted"]


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        (("tags",), {"": "x"}, "field 'tags.'"),
        (("tags",), {"a b": "x"}, "field 'tags.a b'"),
        (("owners",), ["bob"], "field 'owners[0]'"),
        (("nodes", 0, "tags"), {"tier": "has space"}, "node 'rows', field 'tags.tier'"),
        (("nodes", 1, "tags"), {"tier": "x" * 64}, "node 'agg', field 'tags.tier'"),
    ],
    ids=["empty-tag-key", "tag-key-space", "owner-not-email-or-team", "tag-value-space", "tag-value-too-long"],
)
def test_tags_and_owners_follow_dagsters_rules(field, value, where):
    """Dagster refuses these asset tags and owners at definition time; the spec refuses them first."""
    with pytest.raises(FlowValidationError, match=re.escape(f"flow 'orders_flow', {where}")):
        validate_spec(mutate([(field, value)]), default_catalog())
    fine = {"tags": {"team/tier": "gold-1.0"}, "owners": ["team:data", "a.b@example.com"]}
    validate_spec({**GOOD, **fine}, default_catalog())


def test_the_file_trigger_of_docs_triggers_md_validates():
    """docs/triggers.md's file trigger: a required `path` param, filled by the trigger (or by a
    launch), read by FileInput. Its stand-in is a text, not an empty path ('the path is empty')."""
    spec = {
        "id": "incoming",
        "params": {"path": {"type": "string", "required": True}},
        "triggers": [{"type": "file", "glob": "incoming/**/*.csv", "param": "path"}],
        "nodes": [
            {"id": "orders", "type": "FileInput", "params": {"path": "{{ params.path }}"}},
            {"id": "copy", "type": "FileWriter", "inputs": ["orders"], "params": {"path": "out/{{ params.path }}"}},
        ],
    }
    validate_spec(spec, default_catalog())
    spec["params"]["path"] = {"type": "string", "default": ""}  # a default is checked as it is
    with pytest.raises(FlowValidationError, match=r"field 'params\.path': the path is empty"):
        validate_spec(spec, default_catalog())


def test_a_param_with_no_default_names_columns_only_the_run_knows():
    """A required param naming a column: its stand-in ('') is no column to look for; the node's
    and its readers' columns are unknown before the run. A wrong type is still refused."""
    spec = mutate(
        extra_nodes=[{"id": "by_col", "type": "SortData", "inputs": ["agg"], "params": {"by": "{{ params.col }}"}}]
    )
    spec["params"]["col"] = {"type": "string", "required": True}
    spec["nodes"].append({"id": "after", "type": "SelectColumns", "inputs": ["by_col"], "params": {"columns": ["x"]}})
    validated = validate_spec(spec, default_catalog())
    assert validated.schemas["by_col"] is None and validated.schemas["after"] is None
    spec["params"]["col"] = {"type": "integer", "required": True}
    with pytest.raises(FlowValidationError, match=r"node 'by_col', field 'params\.by'"):
        validate_spec(spec, default_catalog())


def test_partition_fields_in_an_expression_are_not_flow_params():
    """`partition.start` reads the run's partition: no flow param to declare (a regression of
    the check that `params.NAME` in an expression names a flow param)."""
    spec = mutate(
        extra_nodes=[
            {"id": "window", "type": "FilterRows", "inputs": ["rows"], "params": {"condition": "partition.key != k"}}
        ]
    )
    spec["partitions"] = {"type": "static", "keys": ["a", "b"]}
    validate_spec(spec, default_catalog())
