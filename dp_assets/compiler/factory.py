"""Flow spec in, one ``Definitions`` out: a multi-asset per flow and a job named after the flow.

Specs first, execution second (as ``dagster-dbt`` does): asset specs come from the translator, then
one ``multi_asset`` with ``can_subset=True`` wraps execution around them. One step per flow keeps
load time and per-node overhead low (see docs/architecture.md) while every node stays its own
asset with lineage in the UI.
"""

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

from dp_assets.catalog.base import Catalog
from dp_assets.compiler.automation import automation_sensors
from dp_assets.compiler.checks import COLUMN_SCHEMA_KEY, freshness_checks, freshness_sensor, node_check_specs
from dp_assets.compiler.partitions import backfill_policy, partitions_definition
from dp_assets.compiler.plan import FlowPlan, build_plan
from dp_assets.compiler.runtime import run_flow_step
from dp_assets.compiler.translator import FlowTranslator, NodeRecord
from dp_assets.dagster_internals import UnresolvedAssetJobDefinition, resolve_asset_job
from dp_assets.spec.checks import step_pool
from dp_assets.spec.model import FlowParam
from dp_assets.spec.validation import ValidatedFlow
from dp_sensors.triggers import build_trigger_definitions, policy_run_tags
from dp_sensors.triggers.policy import FLOW_TAG, FLOW_VERSION_TAG

CONFIG_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "date": str,
    "datetime": str,
    "list": list,
    "object": dg.Permissive(),
}


def params_config_schema(params: dict[str, FlowParam]) -> dict[str, dg.Field]:
    """Flow params as Dagster config fields, so the launchpad and GraphQL check their types."""
    fields = {}
    for name, param in params.items():
        kind = CONFIG_TYPES[param.type]
        if param.required:
            fields[name] = dg.Field(kind, is_required=True, description=param.description or None)
        else:
            fields[name] = dg.Field(
                dg.Noneable(kind),
                is_required=False,
                default_value=param.default,
                description=param.description or None,
            )
    return fields


@dataclass(frozen=True)
class CompiledFlow:
    """A flow's steps (multi-assets) and its job, not yet tied to a code location."""

    validated: ValidatedFlow
    steps: list[dg.AssetsDefinition]
    job: UnresolvedAssetJobDefinition
    #: a partitioned flow's step names: its params are given per step, not as the run config
    params_per_step: list[str] | None = None
    #: the flow's freshness checks (Dagster's own)
    freshness_checks: tuple[dg.AssetChecksDefinition, ...] = ()
    #: the sensor of its automation conditions, running by default
    sensors: tuple[dg.SensorDefinition, ...] = ()

    def definitions(
        self,
        resources: Mapping[str, Any] | None = None,
        default_executor: dg.ExecutorDefinition | None = None,
        *,
        freshness_sensor: bool = True,
    ) -> dg.Definitions:
        """The flow's definitions; with the location's ``resources``, the job comes resolved.

        Dagster resolves an asset job against every asset of the location, scanning all of them
        per job (quadratic in flows: 5,000 flows took minutes), and gives it every resource of
        the location, each of which it snapshots per job. A flow's job selects only its own
        assets, so resolving it against them, with the resources they require, gives the same
        job (tests/location: ``test_each_flow_job_equals_dagsters_own_resolution``) at a
        constant cost per flow.

        ``freshness_sensor``: the flow's own sensor that evaluates its freshness checks
        (``<flow>_freshness_sensor``); a code location passes False and has one sensor for all
        its flows (``dp_assets.location``)."""
        job: dg.JobDefinition | UnresolvedAssetJobDefinition = self.job
        if resources is not None:
            needed = {key for step in self.steps for key in step.required_resource_keys}
            job = resolve_asset_job(
                self.job,
                self.steps,
                default_executor,
                {key: value for key, value in resources.items() if key in needed},
            )
        # Schedules and sensors from the spec's triggers and notify (dp_sensors.triggers).
        steps = self.params_per_step
        triggers = build_trigger_definitions(
            self.validated.flow,
            job,
            run_config_of=None if steps is None else functools.partial(_ops_config, steps),
            partitions_def=self.steps[0].partitions_def,
        )
        return dg.Definitions(
            assets=self.steps,
            asset_checks=list(self.freshness_checks) or None,
            jobs=[job],
            schedules=triggers.schedules,
            sensors=[*(triggers.sensors or []), *self.sensors, *self._freshness_sensor(freshness_sensor)],
        )

    def _freshness_sensor(self, wanted: bool) -> list[dg.SensorDefinition]:
        if not (wanted and self.freshness_checks):
            return []
        return [freshness_sensor(list(self.freshness_checks), f"{self.validated.flow.id}_freshness_sensor")]


