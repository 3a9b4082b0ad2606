"""Launches made through the Dagster UI (or any GraphQL client) behind the proxy, audited.

The proxy has judged the launch (:mod:`dp_proxy.roles`); once the webserver answers, each run
the answer names (``run { id }`` of every ``LaunchRunSuccess``, as the UI selects it) is looked
up at the webserver in one query — its job, asset selection and run config are Dagster's, not what the client
claimed — and recorded in the store's audit trail: who, when, the flow, the run, and the names
of the params it was given (names only, as the designer records them: a value may be a secret).
A launch whose answer names no run (a failed launch, or a client that did not select the run)
is recorded for the flows the request named, with no run id, so leaving the run out of a
selection does not hide a launch. A failed record is logged; it never changes the answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import yaml

from dp_auth.access import AccessStore
from dp_auth.permissions import Principal
from dp_proxy.graphql_rules import ASSET_JOB_PREFIX, Need

log = logging.getLogger("dp_proxy")

LAUNCHED_RUNS = (
    "query LaunchedRuns($ids: [String]) { runsOrError(filter: {runIds: $ids}) { __typename "
    "... on Runs { results { id jobName runConfigYaml assetSelection { path } } } } }"
)
VIA = "dagster-ui"


def launched_ids(answer: Any) -> tuple[list[str], list[str]]:
    """``(run ids, backfill ids)`` a GraphQL answer (one, or a batch) names, in order, once each."""
    runs: dict[str, None] = {}
    backfills: dict[str, None] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            run = node.get("run")
            if isinstance(run, dict):
                run_id = run.get("runId") or run.get("id")
                if isinstance(run_id, str):
                    runs[run_id] = None
            if isinstance(node.get("backfillId"), str):
                backfills[node["backfillId"]] = None
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for element in answer if isinstance(answer, list) else [answer]:
        walk(element.get("data") if isinstance(element, dict) else None)
    return list(runs), list(backfills)


def param_names(run_config_yaml: str | None) -> list[str]:
    """The flow params a run was given: its run config's keys (a partitioned flow's are each
    step's ``config.params``)."""
    try:
        config = yaml.safe_load(run_config_yaml or "") or {}
    except yaml.YAMLError:
        return []
    if not isinstance(config, dict):
        return []
    names = {str(key) for key in config if key != "ops"}
    ops = config.get("ops")
    if isinstance(ops, dict):
        for op in ops.values():
            params = op.get("config", {}).get("params") if isinstance(op, dict) else None
            if isinstance(params, dict):
                names |= {str(key) for key in params}
    return sorted(names)


def flows_of_run(run: dict[str, Any]) -> list[str]:
    """The flows a run launched: its job, or for Dagster's asset job the flows of its assets."""
    job = run.get("jobName")
    if isinstance(job, str) and not job.startswith(ASSET_JOB_PREFIX):
        return [job]
    paths = [key.get("path") for key in run.get("assetSelection") or [] if isinstance(key, dict)]
    return sorted({path[0] for path in paths if isinstance(path, list) and path and isinstance(path[0], str)})


async def record_launches(
    access: AccessStore,
    principal: Principal,
    launches: Iterable[Need],
    answer: bytes,
    look_up: Callable[[list[str]], Awaitable[dict[str, dict[str, Any]]]],
    write: Callable[[Callable[[], None]], Awaitable[None]],
) -> None:
    """Record the launches of one answered request (``look_up``: the runs found at the webserver
    by id, in one round trip; ``write``: runs a store write off the event loop)."""
    try:
        run_ids, backfill_ids = launched_ids(json.loads(answer))
    except (ValueError, RecursionError):
        run_ids, backfill_ids = [], []
    named = sorted({flow for need in launches for flow in need.flows})
    entries: list[tuple[str, dict[str, Any]]] = []
    runs = await look_up(run_ids) if run_ids else {}
    for run_id in run_ids:
        run = runs.get(run_id) or {}
        detail = {"run_id": run_id, "via": VIA, "params": param_names(run.get("runConfigYaml"))}
        entries += [(flow, detail) for flow in flows_of_run(run) or named or [""]]
    for backfill_id in backfill_ids:
        entries += [(flow, {"backfill_id": backfill_id, "via": VIA}) for flow in named or [""]]
    if not entries:
        fields = sorted({need.field for need in launches})
        entries = [(flow, {"run_id": None, "via": VIA, "answer_names_no_run": fields}) for flow in named or [""]]

    def store() -> None:  # one read of the flows' workspaces, one transaction for every entry
        workspaces = access.workspaces_of({flow for flow, _ in entries if flow})
        with access.store.session(write=True) as session:
            for flow, detail in entries:
                workspace = workspaces.get(flow, "")
                access.record(principal, "launch", workspace=workspace, flow_id=flow, detail=detail, session=session)

    try:
        await write(store)
    except Exception:  # the run is launched either way: the answer must not turn into an error
        log.exception("could not record %d launch(es) by %s in the audit trail", len(entries), principal.label)
