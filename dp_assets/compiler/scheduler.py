"""Independent nodes of a step at the same time, in threads, bounded by the flow's limit.

The nodes of a step used to run one after another, so a flow with independent branches (several
sources read, joined later) waited for each in turn. pandas, pyarrow and DuckDB release the GIL
in their heavy work, so threads overlap the branches without copying frames between processes.

Only a node's own call runs in a thread. Everything that touches Dagster (its context, its log,
``Output`` events, the IO manager) stays on the step's main thread, which Dagster expects: a
node in a thread logs into a ``BufferedLog`` that the main thread forwards to the run's log.

A node that acts on the world (``side_effects``) or runs under ``timeout_seconds`` (a ``fork``,
which must not copy another thread's half-held locks) waits until no other node runs, and runs
on the main thread, as it did before.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

from dp_assets.compiler.plan import PlannedNode

#: How often the main thread forwards what running nodes logged while it waits for one to end.
LOG_FORWARD_SECONDS = 0.5


class BufferedLog(logging.Logger):
    """A node's logger in a thread: records are kept until the step's main thread forwards them."""

    def __init__(self, name: str):
        super().__init__(name, logging.DEBUG)
        self.propagate = False
        self._records: list[logging.LogRecord] = []
        self._lock = threading.Lock()
        handler = logging.Handler()
        handler.emit = self._keep  # type: ignore[method-assign]
        self.addHandler(handler)

    def _keep(self, record: logging.LogRecord) -> None:
        with self._lock:
            self._records.append(record)

    def forward(self, log: Any) -> None:
        """Send the kept records to ``log`` (the run's log: ``context.log``) and forget them."""
        with self._lock:
            records, self._records = self._records, []
        for record in records:
            log.log(record.levelno, record.getMessage())


def start(call: Callable[[], Any], name: str) -> Future[Any]:
    """Run ``call`` in a daemon thread: a terminated run's process exits without waiting for it
    (a ``ThreadPoolExecutor`` joins its threads at exit). It runs in a copy of the step's
    context variables (``dp_settings.using``'s settings among them), as it would on the step's
    own thread: a new thread starts with none."""
    future: Future[Any] = Future()
    context = contextvars.copy_context()

    def run() -> None:
        try:
            future.set_result(context.run(call))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which decides
            future.set_exception(exc)

    future.set_running_or_notify_cancel()
    threading.Thread(target=run, name=name, daemon=True).start()
    return future


def wait_for_one(futures: Iterable[Future[Any]]) -> set[Future[Any]]:
    """The futures done within ``LOG_FORWARD_SECONDS`` (possibly none: then forward logs and ask again)."""
    done, _ = wait(list(futures), timeout=LOG_FORWARD_SECONDS, return_when=FIRST_COMPLETED)
    return done


def must_run_alone(node: PlannedNode) -> bool:
    """A node that acts on the world runs after what ran before is stored; a timeout forks (in
    a sub-chain's body too)."""
    if node.node_type.side_effects or node.timeout_seconds:
        return True
    return node.body is not None and any(must_run_alone(inner) for inner in node.body.nodes)


def ready(
    upstreams: Mapping[str, Collection[str]], pending: list[PlannedNode], running: Collection[str]
) -> list[PlannedNode]:
    """The pending nodes whose upstreams (``upstreams``: node id -> the ids it reads) are all
    done (not pending, not running), in the order the plan runs them."""
    waiting = {node.id for node in pending}.union(running)
    return [node for node in pending if waiting.isdisjoint(upstreams[node.id])]
