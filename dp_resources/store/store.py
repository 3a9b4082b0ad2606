"""The flow store: versions of flow specs, a published pointer per flow, schema by migrations.

SQLite (a file in ``DP_HOME``) by default, PostgreSQL when ``DP_STORE_URL`` says so. The store
keeps specs it is given; validation happens before (``dp_assets.store_ops``), so the store has no
knowledge of node types.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dp_resources.store.models import Flow, FlowVersion, Workspace, utcnow

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0001"


class FlowNotFound(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class SaveResult:
    flow_id: str
    version: str
    created: bool
    published: bool


@dataclass(frozen=True)
class FlowInfo:
    id: str
    workspace: str
    published_version: str | None
    versions: int
    updated_at: datetime


@dataclass(frozen=True)
class VersionInfo:
    flow_id: str
    version: str
    message: str
    created_at: datetime
    published: bool


@functools.cache
def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=3)


class FlowStore:
    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)

    # --- schema ------------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (cheap when it is already there)."""
        with self.engine.begin() as conn:
            if self._current_revision(conn) == HEAD_REVISION:
                return
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    @staticmethod
    def _current_revision(conn: sa.Connection) -> str | None:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine) as session, session.begin():
            yield session

    # --- writing -----------------------------------------------------------------------------

    def save(
        self, flow_id: str, version: str, spec: Mapping[str, Any], *, workspace: str = "default",
        message: str = "", publish: bool = True,
    ) -> SaveResult:
        """Store a version (a no-op when it exists) and optionally publish it."""
        try:
            return self._save(flow_id, version, spec, workspace, message, publish)
        except IntegrityError:
            # A concurrent loader stored the same version first; that is the same outcome.
            return self._save(flow_id, version, spec, workspace, message, publish)

    def _save(self, flow_id: str, version: str, spec: Mapping[str, Any], workspace: str,
              message: str, publish: bool) -> SaveResult:
        with self.session() as session:
            if session.get(Workspace, workspace) is None:
                session.add(Workspace(name=workspace))
                session.flush()
            flow = session.get(Flow, flow_id)
            if flow is None:
                flow = Flow(id=flow_id, workspace=workspace)
                session.add(flow)
                session.flush()
            exists = session.scalar(
                sa.select(FlowVersion.id).where(FlowVersion.flow_id == flow_id, FlowVersion.version == version)
            )
            if exists is None:
                session.add(FlowVersion(flow_id=flow_id, version=version, spec=dict(spec), message=message))
            published = publish and flow.published_version != version
            if published:
                flow.published_version = version
            if published or exists is None:
                flow.updated_at = utcnow()
            return SaveResult(flow_id, version, created=exists is None, published=published)

    def publish(self, flow_id: str, version: str) -> None:
        with self.session() as session:
            flow = self._flow(session, flow_id)
            self._version(session, flow_id, version)
            flow.published_version = version
            flow.updated_at = utcnow()

    # --- reading -----------------------------------------------------------------------------

    def published_specs(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(flow_id, version, spec)`` of every published flow, in one query."""
        query = (
            sa.select(Flow.id, FlowVersion.version, FlowVersion.spec)
            .join(FlowVersion, (FlowVersion.flow_id == Flow.id) & (FlowVersion.version == Flow.published_version))
            .order_by(Flow.id)
        )
        with self.engine.connect() as conn:
            return [(row[0], row[1], row[2]) for row in conn.execute(query)]

    def list_flows(self) -> list[FlowInfo]:
        counts = (
            sa.select(FlowVersion.flow_id, sa.func.count().label("n"))
            .group_by(FlowVersion.flow_id).subquery()
        )
        query = (
            sa.select(Flow.id, Flow.workspace, Flow.published_version, counts.c.n, Flow.updated_at)
            .join(counts, counts.c.flow_id == Flow.id, isouter=True).order_by(Flow.id)
        )
        with self.engine.connect() as conn:
            return [FlowInfo(r[0], r[1], r[2], r[3] or 0, r[4]) for r in conn.execute(query)]

    def history(self, flow_id: str) -> list[VersionInfo]:
        with self.session() as session:
            flow = self._flow(session, flow_id)
            rows = session.scalars(
                sa.select(FlowVersion).where(FlowVersion.flow_id == flow_id).order_by(FlowVersion.id)
            ).all()
            return [VersionInfo(flow_id, r.version, r.message, r.created_at,
                                r.version == flow.published_version) for r in rows]

    def get(self, flow_id: str, version: str | None = None) -> tuple[str, dict[str, Any]]:
        """``(version, spec)``; the published version unless one is named (a prefix will do)."""
        with self.session() as session:
            flow = self._flow(session, flow_id)
            wanted = version or flow.published_version
            if wanted is None:
                raise FlowNotFound(f"flow '{flow_id}' has no published version")
            row = self._version(session, flow_id, wanted)
            return row.version, dict(row.spec)

    @staticmethod
    def _flow(session: Session, flow_id: str) -> Flow:
        flow = session.get(Flow, flow_id)
        if flow is None:
            raise FlowNotFound(f"no flow '{flow_id}' in the store (see `dp list`)")
        return flow

    @staticmethod
    def _version(session: Session, flow_id: str, version: str) -> FlowVersion:
        rows = session.scalars(
            sa.select(FlowVersion).where(FlowVersion.flow_id == flow_id, FlowVersion.version.startswith(version))
        ).all()
        if len(rows) != 1:
            problem = "no" if not rows else "more than one"
            raise FlowNotFound(f"flow '{flow_id}' has {problem} version matching '{version}' (see `dp history {flow_id}`)")
        return rows[0]
