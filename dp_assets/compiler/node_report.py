"""What a step tells about each node: when it ran, for how long, how many rows; and, when nodes
fail, which ones failed and which were skipped because of them.

A flow is one Dagster step, so Dagster's run view has one bar for all its nodes. Each node adds
a log line to the run (``node 'x' (Type) finished in 12 ms: 1,204 rows``) and its
materialisation carries ``dp/duration_ms`` and ``dp/started_at``, so the run's event log and
each asset's history show per-node times. A failed node no longer stops the step: like
Dagster's independent steps, nodes that do not read it (directly or through others) still run
and materialise; only its downstream is skipped, and the step fails at the end naming every
failed node and what was skipped because of it (``FailedNodes``).

An ephemeral node adds no line of its own: it is named in the line of the first node that reads
it (``EphemeralLines``), with its time and, where they are known, its rows. A chain of ephemeral
nodes (``policies.ephemeral: intermediate``) would otherwise write one event per node to the
run's event log, several times what the stored nodes write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dp_assets.catalog.base import FrameStream
from dp_assets.deferred import pd


@dataclass
class NodeClock:
    """Started when a node is called; ``metadata()`` and ``line()`` read it once it returned."""

    node_id: str
    node_type: str
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _start: float = field(default_factory=time.perf_counter)
    duration_ms: float = 0.0

    def stop(self) -> NodeClock:
        self.duration_ms = (time.perf_counter() - self._start) * 1000
        return self

    def metadata(self) -> dict[str, Any]:
        return {"dp/duration_ms": round(self.duration_ms, 1), "dp/started_at": self.started_at.isoformat()}

    def line(self, value: Any) -> str:
        return f"node '{self.node_id}' ({self.node_type}) finished in {self.duration_ms:,.0f} ms: {_rows(value)}"

    def item(self, value: Any) -> str:
        """The node as named in its reader's line (an ephemeral node)."""
        return f"'{self.node_id}' ({self.node_type}) {self.duration_ms:,.0f} ms: {_rows(value, 'a DuckDB query')}"


def _rows(value: Any, query: str = "a DuckDB query, computed by its readers") -> str:
    if isinstance(value, pd.DataFrame):
        return f"{len(value):,} rows"
    if getattr(value, "num_rows", None) is not None:  # an Arrow table, a computed DuckDB value
        return f"{value.num_rows:,} rows"
    if hasattr(value, "relation"):  # the DuckDB engine's query, computed by the nodes that read it
        return query
    if isinstance(value, FrameStream):
        return "streamed in parts"
    return "no table"


@dataclass
class EphemeralLines:
    """The ephemeral nodes a step ran, held until a node that reads them logs its line.

    ``chain_of(node_id)``: the ephemeral nodes a node reads, directly or through others, in the
    order they ran (``FlowPlan.ephemeral_chain``). A node read by several is named once, by the
    first of them to finish; those whose readers all failed or were skipped, at the step's end."""

    chain_of: Callable[[str], Sequence[Any]]
    held: dict[str, str] = field(default_factory=dict)

    def hold(self, node_id: str, item: str) -> None:
        self.held[node_id] = item

    def line_of_reader(self, node_id: str, line: str) -> str:
        items = [self.held.pop(node.id) for node in self.chain_of(node_id) if node.id in self.held]
        return f"{line}; before it, the ephemeral nodes it reads: {'; '.join(items)}" if items else line

    def left_over(self) -> str | None:
        """The line of those no finished node named, if any (each named once)."""
        items, self.held = list(self.held.values()), {}
        return f"ephemeral nodes whose readers did not finish: {'; '.join(items)}" if items else None


class FailedNodes(Exception):  # no "Error" suffix: reads as what it reports, "FailedNodes: ..."
    """Raised at the end of a step in which nodes failed, after every node that could run ran."""

    def __init__(self, flow_id: str, failures: Sequence[BaseException], skipped: Sequence[str]):
        self.failures = list(failures)
        self.skipped = list(skipped)
        lines = [str(error) for error in failures]
        head = lines[0] if len(lines) == 1 else f"flow '{flow_id}': {len(lines)} nodes failed:\n" + "\n".join(lines)
        tail = f"\nskipped because of it: {', '.join(skipped)}" if skipped else ""
        super().__init__(head + tail)
