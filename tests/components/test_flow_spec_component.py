"""A flow spec written as a dg component's attributes: what `dp validate` says of it, and the
definitions the code location makes of the same spec published."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dp_assets.catalog import default_catalog
from dp_assets.location import REPORT_KEY, build_code_location
from dp_assets.spec.loading import read_spec_file
from dp_assets.spec.validation import FlowValidationError, validate_spec
from tests.components.test_flow_store_component import names

ROOT = Path(__file__).resolve().parents[2]
COMPONENT = "dp_assets.components.FlowSpecComponent"
#: What Dagster adds to a component's definitions: a link from the UI to its defs.yaml, and
#: the component that made them.
COMPONENT_METADATA = {"dagster/code_references", "dagster/component_origin"}


def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, specs: dict[str, object]) -> Path:
    """A dg project whose defs folder holds one spec component per entry of ``specs``."""
    module = f"specs_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "project"
    (root / module / "defs").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[tool.dg]\ndirectory_type = "project"\n\n[tool.dg.project]\nroot_module = "{module}"\n'
    )
    (root / module / "__init__.py").write_text("")
    for name, spec in specs.items():
        (root / module / "defs" / name).mkdir()
        text = yaml.safe_dump({"type": COMPONENT, "attributes": spec}, sort_keys=False)
        (root / module / "defs" / name / "defs.yaml").write_text(text)
    monkeypatch.syspath_prepend(str(root))
    return root


def example(name: str) -> dict:
    """An example flow as the platform reads it (YAML 1.2: `on:` is a key, not True)."""
    return read_spec_file(ROOT / "flows" / name)


def test_a_spec_component_builds_what_the_code_location_builds_of_the_spec(tmp_path, monkeypatch, dp_home):
    from dagster._core.snap import JobSnap
    from dagster._serdes import serialize_value

    spec = example("sales_summary.yaml")
    built = dg.load_from_defs_folder(path_within_project=project(tmp_path, monkeypatch, {"sales": spec}))
    only = tmp_path / "flows"
    only.mkdir()
    shutil.copy(ROOT / "flows" / "sales_summary.yaml", only)
    monkeypatch.setenv("DP_FLOWS_DIR", str(only))
    expected = build_code_location()

    mine, theirs = names(built), names(expected)
    assert mine["jobs"] == theirs["jobs"] == ["sales_summary"]
    assert sorted([*mine["assets"], REPORT_KEY.to_user_string()]) == theirs["assets"]
    assert (mine["checks"], mine["schedules"], mine["sensors"], mine["resources"]) == (
        theirs["checks"],
        theirs["schedules"],
        theirs["sensors"],
        theirs["resources"],
    )

    def snap(defs: dg.Definitions) -> dict:
        job = json.loads(serialize_value(JobSnap.from_job_def(defs.resolve_job_def("sales_summary"))))
        job["metadata"] = [m for m in job.get("metadata", []) if m["label"] not in COMPONENT_METADATA]
        return job

    assert snap(built) == snap(expected)
    graph, their_graph = built.resolve_asset_graph(), expected.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node, theirs_node = graph.get(key), their_graph.get(key)
        metadata = {k: v for k, v in node.metadata.items() if k not in COMPONENT_METADATA}
        assert (node.code_version, metadata, node.owners, node.tags) == (
            theirs_node.code_version,
            theirs_node.metadata,
            theirs_node.owners,
            theirs_node.tags,
        ), key


def test_spec_components_and_the_flow_store_load_side_by_side(tmp_path, monkeypatch, flows_dir):
    """Beside the flow store component: one set of resources, both flows' jobs."""
    spec = {**example("sales_summary.yaml"), "id": "sales_from_defs"}
    root = project(tmp_path, monkeypatch, {"sales": spec})
    store_dir = next((root).glob("specs_*/defs"))
    (store_dir / "flow_store").mkdir()
    (store_dir / "flow_store" / "defs.yaml").write_text("type: dp_assets.components.FlowStoreComponent\n")
    built = dg.load_from_defs_folder(path_within_project=root)
    jobs = names(built)["jobs"]
    assert "sales_from_defs" in jobs and "sales_summary" in jobs
    assert set(names(build_code_location())["jobs"]) | {"sales_from_defs"} == set(jobs)


