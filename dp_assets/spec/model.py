"""The flow spec: pydantic models that are the single source of truth.

Validation, the JSON Schema for editors (``dp schema``) and ``docs/flow-spec.md`` all come from
these models. The node list is a discriminated union on ``type`` built from the catalog
(``flow_model``), so each node type's params model is checked where it is written.
"""

from __future__ import annotations

import functools
import keyword
import re
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from dp_assets.catalog.base import Catalog
from dp_assets.spec.checks import Automation, Check, PoolName
from dp_assets.spec.dagster_rules import dagster_accepts_cron
from dp_assets.spec.ids import ID_PATTERN, NODE_ID_PATTERN
from dp_assets.spec.partitions import Partitions
from dp_io.retention_policy import RetentionPolicy

#: Names Dagster refuses for a job or an op output: Python's keywords and a few of its own. A copy
#: of its private ``DISALLOWED_NAMES``, so that validating a spec does not import Dagster (a
#: second); ``tests/platform/test_dagster_fence.py`` fails when the two differ.
DAGSTER_RESERVED_NAMES = frozenset(keyword.kwlist) | {
    "arg_dict",
    "bool",
    "conf",
    "config",
    "context",
    "dict",
    "float",
    "input",
    "input_arg_dict",
    "int",
    "meta",
    "output",
    "output_arg_dict",
    "str",
    "type",
}


def _not_reserved(value: str) -> str:
    """Flow ids name a Dagster job and node ids an op output: Dagster refuses Python keywords
    and a few names of its own (``context``, ``config``, ``input``, ``type``...)."""
    if value in DAGSTER_RESERVED_NAMES:
        raise ValueError(
            f"'{value}' is a name Dagster reserves (a Python keyword or one of its own); "
            "choose another id, e.g. '{value}_1'".replace("{value}", value)
        )
    return value


FlowId = Annotated[str, Field(pattern=ID_PATTERN, max_length=64), AfterValidator(_not_reserved)]
NodeId = Annotated[str, Field(pattern=NODE_ID_PATTERN, max_length=64), AfterValidator(_not_reserved)]
# A flow param's name: what a ``{{ params.NAME }}`` reference can name, and a field name the
# params models of triggers and the launch receiver can have (pydantic refuses a leading "_").
ParamName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$", max_length=64)]
# Dagster's rules for asset tags and owners (dagster._utils.tags, dagster._core.definitions.utils),
# checked here so that a spec breaking them is a validation error naming the field, not a
# definition error at load.
TagKey = Annotated[str, Field(pattern=r"^([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}$")]
TagValue = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{0,63}$")]
Tags = dict[TagKey, TagValue]
Owner = Annotated[
    str,
    Field(
        pattern=r"^(team:.+|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,7})$",
        description="An e-mail address or a team name prefixed with 'team:'.",
    ),
]


class Strict(BaseModel):
    # allow_inf_nan: a float field of a spec is a count of seconds or a limit, and an infinite
    # one breaks Dagster tags (int(inf)) and JSON storage alike.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


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


def _interval_field() -> Any:
    return Field(
        default=None,
        ge=1,
        le=86400,
        description="Seconds between sensor ticks (default: DP_SENSOR_INTERVAL_SECONDS, else 30).",
    )


ENV_REF_RE = r"^\$\{env:[A-Za-z_][A-Za-z0-9_]*\}$"


class ScheduleTrigger(Strict):
    """Run the flow on a cron schedule (a Dagster ``ScheduleDefinition``)."""

    type: Literal["schedule"]
    cron: str = Field(description="Cron expression, e.g. '0 */2 * * *' (every two hours).")
    timezone: str = Field(default="UTC", description="IANA time zone of the cron expression.")
    params: dict[str, Any] = Field(default_factory=dict, description="Params of every run.")
    enabled: bool = Field(default=True, description="Running by default (can be toggled in the UI).")
    missed_runs: Literal["skip", "latest"] = Field(
        default="latest",
        description="Ticks missed while the daemon was down: 'latest' runs the latest one once "
        "the daemon is back; 'skip' runs none of them.",
    )
    missed_after_seconds: int = Field(
        default=300,
        ge=1,
        description="A tick evaluated this much later than its scheduled time counts as missed.",
    )

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        if not dagster_accepts_cron(value):
            raise ValueError(f"'{value}' is not a valid cron expression (e.g. '0 */2 * * *')")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from dp_assets.timezones import check_timezone  # a set lookup: the name never reaches a file

        return check_timezone(value)


