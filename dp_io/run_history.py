"""Deleting the Dagster history of a flow's old runs: its run records and event logs.

Dagster keeps every run and every event it logged (about 7 event-log rows per node-run with a
flow as one step, docs/benchmarks.md) for ever; open-source Dagster has no run retention of its
own. A flow's ``retention: {run_history: true}`` (or ``dp runs prune --run-history``) deletes
the runs that its retention rule judges old, with ``DagsterInstance.delete_run``, under the
same conservative rules as the outputs (``dp_io.retention``, rule in ``dp_io.retention_policy``):

- only finished runs (success, failure, canceled) are judged or counted towards ``keep_last``;
- with both ``keep_last`` and ``older_than``, a run is deleted only when it is beyond the last N
  runs of its flow *and* older than the age;
- a run that still holds the latest materialisation of one of its assets is kept, because the
  UI and cross-run reads point at it (a later run of a subset may not have materialised every
  asset again).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import dagster as dg

from dp_io.lookup import MaterializationRef, still_latest_in
from dp_io.retention_policy import check_rules, past_retention

#: The tag of a run of one flow's assets, whatever its job (dp_instance.run_coordinator.FLOW_TAG).
FLOW_TAG = "dp/flow"
# The runs retention judges and counts: the others may still write outputs or events.
FINISHED_STATUSES = frozenset({dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED})


def started_at(record: Any) -> float | None:
    """When a run record's run started (or was created), as a timestamp."""
    if record is None:
        return None
    if record.start_time:
        return float(record.start_time)
    created = record.create_timestamp
    return created.timestamp() if created else None


@dataclass
class HistoryReport:
    dry_run: bool = False
    deleted: list[str] = field(default_factory=list)  # run ids
    kept_latest: list[str] = field(default_factory=list)  # old runs kept for a latest materialisation

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"run history: {verb} {len(self.deleted)} run(s) with their event logs; kept "
            f"{len(self.kept_latest)} old run(s) that hold an asset's latest materialisation"
        )


def prune_run_history(
    instance: dg.DagsterInstance,
    flow: str,
    keep_last: int | None = None,
    older_than: timedelta | None = None,
    *,
    dry_run: bool = False,
    now: float | None = None,
) -> HistoryReport:
    """Delete the finished runs of ``flow`` past retention (its job's, and those of its assets
    under another job, tagged ``dp/flow``), with their event logs."""
    check_rules(keep_last, older_than)
    now = time.time() if now is None else now
    report = HistoryReport(dry_run=dry_run)
    latest: dict[tuple[dg.AssetKey, str | None], MaterializationRef | None] = {}
    finished = list(FINISHED_STATUSES)
    # The flow's job, and the runs of its assets under another job (a backfill, the UI's
    # Materialize: Dagster's asset job) that carry the flow's tag; a selection over several
    # flows is tagged dp/flows and judged by none of them.
    records = {
        record.dagster_run.run_id: record
        for runs_filter in (
            dg.RunsFilter(job_name=flow, statuses=finished),
            dg.RunsFilter(tags={FLOW_TAG: flow}, statuses=finished),
        )
        for record in instance.get_run_records(runs_filter)
    }
    runs = [(started_at(record) or now, run_id) for run_id, record in records.items()]
    for run_id in past_retention(runs, keep_last, older_than, now):
        if still_latest_in(instance, run_id, latest):  # a deleted run never held one: never stale
            report.kept_latest.append(run_id)
            continue
        report.deleted.append(run_id)
        if not dry_run:
            instance.delete_run(run_id)
    return report
