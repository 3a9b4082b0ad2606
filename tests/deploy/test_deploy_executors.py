"""Which executor a flow gets, and the Celery settings it carries (no processes, no services).

- ``DP_EXECUTOR`` sets the executor of every flow; a spec's ``policies.executor`` overrides it
  for that flow.
- The executor of Celery flows reads the workers' file (``DP_CELERY_CONFIG``), so both sides have
  the same settings; a flow whose node timeouts cannot fit in a Celery step is left out, with
  the node named (the others still load).
- Terminating a run terminates its running Celery steps (F10; shown end to end in
  ``test_deploy_faults.py``).
- A node with ``timeout_seconds`` runs in a Celery pool process, which counts as a daemon for
  ``multiprocessing`` (F1, F10).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
import yaml
from deploy_flows import burn_node

from dp_assets.compiler import celery as cc
from dp_assets.compiler import celery_executor
from dp_assets.compiler.celery_deployment import DeploymentError, celery_deployment


def _spec(flow_id: str, **policies) -> dict:
    return {
        "id": flow_id,
        "policies": policies,
        "nodes": [{"id": "seed", "type": "StaticData", "params": {"rows": [{"k": 1}]}}],
    }


def _load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, specs: list[dict], **env: str):
    from dp_assets.location import build_code_location

    folder = tmp_path / "flows"
    folder.mkdir()
    for spec in specs:
        (folder / f"{spec['id']}.yaml").write_text(yaml.safe_dump(spec))
    monkeypatch.setenv("DP_FLOWS_DIR", str(folder))
    for key in ("DP_EXECUTOR", cc.CONFIG_FILE_ENV):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return build_code_location()


def _executor_names(defs) -> dict[str, str]:
    return {job.name: job.executor_def.name for job in defs.resolve_all_job_defs() if not job.name.startswith("__")}


@pytest.mark.parametrize(
    ("deployment", "expected"),
    [
        pytest.param(
            None,
            {"plain": "in_process", "heavy": "celery", "local": "in_process"},
            id="default-in-process",
        ),
        pytest.param(
            "celery",
            {"plain": "celery", "heavy": "celery", "local": "in_process"},
            id="deployment-celery",
        ),
        pytest.param(
            "multiprocess",
            {"plain": "multiprocess", "heavy": "celery", "local": "in_process"},
            id="deployment-multiprocess",
        ),
    ],
)
def test_policies_executor_overrides_the_deployment(tmp_path, monkeypatch, dp_home, deployment, expected) -> None:
    specs = [
        _spec("plain"),
        _spec("heavy", executor="celery", steps="node"),
        _spec("local", executor="in_process"),
    ]
    env = {"DP_EXECUTOR": deployment} if deployment else {}
    defs = _load(tmp_path, monkeypatch, specs, **env)
    assert _executor_names(defs) == expected


def test_unknown_deployment_executor_is_refused(tmp_path, monkeypatch, dp_home) -> None:
    with pytest.raises(ValueError, match="DP_EXECUTOR='celeri': choose one of"):
        _load(tmp_path, monkeypatch, [_spec("plain")], DP_EXECUTOR="celeri")


def _worker_file(tmp_path: Path, longest: float, **tuning) -> Path:
    path = tmp_path / "celery-worker.yaml"
    path.write_text(cc.render_worker_yaml(longest, **tuning))
    return path


def test_executor_reads_the_workers_file(tmp_path, monkeypatch) -> None:
    """The executor's settings are the worker file's, tuning included (one file, two sides)."""
    path = _worker_file(tmp_path, 120, grace_seconds=10, redelivery_margin_seconds=7)
    monkeypatch.setenv(cc.CONFIG_FILE_ENV, str(path))
    deployment = celery_deployment()
    assert deployment.longest_step_seconds == 120
    assert deployment.settings == cc.celery_settings(120, grace_seconds=10, redelivery_margin_seconds=7)
    executor_def = deployment.executor()
    monkeypatch.setenv(cc.BROKER_ENV, "redis://127.0.0.1:6379/11")
    monkeypatch.setenv(cc.BACKEND_ENV, "redis://127.0.0.1:6379/12")
    executor = celery_executor.make_celery_executor({}, 120, defaults=deployment.settings)
    assert isinstance(executor, celery_executor.terminating_executor_class())
    from dagster_celery.make_app import make_app

    app = make_app(executor.app_args())
    assert app.conf.broker_transport_options["visibility_timeout"] == 137  # 120 + 10 + 7
    assert app.conf.task_time_limit == 130
    assert executor_def.name == "celery"


def test_without_the_variable_the_defaults_hold(monkeypatch) -> None:
    monkeypatch.delenv(cc.CONFIG_FILE_ENV, raising=False)
    deployment = celery_deployment()
    assert deployment.longest_step_seconds == cc.DEFAULT_LONGEST_STEP_SECONDS
    assert deployment.settings == cc.celery_settings()
    assert deployment.source == "built-in defaults"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "cannot read the Celery worker file", id="missing"),
        pytest.param("dp: {longest_step_seconds: 10}\n", "no execution.config.config_source", id="empty"),
    ],
)
def test_bad_workers_file_is_named(tmp_path, monkeypatch, content, message) -> None:
    path = tmp_path / "worker.yaml"
    if content is not None:
        path.write_text(content)
    monkeypatch.setenv(cc.CONFIG_FILE_ENV, str(path))
    with pytest.raises(DeploymentError, match=message):
        celery_deployment()


@pytest.mark.parametrize(
    ("steps", "timeouts", "problem"),
    [
        pytest.param("node", [50, 50], None, id="node-steps-each-fits"),
        pytest.param("flow", [50, 50], "'burn_1' (50 s), 'burn_2' (50 s) may take 100 s", id="flow-step-sums"),
        pytest.param("node", [90], "'burn_1' (90 s) may take 90 s", id="node-too-long"),
    ],
)
def test_celery_flows_must_fit_the_step_bound(tmp_path, monkeypatch, dp_home, steps, timeouts, problem) -> None:
    """A Celery flow whose declared node timeouts exceed the workers' longest step is left out
    with the node named; the others still load."""
    from dp_assets.location import REPORT_KEY

    path = _worker_file(tmp_path, 60)
    spec = _spec("bounded", executor="celery", steps=steps)
    spec["nodes"] += [burn_node(f"burn_{i}", i, timeout_seconds=t) for i, t in enumerate(timeouts, start=1)]
    spec["params"] = {"rounds": {"type": "integer", "default": 10}}
    defs = _load(tmp_path, monkeypatch, [spec, _spec("plain")], DP_CELERY_CONFIG=str(path))
    jobs = _executor_names(defs)
    description = defs.resolve_assets_def(REPORT_KEY).specs_by_key[REPORT_KEY].description
    assert "plain" in jobs
    if problem is None:
        assert jobs["bounded"] == "celery"
    else:
        assert "bounded" not in jobs
        assert "flow 'bounded' runs on Celery, whose steps are stopped after 60 s" in description
        assert problem in description


# --- node timeouts inside a Celery pool process ---------------------------------------------------


def _timed_node_in_daemon(result_file: str) -> None:
    """What a Celery pool process does: run a node with a timeout (a daemon process here)."""
    from types import SimpleNamespace

    from dp_assets.compiler.timeouts import NodeTimeout, call_with_timeout

    ctx = SimpleNamespace(node_id="n", flow_id="f", resources={}, metadata={}, log=None)
    lines = [f"value {call_with_timeout(lambda: 41 + 1, ctx, 30)}"]
    try:
        call_with_timeout(lambda: time.sleep(60), ctx, 0.5)
    except NodeTimeout as exc:
        lines.append(f"timeout {exc}")
    Path(result_file).write_text("\n".join(lines))


def test_node_timeout_runs_in_a_daemon_process(tmp_path) -> None:
    """F1/F10 regression: ``multiprocessing`` refuses children of daemon processes, and Celery's
    pool processes are daemons; the node timeout's child is a plain fork that works there."""
    result = tmp_path / "result.txt"
    process = multiprocessing.get_context("fork").Process(
        target=_timed_node_in_daemon, args=(str(result),), daemon=True
    )
    process.start()
    process.join(60)
    assert process.exitcode == 0
    lines = result.read_text().splitlines()
    assert lines[0] == "value 42"
    assert "was stopped after its timeout_seconds=0.5" in lines[1]


