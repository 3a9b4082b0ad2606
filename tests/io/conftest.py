"""Fixtures for the IO layer: a real Dagster instance in tmp and output bases on file:// and
memory://; helpers shaped like the compiler's output (one ``multi_asset`` per flow)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from dp_io.io_manager import RunScopedIOManager


@pytest.fixture
def instance(dp_home: Path) -> Iterator[dg.DagsterInstance]:
    """A real local (SQLite) Dagster instance under the test's DAGSTER_HOME."""
    with dg.DagsterInstance.get() as inst:
        yield inst


@pytest.fixture
def local_base(tmp_path: Path) -> str:
    return str(tmp_path / "outputs")


@pytest.fixture
def memory_base() -> Iterator[str]:
    import fsspec

    url = f"memory://dp-io-tests/{uuid.uuid4().hex}"
    yield url
    fs = fsspec.filesystem("memory")
    path = fs._strip_protocol(url)
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture(params=["file", "memory"], ids=["file", "memory"])
def any_base(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test on a local folder (as a file:// URL) and on fsspec's memory filesystem."""
    if request.param == "file":
        yield (tmp_path / "outputs").as_uri()
        return
    yield request.getfixturevalue("memory_base")


def io_manager_for(base: str) -> RunScopedIOManager:
    return RunScopedIOManager(base_url=base)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path):
    """A 1 MiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        # Lazily if still busy: a mount left behind would make pytest's next clean-up of its
        # base folder fail (every later test errors with FileExistsError).
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)
