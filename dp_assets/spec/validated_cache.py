"""Validated specs kept by version, so a restart or a second ``dp validate`` does not redo the work.

A flow version is the hash of its canonical spec (``spec.loading.spec_version``), and whether it
validates and compiles depends only on that spec and on the platform's code. So each version
that passed is recorded once, as a row of one SQLite file, ``DP_HOME/cache/validated.db``: the
platform key, the flow id, the version, and as JSON the spec the model was checked with (params
replaced by typed stand-ins, see ``validation._with_placeholders``) and whether it was compiled in
Dagster. The platform key is :func:`platform_key`, a hash of the platform's source files and of
the libraries that decide validation (Dagster, pydantic): a code change reads none of the
earlier records, and the first record written under a new key drops the others.

- The code location restores a published version from its record (the model is built from the
  recorded spec, skipping the graph, template and rule checks) instead of validating it again.
- ``dp validate`` and ``dp publish`` skip compiling in Dagster (and importing it) a version that
  has compiled before; every other check still runs.

One file, not a file per record: a first load of 1,000 flows writes 1,000 records, and a file
created and renamed into place cost 0.5-0.8 ms each on this machine's disk (0.8 s of a 7 s load),
a row in one WAL-mode database about 0.04 ms.

A record is a cache, never the truth: a missing, unreadable or foreign one is ignored, a file that
is not a database is replaced, and a folder that cannot be written costs only the saving. The
records of the store's published versions are also what a Dagster ``StateBackedComponent``
(issue 21) can keep as its state: :meth:`ValidatedSpecs.record` gives one as a JSON-ready dict.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dp_assets.spec.ids import ID_PATTERN

if TYPE_CHECKING:
    from dp_assets.catalog.base import Catalog
    from dp_assets.spec.validation import ValidatedFlow

#: The packages whose code decides what validates and compiles.
PLATFORM_PACKAGES = ("dp_assets", "dp_sensors", "dp_io", "dp_resources", "dp_instance", "dp_settings")
LIBRARIES = ("dagster", "pydantic", "pydantic-core")
_ROOT = Path(__file__).resolve().parents[2]
_FLOW_ID = re.compile(ID_PATTERN)
#: How long a write waits for another process's write (a record is a saving, never worth a stall).
BUSY_SECONDS = 2.0
#: After the file could not be opened, or stayed locked past ``BUSY_SECONDS``, records are left
#: alone this long: a load of 1,000 flows must not wait on each of them in turn.
BACK_OFF_SECONDS = 30.0
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS records (platform TEXT NOT NULL, flow TEXT NOT NULL, version TEXT NOT NULL, "
    "record TEXT NOT NULL, PRIMARY KEY (platform, flow, version))"
)

#: Connections a forked child inherited from its parent: kept open, never used (see _database).
_INHERITED: list[sqlite3.Connection] = []
#: A compiled record replaces any other; a record that was not compiled never replaces one.
_INSERT = {
    True: "INSERT OR REPLACE INTO records (platform, flow, version, record) VALUES (?, ?, ?, ?)",
    False: "INSERT OR IGNORE INTO records (platform, flow, version, record) VALUES (?, ?, ?, ?)",
}


@functools.cache
def platform_key() -> str:
    """A hash of the platform's source files (path, size, modification time) and library versions:
    any change to the code gives a new key, and so empty records."""
    digest = hashlib.sha256()
    for library in LIBRARIES:
        try:
            digest.update(f"{library}={metadata.version(library)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{library}=?\n".encode())
    for package in PLATFORM_PACKAGES:
        for folder, dirs, files in os.walk(_ROOT / package):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(f for f in files if f.endswith(".py")):
                stat = os.stat(os.path.join(folder, name))
                digest.update(f"{folder}/{name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class ValidatedSpecs:
    """The records of this platform key in the database ``folder/validated.db`` (None: keep nothing).

    Safe to share between threads (one connection behind a lock) and across a fork (a child
    opens its own connection)."""

    FILE = "validated.db"

    def __init__(self, folder: Path | None):
        self.path = folder / self.FILE if folder is not None else None
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._pid = 0
        self._pruned = False
        self._resume_at = 0.0  # monotonic time before which records are left alone

    @classmethod
    def for_home(cls, home: Path) -> ValidatedSpecs:
        return cls(home / "cache")

    @staticmethod
    def _names_a_record(flow_id: str, version: str) -> bool:
        # The location asks with a store row's id and version before validating the spec: what is
        # not a flow id and a hash names no record (and is never sent to the database).
        return isinstance(version, str) and version.isalnum() and bool(_FLOW_ID.fullmatch(flow_id))

    @contextmanager
    def _database(self) -> Iterator[sqlite3.Connection | None]:
        """The connection, under the lock; None when there is no file to keep records in."""
        if self._pid != os.getpid():
            # A forked child (a warm run worker): the parent's connection must not be used across
            # the fork, and its lock may have been held by a thread that does not exist here. The
            # inherited connection is kept, never closed: closing it here could checkpoint or
            # remove the WAL files the parent is still using (SQLAlchemy's pools do the same).
            if self._connection is not None:
                _INHERITED.append(self._connection)
            self._lock, self._connection, self._pid = threading.Lock(), None, os.getpid()
        with self._lock:
            if self.path is None or time.monotonic() < self._resume_at:
                yield None
                return
            if self._connection is None:
                self._connection = self._open(self.path)
                if self._connection is None:
                    self._resume_at = time.monotonic() + BACK_OFF_SECONDS
            try:
                yield self._connection
            except sqlite3.OperationalError:  # locked past BUSY_SECONDS by another process
                self._resume_at = time.monotonic() + BACK_OFF_SECONDS
                raise

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection | None:
        """The database, made when missing and replaced when it is not one; None if neither works."""
        for attempt in range(2):
            connection = None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None, check_same_thread=False)
                if connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash loses the last rows, never the file
                connection.execute(_SCHEMA)
                return connection
            except sqlite3.OperationalError:  # before DatabaseError, its base class
                _close(connection)
                return None  # locked by another process, or cannot be opened: asked again after BACK_OFF_SECONDS
            except sqlite3.DatabaseError:
                _close(connection)
                if attempt == 0:
                    path.unlink(missing_ok=True)  # not a database, or a broken one: a cache starts again
            except OSError:
                _close(connection)
                return None
        return None

    def get(self, flow_id: str, version: str) -> dict[str, Any] | None:
        """The record of ``flow_id`` at ``version``, or None."""
        if not self._names_a_record(flow_id, version):
            return None
        try:
            with self._database() as db:
                row = (
                    None
                    if db is None
                    else db.execute(
                        "SELECT record FROM records WHERE platform = ? AND flow = ? AND version = ?",
                        (platform_key(), flow_id, version),
                    ).fetchone()
                )
            record = json.loads(row[0]) if row is not None else None
        except (sqlite3.Error, ValueError):
            return None
        if not isinstance(record, dict) or record.get("flow") != flow_id or record.get("version") != version:
            return None
        return record

    def versions(self) -> list[tuple[str, str]]:
        """Every (flow, version) recorded under this platform key."""
        try:
            with self._database() as db:
                rows = (
                    []
                    if db is None
                    else db.execute(
                        "SELECT flow, version FROM records WHERE platform = ? ORDER BY flow, version", (platform_key(),)
                    ).fetchall()
                )
        except sqlite3.Error:
            return []
        return [(flow, version) for flow, version in rows]

    def compiled(self, flow_id: str, version: str) -> bool:
        record = self.get(flow_id, version)
        return record is not None and record.get("compiles") is True

    @staticmethod
    def record(validated: ValidatedFlow, checked: Mapping[str, Any], *, compiles: bool) -> dict[str, Any]:
        return {
            "flow": validated.id,
            "version": validated.version,
            "platform": platform_key(),
            "checked": checked,
            "compiles": compiles,
        }

    def put(self, validated: ValidatedFlow, checked: Mapping[str, Any], *, compiles: bool) -> None:
        """Record a version that passed (a compiled one is never downgraded to not compiled)."""
        if not self._names_a_record(validated.id, validated.version):
            return
        try:
            text = json.dumps(self.record(validated, checked, compiles=compiles), sort_keys=True)
            with self._database() as db:
                if db is None:
                    return
                if not self._pruned:  # the records of earlier platform code are never read again
                    db.execute("DELETE FROM records WHERE platform != ?", (platform_key(),))
                    self._pruned = True
                db.execute(_INSERT[compiles], (platform_key(), validated.id, validated.version, text))
        except (sqlite3.Error, TypeError, ValueError):
            pass  # a cache: a folder that cannot be written, or a spec JSON cannot hold, costs the saving

    def restore(self, record: Mapping[str, Any], raw: dict[str, Any], catalog: Catalog) -> ValidatedFlow | None:
        """The validated flow of a stored spec from its record; None when the record does not fit."""
        from dp_assets.spec.model import flow_model
        from dp_assets.spec.validation import ValidatedFlow, types_used

        checked = record.get("checked")
        if not isinstance(checked, dict) or checked.get("id") != record.get("flow"):
            return None
        try:
            flow = flow_model(catalog, types_used(checked, catalog)).model_validate(checked)
        except Exception:  # noqa: BLE001 - a record that no longer fits is validated afresh
            return None
        return ValidatedFlow(flow=flow, raw=raw, version=str(record["version"]), schemas={})


def _close(connection: sqlite3.Connection | None) -> None:
    if connection is not None:
        connection.close()
