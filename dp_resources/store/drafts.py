"""The designer's drafts: one work-in-progress document per flow, in the store, never compiled.

A draft may be invalid (it is what someone is drawing); it is neither a version nor published,
so the code location never sees it. Publishing goes through ``dp_assets.store_api`` like any
spec; the designer discards the draft after.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dp_resources.store.models import FlowDraft, table_of, utcnow
from dp_resources.store.store import WRITE_OPTION, FlowStore, _insert_or_ignore


@dataclass(frozen=True)
class Draft:
    flow_id: str
    spec: dict[str, Any]
    layout: dict[str, Any]
    base_version: str | None
    author: str | None
    updated_at: datetime


def put_draft(
    store: FlowStore,
    flow_id: str,
    spec: Mapping[str, Any],
    *,
    layout: Mapping[str, Any] | None = None,
    base_version: str | None = None,
    author: str | None = None,
) -> Draft:
    """Save (replace) the flow's draft in one transaction."""
    stamp = utcnow()
    drafts = table_of(FlowDraft)
    values = {
        "spec": dict(spec),
        "layout": dict(layout or {}),
        "base_version": base_version,
        "author": author,
        "updated_at": stamp,
    }
    # One upsert: an update-then-insert lets two first saves of one flow race to the primary key.
    upsert = _insert_or_ignore(store.engine)(drafts).values(flow_id=flow_id, **values)
    with store.engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        conn.execute(upsert.on_conflict_do_update(index_elements=[drafts.c.flow_id], set_=values))
    return Draft(flow_id, dict(spec), dict(layout or {}), base_version, author, stamp)


def get_draft(store: FlowStore, flow_id: str) -> Draft | None:
    with store.session() as session:
        row = session.get(FlowDraft, flow_id)
        if row is None:
            return None
        return Draft(row.flow_id, dict(row.spec), dict(row.layout or {}), row.base_version, row.author, row.updated_at)


def discard_draft(store: FlowStore, flow_id: str) -> bool:
    drafts = table_of(FlowDraft)
    with store.engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        return conn.execute(sa.delete(drafts).where(drafts.c.flow_id == flow_id)).rowcount == 1


def draft_flow_ids(store: FlowStore) -> dict[str, datetime]:
    """Flow id -> when its draft was last saved, for every flow with a draft."""
    drafts = table_of(FlowDraft)
    with store.engine.connect() as conn:
        return {row[0]: row[1] for row in conn.execute(sa.select(drafts.c.flow_id, drafts.c.updated_at))}
