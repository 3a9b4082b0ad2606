"""The flow store on SQLite and on the real PostgreSQL, with a clean schema per test."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dp_resources.store import FlowStore
from dp_resources.store.models import Base


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> FlowStore:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        engine = sa.create_engine(url)
        Base.metadata.drop_all(engine)  # every table of the newest schema, whatever a test left
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
        engine.dispose()
    store = FlowStore(url)
    store.upgrade()
    return store
