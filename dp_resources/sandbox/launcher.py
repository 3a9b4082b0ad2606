"""Parent side: start a child, feed it, read it under a deadline and a byte cap, reap it.

Two ways to start a child, with one contract (``ChildHandle``):

- ``SubprocessLauncher``: a fresh ``python -I`` per snippet; nothing shared, about a second of
  imports per call. ``run_in_sandbox`` uses it.
- ``ForkServerLauncher`` (``forkserver.py``): a preloaded server process forks a child per
  snippet; the fork happens before any snippet code is read, so children share only the pristine
  preloaded state. ``SandboxResource`` uses it by default.

Either way the child is a session leader (its pid is its process group) and stays unreaped until
``reap``, so killing the group can never hit a recycled pid; a pidfd tells when it has exited.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Thread and allocator settings for the child's libraries; cleared before user code runs.
CHILD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
    "JE_ARROW_MALLOC_CONF": "background_thread:false",
    "LANG": "C.UTF-8",
}
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
BOOTSTRAP = (
    "import sys; sys.path.insert(0, sys.argv[1]); from dp_resources.sandbox.entry import main; main(sys.argv[2:])"
)
STDERR_TAIL = 16_000


def python_argv(*args: str) -> list[str]:
    """``python -I`` (no env-driven paths, no user site) running the child entry point."""
    return [sys.executable, "-I", "-c", BOOTSTRAP, PACKAGE_ROOT, *args]


@dataclass
class ChildHandle:
    pid: int
    payload_fd: int
    result_fd: int
    stderr_fd: int
    launcher: Launcher
    pidfd: int | None = None

    def kill(self) -> None:
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        except PermissionError:
            if self.pidfd is not None:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)


class Launcher(Protocol):
    def start(self, spec: dict[str, Any]) -> ChildHandle: ...

    def reap(self, child: ChildHandle) -> tuple[int | None, float | None]: ...

    def close(self) -> None: ...


def child_pipes() -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(payload r/w, result r/w, stderr r/w); all close-on-exec in the parent."""
    return os.pipe(), os.pipe(), os.pipe()


def open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


class SubprocessLauncher:
    """A fresh interpreter per snippet."""

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, spec: dict[str, Any]) -> ChildHandle:
        (payload_r, payload_w), (result_r, result_w), (err_r, err_w) = child_pipes()
        try:
            proc = subprocess.Popen(
                python_argv(json.dumps({**spec, "result_fd": result_w})),
                stdin=payload_r,
                stdout=err_w,
                stderr=err_w,
                pass_fds=(result_w,),
                env=CHILD_ENV,
                cwd="/",
                start_new_session=True,
            )
        except BaseException:
            for fd in (payload_r, payload_w, result_r, result_w, err_r, err_w):
                os.close(fd)
            raise
        for fd in (payload_r, result_w, err_w):
            os.close(fd)
        self._procs[proc.pid] = proc
        return ChildHandle(proc.pid, payload_w, result_r, err_r, self, open_pidfd(proc.pid))

    def reap(self, child: ChildHandle) -> tuple[int | None, float | None]:
        proc = self._procs.pop(child.pid)
        _, status, usage = os.wait4(child.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        return status, usage.ru_utime + usage.ru_stime

    def close(self) -> None:
        return None


@dataclass
class Outcome:
    """What the parent saw of one child."""

    frame: bytes = b""
    stderr: bytes = b""
    status: int | None = None
    cpu_seconds: float | None = None
    killed_for: str | None = None
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)


def _wait_exit(child: ChildHandle, timeout: float) -> bool:
    if child.pidfd is None:
        return False
    selector = selectors.DefaultSelector()
    try:
        selector.register(child.pidfd, selectors.EVENT_READ)
        return bool(selector.select(timeout))
    finally:
        selector.close()


def communicate(child: ChildHandle, payload: bytes, wall_seconds: float, max_result_bytes: int) -> Outcome:
    """Feed the payload, collect the result and stderr, enforce the deadline and the cap."""
    started = time.monotonic()
    deadline = started + wall_seconds
    outcome = Outcome()
    result = bytearray()
    stderr = bytearray()
    view = memoryview(payload)
    selector = selectors.DefaultSelector()
    for fd in (child.payload_fd, child.result_fd, child.stderr_fd):
        os.set_blocking(fd, False)
    selector.register(child.payload_fd, selectors.EVENT_WRITE, "payload")
    selector.register(child.result_fd, selectors.EVENT_READ, "result")
    selector.register(child.stderr_fd, selectors.EVENT_READ, "stderr")
    open_fds = {child.payload_fd, child.result_fd, child.stderr_fd}

    def close(fd: int) -> None:
        selector.unregister(fd)
        os.close(fd)
        open_fds.discard(fd)

    try:
        while child.result_fd in open_fds or child.stderr_fd in open_fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome.killed_for = "wall"
                break
            for key, _ in selector.select(remaining):
                if key.data == "payload":
                    try:
                        view = view[os.write(child.payload_fd, view[: 1 << 20]) :]
                    except BlockingIOError:
                        continue
                    except BrokenPipeError:
                        view = view[len(view) :]
                    if not view:
                        close(child.payload_fd)
                    continue
                try:
                    chunk = os.read(key.fd, 1 << 20)
                except BlockingIOError:
                    continue
                if not chunk:
                    close(key.fd)
                elif key.data == "result":
                    result += chunk
                    if len(result) > max_result_bytes:
                        outcome.killed_for = "output"
                        break
                else:
                    stderr += chunk
                    del stderr[:-STDERR_TAIL]
            if outcome.killed_for:
                break
        if (
            not outcome.killed_for
            and child.pidfd is not None
            and not _wait_exit(child, max(0.0, deadline - time.monotonic()))
        ):
            outcome.killed_for = "wall"
    finally:
        selector.close()
        for fd in tuple(open_fds):
            os.close(fd)
        # Always: ends a child still running (deadline, cap, or an error here) and anything left
        # in its process group; a no-op for a child that has exited but is not yet reaped.
        child.kill()
        try:
            outcome.status, outcome.cpu_seconds = child.launcher.reap(child)
        except OSError as exc:
            if exc.errno != errno.ECHILD:
                raise
            outcome.notes.append("the child was reaped elsewhere")
        if child.pidfd is not None:
            os.close(child.pidfd)
    outcome.frame = bytes(result)
    outcome.stderr = bytes(stderr)
    outcome.elapsed_s = time.monotonic() - started
    return outcome