def build_flow_definitions(
    validated: ValidatedFlow,
    catalog: Catalog,
    translator: FlowTranslator | None = None,
    executor: dg.ExecutorDefinition | None = None,
) -> dg.Definitions:
    """One flow's definitions, its job resolved when merged into a location."""
    return compile_flow(validated, catalog, translator, executor).definitions()


def compile_flow(
    validated: ValidatedFlow,
    catalog: Catalog,
    translator: FlowTranslator | None = None,
    executor: dg.ExecutorDefinition | None = None,
) -> CompiledFlow:
    translator = translator or FlowTranslator()
    flow = validated.flow
    plan = build_plan(validated, catalog)
    asset_ids = {n.id for n in plan.nodes if n.is_asset}
    partitions_def = partitions_definition(flow)
    outs = {}
    for node in flow.nodes:  # type: ignore[attr-defined]
        if node.id not in asset_ids:
            continue
        record = NodeRecord(
            flow=flow,
            node=node,
            node_type=catalog[node.type],
            version=validated.version,
            schema=validated.schemas.get(node.id),
            # through ephemeral nodes (no assets) to the nearest stored upstreams: their lineage
            asset_upstreams=tuple(u for u in plan.stored_upstreams(node.id) if u in asset_ids),
            partitions_def=partitions_def,
            other_flow_upstreams=tuple(plan.flows_read(node.id)),
        )
        outs[node.id] = dg.AssetOut(
            spec=translator.get_asset_spec(record),
            dagster_type=Any,
            is_required=False,
            io_manager_key=translator.get_io_manager_key(record),
        )
    params_schema = params_config_schema(plan.params)
    steps = plan.steps(flow.policies.steps)
    partitioning = _Partitioning(partitions_def, backfill_policy(flow, validated.raw))
    pools = {node.id: node.pool for node in flow.nodes}  # type: ignore[attr-defined]
    step_defs = [
        _step_multi_asset(
            plan,
            name,
            nodes,
            outs,
            params_schema,
            translator,
            partitioning,
            pool=step_pool(flow.pool, frozenset(pools[n] for n in nodes)),
        )
        for name, nodes in steps
    ]
    step_names = [name for name, _ in steps]
    job_tags = {FLOW_TAG: flow.id, FLOW_VERSION_TAG: validated.version}
    if flow.policies.run_retries:
        job_tags["dagster/max_retries"] = str(flow.policies.run_retries)
        job_tags["dagster/retry_strategy"] = "FROM_FAILURE"
    if flow.policies.timeout_seconds:
        job_tags["dagster/max_runtime"] = str(int(flow.policies.timeout_seconds))
    job_tags.update(policy_run_tags(flow))  # concurrency limit tags, run vs node retries (E8)
    freshness = freshness_checks(flow, lambda node_id: translator.get_asset_key(flow.id, node_id), frozenset(asset_ids))
    selection: dg.AssetSelection = dg.AssetSelection.assets(*[_key(out) for out in outs.values()])
    if freshness:  # a run materialises and checks its nodes; freshness is the sensor's to check
        in_steps = [key for step in step_defs for key in step.check_keys]
        selection = selection.without_checks() | dg.AssetSelection.checks(*in_steps)
    job = dg.define_asset_job(
        name=flow.id,
        selection=selection,
        description=flow.description or flow.name or None,
        tags=job_tags,
        # Dagster refuses a ConfigMapping on a partitioned job (it makes the run config per
        # partition itself): there the params sit under each step, as the launchpad shows.
        config=None
        if partitions_def is not None
        else dg.ConfigMapping(config_schema=params_schema, config_fn=functools.partial(_ops_config, step_names)),
        executor_def=executor,
    )
    return CompiledFlow(
        validated,
        step_defs,
        job,
        step_names if partitions_def is not None else None,
        tuple(freshness),
        tuple(automation_sensors(flow, [_key(out) for out in outs.values() if out.automation_condition])),
    )


