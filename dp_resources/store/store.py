"""The flow store: versions of flow specs, a published pointer per flow, schema by migrations.

SQLite (a file in ``DP_HOME``) by default, PostgreSQL when ``DP_STORE_URL`` says so. The store
keeps specs it is given; validation happens before (``dp_assets.store_ops``), so the store has no
knowledge of node types.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from dp_resources.store.models import Flow, FlowVersion, Workspace, table_of, utcnow
from dp_resources.store.schema_lock import schema_lock

MIGRATIONS = Path(__file__).parent / "migrations"
HEAD_REVISION = "0004"
#: Execution option of the transactions that write (SQLite begins them IMMEDIATE).
WRITE_OPTION = "dp_store_write"


class FlowNotFound(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def _insert_or_ignore(engine: sa.Engine) -> Any:
    """The dialect's INSERT that can say ``ON CONFLICT DO NOTHING``."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert
    from sqlalchemy.dialects import sqlite

    return sqlite.insert


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
    deleted_at: datetime | None = None

    @property
    def state(self) -> str:
        """``deleted`` (left the code location), ``unpublished`` (stored, not compiled) or
        ``published``."""
        if self.deleted_at is not None:
            return "deleted"
        return "published" if self.published_version else "unpublished"


@dataclass(frozen=True)
class VersionInfo:
    flow_id: str
    version: str
    message: str
    created_at: datetime
    published: bool
    author: str | None = None


@functools.cache
def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            # The driver's own transaction handling (BEGIN only before the first write) is off:
            # ``_begin`` below starts every transaction, so a write takes its lock up front.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            _into_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # A writer reads before it writes (does the version exist?); BEGIN IMMEDIATE takes
            # the write lock first, so writers queue on the busy timeout rather than one failing
            # with "database is locked" when its read snapshot went stale in WAL mode.
            immediate = conn.get_execution_options().get(WRITE_OPTION)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=3)


