"""The one seam where a deployment decides how a node looks in Dagster.

Like ``DagsterDbtTranslator``/``DagsterDltTranslator``: ``get_asset_spec`` takes one immutable
record and returns an ``AssetSpec``; subclass and call ``super()`` to change keys, groups,
metadata or owners. The job name stays the flow id (a public contract).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dagster import AssetKey, AssetSpec, TableColumn, TableColumnConstraints, TableSchema

from dp_assets.catalog.base import ColumnSchema, NodeType
from dp_assets.compiler.automation import automation_condition
from dp_assets.engine.coverage import DUCKDB_NOTES
from dp_assets.spec.loading import split_ref


@dataclass(frozen=True)
class NodeRecord:
    flow: Any  # the validated Flow model
    node: Any  # the node's model (NodeBase subclass)
    node_type: NodeType
    version: str
    schema: ColumnSchema | None
    asset_upstreams: tuple[str, ...]  # ids of upstream nodes that are assets
    partitions_def: Any = None  # the flow's Dagster partitions (compiler.partitions), shared by its nodes
    #: ``(flow id, node id)`` of other flows' nodes it reads (``FlowInput``): cross-flow lineage
    other_flow_upstreams: tuple[tuple[str, str], ...] = ()


TABLE_FORMAT = "table"
#: The resource key of the table IO manager (``default_resources``) for ``storage.format: table``.
TABLE_IO_KEY = "table_io"


def output_format(flow: Any, node: Any) -> str | None:
    """The node's ``storage.format``, else the flow's ``policies.output_format``."""
    return (node.storage.format if node.storage else None) or flow.policies.output_format


def table_metadata(table: str | None, node_id: str) -> dict[str, str]:
    """``storage.table`` ("schema.table" or "table") as the table IO manager reads it; without a
    schema the flow id is the schema, without a table the node id is the table."""
    schema, _, name = (table or "").rpartition(".")
    return {"dp/table": name or node_id, **({"dp/schema": schema} if schema else {})}


class FlowTranslator:
    def get_asset_key(self, flow_id: str, node_id: str) -> AssetKey:
        return AssetKey([flow_id, node_id])

    def get_io_manager_key(self, record: NodeRecord) -> str:
        """Where the node's output is stored: a PostgreSQL table, else every run's files."""
        return TABLE_IO_KEY if output_format(record.flow, record.node) == TABLE_FORMAT else "io_manager"

    def get_asset_spec(self, record: NodeRecord) -> AssetSpec:
        flow, node, node_type = record.flow, record.node, record.node_type
        metadata: dict[str, Any] = {
            "dp/node_type": node_type.name,
            "dp/flow_version": record.version,
        }
        frame_format = output_format(flow, node)
        if frame_format == TABLE_FORMAT:  # stored by the table IO manager (dp_io.table)
            metadata.update(table_metadata(node.storage.table if node.storage else None, node.id))
        elif frame_format:
            metadata["dp/format"] = frame_format  # read by the run-scoped IO manager
        if node.columns:
            metadata["dp/declared_columns"] = ", ".join(c.name for c in node.columns)
        if (columns := column_schema(node.columns, record.schema)) is not None:
            metadata["dagster/column_schema"] = columns  # the catalog shows columns before a run
        return AssetSpec(
            key=self.get_asset_key(flow.id, node.id),
            deps=[
                *(self.get_asset_key(flow.id, upstream) for upstream in record.asset_upstreams),
                *(self.get_asset_key(other, upstream) for other, upstream in record.other_flow_upstreams),
            ],
            description=node.description
            or f"{node_type.name} node '{node.id}' of flow '{flow.id}'. "
            f"{node_type.description.splitlines()[0] if node_type.description else ''}".strip(),
            group_name=flow.id,
            code_version=record.version,
            owners=list(flow.owners),
            tags={**flow.tags, **node.tags},
            kinds=_kinds(node_type.kinds, node_type.name, node.engine or flow.policies.engine),
            metadata=metadata,
            partitions_def=record.partitions_def,
            automation_condition=automation_condition(flow, node),
        )


def column_schema(declared: Any, inferred: ColumnSchema | None) -> TableSchema | None:
    """The node's columns as Dagster's ``TableSchema``: those the spec declares (with their
    nullable/unique constraints), else those validation inferred; ``None`` when neither is known."""
    if declared:
        return TableSchema(
            columns=[
                TableColumn(
                    name=c.name,
                    type=c.type,
                    description="declared in the spec",
                    constraints=TableColumnConstraints(nullable=c.nullable, unique=c.unique),
                )
                for c in declared
            ]
        )
    if inferred:
        return TableSchema(columns=[TableColumn(name=name, type=kind) for name, kind in inferred.items()])
    return None


def upstream_node_ids(node: Any) -> list[str]:
    refs = node.inputs.values() if isinstance(node.inputs, dict) else node.inputs
    return [split_ref(ref)[0] for ref in refs]


def _kinds(kinds: frozenset[str], type_name: str, engine: str) -> set[str]:
    """The kind tags the UI shows (Dagster keeps three): a node the DuckDB engine runs says so."""
    if engine == "duckdb" and type_name in DUCKDB_NOTES:
        kinds = (kinds - {"pandas"}) | {"duckdb"}
    return set(sorted(kinds)[:3])
