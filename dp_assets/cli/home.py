"""``dp init-home``: the embedded default's local home, created once."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from dp_resources import settings

LOCAL_INSTANCE = """\
# Embedded default instance (written by `dp init-home`; edit freely, it is not overwritten).
# SQLite storage lives in this folder. Production uses the repository's top-level dagster.yaml.
telemetry:
  enabled: false
run_monitoring:
  enabled: true
  max_runtime_seconds: 21600
run_retries:
  enabled: true
  max_retries: 0
"""


def local_storage(dagster_home: Path) -> str:
    """Runs, all runs' events and the daemon's ticks in SQLite files kept open between operations
    (``dp_resources.embedded_storage``): a run no longer pays for a database file of its own, nor
    an engine and a WAL checkpoint per write, which made most of a small flow's run time (and a
    sensor tick's storage work 14 ms -> 1 ms). Compute logs in Dagster's usual folder, mirrored to
    the terminal by a thread rather than four processes per capture (``dp_resources.compute_logs``)."""
    storage = {
        "run_storage": {
            "module": "dp_resources.embedded_storage", "class": "EmbeddedRunStorage",
            "config": {"base_dir": str(dagster_home.resolve() / "history")},
        },
        "event_log_storage": {
            "module": "dp_resources.embedded_storage", "class": "EmbeddedEventLogStorage",
            "config": {"base_dir": str(dagster_home.resolve() / "history" / "events")},
        },
        "schedule_storage": {
            "module": "dp_resources.embedded_storage", "class": "EmbeddedScheduleStorage",
            "config": {"base_dir": str(dagster_home.resolve() / "schedules")},
        },
        "compute_logs": {
            "module": "dp_resources.compute_logs", "class": "ThreadedComputeLogManager",
            "config": {"base_dir": str(dagster_home.resolve() / "storage")},
        },
    }
    return yaml.safe_dump(storage, sort_keys=False)


def instance_file_text(dagster_home: Path) -> str:
    """What ``dp init-home`` writes to ``DAGSTER_HOME/dagster.yaml``."""
    return LOCAL_INSTANCE + local_storage(dagster_home) + local_run_queue()


def local_run_queue() -> str:
    """Queue limits that make ``policies.max_concurrent_runs`` real in the embedded default too."""
    from dp_sensors.triggers.policy import concurrency_limits_config

    queue = {"run_queue": {"max_concurrent_runs": 4, "tag_concurrency_limits": concurrency_limits_config()}}
    return yaml.safe_dump(queue, sort_keys=False)


@click.command("init-home")
def init_home() -> None:
    """Create DP_HOME and DAGSTER_HOME with the embedded default's instance settings."""
    home = settings.dp_home()
    dagster_home = settings.dagster_home() or home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    settings.data_dir().mkdir(parents=True, exist_ok=True)
    instance_file = dagster_home / "dagster.yaml"
    if not instance_file.exists():
        instance_file.write_text(instance_file_text(dagster_home))
    # Create the storage now: a webserver and a daemon starting together on an empty SQLite home
    # can race on its migrations.
    import dagster as dg

    dg.DagsterInstance.from_config(str(dagster_home)).dispose()
    click.echo(f"DP_HOME={home}\nDAGSTER_HOME={dagster_home}")
