"""The flow store on SQLite and on the real PostgreSQL, with a clean schema per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from dp_resources.store import FlowStore
from dp_resources.store.models import Base
from tests.support.services import PG_ADMIN_URL, fresh_database, require_service


@pytest.fixture(scope="session")
def store_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of the flow store's own, as in production (docker-compose gives the
    store the `dp_store` database beside Dagster's): the store and Dagster's storages each keep
    an `alembic_version` table, so they cannot share one database."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    with fresh_database(PG_ADMIN_URL, prefix="dp_store_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> FlowStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("store_postgres_url")
        engine = sa.create_engine(url)
        Base.metadata.drop_all(engine)  # every table of the newest schema, whatever a test left
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
    store = FlowStore(url)
    store.upgrade()
    return store
