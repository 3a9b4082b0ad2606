"""A run event is stored after the run's status it reports.

Dagster's ``handle_new_event`` stores a run event (RUN_START, RUN_FAILURE, ...) first, then
updates the run's status, then, for a failure, adds the ``dagster/will_retry`` tag: three
separate writes. The run-retry daemon reads failure events past its cursor and asks each event's
run whether it will be retried. Read in between, the run is not yet FAILURE and has no tag: it is
not retried, and the cursor moves past its event for good. After a database outage, when each
write waits before it is retried, the gap is wide (F4 25 s in docs/deploy.md failed so); on a
busy machine it is not zero either.

An event-log storage of ours writes the status (and the tag) itself before the event, and says
so with ``handles_run_events_in_store_event``, which makes Dagster skip its own later writes.
Only when the storage belongs to an instance: a storage used on its own has no run storage and
no retry settings to consult.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster._core.events import RunFailureReason
from dagster._core.execution.retries import auto_reexecution_should_retry_run
from dagster._core.storage.tags import RUN_FAILURE_REASON_TAG, WILL_RETRY_TAG
from dagster._time import datetime_from_timestamp

if TYPE_CHECKING:
    from dagster import DagsterInstance
    from dagster._core.events.log import EventLogEntry


def is_run_event(event: EventLogEntry) -> bool:
    return event.is_dagster_event and event.get_dagster_event().is_job_event


def write_run_status(instance: DagsterInstance, event: EventLogEntry) -> None:
    """What Dagster does after storing a run event, done before it: the run's status, and for a
    failure with run retries on, whether the run will be retried."""
    dagster_event = event.get_dagster_event()
    instance.handle_run_event(event.run_id, dagster_event, datetime_from_timestamp(event.timestamp))
    if not (dagster_event.is_run_failure and instance.run_retries_enabled):
        return
    run = instance.get_run_by_id(event.run_id)
    if run is None:
        return
    reason = run.tags.get(RUN_FAILURE_REASON_TAG)
    will_retry = auto_reexecution_should_retry_run(instance, run, RunFailureReason(reason) if reason else None)
    instance.add_run_tags(event.run_id, {WILL_RETRY_TAG: str(will_retry).lower()})
