"""Compute logs captured to local files, mirrored to the terminal by a thread.

Dagster's ``LocalComputeLogManager`` points a step's stdout and stderr (the file descriptors,
so child processes are captured too) at one file each, which the UI reads. To keep showing the
output where it went before (the ``dagster dev`` terminal, a notebook), it starts per stream a
``tail -F`` process and a Python process that watches the tail for orphaning, then terminates
both when the step ends: four process starts per capture. Measured here, that was 36-42 ms of
every run: a one-node flow took 70 ms with it and 35 ms without (docs/benchmarks.md).

:class:`ThreadedComputeLogManager` captures to the same files in the same way and reads the
same for the UI; only the mirror differs: one thread per stream copies what lands in the file
to the original descriptor, and a last copy when the capture ends makes sure nothing is left
out. A thread cannot be orphaned, so nothing watches it. Output that a child process writes
after the capture ended still goes to the file, unmirrored (as with Dagster's, whose tail is
stopped then). A mirror whose reader stops reading for a second (a pipe nobody drains) gives up
rather than hold the step: the file keeps everything, as the UI shows it.
"""

from __future__ import annotations

import os
import select
import sys
import threading
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from typing import IO, Any

from dagster._core.execution.compute_logs import _fileno, mirror_stream_to_file, redirect_to_file
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._utils import ensure_file, touch_file

POLL_SECONDS = 0.1  # how soon output shows in the terminal while a step runs
STALLED_SECONDS = 1.0  # a terminal (or pipe) that takes no output for this long is given up on
_CHUNK = 1 << 16
_PIPE_BUF = 4096  # a pipe that polls writable takes this much without blocking


class ThreadedComputeLogManager(LocalComputeLogManager):
    """``LocalComputeLogManager`` (same config: ``base_dir``, ``polling_timeout``) whose terminal
    mirror is a thread instead of two processes per stream."""

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Any) -> ThreadedComputeLogManager:
        return cls(inst_data=inst_data, **config_value)  # the parent hard-codes its own class

    @contextmanager
    def capture_logs(self, log_key: Sequence[str]) -> Generator[CapturedLogContext, None, None]:
        outpath = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDOUT])
        errpath = self.get_captured_local_path(log_key, IO_TYPE_EXTENSION[ComputeIOType.STDERR])
        with mirrored_to_file(sys.stdout, outpath), mirrored_to_file(sys.stderr, errpath):
            yield CapturedLogContext(log_key)
        touch_file(self.complete_artifact_path(log_key))  # as the parent: the capture is complete


@contextmanager
def mirrored_to_file(stream: IO[Any], path: str) -> Generator[None, None, None]:
    """Send ``stream``'s descriptor to ``path``; a thread copies it to where it went before."""
    fd = _fileno(stream)
    if os.name == "nt":  # Dagster's own handling
        with mirror_stream_to_file(stream, path):
            yield
        return
    ensure_file(path)
    if fd is None:
        # A stream without a descriptor (``dp run`` swaps stderr for a StringIO): nothing to
        # redirect, the file stays empty, as with Dagster's handling, which would also start a
        # ``tail -F`` of the empty file onto descriptor 1 and a watcher, left running by a process
        # that ends before the capture does.
        yield
        return
    mirror = _Mirror(path, os.dup(fd))
    mirror.start()
    try:
        with redirect_to_file(stream, path):
            yield
    finally:
        mirror.finish()


class _Mirror(threading.Thread):
    """Copies what is appended to a file to a descriptor, until told to finish."""

    def __init__(self, path: str, target_fd: int):
        super().__init__(name="dp-compute-log-mirror", daemon=True)
        self._path = path
        self._target = target_fd
        self._start_at = os.path.getsize(path)  # what an earlier capture wrote is not repeated
        self._finishing = threading.Event()
        self._broken = False

    def run(self) -> None:
        with open(self._path, "rb") as source:
            source.seek(self._start_at)
            while True:
                finishing = self._finishing.wait(POLL_SECONDS)
                self._copy(source)
                if finishing:
                    return

    def finish(self) -> None:
        """Copy what is left and stop (the descriptor was pointed back before this is called)."""
        self._finishing.set()
        self.join()
        os.close(self._target)

    def _copy(self, source: IO[bytes]) -> None:
        while chunk := source.read(_CHUNK):
            view = memoryview(chunk)
            while view and not self._broken:
                view = view[self._write_some(view[:_PIPE_BUF]) :]

    def _write_some(self, piece: memoryview) -> int:
        """Write without ever blocking the step for long: a reader that stopped reading (a full
        pipe nobody drains, a paused terminal) ends the mirror; the file still has everything."""
        try:
            if not select.select([], [self._target], [], STALLED_SECONDS)[1]:
                self._broken = True
                return 0
            return os.write(self._target, piece)
        except OSError:  # the terminal went away
            self._broken = True
            return 0
