"""Listing, reading and pruning stored runs; the daily schedule that applies each flow's
retention policy (the rule itself: ``dp_io.retention_policy``).

Pruning is conservative by construction:

- a run that is not finished in the Dagster instance (queued, starting, started, canceling) is
  never touched, nor counted towards ``keep_last``;
- an output that is still the latest materialisation of its asset (per partition) is kept even
  when its run is pruned, because cross-run reads and the UI point at it;
- with both ``keep_last`` and ``older_than``, a run folder is pruned only when it is beyond the
  last N runs of its flow *and* older than the age (the usual "keep the last N, and anything
  recent").

Runs are pruned per flow: ``{base}/{run_id}/{flow_id}/`` is the unit, so two flows that share a
run (not the case for the platform's one-job-per-flow layout, but possible) are judged apart.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from dp_io.errors import OutputNotFoundError
from dp_io.layout import StoredOutput, check_run_id, unquote_segment
from dp_io.lookup import MaterializationRef, still_latest_in
from dp_io.parts import part_entries
from dp_io.retention_policy import RetentionPolicy, check_rules, past_retention
from dp_io.run_history import FINISHED_STATUSES, prune_run_history, started_at
from dp_io.store import OutputStore

_RUN_ID = re.compile(r"[A-Za-z0-9_\-]+")


# ---- records -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputInfo:
    run_id: str
    flow_id: str
    node_id: str
    partition: str | None
    path: str
    format: str
    bytes: int
    parts: tuple[dict[str, Any], ...] = ()  # a streamed output's parts (``show_run`` only)


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    flows: tuple[str, ...]
    outputs: int
    bytes: int
    status: str | None
    started: datetime | None
    job_name: str | None


@dataclass(frozen=True)
class RunDetail:
    summary: RunSummary
    outputs: list[OutputInfo]


@dataclass
class PruneReport:
    dry_run: bool = False
    pruned: list[tuple[str, str]] = field(default_factory=list)  # (run_id, flow_id) judged old
    deleted: list[str] = field(default_factory=list)
    freed_bytes: int = 0
    kept_latest: list[str] = field(default_factory=list)
    skipped_in_progress: list[str] = field(default_factory=list)
    temp_files_removed: int = 0

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"{len(self.pruned)} run folder(s) past retention; {verb} {len(self.deleted)} "
            f"output(s), {self.freed_bytes} bytes; kept {len(self.kept_latest)} latest "
            f"materialisation(s); skipped {len(self.skipped_in_progress)} run(s) in progress"
        )


# ---- helpers -----------------------------------------------------------------------------


def open_store(base: str | None = None, storage_options: dict[str, Any] | None = None) -> OutputStore:
    if base is None:
        from dp_settings import current  # the retention job runs in Dagster, with no settings of ours

        base = current().outputs_base()
    return OutputStore(base, storage_options)


def _format_of(stored: StoredOutput) -> str:
    return {".arrow": "arrow", ".parquet": "parquet", ".json": "json", ".pkl": "pickle"}.get(stored.suffix, "parts")


def _stored_runs(store: OutputStore) -> list[str]:
    return [
        name
        for name in store.listdir(store.root)
        if _RUN_ID.fullmatch(name) and store.isdir(posixpath.join(store.root, name))
    ]


def _flows_of(store: OutputStore, run_id: str) -> list[str]:
    run_dir = store.run_dir(run_id)
    return sorted(
        unquote_segment(name)
        for name in store.listdir(run_dir)
        if not name.startswith(".") and store.isdir(posixpath.join(run_dir, name))
    )


def _outputs(store: OutputStore, run_id: str, flow: str | None = None) -> list[OutputInfo]:
    run_dir = store.run_dir(run_id)
    infos = []
    for segments, stored in store.walk_outputs(run_dir):
        names = [unquote_segment(s) for s in segments]
        if flow is not None and names[0] != flow:
            continue
        if len(names) == 3:  # flow/node/partition
            node, partition = names[1], names[2]
        else:
            node, partition = "/".join(names[1:]) or names[0], None
        infos.append(
            OutputInfo(
                run_id=run_id,
                flow_id=names[0],
                node_id=node,
                partition=partition,
                path=store.to_url(stored.path),
                format=_format_of(stored),
                bytes=store.size(stored.path),
            )
        )
    return infos


def _run_records(instance: dg.DagsterInstance | None, run_ids: Iterable[str]) -> dict[str, Any]:
    if instance is None:
        return {}
    ids = list(run_ids)
    records: dict[str, Any] = {}
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        for record in instance.get_run_records(filters=dg.RunsFilter(run_ids=chunk)):
            records[record.dagster_run.run_id] = record
    return records


def _summary(store: OutputStore, run_id: str, record: Any, flow: str | None) -> RunSummary:
    outputs = _outputs(store, run_id, flow)
    started = started_at(record)
    if started is None:
        started = store.newest_mtime(store.run_dir(run_id))
    return RunSummary(
        run_id=run_id,
        flows=tuple(sorted({o.flow_id for o in outputs})) or tuple(_flows_of(store, run_id)),
        outputs=len(outputs),
        bytes=sum(o.bytes for o in outputs),
        status=record.dagster_run.status.value if record is not None else None,
        started=datetime.fromtimestamp(started, tz=UTC) if started else None,
        job_name=record.dagster_run.job_name if record is not None else None,
    )


# ---- public API --------------------------------------------------------------------------


def list_runs(
    flow: str | None = None,
    *,
    base: str | None = None,
    instance: dg.DagsterInstance | None = None,
    storage_options: dict[str, Any] | None = None,
) -> list[RunSummary]:
    """Stored runs, newest first; with ``flow``, only runs that stored outputs of that flow."""
    store = open_store(base, storage_options)
    run_ids = [r for r in _stored_runs(store) if flow is None or flow in _flows_of(store, r)]
    records = _run_records(instance, run_ids)
    summaries = [_summary(store, r, records.get(r), flow) for r in run_ids]
    epoch = datetime.fromtimestamp(0, tz=UTC)
    return sorted(summaries, key=lambda s: s.started or epoch, reverse=True)


def show_run(
    run_id: str,
    *,
    base: str | None = None,
    instance: dg.DagsterInstance | None = None,
    storage_options: dict[str, Any] | None = None,
) -> RunDetail:
    """One stored run: every output with its format and size, a streamed one with its parts."""
    store = open_store(base, storage_options)
    check_run_id(run_id)
    if not store.isdir(store.run_dir(run_id)):
        raise OutputNotFoundError(f"run {run_id} has no stored outputs under {store.url}")
    record = _run_records(instance, [run_id]).get(run_id)
    outputs = [
        replace(o, parts=tuple(part_entries(store, store.to_path(o.path)))) if o.format == "parts" else o
        for o in _outputs(store, run_id)
    ]
    return RunDetail(_summary(store, run_id, record, None), outputs)


def read_output(
    run_id: str,
    node_id: str,
    flow_id: str | None = None,
    *,
    partition: str | None = None,
    parts: bool = False,
    part: int | None = None,
    base: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Any:
    """The value a run stored for one node (``flow_id`` needed only when the run has several);
    with ``part``, only that part of a streamed output."""
    from dp_io.io_manager import RunScopedIOManager

    store = open_store(base, storage_options)
    check_run_id(run_id)
    matches = [o for o in _outputs(store, run_id, flow_id) if o.node_id == node_id and o.partition == partition]
    if not matches:
        where = f" of flow {flow_id}" if flow_id else ""
        which = f" partition {partition!r}" if partition is not None else ""
        raise OutputNotFoundError(
            f"run {run_id} stored no output for node {node_id!r}{where}{which} under {store.url}; "
            f"see `dp runs show {run_id}`"
        )
    if len({o.flow_id for o in matches}) > 1:
        flows = ", ".join(sorted({o.flow_id for o in matches}))
        raise ValueError(f"node {node_id!r} exists in flows {flows} of run {run_id}: pass the flow")
    manager = RunScopedIOManager(base_url=store.url, storage_options=storage_options or {})
    return manager.load_path(matches[0].path, parts=parts, part=part)


def prune(
    keep_last: int | None = None,
    older_than: timedelta | None = None,
    flow: str | None = None,
    instance: dg.DagsterInstance | None = None,
    *,
    base: str | None = None,
    storage_options: dict[str, Any] | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> PruneReport:
    """Delete stored outputs of runs past retention (see the module docstring for the rules)."""
    check_rules(keep_last, older_than)
    if instance is None:
        instance = dg.DagsterInstance.get()
    store = open_store(base, storage_options)
    now = time.time() if now is None else now
    report = PruneReport(dry_run=dry_run)

    run_ids = _stored_runs(store)
    records = _run_records(instance, run_ids)
    by_flow: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for run_id in run_ids:
        record = records.get(run_id)
        flows = [f for f in _flows_of(store, run_id) if flow is None or f == flow]
        if not flows:
            continue
        if record is not None and record.dagster_run.status not in FINISHED_STATUSES:
            report.skipped_in_progress.append(run_id)
            continue
        started = started_at(record) or store.newest_mtime(store.run_dir(run_id)) or now
        for flow_id in flows:
            by_flow[flow_id].append((started, run_id))

    for flow_id, runs in sorted(by_flow.items()):
        report.pruned += [(run_id, flow_id) for run_id in past_retention(runs, keep_last, older_than, now)]

    latest_cache: dict[tuple[dg.AssetKey, str | None], MaterializationRef | None] = {}
    for run_id, flow_id in report.pruned:
        protected = _latest_paths_in(store, instance, run_id, flow_id, latest_cache)
        for output in _outputs(store, run_id, flow_id):
            path = store.to_path(output.path)
            if path in protected:
                report.kept_latest.append(output.path)
                continue
            report.deleted.append(output.path)
            report.freed_bytes += output.bytes
            if not dry_run:
                store.remove(path)
        if not dry_run:
            flow_dir = posixpath.join(store.run_dir(run_id), _quote(flow_id))
            report.temp_files_removed += len(store.cleanup_tree(flow_dir))
            _remove_empty_dirs(store, flow_dir)
            _remove_empty_dirs(store, store.run_dir(run_id))
    return report


def _quote(segment: str) -> str:
    from dp_io.layout import quote_segment

    return quote_segment(segment)


def _latest_paths_in(
    store: OutputStore,
    instance: dg.DagsterInstance,
    run_id: str,
    flow_id: str,
    cache: dict[tuple[dg.AssetKey, str | None], MaterializationRef | None],
) -> set[str]:
    """Paths in this run that are still some asset's latest materialisation."""
    return {
        store.to_path(ref.path)
        for ref in still_latest_in(instance, run_id, cache)
        if ref.asset_key.path[0] == flow_id and ref.path
    }


