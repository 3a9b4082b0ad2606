"""Storing a step's outputs behind its computation.

A flow step computes its nodes one after another and every node's output is stored. Stored
synchronously, a big frame's write (page cache, then disk; Arrow releases the GIL while it
writes) leaves the second core idle while the next node waits. Instead the runtime
(``dp_assets.compiler.runtime``) hands each computed frame to one background writer and goes on
to the next node; the IO manager's ``handle_output`` for that output later waits for the write
and reports its exact metadata. What a user relies on stays:

- an output's materialisation is logged only once its file is complete, with its real size;
- a failed write fails the step at that output, as a synchronous write would;
- a side-effecting node, or a node run in a forked child (a timeout), starts only after every
  queued write finished and was reported;
- writes happen one at a time, in the order the nodes ran.

The queue is the IO manager's own (``RunScopedIOManager``, one :class:`WriteBehind` per
instance): Dagster initialises one instance per run (or per step, in a process of its own) and
hands the same one to the step (``context.resources``) and to ``handle_output``; its teardown
closes the queue. The contract is in :mod:`dp_io.contract`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class WriteBehind:
    """Queued writes of one IO manager, each found again by the key its writer gave it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # started with the first write
        self._pending: dict[Hashable, Future[Any]] = {}

    def submit(self, key: Hashable, write: Callable[[], Any]) -> Future[Any]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dp-write-behind")
            future = self._pending[key] = self._pool.submit(write)
        return future

    def submit_done(self, key: Hashable, result: Any) -> Future[Any]:
        """A write that already happened on the caller's thread."""
        done: Future[Any] = Future()
        done.set_result(result)
        with self._lock:
            self._pending[key] = done
        return done

    def take(self, key: Hashable) -> Future[Any] | None:
        """The queued write for ``key`` (the caller waits on it), or ``None``."""
        with self._lock:
            return self._pending.pop(key, None)

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def close(self) -> int:
        """Wait for the write in progress, stop the writer thread (it starts again with the
        next write); returns how many queued writes nobody took (0 after a step that ended
        normally or failed: the runtime hands every queued output to ``handle_output``)."""
        with self._lock:
            pool, self._pool = self._pool, None
            untaken, self._pending = len(self._pending), {}
        if pool is not None:
            pool.shutdown(wait=True)
        return untaken
