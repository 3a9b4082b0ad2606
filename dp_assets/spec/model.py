"""The flow spec: pydantic models that are the single source of truth.

Validation, the JSON Schema for editors (``dp schema``) and ``docs/flow-spec.md`` all come from
these models (with their building blocks in ``fields`` and the triggers and notifications in
``triggers``). The node list is a discriminated union on ``type`` built from the catalog
(``flow_model``), so each node type's params model is checked where it is written.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, create_model

from dp_assets.catalog.base import Catalog
from dp_assets.spec.checks import Automation, Check, PoolName
from dp_assets.spec.fields import FlowId, NodeId, Owner, ParamName, Strict, Tags
from dp_assets.spec.partitions import Partitions
from dp_assets.spec.triggers import Notification, Trigger
from dp_io.retention_policy import RetentionPolicy


class FlowParam(Strict):
    """A typed flow param; the flow's params are the job's run config."""

    type: Literal["string", "integer", "number", "boolean", "date", "datetime", "list", "object"] = "string"
    default: Any = None
    description: str = ""
    required: bool = Field(default=False, description="A run must give it; otherwise the default applies.")


class RetrySpec(Strict):
    """Retries of a node (or the flow's default for its nodes), as a Dagster RetryPolicy."""

    max_retries: int = Field(default=0, ge=0, le=100)
    delay: float = Field(default=0.0, ge=0, description="Seconds before the first retry.")
    backoff: Literal["linear", "exponential"] = "exponential"
    jitter: Literal["none", "full", "plus_minus"] = "none"


class ColumnContract(Strict):
    """A column the node's output must have; becomes a Dagster asset check."""

    name: str
    type: Literal["integer", "float", "string", "boolean", "datetime", "date", "any"] = "any"
    nullable: bool = True
    unique: bool = False


class OutputStorage(Strict):
    """How a node's output is kept per run (see docs/io.md)."""

    format: Literal["arrow", "arrow-lz4", "parquet", "table"] | None = Field(
        default=None,
        description="How the output is stored per run: 'arrow' (the default unless "
        "policies.output_format says otherwise), 'arrow-lz4', 'parquet', or 'table' (PostgreSQL).",
    )
    table: str | None = Field(default=None, description="schema.table, for format: table")


Engine = Literal["pandas", "duckdb"]


class NodeBase(Strict):
    """What every node has besides its type-specific ``params``."""

    id: NodeId
    description: str = ""
    inputs: list[str] | dict[str, str] = Field(
        default_factory=list,
        description="Upstream node ids ('node' or 'node.output'), as a list or by input name.",
    )
    retry: RetrySpec | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    on_error: Literal["fail", "continue"] = "fail"
    result: bool = Field(
        default=False,
        description="Part of the flow's answer to `invoke` (POST /flows/{id}/invoke, `dp invoke`); "
        "when no node says so, the DisplayResults nodes are.",
    )
    columns: list[ColumnContract] | None = None
    storage: OutputStorage | None = None
    tags: Tags = Field(default_factory=dict)
    ephemeral: bool = Field(
        default=False,
        description="Not an asset and never stored: computed inside the step of each node that "
        "reads it (no preview, no row count of its own; see docs/flow-spec.md).",
    )
    engine: Engine | None = Field(default=None, description="The engine of this node (default: policies.engine).")
    checks: list[Check] = Field(
        default_factory=list,
        description="Data checks on the node's output, each a Dagster asset check (docs/flow-spec.md#checks).",
    )
    automation: Automation | None = Field(
        default=None, description="When Dagster's automation materialises this node (default: the flow's)."
    )
    pool: PoolName | None = Field(
        default=None, description="The Dagster concurrency pool of the node's step (default: the flow's)."
    )


class RunPolicy(Strict):
    retry: RetrySpec | None = Field(default=None, description="Default retry of every node.")
    run_retries: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Run-level retries from failure. With node retries declared, only crashes "
        "(a lost run worker, a run timeout) are retried at run level, so attempts never multiply.",
    )
    timeout_seconds: float | None = Field(default=None, gt=0, description="Whole-run limit.")
    max_concurrent_runs: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="Runs of this flow at once (1-10); more wait in the run queue.",
    )
    when_running: Literal["queue", "skip"] = Field(
        default="queue",
        description="When a trigger fires while a run of this flow is queued or running: "
        "'queue' starts another run (it waits for its turn), 'skip' starts none.",
    )
    executor: Literal["in_process", "multiprocess", "celery"] | None = None
    output_format: Literal["arrow", "arrow-lz4", "parquet", "table"] | None = Field(
        default=None,
        description="Format of every node output that does not set storage.format: 'arrow' "
        "(uncompressed Arrow IPC, the default), 'arrow-lz4' (smaller files; faster for flows "
        "writing gigabytes per run, see docs/io.md), 'parquet', or 'table' (each node a "
        "PostgreSQL table <flow id>.<node id> in DP_TABLES_URL).",
    )
    ephemeral: Literal["none", "intermediate"] = Field(
        default="none",
        description="'intermediate': every node is ephemeral (not stored, computed by its readers) "
        "except sinks, leaves and nodes read by another step or flow; 'none': only nodes that "
        "say ephemeral: true.",
    )
    engine: Engine = Field(
        default="pandas",
        description="What runs the relational nodes: 'pandas', or 'duckdb' (node types without a "
        "DuckDB form run in pandas). A node's own engine overrides it.",
    )
    max_parallel_nodes: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Independent nodes of a step run at once, in threads (default: the machine's "
        "cores, at most 4); 1 runs them one after another.",
    )
    steps: Literal["flow", "node"] = Field(
        default="flow",
        description="'flow': the whole flow is one Dagster step (fastest); 'node': a step per "
        "node, so a multi-process or Celery executor runs independent nodes in parallel.",
    )


