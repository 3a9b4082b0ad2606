"""The flow spec: pydantic models that are the single source of truth.

Validation, the JSON Schema for editors (``dp schema``) and ``docs/flow-spec.md`` all come from
these models. The node list is a discriminated union on ``type`` built from the catalog
(``flow_model``), so each node type's params model is checked where it is written.
"""

from __future__ import annotations

import functools
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from dp_assets.catalog.base import Catalog

ID_PATTERN = r"^[a-z][a-z0-9_]*$"
NODE_ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
FlowId = Annotated[str, Field(pattern=ID_PATTERN, max_length=64)]
NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FlowParam(Strict):
    """A typed flow param; the flow's params are the job's run config."""

    type: Literal["string", "integer", "number", "boolean", "date", "datetime", "list", "object"] = (
        "string"
    )
    default: Any = None
    description: str = ""
    required: bool = Field(
        default=False, description="A run must give it; otherwise the default applies."
    )


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

    format: Literal["arrow", "parquet", "table"] | None = None
    table: str | None = Field(default=None, description="schema.table, for format: table")


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
    columns: list[ColumnContract] | None = None
    storage: OutputStorage | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class ScheduleTrigger(Strict):
    type: Literal["schedule"]
    cron: str
    timezone: str = "UTC"
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    missed_runs: Literal["skip", "latest"] = "latest"


class EventTrigger(Strict):
    type: Literal["event"]
    topics: list[str] = Field(min_length=1)
    params: dict[str, Any] = Field(
        default_factory=dict, description="Fixed params; the event payload fills the others."
    )
    enabled: bool = True


class FileTrigger(Strict):
    type: Literal["file"]
    glob: str
    param: str = Field(default="path", description="The flow param that receives the file path.")
    enabled: bool = True


class FlowTrigger(Strict):
    type: Literal["flow"]
    flow: FlowId
    on: Literal["success", "failure"] = "success"
    params: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True


Trigger = Annotated[
    Union[ScheduleTrigger, EventTrigger, FileTrigger, FlowTrigger], Field(discriminator="type")
]


class Notification(Strict):
    """Where to say that a run finished; URLs and addresses come from ``${env:NAME}``."""

    on: list[Literal["failure", "success"]] = Field(default_factory=lambda: ["failure"])
    webhook: str | None = None
    email: list[str] | None = None


class RunPolicy(Strict):
    retry: RetrySpec | None = Field(default=None, description="Default retry of every node.")
    run_retries: int = Field(default=0, ge=0, le=10, description="Run-level retries from failure.")
    timeout_seconds: float | None = Field(default=None, gt=0, description="Whole-run limit.")
    max_concurrent_runs: int | None = Field(default=None, ge=1)
    when_running: Literal["queue", "skip"] = "queue"
    executor: Literal["in_process", "multiprocess", "celery"] | None = None
    steps: Literal["flow", "node"] = Field(
        default="flow",
        description="'flow': the whole flow is one Dagster step (fastest); 'node': a step per "
        "node, so a multi-process or Celery executor runs independent nodes in parallel.",
    )


class Retention(Strict):
    keep_last: int | None = Field(default=None, ge=1)
    older_than_days: int | None = Field(default=None, ge=1)


class FlowBase(Strict):
    """A flow: nodes and their inputs, params, triggers and run policies."""

    id: FlowId
    name: str = ""
    description: str = ""
    owners: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    params: dict[str, FlowParam] = Field(default_factory=dict)
    triggers: list[Trigger] = Field(default_factory=list)
    policies: RunPolicy = Field(default_factory=RunPolicy)
    notify: list[Notification] = Field(default_factory=list)
    retention: Retention | None = None


def node_model(catalog: Catalog, type_name: str) -> type[NodeBase]:
    return _node_models(catalog)[type_name]


@functools.cache
def _node_models(catalog: Catalog) -> dict[str, type[NodeBase]]:
    return {
        name: create_model(
            f"{name}Node",
            __base__=NodeBase,
            __doc__=node_type.description or name,
            type=(Literal[name], ...),  # type: ignore[valid-type]
            params=(node_type.params_model, Field(default_factory=node_type.params_model)),
        )
        for name, node_type in catalog.items()
    }


@functools.cache
def flow_model(catalog: Catalog) -> type[FlowBase]:
    """The Flow model of a catalog: ``nodes`` is a discriminated union of its node types."""
    members = tuple(_node_models(catalog).values())
    node_union = Annotated[Union[members], Field(discriminator="type")]  # type: ignore[valid-type]
    return create_model(
        "Flow",
        __base__=FlowBase,
        __doc__=FlowBase.__doc__,
        nodes=(list[node_union], Field(min_length=1)),  # type: ignore[valid-type]
    )


def flow_json_schema(catalog: Catalog) -> dict[str, Any]:
    schema = flow_model(catalog).model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "dp-platform flow spec"
    return schema
