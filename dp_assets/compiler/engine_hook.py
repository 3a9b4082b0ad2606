"""Where the step hands a node to the DuckDB engine (``policies.engine: duckdb``, issue 20).

A node whose engine is duckdb and whose type has a DuckDB form (``dp_assets.engine``) becomes
a deferred query over its inputs: an ephemeral node stays a query, which its readers nest in
theirs (a chain of them is one query); a stored node is computed once, into an Arrow table that
the IO manager writes as it is and that later nodes of the engine read without a copy. A node
without a DuckDB form, or whose params, expressions or column types have none, runs in pandas
as it always did, its deferred inputs computed and converted first: the answer is the same.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from dp_assets.catalog.base import NodeContext
from dp_assets.compiler.node_call import NodeFailed
from dp_assets.compiler.plan import FlowPlan, PlannedNode
from dp_assets.engine import NotSupported
from dp_assets.spec import templates
from dp_io.formats import is_arrow_table, is_dataframe

Call = Callable[[PlannedNode, NodeContext, Mapping[str, Any], dict[str, Any]], Any]


class StepEngine:
    """The DuckDB engine of one step: one connection, opened when a node first needs it."""

    def __init__(self, readers: Mapping[str, int] | None = None) -> None:
        self._engine: Any = None
        self._lock = threading.Lock()
        self._readers = readers or {}  # node id -> how many nodes read it

    def engine(self) -> Any:
        with self._lock:
            if self._engine is None:
                from dp_assets.engine.chain import Engine

                self._engine = Engine()
            return self._engine

    def compute(
        self, node: PlannedNode, ctx: NodeContext, params: Mapping[str, Any], inputs: dict[str, Any], call: Call
    ) -> Any:
        """The node's value: by DuckDB when it can, else by ``call`` (``call_node``) over frames."""
        # a node with timeout_seconds runs where its limit can stop it (call_node forks it): the
        # engine computes in this process, where nothing would stop a query that never ends
        if node.engine == "duckdb" and not node.timeout_seconds:
            from dp_assets.engine.chain import supports

            if supports(node.node_type.name) or node.node_type.name in SOURCES:
                try:
                    return self._in_duckdb(node, ctx, params, inputs)
                except NotSupported as reason:
                    ctx.log.info(f"node '{node.id}' runs in pandas: {reason}")
        return call(node, ctx, params, _frames(node, ctx, inputs))

    def _in_duckdb(self, node: PlannedNode, ctx: NodeContext, params: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
        try:
            rendered = templates.render(
                node.raw_params, params, seal=node.resolves_secrets, inert_params=node.fills_data_templates
            )
            node_params = node.node_type.params_model.model_validate(rendered)
        except Exception as exc:  # call_node reports it, with the retries the node asked for
            raise NotSupported(f"params: {exc}") from exc
        source = SOURCES.get(node.node_type.name)
        if source is not None:
            table, hints = source(ctx, node_params)
            deferred = self.engine().source(table, hints)
        else:
            deferred = self.engine().run(node.node_type.name, node_params, inputs, params)
        ctx.add_metadata(**{"dp/engine": "duckdb"})
        # stored, or read by more than one node: computed once, here, in the node's own time
        if node.is_asset or self._readers.get(node.id, 0) > 1:
            try:
                deferred.arrow()
            except Exception as exc:  # DuckDB refused the data (an integer overflow...): pandas decides
                raise NotSupported(f"DuckDB: {exc}") from exc
        return deferred


def file_table(ctx: NodeContext, params: Any) -> tuple[Any, dict[str, Any]]:
    """A FileInput of one Parquet file read by pyarrow, not by DuckDB: DuckDB's external access
    stays off. Whatever else FileInput reads (CSV, globs, declared columns, streams) runs in
    pandas, which also reports a missing, oversized or malformed file."""
    import pyarrow.parquet as pq

    from dp_assets.catalog.nodes.sources import _checked_format

    if params.stream or params.dtype or params.columns or params.chunksize or any(c in params.path for c in "*?["):
        raise NotSupported("a FileInput other than one Parquet file")
    path = ctx.resource("files").resolve(params.path, params.root, where=f"node '{ctx.node_id}', params.path")
    try:
        if not path.is_file() or _checked_format(params, path) != "parquet":
            raise NotSupported("not a Parquet file")
        table = pq.read_table(path, columns=params.usecols)
    except NotSupported:
        raise
    except Exception as exc:
        raise NotSupported(f"the file: {exc}") from exc
    metadata = table.schema.pandas_metadata or {}
    if any(not isinstance(index, dict) for index in metadata.get("index_columns", [])):
        raise NotSupported("a file with a stored index")  # pandas reads it as the frame's index
    if table.num_columns > params.max_columns:
        raise NotSupported("too many columns")
    hints = dict(table.schema.empty_table().to_pandas().dtypes.items())  # what read_parquet gives
    ctx.add_metadata(files=[str(path)])
    return table.replace_schema_metadata(None), hints


SOURCES: dict[str, Callable[[NodeContext, Any], tuple[Any, dict[str, Any]]]] = {"FileInput": file_table}


def readers_of(plan: FlowPlan) -> dict[str, int]:
    """How many nodes of the plan read each node (a value two nodes read is computed once)."""
    return dict(Counter(upstream for node in plan.nodes for upstream in plan.upstream_ids(node.id)))


def _frames(node: PlannedNode, ctx: NodeContext, inputs: dict[str, Any]) -> dict[str, Any]:
    from dp_assets.engine.chain import Deferred

    if not any(isinstance(value, Deferred) for value in inputs.values()):
        return inputs
    try:
        return {name: value.frame() if isinstance(value, Deferred) else value for name, value in inputs.items()}
    except Exception as exc:
        raise NodeFailed(
            f"flow '{ctx.flow_id}', node '{ctx.node_id}' ({node.node_type.name}) failed: "
            f"computing its DuckDB inputs: {type(exc).__name__}: {exc}"
        ) from exc


def stored_value(value: Any) -> Any:
    """What the IO manager stores for a node's value: a deferred output's Arrow table."""
    from dp_assets.engine.chain import Deferred

    return value.arrow() if isinstance(value, Deferred) else value


def as_frame(value: Any) -> Any:
    from dp_assets.engine.chain import Deferred

    return value.frame() if isinstance(value, Deferred) else value


def is_table(value: Any) -> bool:
    """A pandas frame or an Arrow table: what the IO manager writes behind the computation."""
    return is_dataframe(value) or is_arrow_table(value)
