"""The flow store as a dg component builds exactly what the code location builds, from its state."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dp_assets.components import FlowStoreComponent
from dp_assets.location import REPORT_KEY, build_code_location
from dp_resources.store import FlowStore
from dp_settings import load

ROOT = Path(__file__).resolve().parents[2]


def repository(definitions: dg.Definitions) -> dict:
    """Everything a code server serves of a location: assets (with specs and checks), jobs,
    schedules, sensors, resources, as Dagster snapshots them."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    snap = json.loads(serialize_value(RepositorySnap.from_def(definitions.get_repository_def(), defer_snapshots=False)))
    snap.pop("metadata", None)  # a component tree adds the plugin component types it saw
    snap.pop("component_tree", None)
    return snap


def names(definitions: dg.Definitions) -> dict:
    repo = definitions.get_repository_def()
    graph = repo.asset_graph
    return {
        "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys()),
        "checks": sorted(k.to_user_string() for k in graph.asset_check_keys),
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "schedules": sorted(s.name for s in repo.schedule_defs),
        "sensors": sorted(s.name for s in repo.sensor_defs),
        "resources": sorted(repo.get_top_level_resources()),
    }


def component_defs(component: FlowStoreComponent, state_path: Path | None) -> dg.Definitions:
    return component.build_defs_from_state(None, state_path)  # type: ignore[arg-type] - the context is not read


def test_component_without_state_builds_the_code_location(flows_dir, dp_home):
    expected = build_code_location()
    built = component_defs(FlowStoreComponent(), None)
    assert names(built) == names(expected)
    assert len(names(built)["jobs"]) >= 5
    assert repository(built) == repository(expected)


def test_component_from_its_state_builds_the_code_location(flows_dir, dp_home, tmp_path):
    state = tmp_path / "state" / "state"
    FlowStoreComponent().write_state_to_path(state)
    written = json.loads(state.read_text())
    store = FlowStore(load().store_url())
    assert written["versions"] == {i.id: i.published_version for i in store.list_flows() if i.published_version}
    assert str(load().store_url()) not in state.read_text()  # the URL may hold a password
    expected = build_code_location()
    built = component_defs(FlowStoreComponent(), state)
    assert repository(built) == repository(expected)


def test_the_state_pins_versions_until_it_is_taken_again(flows_dir, dp_home, tmp_path):
    """A flow published after the state was taken keeps its old version in the definitions (the
    state is what the store published then); taking the state again picks the new one."""
    state = tmp_path / "state" / "state"
    component = FlowStoreComponent()
    component.write_state_to_path(state)
    spec_file = flows_dir / "sales_summary.yaml"
    old = build_code_location().resolve_job_def("sales_summary").tags["dp/flow_version"]
    spec_file.write_text(spec_file.read_text().replace("description:", "description: changed;", 1))
    new = build_code_location().resolve_job_def("sales_summary").tags["dp/flow_version"]  # imports the change
    assert new != old
    assert component_defs(component, state).resolve_job_def("sales_summary").tags["dp/flow_version"] == old
    component.write_state_to_path(state)
    assert component_defs(component, state).resolve_job_def("sales_summary").tags["dp/flow_version"] == new


def test_a_state_from_another_store_is_not_used(flows_dir, dp_home, tmp_path, monkeypatch):
    state = tmp_path / "state" / "state"
    FlowStoreComponent().write_state_to_path(state)
    other = tmp_path / "other_home"
    (other / "dagster").mkdir(parents=True)
    monkeypatch.setenv("DP_HOME", str(other))
    monkeypatch.setenv("DP_FLOWS_DIR", "")
    built = component_defs(FlowStoreComponent(), state)
    assert names(built)["jobs"] == []  # the other home's store is empty: nothing of the first one's state
    assert REPORT_KEY in built.resolve_asset_graph().get_all_asset_keys()


@pytest.mark.parametrize("text", ["", "{", "[]", '{"format": 99}'])
def test_an_unreadable_state_reads_the_store_as_it_is(flows_dir, dp_home, tmp_path, text):
    state = tmp_path / "state"
    state.write_text(text)
    assert names(component_defs(FlowStoreComponent(), state)) == names(build_code_location())


def test_a_flow_deleted_after_the_state_was_taken_is_a_reported_problem(flows_dir, dp_home, tmp_path):
    state = tmp_path / "state" / "state"
    FlowStoreComponent().write_state_to_path(state)
    written = json.loads(state.read_text())
    written["versions"]["sales_summary"] = "0" * 64  # a version the store never had
    state.write_text(json.dumps(written))
    built = component_defs(FlowStoreComponent(), state)
    assert "sales_summary" not in names(built)["jobs"]
    assert len(names(built)["jobs"]) >= 4  # every other flow still loads
    report = built.resolve_asset_graph().get(REPORT_KEY)
    assert "sales_summary" in (report.description or "")
    assert "dg utils refresh-defs-state" in (report.description or "")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


def test_any_state_file_gives_a_location_never_an_error(flows_dir, dp_home, tmp_path):
    """Invariant of the state file (a file on disk anyone may edit): whatever it holds, the build
    gives the location — the flows it names that the store has, or the store as it is now — with
    the load report, and never raises."""
    state = tmp_path / "state" / "state"
    FlowStoreComponent().write_state_to_path(state)
    taken = json.loads(state.read_text())
    whole = names(build_code_location())

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(field=st.sampled_from([*taken, "extra"]), value=JSON, drop=st.booleans())
    def check(field: str, value: object, drop: bool) -> None:
        document = dict(taken)
        if drop:
            document.pop(field, None)
        else:
            document[field] = value
        state.write_text(json.dumps(document))
        built = names(component_defs(FlowStoreComponent(), state))
        assert set(built["jobs"]) <= set(whole["jobs"])
        assert REPORT_KEY.to_user_string() in built["assets"]
        if document == taken:
            assert built == whole

    check()
