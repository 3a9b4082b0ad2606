"""The instance plugins' side of the fence (``dp_instance/``): what they take from Dagster is
still there, and instance files written before the plugins moved still load.

The plugins subclass Dagster's storages, compute-log manager and run coordinator: they override
some of their methods (most of them private), call others, read attributes Dagster's constructors
set and import private helpers. Each of those is pinned here by name and parameters, so that a Dagster
release that renames or reshapes one fails this file instead of silently bypassing an override
(a schema question asked on every event again) or breaking a run. docs/upgrading-dagster.md
lists them. ``test_dagster_fence.py`` covers the compile-time internals.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.storage.event_log import ConsolidatedSqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage

from dp_instance import compute_logs, embedded_storage, pg_storage, run_coordinator

#: Every Dagster method a plugin class overrides, by the plugin class. A name dropping out of
#: Dagster's classes shrinks the set the test finds, and fails it.
OVERRIDES: dict[type, set[str]] = {
    pg_storage.ResilientPostgresEventLogStorage: {
        "__init__",
        "dispose",
        "has_table",
        "_has_asset_key_col_on_connection",
        "store_event",
    },
    pg_storage.ResilientPostgresRunStorage: {
        "__init__",
        "dispose",
        "handle_run_event",
        "has_built_index",
        "has_run_stats_index_cols",
        "has_bulk_actions_selector_cols",
        "has_backfill_id_column",
        "has_bulk_action_job_name_column",
        "has_backfill_tags_table",
    },
    pg_storage.SharedPoolPostgresScheduleStorage: {
        "__init__",
        "dispose",
        "has_instigators_table",
        "_has_instigators_table",
        "_has_asset_daemon_asset_evaluations_table",
        "has_secondary_index_table",
        "has_built_index",
    },
    pg_storage.ResilientPostgresStorage: {"__init__", "config_type", "from_config_value"},
    embedded_storage.EmbeddedEventLogStorage: {
        "from_config_value",
        "_connect",
        "watch",
        "dispose",
        "has_table",
        "_has_asset_key_col_on_connection",
        "store_event",
    },
    embedded_storage.EmbeddedRunStorage: {
        "from_config_value",
        "connect",
        "dispose",
        "has_built_index",
        "has_run_stats_index_cols",
        "has_bulk_actions_selector_cols",
        "has_backfill_id_column",
        "has_bulk_action_job_name_column",
        "has_backfill_tags_table",
    },
    embedded_storage.EmbeddedScheduleStorage: {
        "from_config_value",
        "connect",
        "dispose",
        "has_instigators_table",
        "_has_instigators_table",
        "_has_asset_daemon_asset_evaluations_table",
        "has_secondary_index_table",
        "has_built_index",
    },
    compute_logs.ThreadedComputeLogManager: {"from_config_value", "capture_logs"},
    run_coordinator.FlowRunCoordinator: {"__init__", "config_type", "from_config_value", "submit_run"},
}

#: Dagster functions and methods the plugins call, with the parameters they are called with.
CALLED: dict[str, list[str]] = {
    "dagster._core.execution.compute_logs:_fileno": ["stream"],
    "dagster._core.execution.compute_logs:mirror_stream_to_file": ["stream", "filepath"],
    "dagster._core.execution.compute_logs:redirect_to_file": ["stream", "filepath"],
    "dagster._core.storage.compute_log_manager:CapturedLogContext": [
        "log_key",
        "external_stdout_url",
        "external_stderr_url",
        "external_url",
        "shell_cmd",
    ],
    "dagster._core.storage.local_compute_log_manager:LocalComputeLogManager.__init__": [
        "self",
        "base_dir",
        "polling_timeout",
        "inst_data",
    ],
    "dagster._core.storage.local_compute_log_manager:LocalComputeLogManager.get_captured_local_path": [
        "self",
        "log_key",
        "extension",
        "partial",
    ],
    "dagster._core.storage.local_compute_log_manager:LocalComputeLogManager.complete_artifact_path": [
        "self",
        "log_key",
    ],
    "dagster._utils:ensure_file": ["path"],
    "dagster._utils:touch_file": ["path"],
    "dagster._core.storage.event_log:ConsolidatedSqliteEventLogStorage.__init__": ["self", "base_dir", "inst_data"],
    "dagster._core.storage.event_log:ConsolidatedSqliteEventLogStorage.get_db_path": ["self"],
    "dagster._core.storage.event_log:ConsolidatedSqliteEventLogStorage.on_modified": ["self"],
    "dagster._core.storage.runs:SqliteRunStorage.from_local": ["base_dir", "inst_data"],
    "dagster._core.storage.schedules:SqliteScheduleStorage.from_local": ["base_dir", "inst_data"],
    "dagster_postgres:PostgresEventLogStorage.prepare_insert_event": ["self", "event"],
    "dagster_postgres:PostgresEventLogStorage._connect": ["self"],
    "dagster_postgres:PostgresEventLogStorage.index_transaction": ["self"],
    "dagster_postgres:PostgresEventLogStorage._store_asset_event_tags": ["self", "conn", "events", "event_ids"],
    "dagster_postgres:PostgresEventLogStorage._store_asset_event": ["self", "conn", "event", "event_id"],
    "dagster_postgres:PostgresEventLogStorage.store_asset_check_event": ["self", "event", "event_id"],
    "dagster_postgres:DagsterPostgresStorage.__init__": [
        "self",
        "postgres_url",
        "should_autocreate_tables",
        "inst_data",
        "token_provider",
    ],
    "dagster._core.storage.base_storage:DagsterStorage.__init__": ["self"],
    "dagster_postgres.utils:create_pg_engine": ["postgres_url", "token_provider", "engine_kwargs"],
    "dagster_postgres.utils:pg_url_from_config": ["config_value"],
    "dagster_postgres.utils:get_token_provider_from_config": ["config_value"],
    "dagster._core.storage.config:pg_config": [],
    # A run event after its run's status (run_event_order.py): what handle_new_event does after it.
    "dagster._core.storage.event_log.base:EventLogStorage.handles_run_events_in_store_event.fget": ["self"],
    "dagster._core.execution.retries:auto_reexecution_should_retry_run": ["instance", "run", "run_failure_reason"],
    "dagster._time:datetime_from_timestamp": ["timestamp", "tz"],
    # Launch at submit (run_coordinator.py, run_admission.py): what the queue daemon uses.
    "dagster._utils.tags:TagConcurrencyLimitsCounter.__init__": [
        "self",
        "tag_concurrency_limits",
        "in_progress_tagged_items",
    ],
    "dagster._utils.tags:TagConcurrencyLimitsCounter.is_blocked": ["self", "item"],
    "dagster._core.launcher:LaunchRunContext": ["dagster_run", "workspace"],
    "dagster._core.events:EngineEventData.engine_error": ["error"],
    "dagster._utils.error:serializable_error_info_from_exc_info": ["exc_info", "hoist_user_code_error"],
    "dagster._core.run_coordinator.queued_run_coordinator:QueuedRunCoordinator.__init__": [
        "self",
        "max_concurrent_runs",
        "tag_concurrency_limits",
        "dequeue_interval_seconds",
        "dequeue_use_threads",
        "dequeue_num_workers",
        "max_user_code_failure_retries",
        "user_code_failure_retry_delay",
        "block_op_concurrency_limited_runs",
        "inst_data",
    ],
}


def _resolve(path: str) -> Callable[..., Any]:
    module, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


def _parameters(function: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(function).parameters)


def _own(cls: type) -> bool:
    return cls.__module__.startswith("dp_")


def _overridden(plugin: type) -> set[str]:
    """Names the plugin's own classes define that one of Dagster's classes in its MRO defines too
    (the read methods ``pg_storage.retrying_reads`` wraps are left out: they are found by name)."""
    dagster_classes = [cls for cls in plugin.__mro__ if not _own(cls) and cls is not object]
    names = set()
    for cls in filter(_own, plugin.__mro__):
        for name, value in vars(cls).items():
            wrapped = getattr(value, "__wrapped__", None)
            if wrapped is not None and not getattr(wrapped, "__module__", "").startswith("dp_"):
                continue
            if (callable(value) or isinstance(value, classmethod | staticmethod)) and any(
                name in vars(theirs) for theirs in dagster_classes
            ):
                names.add(name)
    return names


@pytest.mark.parametrize("plugin", list(OVERRIDES), ids=lambda cls: cls.__name__)
def test_each_method_a_plugin_overrides_is_still_dagsters_with_the_same_parameters(plugin: type) -> None:
    assert _overridden(plugin) == OVERRIDES[plugin]
    dagster_classes = [cls for cls in plugin.__mro__ if not _own(cls) and cls is not object]
    for name in OVERRIDES[plugin]:
        ours = getattr(plugin, name)
        theirs = next(vars(cls)[name] for cls in dagster_classes if name in vars(cls))
        if isinstance(theirs, classmethod | staticmethod):
            theirs = theirs.__get__(None, plugin)
        kinds = {parameter.kind for parameter in inspect.signature(ours).parameters.values()}
        if {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD} <= kinds:
            continue  # passes everything through (``*args, **kwargs``)
        assert _parameters(ours) == _parameters(theirs), f"{plugin.__name__}.{name}"


@pytest.mark.parametrize("path", list(CALLED))
def test_each_dagster_function_a_plugin_calls_takes_the_same_parameters(path: str) -> None:
    assert _parameters(_resolve(path)) == CALLED[path]


def test_the_constants_the_plugins_import_have_the_values_they_rely_on() -> None:
    from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS
    from dagster._core.storage.compute_log_manager import ComputeIOType
    from dagster._core.storage.event_log import SqlEventLogStorageTable
    from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION
    from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS

    assert dg.DagsterEventType.ASSET_MATERIALIZATION in ASSET_EVENTS
    assert dg.DagsterEventType.ASSET_CHECK_EVALUATION in ASSET_CHECK_EVENTS
    assert "id" in SqlEventLogStorageTable.c
    assert IO_TYPE_EXTENSION == {ComputeIOType.STDOUT: "out", ComputeIOType.STDERR: "err"}
    assert isinstance(SQLITE_BUSY_TIMEOUT_SECONDS, int | float) and SQLITE_BUSY_TIMEOUT_SECONDS > 0


def test_the_sqlite_storages_set_the_attributes_the_embedded_plugins_read(tmp_path: Path) -> None:
    events = ConsolidatedSqliteEventLogStorage(str(tmp_path / "events"))
    runs = SqliteRunStorage.from_local(str(tmp_path / "runs"))
    schedules = SqliteScheduleStorage.from_local(str(tmp_path / "schedules"))
    try:
        for attribute in ("_conn_string", "_base_dir", "_obs", "_watchers"):
            assert hasattr(events, attribute), attribute
        assert hasattr(runs, "_conn_string") and hasattr(schedules, "_conn_string")
    finally:
        for storage in (events, runs, schedules):
            storage.dispose()


def test_the_queue_daemon_counts_and_reads_what_launch_at_submit_mirrors() -> None:
    """``run_admission`` counts the runs in ``ACTIVE_RUN_STATUSES`` and reads ``RunQueueConfig``'s
    fields as the daemon does; the daemon still launches only QUEUED runs it re-read, through
    ``instance.run_launcher.launch_run`` (where ``WarmRunLauncher`` asks the coordinator)."""
    from dagster._core.run_coordinator.queued_run_coordinator import RunQueueConfig
    from dagster._core.storage.dagster_run import ACTIVE_RUN_STATUSES
    from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon

    assert set(ACTIVE_RUN_STATUSES) == {
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    }
    for field in (
        "max_concurrent_runs",
        "tag_concurrency_limits",
        "max_user_code_failure_retries",
        "should_block_op_concurrency_limited_runs",
    ):
        assert field in RunQueueConfig._fields
    counting = inspect.getsource(QueuedRunCoordinatorDaemon._get_in_progress_run_records)
    assert "ACTIVE_RUN_STATUSES" in counting
    dequeue = inspect.getsource(QueuedRunCoordinatorDaemon._dequeue_run)
    assert "DagsterRunStatus.QUEUED" in dequeue and "instance.run_launcher.launch_run" in dequeue
    choosing = inspect.getsource(QueuedRunCoordinatorDaemon._get_runs_to_dequeue)
    assert "TagConcurrencyLimitsCounter" in choosing and "max_concurrent_runs" in choosing


def test_the_run_coordinator_reaches_its_instance_as_the_plugin_does() -> None:
    """``FlowRunCoordinator.submit_run`` adds tags through the instance Dagster attached to it."""
    coordinator = {"module": "dp_instance.run_coordinator", "class": "FlowRunCoordinator"}
    with dg.instance_for_test(overrides={"run_coordinator": coordinator}) as instance:
        assert isinstance(instance.run_coordinator, run_coordinator.FlowRunCoordinator)
        assert instance.run_coordinator._instance is instance


@pytest.mark.postgres
def test_the_postgres_storages_set_the_attributes_the_pg_plugin_reads_and_sets(postgres_url: str) -> None:
    """``ResilientPostgresStorage`` sets the attributes ``DagsterPostgresStorage``'s properties
    read; its run, event-log and schedule storage read the URL and token provider Dagster's set."""
    storage = pg_storage.ResilientPostgresStorage(postgres_url)
    parts = (storage.run_storage, storage.event_log_storage, storage.schedule_storage)
    try:
        assert isinstance(storage.run_storage, pg_storage.ResilientPostgresRunStorage)
        assert isinstance(storage.event_log_storage, pg_storage.ResilientPostgresEventLogStorage)
        assert isinstance(storage.schedule_storage, pg_storage.SharedPoolPostgresScheduleStorage)
        for part in parts:
            assert part.postgres_url == postgres_url
            assert hasattr(part, "_token_provider")
    finally:
        for part in parts:
            part.dispose()


