"""What a flow's step asks of the IO managers that store its outputs, beyond Dagster's own.

Dagster's ``IOManager`` (``handle_output``, ``load_input``) is enough for a step with one op. A
flow's step (``dp_assets.compiler.runtime``) runs many nodes in one Dagster step and needs four
more things, declared here so that the runtime depends on these interfaces and not on the
classes that implement them:

- the latest value of an asset this run did not select (:class:`LatestValueReader`: both
  :class:`~dp_io.io_manager.RunScopedIOManager` and :class:`~dp_io.table.TableIOManager`);
- an output a parent run stored, to skip its node in a re-execution from failure;
- an output this run stored, read back by a later node of the same step (a stream is stored
  part by part by ``handle_output``, then read back whole);
- a frame's write started when its node returns, ``handle_output`` waiting for it later
  (:mod:`dp_io.write_behind`): the queue belongs to the IO manager instance that Dagster
  initialised for the run or step, the one whose ``handle_output`` takes the write again.

Any other IO manager (Dagster's filesystem or in-memory ones, in tests and ``dp test``) still
works: the step then stores each output synchronously and reads a stream whole first.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from dp_io.lookup import RefLoader

if TYPE_CHECKING:
    import dagster as dg


def partition_name(start: str, end: str) -> str:
    """The partition a run's stored outputs are named by: its key, or ``first...last`` (Dagster's
    range notation) for a run over a range (a single-run backfill); the IO manager names them
    and the step reads them back by it."""
    return start if start == end else f"{start}...{end}"


@runtime_checkable
class LatestValueReader(Protocol):
    """Reads the value an asset holds now, for a node whose upstream this run did not select."""

    def load_latest(
        self,
        instance: dg.DagsterInstance,
        asset_key: dg.AssetKey,
        *,
        definition_metadata: Any = None,
        lineage_of: str | None = None,
        partition_key: str | None = None,
    ) -> Any:
        """``lineage_of`` (a run id): prefer what that run's re-execution lineage stored;
        ``partition_key``: the latest of that partition of a partitioned asset."""
        ...


@runtime_checkable
class RunOutputStore(LatestValueReader, RefLoader, Protocol):
    """An IO manager that keeps each run's outputs apart, under the run's id
    (:class:`~dp_io.io_manager.RunScopedIOManager`). ``handle_output`` also stores a
    ``FrameStream`` part by part; ``load_ref`` (from :class:`~dp_io.lookup.RefLoader`) reads
    what another run stored."""

    def write_behind(
        self,
        run_id: str,
        key_path: tuple[str, ...],
        partition: str | None,
        obj: Any,
        frame_format: str | None = None,
        *,
        read_soon: bool = True,
    ) -> Future[Any] | None:
        """Start storing ``obj`` now; the ``handle_output`` of the same run, key and partition
        waits for the write. ``None`` when nothing was queued (``handle_output`` stores it)."""
        ...

    def load_run_output(
        self,
        run_id: str,
        key_path: tuple[str, ...],
        partition: str | None = None,
        *,
        parts: bool = False,
    ) -> Any:
        """What run ``run_id`` stored for ``key_path``."""
        ...
