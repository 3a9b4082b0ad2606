"""A hard per-node timeout: the node runs in a forked child that is killed at its limit.

Dagster has only run-level limits, and a thread cannot be stopped, so a node with
``timeout_seconds`` runs in a ``fork`` of the step process: it sees its inputs without copying
them, and the parent kills it (SIGKILL) when the limit passes. The child returns its value (and
the metadata it added) through a temporary file, so no pipe size limits apply.

The child never outlives its step: it is killed when the step is interrupted (a terminated run)
and it receives SIGKILL from the kernel when the step process dies (a killed Celery worker).
"""

from __future__ import annotations

import ctypes
import logging
import os
import pickle
import select
import signal
import tempfile
import time
from collections.abc import Callable
from typing import Any

from dp_assets.catalog.base import NodeContext

PR_SET_PDEATHSIG = 1


class NodeTimeout(TimeoutError):
    pass


def _die_with_parent(parent_pid: int) -> None:
    """The child must not outlive its step process (a terminated run, a killed Celery worker):
    the kernel sends it SIGKILL when the parent dies (Linux ``PR_SET_PDEATHSIG``)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent's own kill at the limit remains
        return
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def _child(fn: Callable[[], Any], ctx: NodeContext, result_path: str, parent_pid: int) -> None:
    _die_with_parent(parent_pid)
    # The parent's loggers write to Dagster's event log; a forked child must not touch them.
    ctx.log = logging.getLogger(f"dp.node.{ctx.node_id}")
    _forget_inherited_connections(ctx)
    try:
        payload = ("ok", fn(), ctx.metadata)
    except BaseException as exc:  # noqa: BLE001 - sent to the parent, which raises it
        payload = ("error", _picklable(exc), ctx.metadata)
    with open(result_path, "wb") as handle:
        pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL)


def _forget_inherited_connections(ctx: NodeContext) -> None:
    """Pooled connections belong to the parent; ``dispose(close=False)`` is SQLAlchemy's fork recipe."""
    for resource in ctx.resources.values():
        engines = getattr(resource, "cached_engines", None)
        for engine in engines() if callable(engines) else []:
            engine.dispose(close=False)


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.dumps(exc)
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def call_with_timeout(fn: Callable[[], Any], ctx: NodeContext, seconds: float) -> Any:
    fd, result_path = tempfile.mkstemp(prefix="dp-node-", suffix=".pickle")
    os.close(fd)
    try:
        # A plain fork, not multiprocessing.Process: a Celery worker's pool process counts as a
        # daemon, and multiprocessing refuses to start children from daemons.
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the child
            try:
                _child(fn, ctx, result_path, parent)
            finally:
                os._exit(0)
        try:
            status = _wait(pid, seconds)
        except BaseException:  # the step was interrupted (run terminated): the node stops too
            _kill(pid)
            raise
        if status is None:
            _kill(pid)
            raise NodeTimeout(
                f"node '{ctx.node_id}' of flow '{ctx.flow_id}' was stopped after its timeout_seconds={seconds:g}"
            )
        if os.path.getsize(result_path) == 0:
            raise RuntimeError(
                f"node '{ctx.node_id}' ended without a result (exit code "
                f"{os.waitstatus_to_exitcode(status)}; killed for memory?)"
            )
        with open(result_path, "rb") as handle:
            status, value, metadata = pickle.load(handle)  # noqa: S301 - written by our own child
        ctx.metadata.update(metadata)
        if status == "error":
            raise value
        return value
    finally:
        os.unlink(result_path)


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _wait(pid: int, seconds: float) -> int | None:
    """The child's wait status, or None if it still runs after ``seconds``."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll
        deadline = time.monotonic() + seconds
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.02)
    try:
        ready, _, _ = select.select([pidfd], [], [], seconds)
    finally:
        os.close(pidfd)
    return os.waitpid(pid, 0)[1] if ready else None