# ---- instance files written before the plugins moved ---------------------------------------------

OLD_EMBEDDED = """\
run_storage:
  module: dp_resources.embedded_storage
  class: EmbeddedRunStorage
  config: {{base_dir: {home}/history}}
event_log_storage:
  module: dp_resources.embedded_storage
  class: EmbeddedEventLogStorage
  config: {{base_dir: {home}/history/events}}
schedule_storage:
  module: dp_resources.embedded_storage
  class: EmbeddedScheduleStorage
  config: {{base_dir: {home}/schedules}}
compute_logs:
  module: dp_resources.compute_logs
  class: ThreadedComputeLogManager
  config: {{base_dir: {home}/storage}}
telemetry:
  enabled: false
"""


@dg.asset
def printed() -> int:
    print("printed by the step")
    return 1


def test_an_instance_file_naming_the_old_embedded_paths_still_loads_and_runs(tmp_path: Path) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(OLD_EMBEDDED.format(home=home))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.run_storage, embedded_storage.EmbeddedRunStorage)
        assert isinstance(instance.event_log_storage, embedded_storage.EmbeddedEventLogStorage)
        assert isinstance(instance.schedule_storage, embedded_storage.EmbeddedScheduleStorage)
        assert isinstance(instance.compute_log_manager, compute_logs.ThreadedComputeLogManager)
        result = dg.materialize([printed], instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(printed.key) is not None
        captured = [e for e in result.all_events if e.event_type == dg.DagsterEventType.LOGS_CAPTURED]
        manager = instance.compute_log_manager
        key = manager.build_log_key_for_run(result.run_id, captured[0].event_specific_data.file_key)
        assert manager.is_capture_complete(key)
        # A run worker opens the instance from its reference, which keeps the old paths.
        with dg.DagsterInstance.from_ref(instance.get_ref()) as worker_instance:
            assert worker_instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS


@pytest.mark.postgres
def test_an_instance_file_naming_the_old_postgres_path_still_loads(postgres_url: str, tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text(
        "storage:\n  custom:\n    module: dp_resources.pg_storage\n"
        f"    class: ResilientPostgresStorage\n    config:\n      postgres_url: {postgres_url}\n"
        "telemetry:\n  enabled: false\n"
    )
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, pg_storage.ResilientPostgresRunStorage)
        assert isinstance(instance.event_log_storage, pg_storage.ResilientPostgresEventLogStorage)
        result = dg.materialize([printed], instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).status == dg.DagsterRunStatus.SUCCESS
