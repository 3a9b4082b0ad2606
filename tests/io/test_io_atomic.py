"""Atomic writes: a killed writer (E5-style) or a full disk (F9) never leaves a partial output
where a reader looks, and the next write or cleanup removes what the dead writer left."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from fsspec.implementations.memory import MemoryFile, MemoryFileSystem

from dp_io.io_manager import RunScopedIOManager
from dp_io.store import OutputStore, parse_temp_name, temp_name

REPO = Path(__file__).resolve().parents[2]

# A child process that starts writing a stored output, signals, and hangs mid-write.
_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time, pathlib
    from dp_io.io_manager import RunScopedIOManager

    base, run_id, flag, kind = sys.argv[1:5]

    class Hang:
        def __reduce__(self):
            pathlib.Path(flag).touch()
            time.sleep(600)
            return (int, ())

    def stream():
        import pandas as pd
        yield pd.DataFrame({"x": range(1000)})
        yield pd.DataFrame({"x": range(1000)})
        pathlib.Path(flag).touch()
        time.sleep(600)
        yield pd.DataFrame({"x": range(10)})

    io = RunScopedIOManager(base_url=base)
    store = io.store()
    stem = io.output_stem(store, run_id, ("flow_k", "node"), None)
    value = stream() if kind == "stream" else (b"x" * 5_000_000, Hang())
    io.dump(store, stem, value, "arrow")
    """
)


def _start_killed_writer(base: str, run_id: str, tmp_path: Path, kind: str) -> None:
    """Run the writer until it is mid-write, then SIGKILL it."""
    flag = tmp_path / f"writing-{uuid.uuid4().hex}"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, base, run_id, str(flag), kind],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 120
        while not flag.exists():
            assert proc.poll() is None, "writer exited before it started writing"
            assert time.monotonic() < deadline, "writer never started writing"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _hidden(store: OutputStore, directory: str) -> list[str]:
    return [n for n in store.listdir(directory) if n.startswith(".")]


@pytest.mark.fault
def test_E5_killed_writer_leaves_old_value_and_next_write_cleans(tmp_path: Path) -> None:
    """E5-style: SIGKILL mid-write; the reader still gets the old complete value; the stray
    temporary file is removed by the next write."""
    base = str(tmp_path / "outputs")
    io = RunScopedIOManager(base_url=base)
    store = io.store()
    run_id = str(uuid.uuid4())
    stem = io.output_stem(store, run_id, ("flow_k", "node"), None)
    io.dump(store, stem, (b"old",), "arrow")

    _start_killed_writer(base, run_id, tmp_path, "value")

    directory = os.path.dirname(stem)
    stray = _hidden(store, directory)
    assert len(stray) == 1 and parse_temp_name(stray[0])[0] == "node.pkl"
    assert os.path.getsize(os.path.join(directory, stray[0])) > 0  # really partial
    assert io.load(store, store.find_output(stem)) == (b"old",)

    io.dump(store, stem, (b"new",), "arrow")
    assert _hidden(store, directory) == []
    assert io.load(store, store.find_output(stem)) == (b"new",)


@pytest.mark.fault
def test_E5_killed_stream_writer_leaves_no_output_and_cleanup_removes_parts(tmp_path: Path) -> None:
    base = str(tmp_path / "outputs")
    io = RunScopedIOManager(base_url=base)
    store = io.store()
    run_id = str(uuid.uuid4())
    stem = io.output_stem(store, run_id, ("flow_k", "node"), None)

    _start_killed_writer(base, run_id, tmp_path, "stream")

    parts_dir = stem + ".parts"
    assert len(store.listdir(parts_dir)) == 2  # two parts, no manifest
    assert store.find_output(stem) is None  # a reader sees no output, not a partial one

    removed = store.cleanup_tree(store.run_dir(run_id))
    assert len(removed) == 2 and store.listdir(parts_dir) == []


def test_temp_files_of_live_or_recent_writers_are_kept(tmp_path: Path) -> None:
    store = OutputStore(str(tmp_path))
    store.makedirs(store.root)
    live = os.path.join(store.root, temp_name("a.arrow", f"{os.getppid()}-abcd1234-{_host()}"))
    other_recent = os.path.join(store.root, temp_name("b.arrow", "1-abcd1234-otherhost"))
    other_old = os.path.join(store.root, temp_name("c.arrow", "1-abcd1234-otherhost"))
    for path in (live, other_recent, other_old):
        Path(path).write_bytes(b"partial")
    os.utime(other_old, (time.time() - 7200, time.time() - 7200))
    removed = store.cleanup_directory(store.root)
    assert removed == [other_old]


def _host() -> str:
    from dp_resources.temp_names import host_label

    return host_label()


# ---- F9: disk full --------------------------------------------------------------------------


class DiskFullFS(MemoryFileSystem):
    """A memory filesystem whose files fail with ENOSPC after ``capacity`` bytes."""

    protocol = ("dpfull",)
    store: dict = {}
    pseudo_dirs = [""]
    capacity = 64 * 1024

    def _open(self, path, mode="rb", **kwargs):
        if mode in {"wb", "w+b", "xb", "x+b"}:
            handle = _FullFile(self, self._strip_protocol(path))
            handle.commit()  # like MemoryFileSystem: visible while being written
            return handle
        return super()._open(path, mode, **kwargs)


class _FullFile(MemoryFile):
    def write(self, data):
        if self.tell() + len(memoryview(data)) > DiskFullFS.capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def _f9_assets(counter: list[str]):
    @dg.asset(key=["f9", "big"])
    def big() -> pd.DataFrame:
        counter.append("big")
        return pd.DataFrame({"x": range(200_000), "s": ["payload-" * 4] * 200_000})

    @dg.asset(key=["f9", "after"])
    def after(big: pd.DataFrame) -> int:
        counter.append("after")
        return len(big)

    return [big, after]


def _assert_clean_failure(result: dg.ExecuteInProcessResult, counter: list[str]) -> None:
    assert not result.success
    failures = result.get_step_failure_events()
    assert [f.step_key for f in failures] == ["f9__big"]
    assert "No space left on device" in str(failures[0].step_failure_data.error)
    assert counter == ["big"]  # the downstream never ran
    assert result.asset_materializations_for_node("f9__big") == []


@pytest.mark.fault
def test_F9_disk_full_simulated_enospc(instance: dg.DagsterInstance) -> None:
    """F9 on an fsspec filesystem whose writes raise ENOSPC: clean step failure, no final or
    temporary file, downstream not run."""
    import fsspec

    fsspec.register_implementation("dpfull", DiskFullFS, clobber=True)
    DiskFullFS.store.clear()
    base = f"dpfull://f9/{uuid.uuid4().hex}"
    counter: list[str] = []
    result = dg.materialize(
        _f9_assets(counter),
        instance=instance,
        resources={"io_manager": RunScopedIOManager(base_url=base)},
        raise_on_error=False,
    )
    _assert_clean_failure(result, counter)
    assert [p for p in DiskFullFS.store if "big" in p] == []


@pytest.mark.fault
def test_F9_disk_full_real_tmpfs(instance: dg.DagsterInstance, tiny_tmpfs: Path) -> None:
    """F9 on a real 1 MiB filesystem: the OS's own ENOSPC fails the step cleanly."""
    counter: list[str] = []
    result = dg.materialize(
        _f9_assets(counter),
        instance=instance,
        resources={"io_manager": RunScopedIOManager(base_url=str(tiny_tmpfs))},
        raise_on_error=False,
    )
    _assert_clean_failure(result, counter)
    leftovers = [p for p in tiny_tmpfs.rglob("*") if p.is_file()]
    assert leftovers == []
