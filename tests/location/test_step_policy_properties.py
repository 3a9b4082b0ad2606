"""Step policies do not change answers (issue 20), stated as properties over generated flows on
the platform's IO manager and a real instance: for a generated flow of independent branches
(sources, transforms, joins of branches, sinks), one of whose nodes may fail at run time,

- ``policies.max_parallel_nodes: 1`` and the default give the same stored values, the same set
  of materialised assets and the same failed and skipped nodes;
- ``policies.ephemeral: intermediate`` gives the same values for every node it still stores as
  every node stored, in the pandas and the DuckDB engine.

And a subset Materialize of a reader of an ephemeral node whose stored upstream has never been
materialised fails with an error naming that upstream and saying to materialise it first.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_ephemeral_nodes import FLOW, definitions, flow

from dp_assets.dagster_internals import execute_run_in_process

pytestmark = pytest.mark.e2e


@st.composite
def flows(draw: st.DrawFn) -> dict[str, Any]:
    """2-3 branches, each a source and 1-2 transforms, the branches unioned, a sink; maybe one
    node that fails at run time (text cast to integers)."""
    nodes: list[dict[str, Any]] = []
    tails = []
    for b in range(draw(st.integers(2, 3))):
        rows = [{"k": draw(st.sampled_from(["a", "b"])), "v": draw(st.integers(-5, 5))} for _ in range(3)]
        nodes.append({"id": f"src{b}", "type": "StaticData", "params": {"rows": rows}})
        last = f"src{b}"
        for t in range(draw(st.integers(1, 2))):
            node_id = f"b{b}t{t}"
            kind = draw(st.sampled_from(["add", "filter", "sort"]))
            params: dict[str, Any] = {
                "add": {"column": f"w{t}", "expression": "v * 2 + 1"},
                "filter": {"condition": "v >= 0"},
                "sort": {"by": ["k", "v"]},
            }[kind]
            node_type = {"add": "AddModifyColumn", "filter": "FilterRows", "sort": "SortData"}[kind]
            nodes.append({"id": node_id, "type": node_type, "inputs": [last], "params": params})
            last = node_id
        tails.append(last)
    if draw(st.booleans()):  # a node that fails at run time (on a source's 3 rows): its readers are skipped
        victim = draw(st.sampled_from([node["id"] for node in nodes if node["type"] == "StaticData"]))
        nodes.append({"id": "bad", "type": "ChangeDataType", "inputs": [victim], "params": {"dtype": {"k": "int64"}}})
        tails.append("bad")
    nodes.append({"id": "all", "type": "UnionConcatenate", "inputs": tails, "params": {}})
    nodes.append({"id": "out", "type": "SortData", "inputs": ["all"], "params": {"by": ["k", "v"]}})
    return {"id": FLOW, "nodes": nodes}


def outcome(spec: dict[str, Any], policies: dict[str, Any]) -> tuple[dict[str, pd.DataFrame], set[str], str]:
    """The stored frames, the materialised assets and the failed/skipped node ids of one run."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        defs = definitions({**spec, "policies": policies}, root)
        with dg.instance_for_test() as instance:
            result = execute_run_in_process(defs.resolve_job_def(FLOW), instance)
            records = instance.get_records_for_run(
                result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records
            kept = {record.event_log_entry.dagster_event.asset_key.path[-1] for record in records}
            failures = [
                str(event.step_failure_data.error)
                for event in result.all_events
                if event.event_type == dg.DagsterEventType.STEP_FAILURE
            ]
        frames = {p.stem: pd.read_feather(p) for p in (root / "runs" / result.run_id / FLOW).glob("*.arrow")}
    failed = " ".join(sorted(set(re.findall(r"node '(\w+)' \(\w+\) failed", " ".join(failures)))))
    skipped = " ".join(sorted(set(re.findall(r"skipped because of it: ([\w, ]+)", " ".join(failures)))))
    return frames, kept, f"failed: {failed}; skipped: {skipped}"


def assert_same_frames(left: dict[str, pd.DataFrame], right: dict[str, pd.DataFrame]) -> None:
    assert set(left) == set(right)
    for name in left:
        pd.testing.assert_frame_equal(left[name], right[name], obj=name)


# few examples, no shrinking: each is two Dagster runs
PROPERTY = settings(
    max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate]
)


@PROPERTY
@given(spec=flows())
def test_one_node_at_a_time_and_the_default_give_the_same_outcome(spec: dict[str, Any]) -> None:
    frames_one, kept_one, fate_one = outcome(spec, {"max_parallel_nodes": 1})
    frames_many, kept_many, fate_many = outcome(spec, {"max_parallel_nodes": 4})
    assert (kept_one, fate_one) == (kept_many, fate_many)
    assert_same_frames(frames_one, frames_many)
    if any(node["id"] == "bad" for node in spec["nodes"]):
        assert "failed: bad" in fate_one and "out" in fate_one


@PROPERTY
@given(spec=flows(), engine=st.sampled_from(["pandas", "duckdb"]))
def test_ephemeral_intermediate_stores_the_values_every_node_stored_gives(spec: dict[str, Any], engine: str) -> None:
    every, kept_every, fate_every = outcome(spec, {"engine": engine})
    fewer, kept_fewer, fate_fewer = outcome(spec, {"engine": engine, "ephemeral": "intermediate"})
    assert kept_fewer < kept_every  # the transforms became ephemeral
    assert fate_fewer == fate_every
    assert_same_frames(fewer, {name: frame for name, frame in every.items() if name in fewer})


def test_a_query_that_never_ends_in_a_duckdb_flow_is_stopped_by_the_nodes_timeout(tmp_path: Path) -> None:
    endless = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) AS n FROM r"
    spec = {
        "id": FLOW,
        "policies": {"engine": "duckdb"},
        "nodes": [
            {"id": "src", "type": "StaticData", "params": {"rows": [{"v": 1}]}},
            {
                "id": "loop",
                "type": "SqlTransform",
                "inputs": ["src"],
                "params": {"query": endless},
                "timeout_seconds": 2,
            },
            {
                "id": "kept",
                "type": "FilterRows",
                "inputs": ["src"],
                "params": {"condition": "v > 0"},
                "timeout_seconds": 60,
            },
        ],
    }
    frames, kept, fate = outcome(spec, {"engine": "duckdb"})
    assert fate == "failed: loop; skipped: "
    assert kept == {"src", "kept"} and frames["kept"].to_dict("records") == [{"v": 1}]


@pytest.mark.parametrize("engine", ["pandas", "duckdb"])
def test_a_subset_materialize_over_a_never_materialised_upstream_says_what_to_materialise(
    tmp_path: Path, engine: str
) -> None:
    defs = definitions(flow({"engine": engine}, ephemeral=("priced", "big")), tmp_path)
    job = defs.resolve_job_def(FLOW).get_subset(asset_selection={dg.AssetKey([FLOW, "by_region"])})
    with dg.instance_for_test() as instance:
        result = execute_run_in_process(job, instance)
        errors = [
            str(event.step_failure_data.error)
            for event in result.all_events
            if event.event_type == dg.DagsterEventType.STEP_FAILURE
        ]
    assert not result.success
    assert any(
        f"asset {FLOW}/orders has never been materialised" in error and "materialise it first" in error
        for error in errors
    ), errors
