"""Compute logs of the embedded default (dp_instance/compute_logs.py): a step's stdout and
stderr, its child processes' included, land in the files the UI reads, the capture is marked
complete, the output still reaches the terminal the process had, no process is started to do
it, and a terminal that stops reading never holds a step.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg
import pytest

from dp_assets.cli.home import instance_file_text
from dp_instance.compute_logs import ThreadedComputeLogManager

ROOT = Path(__file__).resolve().parents[2]


def _instance(home: Path) -> dg.DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_file_text(home))
    return dg.DagsterInstance.from_config(str(home))


def test_dp_init_home_instance_uses_the_threaded_manager(tmp_path: Path) -> None:
    instance = _instance(tmp_path / "dagster")
    assert isinstance(instance.compute_log_manager, ThreadedComputeLogManager)
    assert instance.compute_log_manager._base_dir == str((tmp_path / "dagster" / "storage").resolve())
    instance.dispose()


def test_capturing_starts_no_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dagster's own manager starts four (a tail and a watcher per stream): the control."""
    started: list[list[str]] = []
    real_popen = subprocess.Popen

    def recording(args, *rest, **kwargs):
        started.append(list(args))
        return real_popen(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording)

    @dg.asset
    def quiet() -> int:
        print("hello")
        return 1

    instance = _instance(tmp_path / "dagster")
    assert dg.materialize([quiet], instance=instance).success
    assert started == []
    instance.dispose()

    stock_home = tmp_path / "stock"
    stock_home.mkdir()
    (stock_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(stock_home)) as stock:
        assert dg.materialize([quiet], instance=stock).success
    assert any(args[0] == "tail" for args in started)


def test_a_stream_without_a_descriptor_starts_no_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dp run` swaps stderr for a StringIO while its run executes: no `tail -F` (Dagster's
    fallback, which outlived the command) and no watcher is started for it."""
    started: list[list[str]] = []
    real_popen = subprocess.Popen

    def recording(args, *rest, **kwargs):
        started.append(list(args))
        return real_popen(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", recording)

    @dg.asset
    def noisy() -> int:
        print("to the swapped stream", file=sys.stderr)
        return 1

    instance = _instance(tmp_path / "dagster")
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        assert dg.materialize([noisy], instance=instance).success
    assert started == []
    instance.dispose()


# A process of its own, so that its stdout and stderr are real descriptors (pytest's capture
# replaces them in this one). Prints what the step captured, as JSON, on its last line.
CHILD = textwrap.dedent("""
    import json, subprocess, sys
    import dagster as dg
    from pathlib import Path
    from dp_assets.cli.home import instance_file_text

    home = Path(sys.argv[1])
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_file_text(home))

    @dg.asset
    def loud() -> int:
        print("py-out", flush=True)
        print("py-err", file=sys.stderr, flush=True)
        subprocess.run(["sh", "-c", "echo child-out; echo child-err >&2"], check=True)
        print("x" * int(sys.argv[2]), flush=True)
        return 1

    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize([loud], instance=instance)
        assert result.success
        manager = instance.compute_log_manager
        captured = []
        for event in result.all_events:
            if event.event_type == dg.DagsterEventType.LOGS_CAPTURED:
                key = manager.build_log_key_for_run(result.run_id, event.event_specific_data.file_key)
                data = manager.get_log_data(key)
                captured.append({"stdout": data.stdout.decode(), "stderr": data.stderr.decode(),
                                 "complete": manager.is_capture_complete(key)})
    print("\\n" + json.dumps(captured), file=sys.stderr)
""")


def _child(home: Path, filler: int, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(home), str(filler)], cwd=ROOT, **kwargs)


def test_step_and_child_process_output_is_captured_and_still_reaches_the_terminal(tmp_path: Path) -> None:
    child = _child(tmp_path / "dagster", 10, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 0, stderr[-3000:]
    captured = json.loads(stderr.strip().splitlines()[-1])
    assert captured, "no LOGS_CAPTURED event"
    step = captured[-1]
    assert "py-out" in step["stdout"] and "child-out" in step["stdout"]
    assert "py-err" in step["stderr"] and "child-err" in step["stderr"]
    assert step["complete"]
    assert "py-out" in stdout and "child-out" in stdout  # mirrored to the process's own stdout
    assert "py-err" in stderr and "child-err" in stderr


def test_a_terminal_that_stops_reading_never_holds_the_step(tmp_path: Path) -> None:
    """200 kB into a pipe nobody reads (it holds 64 kB): the mirror gives up, the run ends, and
    the captured file still has every byte."""
    child = _child(tmp_path / "dagster", 200_000, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert child.wait(timeout=120) == 0
    finally:
        child.kill()
        child.stdout.close()
    outs = list((tmp_path / "dagster" / "storage").rglob("*.out"))
    assert any(f.stat().st_size > 200_000 and b"child-out" in f.read_bytes() for f in outs), outs
