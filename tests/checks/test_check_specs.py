"""``checks:``, ``automation:`` and ``pool:`` in a spec: whatever is written there, validation
either accepts a flow that compiles (each check an asset check of the node, names unique) or
reports errors naming the flow, the node and the field; never another exception."""

from __future__ import annotations

from typing import Any

import dagster as dg
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from pydantic import TypeAdapter

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import compile_flow
from dp_assets.spec.checks import Automation, Check
from dp_assets.spec.validation import FlowValidationError, validate_spec
from tests.fuzzing import fuzz_settings

CATALOG = default_catalog()
COLUMNS = ["id", "k", "amount", "nope", "a b"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
# Checks shaped by their own JSON Schema (as the designer's forms are), columns drawn from the
# node's and from ones it does not have, and anything else JSON can hold.
shaped_checks = from_schema(TypeAdapter(Check).json_schema())
named_checks = st.fixed_dictionaries(
    {"type": st.sampled_from(["not_null", "unique", "accepted_values"])},
    optional={
        "columns": st.lists(st.sampled_from(COLUMNS), max_size=3),
        "key": st.lists(st.sampled_from(COLUMNS), max_size=3),
        "column": st.sampled_from(COLUMNS),
        "values": st.lists(st.sampled_from(["a", 1, True]), max_size=2),
        "name": st.sampled_from(["dup", "column_schema", "Bad-Name", "ok_1"]),
        "blocking": st.booleans(),
    },
)
real = st.sampled_from(["id", "k", "amount"])
fitting_checks = st.one_of(
    st.builds(
        lambda c, b: {"type": "not_null", "columns": c, "blocking": b}, st.lists(real, min_size=1), st.booleans()
    ),
    st.builds(lambda c: {"type": "unique", "key": c}, st.lists(real, min_size=1)),
    st.builds(lambda n: {"type": "row_count", "min": n}, st.integers(0, 5)),
    st.builds(lambda e: {"type": "expression", "expression": e}, st.sampled_from(["amount > 0", "k == 'a'"])),
    st.just({"type": "freshness", "max_age_minutes": 30, "cron": "0 9 * * *"}),
)
checks = (
    st.lists(fitting_checks, max_size=4)
    | st.lists(shaped_checks | named_checks | fitting_checks | json_values, max_size=4)
    | json_values
)
automations = st.none() | from_schema(TypeAdapter(Automation).json_schema()) | json_values
pools = st.sampled_from([None, "db"]) | st.sampled_from(["a b", "", "api"]) | json_values


def flow(node_checks: Any, automation: Any, pool: Any, flow_pool: Any) -> dict[str, Any]:
    node = {
        "id": "src",
        "type": "StaticData",
        "params": {"rows": [{"id": 1, "k": "a", "amount": 2}]},
        "checks": node_checks,
        "automation": automation,
        "pool": pool,
    }
    return {
        "id": "fuzzed",
        "pool": flow_pool,
        "nodes": [node, {"id": "after", "type": "SortData", "inputs": ["src"], "params": {"by": "id"}, "pool": "db"}],
    }


@fuzz_settings(150)
@given(node_checks=checks, automation=automations, pool=pools, flow_pool=pools)
def test_any_checks_automation_or_pool_are_accepted_whole_or_refused_by_field(node_checks, automation, pool, flow_pool):
    spec = flow(node_checks, automation, pool, flow_pool)
    try:
        validated = validate_spec(spec, CATALOG)
    except FlowValidationError as exc:
        event("refused")
        assert exc.errors
        for error in exc.errors:
            assert error.flow == "fuzzed"
            assert error.field != "<spec>", error  # a field is named, not "could not be checked"
            assert (error.node, error.field.split("[")[0].split(".")[0]) in {
                ("src", "checks"),
                ("src", "automation"),
                ("src", "pool"),
                (None, "pool"),
            }, error
        return
    event("accepted")
    compiled = compile_flow(validated, CATALOG)
    (step,) = compiled.steps
    declared = [c for c in validated.flow.nodes[0].checks if c.type != "freshness"]  # type: ignore[attr-defined]
    names = [key.name for key in step.check_keys if key.asset_key.path[-1] == "src"]
    assert len(names) == len(set(names)) == len(declared) + 1  # + column_schema (its schema is known)
    assert all(name.replace("_", "a").isalnum() for name in names)
    # a flow in one step takes one pool: the node's or the flow's, and both say 'db'
    assert step.op.pool in {"db"}
    dg.Definitions.validate_loadable(compiled.definitions())


def test_each_field_names_itself():
    spec = flow(
        [
            {"type": "row_count"},
            {"type": "expression", "expression": "amount +"},
            {"type": "not_null", "columns": ["x"]},
        ],
        {"condition": "on_cron"},
        "db",
        None,
    )
    try:
        validate_spec(spec, CATALOG)
    except FlowValidationError as exc:
        found = [str(error) for error in exc.errors]
    assert found == [
        "flow 'fuzzed', node 'src', field 'checks[0]': a row_count check needs 'min', 'max' or both",
        "flow 'fuzzed', node 'src', field 'checks[1].expression': invalid expression: invalid syntax: `amount +`",
        "flow 'fuzzed', node 'src', field 'automation': condition 'on_cron' needs 'cron'",
    ]
    spec = flow([{"type": "not_null", "columns": ["x"]}], None, "api", None)
    try:
        validate_spec(spec, CATALOG)
    except FlowValidationError as exc:
        found = [str(error) for error in exc.errors]
    assert found == [
        "flow 'fuzzed', node 'src', field 'checks[0]': column 'x' is not in the node's output (it has: id, k, amount)",
        "flow 'fuzzed', field 'pool': the flow runs as one Dagster step, which takes one pool, and pools "
        "differ (src api, after db); set policies.steps: node, or use one pool",
    ]
