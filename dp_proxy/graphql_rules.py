"""What a GraphQL request to the webserver needs, read from the document with graphql-core.

Pure: no network, no store. The proxy turns each :class:`Need` into a role check (docs/security.md,
"Roles"). The document is parsed, never matched with patterns: a mutation reached through an
alias, an inline fragment, a named fragment, another operation of the same document (whatever
``operationName`` says) or an element of a batched request counts like one written plainly.

- A root field that launches, re-executes or terminates runs needs ``run`` on the flows it
  targets; deleting a run needs ``edit``. Flows are named by the job (a flow's job has its
  name), by the asset keys of an asset selection (a flow's assets are ``[flow, node]``), or by a
  run id that the proxy must look up (``run_ids``).
- Every other mutation (wipe assets, reload the workspace, start a sensor, report events, set
  limits...) needs ``admin`` on every workspace.
- A query or subscription field that reads runs, logs or asset values needs ``view`` on the
  flows it names (one run, the runs of one job) and, naming none, ``view`` on every workspace.
  Fields that read only definitions (jobs, schedules, the workspace) need a login only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError, parse
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
)
from graphql.utilities import value_from_ast_untyped

#: The largest batch the proxy reads (the UI sends single requests).
MAX_BATCH = 20
MAX_QUERY_CHARS = 200_000

RUN_MUTATIONS = frozenset(
    {
        "launchRun",
        "launchPipelineExecution",
        "launchMultipleRuns",
        "launchRunReexecution",
        "launchPipelineReexecution",
        "terminateRun",
        "terminatePipelineExecution",
        "terminateRuns",
        "launchPartitionBackfill",
    }
)
#: The run mutations that start runs (recorded in the audit trail by the proxy).
LAUNCH_MUTATIONS = RUN_MUTATIONS - {"terminateRun", "terminatePipelineExecution", "terminateRuns"}
EDIT_MUTATIONS = frozenset({"deleteRun", "deletePipelineRun"})
#: Query and subscription fields that read runs, logs or asset values.
DATA_FIELDS = frozenset(
    {
        "runsOrError",
        "pipelineRunsOrError",
        "runOrError",
        "pipelineRunOrError",
        "logsForRun",
        "capturedLogs",
        "capturedLogsMetadata",
        "pipelineRunLogs",
        "runGroupOrError",
        "runIdsOrError",
        "runsFeedOrError",
        "runsFeedCountOrError",
        "runTagsOrError",
        "runTagKeysOrError",
        "assetsOrError",
        "assetOrError",
        "assetNodes",
        "assetNodeOrError",
        "assetsLatestInfo",
        "assetRecordsOrError",
        "assetCheckExecutions",
        "partitionBackfillOrError",
        "partitionBackfillsOrError",
        "executionPlanOrError",
        "assetConditionEvaluationRecordsOrError",
        "assetConditionEvaluationsForEvaluationId",
        "autoMaterializeAssetEvaluationsOrError",
        "truePartitionsForAutomationConditionEvaluationNode",
    }
)
#: Fields below a definitions root (a job, a repository, a schedule...) that read runs, events
#: or asset values: ``pipelineOrError { ... on Pipeline { runs { ... } } }`` reads runs too.
NESTED_DATA_FIELDS = frozenset(
    {
        "runs",
        "latestRun",
        "latestRunForPartition",
        "partitionRuns",
        "backfills",
        "cancelableRuns",
        "unfinishedRuns",
        "assetMaterializations",
        "assetObservations",
        "latestMaterialization",
        "latestMaterializationByPartition",
        "assetMaterializationUsedData",
        "executionForLatestMaterialization",
        "assetPartitionStatuses",
        "partitionStats",
        "eventConnection",
        "capturedLogs",
        "materializations",
        "runOrError",
        "assetsLatestInfo",
        "logEvents",
        # Asset events with their metadata (previews), below a schedule's or sensor's assets.
        "assetEventHistory",
        # Run ids, states and times: a job's ops' step stats, a partition set's runs.
        "stepStats",
        "partitionStatusesOrError",
        "materializationStatusMetadata",
    }
)
#: Dagster's job of asset materialisations: the flows are those of the selected asset keys.
ASSET_JOB_PREFIX = "__ASSET_JOB"


class BadGraphQL(ValueError):
    """The body is no GraphQL request the proxy can judge (answered 400)."""


@dataclass(frozen=True)
class Need:
    """One root field's requirement: ``action`` on ``flows`` and on the flows of ``run_ids``;
    ``everywhere``: on every workspace (the field names no flow)."""

    field: str
    action: str  # "view", "run", "edit" or "grant" (dp_auth.permissions.Action names)
    flows: frozenset[str] = frozenset()
    run_ids: frozenset[str] = frozenset()
    everywhere: bool = False


@dataclass
class _Walk:
    fragments: dict[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]
    #: The fragments below which a field reads data (``_data_fragments``), found once a document.
    reading: frozenset[str] = frozenset()
    seen: set[str] = field(default_factory=set)


def requests_of(body: Any) -> list[dict[str, Any]]:
    """The requests of a JSON body: one object, or a batch (a list of them)."""
    batch = body if isinstance(body, list) else [body]
    if not batch or len(batch) > MAX_BATCH:
        raise BadGraphQL(f"a batch holds 1 to {MAX_BATCH} requests")
    for request in batch:
        if not isinstance(request, dict) or not isinstance(request.get("query"), str):
            raise BadGraphQL("each request is an object with a 'query' string")
        variables = request.get("variables")
        if variables is not None and not isinstance(variables, dict):
            raise BadGraphQL("'variables' must be an object")
    return batch


def needs_of_body(body: Any) -> list[Need]:
    """Every need of every request of the body (all operations of each document)."""
    found: list[Need] = []
    for request in requests_of(body):
        found += needs_of(request["query"], request.get("variables") or {})
    return found


def needs_of(query: str, variables: Mapping[str, Any]) -> list[Need]:
    if len(query) > MAX_QUERY_CHARS:
        raise BadGraphQL(f"a query is at most {MAX_QUERY_CHARS} characters")
    try:
        document: DocumentNode = parse(query, max_tokens=50_000)
    except GraphQLError as error:
        raise BadGraphQL(f"the query does not parse: {error.message}") from None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    reading = _data_fragments(fragments)
    needs: list[Need] = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            walk = _Walk(fragments, variables, reading)
            for node in _root_fields(definition.selection_set, walk):
                need = _need(definition.operation, node, walk)
                if need is not None:
                    needs.append(need)
    return needs


def _root_fields(selection_set: SelectionSetNode, walk: _Walk) -> Iterable[FieldNode]:
    """The operation's root fields, through inline fragments and fragment spreads, in order.
    Without recursion: a document of the allowed size can chain thousands of fragments."""
    stack = [iter(selection_set.selections)]
    while stack:
        selection = next(stack[-1], None)
        if selection is None:
            stack.pop()
        elif isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            stack.append(iter(selection.selection_set.selections))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = walk.fragments.get(name)
            if fragment is None:
                raise BadGraphQL(f"fragment {name!r} is not defined")
            if name not in walk.seen:  # a fragment that spreads itself is Dagster's to refuse
                walk.seen.add(name)
                stack.append(iter(fragment.selection_set.selections))


def _selections(selection_set: SelectionSetNode) -> Iterator[FieldNode | FragmentSpreadNode]:
    """The fields and fragment spreads anywhere below ``selection_set``, inline fragments opened
    and named fragments not followed; without recursion."""
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FieldNode):
                yield selection
                if selection.selection_set is not None:
                    stack.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                stack.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                yield selection


def _data_fragments(fragments: Mapping[str, FragmentDefinitionNode]) -> frozenset[str]:
    """The named fragments below which a field reads runs, events or asset values, directly or
    through the fragments they spread. Each fragment is read once per document, so the work is
    bounded by the document's size however many fields spread a fragment (walking a fragment
    again for each of thousands of root fields took seconds of the proxy's event loop)."""
    reading: set[str] = set()
    spread_by: dict[str, set[str]] = {}
    for name, fragment in fragments.items():
        for selection in _selections(fragment.selection_set):
            if isinstance(selection, FragmentSpreadNode):
                target = selection.name.value
                if target not in fragments:
                    raise BadGraphQL(f"fragment {target!r} is not defined")
                spread_by.setdefault(target, set()).add(name)
            elif selection.name.value in NESTED_DATA_FIELDS:
                reading.add(name)
    found = list(reading)
    while found:  # a fragment that spreads a reading fragment reads too
        for name in spread_by.get(found.pop(), ()):
            if name not in reading:
                reading.add(name)
                found.append(name)
    return frozenset(reading)


