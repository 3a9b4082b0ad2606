"""A step stores its nodes' frames on a background writer while it computes the next node
(dp_io/write_behind.py), and what a user relies on still holds: a materialisation is logged only
for a complete file with its real size; a side-effecting node starts only after every earlier
output is stored; a failed write fails the step at that output and nothing after it runs; a
failing node still leaves the nodes before it stored and materialised (re-execution reuses them).

The writer is slowed down here (every write waits 0.3 s) so that a missing barrier would show.
The queue is the IO manager's own: when Dagster tears the IO manager down after the run, every
queued write has been taken by its ``handle_output`` (``closed`` records what was left).
"""

from __future__ import annotations

import gc
import threading
import time
import weakref
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from dp_assets.catalog import default_catalog
from dp_assets.catalog.base import NO_INPUTS, ONE_INPUT, NodeType, Params
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import validate_spec
from dp_io import RunScopedIOManager
from dp_io.write_behind import WriteBehind

FLOW = "behind"


class ProbeParams(Params):
    watch: list[str]
    base: str


def probe_node(ctx, params, inputs):
    """A side-effecting node that reports which earlier outputs are on disk when it starts."""
    folder = Path(params.base) / ctx.run_id / ctx.flow_id
    return pd.DataFrame({"node": params.watch, "stored": [(folder / f"{n}.arrow").exists() for n in params.watch]})


class BoomParams(Params):
    message: str = "boom"


def boom_node(ctx, params, inputs):
    raise RuntimeError(params.message)


CATALOG = default_catalog().extended(
    [
        NodeType("Probe", ProbeParams, probe_node, "sink", inputs=ONE_INPUT, side_effects=True),
        NodeType("Boom", BoomParams, boom_node, "transform", inputs=ONE_INPUT),
    ]
)


@pytest.fixture
def closed(monkeypatch) -> list[int]:
    """For each write-behind queue closed (by the IO manager's teardown): how many queued
    writes no ``handle_output`` took."""
    untaken: list[int] = []
    close = WriteBehind.close

    def recording(self):
        untaken.append(close(self))
        return untaken[-1]

    monkeypatch.setattr(WriteBehind, "close", recording)
    return untaken


@pytest.fixture
def writes(monkeypatch):
    """Every background write waits 0.3 s first; records (output file stem, thread name)."""
    seen: list[tuple[str, str]] = []
    store_encoded = RunScopedIOManager.store_encoded

    def slow(self, store, stem, encoded):
        seen.append((Path(stem).name, threading.current_thread().name))
        if threading.current_thread().name.startswith("dp-write-behind"):
            time.sleep(0.3)
        return store_encoded(self, store, stem, encoded)

    monkeypatch.setattr(RunScopedIOManager, "store_encoded", slow)
    return seen


def _run(nodes: list[dict], base: Path):
    spec = {"id": FLOW, "nodes": nodes}
    validated = validate_spec(spec, CATALOG)
    defs = dg.Definitions.merge(
        build_flow_definitions(validated, CATALOG),
        dg.Definitions(resources={"io_manager": RunScopedIOManager(base_url=str(base))}),
    )
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def(FLOW).execute_in_process(instance=instance, raise_on_error=False)
    return instance, result


def _materialised(result) -> dict[str, dict]:
    return {
        event.asset_key.path[-1]: event.step_materialization_data.materialization.metadata
        for event in result.all_events
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
    }


SOURCE = {"id": "src", "type": "StaticData", "params": {"rows": [{"x": i} for i in range(50)]}}
DOUBLED = {
    "id": "doubled",
    "type": "AddModifyColumn",
    "inputs": ["src"],
    "params": {"column": "y", "expression": "x * 2"},
}


def test_frames_are_written_behind_and_reported_with_their_real_size(tmp_path, writes, closed):
    _, result = _run([SOURCE, DOUBLED], tmp_path)
    assert result.success
    assert {name for name, thread in writes if thread.startswith("dp-write-behind")} == {"src", "doubled"}
    metadata = _materialised(result)
    run_dir = tmp_path / result.run_id / FLOW
    for node in ("src", "doubled"):
        path = run_dir / f"{node}.arrow"
        assert metadata[node]["bytes"].value == path.stat().st_size
        assert metadata[node]["dagster/row_count"].value == 50
    stored = pd.read_feather(run_dir / "doubled.arrow")
    pd.testing.assert_frame_equal(stored, pd.DataFrame({"x": range(50), "y": [2 * i for i in range(50)]}))
    assert closed == [0]  # one IO manager for the run, torn down with nothing left queued


