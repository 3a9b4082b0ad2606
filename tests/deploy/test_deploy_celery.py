"""Celery settings that keep steps (F8 and the rules behind F1/F7), on both sides.

- The check refuses every configuration that could lose or duplicate a step, with a message that
  says what to set (F8: a broker redelivery timeout shorter than a step).
- Executor side: the executor of Celery flows builds its Celery app with these settings and
  refuses ``rpc://`` or a missing broker when a run starts.
- Worker side: a real worker started with ``deploy/celery-worker.yaml`` reports the settings over
  the broker (``inspect conf``), and a worker with a bad file never starts.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml

from dp_assets.compiler import celery as cc
from dp_assets.compiler import celery_executor
from dp_deploy.checks import check_deployment, check_worker_config, load_yaml
from tests.support.processes import PYTHON, REPO_ROOT, base_env, start_process, wait_until

WORKER_YAML = REPO_ROOT / "deploy" / "celery-worker.yaml"
REDIS = "redis://127.0.0.1:6379/11"
REDIS_RESULTS = "redis://127.0.0.1:6379/12"
AMQP = "amqp://guest:guest@127.0.0.1:5672//"


def good(longest: float = 600, broker: str = REDIS) -> dict:
    return {**cc.celery_settings(longest), "broker_url": broker, "result_backend": REDIS_RESULTS}


def test_production_settings_pass() -> None:
    assert cc.check_celery_config(good(), 600) == []
    assert cc.check_celery_config(good(600, AMQP), 600) == []
    assert cc.check_celery_config(good(3600, REDIS), 3600) == []


def _with(update: dict, *, drop: tuple[str, ...] = (), longest: float = 600) -> dict:
    config = {**good(longest), **update}
    for key in drop:
        config.pop(key, None)
    return config


BAD = [
    pytest.param(
        _with({"broker_transport_options": {"visibility_timeout": 300}}),
        600,
        None,
        "broker visibility timeout 300 s is not longer than the longest step (600 s)",
        id="F8-visibility-shorter-than-step",
    ),
    pytest.param(
        _with({"broker_transport_options": {"visibility_timeout": 630}}),
        600,
        None,
        "visibility timeout 630 s is not longer than the longest step (600 s) and its time limit",
        id="F8-visibility-between-step-and-time-limit",
    ),
    pytest.param(
        _with({"broker_transport_options": {}}, longest=7200),
        7200,
        None,
        "unset (Redis default 3600 s)",
        id="F8-visibility-default-too-short",
    ),
    pytest.param(
        {**good(3600, AMQP)},
        3600,
        None,
        "RabbitMQ consumer_timeout 1800 s is not longer than the longest step (3600 s)",
        id="F8-rabbitmq-default-consumer-timeout",
    ),
    pytest.param(
        {**good(600, AMQP)},
        600,
        300,
        "RabbitMQ consumer_timeout 300 s",
        id="F8-rabbitmq-consumer-timeout-short",
    ),
    pytest.param(
        _with({"result_backend": "rpc://"}),
        600,
        None,
        "'rpc://' is not persistent",
        id="F1-rpc-backend",
    ),
    pytest.param(
        _with({}, drop=("result_backend",)),
        600,
        None,
        "'unset' is not persistent",
        id="F1-no-backend",
    ),
    pytest.param(
        _with({"result_backend": "cache+memory://"}),
        600,
        None,
        "not a persistent shared store",
        id="F1-memory-backend",
    ),
    pytest.param(
        _with({"broker_url": "memory://"}),
        600,
        None,
        "broker memory:// is not supported",
        id="F1-memory-broker",
    ),
    pytest.param(_with({}, drop=("broker_url",)), 600, None, "no broker", id="F6-no-broker"),
    pytest.param(
        _with({"task_acks_late": False}),
        600,
        None,
        "task_acks_late must be True",
        id="F1-early-ack",
    ),
    pytest.param(
        _with({}, drop=("task_reject_on_worker_lost",)),
        600,
        None,
        "task_reject_on_worker_lost must be True",
        id="F1-no-reject-on-lost",
    ),
    pytest.param(
        _with({"worker_prefetch_multiplier": 4}),
        600,
        None,
        "worker_prefetch_multiplier must be 1",
        id="F1-prefetch",
    ),
    pytest.param(
        _with({}, drop=("task_time_limit", "task_soft_time_limit")),
        600,
        None,
        "task_time_limit must be just above the longest step",
        id="F10-no-time-limit",
    ),
    pytest.param(_with({"task_time_limit": 500}), 600, None, "is 500", id="F10-time-limit-short"),
    pytest.param(
        _with({"task_soft_time_limit": 700, "task_time_limit": 650}),
        600,
        None,
        "must be below task_time_limit",
        id="F10-soft-above-hard",
    ),
]


@pytest.mark.parametrize(("config", "longest", "consumer_timeout", "message"), BAD)
def test_check_refuses_unsafe_config(
    config: dict, longest: float, consumer_timeout: float | None, message: str
) -> None:
    """F8 and friends: each unsafe setting is refused with a message that names it."""
    errors = cc.check_celery_config(config, longest, rabbitmq_consumer_timeout_seconds=consumer_timeout)
    assert any(message in error for error in errors), errors
    with pytest.raises(cc.CeleryConfigError, match="refused"):
        cc.validate_or_raise(config, longest, rabbitmq_consumer_timeout_seconds=consumer_timeout)


def test_settings_order_time_limits_and_redelivery() -> None:
    """The chain the rules rely on: step < soft limit < hard limit < redelivery timeout."""
    for longest in (1, 30, 600, 3600, 86400):
        settings = cc.celery_settings(longest)
        visibility = settings["broker_transport_options"]["visibility_timeout"]
        soft, hard = settings["task_soft_time_limit"], settings["task_time_limit"]
        assert longest < soft < hard < visibility


def test_worker_yaml_is_the_rendered_default() -> None:
    """deploy/celery-worker.yaml is exactly what the code renders (re-render it when changed)."""
    assert WORKER_YAML.read_text() == cc.render_worker_yaml()


def test_stock_dagster_celery_reads_the_worker_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    """`dagster-celery worker start -y deploy/celery-worker.yaml` gets the same settings."""
    from dagster_celery.cli import get_validated_config

    monkeypatch.setenv(cc.BROKER_ENV, REDIS)
    monkeypatch.setenv(cc.BACKEND_ENV, REDIS_RESULTS)
    config = get_validated_config(str(WORKER_YAML))
    assert config["broker"] == REDIS and config["backend"] == REDIS_RESULTS
    assert config["config_source"] == cc.celery_settings()


def test_worker_yaml_check_resolves_env() -> None:
    doc = load_yaml(WORKER_YAML)
    env = {cc.BROKER_ENV: REDIS, cc.BACKEND_ENV: REDIS_RESULTS}
    assert check_worker_config(doc, env) == []
    missing = check_worker_config(doc, {})
    assert "environment variable DP_CELERY_BROKER is not set" in missing
    rpc = check_worker_config(doc, {**env, cc.BACKEND_ENV: "rpc://"})
    assert any("rpc://" in error for error in rpc)


def test_deployment_check_ties_monitoring_to_redelivery() -> None:
    """A run monitor that gives up before a redelivered step could finish is refused."""
    instance = load_yaml(REPO_ROOT / "dagster.yaml")
    env = {cc.BROKER_ENV: REDIS, cc.BACKEND_ENV: REDIS_RESULTS}
    worker = load_yaml(WORKER_YAML)
    assert check_deployment(instance, worker, env) == []
    instance["run_monitoring"]["max_runtime_seconds"] = 5000
    errors = check_deployment(instance, worker, env)
    assert any("must exceed the broker's redelivery delay" in e for e in errors), errors


# --- executor side --------------------------------------------------------------------------------


def test_executor_app_has_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Celery app the executor sends steps with carries the safe settings and the env URLs."""
    from dagster_celery.make_app import make_app

    monkeypatch.setenv(cc.BROKER_ENV, REDIS)
    monkeypatch.setenv(cc.BACKEND_ENV, REDIS_RESULTS)
    executor = celery_executor.make_celery_executor({}, 600)
    conf = make_app(executor.app_args()).conf
    assert conf.broker_url == REDIS and conf.result_backend == REDIS_RESULTS
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_time_limit == cc.celery_settings(600)["task_time_limit"]
    assert conf.broker_transport_options["visibility_timeout"] == cc.visibility_timeout_for(600)


