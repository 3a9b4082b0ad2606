"""``dp init-home``: the embedded default's local home, created once."""

from __future__ import annotations

import click

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


@click.command("init-home")
def init_home() -> None:
    """Create DP_HOME and DAGSTER_HOME with the embedded default's instance settings."""
    home = settings.dp_home()
    dagster_home = settings.dagster_home() or home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    settings.data_dir().mkdir(parents=True, exist_ok=True)
    instance_file = dagster_home / "dagster.yaml"
    if not instance_file.exists():
        instance_file.write_text(LOCAL_INSTANCE)
    click.echo(f"DP_HOME={home}\nDAGSTER_HOME={dagster_home}")
