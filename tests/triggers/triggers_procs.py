"""Real Dagster processes for the trigger tests: ``dagster-webserver`` and ``dagster-daemon`` on a
platform home in tmp (:class:`tests.support.dagster_processes.DagsterPlatform`), with a run queue
that applies the platform's concurrency tags, and a sensor's stored cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dp_sensors.triggers.policy import concurrency_limits_config
from tests.support.dagster_processes import DagsterPlatform


def instance_yaml(max_concurrent_runs: int = 10, held_flows: tuple[str, ...] = ()) -> dict[str, Any]:
    """An embedded-style instance for tests: SQLite storage (the default), a run queue that
    dequeues every second with the platform's concurrency tags, run retries on, and nothing that
    phones home. Runs of ``held_flows`` are never dequeued (a limit of 0 on their ``dp/flow``
    tag), so a test can count what a sensor asked for without running it."""
    held = [{"key": "dp/flow", "value": flow_id, "limit": 0} for flow_id in held_flows]
    return {
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": {
                "max_concurrent_runs": max_concurrent_runs,
                "dequeue_interval_seconds": 1,
                "tag_concurrency_limits": held + concurrency_limits_config(),
            },
        },
        "run_retries": {"enabled": True, "max_retries": 0},
        "run_monitoring": {"enabled": False},
        "sensors": {"use_threads": True, "num_workers": 2},
        "telemetry": {"enabled": False},
        "nux": {"enabled": False},
    }


@dataclass
class Platform(DagsterPlatform):
    """A platform serving ``dp_assets.definitions`` with the trigger tests' instance; sensors tick
    every second."""

    max_concurrent_runs: int = 10
    held_flows: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.instance_config = instance_yaml(self.max_concurrent_runs, self.held_flows)
        self.target = ("-m", "dp_assets.definitions")
        self.extra_env = {"DP_SENSOR_INTERVAL_SECONDS": "1", **self.extra_env}
        self.start_bound_seconds = 180.0
        super().__post_init__()


def sensor_cursor(instance: Any, sensor_name: str) -> str | None:
    """The stored cursor of a sensor, ``None`` before its first tick stored one."""
    from dagster._core.scheduler.instigation import InstigatorType as Kind

    for state in instance.all_instigator_state(instigator_type=Kind.SENSOR):
        if state.name == sensor_name and state.instigator_data is not None:
            return state.instigator_data.cursor
    return None
