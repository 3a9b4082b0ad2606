"""V8: fuzzed specs give a validation error or definitions, never an unhandled exception."""

from __future__ import annotations

import copy
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.loading import SpecLoadError, normalise_spec
from dp_assets.spec.model import flow_json_schema
from dp_assets.spec.validation import FlowValidationError, validate_spec

CATALOG = default_catalog()


def _outcome(spec):
    """Validate and, when valid, compile: the only allowed failure is a clear spec error."""
    try:
        validated = validate_spec(spec, CATALOG)
    except (FlowValidationError, SpecLoadError):
        return "invalid"
    build_flow_definitions(validated, CATALOG)
    return "compiled"


def _mutate(spec: dict, rng: random.Random) -> dict:
    spec = copy.deepcopy(spec)
    nodes = spec.get("nodes") or []
    if not nodes:
        return spec
    choice = rng.randrange(6)
    node = rng.choice(nodes)
    ids = [n.get("id") for n in nodes]
    if choice == 0:  # self-loop
        node["inputs"] = [node.get("id")]
    elif choice == 1:  # cycle through two nodes
        other = rng.choice(nodes)
        node["inputs"], other["inputs"] = [other.get("id")], [node.get("id")]
    elif choice == 2:  # dangling edge
        spec["edges"] = [{"source": "ghost", "target": node.get("id")}, {"source": ids[0], "target": "nowhere"}]
    elif choice == 3:  # duplicate id
        nodes.append(copy.deepcopy(node))
    elif choice == 4:  # garbage in params
        node["params"] = rng.choice([None, 5, "x", [1], {"__class__": 1}])
    else:  # wrong input shapes
        node["inputs"] = rng.choice([{"left": 1}, [None], "a.b.c", {"": ""}])
    return spec


def _flow_specs() -> st.SearchStrategy[dict]:
    """Specs drawn from the flow's JSON Schema, one node type's schema at a time.

    hypothesis-jsonschema re-canonicalises the nodes' 40-way union on every draw (seconds per
    example); drawing a type, then a node from that type's own schema, covers the same specs."""
    schema = flow_json_schema(CATALOG)
    definitions = schema["$defs"]
    by_type = {
        name: from_schema({"$defs": definitions, **definitions[ref.rsplit("/", 1)[-1]]})
        for name, ref in schema["properties"]["nodes"]["items"]["discriminator"]["mapping"].items()
    }
    skeleton = {**schema, "properties": {**schema["properties"], "nodes": {"type": "array", "maxItems": 0}}}
    nodes = st.lists(st.sampled_from(sorted(by_type)).flatmap(by_type.__getitem__), min_size=1, max_size=4)
    return st.tuples(from_schema(skeleton), nodes).map(lambda pair: {**pair[0], "nodes": pair[1]})


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=_flow_specs(), seed=st.integers(0, 10_000))
def test_V8_schema_generated_and_mutated_specs(spec, seed):
    assert _outcome(spec) in ("invalid", "compiled")
    assert _outcome(_mutate(spec, random.Random(seed))) in ("invalid", "compiled")


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
                    max_leaves=20))
def test_V8_arbitrary_json_never_crashes(data):
    try:
        spec = normalise_spec(data) if isinstance(data, dict) else data
    except SpecLoadError:
        return
    if isinstance(spec, dict):
        assert _outcome(spec) in ("invalid", "compiled")


@pytest.mark.parametrize("size", [10_000])
def test_V8_ten_thousand_nodes(size):
    nodes = [{"id": "n0", "type": "StaticData", "params": {"rows": [{"x": 1}]}}]
    nodes += [{"id": f"n{i}", "type": "SortData", "inputs": [f"n{i - 1}"], "params": {"by": "x"}} for i in range(1, size)]
    validated = validate_spec({"id": "big", "nodes": nodes}, CATALOG)
    assert len(validated.flow.nodes) == size
    nodes[0]["inputs"] = [f"n{size - 1}"]  # close a 10k-long cycle
    with pytest.raises(FlowValidationError, match="cycle"):
        validate_spec({"id": "big", "nodes": nodes}, CATALOG)
