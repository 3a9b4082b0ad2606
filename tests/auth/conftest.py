"""The access store runs on the flow store's database: the same SQLite and PostgreSQL fixtures."""

from tests.store.conftest import store, store_postgres_url

__all__ = ["store", "store_postgres_url"]