def _ops_config(step_names: list[str], params: Mapping[str, Any]) -> dict[str, Any]:
    """A run config giving every step of the flow the flow's ``params``."""
    return {"ops": {name: {"config": {"params": dict(params)}} for name in step_names}}


def _key(out: dg.AssetOut) -> dg.AssetKey:
    """The key of an out made from an asset spec (which always has one)."""
    assert out.key is not None
    return out.key


@dataclass(frozen=True)
class _Partitioning:
    """The flow's partitions and how a backfill of many of them runs (compiler.partitions)."""

    partitions_def: dg.PartitionsDefinition | None = None
    backfill_policy: dg.BackfillPolicy | None = None


def _step_multi_asset(
    plan: FlowPlan,
    name: str,
    step_nodes: frozenset[str],
    all_outs: dict[str, dg.AssetOut],
    params_schema: dict,
    translator: FlowTranslator,
    partitioning: _Partitioning = _Partitioning(),
    pool: str | None = None,
) -> dg.AssetsDefinition:
    """One Dagster step: its nodes' asset outputs, and inputs for upstreams of other steps."""
    outs = {node_id: out for node_id, out in all_outs.items() if node_id in step_nodes}
    ins = {}
    for node in plan.nodes:
        if node.id not in step_nodes:
            continue
        for ref in node.inputs.values():
            upstream, _, output = ref.partition(".")
            if upstream in step_nodes or upstream in ins:
                continue
            source = plan.node(upstream)
            if output != source.node_type.outputs[0] or not source.is_asset:
                raise ValueError(
                    f"flow '{plan.flow_id}': '{ref}' cannot cross steps with policies.steps=node; "
                    "only a node's main output is kept between steps (use steps: flow)"
                )
            ins[upstream] = dg.AssetIn(key=translator.get_asset_key(plan.flow_id, upstream), dagster_type=Any)
    checks = [
        spec
        for n in plan.nodes
        if n.id in outs
        for spec in node_check_specs(
            _key(outs[n.id]), n, COLUMN_SCHEMA_KEY in (outs[n.id].metadata or {}), partitioning.partitions_def
        )
    ]
    resource_keys = set(plan.resource_keys) | {"io_manager"}
    whole_flow = len(step_nodes) == len(plan.nodes)

    @dg.multi_asset(
        name=name,
        outs=outs,
        ins=ins,
        check_specs=checks or None,
        can_subset=True,
        partitions_def=partitioning.partitions_def,
        backfill_policy=partitioning.backfill_policy,
        config_schema={"params": dg.Field(params_schema, is_required=False)},
        required_resource_keys=resource_keys,
        op_tags={"dp/flow": plan.flow_id},
        pool=pool,
        description=f"Runs {'the nodes of flow' if whole_flow else 'a node of flow'} '{plan.flow_id}'.",
    )
    def _flow_step(context: AssetExecutionContext, **inputs: Any):
        yield from run_flow_step(context, plan, step_nodes, inputs)

    return _flow_step