class FlowBase(Strict):
    """A flow: nodes and their inputs, params, triggers and run policies."""

    id: FlowId
    name: str = ""
    description: str = ""
    owners: list[Owner] = Field(default_factory=list)
    tags: Tags = Field(default_factory=dict)
    params: dict[ParamName, FlowParam] = Field(default_factory=dict)
    triggers: list[Trigger] = Field(default_factory=list)
    policies: RunPolicy = Field(default_factory=RunPolicy)
    notify: list[Notification] = Field(default_factory=list)
    retention: RetentionPolicy | None = None  # the one model the pruning applies (dp_io)
    partitions: Partitions | None = Field(
        default=None,
        description="Partition every node's asset: time windows, a static list of keys, or "
        "dynamic keys (docs/flow-spec.md#partitions).",
    )
    automation: Automation | None = Field(
        default=None,
        description="When Dagster's automation materialises the flow's nodes, instead of triggers "
        "(docs/flow-spec.md#automation).",
    )
    pool: PoolName | None = Field(
        default=None, description="The Dagster concurrency pool of every step of the flow (docs/flow-spec.md#pools)."
    )


@functools.cache
def node_model(catalog: Catalog, type_name: str) -> type[NodeBase]:
    """The model of one node of type ``type_name``: its params model under ``params``."""
    node_type = catalog[type_name]
    return create_model(
        f"{type_name}Node",
        __base__=NodeBase,
        __doc__=node_type.description or type_name,
        type=(_literal(type_name), ...),
        params=(node_type.params_model, _params_default(node_type.params_model)),
    )


def _literal(value: str) -> Any:
    """``Literal[value]`` for a value known at run time (to a type checker, a value, not a type)."""
    return Literal[value]


def _params_default(params_model: type[BaseModel]) -> Any:
    """``params`` may be left out only when the type needs none: a default factory that raises
    would report the missing param without the node it belongs to."""
    if any(field.is_required() for field in params_model.model_fields.values()):
        return Field(...)
    return Field(default_factory=params_model)


@functools.lru_cache(maxsize=256)
def flow_model(catalog: Catalog, types: frozenset[str] | None = None) -> type[FlowBase]:
    """The Flow model of a catalog: ``nodes`` is a discriminated union of its node types.

    ``types``: only these (validation passes the catalog's types a spec uses, so that checking
    a flow builds, and imports, only what it needs); None or empty: every type of the catalog."""
    names = sorted(types) if types else list(catalog)
    members = tuple(node_model(catalog, name) for name in names)
    # Union of a tuple built at run time: `X | Y` needs its members written out, hence noqa UP007.
    node_union: Any = Annotated[Union[members], Field(discriminator="type")]  # noqa: UP007
    return create_model(
        "Flow",
        __base__=FlowBase,
        __doc__=FlowBase.__doc__,
        nodes=(list[node_union], Field(min_length=1)),
    )


def flow_json_schema(catalog: Catalog) -> dict[str, Any]:
    schema = flow_model(catalog).model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dp-platform flow spec"
    return schema
