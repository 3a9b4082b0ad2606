"""Flow-to-flow chains: the run-status sensor at tick level with real runs, the task id carried
along the chain, and the overall state of a task (``dp status``)."""

from __future__ import annotations

import dagster as dg
import pytest
from triggers_support import compile_flows, flow_spec

from dp_resources.files import FilesResource
from dp_sensors.chains import chain_status

PATH = {"path": {"type": "string", "default": "there.csv"}}
READS = {"id": "src", "type": "FileInput", "params": {"path": "{{ params.path }}"}}


def specs(prefix: str) -> list[dict]:
    up = {"id": f"{prefix}_up", "params": PATH, "nodes": [READS]}
    on_success = flow_spec(
        f"{prefix}_next",
        params={"region": {"type": "string"}},
        triggers=[{"type": "flow", "flow": f"{prefix}_up", "params": {"region": "EU"}}],
    )
    on_failure = flow_spec(f"{prefix}_cleanup", triggers=[{"type": "flow", "flow": f"{prefix}_up", "on": "failure"}])
    return [up, on_success, on_failure]


@pytest.fixture
def chain(tmp_path, instance):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "there.csv").write_text("a\n1\n")
    prefix = f"c{abs(hash(tmp_path)) % 10**6}"
    defs = compile_flows(*specs(prefix), resources={"files": FilesResource(data_dir=str(tmp_path / "data"))})
    return prefix, defs


def tick(sensor, instance, cursor):
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))


def run(defs, instance, flow_id, **kwargs):
    return defs.resolve_job_def(flow_id).execute_in_process(instance=instance, raise_on_error=False, **kwargs)


def test_success_starts_the_next_flow_once_with_the_task_id(chain, instance):
    prefix, defs = chain
    sensor = defs.resolve_sensor_def(f"{prefix}_next_after_{prefix}_up_sensor")
    failure_sensor = defs.resolve_sensor_def(f"{prefix}_cleanup_after_{prefix}_up_failure_sensor")
    assert sensor.job_name == f"{prefix}_next"
    started = tick(sensor, instance, None)  # the first tick only sets the cursor
    assert started.run_requests == [] and started.cursor
    failure_cursor = tick(failure_sensor, instance, None).cursor

    upstream = run(defs, instance, f"{prefix}_up", tags={"dp/task_id": "task-42"})
    assert upstream.success
    result = tick(sensor, instance, started.cursor)
    (request,) = result.run_requests
    assert request.run_key == upstream.run_id  # one upstream run starts the next flow once
    assert request.run_config == {"region": "EU"}
    assert {k: v for k, v in request.tags.items() if k.startswith("dp/")} == {
        "dp/trigger": "flow",
        "dp/task_id": "task-42",
        "dp/parent_run": upstream.run_id,
    }
    assert tick(sensor, instance, result.cursor).run_requests == []  # processed once
    assert tick(failure_sensor, instance, failure_cursor).run_requests == []


def test_failure_trigger_and_the_first_run_id_as_task_id(chain, instance):
    prefix, defs = chain
    sensor = defs.resolve_sensor_def(f"{prefix}_cleanup_after_{prefix}_up_failure_sensor")
    cursor = tick(sensor, instance, None).cursor
    failed = run(defs, instance, f"{prefix}_up", run_config={"path": "missing.csv"})
    assert not failed.success
    (request,) = tick(sensor, instance, cursor).run_requests
    assert request.run_key == failed.run_id
    assert request.tags["dp/task_id"] == failed.run_id  # no task id given: the chain's first run