def _remove_empty_dirs(store: OutputStore, directory: str) -> None:
    """Remove ``directory`` and empty folders below it, bottom-up; keep anything non-empty."""
    if not store.isdir(directory):
        return
    for name in store.listdir(directory):
        path = posixpath.join(directory, name)
        if store.isdir(path):
            _remove_empty_dirs(store, path)
    if not store.listdir(directory):
        store.remove(directory)


def build_retention_schedule(
    policies: Mapping[str, RetentionPolicy | Mapping[str, Any]],
    *,
    name: str = "dp_retention",
    cron_schedule: str = "0 3 * * *",
    execution_timezone: str | None = None,
    base: str | None = None,
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.RUNNING,
) -> dg.ScheduleDefinition:
    """A daily schedule (with its one-op job ``{name}_job``) that prunes each flow by its policy.

    ``policies`` maps flow id -> :class:`RetentionPolicy` (the spec's ``retention:`` block).
    The base is read when the job runs (``DP_OUTPUTS_URL``/``DP_HOME``) unless given.
    """
    frozen = {flow: RetentionPolicy.model_validate(p).require_rule() for flow, p in sorted(policies.items())}

    @dg.op(name=f"{name}_prune", out={}, description="Prune stored run outputs per flow policy.")
    def prune_op(context):  # unannotated: Dagster inspects the annotation at definition time
        for flow_id, policy in frozen.items():
            report = prune(
                keep_last=policy.keep_last,
                older_than=policy.older_than,
                flow=flow_id,
                instance=context.instance,
                base=base,
            )
            context.log.info(f"flow {flow_id}: {report.summary()}")
            if policy.run_history:
                history = prune_run_history(context.instance, flow_id, policy.keep_last, policy.older_than)
                context.log.info(f"flow {flow_id}: {history.summary()}")

    @dg.job(name=f"{name}_job", tags={"dp/kind": "retention"}, description="Applies retention.")
    def retention_job():
        prune_op()

    return dg.ScheduleDefinition(
        name=name,
        job=retention_job,
        cron_schedule=cron_schedule,
        execution_timezone=execution_timezone,
        default_status=default_status,
        description=f"Prunes stored outputs of {len(frozen)} flow(s) by their retention policy.",
    )
