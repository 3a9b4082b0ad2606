"""Every dp command from the project root with no DAGSTER_HOME set (the embedded default's home is
used and created, never the repository's production dagster.yaml, never DagsterHomeNotSetError),
and one plain line when the run storage of a production DAGSTER_HOME cannot be reached."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dp_assets.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parents[2]

#: Commands that open the Dagster instance, run for real (exit 1 is a refusal the user reads).
INSTANCE_RUNS = (
    ("runs", "list"),
    ("runs", "show", "abcd1234"),
    ("runs", "prune", "--keep-last", "3", "--dry-run"),
    ("status", "no-such-task"),
    ("retry-failed", "abcd1234", "--dry-run"),
    ("run", "no_such_flow"),
    ("test", "simple_workflow_example"),
)


def _shell(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DP_", "DAGSTER_"))}
    env["DP_HOME"] = str(tmp_path / "home")
    return env


def _every_command_path() -> list[tuple[str, ...]]:
    context = click.Context(main)
    paths = []
    for name in COMMANDS:
        command = main.get_command(context, name)
        paths.append((name,))
        if isinstance(command, click.Group):
            paths += [(name, sub) for sub in command.commands]
    return paths


@pytest.mark.parametrize("path", _every_command_path(), ids=" ".join)
def test_every_command_answers_help_without_dagster_home(path, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(main, [*path, "--help"], env={"DAGSTER_HOME": None, "DP_HOME": str(tmp_path / "home")})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_instance_commands_use_the_embedded_home_from_the_project_root(tmp_path, monkeypatch):
    """What `make run` uses (DP_HOME/dagster), created on first use; the repository's dagster.yaml
    in the working directory is production's and is never picked up."""
    monkeypatch.chdir(ROOT)
    env = {k: None for k in os.environ if k.startswith(("DP_", "DAGSTER_"))}
    env["DP_HOME"] = str(tmp_path / "home")
    for args in INSTANCE_RUNS:
        result = CliRunner().invoke(main, list(args), env=env)
        assert "DagsterHomeNotSetError" not in result.output and "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
        assert result.exit_code in (0, 1), (args, result.output)
        assert result.exit_code == 0 or "Error: " in result.output or "FAIL" in result.output, args
    instance_file = tmp_path / "home" / "dagster" / "dagster.yaml"
    assert "Embedded default instance" in instance_file.read_text()

    # And as a shell runs it: a process of its own.
    listed = subprocess.run(
        [sys.executable, "-m", "dp_assets.cli", "runs", "list"],
        cwd=ROOT,
        env=_shell(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert listed.returncode == 0 and listed.stdout == "no stored runs\n", listed.stderr


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_unreachable_run_storage_is_one_plain_line(tmp_path):
    """A production DAGSTER_HOME (the repository's dagster.yaml) whose PostgreSQL is down."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home)
    port = _closed_port()
    env = {
        **_shell(tmp_path),
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": "127.0.0.1",
        "DAGSTER_PG_PORT": str(port),
        "DAGSTER_PG_USER": "postgres",
        "DAGSTER_PG_PASSWORD": "secret",
        "DAGSTER_PG_DB": "runs_db",
    }
    for args in (("runs", "list"), ("status", "some-task")):
        done = subprocess.run(
            [sys.executable, "-m", "dp_assets.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 1, args
        assert done.stdout == "", args
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(
            f"Error: cannot reach the Dagster run storage: PostgreSQL at 127.0.0.1:{port}, database "
            f"runs_db, set in {home / 'dagster.yaml'} ("
        )
        assert "Start it or correct its settings" in lines[0] and "secret" not in lines[0]