@pytest.mark.parametrize(
    ("config", "env", "message"),
    [
        pytest.param({"backend": "rpc://"}, {cc.BROKER_ENV: REDIS}, "rpc://", id="F1-run-config-rpc"),
        pytest.param({}, {cc.BROKER_ENV: REDIS}, "'unset' is not persistent", id="F1-env-missing"),
        pytest.param(
            {"config_source": {"task_acks_late": False}},
            {cc.BROKER_ENV: REDIS, cc.BACKEND_ENV: REDIS_RESULTS},
            "task_acks_late",
            id="F1-override-early-ack",
        ),
    ],
)
def test_executor_refuses_unsafe_run_config(
    config: dict, env: dict, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(cc.BACKEND_ENV, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(cc.CeleryConfigError, match="celery executor") as refused:
        celery_executor.make_celery_executor(config, 600)
    assert message in str(refused.value)


@dg.op
def _noop() -> int:
    return 1


@dg.job(executor_def=celery_executor.celery_executor_for(30))
def celery_probe_job() -> None:
    _noop()


def test_a_run_with_rpc_backend_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """F1: a Celery run configured with rpc:// fails before any step is sent, saying why.

    ``core_execute_run`` is what a launched run worker (``dagster api execute_run``) runs.
    """
    from dagster._grpc.impl import core_execute_run

    monkeypatch.setenv(cc.BROKER_ENV, REDIS)
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(celery_probe_job, run_config={"execution": {"config": {"backend": "rpc://"}}})
        recon = dg.reconstructable(celery_probe_job)
        with pytest.raises(cc.CeleryConfigError, match="could lose or duplicate steps"):
            list(core_execute_run(recon, run, instance, inject_env_vars=False))
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        events = [r.dagster_event for r in instance.all_logs(run.run_id) if r.dagster_event]
    errors = [e.engine_event_data.error.to_string() for e in events if e.is_engine_event and e.engine_event_data.error]
    assert any("rpc://" in text and "not persistent" in text for text in errors), errors
    assert not [e for e in events if e.is_step_event]


# --- worker side ------------------------------------------------------------------------------


@pytest.mark.redis
def test_worker_runs_with_the_settings(redis_url: str, tmp_path: Path) -> None:
    """A real worker started from the worker YAML reports the safe settings over the broker."""
    from celery import Celery

    doc = tmp_path / "worker.yaml"
    doc.write_text(cc.render_worker_yaml(20))
    env = base_env(DP_CELERY_BROKER=REDIS, DP_CELERY_BACKEND=REDIS_RESULTS, DAGSTER_HOME=str(tmp_path))
    name = f"settings-{os.getpid()}@%h"
    argv = [PYTHON, "-m", "dp_deploy", "celery-worker", "-y", str(doc)]
    argv += ["-n", name, "-c", "1", "--config-dir", str(tmp_path / "celery_conf")]
    worker = start_process("worker", argv, env=env, log_dir=tmp_path)
    app = Celery(broker=REDIS, backend=REDIS_RESULTS)
    node = name.replace("%h", os.uname().nodename)
    try:
        wait_until(
            lambda: bool(app.control.ping(destination=[node], timeout=1)),
            process=worker,
            what="the worker answering pings",
        )
        conf = app.control.inspect(destination=[node], timeout=5).conf(with_defaults=True)[node]
        # The worker process is the one started: the command replaced itself with celery.
        assert "celery" in Path(f"/proc/{worker.pid}/cmdline").read_text()
    finally:
        worker.stop()
        app.close()
    expected = cc.celery_settings(20)
    for key in (
        "task_acks_late",
        "task_reject_on_worker_lost",
        "worker_prefetch_multiplier",
        "task_time_limit",
        "task_soft_time_limit",
        "worker_cancel_long_running_tasks_on_connection_loss",
    ):
        assert conf[key] == expected[key], key
    assert conf["broker_transport_options"]["visibility_timeout"] == cc.visibility_timeout_for(20)
    assert conf["result_backend"] == REDIS_RESULTS
    module = (tmp_path / "celery_conf" / "dagster_celery_config.py").stat()
    assert oct(module.st_mode & 0o777) == "0o600"


def test_worker_with_unsafe_file_does_not_start_F8(tmp_path: Path) -> None:
    """F8: a worker file whose visibility timeout is shorter than a step is refused at start."""
    doc = yaml.safe_load(cc.render_worker_yaml(600))
    doc["execution"]["config"]["config_source"]["broker_transport_options"]["visibility_timeout"] = 60
    path = tmp_path / "worker.yaml"
    path.write_text(yaml.safe_dump(doc))
    env = base_env(DP_CELERY_BROKER=REDIS, DP_CELERY_BACKEND=REDIS_RESULTS)
    result = subprocess.run(
        [PYTHON, "-m", "dp_deploy", "celery-worker", "-y", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "broker visibility timeout 60 s is not longer than the longest step" in result.stderr
