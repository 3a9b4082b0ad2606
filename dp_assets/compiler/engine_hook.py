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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
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

    def __init__(self, readers: Mapping[str, int] | None = None, sources: Sequence[PlannedNode] = ()) -> None:
        self._engine: Any = None
        self._lock = threading.Lock()
        self._readers = readers or {}  # node id -> how many nodes read it
        self._sources = [node for node in sources if node.engine == "duckdb" and node.node_type.name == "FileInput"]

    def engine(self, ctx: NodeContext, params: Mapping[str, Any]) -> Any:
        with self._lock:
            if self._engine is None:
                from dp_assets.engine.chain import Engine

                self._engine = Engine(allowed_paths=tuple(self._parquet_sources(ctx, params)))
            return self._engine

    def _parquet_sources(self, ctx: NodeContext, params: Mapping[str, Any]) -> list[str]:
        """The step's Parquet files that DuckDB may read itself: its only external access."""
        paths = []
        for node in self._sources:
            try:
                paths.append(str(parquet_path(ctx, _node_params(node, params))))
            except NotSupported:
                continue  # read by pyarrow or pandas, which report what is wrong with it
        return paths

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
        node_params = _node_params(node, params)
        engine = self.engine(ctx, params)
        source = SOURCES.get(node.node_type.name)
        if source is not None:
            deferred = source(engine, ctx, node_params)
        else:
            deferred = engine.run(node.node_type.name, node_params, inputs, params)
        ctx.add_metadata(**{"dp/engine": "duckdb"})
        # stored, or read by more than one node: computed once, here, in the node's own time
        if node.is_asset or self._readers.get(node.id, 0) > 1:
            try:
                deferred.arrow()
                if node.is_asset:
                    ctx.add_metadata(**deferred.metadata())
            except Exception as exc:  # DuckDB refused the data (an integer overflow...): pandas decides
                raise NotSupported(f"DuckDB: {exc}") from exc
        return deferred


def _node_params(node: PlannedNode, params: Mapping[str, Any]) -> Any:
    try:
        rendered = templates.render(
            node.raw_params, params, seal=node.resolves_secrets, inert_params=node.fills_data_templates
        )
        return node.node_type.params_model.model_validate(rendered)
    except Exception as exc:  # call_node reports it, with the retries the node asked for
        raise NotSupported(f"params: {exc}") from exc


def parquet_path(ctx: NodeContext, params: Any) -> Path:
    """The one Parquet file a FileInput reads; ``NotSupported`` for whatever else it reads (CSV,
    globs, declared columns, streams: pandas), and for a missing, oversized or odd file, which
    pandas then reports as it always did."""
    from dp_assets.catalog.nodes.sources import _checked_format

    if params.stream or params.dtype or params.columns or params.chunksize or any(c in params.path for c in "*?["):
        raise NotSupported("a FileInput other than one Parquet file")
    try:
        path = ctx.resource("files").resolve(params.path, params.root, where=f"node '{ctx.node_id}', params.path")
        if not path.is_file() or _checked_format(params, path) != "parquet":
            raise NotSupported("not a Parquet file")
    except NotSupported:
        raise
    except Exception as exc:
        raise NotSupported(f"the file: {exc}") from exc
    return Path(path)


def file_source(engine: Any, ctx: NodeContext, params: Any) -> Any:
    """A FileInput of one Parquet file: read by DuckDB itself where the file's columns read as
    pandas reads them (plain types, no integer or boolean with a missing value, by the file's
    own statistics), so a query reads only what it uses; else read whole by pyarrow."""
    import pyarrow.parquet as pq

    from dp_assets.catalog.nodes.first_rows import row_limit
    from dp_assets.engine.frames import check_dtypes

    if row_limit() is not None:
        raise NotSupported("only the file's first rows are read (a row sample)")
    path = parquet_path(ctx, params)
    try:
        file = pq.ParquetFile(path)
        schema = file.schema_arrow
    except Exception as exc:
        raise NotSupported(f"the file: {exc}") from exc
    metadata = schema.pandas_metadata or {}
    if any(not isinstance(index, dict) for index in metadata.get("index_columns", [])):
        raise NotSupported("a file with a stored index")  # pandas reads it as the frame's index
    columns = list(params.usecols) if params.usecols is not None else list(schema.names)
    if not set(columns) <= set(schema.names) or len(set(columns)) != len(columns):
        raise NotSupported("usecols that pandas reports")
    if len(columns) > params.max_columns:
        raise NotSupported("too many columns")
    hints = dict(schema.empty_table().select(columns).to_pandas().dtypes.items())  # what read_parquet gives
    check_dtypes(hints)  # Int64, boolean, category... from the file's pandas metadata: pandas reads it
    ctx.add_metadata(files=[str(path)])
    if _without_missing_flags(file, columns):
        try:
            return engine.parquet(str(path), columns, schema, hints)
        except NotSupported as reason:
            ctx.log.debug(f"node '{ctx.node_id}': pyarrow reads the file: {reason}")
    try:
        table = pq.read_table(path, columns=params.usecols)
    except Exception as exc:
        raise NotSupported(f"the file: {exc}") from exc
    return engine.source(table.replace_schema_metadata(None), hints)


def _without_missing_flags(file: Any, columns: list[str]) -> bool:
    """Whether the file's statistics show no missing value in any integer or boolean column
    (pandas reads those as float64 / object); no statistics: not known, so no."""
    from dp_assets.catalog.nodes.first_rows import columns_with_missing_values

    return columns_with_missing_values(file, columns) == set()


SOURCES: dict[str, Callable[[Any, NodeContext, Any], Any]] = {"FileInput": file_source}


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
