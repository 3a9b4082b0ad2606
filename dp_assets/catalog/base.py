"""What a node type is: a params model, a function, and what it takes and gives.

A node type is one small function plus its pydantic params model, wrapped in a ``NodeType``
record and listed in the catalog (``dp_assets.catalog.default_catalog``). The compiler knows
nothing about particular node types; it reads these records.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

# A column schema known before a run: column name -> logical type
# ("integer", "float", "string", "boolean", "datetime", "date", "any").
ColumnSchema = dict[str, str]


class Params(BaseModel):
    """Base of every node's params model: unknown keys are errors, so typos fail at load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(Params):
    pass


@dataclass(frozen=True)
class InputSpec:
    """The inputs a node type takes.

    ``names`` are fixed, named inputs (``inputs: {left: a, right: b}``, or a list in that order).
    ``variadic`` takes any number of inputs, at least ``min_count``, keyed by the upstream
    reference in the order written.
    """

    names: tuple[str, ...] = ("input",)
    variadic: bool = False
    min_count: int = 0

    def describe(self) -> str:
        if self.variadic:
            return f"{self.min_count} or more inputs"
        if not self.names:
            return "no inputs"
        return ", ".join(self.names)


NO_INPUTS = InputSpec(names=())
ONE_INPUT = InputSpec(names=("input",))
LEFT_RIGHT = InputSpec(names=("left", "right"))
MANY_INPUTS = InputSpec(names=(), variadic=True, min_count=1)


