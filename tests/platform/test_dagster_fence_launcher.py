"""The warm run launcher's side of the fence (``dp_instance/warm_*.py``): what it takes from
Dagster is still there with the shape it relies on (docs/upgrading-dagster.md lists each).

The behaviour is checked on real processes by ``tests/platform/test_warm_launcher.py``; this file
fails first, by name, when a Dagster release moves or reshapes one of the internals.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.launcher import CheckRunHealthResult, RunLauncher, WorkerStatus
from dagster._core.origin import RepositoryPythonOrigin

from dp_instance.warm_launcher import WarmRunLauncher

#: Dagster functions the launcher and its template call, with the parameters they pass.
CALLED: dict[str, list[str]] = {
    "dagster._cli.api:_execute_run_command_body": [
        "run_id",
        "instance",
        "write_stream_fn",
        "set_exit_code_on_failure",
    ],
    "dagster._cli.utils:get_instance_for_cli": ["instance_ref", "logger"],
    "dagster._cli.utils:_inject_local_env_file": ["logger"],
    "dagster._utils.interrupts:capture_interrupts": [],
    "dagster._utils.hosted_user_process:recon_repository_from_origin": ["origin"],
    "dagster._core.execution.run_cancellation_thread:start_run_cancellation_thread": ["instance", "run_id"],
    "dagster._core.launcher:DefaultRunLauncher.launch_run": ["self", "context"],
    "dagster._core.launcher:DefaultRunLauncher.terminate": ["self", "run_id"],
}

#: The RunLauncher methods the warm launcher overrides, with Dagster's parameters.
OVERRIDDEN = {
    "launch_run": ["self", "context"],
    "terminate": ["self", "run_id"],
    "check_run_worker_health": ["self", "run"],
}


def _resolve(path: str) -> Callable[..., Any]:
    module, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


@pytest.mark.parametrize("path", list(CALLED))
def test_each_dagster_function_the_launcher_calls_takes_the_same_parameters(path: str) -> None:
    assert list(inspect.signature(_resolve(path)).parameters) == CALLED[path]


@pytest.mark.parametrize("name", list(OVERRIDDEN))
def test_each_method_the_launcher_overrides_is_still_dagsters(name: str) -> None:
    assert list(inspect.signature(getattr(RunLauncher, name)).parameters) == OVERRIDDEN[name]
    assert list(inspect.signature(getattr(WarmRunLauncher, name)).parameters) == OVERRIDDEN[name]
    assert isinstance(vars(RunLauncher)["supports_check_run_worker_health"], property)


def test_the_execute_run_command_is_still_the_body_the_template_calls() -> None:
    """``dagster api execute_run`` (what the default launcher's workers run) must stay a thin
    wrapper of the body the template's children call, or they would drift apart."""
    from dagster._cli import api

    source = inspect.getsource(api.execute_run_command.callback)  # a click command
    assert "_execute_run_command_body(" in source and "capture_interrupts()" in source
    assert "get_instance_for_cli(instance_ref=" in source


def test_the_instance_the_template_opens_is_the_one_get_instance_for_cli_opens() -> None:
    """The template opens its children's instance as ``get_instance_for_cli`` does (the
    working directory's ``.env``, then ``DagsterInstance.from_ref``); if Dagster changes how,
    ``dp_instance.warm_preload.open_instance`` must follow."""
    from dagster._cli import utils

    source = inspect.getsource(utils.get_instance_for_cli)
    assert "_inject_local_env_file(logger)" in source
    assert "DagsterInstance.from_ref(instance_ref)" in source


def test_the_health_result_and_origins_have_the_fields_the_launcher_reads(tmp_path: Path) -> None:
    assert CheckRunHealthResult._fields[:2] == ("status", "msg")
    assert "run_worker_id" in CheckRunHealthResult._fields
    assert {WorkerStatus.RUNNING, WorkerStatus.FAILED} <= set(WorkerStatus)
    assert {"executable_path", "code_pointer"} <= set(RepositoryPythonOrigin._fields)
    # The template imports each storage class the instance names: ConfigurableClassData values.
    from dagster._core.instance.ref import InstanceRef

    ref = InstanceRef.from_dir(str(tmp_path))
    modules = [getattr(v, "module_name", None) for v in ref._asdict().values()]
    assert any(isinstance(m, str) and m.startswith("dagster") for m in modules)


def test_run_monitoring_fails_a_run_whose_worker_is_not_running() -> None:
    """Dagster's monitoring fails a STARTED run on any health status but RUNNING and SUCCESS;
    the launcher answers RUNNING for runs it cannot check (started the default way)."""
    from dagster._daemon.monitoring import run_monitoring

    source = inspect.getsource(run_monitoring.monitor_started_run)
    assert "supports_check_run_worker_health" in source
    assert "[WorkerStatus.RUNNING, WorkerStatus.SUCCESS]" in source
    assert issubclass(WarmRunLauncher, RunLauncher)
    assert dg.DefaultRunLauncher is importlib.import_module("dagster._core.launcher").DefaultRunLauncher
