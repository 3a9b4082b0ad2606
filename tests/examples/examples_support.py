"""Helpers of the example tests: loopback stub services, example flow folders, run metadata.

``StubService`` is the suite's HTTP stub (``tests/support/http_stub.py``): a real HTTP server on
127.0.0.1 whose answers come from a route function, and which records every request it saw.
The examples' external systems (T2A, market data, exchange rates, monitoring, Slack-style webhooks) are
stubbed with it; nothing is mocked inside the platform.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dagster as dg

from tests.support.http_stub import StubServer

ROOT = Path(__file__).resolve().parents[2]
FLOWS = ROOT / "flows"


# StubService: the shared stub of tests/support/http_stub.py, under the name these tests use.
StubService = StubServer


def copy_example(dest: Path, *folders: str, specs: bool = True) -> Path:
    """``flows/<folder>`` of the repository into ``dest`` (specs left out with ``specs=False``)."""
    for folder in folders:
        ignore = None if specs else shutil.ignore_patterns("*.yaml", "*.yml", "*.json")
        shutil.copytree(FLOWS / folder, dest / folder, ignore=ignore, dirs_exist_ok=True)
    return dest


def materializations(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    """``{node id: {metadata key: plain value}}`` of a run's asset materialisations."""
    found: dict[str, dict[str, Any]] = {}
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    for record in records:
        event = record.event_log_entry.asset_materialization
        if event is not None:
            found[event.asset_key.path[-1]] = {k: getattr(v, "value", v) for k, v in event.metadata.items()}
    return found


def log_messages(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    return [entry.user_message for entry in instance.all_logs(run_id)]


def failed_step_messages(result: Any) -> str:
    """Every step failure of an in-process result, for assertion messages."""
    return "\n".join(
        str(e.step_failure_data.error.to_string())
        for e in result.all_events
        if e.is_step_failure and e.step_failure_data and e.step_failure_data.error
    )


def plain_rows(frame: Any, columns: Iterable[str]) -> list[dict[str, Any]]:
    return frame[list(columns)].to_dict(orient="records")