class SchemaError(ValueError):
    """Raised by a schema hook when inputs cannot fit the params; ``field`` names the param."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class Skipped:
    """The value of an output that did not run (a branch not taken); dependants skip too."""

    _instance: Skipped | None = None

    def __new__(cls) -> Skipped:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "SKIPPED"


SKIPPED = Skipped()


@dataclass(frozen=True)
class NodeOutputs:
    """Returned by a node type with several outputs: output name -> value (or ``SKIPPED``)."""

    values: Mapping[str, Any]


@dataclass
class NodeContext:
    """What a node function sees at run time besides its params and inputs."""

    flow_id: str
    node_id: str
    run_id: str
    flow_params: Mapping[str, Any]
    resources: Mapping[str, Any]
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("dp.node"))
    metadata: dict[str, Any] = field(default_factory=dict)
    catalog: Catalog | None = None  # for nodes that run sub-chains (TryCatch, ForEach)
    run_tags: Mapping[str, str] = field(default_factory=dict)
    instance: Any = None  # the DagsterInstance, for nodes that read earlier runs (ForEach retries)
    body: Any = None  # a sub-chain's body as planned with the flow (a dp_assets.compiler.plan.FlowPlan)

    def resource(self, key: str) -> Any:
        try:
            return self.resources[key]
        except KeyError:
            raise RuntimeError(
                f"node '{self.node_id}' of flow '{self.flow_id}' needs resource '{key}', "
                "which the code location does not provide"
            ) from None

    def add_metadata(self, **values: Any) -> None:
        """Extra materialisation metadata shown in the Dagster UI for this node."""
        self.metadata.update(values)


class FrameStream(Iterator[Any]):
    """A DataFrame output produced part by part (a source with ``stream: true``).

    The compiler hands it to the IO manager as the node's output, which stores each part as it
    arrives, so the step holds one part at a time; a dependant in the same step gets the whole
    frame read back from storage. Where there is no such IO manager (a sub-chain body, a node
    under ``timeout_seconds``, an in-memory IO manager) it is read whole with ``collect()``.
    Single use, like any iterator.
    """

    def __init__(self, parts: Iterable[Any]):
        self._parts = iter(parts)
        self._head: list[Any] = []

    def peek(self) -> Any:
        """The first part, read now and still yielded first (None when there is none). A source
        calls it before returning, so that opening the source fails, and is retried, in the node."""
        if not self._head:
            try:
                self._head.append(next(self._parts))
            except StopIteration:
                return None
        return self._head[0]

    def __next__(self) -> Any:
        if self._head:
            return self._head.pop()
        return next(self._parts)

    def collect(self) -> Any:
        """The remaining parts as one DataFrame (an empty one when there are none)."""
        from dp_io.formats import combine_parts

        return combine_parts(list(self))


def whole(value: Any) -> Any:
    """``value``, with a ``FrameStream`` read into one frame."""
    return value.collect() if isinstance(value, FrameStream) else value


NodeFunction = Callable[[NodeContext, Any, dict[str, Any]], Any]
SchemaHook = Callable[[Any, dict[str, "ColumnSchema | None"]], "ColumnSchema | None"]
# Extra checks that need the catalog (e.g. a sub-chain's nodes): (params, catalog) -> [(field, message)]
CheckHook = Callable[[Any, "Catalog"], list[tuple[str, str]]]


@dataclass(frozen=True)
class NodeType:
    """One entry of the catalog.

    - ``run(ctx, params, inputs)`` returns the node's value (usually a DataFrame), or
      ``NodeOutputs`` when ``outputs`` names more than one output.
    - ``infer_schema(params, input_schemas)`` maps input column schemas to the output schema
      before anything runs; it returns ``None`` when the schema cannot be known and raises
      ``SchemaError`` when the inputs cannot fit the params.
    - ``produces_asset``: whether the node is an asset ``[flow_id, node_id]`` (a notification is not).
    - ``check(params, catalog)`` returns extra ``(field, message)`` errors found at validation,
      for params that refer to other node types (a sub-chain).
    - ``accepts_skipped``: the node runs even when some inputs were skipped (``Merge``).
    - ``data_templates``: the node fills ``{{ input }}``/``{{ row }}``/``{{ args }}`` templates of
      its params from data; flow params are then substituted inert (``dp_assets.spec.inert``), so
      a launch param cannot form such a template.
    - ``expression_params``: the params that hold an expression (docs/expressions.md), whose
      ``params.NAME`` must name a flow param; validation checks them as it checks ``{{ params.x }}``.
    - ``reads_flows(params)``: the ``(flow id, node id)`` of other flows' nodes the node reads
      (``FlowInput``); the compiler makes their assets dependencies of the node's asset, so the
      UI draws the edge and automation sees the upstream, and the location checks they exist.
    - ``read_schema(params, resources)``: a source's output columns read from what it reads (its
      files' headers), or ``None``; only ``dp validate --infer-columns`` calls it, never a load
      or a publish, whose checks depend on the spec alone.
    """

    name: str
    params_model: type[Params]
    run: NodeFunction
    category: str
    inputs: InputSpec = ONE_INPUT
    outputs: tuple[str, ...] = ("result",)
    kinds: frozenset[str] = frozenset({"pandas"})
    resources: frozenset[str] = frozenset()
    infer_schema: SchemaHook | None = None
    check: CheckHook | None = None
    produces_asset: bool = True
    accepts_skipped: bool = False
    side_effects: bool = False
    data_templates: bool = False
    reads_flows: Callable[[Any], tuple[tuple[str, str], ...]] | None = None
    expression_params: tuple[str, ...] = ()
    read_schema: Callable[[Any, Mapping[str, Any]], ColumnSchema | None] | None = None

    @property
    def description(self) -> str:
        return inspect.cleandoc(self.run.__doc__ or "")


class Catalog(Mapping[str, NodeType]):
    """The node types a code location knows, built explicitly and passed to the compiler."""

    def __init__(self, node_types: Iterable[NodeType]):
        self._types: dict[str, NodeType] = {}
        for node_type in node_types:
            if node_type.name in self._types:
                raise ValueError(f"node type '{node_type.name}' is listed twice in the catalog")
            self._types[node_type.name] = node_type

    def __getitem__(self, name: str) -> NodeType:
        return self._types[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    # Identity semantics, so that models derived from a catalog can be cached per catalog.
    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other

    def extended(self, node_types: Iterable[NodeType]) -> Catalog:
        return Catalog([*self._types.values(), *node_types])
