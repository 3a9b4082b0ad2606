"""Tables of the flow store: workspaces, flows, and immutable flow versions."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """A model's Core table: SQLAlchemy types ``__table__`` as any FromClause, while Core's
    ``update`` and the dialects' ``insert`` take the Table it is."""
    return Base.metadata.tables[model.__tablename__]


class Workspace(Base):
    __tablename__ = "dp_workspaces"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Flow(Base):
    __tablename__ = "dp_flows"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace: Mapped[str] = mapped_column(ForeignKey("dp_workspaces.name"), index=True)
    published_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: Set by ``dp delete``: the flow leaves the code location; its versions, runs and kept
    #: outputs stay, and ``dp restore`` clears it.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FlowVersion(Base):
    """A version is written once and never changed; publishing only moves the flow's pointer."""

    __tablename__ = "dp_flow_versions"
    __table_args__ = (UniqueConstraint("flow_id", "version", name="uq_flow_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flow_id: Mapped[str] = mapped_column(ForeignKey("dp_flows.id"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    spec: Mapped[dict] = mapped_column(JSON)
    message: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Who stored it (the proxy's user behind the designer), when known.
    author: Mapped[str | None] = mapped_column(String(256), nullable=True)
    #: Node positions drawn in the designer; beside the spec, so they never change the version.
    layout: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class FlowDraft(Base):
    """The designer's work in progress on a flow: any document, valid or not, never compiled.

    One per flow, replaced on every save; a publish stores a version and leaves the draft for
    the designer to discard. ``base_version`` is the version the draft was started from."""

    __tablename__ = "dp_flow_drafts"
    flow_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    spec: Mapped[dict] = mapped_column(JSON)
    layout: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    base_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    author: Mapped[str | None] = mapped_column(String(256), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FileImport(Base):
    """What the code location last imported from one spec file of ``DP_FLOWS_DIR``.

    A file is read again only when its size or modification time changed, and imported again
    only when its content hash changed: an unchanged file never replaces a version published
    since by ``dp publish`` or another client. ``base_version`` is the flow's published version
    right after this file was last applied; when the pointer has moved since and the file
    changed too, the file's version is kept unpublished and ``conflict_with`` names the
    published one until one of the two wins (docs/flow-store.md)."""

    __tablename__ = "dp_file_imports"
    path: Mapped[str] = mapped_column(String(1024), primary_key=True)
    flow_id: Mapped[str] = mapped_column(String(64), index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[str] = mapped_column(String(64))
    base_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    conflict_with: Mapped[str | None] = mapped_column(String(64), nullable=True)
    missing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RoleGrant(Base):
    """A role given to a user, a group or a service token, on a workspace or one of its flows.

    ``flow_id`` is ``""`` for the whole workspace (not NULL, so that the unique key holds: one
    grant per identity and place, replaced when the role changes). The decision is made by
    ``dp_auth.permissions``; this is only what is stored (migration 0004)."""

    __tablename__ = "dp_role_grants"
    __table_args__ = (UniqueConstraint("kind", "name", "workspace", "flow_id", name="uq_role_grant"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(256))
    workspace: Mapped[str] = mapped_column(String(64), index=True)
    flow_id: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16))
    granted_by: Mapped[str] = mapped_column(String(256))
    granted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ServiceToken(Base):
    """A token for another tool: only a hash of its secret is kept; revoking keeps the row."""

    __tablename__ = "dp_service_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(256), default="")
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    """Who did what, when, to which flow: publishes, deletes, role changes, tokens, launches."""

    __tablename__ = "dp_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(32))
    workspace: Mapped[str] = mapped_column(String(64), default="")
    flow_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)