def _sleeping_node(pid_file: str) -> None:
    from types import SimpleNamespace

    from dp_assets.compiler.timeouts import call_with_timeout

    def node() -> None:
        Path(pid_file).write_text(str(os.getpid()))
        time.sleep(120)

    ctx = SimpleNamespace(node_id="n", flow_id="f", resources={}, metadata={}, log=None)
    call_with_timeout(node, ctx, 100)


def test_node_child_dies_with_its_step_process(tmp_path) -> None:
    """F1: when the step process is killed (``kill -9`` of a worker), the node's child goes too
    (parent-death signal), instead of burning a core until its timeout."""
    from tests.support.processes import pid_alive

    pid_file = tmp_path / "child.pid"
    step = multiprocessing.get_context("fork").Process(target=_sleeping_node, args=(str(pid_file),))
    step.start()
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child = int(pid_file.read_text())
    assert pid_alive(child)
    step.kill()
    step.join()
    deadline = time.monotonic() + 30
    while pid_alive(child):
        assert time.monotonic() < deadline, "the node child outlived its step"
        time.sleep(0.05)


@pytest.mark.parametrize("rounds", [0, 1, 2, 1000, 54321])
@pytest.mark.parametrize("salt", [0, 3])
def test_burn_reference_is_the_loop(rounds: int, salt: int) -> None:
    """The closed form that the stack tests and the scale-out bench compare with is the loop."""
    from deploy_flows import burn_total, burn_total_loop

    assert burn_total(rounds, salt) == burn_total_loop(rounds, salt)