def _into_wal(cursor: Any, wait_seconds: float = 30.0) -> None:
    """Put the database in WAL mode (kept in the file: later connections find it so).

    Switching a new database to WAL needs an exclusive lock, and SQLite answers "database is
    locked" at once, without its busy timeout, when another process starting at the same moment
    holds one: so the switch is retried for a while. A database already in WAL is left alone.
    """
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class FlowStore:
    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)

    # --- schema ------------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (cheap when it is already there).

        Under the schema lock (``schema_lock``), and asked again once it is held: processes
        starting together on an empty store create it once, the others find it done."""
        if self._at_head():
            return
        with schema_lock(self.engine), self.engine.begin() as conn:
            if self._current_revision(conn) == HEAD_REVISION:
                return
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def is_created(self) -> bool:
        """Whether the schema has been made (a new deployment's empty database has none yet:
        the code location makes it when it first loads); reads only, never creates."""
        with self.engine.connect() as conn:
            return self._current_revision(conn) is not None

    def _at_head(self) -> bool:
        with self.engine.connect() as conn:
            return self._current_revision(conn) == HEAD_REVISION

    @staticmethod
    def _current_revision(conn: sa.Connection) -> str | None:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        bind = self.engine.execution_options(**{WRITE_OPTION: True}) if write else self.engine
        with Session(bind) as session, session.begin():
            yield session

    # --- writing -----------------------------------------------------------------------------

    def save(
        self,
        flow_id: str,
        version: str,
        spec: Mapping[str, Any],
        *,
        workspace: str = "default",
        message: str = "",
        publish: bool = True,
        author: str | None = None,
        layout: Mapping[str, Any] | None = None,
    ) -> SaveResult:
        """Store a version (a no-op when it exists) and optionally publish it, in one transaction.

        Safe when several processes save the same flow or version at once: rows that another
        process wrote first are left alone (``ON CONFLICT DO NOTHING``), never a unique violation,
        and exactly one of them is told ``created`` (and ``published``) for each change."""
        stamp = utcnow()
        insert = _insert_or_ignore(self.engine)
        with self.engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
            conn.execute(insert(table_of(Workspace)).values(name=workspace, created_at=stamp).on_conflict_do_nothing())
            conn.execute(
                insert(table_of(Flow))
                .values(id=flow_id, workspace=workspace, published_version=None, created_at=stamp, updated_at=stamp)
                .on_conflict_do_nothing()
            )
            created = (
                conn.execute(
                    insert(table_of(FlowVersion))
                    .values(
                        flow_id=flow_id,
                        version=version,
                        spec=dict(spec),
                        message=message,
                        created_at=stamp,
                        author=author,
                        layout=dict(layout) if layout else None,
                    )
                    .on_conflict_do_nothing()
                ).rowcount
                == 1
            )
            if not created and layout:
                # Positions are not the spec: redrawing an unchanged flow moves them, not its version.
                versions = table_of(FlowVersion)
                conn.execute(
                    sa.update(versions)
                    .where(versions.c.flow_id == flow_id, versions.c.version == version)
                    .values(layout=dict(layout))
                )
            flows = table_of(Flow)
            published = False
            if publish:
                # A conditional update: of concurrent publishers of one version, one moves the pointer.
                moved = conn.execute(
                    sa.update(flows)
                    .where(
                        flows.c.id == flow_id,
                        sa.or_(flows.c.published_version.is_(None), flows.c.published_version != version),
                    )
                    .values(published_version=version, updated_at=stamp)
                )
                published = moved.rowcount == 1
            if created and not published:
                conn.execute(sa.update(flows).where(flows.c.id == flow_id).values(updated_at=stamp))
            return SaveResult(flow_id, version, created=created, published=published)

    def publish(self, flow_id: str, version: str) -> str:
        """Point the flow at a stored version (a prefix will do); returns the full version."""
        with self.session(write=True) as session:
            flow = self._flow(session, flow_id)
            row = self._version(session, flow_id, version)
            flow.published_version = row.version
            flow.updated_at = utcnow()
            return row.version

    def unpublish(self, flow_id: str) -> bool:
        """The flow stays stored with its versions but is no longer compiled; ``False`` when it
        had no published version."""
        with self.session(write=True) as session:
            flow = self._flow(session, flow_id)
            changed = flow.published_version is not None
            flow.published_version = None
            flow.updated_at = utcnow()
            return changed

    def delete(self, flow_id: str) -> bool:
        """Retire the flow from the code location; its versions (and its runs and kept outputs,
        which live elsewhere) stay, and :meth:`restore` brings it back. ``False`` when it already
        was deleted."""
        return self._set_deleted(flow_id, utcnow())

    def restore(self, flow_id: str) -> bool:
        return self._set_deleted(flow_id, None)

    def _set_deleted(self, flow_id: str, stamp: datetime | None) -> bool:
        with self.session(write=True) as session:
            flow = self._flow(session, flow_id)
            changed = (flow.deleted_at is None) != (stamp is None)
            if changed:
                flow.deleted_at = stamp
                flow.updated_at = utcnow()
            return changed

    # --- reading -----------------------------------------------------------------------------

    def published_specs(self) -> list[tuple[str, str, dict[str, Any]]]:
        """``(flow_id, version, spec)`` of every published flow, in one query."""
        query = (
            sa.select(Flow.id, FlowVersion.version, FlowVersion.spec)
            .join(FlowVersion, (FlowVersion.flow_id == Flow.id) & (FlowVersion.version == Flow.published_version))
            .where(Flow.deleted_at.is_(None))
            .order_by(Flow.id)
        )
        with self.engine.connect() as conn:
            return [(row[0], row[1], row[2]) for row in conn.execute(query)]

    def list_flows(self) -> list[FlowInfo]:
        return self._flow_infos()

    def info(self, flow_id: str) -> FlowInfo:
        found = self._flow_infos(flow_id)
        if not found:
            raise FlowNotFound(f"no flow '{flow_id}' in the store (see `dp list`)")
        return found[0]

    def _flow_infos(self, flow_id: str | None = None) -> list[FlowInfo]:
        counts = sa.select(FlowVersion.flow_id, sa.func.count().label("n")).group_by(FlowVersion.flow_id).subquery()
        query = (
            sa.select(Flow.id, Flow.workspace, Flow.published_version, counts.c.n, Flow.updated_at, Flow.deleted_at)
            .join(counts, counts.c.flow_id == Flow.id, isouter=True)
            .order_by(Flow.id)
        )
        if flow_id is not None:
            query = query.where(Flow.id == flow_id)
        with self.engine.connect() as conn:
            return [FlowInfo(r[0], r[1], r[2], r[3] or 0, r[4], r[5]) for r in conn.execute(query)]

    def history(self, flow_id: str) -> list[VersionInfo]:
        with self.session() as session:
            flow = self._flow(session, flow_id)
            rows = session.scalars(
                sa.select(FlowVersion).where(FlowVersion.flow_id == flow_id).order_by(FlowVersion.id)
            ).all()
            return [
                VersionInfo(flow_id, r.version, r.message, r.created_at, r.version == flow.published_version, r.author)
                for r in rows
            ]

    def get(self, flow_id: str, version: str | None = None) -> tuple[str, dict[str, Any]]:
        """``(version, spec)``; the published version unless one is named (a prefix will do)."""
        with self.session() as session:
            flow = self._flow(session, flow_id)
            wanted = version or flow.published_version
            if wanted is None:
                raise FlowNotFound(f"flow '{flow_id}' has no published version")
            row = self._version(session, flow_id, wanted)
            return row.version, dict(row.spec)

    def layout(self, flow_id: str, version: str) -> dict[str, Any]:
        """The node positions stored with a version (empty when it was not drawn)."""
        with self.session() as session:
            return dict(self._version(session, flow_id, version).layout or {})

    @staticmethod
    def _flow(session: Session, flow_id: str) -> Flow:
        flow = session.get(Flow, flow_id)
        if flow is None:
            raise FlowNotFound(f"no flow '{flow_id}' in the store (see `dp list`)")
        return flow

    @staticmethod
    def _version(session: Session, flow_id: str, version: str) -> FlowVersion:
        # autoescape: a '%' or '_' in what the user typed is a character, not a wildcard.
        query = sa.select(FlowVersion).where(
            FlowVersion.flow_id == flow_id, FlowVersion.version.startswith(version, autoescape=True)
        )
        # PostgreSQL refuses a NUL in a query parameter (an error, not "no rows"); no version has one.
        rows = [] if "\x00" in version else session.scalars(query).all()
        if len(rows) != 1:
            problem = "no" if not rows else "more than one"
            raise FlowNotFound(
                f"flow '{flow_id}' has {problem} version matching {version!r} (see `dp history {flow_id}`)"
            )
        return rows[0]
