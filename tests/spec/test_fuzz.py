"""V8: fuzzed specs give a validation error or definitions, never an unhandled exception."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions, compile_flow
from dp_assets.publishing import spec_files
from dp_assets.spec.loading import SpecLoadError, normalise_spec, parse_spec_text, read_spec_file
from dp_assets.spec.model import flow_json_schema
from dp_assets.spec.validation import FlowValidationError, validate_spec
from tests.fuzzing import fuzz_settings

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
    example); drawing a type, then a node from that type's own schema, covers the same specs.
    Building these takes seconds of CPU: the test draws them through ``st.deferred``, so only the
    worker that runs it pays, when it runs, not every pytest process that collects this module."""
    schema = flow_json_schema(CATALOG)
    definitions = schema["$defs"]
    by_type = {
        name: from_schema({"$defs": definitions, **definitions[ref.rsplit("/", 1)[-1]]})
        for name, ref in schema["properties"]["nodes"]["items"]["discriminator"]["mapping"].items()
    }
    skeleton = {**schema, "properties": {**schema["properties"], "nodes": {"type": "array", "maxItems": 0}}}
    nodes = st.lists(st.sampled_from(sorted(by_type)).flatmap(by_type.__getitem__), min_size=1, max_size=4)
    return st.tuples(from_schema(skeleton), nodes).map(lambda pair: {**pair[0], "nodes": pair[1]})


@fuzz_settings(60, suppress_health_check=list(HealthCheck))
@given(spec=st.deferred(_flow_specs), seed=st.integers(0, 10_000))
def test_V8_schema_generated_and_mutated_specs(spec, seed):
    assert _outcome(spec) in ("invalid", "compiled")
    assert _outcome(_mutate(spec, random.Random(seed))) in ("invalid", "compiled")


@fuzz_settings(150)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
        max_leaves=20,
    )
)
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
    nodes += [
        {"id": f"n{i}", "type": "SortData", "inputs": [f"n{i - 1}"], "params": {"by": "x"}} for i in range(1, size)
    ]
    validated = validate_spec({"id": "big", "nodes": nodes}, CATALOG)
    assert len(validated.flow.nodes) == size
    nodes[0]["inputs"] = [f"n{size - 1}"]  # close a 10k-long cycle
    with pytest.raises(FlowValidationError, match="cycle"):
        validate_spec({"id": "big", "nodes": nodes}, CATALOG)


# ---------------------------------------------------------------------------------------------
# Issue 16: any JSON-like document, and the real example specs mutated structure-aware. The
# invariant: validation answers with a FlowValidationError naming where, or accepts a spec that
# then compiles as the code location compiles it (job resolved, run-config schema built).

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {path.stem: read_spec_file(path) for path in spec_files(ROOT / "flows")}
RESERVED = ["context", "config", "input", "type", "class", "lambda", "None", "__step"]

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from([*RESERVED, "", "a.b.c", "${env:HOME}", "{{ params.p }}", "2024-01-01", "\x00", "\ud800"])
)
keys = st.text(max_size=6) | st.integers(-2, 2) | st.sampled_from(["id", "type", "inputs", "params", "nodes", "edges"])
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=25,
)


def _deepen(value, levels: int):
    for _ in range(levels):
        value = [value]
    return value


def _compiles_like_the_location(validated) -> None:
    from dp_assets.default_resources import default_resources

    resources = default_resources()
    definitions = compile_flow(validated, CATALOG).definitions(resources)
    alone = dg.Definitions(assets=definitions.assets, jobs=definitions.jobs, resources=resources)
    alone.resolve_job_def(validated.id).run_config_schema  # noqa: B018 - building it is the check


def _validate_then_compile(spec) -> str:
    try:
        validated = validate_spec(spec, CATALOG)
    except FlowValidationError as exc:
        assert exc.errors and all(isinstance(e.field, str) and e.flow for e in exc.errors)
        return "invalid"
    _compiles_like_the_location(validated)
    return "compiled"


@fuzz_settings(150)
@given(data=json_like, depth=st.sampled_from([0, 0, 0, 70, 5_000]))
def test_V8_any_json_like_document_is_accepted_or_a_named_error(data, depth):
    """Whatever the document (odd types, int keys, NaN, NUL, lone surrogates, 5,000-deep):
    only FlowValidationError, never another exception."""
    spec = {"id": "fuzzed", "nodes": [{"id": "a", "type": "StaticData", "params": {"rows": [{"x": 1}]}}]}
    for target in (data, {**spec, "extra": _deepen(data, depth)}, {**spec, "nodes": data}, {**spec, "params": data}):
        assert _validate_then_compile(target) in ("invalid", "compiled")


