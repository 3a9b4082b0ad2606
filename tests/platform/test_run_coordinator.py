"""Runs started with the UI's Materialize buttons are tagged with their flow when queued
(the browser test, tests/browser/test_ui_materialize.py, checks it on a real click)."""

from __future__ import annotations

import dagster as dg
from hypothesis import given
from hypothesis import strategies as st

from dp_instance.run_coordinator import FLOW_TAG, FLOWS_TAG, FlowRunCoordinator, flow_tags
from dp_sensors.triggers.policy import FLOW_TAG as POLICY_FLOW_TAG
from tests.fuzzing import fuzz_settings

FLOW_IDS = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


def test_the_coordinator_tags_with_the_tag_the_run_limits_use():
    assert FLOW_TAG == POLICY_FLOW_TAG
    assert issubclass(FlowRunCoordinator, dg.QueuedRunCoordinator)


@fuzz_settings(100)
@given(st.lists(st.tuples(FLOW_IDS, st.lists(FLOW_IDS, min_size=1, max_size=3)), max_size=6), st.booleans())
def test_a_selection_is_tagged_with_the_one_flow_it_belongs_to(selection, tagged_already):
    keys = [dg.AssetKey([flow, *rest]) for flow, rest in selection]
    existing = {FLOW_TAG: "other"} if tagged_already else {}
    added = flow_tags(existing, keys)
    flows = {key.path[0] for key in keys} - {"dp_platform"}
    if tagged_already or not flows:
        assert added == {}
    elif len(flows) == 1:
        assert added == {FLOW_TAG: flows.pop()}
    else:
        assert added == {FLOWS_TAG: ",".join(sorted(flows))}


def test_the_load_report_alone_is_not_a_flow():
    assert flow_tags({}, [dg.AssetKey(["dp_platform", "flow_load_report"])]) == {}
