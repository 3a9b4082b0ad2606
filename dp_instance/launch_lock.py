"""The lock every process holds while it decides whether a run may start now (and while it queues
one), so that two launches checked at once cannot both take the last free slot
(``dp_instance/run_coordinator.py`` says what is checked under it).

The platform's own run storages provide it: ``EmbeddedRunStorage`` (SQLite) as a file lock beside
``runs.db``, ``ResilientPostgresRunStorage`` as a PostgreSQL advisory lock. Both are released when
the holder dies (the file's lock by the kernel, the advisory lock with the session), so a killed
process never leaves the queue locked. A storage without ``launch_lock`` (Dagster's own) gives the
coordinator no lock, and runs are then always queued.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol, runtime_checkable

import sqlalchemy as sa
from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

#: Longest wait for the lock. It is held for a few queries and one write; a wait this long means
#: a holder is stuck, and the run is queued instead (the daemon starts it within the limits).
LAUNCH_LOCK_TIMEOUT_SECONDS = 30.0
#: The advisory lock's key: any fixed 64-bit number no other code of this database uses
#: (the first 8 bytes of sha256("dp-platform run queue")).
ADVISORY_LOCK_KEY = 0x2F0A6C1D9E4B7358
LOCK_FILE = ".dp-launch.lock"


@runtime_checkable
class HoldsLaunchLock(Protocol):
    def launch_lock(self) -> AbstractContextManager[bool]:
        """Held while a launch is decided; yields False when it could not be had in time."""
        ...


@contextmanager
def file_launch_lock(folder: str) -> Iterator[bool]:
    """The lock file ``LOCK_FILE`` in ``folder`` (the embedded default's ``runs.db`` folder)."""
    lock = FileLock(os.path.join(folder, LOCK_FILE), timeout=LAUNCH_LOCK_TIMEOUT_SECONDS)
    try:
        lock.acquire()
    except Timeout:
        log.warning("the run queue's lock %s was not free within %.0f s", lock.lock_file, LAUNCH_LOCK_TIMEOUT_SECONDS)
        acquired = False
    else:
        acquired = True
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


@contextmanager
def advisory_launch_lock(engine: sa.Engine) -> Iterator[bool]:
    """A session-level advisory lock on a connection of its own from ``engine``'s pool."""
    with engine.connect() as conn:
        # lock_timeout bounds the wait (the engine is autocommit: SET applies to the session,
        # so it is reset before the connection goes back to the pool).
        conn.execute(sa.text(f"SET lock_timeout = '{int(LAUNCH_LOCK_TIMEOUT_SECONDS * 1000)}ms'"))
        try:
            conn.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        except sa.exc.OperationalError:
            log.warning("the run queue's advisory lock was not free within %.0f s", LAUNCH_LOCK_TIMEOUT_SECONDS)
            conn.invalidate()  # the failed statement may have left the session unusable
            acquired = False
        else:
            acquired = True
        if not acquired:
            yield False
            return
        try:
            yield True
        finally:
            try:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY})
                conn.execute(sa.text("RESET lock_timeout"))
            except sa.exc.DBAPIError:
                # The session is gone or broken, and its lock with it: never hand it back held.
                conn.invalidate()
