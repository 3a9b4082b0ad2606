"""Reads across runs, through real runs on a real (SQLite) Dagster instance:

- a downstream materialised alone reads its upstream's latest materialisation (both shapes:
  one asset per node through ``load_input``, one multi_asset per flow through
  ``load_latest_output``), per partition for partitioned assets;
- E3: re-execution from failure does not run finished nodes again and reuses their outputs;
- two concurrent runs of the same job never read each other's outputs.
"""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import io_flows
import pandas as pd
import pytest

from dp_io.errors import NeverMaterializedError
from dp_io.io_manager import RunScopedIOManager
from dp_io.lookup import find_materialization, load_latest_output

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@pytest.fixture
def flow_env(dp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "computed.log"
    monkeypatch.setenv("DP_TEST_LOG", str(log))
    monkeypatch.setenv("DP_TEST_FAIL", str(tmp_path / "fail-flag"))
    return tmp_path


def _key(*path: str) -> dg.AssetKey:
    return dg.AssetKey(list(path))


def _loaded_from(result: dg.ExecuteInProcessResult | dg.JobExecutionResult, input_name: str) -> str:
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.LOADED_INPUT:
            data = event.event_specific_data
            if data.input_name == input_name:
                return data.metadata["dp/source_run_id"].value
    raise AssertionError(f"no LOADED_INPUT event for {input_name}")


def _materialised(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return [r.event_log_entry.asset_materialization.asset_key.path[-1] for r in records]


def _stored_path(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None) -> str:
    ref = find_materialization(instance, key, partition_key=partition)
    assert ref is not None and ref.path
    return ref.path


def test_cross_run_read_one_asset_per_node(instance: dg.DagsterInstance, flow_env: Path) -> None:
    """Materialise a in run 1, then b alone in run 2: b reads run 1's a (not run 2's folder)."""
    job = io_flows.steps_job()
    run1 = job.execute_in_process(instance=instance, asset_selection=[_key("steps", "a")])
    run2 = job.execute_in_process(instance=instance, asset_selection=[_key("steps", "b")])
    assert run1.success and run2.success
    assert io_flows.computed() == ["a", "b"]
    assert _loaded_from(run2, "a") == run1.run_id
    assert f"/{run1.run_id}/steps/a.arrow" in _stored_path(instance, _key("steps", "a"))
    assert f"/{run2.run_id}/steps/b.arrow" in _stored_path(instance, _key("steps", "b"))
    b = load_latest_output(instance, _key("steps", "b"), RunScopedIOManager())
    pd.testing.assert_frame_equal(b, pd.DataFrame({"x": [1, 2, 3], "y": [10, 20, 30]}))


def test_cross_run_read_multi_asset_subset(instance: dg.DagsterInstance, flow_env: Path) -> None:
    """The compiler's shape: Materialize one node of a flow at a time; each reads its upstream's
    latest stored value with load_latest_output."""
    job = io_flows.flow_job()
    runs = [job.execute_in_process(instance=instance, asset_selection=[_key("flow", node)]) for node in ("a", "b", "c")]
    assert all(r.success for r in runs)
    assert io_flows.computed() == ["a", "b", "c"]
    for run, node in zip(runs, ("a", "b", "c"), strict=True):
        assert f"/{run.run_id}/flow/{node}." in _stored_path(instance, _key("flow", node))
    assert load_latest_output(instance, _key("flow", "c"), RunScopedIOManager()) == 60


def test_never_materialised_upstream_is_a_clear_failure(instance: dg.DagsterInstance, flow_env: Path) -> None:
    result = io_flows.steps_job().execute_in_process(
        instance=instance, asset_selection=[_key("steps", "b")], raise_on_error=False
    )
    assert not result.success
    message = str(result.get_step_failure_events()[0].step_failure_data.error)
    assert "steps/a" in message and "never been materialised" in message
    with pytest.raises(NeverMaterializedError, match=r"steps/a.*materialise it first"):
        load_latest_output(instance, _key("steps", "a"), RunScopedIOManager())


def test_partitioned_cross_run_read_uses_the_partitions_latest(instance: dg.DagsterInstance, dp_home: Path) -> None:
    """b for day 1 reads a's day-1 value (run 1), although run 2 materialised a later (day 2)."""
    days = dg.DailyPartitionsDefinition(start_date="2024-01-01")

    @dg.asset(key=["parts", "a"], partitions_def=days)
    def a(context: dg.AssetExecutionContext) -> str:
        return f"a@{context.partition_key}"

    @dg.asset(key=["parts", "b"], partitions_def=days, ins={"a": dg.AssetIn(["parts", "a"])})
    def b(a: str) -> str:
        return a.upper()

    resources = {"io_manager": RunScopedIOManager()}
    first = dg.materialize([a, b], partition_key="2024-01-01", selection=[a], instance=instance, resources=resources)
    dg.materialize([a, b], partition_key="2024-01-02", selection=[a], instance=instance, resources=resources)
    third = dg.materialize([a, b], partition_key="2024-01-01", selection=[b], instance=instance, resources=resources)
    assert third.output_for_node("parts__b") == "A@2024-01-01"
    assert _loaded_from(third, "a") == first.run_id
    path = _stored_path(instance, _key("parts", "a"), "2024-01-01")
    assert path.endswith(f"/{first.run_id}/parts/a/2024-01-01.json")


@pytest.mark.fault
def test_E3_reexecution_from_failure_one_asset_per_node(instance: dg.DagsterInstance, flow_env: Path) -> None:
    """E3: c fails; re-executing from failure runs c only, reading b from the parent run."""
    (flow_env / "fail-flag").touch()
    first = io_flows.steps_job().execute_in_process(instance=instance, raise_on_error=False)
    assert not first.success
    (flow_env / "fail-flag").unlink()

    second = dg.execute_job(
        dg.reconstructable(io_flows.steps_job),
        instance=instance,
        reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance),
    )
    assert second.success
    assert io_flows.computed() == ["a", "b", "c", "c"]  # a and b did not run again
    assert _loaded_from(second, "b") == first.run_id
    assert load_latest_output(instance, _key("steps", "c"), RunScopedIOManager()) == 60
    assert f"/{second.run_id}/steps/c.json" in _stored_path(instance, _key("steps", "c"))


@pytest.mark.fault
def test_E3_reexecution_from_failure_multi_asset(instance: dg.DagsterInstance, flow_env: Path) -> None:
    """E3 for the compiler's shape (one step per flow): the resume retry reuses a and b as the
    parent run stored them (reusable_parent_outputs) and computes c only."""
    (flow_env / "fail-flag").touch()
    first = io_flows.flow_job().execute_in_process(instance=instance, raise_on_error=False)
    assert not first.success
    assert _materialised(instance, first.run_id) == ["a", "b"]
    (flow_env / "fail-flag").unlink()

    second = dg.execute_job(
        dg.reconstructable(io_flows.flow_job),
        instance=instance,
        reexecution_options=dg.ReexecutionOptions.from_failure(first.run_id, instance),
        tags={"dagster/is_resume_retry": "true"},  # what "Re-execute from failure" sets
    )
    assert second.success
    assert io_flows.computed() == ["a", "b", "c", "c"]
    assert _materialised(instance, second.run_id) == ["c"]
    assert load_latest_output(instance, _key("flow", "c"), RunScopedIOManager()) == 60


def test_lineage_prefers_the_parent_runs_value(instance: dg.DagsterInstance, flow_env: Path) -> None:
    """find_materialization(lineage_of=...) returns the run lineage's own value even when a
    later unrelated run materialised the asset."""
    job = io_flows.flow_job()
    first = job.execute_in_process(instance=instance, asset_selection=[_key("flow", "a")])
    later = job.execute_in_process(instance=instance, asset_selection=[_key("flow", "a")])
    assert find_materialization(instance, _key("flow", "a")).run_id == later.run_id
    assert find_materialization(instance, _key("flow", "a"), lineage_of=first.run_id).run_id == first.run_id


def test_two_concurrent_runs_never_read_each_others_outputs(
    instance: dg.DagsterInstance, dp_home: Path, tmp_path: Path
) -> None:
    """Two runs of one job at once, held at a barrier until both have materialised ``a``:
    each run's ``b`` still reads its own run's ``a`` (one of them is not the latest)."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "DP_TEST_BARRIER": str(barrier), "PYTHONPATH": f"{REPO}:{HERE}"}
    procs = {
        label: subprocess.Popen(
            [sys.executable, str(HERE / "io_flows.py"), "conc", label],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for label in ("left", "right")
    }
    run_ids = {}
    for label, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        run_ids[label] = out.strip().splitlines()[-1]

    io = RunScopedIOManager()
    latest_a = find_materialization(instance, _key("conc", "a"))
    assert latest_a.run_id in run_ids.values()
    for label, run_id in run_ids.items():
        refs = [
            r.event_log_entry.asset_materialization
            for r in instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        ]
        b_path = next(m.metadata["path"].value for m in refs if m.asset_key == _key("conc", "b"))
        assert io.load_path(b_path) == label
