"""Long dp commands (publishing a folder, `dp test`, `dp runs prune`) end with a one-line summary;
in a pipe or a log they print only their lines (no live progress, no terminal codes); on a
terminal they show their progress as they go."""

from __future__ import annotations

import os
import pty
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dp_assets.publishing import spec_files

ROOT = Path(__file__).resolve().parents[2]
TERMINAL_CODES = re.compile(r"\x1b|\r")


@pytest.fixture
def shell(tmp_path) -> dict[str, str]:
    """A user's shell in a copy of the example flows, with no DAGSTER_HOME."""
    shutil.copytree(ROOT / "flows", tmp_path / "flows")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DP_", "DAGSTER_"))}
    env.update(DP_HOME=str(tmp_path / "home"), DP_FLOWS_DIR=str(tmp_path / "flows"), COLUMNS="120")
    return env


def _dp(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dp_assets.cli", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def _plain_lines(done: subprocess.CompletedProcess) -> list[str]:
    assert not TERMINAL_CODES.search(done.stdout + done.stderr), repr(done.stdout[-500:])
    return done.stdout.splitlines()


def test_publishing_a_folder_ends_with_a_summary_and_prints_only_lines(shell):
    folder = Path(shell["DP_FLOWS_DIR"])
    specs = len(spec_files(folder))
    first = _dp(shell, "publish", str(folder))
    assert first.returncode == 0, first.stderr
    lines = _plain_lines(first)
    assert lines[-1] == f"{specs} spec(s): {specs} published ({specs} new version(s)), 0 failed"
    assert len(lines) == specs + 1 and all(": new version " in line for line in lines[:-1])

    (folder / "broken.yaml").write_text("id: broken\nnodes: []\n")
    again = _dp(shell, "publish", str(folder))
    assert again.returncode == 1
    assert _plain_lines(again)[-1] == f"{specs + 1} spec(s): {specs} published (0 new version(s)), 1 failed"
    assert "FAIL" in again.stderr and "broken.yaml" in again.stderr


def test_dp_test_and_dp_runs_prune_end_with_a_summary_and_print_only_lines(shell):
    tested = _dp(shell, "test", "simple_workflow_example")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    lines = _plain_lines(tested)
    assert lines[0].startswith("flow simple_workflow_example  (")
    assert re.fullmatch(r"[1-9]\d* passed, 0 failed", lines[-1]), lines[-1]
    assert all(line.startswith(("flow ", "  PASS  ")) for line in lines[:-1]), lines

    spec = str(Path(shell["DP_FLOWS_DIR"]) / "sales_summary.yaml")
    assert _dp(shell, "publish", spec).returncode == 0
    assert _dp(shell, "run", "sales_summary").returncode == 0
    pruned = _dp(shell, "runs", "prune", "--keep-last", "0", "--dry-run", "sales_summary")
    assert pruned.returncode == 0, pruned.stderr
    lines = _plain_lines(pruned)
    # The one run's outputs are its flow's latest materialisations: kept.
    assert lines[-1].startswith("1 run folder(s) past retention; would delete 0 output(s), 0 bytes; kept ")
    assert lines[:-1] and all(line.startswith("  kept (latest) ") for line in lines[:-1])


def test_on_a_terminal_publishing_shows_its_progress(shell):
    """The same command on a terminal: a live progress line (rich), then the summary."""
    primary, secondary = pty.openpty()
    command = [sys.executable, "-m", "dp_assets.cli", "publish", shell["DP_FLOWS_DIR"]]
    process = subprocess.Popen(
        command, env=shell, cwd=ROOT, stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True
    )
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the terminal closed: the command has ended
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    assert process.wait(timeout=600) == 0
    text = seen.decode(errors="replace")
    assert "\x1b[" in text and "publishing" in text  # the live line, redrawn with terminal codes
    last = [line for line in TERMINAL_CODES.sub("\n", text).splitlines() if line.strip()][-1]
    assert re.search(r"\d+ spec\(s\): \d+ published \(\d+ new version\(s\)\), 0 failed", last), last
