"""Throwaway PostgreSQL databases for tests (the session's, the deploy stacks', the bench's)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator


@contextlib.contextmanager
def fresh_database(postgres_url: str, prefix: str = "dp_stack") -> Iterator[str]:
    """A new, empty PostgreSQL database on ``postgres_url``'s server (dropped afterwards)."""
    import sqlalchemy as sa

    admin_url = postgres_url.rsplit("/", 1)[0] + "/postgres"
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    # NullPool: a fault test may restart the server in between; no stale pooled connection.
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