def test_pass_params_hands_on_the_upstream_params_this_flow_declares(tmp_path, instance):
    (tmp_path / "there.csv").write_text("a\n1\n")
    up = {"id": "pp_up", "params": {**PATH, "region": {"type": "string"}}, "nodes": [READS]}
    down = flow_spec(
        "pp_down",
        params={"region": {"type": "string"}, "day": {"type": "date"}},
        triggers=[{"type": "flow", "flow": "pp_up", "pass_params": True, "params": {"day": "2024-01-31"}}],
    )
    defs = compile_flows(up, down, resources={"files": FilesResource(data_dir=str(tmp_path))})
    sensor = defs.resolve_sensor_def("pp_down_after_pp_up_sensor")
    cursor = tick(sensor, instance, None).cursor
    upstream = run(defs, instance, "pp_up", run_config={"region": "US", "path": "there.csv"})
    assert upstream.success
    (request,) = tick(sensor, instance, cursor).run_requests
    assert request.run_config == {"region": "US", "day": "2024-01-31"}  # 'path' is not a param of pp_down


def test_a_flow_cannot_start_itself_on_success():
    loop = flow_spec("loop", triggers=[{"type": "flow", "flow": "loop"}])
    with pytest.raises(ValueError, match=r"flow 'loop', field 'triggers\[0\]\.flow': a flow cannot start itself"):
        compile_flows(loop)


# --- dp status ---------------------------------------------------------------------------------

S = dg.DagsterRunStatus


def add(instance, flow_id, status, task, parent=None, *, run_id=None, retry_of=None, will_retry=None):
    tags = {"dp/task_id": task} if task else {}
    if parent:
        tags["dp/parent_run"] = parent
    if will_retry is not None:
        tags["dagster/will_retry"] = str(will_retry).lower()
    kwargs = {"run_id": run_id} if run_id else {}
    if retry_of:
        kwargs.update(parent_run_id=retry_of, root_run_id=retry_of)
    run = dg.DagsterRun(job_name=flow_id, status=status, tags=tags, **kwargs)
    instance.add_run(run)
    return run.run_id


CHAIN = {("a", "success"): ["b"], ("b", "success"): ["c"]}


def downstream(flow_id, outcome):
    return CHAIN.get((flow_id, outcome), [])


@pytest.mark.parametrize(
    "runs,state,waiting",
    [
        pytest.param([("a", S.SUCCESS), ("b", S.STARTED)], "running", [], id="running"),
        pytest.param([("a", S.SUCCESS), ("b", S.NOT_STARTED)], "pending", [], id="queued"),
        pytest.param([("a", S.SUCCESS)], "pending", ["b"], id="next-not-started-yet"),
        pytest.param([("a", S.SUCCESS), ("b", S.SUCCESS), ("c", S.SUCCESS)], "succeeded", [], id="succeeded"),
        pytest.param([("a", S.SUCCESS), ("b", S.FAILURE)], "failed", [], id="failed"),
        pytest.param([("a", S.SUCCESS), ("b", S.CANCELED)], "failed", [], id="canceled"),
    ],
)
def test_chain_state(instance, runs, state, waiting):
    task = f"task-{state}-{len(runs)}-{runs[-1][1].value}"
    parent = None
    for flow_id, status in runs:
        parent = add(instance, flow_id, status, task, parent)
    result = chain_status(instance, task, downstream)
    assert result.state == state
    assert list(result.waiting_for) == waiting
    assert [r.flow_id for r in result.runs] == [flow_id for flow_id, _ in runs]  # in order


def test_retries_supersede_the_attempt_they_retry(instance):
    root = add(instance, "a", S.SUCCESS, None, run_id="root-run-of-retry-task")  # untagged first run
    failed = add(instance, "b", S.FAILURE, root, root, will_retry=True)
    assert chain_status(instance, root, downstream).state == "pending"  # a retry is coming
    add(instance, "b", S.SUCCESS, root, root, retry_of=failed)
    result = chain_status(instance, root, downstream)
    assert result.runs[0].run_id == root
    assert [r.superseded for r in result.runs] == [False, True, False]
    assert result.state == "pending" and result.waiting_for == ("c",)


def test_unknown_task(instance):
    with pytest.raises(LookupError, match="no runs for task 'nope'"):
        chain_status(instance, "nope")
