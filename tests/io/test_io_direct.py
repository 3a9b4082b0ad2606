"""Outputs that no other step of the run reads are written past the page cache (``O_DIRECT``,
dp_io/direct.py): the files are byte for byte what a buffered write makes, at every size around
the aligned buffer's edges; a filesystem that refuses direct IO gets a buffered write instead; a
full disk fails the write and leaves nothing behind; and in a run, only the outputs that stay
inside their step go direct.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import dp_io.direct as direct
from dp_assets.catalog import default_catalog
from dp_assets.compiler.factory import build_flow_definitions
from dp_assets.spec.validation import validate_spec
from dp_io.direct import ALIGNMENT, DirectFile, open_direct
from dp_io.formats import decode, encode
from dp_io.io_manager import RunScopedIOManager
from dp_io.store import OutputStore

SMALL_BUFFER = 2 * ALIGNMENT  # several buffers even for small test data


def _direct_file(path: Path) -> DirectFile:
    opened = open_direct(str(path), buffer_bytes=SMALL_BUFFER)
    if opened is None:
        pytest.skip("this filesystem refuses O_DIRECT")
    return opened


@pytest.mark.parametrize(
    "size", [0, 1, ALIGNMENT - 1, ALIGNMENT, SMALL_BUFFER - 1, SMALL_BUFFER, SMALL_BUFFER + 1, 3 * SMALL_BUFFER + 17]
)
@pytest.mark.parametrize("pieces", [1, 7])
def test_bytes_written_direct_are_the_bytes_given(tmp_path: Path, size: int, pieces: int) -> None:
    payload = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    target = tmp_path / "out.bin"
    with _direct_file(target) as handle:
        for chunk in np.array_split(np.frombuffer(payload, dtype=np.uint8), pieces):
            assert handle.write(chunk.tobytes()) == len(chunk)
        assert handle.tell() == size
    assert target.read_bytes() == payload


@pytest.mark.parametrize("frame_format", ["arrow", "arrow-lz4", "parquet"])
@pytest.mark.parametrize("rows", [0, 3, 20_000])
def test_a_frame_written_direct_equals_the_buffered_file(
    tmp_path: Path, frame_format: str, rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = pd.DataFrame(
        {"id": np.arange(rows), "name": [f"n{i}" for i in range(rows)], "value": np.linspace(0, 1, rows)}
    )
    opened: list[str] = []
    real_open = direct.open_direct

    def spy(path: str):
        opened.append(path)
        return real_open(path)

    monkeypatch.setattr(direct, "open_direct", spy)
    buffered, written_direct = encode(frame, frame_format), encode(frame, frame_format)
    written_direct.direct = True
    buffered.write(str(tmp_path / "buffered"))
    written_direct.write(str(tmp_path / "direct"))
    assert opened == [str(tmp_path / "direct")]  # the buffered write never asked
    assert (tmp_path / "direct").read_bytes() == (tmp_path / "buffered").read_bytes()
    suffix = ".parquet" if frame_format == "parquet" else ".arrow"
    pd.testing.assert_frame_equal(decode(str(tmp_path / "direct"), suffix), frame)


def test_a_filesystem_that_refuses_direct_io_gets_a_buffered_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def refuse_direct(path, flags, *args):
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", refuse_direct)
    assert open_direct(str(tmp_path / "x")) is None
    frame = pd.DataFrame({"a": [1, 2, 3]})
    encoded = encode(frame, "arrow")
    encoded.direct = True
    encoded.write(str(tmp_path / "out.arrow"))
    pd.testing.assert_frame_equal(decode(str(tmp_path / "out.arrow"), ".arrow"), frame)


@pytest.mark.fault
def test_F9_disk_full_under_a_direct_write_leaves_nothing(tiny_tmpfs: Path) -> None:
    """F9 for the direct path: the OS's ENOSPC fails the write, and no final or temporary file
    is left (the atomic writer removes its temporary file)."""
    probe = open_direct(str(tiny_tmpfs / "probe"))
    if probe is None:
        pytest.skip("this tmpfs refuses O_DIRECT")
    probe.abort()  # an open descriptor would keep the filesystem busy at unmount
    (tiny_tmpfs / "probe").unlink()
    store = OutputStore(str(tiny_tmpfs))
    big = pd.DataFrame({"x": np.arange(1_000_000)})  # 8 MB into 1 MiB
    encoded = encode(big, "arrow")
    encoded.direct = True
    with pytest.raises(OSError) as failed:
        store.atomic_write(str(tiny_tmpfs / "big.arrow"), encoded.write)
    assert failed.value.errno == errno.ENOSPC
    assert [p for p in tiny_tmpfs.rglob("*") if p.is_file()] == []


FLOW = "direct_flow"
SOURCE = {"id": "src", "type": "StaticData", "params": {"rows": [{"x": i} for i in range(100)]}}
DOUBLED = {
    "id": "doubled",
    "type": "AddModifyColumn",
    "inputs": ["src"],
    "params": {"column": "y", "expression": "x * 2"},
}


def _run_flow(base: Path, steps: str, io_manager: RunScopedIOManager, monkeypatch: pytest.MonkeyPatch):
    opened: list[str] = []
    real_open = direct.open_direct

    def spy(path: str):
        opened.append(Path(path).name.split(".")[1])  # ".{node}.arrow.{token}.tmp"
        return real_open(path)

    monkeypatch.setattr(direct, "open_direct", spy)
    spec = {"id": FLOW, "nodes": [SOURCE, DOUBLED], "policies": {"steps": steps}}
    catalog = default_catalog()
    defs = dg.Definitions.merge(
        build_flow_definitions(validate_spec(spec, catalog), catalog),
        dg.Definitions(resources={"io_manager": io_manager}),
    )
    result = defs.resolve_job_def(FLOW).execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    stored = pa.ipc.open_file(str(base / result.run_id / FLOW / "doubled.arrow")).read_pandas()
    pd.testing.assert_frame_equal(stored, pd.DataFrame({"x": range(100), "y": [2 * i for i in range(100)]}))
    return sorted(opened)


def test_in_a_run_only_outputs_read_within_their_step_go_direct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "outputs"
    one_step = _run_flow(base, "flow", RunScopedIOManager(base_url=str(base)), monkeypatch)
    assert one_step == ["doubled", "src"]
    # A step per node: `src` is read by the next step (soon, through the page cache); `doubled`
    # is read by no other step.
    per_node = _run_flow(base, "node", RunScopedIOManager(base_url=str(base)), monkeypatch)
    assert per_node == ["doubled"]
    switched_off = _run_flow(base, "flow", RunScopedIOManager(base_url=str(base), direct_writes=False), monkeypatch)
    assert switched_off == []


def test_a_direct_file_dropped_unclosed_releases_its_descriptor(tmp_path: Path) -> None:
    handle = open_direct(str(tmp_path / "dropped"))
    if handle is None:
        pytest.skip("this filesystem refuses O_DIRECT")
    fd = handle._fd
    del handle
    with pytest.raises(OSError):
        os.fstat(fd)
