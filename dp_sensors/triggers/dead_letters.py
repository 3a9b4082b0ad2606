"""Dead letters of a ``ForEach`` fan-out: which items of a run failed, and re-running only those.

``ForEach`` (``dp_assets/catalog/nodes/subchains.py``) records on its materialisation the
metadata ``items``, ``items_failed`` and ``failed_items`` (one entry per failed item: its key,
the body node, the error). ``dp retry-failed RUN`` reads them here and launches the flow again
with RUN's params and the run tag ``dp/retry_items: RUN``; a ``ForEach`` in a run with that tag
is to take only the items whose keys failed in RUN (see docs/triggers.md, "Dead letters").
"""

from __future__ import annotations

from typing import Any

import dagster as dg

RETRY_ITEMS_TAG = "dp/retry_items"
FAILED_ITEMS_KEY = "failed_items"


def failed_items_of(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """``{node id: [failed item, ...]}`` recorded by the run's ``ForEach`` nodes."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
    ).records
    failed: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        materialization = record.event_log_entry.asset_materialization
        if materialization is None:
            continue
        entry = materialization.metadata.get(FAILED_ITEMS_KEY)
        items: Any = getattr(entry, "value", entry)  # JSON metadata: ForEach records a list of dicts
        if items:
            failed[materialization.asset_key.path[-1]] = [dict(item) for item in items]
    return failed