def _paths(doc) -> list[tuple]:
    """Every path into a document (iteratively), the root included."""
    found, stack = [], [((), doc)]
    while stack:
        path, value = stack.pop()
        found.append(path)
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        stack.extend(((*path, key), item) for key, item in items)
    return sorted(found, key=repr)


def _mutate_at(doc, draw):
    """One structure-aware mutation at a drawn place: replace the subtree with an odd value,
    delete it, duplicate it (list entries, dict values under a new key), nest it deeper, or
    give it a non-string key."""
    path = draw(st.sampled_from(_paths(doc)))
    if not path:
        return doc
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    action = draw(st.sampled_from(["replace", "delete", "duplicate", "deepen", "int_key"]))
    if action == "replace":
        parent[key] = draw(json_like)
    elif action == "delete":
        del parent[key]
    elif action == "duplicate":
        if isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        else:
            parent[f"{key}_copy"] = copy.deepcopy(parent[key])
    elif action == "deepen":
        parent[key] = _deepen(parent[key], draw(st.sampled_from([1, 3, 80, 300])))
    elif isinstance(parent, dict):
        parent[draw(st.integers(0, 3))] = parent.pop(key)
    return doc


@fuzz_settings(40)
@given(name=st.sampled_from(sorted(EXAMPLES)), data=st.data())
def test_V8_mutated_example_specs_are_named_errors_or_compile(name, data):
    doc = copy.deepcopy(EXAMPLES[name])
    for _ in range(data.draw(st.integers(1, 3))):
        doc = _mutate_at(doc, data.draw)
    assert _validate_then_compile(doc) in ("invalid", "compiled")


# Valid-ish specs: a small good flow whose names, param types and defaults, tags and trigger
# params are drawn from values near Dagster's edges; what validation accepts must compile.
names = st.sampled_from([*RESERVED, "ok", "a_b", "A", "_x", "x" * 64, "n1"]) | st.from_regex(
    r"[a-z][a-z0-9_]{0,5}", fullmatch=True
)
param_types = st.sampled_from(["string", "integer", "number", "boolean", "date", "datetime", "list", "object"])
defaults = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=4)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)
params = st.dictionaries(
    names,
    st.fixed_dictionaries({"type": param_types}, optional={"default": defaults, "required": st.booleans()}),
    max_size=3,
)
tags = st.dictionaries(
    st.from_regex(r"([a-z./_-]{1,6}/)?[a-z0-9._-]{1,8}", fullmatch=True)
    | st.sampled_from(["dagster/priority", "dagster/max_retries"]),
    st.from_regex(r"[A-Za-z0-9_.-]{0,8}", fullmatch=True),
    max_size=2,
)
triggers = st.lists(
    st.one_of(
        st.fixed_dictionaries(
            {
                "type": st.just("schedule"),
                "cron": st.sampled_from(["0 * * * *", "@daily", "*/5 * * * *"]),
                "params": st.dictionaries(names, defaults, max_size=2),
            }
        ),
        st.fixed_dictionaries(
            {
                "type": st.just("event"),
                "topics": st.just(["a.b"]),
                "params": st.dictionaries(names, defaults, max_size=2),
            }
        ),
        st.fixed_dictionaries({"type": st.just("file"), "glob": st.just("in/*.csv"), "param": names}),
        st.fixed_dictionaries({"type": st.just("flow"), "flow": names, "on": st.sampled_from(["success", "failure"])}),
    ),
    max_size=2,
)


@fuzz_settings(60)
@given(
    flow_id=names,
    source=names,
    sink=names,
    params=params,
    tags=tags,
    triggers=triggers,
    steps=st.sampled_from(["flow", "node"]),
    timeout=st.none() | st.floats(min_value=0.001),
)
def test_V8_what_validation_accepts_compiles(flow_id, source, sink, params, tags, triggers, steps, timeout):
    spec = {
        "id": flow_id,
        "params": params,
        "tags": tags,
        "triggers": triggers,
        "policies": {"steps": steps, **({"timeout_seconds": timeout} if timeout is not None else {})},
        "nodes": [
            {"id": source, "type": "StaticData", "params": {"rows": [{"x": 1}]}, "tags": tags},
            {"id": sink, "type": "SortData", "inputs": [source], "params": {"by": "x"}},
        ],
    }
    assert _validate_then_compile(spec) in ("invalid", "compiled")


@fuzz_settings(100)
@given(text=st.text(max_size=200) | json_like.map(lambda v: json.dumps(v, default=str)))
def test_V8_any_text_parses_or_is_a_load_error(text):
    try:
        parse_spec_text(text, source="fuzzed.yaml")
    except SpecLoadError as exc:
        assert "fuzzed.yaml" in str(exc)
