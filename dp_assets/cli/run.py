"""``dp run FLOW``: run a published flow here and now, on the embedded default's instance.

What ``dagster job execute`` does for one job, without its deprecation notice and without
loading the whole code location: only the flow is compiled (at its published version, or the
one asked for), it runs in this process as a Dagster run of the instance of ``DAGSTER_HOME``
(so it is in the UI's run list with its events and kept outputs), and each node is printed as
it finishes, with its row count, time and where its output is kept. A failed run exits 1 and
names the failing node and its error.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from dp_assets.cli.progress import Progress

if TYPE_CHECKING:  # dagster is imported when a command runs, not when the CLI starts
    from dagster import EventLogRecord

#: How often the instance's event log is read for nodes that finished.
POLL_SECONDS = 0.2


@dataclass(frozen=True)
class NodeLine:
    node: str
    rows: int | None
    duration_ms: float | None
    where: str | None


def node_line(event: Any) -> NodeLine | None:
    """The line of a materialisation event (``None`` for other events)."""
    if not event.is_dagster_event or event.dagster_event_type is None:
        return None
    if event.dagster_event_type.value != "ASSET_MATERIALIZATION":
        return None
    materialization = event.dagster_event.step_materialization_data.materialization
    metadata = materialization.metadata
    rows = metadata.get("dagster/row_count")
    duration = metadata.get("dp/duration_ms")
    where = metadata.get("path")
    return NodeLine(
        node=materialization.asset_key.path[-1],
        rows=rows.value if rows is not None else None,
        duration_ms=duration.value if duration is not None else None,
        where=str(where.value) if where is not None else None,
    )


def failure_text(failures: list[Any]) -> str:
    """The error of the run's failed step (the platform's message names the flow and node)."""
    from dp_sensors.launch import NODE_ERRORS, without_class_name

    for event in failures:
        error = event.step_failure_data.error
        if error is not None:
            while error.cause is not None and error.cls_name not in NODE_ERRORS:
                error = error.cause
            return without_class_name(error.message.strip(), error.cls_name)  # as `dp launch --wait` says it
    return "the run failed (its events are in the Dagster UI)"


@click.command("run")
@click.argument("flow")
@click.option("--param", "-p", "params", multiple=True, help="KEY=VALUE (JSON or text); repeatable.")
@click.option("--params-json", default=None, help="All params as one JSON object.")
@click.option("--version", default=None, help="A stored version or its prefix (default: the published one).")
@click.option("--partition", default=None, help="The partition to run, for a flow with 'partitions:'.")
def run(
    flow: str, params: tuple[str, ...], params_json: str | None, version: str | None, partition: str | None
) -> None:
    """Run a published FLOW locally on the embedded default and print each node as it finishes."""
    import dagster as dg

    from dp_assets.loading import LoadScope
    from dp_assets.location import build_code_location
    from dp_assets.store_api import FlowNotFound, FlowStoreAPI
    from dp_sensors.cli import launch_params
    from dp_sensors.triggers.policy import FLOW_TAG, FLOW_VERSION_TAG, TRIGGER_TAG

    values = launch_params(params, params_json)

    api = FlowStoreAPI()
    try:
        info = api.info(flow)
        if info.state != "published" and version is None:
            raise click.ClickException(
                f"flow '{flow}' is {info.state}; `dp publish {flow}` publishes "
                "its newest version, or name one with --version"
            )
        found, spec = api.get(flow, version)
    except FlowNotFound as exc:
        raise click.ClickException(str(exc)) from None
    values = _checked_params(flow, spec, values)
    defs = build_code_location(store=api.store, catalog=api.catalog, scope=LoadScope(frozenset([flow]), {flow: found}))
    job = defs.resolve_job_def(flow)
    instance = dg.DagsterInstance.get()
    run_config = _partitioned_config(flow, job, instance, values, partition)
    run_id = str(uuid.uuid4())
    tags = {TRIGGER_TAG: "cli", FLOW_TAG: flow, FLOW_VERSION_TAG: found}
    outcome: dict[str, Any] = {}

    def execute() -> None:
        try:
            outcome["result"] = job.execute_in_process(
                run_config=run_config,
                instance=instance,
                run_id=run_id,
                tags=tags,
                raise_on_error=False,
                partition_key=partition,
            )
        except Exception as exc:  # noqa: BLE001 - a bad run config, say: shown to the user below
            outcome["error"] = exc

    worker = threading.Thread(target=execute, name=f"dp-run-{flow}", daemon=True)
    started = time.perf_counter()
    # Dagster's console logger writes every event of the run to stderr (a flow job's config
    # mapping leaves no room for logger config); the events are stored in the instance and
    # shown in the UI, and this command prints one line per node instead.
    with contextlib.redirect_stderr(io.StringIO()), Progress(f"run {run_id[:8]} of {flow} ({found[:12]})") as progress:
        worker.start()
        cursor = None
        while True:
            alive = worker.is_alive()
            records: Sequence[EventLogRecord] = []
            if instance.has_run(run_id):
                batch = instance.get_records_for_run(run_id, cursor=cursor)
                records, cursor = batch.records, batch.cursor
            for record in records:
                line = node_line(record.event_log_entry)
                if line is not None:
                    progress.line(_format(line))
            if not alive:
                break
            time.sleep(POLL_SECONDS)
    worker.join()
    seconds = time.perf_counter() - started
    if "error" in outcome:
        raise click.ClickException(f"flow '{flow}' did not start: {outcome['error']}")
    result = outcome["result"]
    if result.success:
        click.echo(
            f"run {run_id[:8]} of {flow} succeeded in {seconds:.1f} s "
            f"(run id {run_id}; `dp runs show {run_id[:8]}` lists its kept outputs)"
        )
        return
    failures = failure_text(result.get_step_failure_events())
    click.echo(f"run {run_id[:8]} of {flow} FAILED after {seconds:.1f} s: {failures}", err=True)
    sys.exit(1)


def _partitioned_config(
    flow: str, job: Any, instance: Any, values: dict[str, Any], partition: str | None
) -> dict[str, Any]:
    """The run config: the params, given to each step of a partitioned flow's job (Dagster maps
    no config of a partitioned job), as `dp launch --partition` gives them. A partitioned flow
    needs a partition it has, and only a partitioned one takes one: said before anything runs
    (without one, the first node reading `partition.start` failed: 'flow param is not set')."""
    from dp_sensors.launch import partition_span, unknown_partition

    partitions = job.partitions_def
    if partitions is None:
        if partition is not None:
            raise click.ClickException(f"flow '{flow}' has no partitions; run it without --partition")
        return values
    keys = partitions.get_partition_keys(dynamic_partitions_store=instance)
    if partition is None:
        raise click.ClickException(
            f"flow '{flow}' is partitioned: name the partition to run with --partition KEY "
            f"({partition_span(keys)}; `dp backfill` runs several)"
        )
    problem = unknown_partition(flow, keys, partition)
    if problem is not None:
        raise click.ClickException(problem)
    return {"ops": {node.name: {"config": {"params": values}} for node in job.graph.nodes}}


def _checked_params(flow: str, spec: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The run's params checked against the flow's, as the launch receiver and triggers check
    them: a value of the wrong type is one error naming the param, before anything starts."""
    from dp_assets.spec.model import FlowParam
    from dp_sensors.triggers.params import ParamsRejected, check_params

    declared = {name: FlowParam.model_validate(param) for name, param in (spec.get("params") or {}).items()}
    try:
        return check_params(flow, declared, values)
    except ParamsRejected as exc:
        raise click.ClickException(str(exc)) from None


def _format(line: NodeLine) -> str:
    rows = f"{line.rows:,} rows" if line.rows is not None else "-"
    took = f"{line.duration_ms:,.0f} ms" if line.duration_ms is not None else ""
    return f"  {line.node:28} {rows:>14} {took:>10}  {line.where or ''}"
