"""A hard per-node timeout: the node runs in a forked child that is killed at its limit.

Dagster has only run-level limits, and a thread cannot be stopped, so a node with
``timeout_seconds`` runs in a ``fork`` of the step process: it sees its inputs without copying
them, and the parent kills it (SIGKILL) when the limit passes. The child returns its value (and
the metadata it added) through a temporary file, so no pipe size limits apply.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import tempfile
from collections.abc import Callable
from typing import Any

from dp_assets.catalog.base import NodeContext


class NodeTimeout(TimeoutError):
    pass


def _child(fn: Callable[[], Any], ctx: NodeContext, result_path: str) -> None:
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
        for engine in (engines() if callable(engines) else []):
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
        process = multiprocessing.get_context("fork").Process(
            target=_child, args=(fn, ctx, result_path), daemon=True
        )
        process.start()
        process.join(seconds)
        if process.is_alive():
            process.kill()
            process.join()
            raise NodeTimeout(
                f"node '{ctx.node_id}' of flow '{ctx.flow_id}' was stopped after its "
                f"timeout_seconds={seconds:g}"
            )
        if os.path.getsize(result_path) == 0:
            raise RuntimeError(
                f"node '{ctx.node_id}' ended without a result (exit code {process.exitcode}; "
                "killed for memory?)"
            )
        with open(result_path, "rb") as handle:
            status, value, metadata = pickle.load(handle)  # noqa: S301 - written by our own child
        ctx.metadata.update(metadata)
        if status == "error":
            raise value
        return value
    finally:
        os.unlink(result_path)