BROKEN = {
    "unknown input": {"id": "broken", "nodes": [{"id": "a", "type": "DisplayResults", "inputs": ["nowhere"]}]},
    "unknown type": {"id": "broken", "nodes": [{"id": "a", "type": "NoSuchNode"}]},
    "no nodes": {"id": "broken", "nodes": []},
    "bad id": {"id": "Not An Id!", "nodes": [{"id": "a", "type": "DisplayResults"}]},
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_dg_check_defs_fails_a_bad_spec_with_the_errors_of_dp_validate(tmp_path, monkeypatch, dp_home, case):
    spec = BROKEN[case]
    with pytest.raises(FlowValidationError) as validated:
        validate_spec(spec, default_catalog())
    root = project(tmp_path, monkeypatch, {"bad": spec})
    monkeypatch.setenv("DAGSTER_IS_DEFS_VALIDATION_CLI", "1")  # what `dg check defs` sets
    with pytest.raises(Exception) as loaded:
        dg.load_from_defs_folder(path_within_project=root)
    text = "".join(str(e) for e in _chain(loaded.value))
    assert str(validated.value) in text
    assert "bad/defs.yaml" in text


def test_a_serving_location_reports_a_bad_spec_and_loads_the_others(tmp_path, monkeypatch, dp_home):
    good = example("sales_summary.yaml")
    root = project(tmp_path, monkeypatch, {"bad": BROKEN["unknown input"], "sales": good})
    monkeypatch.delenv("DAGSTER_IS_DEFS_VALIDATION_CLI", raising=False)
    built = dg.load_from_defs_folder(path_within_project=root)
    assert names(built)["jobs"] == ["sales_summary"]
    problem = built.resolve_asset_graph().get(dg.AssetKey(["dp_platform", "spec_component_problems", "bad"]))
    assert "field 'inputs'" in (problem.description or "") or "nowhere" in (problem.description or "")


def test_dagster_templating_leaves_the_spec_placeholders_alone(tmp_path, monkeypatch, dp_home):
    """`{{ params.x }}` is the spec's own template; Dagster must not render it at load."""
    spec = example("sales_summary.yaml")
    text = json.dumps(spec)
    assert "{{" in text or "params" in spec  # the example uses params
    built = dg.load_from_defs_folder(path_within_project=project(tmp_path, monkeypatch, {"sales": spec}))
    version = built.resolve_job_def("sales_summary").tags["dp/flow_version"]
    assert version == validate_spec(spec, default_catalog()).version


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
NODE = st.fixed_dictionaries(
    {"id": st.sampled_from(["a", "b", "A!"]), "type": st.sampled_from(["DisplayResults", "Filter", "Nope"])},
    optional={"inputs": st.lists(st.sampled_from(["a", "b", "zz"]), max_size=2), "params": JSON},
)
SPECS = st.fixed_dictionaries(
    {"id": st.sampled_from(["flow_x", "Bad Id", ""]), "nodes": st.lists(NODE, max_size=3)},
    optional={"params": JSON, "triggers": JSON, "policies": JSON},
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=SPECS)
def test_any_attributes_give_the_flow_or_dp_validates_errors(tmp_path_factory, monkeypatch, spec):
    """Invariant of the spec component's input surface: whatever the attributes, a serving load
    never fails; it gives the flow's job exactly when `dp validate` accepts the spec, else a
    problem asset quoting `dp validate`'s errors."""
    home = tmp_path_factory.mktemp("home")
    (home / "dagster").mkdir()
    monkeypatch.setenv("DP_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.delenv("DAGSTER_IS_DEFS_VALIDATION_CLI", raising=False)
    try:
        expected: str | None = validate_spec(spec, default_catalog()).id
        error = ""
    except FlowValidationError as exc:
        expected, error = None, str(exc)
    root = project(tmp_path_factory.mktemp("p"), monkeypatch, {"one": spec})
    built = dg.load_from_defs_folder(path_within_project=root)
    if expected is not None:
        assert names(built)["jobs"] == [expected]
    else:
        assert names(built)["jobs"] == []
        problem = built.resolve_asset_graph().get(dg.AssetKey(["dp_platform", "spec_component_problems", "one"]))
        assert error in (problem.description or "")


def _chain(exc: BaseException | None):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


def test_the_spec_component_of_docs_dg_md_loads(tmp_path, monkeypatch, dp_home):
    """The example in docs/dg.md is a flow as written."""
    import re

    text = (ROOT / "docs" / "dg.md").read_text()
    block = re.search(r"# dp_assets/defs/daily_totals/defs.yaml\n(.*?)```", text, re.DOTALL)
    assert block is not None
    document = yaml.safe_load(block.group(1))
    assert document["type"] == COMPONENT
    built = dg.load_from_defs_folder(
        path_within_project=project(tmp_path, monkeypatch, {"daily": document["attributes"]})
    )
    assert names(built)["jobs"] == ["daily_totals"]


def test_the_scaffolder_writes_a_flow_that_validates(tmp_path, monkeypatch, dp_home):
    from dp_assets.components.flow_spec import FlowSpecScaffolder

    root = project(tmp_path, monkeypatch, {})
    target = next(root.glob("specs_*/defs")) / "My-New_flow"
    target.mkdir()
    request = dg.ScaffoldRequest(
        type_name=COMPONENT, target_path=target, scaffold_format="yaml", project_root=root, params=None
    )
    FlowSpecScaffolder().scaffold(request)
    written = yaml.safe_load((target / "defs.yaml").read_text())
    assert written["type"] == COMPONENT
    assert validate_spec(written["attributes"], default_catalog()).id == "my_new_flow"
    assert names(dg.load_from_defs_folder(path_within_project=root))["jobs"] == ["my_new_flow"]