class EventTrigger(Strict):
    """Run the flow once per event on matching topics (``*`` one segment, ``**`` any number)."""

    type: Literal["event"]
    topics: list[str] = Field(
        min_length=1,
        description="Topic patterns; list 'webhook.<flow id>' to accept POST /hooks/<flow id>.",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Fixed params; the event payload fills the others."
    )
    enabled: bool = True
    start: Literal["earliest", "latest"] = Field(
        default="earliest",
        description="Where a new sensor starts: every retained matching event ('earliest') or "
        "only events published after its first tick ('latest').",
    )
    interval_seconds: int | None = _interval_field()

    @field_validator("topics")
    @classmethod
    def _valid_patterns(cls, value: list[str]) -> list[str]:
        from dp_sensors.events.topics import validate_topic_pattern

        return [validate_topic_pattern(pattern) for pattern in value]


class FileTrigger(Strict):
    """Run the flow once per new (or changed) file matching a glob under the data root."""

    type: Literal["file"]
    glob: str = Field(description="Relative to the data root, e.g. 'incoming/*.csv'.")
    param: str = Field(default="path", description="The flow param that receives the file path.")
    params: dict[str, Any] = Field(default_factory=dict, description="Fixed params of every run.")
    enabled: bool = True
    min_age_seconds: float = Field(
        default=0,
        ge=0,
        description="Only files unchanged for this long (so a file still being written waits).",
    )
    interval_seconds: int | None = _interval_field()

    @field_validator("glob")
    @classmethod
    def _relative_glob(cls, value: str) -> str:
        import os
        from pathlib import PurePosixPath

        if not value or os.path.isabs(value) or value.startswith("/") or ".." in PurePosixPath(value).parts:
            raise ValueError(f"glob '{value}' must be relative to the data root, without '..'")
        return value


class FlowTrigger(Strict):
    """Run the flow when another flow's run succeeds (or fails): a chain, like SVOps' DAG chain."""

    type: Literal["flow"]
    flow: FlowId
    on: Literal["success", "failure"] = "success"
    params: dict[str, Any] = Field(default_factory=dict)
    pass_params: bool = Field(
        default=False,
        description="Also pass the upstream run's params that this flow declares too.",
    )
    enabled: bool = True
    interval_seconds: int | None = _interval_field()


Trigger = Annotated[ScheduleTrigger | EventTrigger | FileTrigger | FlowTrigger, Field(discriminator="type")]


RunOutcome = Literal["failure", "success"]


def _failures_only() -> list[RunOutcome]:
    return ["failure"]


class Notification(Strict):
    """Where to say that a run finished, sent by a run-status sensor with a link to the run.

    Webhook URLs are secrets (a Slack incoming-webhook URL is its own credential), so they are
    written as ``${env:NAME}`` and resolved only when a message is sent.
    """

    on: list[RunOutcome] = Field(default_factory=_failures_only, min_length=1)
    webhook: str | None = Field(
        default=None,
        description="'${env:NAME}': the variable holds a Slack-style incoming-webhook URL.",
    )
    email: list[str] | None = Field(default=None, description="Addresses, or '${env:NAME}' references to them.")

    @field_validator("webhook")
    @classmethod
    def _webhook_from_env(cls, value: str | None) -> str | None:
        if value is not None and not re.match(ENV_REF_RE, value):
            raise ValueError(
                "write the webhook as '${env:NAME}' and put the URL in that environment variable: "
                "webhook URLs are secrets and never sit in a spec"
            )
        return value

    @model_validator(mode="after")
    def _has_target(self) -> Notification:
        if not self.webhook and not self.email:
            raise ValueError("a notification needs a 'webhook' or an 'email' list")
        return self


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
