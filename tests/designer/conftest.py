"""The designer's API in process (Starlette's TestClient) over the real flow store: SQLite and
the real PostgreSQL, a clean schema per test (the store's own fixture)."""

from __future__ import annotations

import socket

import pytest
from starlette.testclient import TestClient

from dp_assets.catalog import default_catalog
from dp_assets.store_api import FlowStoreAPI
from dp_designer.app import build_app
from dp_designer.runs_api import RunsService
from tests.store.conftest import store, store_postgres_url  # noqa: F401 - fixtures reused

SALES = {
    "id": "sales",
    "description": "orders per region",
    "nodes": [
        {
            "id": "orders",
            "type": "StaticData",
            "params": {"rows": [{"region": "EU", "amount": 3.0}, {"region": "US", "amount": 4.5}]},
        },
        {
            "id": "total",
            "type": "GroupAggregate",
            "inputs": ["orders"],
            "params": {"by": "region", "agg": {"total": ["amount", "sum"]}},
        },
    ],
}


def closed_port() -> int:
    """A port nothing listens on: the GraphQL endpoint of a Dagster that is not running."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def store_api(store) -> FlowStoreAPI:  # noqa: F811 - the store fixture above
    return FlowStoreAPI(store, default_catalog())


@pytest.fixture
def client(store_api) -> TestClient:
    runs = RunsService(graphql_url=f"http://127.0.0.1:{closed_port()}/graphql")
    return TestClient(build_app(store_api, runs, client_dist=None), raise_server_exceptions=False)