def _arguments(node: FieldNode, walk: _Walk) -> dict[str, Any]:
    return {arg.name.value: value_from_ast_untyped(arg.value, dict(walk.variables)) for arg in node.arguments or ()}


def _need(operation: OperationType, node: FieldNode, walk: _Walk) -> Need | None:
    name = node.name.value
    if name.startswith("__"):
        return None  # introspection: the schema, no data
    args = _arguments(node, walk)
    if operation is OperationType.MUTATION:
        if name in RUN_MUTATIONS:
            return _targeted(name, "run", args)
        if name in EDIT_MUTATIONS:
            return _targeted(name, "edit", args)
        return Need(name, "grant", everywhere=True)
    if name in DATA_FIELDS:
        return _targeted(name, "view", args)
    if node.selection_set is None or not _reads_data(node.selection_set, walk):
        return None
    job = _get(args, "params", "pipelineName") or _get(args, "params", "jobName")
    if isinstance(job, str):
        return Need(name, "view", frozenset({job}))
    return Need(name, "view", everywhere=True)


def _reads_data(selection_set: SelectionSetNode, walk: _Walk) -> bool:
    """Whether a field anywhere below reads runs, events or asset values (fragments followed)."""
    for selection in _selections(selection_set):
        if isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in walk.fragments:
                raise BadGraphQL(f"fragment {name!r} is not defined")
            if name in walk.reading:
                return True
        elif selection.name.value in NESTED_DATA_FIELDS:
            return True
    return False


