"""V8: hostile spec documents give an error naming where, never a traceback, a hang or a dead
code location; a spec that validates compiles (issue 16, track A)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dp_assets.catalog import default_catalog
from dp_assets.spec.document import MAX_DEPTH, SpecShapeError
from dp_assets.spec.loading import SpecLoadError, parse_spec_text
from dp_assets.spec.validation import FlowValidationError, validate_spec

CATALOG = default_catalog()
ROOT = Path(__file__).resolve().parents[2]
SOURCE = {"id": "a", "type": "StaticData", "params": {"rows": [{"x": 1}]}}
SORT = {"id": "b", "type": "SortData", "params": {"by": "x"}}


def deep(levels: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def flow(*nodes, **extra) -> dict:
    return {"id": "hostile", "nodes": list(nodes), **extra}


# (id, spec, node named in the error or None, field named in the error)
HOSTILE = [
    (
        "edge_into_string_inputs",
        flow(SOURCE, {**SORT, "inputs": "a"}, edges=[{"source": "a", "target": "b"}]),
        "b",
        "inputs",
    ),
    (
        "edge_into_number_inputs",
        flow(SOURCE, {**SORT, "inputs": 7}, edges=[{"source": "a", "target": "b"}]),
        "b",
        "inputs",
    ),
    ("number_inputs", flow(SOURCE, {**SORT, "inputs": 7}), "b", "inputs"),
    ("list_node_id", flow({**SOURCE, "id": ["a"]}, edges=[{"source": "a", "target": "a"}]), None, None),
    ("list_edge_target", flow(SOURCE, edges=[{"source": "a", "target": ["b"]}]), None, "edges[0].target"),
    ("dict_edge_source", flow(SOURCE, SORT, edges=[{"source": {"a": 1}, "target": "b"}]), None, "edges[0].source"),
    (
        "int_keys_in_inputs",
        flow(SOURCE, {"id": "j", "type": "JoinMerge", "inputs": {1: "a", 2: "a"}, "params": {"on": "x"}}),
        "j",
        "inputs",
    ),
    ("int_key_in_free_params", flow({**SOURCE, "params": {"rows": [{1: "x", "y": 2}]}}), "a", "params.rows[0]"),
    ("deep_python_value", flow({**SOURCE, "params": {"rows": deep(10_000)}}), "a", None),
    ("nan_default", flow(SOURCE, params={"p": {"type": "number", "default": float("nan")}}), None, "params.p.default"),
    ("nul_in_text", flow({**SOURCE, "description": "a\x00b"}), "a", "description"),
    ("lone_surrogate", flow({**SOURCE, "description": "\ud800"}), "a", "description"),
    ("set_value", flow({**SOURCE, "params": {"rows": {1, 2}}}), "a", "params.rows"),
    ("bytes_value", flow({**SOURCE, "description": b"x"}), "a", "description"),
    ("nodes_as_mapping", {"id": "hostile", "nodes": {"a": SOURCE}}, None, "nodes"),
    ("edges_without_nodes", {"id": "hostile", "edges": [{"source": "a", "target": "b"}]}, None, "edges"),
    ("edges_not_a_list", flow(SOURCE, edges={"source": "a"}), None, "edges"),
    ("list_node_type", flow({**SOURCE, "type": ["StaticData"]}), "a", "type"),
    ("missing_required_params", flow(SOURCE, {"id": "b", "type": "SortData", "inputs": ["a"]}), "b", "params"),
    ("not_a_mapping", ["id", "nodes"], None, None),
]


@pytest.mark.parametrize("spec,node,field", [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_V8_hostile_shapes_are_validation_errors_naming_the_place(spec, node, field):
    with pytest.raises(FlowValidationError) as raised:
        validate_spec(spec, CATALOG)
    errors = raised.value.errors
    assert errors and all(error.flow for error in errors)
    if node is not None:
        assert any(error.node == node for error in errors), errors
    if field is not None:
        assert any(error.field == field for error in errors), errors


ACCEPTED_BUT_REFUSED_BY_DAGSTER = [
    ("reserved_flow_id", {"id": "config", "nodes": [SOURCE]}, None, "id"),
    ("keyword_flow_id", {"id": "class", "nodes": [SOURCE]}, None, "id"),
    ("reserved_node_id", flow({**SOURCE, "id": "context"}), "context", "id"),
    ("keyword_node_id", flow({**SOURCE, "id": "lambda"}), "lambda", "id"),
    (
        "string_default_of_integer",
        flow(SOURCE, params={"p": {"type": "integer", "default": "5"}}),
        None,
        "params.p.default",
    ),
    (
        "bool_default_of_integer",
        flow(SOURCE, params={"p": {"type": "integer", "default": True}}),
        None,
        "params.p.default",
    ),
    ("int_default_of_boolean", flow(SOURCE, params={"p": {"type": "boolean", "default": 0}}), None, "params.p.default"),
    ("mapping_default_of_list", flow(SOURCE, params={"p": {"type": "list", "default": {}}}), None, "params.p.default"),
    ("number_default_of_string", flow(SOURCE, params={"p": {"default": 5}}), None, "params.p.default"),
    (
        "schedule_param_undeclared",
        flow(SOURCE, triggers=[{"type": "schedule", "cron": "0 * * * *", "params": {"nope": 1}}]),
        None,
        "triggers[0].params",
    ),
    (
        "file_trigger_param_undeclared",
        flow(SOURCE, triggers=[{"type": "file", "glob": "in/*.csv"}]),
        None,
        "triggers[0].param",
    ),
    ("flow_starts_itself", flow(SOURCE, triggers=[{"type": "flow", "flow": "hostile"}]), None, "triggers[0].flow"),
    (
        "underscore_param_name",
        flow(SOURCE, params={"_p": {}}, triggers=[{"type": "schedule", "cron": "0 * * * *"}]),
        None,
        "params._p",
    ),
    ("infinite_timeout", flow(SOURCE, policies={"timeout_seconds": float("inf")}), None, "policies.timeout_seconds"),
]


@pytest.mark.parametrize(
    "spec,node,field",
    [case[1:] for case in ACCEPTED_BUT_REFUSED_BY_DAGSTER],
    ids=[case[0] for case in ACCEPTED_BUT_REFUSED_BY_DAGSTER],
)
def test_V8_what_dagster_refuses_is_a_validation_error_naming_the_field(spec, node, field):
    """These passed `dp validate` and then broke the flow in the location (Dagster config and
    name errors): validation is the whole truth."""
    with pytest.raises(FlowValidationError) as raised:
        validate_spec(spec, CATALOG)
    assert any(error.node == node and error.field == field for error in raised.value.errors), raised.value


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    lines = ["id: bomb", "nodes:", "  - {id: a, type: StaticData, params: {rows: [{x: 1}]}}", "extra:"]
    lines.append('  l0: &l0 ["lol"]')
    for level in range(1, levels + 1):
        lines.append(f"  l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


TEXTS = [
    ("deep_json", '{"id": "deep", "x": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("deep_json_objects", '{"id": "deep", "x": ' + '{"a":' * 50_000 + "1" + "}" * 50_000 + "}"),
    ("deep_yaml_flow", "id: deep\nx: " + "[" * 100_000 + "]" * 100_000 + "\n"),
    ("deep_yaml_block", "id: deep\nx:\n" + "".join(f"{'  ' * (i + 1)}- \n" for i in range(200))),
    ("alias_bomb", alias_bomb()),
    ("recursive_alias", "id: r\nx: &a [*a]\n"),
    ("huge_integer", '{"id": "big", "x": ' + "9" * 10_000 + "}"),
    ("binary_tag", "id: b\nx: !!binary aGVsbG8=\n"),
    ("set_tag", "id: s\nx: !!set {a, b}\n"),
    ("nan_json", '{"id": "n", "x": NaN}'),
    ("int_keys_yaml", "id: k\nnodes:\n  - {id: j, type: JoinMerge, inputs: {1: a}}\n"),
    ("too_large", "id: big\nx: '" + "a" * (5 * 1024 * 1024) + "'\n"),
    # A key written twice: the last one ran while a reader of the file saw the first.
    (
        "duplicate_key_yaml",
        "id: d\nnodes:\n  - {id: a, type: StaticData, params: {rows: []}, params: {rows: [{x: 1}]}}\n",
    ),
    ("duplicate_key_json", '{"id": "d", "nodes": [], "nodes": [{"id": "a"}]}'),
]


@pytest.mark.parametrize("text", [case[1] for case in TEXTS], ids=[case[0] for case in TEXTS])
def test_V8_hostile_text_is_a_load_error_naming_the_source(text):
    with pytest.raises(SpecLoadError, match=r"hostile\.yaml"):
        parse_spec_text(text, source="hostile.yaml")


def test_V8_shape_error_names_flow_node_and_field():
    with pytest.raises(SpecShapeError) as raised:
        parse_spec_text("id: k\nnodes:\n  - {id: j, type: JoinMerge, inputs: {1: a}}\n", source="k.yaml")
    assert (raised.value.flow, raised.value.node, raised.value.field) == ("k", "j", "inputs")
    assert str(raised.value).startswith("k.yaml: flow 'k', node 'j', field 'inputs': key 1 is not a string")


def test_V8_nesting_up_to_the_limit_and_small_anchors_still_load():
    data = parse_spec_text(json.dumps({"id": "ok", "x": deep(MAX_DEPTH - 2)}))
    assert data["id"] == "ok"
    anchored = parse_spec_text(
        "id: anchored\nrows: &rows [{x: 1}]\nnodes:\n  - {id: a, type: StaticData, params: {rows: *rows}}\n"
    )
    assert anchored["nodes"][0]["params"]["rows"] == [{"x": 1}]


def test_V8_yaml_dates_stay_text_as_in_json():
    """A YAML date would otherwise be a Python date: not storable as JSON, and refused by the
    job's config as a string param's default."""
    data = parse_spec_text("id: d\nparams: {day: {type: date, default: 2024-01-31}}\nnodes: []\n")
    assert data["params"]["day"]["default"] == "2024-01-31"


def test_V8_normalising_never_changes_the_callers_document():
    spec = flow(SOURCE, {**SORT, "inputs": ["a"]}, edges=[{"source": "a", "target": "b"}])
    before = json.dumps(spec, sort_keys=True)
    with pytest.raises(FlowValidationError, match="SortData takes 1 input"):
        validate_spec(spec, CATALOG)
    assert json.dumps(spec, sort_keys=True) == before


# ---------------------------------------------------------------------------------------------
# dp validate on a folder of hostile files beside a good one


HOSTILE_FILES = {
    "alias_bomb.yaml": alias_bomb(),
    "deep.json": '{"id": "deep", "nodes": ' + "[" * 10_000 + "]" * 10_000 + "}",
    "deep.yaml": "id: deep\nnodes: " + "[" * 10_000 + "]" * 10_000 + "\n",
    "string_inputs.yaml": "id: s\nnodes:\n  - {id: a, type: StaticData, params: {rows: [{x: 1}]}}\n"
    "  - {id: b, type: SortData, inputs: 5, params: {by: x}}\n"
    "edges:\n  - {source: a, target: b}\n",
    "list_id.json": json.dumps(
        {"id": "l", "nodes": [{"id": ["a"], "type": "StaticData"}], "edges": [{"source": "a", "target": "a"}]}
    ),
    "int_keys.yaml": "id: k\nnodes:\n  - {id: j, type: JoinMerge, inputs: {1: a, 2: a}, params: {'on': x}}\n",
    "reserved.yaml": "id: config\nnodes:\n  - {id: a, type: StaticData, params: {rows: [{x: 1}]}}\n",
    "not_utf8.yaml": b"\xff\xfe\x00id: x",
}


def test_V8_dp_validate_reports_every_hostile_file_and_checks_the_good_one(tmp_path, dp_home):
    """Run as a user runs it, in its own process: a hang or a traceback fails the test."""
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "good.yaml").write_text((ROOT / "flows" / "sales_summary.yaml").read_text())
    for name, text in HOSTILE_FILES.items():
        (folder / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    result = subprocess.run(
        [sys.executable, "-c", "from dp_assets.cli import main; main()", "validate", str(folder)],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ},
        cwd=ROOT,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"ok    {folder / 'good.yaml'}" in result.stdout
    for name in HOSTILE_FILES:
        assert f"FAIL  {folder / name}" in result.stderr, name
    assert f"{len(HOSTILE_FILES)} invalid spec(s)" in result.stderr
    assert "flow 's', node 'b', field 'inputs'" in result.stderr
    assert "flow 'k', node 'j', field 'inputs'" in result.stderr
    assert "flow 'config', field 'id'" in result.stderr


def test_V8_a_large_default_referenced_many_times_is_bounded():
    """A 200,000-value default referenced by 50 nodes would be 10 million values checked."""
    nodes = [{"id": f"n{i}", "type": "StaticData", "params": {"rows": "{{ params.rows }}"}} for i in range(50)]
    spec = flow(*nodes, params={"rows": {"type": "list", "default": [{"x": i} for i in range(100_000)]}})
    with pytest.raises(FlowValidationError, match="make the default of 'rows' smaller"):
        validate_spec(spec, CATALOG)


def test_V8_files_that_never_end_or_are_huge_are_refused_without_reading_them(tmp_path):
    from dp_assets.spec.loading import read_spec_file

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # reading it would block forever
    with pytest.raises(SpecLoadError, match="not a regular file"):
        read_spec_file(fifo)
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as handle:
        handle.truncate(2 * 1024**3)  # sparse: 2 GiB that must not be read into memory
    with pytest.raises(SpecLoadError, match="the limit is"):
        read_spec_file(huge)


def test_V8_a_merge_key_may_still_be_overridden():
    data = parse_spec_text("id: m\nbase: &b {type: StaticData, id: q}\nnodes:\n  - <<: *b\n    id: a\n")
    assert data["nodes"][0]["id"] == "a"
