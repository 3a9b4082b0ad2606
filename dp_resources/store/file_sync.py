"""The rules by which spec files enter the store: the store decides what is published.

A spec file of ``DP_FLOWS_DIR`` is imported when its content changed since it was last
imported (its path, size, modification time and content hash are recorded in
``dp_file_imports``), never because it is there: so ``dp publish`` of an edited flow, or a
version published by another client, is never undone by an unchanged file. When a file changed
AND the flow's published version moved since the file was last applied, nothing is guessed: the
published version stays, the file's version is stored unpublished, and the conflict is recorded
until one of the two wins (the file's version is published, or the file is changed to the
published one). Every decision is taken in one write transaction with the flow's row locked, so
two code servers loading at once decide once.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from dp_resources.store.models import FileImport, Flow, FlowVersion, Workspace, table_of, utcnow
from dp_resources.store.store import WRITE_OPTION, FlowStore, _insert_or_ignore

#: What ``conflict_with`` holds when the flow was unpublished since the file was last applied.
UNPUBLISHED = "unpublished"


class Outcome(enum.Enum):
    PUBLISHED = "published"  # the file's version is now the published one
    RECORDED = "recorded"  # the file was new to the store's records; its version already published
    CONFLICT = "conflict"  # kept the published version; the file's version stored unpublished
    FLOW_DELETED = "flow deleted"  # the flow was retired with `dp delete`; the file's version stored


@dataclass(frozen=True)
class FileRecord:
    path: str
    flow_id: str
    content_hash: str
    size: int
    mtime_ns: int
    version: str
    base_version: str | None
    conflict_with: str | None
    missing_since: datetime | None

    def same_stat(self, size: int, mtime_ns: int) -> bool:
        return self.size == size and self.mtime_ns == mtime_ns


@dataclass(frozen=True)
class FileChange:
    path: str
    content_hash: str
    size: int
    mtime_ns: int
    flow_id: str
    version: str
    spec: Mapping[str, Any]
    message: str


@dataclass(frozen=True)
class SyncResult:
    outcome: Outcome
    flow_id: str
    file_version: str
    published_version: str | None


def file_records(store: FlowStore) -> dict[str, FileRecord]:
    """Every recorded file, by path, in one query."""
    table = table_of(FileImport)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(*(table.c[name] for name in _RECORD_COLUMNS))).all()
    return {row[0]: FileRecord(*row) for row in rows}


_RECORD_COLUMNS = (
    "path",
    "flow_id",
    "content_hash",
    "size",
    "mtime_ns",
    "version",
    "base_version",
    "conflict_with",
    "missing_since",
)


def apply_change(store: FlowStore, change: FileChange) -> SyncResult:
    """Import a file whose content is new to the store's records (see the module docstring)."""
    stamp = utcnow()
    insert = _insert_or_ignore(store.engine)
    flows, files = table_of(Flow), table_of(FileImport)
    with store.engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        conn.execute(insert(table_of(Workspace)).values(name="default", created_at=stamp).on_conflict_do_nothing())
        new_flow = (
            conn.execute(
                insert(flows)
                .values(
                    id=change.flow_id, workspace="default", published_version=None, created_at=stamp, updated_at=stamp
                )
                .on_conflict_do_nothing()
            ).rowcount
            == 1
        )
        flow = conn.execute(
            _locked(store, sa.select(flows.c.published_version, flows.c.deleted_at).where(flows.c.id == change.flow_id))
        ).one()
        conn.execute(
            insert(table_of(FlowVersion))
            .values(
                flow_id=change.flow_id,
                version=change.version,
                spec=dict(change.spec),
                message=change.message,
                created_at=stamp,
            )
            .on_conflict_do_nothing()
        )
        record = conn.execute(
            _locked(store, sa.select(files.c.base_version, files.c.flow_id).where(files.c.path == change.path))
        ).one_or_none()
        published = flow.published_version
        # The version this file last left published; a file new to the records of an existing
        # flow has none, so any published version other than its own is someone else's.
        base = record.base_version if record is not None and record.flow_id == change.flow_id else None
        known = record is not None and record.flow_id == change.flow_id
        if flow.deleted_at is not None:
            outcome, conflict = Outcome.FLOW_DELETED, None
        elif published == change.version:
            outcome, conflict, base = Outcome.RECORDED, None, change.version
        elif new_flow or (known and base is not None and published == base):
            outcome, conflict, base = Outcome.PUBLISHED, None, change.version
            conn.execute(
                sa.update(flows)
                .where(flows.c.id == change.flow_id)
                .values(published_version=change.version, updated_at=stamp)
            )
            published = change.version
        else:
            outcome, conflict = Outcome.CONFLICT, published or UNPUBLISHED
        values = dict(
            flow_id=change.flow_id,
            content_hash=change.content_hash,
            size=change.size,
            mtime_ns=change.mtime_ns,
            version=change.version,
            base_version=base,
            conflict_with=conflict,
            missing_since=None,
            imported_at=stamp,
        )
        if record is None:
            conn.execute(insert(files).values(path=change.path, **values).on_conflict_do_nothing())
        else:
            conn.execute(sa.update(files).where(files.c.path == change.path).values(**values))
        return SyncResult(outcome, change.flow_id, change.version, published)


def revisit(store: FlowStore, record: FileRecord, size: int, mtime_ns: int) -> FileRecord:
    """An unchanged file seen again: remember a new modification time (so the next load does not
    hash it again), clear ``missing_since``, and settle its conflict once the published version
    is the file's (it won) or moves on (the conflict now names the new one)."""
    flows, files = table_of(Flow), table_of(FileImport)
    with store.engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        published = conn.execute(sa.select(flows.c.published_version).where(flows.c.id == record.flow_id)).scalar()
        values: dict[str, Any] = {"size": size, "mtime_ns": mtime_ns, "missing_since": None}
        if record.conflict_with is not None:
            if published == record.version:
                values.update(conflict_with=None, base_version=record.version)
            else:
                values["conflict_with"] = published or UNPUBLISHED
        conn.execute(sa.update(files).where(files.c.path == record.path).values(**values))
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.select(*(files.c[name] for name in _RECORD_COLUMNS)).where(files.c.path == record.path)
        ).one()
    return FileRecord(*row)


def mark_missing(store: FlowStore, paths: list[str]) -> list[str]:
    """Record that these files are gone from the folder; returns the ones gone since this load
    (reported once with what to do)."""
    if not paths:
        return []
    files = table_of(FileImport)
    with store.engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        newly = (
            conn.execute(sa.select(files.c.path).where(files.c.path.in_(paths), files.c.missing_since.is_(None)))
            .scalars()
            .all()
        )
        if newly:
            conn.execute(sa.update(files).where(files.c.path.in_(newly)).values(missing_since=utcnow()))
    return sorted(newly)


def _locked(store: FlowStore, query: sa.Select) -> sa.Select:
    # PostgreSQL: the row stays locked to the end of the transaction, so a second code server
    # importing the same file waits and then finds the decision taken. SQLite serialises
    # writers already (the write transaction begins IMMEDIATE).
    return query.with_for_update() if store.engine.dialect.name == "postgresql" else query