def _targeted(name: str, action: str, args: Mapping[str, Any]) -> Need:
    flows: set[str] = set()
    run_ids: set[str] = set()
    for params in _execution_params(args):
        flows |= _flows_of_execution(params)
        parent = _get(params, "executionMetadata", "parentRunId") or _get(params, "executionMetadata", "rootRunId")
        if isinstance(parent, str):
            run_ids.add(parent)
    reexecution = args.get("reexecutionParams")
    if isinstance(reexecution, dict) and isinstance(reexecution.get("parentRunId"), str):
        run_ids.add(reexecution["parentRunId"])
    for key in ("runId", "parentRunId"):
        if isinstance(args.get(key), str):
            run_ids.add(args[key])
    if isinstance(args.get("runIds"), list):
        run_ids |= {run_id for run_id in args["runIds"] if isinstance(run_id, str)}
    log_key = args.get("logKey")
    if isinstance(log_key, list) and log_key and isinstance(log_key[0], str):
        run_ids.add(log_key[0])  # a step's log key starts with its run id
    backfill = args.get("backfillParams")
    if isinstance(backfill, dict):
        flows |= _flows_of_assets(backfill.get("assetSelection"))
        set_name = _get(backfill, "selector", "partitionSetName")
        if isinstance(set_name, str):
            flows.add(set_name.removesuffix("_partition_set"))
    job = _get(args, "filter", "pipelineName")
    if isinstance(job, str) and not _names_more(args.get("filter")):
        flows.add(job)
    if not flows and not run_ids:
        return Need(name, action, everywhere=True)
    # A launch that names flows and something else (a job we cannot map) is judged on everything.
    everywhere = any(flow.startswith(ASSET_JOB_PREFIX) for flow in flows)
    return Need(name, action, frozenset(f for f in flows if not f.startswith("__")), frozenset(run_ids), everywhere)


def _names_more(run_filter: Any) -> bool:
    """A runs filter that also asks by run ids reads those runs, whatever job it names."""
    return isinstance(run_filter, dict) and bool(run_filter.get("runIds"))


def _execution_params(args: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = []
    single = args.get("executionParams")
    if isinstance(single, dict):
        found.append(single)
    many = args.get("executionParamsList")
    if isinstance(many, list):
        found += [p for p in many if isinstance(p, dict)]
    return found


def _flows_of_execution(params: Mapping[str, Any]) -> set[str]:
    selector = params.get("selector")
    if not isinstance(selector, dict):
        return {ASSET_JOB_PREFIX}  # no job named: judged as every flow
    flows = _flows_of_assets(selector.get("assetSelection")) | _flows_of_assets(selector.get("assetCheckSelection"))
    job = selector.get("jobName") or selector.get("pipelineName")
    if isinstance(job, str) and not (job.startswith(ASSET_JOB_PREFIX) and flows):
        flows.add(job)
    return flows or {ASSET_JOB_PREFIX}


def _flows_of_assets(selection: Any) -> set[str]:
    flows: set[str] = set()
    if isinstance(selection, list):
        for key in selection:
            path = key.get("path") if isinstance(key, dict) else None
            if isinstance(key, dict) and isinstance(key.get("assetKey"), dict):
                path = key["assetKey"].get("path")
            if isinstance(path, list) and path and isinstance(path[0], str):
                flows.add(path[0])
            else:
                flows.add(ASSET_JOB_PREFIX)  # a key we cannot read: judged as every flow
    return flows


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