def test_a_side_effecting_node_starts_after_every_earlier_output_is_stored(tmp_path, writes):
    probe = {
        "id": "probe",
        "type": "Probe",
        "inputs": ["doubled"],
        "params": {"watch": ["src", "doubled"], "base": str(tmp_path)},
    }
    _, result = _run([SOURCE, DOUBLED, probe], tmp_path)
    assert result.success
    seen = pd.read_feather(tmp_path / result.run_id / FLOW / "probe.arrow")
    assert seen["stored"].tolist() == [True, True], seen
    events = [
        e.asset_key.path[-1] for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION
    ]
    assert events == ["src", "doubled", "probe"]  # in the order the nodes ran


def test_a_failing_node_leaves_the_nodes_before_it_stored_and_materialised(tmp_path, writes, closed):
    boom = {"id": "boom", "type": "Boom", "inputs": ["doubled"], "params": {}}
    instance, result = _run([SOURCE, DOUBLED, boom], tmp_path)
    assert not result.success
    assert set(_materialised(result)) == {"src", "doubled"}
    for node in ("src", "doubled"):
        assert (tmp_path / result.run_id / FLOW / f"{node}.arrow").exists()
        assert instance.get_latest_materialization_event(dg.AssetKey([FLOW, node])) is not None
    assert closed == [0]


def test_a_failed_write_fails_the_step_at_that_output_and_nothing_after_runs(tmp_path, monkeypatch, closed):
    store_encoded = RunScopedIOManager.store_encoded

    def disk_full_for_doubled(self, store, stem, encoded):
        if Path(stem).name == "doubled":
            time.sleep(0.2)
            raise OSError(28, "No space left on device")
        return store_encoded(self, store, stem, encoded)

    monkeypatch.setattr(RunScopedIOManager, "store_encoded", disk_full_for_doubled)
    probe = {"id": "probe", "type": "Probe", "inputs": ["doubled"], "params": {"watch": ["src"], "base": str(tmp_path)}}
    _, result = _run([SOURCE, DOUBLED, probe], tmp_path)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "No space left on device" in str(failure.step_failure_data.error)
    assert set(_materialised(result)) == {"src"}  # no materialisation without its file
    run_dir = tmp_path / result.run_id / FLOW
    assert not (run_dir / "doubled.arrow").exists() and not (run_dir / "probe.arrow").exists()
    assert closed == [0]


# ---- frames are let go after their last reader -------------------------------------------

ALIVE: dict[str, weakref.ref] = {}


class MakeParams(Params):
    rows: int = 1000


def make_node(ctx, params, inputs):
    frame = pd.DataFrame({"x": range(params.rows)})
    ALIVE[ctx.node_id] = weakref.ref(frame)
    return frame


class SeenParams(Params):
    watch: list[str]


def seen_node(ctx, params, inputs):
    """Which of the watched nodes' frames are still alive when this node runs.

    Unreachable cycles are collected first: the first asset event a process stores raises and
    catches an IntegrityError in Dagster's SQLite event log, whose traceback links, through the
    frames' f_back, to the step's frames until the next cyclic GC. Only a reference the run
    really keeps survives gc.collect()."""
    gc.collect()
    return pd.DataFrame({"node": params.watch, "alive": [ALIVE[n]() is not None for n in params.watch]})


MEMORY_CATALOG = CATALOG.extended(
    [
        NodeType("Make", MakeParams, make_node, "source", inputs=NO_INPUTS),
        NodeType("Seen", SeenParams, seen_node, "sink", inputs=ONE_INPUT, side_effects=True),
    ]
)


def test_a_frame_is_let_go_once_its_last_reader_ran(tmp_path):
    """In a run (as a run worker executes it: nothing else keeps outputs, unlike
    execute_in_process), `src`'s frame is gone once `doubled`, its only reader, has run and
    its write is done; `doubled` is still alive while `seen` reads it."""
    from dp_assets.dagster_internals import execute_run_in_process

    nodes = [
        {"id": "src", "type": "Make", "params": {}},
        {
            "id": "doubled",
            "type": "AddModifyColumn",
            "inputs": ["src"],
            "params": {"column": "y", "expression": "x * 2"},
        },
        {"id": "seen", "type": "Seen", "inputs": ["doubled"], "params": {"watch": ["src"]}},
    ]
    validated = validate_spec({"id": FLOW, "nodes": nodes}, MEMORY_CATALOG)
    defs = dg.Definitions.merge(
        build_flow_definitions(validated, MEMORY_CATALOG),
        dg.Definitions(
            resources={"io_manager": RunScopedIOManager(base_url=str(tmp_path))}, executor=dg.in_process_executor
        ),
    )
    job = defs.resolve_job_def(FLOW)
    with dg.instance_for_test() as instance:
        result = execute_run_in_process(job, instance)
        assert result.success
    seen = pd.read_feather(tmp_path / result.run_id / FLOW / "seen.arrow")
    assert seen.to_dict("records") == [{"node": "src", "alive": False}]
    stored = pd.read_feather(tmp_path / result.run_id / FLOW / "src.arrow")
    pd.testing.assert_frame_equal(stored, pd.DataFrame({"x": range(1000)}))
